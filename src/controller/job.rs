//! The Job controller's decision: a pure function of (Job, observed pods, now) returning a
//! [`Plan`], mirroring `syncJob`/`manageJob` in kubernetes/kubernetes pkg/controller/job.
//!
//! Finished pods are folded into counters by the caller as they finish (as Kubernetes does with
//! its tracking finalizer), so a pass costs O(active pods), never O(all pods ever created).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::backoff::BackoffPolicy;
use super::indexes::Indexes;
use super::success_policy;
use super::tally::Tally;
use crate::api::types::{
    COMPLETE, FAILED, FAILURE_TARGET, Job, JobCondition, JobSpec, JobStatus, SUCCESS_CRITERIA_MET,
    SUSPENDED,
};

/// Reason of a Job that failed more often than `backoffLimit` allows.
pub const REASON_BACKOFF_LIMIT: &str = "BackoffLimitExceeded";
/// Reason of a Job that ran longer than `activeDeadlineSeconds`.
pub const REASON_DEADLINE: &str = "DeadlineExceeded";
pub use super::tally::{REASON_JOB_SUCCEEDED, REASON_SUSPENDED};
/// Reason of a Job that reached its completions.
pub const REASON_COMPLETIONS: &str = "CompletionsReached";
/// Reason of a Job failed by a `FailJob` rule of its pod failure policy.
pub const REASON_POD_FAILURE_POLICY: &str = "PodFailurePolicy";
/// Reason of a Job with more failed indexes than `maxFailedIndexes`.
pub const REASON_MAX_FAILED_INDEXES: &str = "MaxFailedIndexesExceeded";
/// Reason of a Job whose indexes are all done, some failed.
pub const REASON_FAILED_INDEXES: &str = "FailedIndexes";
/// Pods a reconcile pass creates at most (Kubernetes' `MaxPodCreateDeletePerSync`).
pub const MAX_POD_CREATE_PER_SYNC: u32 = 500;

/// Reason of a Job that met a rule of its success policy.
pub const REASON_SUCCESS_POLICY: &str = "SuccessPolicy";

/// Reasons a Job fails for; its pods stopped for them count as failed, policy or not.
pub const FAILURE_REASONS: &[&str] = &[
    REASON_BACKOFF_LIMIT,
    REASON_DEADLINE,
    REASON_POD_FAILURE_POLICY,
    REASON_MAX_FAILED_INDEXES,
    REASON_FAILED_INDEXES,
];

const REASONS: &[&str] = &[
    REASON_BACKOFF_LIMIT,
    REASON_DEADLINE,
    REASON_COMPLETIONS,
    REASON_POD_FAILURE_POLICY,
    REASON_MAX_FAILED_INDEXES,
    REASON_FAILED_INDEXES,
    REASON_SUCCESS_POLICY,
];

const MSG_BACKOFF_LIMIT: &str = "Job has reached the specified backoff limit";
const MSG_DEADLINE: &str = "Job was active longer than specified deadline";
const MSG_COMPLETIONS: &str = "Reached expected number of succeeded pods";
const MSG_MAX_FAILED_INDEXES: &str =
    "Job has exceeded the specified maximal number of failed indexes";
const MSG_FAILED_INDEXES: &str = "Job has failed indexes";

/// A pod of the Job that has not finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivePod {
    /// The host's handle for the pod; [`Plan::delete`] names pods by it.
    pub id: usize,
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
    /// The finished pods, folded.
    pub tally: &'a Tally,
    /// `active`, counted: the host keeps these as its list changes, so that a reconcile pass
    /// costs O(1) in the active pods, not O(active) (a Job of 10,000 sleeping pods runs a
    /// turn per pod update).
    pub counts: ActiveCounts,
}

impl<'a> Observed<'a> {
    /// The observation of `active` and `tally`, counting `active`.
    pub fn new(active: &'a [ActivePod], tally: &'a Tally) -> Self {
        Observed {
            active,
            tally,
            counts: ActiveCounts::of(active),
        }
    }
}

/// The active pods of a Job, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveCounts {
    /// Being terminated.
    pub terminating: usize,
    /// Not being terminated.
    pub running: usize,
    /// Not being terminated, with their container running.
    pub ready: usize,
    /// In-place restarts of those not being terminated.
    pub restarts: i64,
}

impl ActiveCounts {
    /// Counts `pods`, one by one.
    pub fn of(pods: &[ActivePod]) -> Self {
        let mut counts = ActiveCounts::default();
        for p in pods {
            counts.add(p);
        }
        counts
    }

