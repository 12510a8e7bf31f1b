//! The TTL-after-finished controller's decision (kubernetes/kubernetes
//! pkg/controller/ttlafterfinished): a finished Job with `ttlSecondsAfterFinished` expires that
//! many seconds after its terminal condition, and is then deleted with its pods.

use jiff::{SignedDuration, Timestamp};

use crate::api::types::Job;

/// When `job` expires: the time of its `Complete` or `Failed` condition plus its TTL. `None`
/// if it has no TTL or has not finished.
pub fn expiry(job: &Job) -> Option<Timestamp> {
    let ttl = job.spec.ttl_seconds_after_finished?;
    let finished = job.status.finished()?;
    Some(finished.last_transition_time + SignedDuration::from_secs(i64::from(ttl)))
}

/// Whether `job` has expired at `now`.
pub fn expired(job: &Job, now: Timestamp) -> bool {
    expiry(job).is_some_and(|t| t <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{COMPLETE, JobCondition};

    fn job(ttl: Option<i32>, finished_at: Option<i64>) -> Job {
        let mut j: Job = serde_json::from_str(r#"{"apiVersion":"batch/v1","kind":"Job"}"#).unwrap();
        j.spec.ttl_seconds_after_finished = ttl;
        if let Some(t) = finished_at {
            let at = Timestamp::from_second(t).unwrap();
            j.status.conditions.push(JobCondition {
                type_: COMPLETE.into(),
                status: "True".into(),
                last_probe_time: at,
                last_transition_time: at,
                reason: "CompletionsReached".into(),
                message: String::new(),
            });
        }
        j
    }

    #[test]
    fn expires_ttl_seconds_after_the_terminal_condition() {
        let at = |s| Timestamp::from_second(s).unwrap();
        let cases = [
            (Some(100), Some(1000), 1099, false),
            (Some(100), Some(1000), 1100, true),
            (Some(0), Some(1000), 1000, true),
            (None, Some(1000), 1_000_000, false),
            (Some(0), None, 1_000_000, false),
        ];
        for (ttl, finished, now, want) in cases {
            assert_eq!(
                expired(&job(ttl, finished), at(now)),
                want,
                "{ttl:?} {finished:?} {now}"
            );
        }
        assert_eq!(expiry(&job(Some(5), Some(10))), Some(at(15)));
    }
}
