//! The Job controller's decision: a pure function of (Job, observed pods, now) returning a
//! [`Plan`], mirroring `syncJob`/`manageJob` in kubernetes/kubernetes pkg/controller/job.
//!
//! Finished pods are folded into counters by the caller as they finish (as Kubernetes does with
//! its tracking finalizer), so a pass costs O(active pods), never O(all pods ever created).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::backoff::{BackoffPolicy, BackoffRecord};
use super::indexes::Indexes;
use crate::api::types::{
    COMPLETE, FAILED, FAILURE_TARGET, Job, JobCondition, JobStatus, SUCCESS_CRITERIA_MET, SUSPENDED,
};

/// Reason of a Job that failed more often than `backoffLimit` allows.
pub const REASON_BACKOFF_LIMIT: &str = "BackoffLimitExceeded";
/// Reason of a Job that ran longer than `activeDeadlineSeconds`.
pub const REASON_DEADLINE: &str = "DeadlineExceeded";
/// Reason (and container reason) of pods stopped because their Job was suspended; they do
/// not count as failures.
pub const REASON_SUSPENDED: &str = "JobSuspended";
/// Reason of a Job that reached its completions.
pub const REASON_COMPLETIONS: &str = "CompletionsReached";

const MSG_BACKOFF_LIMIT: &str = "Job has reached the specified backoff limit";
const MSG_DEADLINE: &str = "Job was active longer than specified deadline";
const MSG_COMPLETIONS: &str = "Reached expected number of succeeded pods";

/// A pod of the Job that has not finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivePod {
    /// Pod name.
    pub name: String,
    /// In-place restarts so far (restartPolicy OnFailure).
    pub restart_count: i32,
    /// Whether the container is running now.
    pub ready: bool,
    /// Whether the host is already terminating it.
    pub terminating: bool,
    /// Its completion index (Indexed Jobs).
    pub index: Option<i32>,
}

/// What the host observed of a Job's pods.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Pods not finished yet.
    pub active: &'a [ActivePod],
    /// Pods that finished successfully.
    pub succeeded: i32,
    /// Pods that finished in failure (including pods the host terminated).
    pub failed: i32,
    /// Failures since the last success.
    pub backoff: BackoffRecord,
    /// Indexes with a successful pod (Indexed Jobs; then `succeeded` counts them).
    pub succeeded_indexes: Option<&'a Indexes>,
}

/// An event the controller records on the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// e.g. `Completed`.
    pub reason: &'static str,
    /// e.g. `Job completed`.
    pub message: String,
}

/// What the host must do after a reconcile pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Pods to terminate, with the Job-level reason (e.g. `DeadlineExceeded`). Done first.
    pub delete: Vec<String>,
    /// Why the pods in `delete` are terminated.
    pub delete_reason: &'static str,
    /// Number of new pods to create.
    pub create: u32,
    /// Their completion indexes (Indexed Jobs: as many as `create`, lowest first).
    pub indexes: Vec<i32>,
    /// The Job's new status.
    pub status: JobStatus,
    /// Events to record.
    pub notes: Vec<Note>,
    /// Reconcile again after this long even if nothing happens (back-off, deadline).
    pub requeue_after: Option<Duration>,
}

