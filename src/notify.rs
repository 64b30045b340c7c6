//! systemd notifications (Type=notify): READY=1 once every configured ENI is
//! configured or has failed for good, STATUS= with a one-line summary,
//! WATCHDOG=1 at half the unit's WatchdogSec, STOPPING=1 on the way out.
//! Outside systemd (no NOTIFY_SOCKET) every call is a no-op. A status line
//! is one line: control characters (a newline would start another
//! `KEY=value` assignment such as `READY=1` or `MAINPID=`) become spaces,
//! and it is cut to [`MAX_STATUS_CHARS`].

use std::time::Duration;

use sd_notify::NotifyState;

/// The longest status line sent.
pub const MAX_STATUS_CHARS: usize = 256;

/// `status` as one bounded line, safe to send as `STATUS=`.
pub fn status_line(status: &str) -> String {
    crate::secret::bound_message(status, MAX_STATUS_CHARS)
}

/// Tells systemd the service is ready, with a status line.
pub fn ready(status: &str) {
    let line = status_line(status);
    send(&[NotifyState::Ready, NotifyState::Status(&line)]);
}

/// Updates the status line.
pub fn status(status: &str) {
    let line = status_line(status);
    send(&[NotifyState::Status(&line)]);
}

/// Pets the watchdog.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Half the unit's watchdog interval, when the unit asks for one.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_cannot_carry_another_assignment() {
        let line = status_line("1 configured: eni-a\nREADY=1\nMAINPID=1");
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(
            status_line(&"x".repeat(1000)).chars().count(),
            MAX_STATUS_CHARS + 1
        );
    }
}