    /// Counts `p` in.
    pub fn add(&mut self, p: &ActivePod) {
        if p.terminating {
            self.terminating += 1;
        } else {
            self.running += 1;
            self.ready += usize::from(p.ready);
            self.restarts += i64::from(p.restart_count);
        }
    }

    /// Counts `p` out (as it was counted in).
    pub fn remove(&mut self, p: &ActivePod) {
        if p.terminating {
            self.terminating -= 1;
        } else {
            self.running -= 1;
            self.ready -= usize::from(p.ready);
            self.restarts -= i64::from(p.restart_count);
        }
    }
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
    /// Pods to terminate (their [`ActivePod::id`]s), with the Job-level reason (e.g.
    /// `DeadlineExceeded`). Done first.
    pub delete: Vec<usize>,
    /// Why the pods in `delete` are terminated.
    pub delete_reason: &'static str,
    /// Number of new pods to create.
    pub create: u32,
    /// Their completion indexes (Indexed Jobs: as many as `create`, lowest first).
    pub indexes: Vec<i32>,
    /// The Job's new status (from [`reconcile`]; [`reconcile_status`] changes the Job's own
    /// and leaves this empty).
    pub status: JobStatus,
    /// Events to record.
    pub notes: Vec<Note>,
    /// Reconcile again after this long even if nothing happens (back-off, deadline).
    pub requeue_after: Option<Duration>,
}

/// Sets `status`'s pod counters (active, ready, terminating, succeeded, failed) and index
/// lists from the observed pods' counts; returns the in-place restarts of those still
/// running, which count against backoffLimit under OnFailure.
pub fn count_pods(spec: &JobSpec, obs: &Observed<'_>, status: &mut JobStatus) -> i64 {
    let tally = obs.tally;
    // Debug builds (the tests) check the host's running counts against a count of the list.
    debug_assert_eq!(
        obs.counts,
        ActiveCounts::of(obs.active),
        "active pod counts"
    );
    let ActiveCounts {
        terminating,
        running,
        ready,
        restarts,
    } = obs.counts;
    let succeeded = tally.succeeded(spec.completions);
    status.succeeded = succeeded;
    status.failed = tally.failed;
    status.terminating = count(terminating);
    status.active = count(running);
    status.ready = count(ready);
    if let Some(ix) = &tally.succeeded_indexes {
        status.completed_indexes = Some(ix.to_string()).filter(|s| !s.is_empty());
    }
    // Kubernetes reports failedIndexes (possibly empty) whenever backoffLimitPerIndex is set.
    status.failed_indexes = tally.failed_indexes.as_ref().map(Indexes::to_string);
    restarts
}

/// Computes the next step for `job` (already defaulted) given its pods at `now`.
pub fn reconcile(job: &Job, obs: &Observed<'_>, now: Timestamp, backoff: &BackoffPolicy) -> Plan {
    let mut status = job.status.clone();
    let mut plan = reconcile_status(&job.spec, &mut status, obs, now, backoff);
    plan.status = status;
    plan
}