/// Computes the next step for `job` (already defaulted) given its pods at `now`.
pub fn reconcile(job: &Job, obs: &Observed<'_>, now: Timestamp, backoff: &BackoffPolicy) -> Plan {
    let spec = &job.spec;
    let mut status = job.status.clone();
    let mut plan = Plan {
        delete: Vec::new(),
        delete_reason: "",
        create: 0,
        indexes: Vec::new(),
        status: JobStatus::default(),
        notes: Vec::new(),
        requeue_after: None,
    };
    let terminating = obs.active.iter().filter(|p| p.terminating).count();
    let running: Vec<&ActivePod> = obs.active.iter().filter(|p| !p.terminating).collect();
    status.succeeded = obs.succeeded;
    status.failed = obs.failed;
    status.terminating = count(terminating);
    status.active = count(running.len());
    status.ready = count(running.iter().filter(|p| p.ready).count());
    if let Some(ix) = obs.succeeded_indexes {
        status.completed_indexes = Some(ix.to_string()).filter(|s| !s.is_empty());
    }
    if status.finished().is_some() {
        plan.status = status;
        return plan;
    }
    let suspended = spec.suspend == Some(true);
    let was_suspended = status
        .condition(SUSPENDED)
        .is_some_and(|c| c.status == "True");
    if suspended && !was_suspended {
        set_condition(
            &mut status,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        );
        plan.notes.push(Note {
            type_: "Normal",
            reason: "Suspended",
            message: "Job suspended".into(),
        });
    } else if !suspended && was_suspended {
        set_condition(
            &mut status,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now,
        );
        plan.notes.push(Note {
            type_: "Normal",
            reason: "Resumed",
            message: "Job resumed".into(),
        });
        // activeDeadlineSeconds counts the time the Job is continuously active.
        status.start_time = Some(now);
    }
    // A suspended Job has no start time until it runs.
    let start = if suspended {
        status.start_time
    } else {
        Some(*status.start_time.get_or_insert(now))
    };

    // Decide whether the Job has reached a terminal state (kept once reached).
    let target = if let Some(c) = status.condition(FAILURE_TARGET) {
        Some((false, c.reason.clone(), c.message.clone()))
    } else if let Some(c) = status.condition(SUCCESS_CRITERIA_MET) {
        Some((true, c.reason.clone(), c.message.clone()))
    } else if let Some((reason, message)) =
        failure(job, obs, &running, start.filter(|_| !suspended), now)
    {
        status
            .conditions
            .push(condition(FAILURE_TARGET, reason, message, now));
        Some((false, reason.to_string(), message.to_string()))
    } else if succeeded(job, obs) {
        status.conditions.push(condition(
            SUCCESS_CRITERIA_MET,
            REASON_COMPLETIONS,
            MSG_COMPLETIONS,
            now,
        ));
        Some((true, REASON_COMPLETIONS.into(), MSG_COMPLETIONS.into()))
    } else {
        None
    };

    if let Some((success, reason, message)) = target {
        // Terminate what still runs; the terminal condition waits until every pod is gone.
        plan.delete = running.iter().map(|p| p.name.clone()).collect();
        plan.delete_reason = if success {
            "Completed"
        } else {
            static_reason(&reason)
        };
        status.terminating += count(plan.delete.len());
        status.active = 0;
        status.ready = 0;
        if status.terminating == 0 {
            let type_ = if success { COMPLETE } else { FAILED };
            status
                .conditions
                .push(condition(type_, static_reason(&reason), &message, now));
            let message = message.clone();
            // The finished event comes with the terminal condition, not the interim one.
            if success {
                status.completion_time = Some(now);
                plan.notes.push(Note {
                    type_: "Normal",
                    reason: "Completed",
                    message: "Job completed".into(),
                });
            } else {
                plan.notes.push(Note {
                    type_: "Warning",
                    reason: static_reason(&reason),
                    message,
                });
            }
        }
        plan.status = status;
        return plan;
    }

    // manageJob: a suspended Job's pods are stopped (not counted as failures) and none start.
    if suspended {
        plan.delete = running.iter().map(|p| p.name.clone()).collect();
        plan.delete_reason = REASON_SUSPENDED;
        status.terminating += count(plan.delete.len());
        status.active = 0;
        status.ready = 0;
        plan.status = status;
        return plan;
    }
    // manageJob: how many pods should be active now.
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let active = count(running.len());
    let want_active = match spec.completions {
        // Work queue: once any pod succeeded, start no more.
        None if obs.succeeded > 0 => active.min(parallelism),
        None => parallelism,
        Some(c) => (c - obs.succeeded).clamp(0, parallelism),
    };
    if active > want_active {
        // Only reachable if parallelism shrank: remove the newest, not-yet-running pods first.
        let mut victims: Vec<&&ActivePod> = running.iter().collect();
        victims.sort_by_key(|p| p.ready);
        plan.delete = victims
            .iter()
            .take((active - want_active) as usize)
            .map(|p| p.name.clone())
            .collect();
        plan.delete_reason = "Scaled down";
        status.active = want_active;
        status.terminating += count(plan.delete.len());
    } else if active < want_active {
        let wait = obs.backoff.remaining(backoff, now);
        if wait.is_zero() {
            plan.create = (want_active - active) as u32;
            if let (Some(done), Some(c)) = (obs.succeeded_indexes, spec.completions) {
                // The lowest indexes with neither a success nor a running pod.
                plan.indexes = (0..c)
                    .filter(|i| !done.contains(*i) && !running.iter().any(|p| p.index == Some(*i)))
                    .take(plan.create as usize)
                    .collect();
                plan.create = u32::try_from(plan.indexes.len()).unwrap_or(0);
            }
            status.active = active + count(plan.create as usize);
        } else {
            plan.requeue_after = Some(wait);
        }
    }
    if let (Some(ads), Some(start)) = (spec.active_deadline_seconds, start) {
        let deadline = start + SignedDuration::from_secs(ads);
        let left = now.duration_until(deadline).unsigned_abs();
        plan.requeue_after = Some(plan.requeue_after.map_or(left, |d| d.min(left)));
    }
    plan.status = status;
    plan
}

