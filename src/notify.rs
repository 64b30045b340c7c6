//! systemd notifications (Type=notify): READY=1 once every configured ENI is
//! configured or has failed for good, STATUS= with a one-line summary,
//! WATCHDOG=1 at half the unit's WatchdogSec, STOPPING=1 on the way out.
//! Outside systemd (no NOTIFY_SOCKET) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd the service is ready, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Updates the status line.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
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
