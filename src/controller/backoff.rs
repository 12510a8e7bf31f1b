//! Exponential back-off between failed-pod re-creations (the Job controller's `backoffRecord`)
//! and between in-place restarts (the kubelet's CrashLoopBackOff).

use std::time::Duration;

use jiff::Timestamp;

/// Base and cap of the back-off: Kubernetes uses 10 s doubling up to 6 min.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(6 * 60),
        }
    }
}

/// The kubelet's longest delay between in-place restarts (CrashLoopBackOff's
/// `MaxContainerBackOff`), shorter than the Job controller's.
pub const MAX_CONTAINER_BACKOFF: Duration = Duration::from_secs(300);

impl BackoffPolicy {
    /// The policy of in-place restarts (restartPolicy OnFailure): the same base, capped at
    /// [`MAX_CONTAINER_BACKOFF`] as the kubelet caps it.
    pub fn crash_loop(&self) -> BackoffPolicy {
        BackoffPolicy {
            max: self.max.min(MAX_CONTAINER_BACKOFF),
            ..*self
        }
    }

    /// The delay after `failures` consecutive failures: base · 2^(failures-1), capped; zero
    /// when there was none.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let shift = (failures - 1).min(63);
        self.base
            .checked_mul(1u32.checked_shl(shift).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// Failures since the Job's last success, as the Job controller tracks them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    /// Failed pods that finished after the last successful one.
    pub failures_after_last_success: u32,
    /// When the last of them finished.
    pub last_failure: Option<Timestamp>,
}

impl BackoffRecord {
    /// Records a pod that failed at `at`.
    pub fn failed(&mut self, at: Timestamp) {
        self.failures_after_last_success += 1;
        self.last_failure = Some(self.last_failure.map_or(at, |t| t.max(at)));
    }

    /// Records a pod that succeeded: back-off starts over.
    pub fn succeeded(&mut self) {
        *self = BackoffRecord::default();
    }

    /// How long to wait before creating a replacement pod.
    pub fn remaining(&self, policy: &BackoffPolicy, now: Timestamp) -> Duration {
        let Some(last) = self.last_failure else {
            return Duration::ZERO;
        };
        let delay = policy.delay(self.failures_after_last_success);
        let elapsed = now.duration_since(last).unsigned_abs();
        delay.saturating_sub(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_seconds_up_to_six_minutes() {
        let p = BackoffPolicy::default();
        let secs: Vec<u64> = (0..8).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 320, 360]);
        assert_eq!(p.delay(1000), Duration::from_secs(360));
    }

    #[test]
    fn remaining_counts_from_the_last_failure_and_resets_on_success() {
        let p = BackoffPolicy::default();
        let t0 = Timestamp::UNIX_EPOCH;
        let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);
        let mut r = BackoffRecord::default();
        assert_eq!(r.remaining(&p, t0), Duration::ZERO);
        r.failed(at(0));
        assert_eq!(r.remaining(&p, at(4)), Duration::from_secs(6));
        r.failed(at(5));
        assert_eq!(r.remaining(&p, at(5)), Duration::from_secs(20));
        assert_eq!(r.remaining(&p, at(30)), Duration::ZERO);
        r.succeeded();
        assert_eq!(r.remaining(&p, at(30)), Duration::ZERO);
    }
}