/// Sets condition `type_` (adding it, or updating its status when it changes).
fn set_condition(
    status: &mut JobStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            c.status = value.into();
            c.reason = reason.into();
            c.message = message.into();
            c.last_probe_time = now;
            c.last_transition_time = now;
        }
        None => {
            let mut c = condition(type_, reason, message, now);
            c.status = value.into();
            status.conditions.push(c);
        }
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn static_reason(reason: &str) -> &'static str {
    match reason {
        REASON_BACKOFF_LIMIT => REASON_BACKOFF_LIMIT,
        REASON_DEADLINE => REASON_DEADLINE,
        _ => REASON_COMPLETIONS,
    }
}

fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        last_probe_time: now,
        last_transition_time: now,
        reason: reason.into(),
        message: message.into(),
    }
}

/// The failure that ends the Job, if any: back-off limit first, then the deadline, as
/// `syncJob` checks them.
fn failure(
    job: &Job,
    obs: &Observed<'_>,
    running: &[&ActivePod],
    start: Option<Timestamp>,
    now: Timestamp,
) -> Option<(&'static str, &'static str)> {
    let spec = &job.spec;
    let limit = spec.backoff_limit.unwrap_or(6);
    let on_failure = spec.template.spec.restart_policy.as_deref() == Some("OnFailure");
    let exceeded = if on_failure {
        // pastBackoffLimitOnFailure: restarts of the pods still running count.
        let restarts: i64 = running.iter().map(|p| i64::from(p.restart_count)).sum();
        (limit == 0 && restarts > 0) || (limit > 0 && restarts >= i64::from(limit))
    } else {
        obs.failed > limit
    };
    if exceeded {
        return Some((REASON_BACKOFF_LIMIT, MSG_BACKOFF_LIMIT));
    }
    if let (Some(ads), Some(start)) = (spec.active_deadline_seconds, start)
        && now >= start + SignedDuration::from_secs(ads)
    {
        return Some((REASON_DEADLINE, MSG_DEADLINE));
    }
    None
}

fn succeeded(job: &Job, obs: &Observed<'_>) -> bool {
    match job.spec.completions {
        Some(c) => obs.succeeded >= c,
        None => obs.succeeded > 0 && obs.active.is_empty(),
    }
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
