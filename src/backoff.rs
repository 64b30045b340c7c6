//! Exponential backoff with full jitter, shared by the ECS client and the
//! metadata client: the n-th wait is uniform in `[0, min(cap, base · 2^(n-1))]`,
//! bounded by a maximum number of attempts and an overall deadline.
//!
//! Throttling (`Throttling*` codes) has its own, larger backoff,
//! [`ThrottleBackoff`]: the n-th wait is uniform in
//! `[floor, min(cap, base · 2^(n-1))]`. A throttle says the *account's*
//! request budget is spent, usually by many instances booting at once, so
//! an immediate retry only spends another call: the floor skips the
//! budget window that refused us, and the ceiling spreads the crowd's
//! retries over the seconds the budget needs to serve it.

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

/// How often and how long to retry a transient failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Upper bound of the first wait.
    pub base_delay: Duration,
    /// No single wait is longer than this.
    pub max_delay: Duration,
    /// Attempts in all, the first included (1 = never retry). Attempts
    /// refused by throttling do not count unless this is 1 (see
    /// [`ThrottleBackoff`]).
    pub max_attempts: u32,
    /// No retry starts later than this after the first attempt.
    pub deadline: Duration,
}

impl RetryPolicy {
    /// The ceiling of the wait after failed attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        self.base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay)
    }

    /// A fully jittered wait after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        jitter(self.ceiling(attempt))
    }
}

/// The backoff after a `Throttling*` answer (account- or API-wide request
/// budget spent). Throttled attempts are bounded by the [`RetryPolicy`]'s
/// deadline, not by its attempt count: under a budget shared by a fleet the
/// number of refusals measures the crowd, not the health of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleBackoff {
    /// No wait is shorter than this (unless the ceiling is).
    pub min_delay: Duration,
    /// The ceiling of the first wait.
    pub base_delay: Duration,
    /// No ceiling is larger than this.
    pub max_delay: Duration,
}

impl Default for ThrottleBackoff {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_secs(2),
            base_delay: Duration::from_secs(6),
            max_delay: Duration::from_secs(12),
        }
    }
}

impl ThrottleBackoff {
    /// The ceiling of the wait after throttled attempt `throttles` (1-based).
    pub fn ceiling(&self, throttles: u32) -> Duration {
        let exp = throttles.saturating_sub(1).min(31);
        self.base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay)
    }

    /// A jittered wait in `[min(floor, ceiling), ceiling]` after throttled
    /// attempt `throttles` (1-based).
    pub fn delay(&self, throttles: u32) -> Duration {
        let ceiling = self.ceiling(throttles);
        let floor = self.min_delay.min(ceiling);
        floor + jitter(ceiling - floor)
    }
}

/// Uniform in `[0, ceiling]`.
fn jitter(ceiling: Duration) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(random_u64() % (nanos.saturating_add(1)))
}

/// The schedule of a wait loop: waits doubling from `first` up to `cap`,
/// each cut short at the deadline, so the loop looks one last time at the
/// deadline and gives up only then — never earlier because the next wait
/// would pass it.
#[derive(Debug)]
pub struct Poll {
    started: tokio::time::Instant,
    deadline: tokio::time::Instant,
    delay: Duration,
    cap: Duration,
}

impl Poll {
    /// A schedule that ends `timeout` from now.
    pub fn new(first: Duration, cap: Duration, timeout: Duration) -> Self {
        let started = tokio::time::Instant::now();
        Self {
            started,
            deadline: started + timeout,
            delay: first,
            cap,
        }
    }

    /// Waits the next delay (at most until the deadline); false, without
    /// waiting, once the deadline has passed.
    pub async fn wait(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return false;
        }
        tokio::time::sleep_until((now + self.delay).min(self.deadline)).await;
        self.delay = (self.delay * 2).min(self.cap);
        true
    }

    /// Time since the schedule started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A random u64 from the system CSPRNG (jitter must not be synchronised across
/// a fleet that boots at once, so no seeded generator).
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SystemRandom reads getrandom(2); it fails only on kernels without it,
    // where a zero jitter is still a correct (if less spread) backoff.
    let _ = SystemRandom::new().fill(&mut buf);
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_attempts: 10,
            deadline: Duration::from_secs(30),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy();
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(6), Duration::from_secs(2));
        assert_eq!(p.ceiling(200), Duration::from_secs(2));
    }

    #[test]
    fn jittered_delay_stays_under_the_ceiling_and_varies() {
        let p = policy();
        let delays: Vec<Duration> = (0..50).map(|_| p.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= p.ceiling(3)));
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "full jitter must vary"
        );
    }

    #[test]
    fn throttle_waits_stay_between_the_floor_and_the_ceiling() {
        let t = ThrottleBackoff::default();
        assert_eq!(t.ceiling(1), Duration::from_secs(6));
        assert_eq!(t.ceiling(2), Duration::from_secs(12));
        assert_eq!(t.ceiling(40), Duration::from_secs(12));
        for n in 1..6 {
            let delays: Vec<Duration> = (0..50).map(|_| t.delay(n)).collect();
            assert!(
                delays
                    .iter()
                    .all(|d| *d >= t.min_delay && *d <= t.ceiling(n)),
                "{n}: {delays:?}"
            );
            assert!(delays.iter().any(|d| *d != delays[0]), "jittered");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_gives_up_at_its_deadline_not_before() {
        let mut poll = Poll::new(
            Duration::from_secs(5),
            Duration::from_secs(10),
            Duration::from_secs(8),
        );
        let started = tokio::time::Instant::now();
        let mut looks = vec![];
        while poll.wait().await {
            looks.push(started.elapsed());
        }
        assert_eq!(looks, [Duration::from_secs(5), Duration::from_secs(8)]);
        assert_eq!(poll.elapsed(), Duration::from_secs(8));
    }

    #[test]
    fn a_throttle_ceiling_below_the_floor_wins() {
        let t = ThrottleBackoff {
            min_delay: Duration::from_secs(2),
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        };
        assert!(t.delay(1) <= Duration::from_millis(5));
        assert!(t.delay(9) <= Duration::from_millis(20));
        let zero = ThrottleBackoff {
            min_delay: Duration::ZERO,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        };
        assert_eq!(zero.delay(3), Duration::ZERO);
    }
}
