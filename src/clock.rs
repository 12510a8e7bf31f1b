//! The one source of time: wall-clock timestamps anchored to tokio's (pausable) monotonic clock.

use jiff::{SignedDuration, Timestamp};

/// Tells the time. Controllers never read it themselves: the host passes `now` in.
pub trait Clock: Send + Sync {
    /// The current time, at microsecond precision (as Kubernetes' MicroTime).
    fn now(&self) -> Timestamp;

    /// The time when tokio's clock read `instant`: a host turn reads the clock once for
    /// both. A clock not anchored to tokio's reads itself.
    fn at(&self, instant: tokio::time::Instant) -> Timestamp {
        let _ = instant;
        self.now()
    }
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
        self.at(tokio::time::Instant::now())
    }

    fn at(&self, instant: tokio::time::Instant) -> Timestamp {
        let elapsed = instant.saturating_duration_since(self.mono);
        // Seconds and nanoseconds added apart: jiff's checked arithmetic and i128
        // nanoseconds cost a few hundred instructions, and the host reads the clock several
        // times per pod. Times before 1970 take the general path.
        let (s, ns) = (self.wall.as_second(), self.wall.subsec_nanosecond());
        if s >= 0 && ns >= 0 {
            let mut ns = ns + elapsed.subsec_nanos() as i32;
            let mut s = i64::try_from(elapsed.as_secs()).map_or(i64::MAX, |e| s.saturating_add(e));
            if ns >= 1_000_000_000 {
                (s, ns) = (s.saturating_add(1), ns - 1_000_000_000);
            }
            if let Ok(t) = Timestamp::new(s, ns - ns % 1000) {
                return t;
            }
        }
        let elapsed = SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::MAX);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path agrees with jiff's arithmetic, across a carry into the next second and
    /// with sub-microsecond digits on both sides.
    #[tokio::test(start_paused = true)]
    async fn now_is_wall_plus_elapsed_truncated_to_micros() {
        let wall = Timestamp::new(1_700_000_000, 999_999_999).unwrap();
        let clock = TokioClock::starting_at(wall);
        assert_eq!(
            clock.now(),
            Timestamp::new(1_700_000_000, 999_999_000).unwrap()
        );
        for step in [1, 1_999, 123_456_789, 2_000_000_001] {
            tokio::time::advance(std::time::Duration::from_nanos(step)).await;
            let elapsed = SignedDuration::try_from(clock.mono.elapsed()).unwrap();
            let expected = truncate_to_micros(wall.checked_add(elapsed).unwrap());
            assert_eq!(clock.now(), expected, "after {step} ns more");
        }
        // A turn's one reading, given back as a timestamp.
        let start = clock.mono;
        tokio::time::advance(std::time::Duration::from_millis(1500)).await;
        let later = tokio::time::Instant::now();
        tokio::time::advance(std::time::Duration::from_secs(7)).await;
        assert_eq!(clock.at(start), truncate_to_micros(wall));
        assert_eq!(
            clock.at(later),
            truncate_to_micros(wall.checked_add(later - start).unwrap())
        );
        assert_eq!(clock.at(tokio::time::Instant::now()), clock.now());
        // Before 1970 the general path answers.
        let early = TokioClock::starting_at(Timestamp::new(-10, -500).unwrap());
        assert_eq!(early.now(), Timestamp::new(-10, 0).unwrap());
    }
}