/// [`reconcile`] for a caller that keeps the Job: its `status` becomes the new status in
/// place (a Job's pass costs no copy of its status), and the plan's `status` is left
/// empty.
pub fn reconcile_status(
    spec: &JobSpec,
    status: &mut JobStatus,
    obs: &Observed<'_>,
    now: Timestamp,
    backoff: &BackoffPolicy,
) -> Plan {
    let tally = obs.tally;
    let mut plan = Plan {
        delete: Vec::new(),
        delete_reason: "",
        create: 0,
        indexes: Vec::new(),
        status: JobStatus::default(),
        notes: Vec::new(),
        requeue_after: None,
    };
    let restarts = count_pods(spec, obs, status);
    let succeeded = status.succeeded;
    if status.finished().is_some() {
        return plan;
    }
    let suspended = spec.suspend == Some(true);
    let was_suspended = status
        .condition(SUSPENDED)
        .is_some_and(|c| c.status == "True");
    if suspended && !was_suspended {
        set_condition(
            status,
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
        set_condition(status, SUSPENDED, "False", "JobResumed", "Job resumed", now);
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

    // Decide whether the Job has reached a terminal state (kept once reached), in the
    // order syncJob checks: interim conditions, failures, then success.
    let target = if let Some(c) = status.condition(SUCCESS_CRITERIA_MET) {
        Some((true, static_reason(&c.reason), c.message.clone()))
    } else if let Some(c) = status.condition(FAILURE_TARGET) {
        Some((false, static_reason(&c.reason), c.message.clone()))
    } else if let Some((reason, message)) =
        failure(spec, obs, restarts, start.filter(|_| !suspended), now)
    {
        status
            .conditions
            .push(condition(FAILURE_TARGET, reason, &message, now));
        Some((false, reason, message))
    } else if let Some((reason, message)) = success(spec, obs, succeeded) {
        status
            .conditions
            .push(condition(SUCCESS_CRITERIA_MET, reason, &message, now));
        Some((true, reason, message))
    } else {
        None
    };

    if let Some((success, reason, message)) = target {
        // Terminate what still runs; the terminal condition waits until every pod is gone.
        plan.delete = running_pods(obs).iter().map(|p| p.id).collect();
        plan.delete_reason = if success {
            REASON_JOB_SUCCEEDED
        } else {
            reason
        };
        status.terminating += count(plan.delete.len());
        status.active = 0;
        status.ready = 0;
        if status.terminating == 0 {
            let type_ = if success { COMPLETE } else { FAILED };
            status
                .conditions
                .push(condition(type_, reason, &message, now));
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
                    reason,
                    message,
                });
            }
        }
        return plan;
    }

    // manageJob: a suspended Job's pods are stopped (not counted as failures) and none start.
    if suspended {
        plan.delete = running_pods(obs).iter().map(|p| p.id).collect();
        plan.delete_reason = REASON_SUSPENDED;
        status.terminating += count(plan.delete.len());
        status.active = 0;
        status.ready = 0;
        return plan;
    }
    // manageJob: how many pods should be active now.
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let active = status.active;
    let want_active = match spec.completions {
        // Work queue: once any pod succeeded, start no more.
        None if succeeded > 0 => active.min(parallelism),
        None => parallelism,
        Some(c) => (c - succeeded).clamp(0, parallelism),
    };
    // With podReplacementPolicy Failed, a terminating pod is replaced only once it failed.
    let only_failed = spec.pod_replacement_policy.as_deref() == Some("Failed")
        || spec.pod_failure_policy.is_some();
    let waiting = if only_failed { status.terminating } else { 0 };
    if active > want_active {
        // Only reachable if parallelism shrank: remove the not-yet-running, then the newest
        // pods first, as Kubernetes' ActivePods order does.
        let mut victims: Vec<&ActivePod> = obs.active.iter().filter(|p| !p.terminating).collect();
        victims.sort_unstable_by_key(|p| (p.ready, std::cmp::Reverse(p.id)));
        plan.delete = victims
            .iter()
            .take((active - want_active) as usize)
            .map(|p| p.id)
            .collect();
        plan.delete_reason = "Scaled down";
        status.active = want_active;
        status.terminating += count(plan.delete.len());
    } else if active + waiting < want_active {
        let wanted = (want_active - active - waiting) as u32;
        // As Kubernetes' MaxPodCreateDeletePerSync: a pass creates so many pods at most and
        // comes back for the rest, so that a wide Job's first pods start (and are saved)
        // while the rest are being created.
        let missing = wanted.min(MAX_POD_CREATE_PER_SYNC);
        if let (Some(done), Some(c)) = (&tally.succeeded_indexes, spec.completions) {
            // The lowest indexes with neither a success, a failure nor a pod.
            let busy: std::collections::HashSet<i32> = obs
                .active
                .iter()
                .filter(|p| only_failed || !p.terminating)
                .filter_map(|p| p.index)
                .collect();
            let failed = tally.failed_indexes.as_ref();
            // The indexes neither done nor failed, skipping whole runs of them, so that a
            // pass costs O(runs + active), not O(completions).
            let mut next = 0;
            let pending = std::iter::from_fn(move || {
                loop {
                    let i = failed.map_or(done.next_absent(next), |f| {
                        let mut i = next;
                        loop {
                            let j = f.next_absent(done.next_absent(i));
                            if j == i {
                                break i;
                            }
                            i = j;
                        }
                    });
                    if i >= c {
                        return None;
                    }
                    next = i + 1;
                    if !busy.contains(&i) {
                        return Some(i);
                    }
                }
            });
            if spec.backoff_limit_per_index.is_some() {
                // Each index backs off on its own failures.
                let mut wait: Option<Duration> = None;
                for i in pending.take(missing as usize) {
                    let left = tally
                        .indexes
                        .get(&i)
                        .map_or(Duration::ZERO, |r| r.backoff.remaining(backoff, now));
                    if left.is_zero() {
                        plan.indexes.push(i);
                    } else {
                        wait = Some(wait.map_or(left, |w| w.min(left)));
                    }
                }
                plan.requeue_after = wait;
            } else {
                let wait = tally.backoff.remaining(backoff, now);
                if wait.is_zero() {
                    plan.indexes = pending.take(missing as usize).collect();
                } else {
                    plan.requeue_after = Some(wait);
                }
            }
            plan.create = u32::try_from(plan.indexes.len()).unwrap_or(0);
        } else {
            let wait = tally.backoff.remaining(backoff, now);
            if wait.is_zero() {
                plan.create = missing;
            } else {
                plan.requeue_after = Some(wait);
            }
        }
        status.active = active + count(plan.create as usize);
        if missing < wanted && plan.create == missing {
            plan.requeue_after = Some(Duration::ZERO);
        }
    }
    if let Some(deadline) = deadline(spec.active_deadline_seconds, start) {
        let left = now.duration_until(deadline).unsigned_abs();
        plan.requeue_after = Some(plan.requeue_after.map_or(left, |d| d.min(left)));
    }
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

