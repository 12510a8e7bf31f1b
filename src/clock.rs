//! The one source of time: wall-clock timestamps anchored to tokio's (pausable) monotonic clock.

use jiff::{SignedDuration, Timestamp};

/// Tells the time. Controllers never read it themselves: the host passes `now` in.
pub trait Clock: Send + Sync {
    /// The current time, at microsecond precision (as Kubernetes' MicroTime).
    fn now(&self) -> Timestamp;
}

/// Wall time at creation plus tokio's monotonic time since: immune to wall-clock jumps during
/// a run, and under `tokio::time::pause()` tests move it forward without sleeping.
#[derive(Debug, Clone)]
pub struct TokioClock {
    wall: Timestamp,
    mono: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that starts at the system's wall time.
    pub fn new() -> Self {
        Self::starting_at(Timestamp::now())
    }

    /// A clock that reads `wall` now (for tests and replays).
    pub fn starting_at(wall: Timestamp) -> Self {
        TokioClock {
            wall,
            mono: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.mono.elapsed()).unwrap_or(SignedDuration::MAX);
        let t = self.wall.saturating_add(elapsed).unwrap_or(self.wall);
        truncate_to_micros(t)
    }
}

/// Drops sub-microsecond digits, so printed timestamps have at most six fractional digits.
pub fn truncate_to_micros(t: Timestamp) -> Timestamp {
    let nanos = t.subsec_nanosecond();
    t.checked_sub(SignedDuration::from_nanos(i64::from(nanos % 1000)))
        .unwrap_or(t)
}