/// The reason constant of a stored condition.
fn static_reason(reason: &str) -> &'static str {
    REASONS
        .iter()
        .find(|r| **r == reason)
        .copied()
        .unwrap_or(REASON_COMPLETIONS)
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

/// The pods not being terminated, oldest first (the host keeps its list in no particular
/// order).
fn running_pods<'a>(obs: &Observed<'a>) -> Vec<&'a ActivePod> {
    let mut running: Vec<&ActivePod> = obs.active.iter().filter(|p| !p.terminating).collect();
    running.sort_unstable_by_key(|p| p.id);
    running
}

/// The failure that ends the Job, if any, in the order `syncJob` checks: a `FailJob` rule,
/// the back-off limit, the deadline, then an Indexed Job's failed indexes.
fn failure(
    spec: &JobSpec,
    obs: &Observed<'_>,
    restarts: i64,
    start: Option<Timestamp>,
    now: Timestamp,
) -> Option<(&'static str, String)> {
    let tally = obs.tally;
    if let Some(message) = &tally.fail_job {
        return Some((REASON_POD_FAILURE_POLICY, message.clone()));
    }
    let limit = spec.backoff_limit.unwrap_or(6);
    let on_failure = spec.template.spec.restart_policy.as_deref() == Some("OnFailure");
    let exceeded = if on_failure {
        // pastBackoffLimitOnFailure: restarts of the pods still running count.
        (limit == 0 && restarts > 0) || (limit > 0 && restarts >= i64::from(limit))
    } else {
        tally.failed > limit
    };
    if exceeded {
        return Some((REASON_BACKOFF_LIMIT, MSG_BACKOFF_LIMIT.into()));
    }
    if deadline(spec.active_deadline_seconds, start).is_some_and(|d| now >= d) {
        return Some((REASON_DEADLINE, MSG_DEADLINE.into()));
    }
    let (Some(failed), Some(done), Some(c)) = (
        &tally.failed_indexes,
        &tally.succeeded_indexes,
        spec.completions,
    ) else {
        return None;
    };
    let failed_count = failed.count_below(c);
    if spec
        .max_failed_indexes
        .is_some_and(|max| failed_count > max)
    {
        return Some((REASON_MAX_FAILED_INDEXES, MSG_MAX_FAILED_INDEXES.into()));
    }
    if failed_count > 0 && failed_count + done.count_below(c) >= c {
        return Some((REASON_FAILED_INDEXES, MSG_FAILED_INDEXES.into()));
    }
    None
}

/// When `activeDeadlineSeconds` from `start` runs out; none past the end of time.
fn deadline(seconds: Option<i64>, start: Option<Timestamp>) -> Option<Timestamp> {
    start?.checked_add(SignedDuration::from_secs(seconds?)).ok()
}

/// Whether the Job succeeded: a rule of its success policy matched, or it reached its
/// completions (a work queue: a pod succeeded and none is left).
fn success(spec: &JobSpec, obs: &Observed<'_>, succeeded: i32) -> Option<(&'static str, String)> {
    if let (Some(policy), Some(done), Some(c)) = (
        &spec.success_policy,
        &obs.tally.succeeded_indexes,
        spec.completions,
    ) && let Some(rule) = success_policy::matching_rule(policy, c, done)
    {
        return Some((
            REASON_SUCCESS_POLICY,
            format!("Matched rules at index {rule}"),
        ));
    }
    let reached = match spec.completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && obs.active.is_empty(),
    };
    reached.then(|| (REASON_COMPLETIONS, MSG_COMPLETIONS.into()))
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
