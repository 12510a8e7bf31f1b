//! Table tests of the Job controller's decisions, with explicit times (no clock, no Wasm).

use super::*;
use crate::api::defaults::default_job;
use crate::api::types::JobSpec;
use crate::controller::backoff::BackoffRecord;

fn at(secs: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_secs(secs)
}

fn job(f: impl FnOnce(&mut JobSpec)) -> Job {
    let mut j = Job {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        metadata: Default::default(),
        spec: JobSpec::default(),
        status: Default::default(),
        other: Default::default(),
    };
    std::sync::Arc::make_mut(&mut j.spec.template.spec).restart_policy = Some("Never".into());
    f(&mut j.spec);
    default_job(&mut j);
    j
}

fn pods(n: usize) -> Vec<ActivePod> {
    (0..n)
        .map(|i| ActivePod {
            id: i,
            restart_count: 0,
            ready: true,
            terminating: false,
            index: None,
        })
        .collect()
}

fn obs<'a>(active: &'a [ActivePod], tally: &'a Tally) -> Observed<'a> {
    Observed::new(active, tally)
}

fn tally(succeeded: i32, failed: i32) -> Tally {
    Tally {
        succeeded,
        failed,
        ..Tally::default()
    }
}

fn types(status: &JobStatus) -> Vec<(&str, &str)> {
    status
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.reason.as_str()))
        .collect()
}

const NO_BACKOFF: BackoffPolicy = BackoffPolicy {
    base: Duration::ZERO,
    max: Duration::ZERO,
};

#[test]
fn creates_up_to_parallelism_and_never_more_than_remaining_completions() {
    // (completions, parallelism, active, succeeded) → pods to create
    let cases = [
        (Some(1), Some(1), 0, 0, 1),
        (Some(4), Some(2), 0, 0, 2),
        (Some(4), Some(2), 1, 0, 1),
        (Some(4), Some(2), 1, 2, 1),
        (Some(4), Some(2), 1, 3, 0),
        (Some(4), Some(2), 0, 3, 1),
        (Some(4), Some(10), 0, 1, 3),
        (Some(5), Some(0), 0, 0, 0), // parallelism 0 pauses
        (None, Some(3), 0, 0, 3),    // work queue
        (None, Some(3), 1, 1, 0),    // work queue after a success: no new pods
        (Some(0), Some(1), 0, 0, 0),
    ];
    for (c, p, active, succeeded, want) in cases {
        let j = job(|s| {
            s.completions = c;
            s.parallelism = p;
        });
        let act = pods(active);
        let plan = reconcile(&j, &obs(&act, &tally(succeeded, 0)), at(0), &NO_BACKOFF);
        assert_eq!(plan.create, want, "{c:?} {p:?} {active} {succeeded}");
        assert!(plan.delete.is_empty());
        assert_eq!(plan.status.start_time, Some(at(0)));
    }
}

#[test]
fn a_wide_job_creates_pods_in_batches_and_comes_back_for_the_rest() {
    let j = job(|s| {
        s.completions = Some(1200);
        s.parallelism = Some(1200);
    });
    let batch = MAX_POD_CREATE_PER_SYNC as usize;
    // (active already, pods created now, whether the pass comes back at once)
    for (active, want, again) in [
        (0, batch, true),
        (batch, batch, true),
        (2 * batch, 200, false),
    ] {
        let act = pods(active);
        let plan = reconcile(&j, &obs(&act, &tally(0, 0)), at(0), &NO_BACKOFF);
        assert_eq!(plan.create as usize, want, "{active} active");
        assert_eq!(plan.status.active as usize, active + want);
        assert_eq!(
            plan.requeue_after == Some(Duration::ZERO),
            again,
            "{active} active"
        );
    }
    // Indexed: the lowest indexes, in batches too.
    let j = job(|s| {
        s.completions = Some(1200);
        s.parallelism = Some(1200);
        s.completion_mode = Some("Indexed".into());
    });
    let t = Tally::new(&j.spec);
    let plan = reconcile(&j, &obs(&[], &t), at(0), &NO_BACKOFF);
    assert_eq!(plan.indexes, (0..500).collect::<Vec<i32>>());
    assert_eq!(plan.requeue_after, Some(Duration::ZERO));
}

#[test]
fn shrinking_parallelism_stops_pods_not_yet_running_then_the_newest() {
    let j = job(|s| {
        s.completions = Some(10);
        s.parallelism = Some(2);
    });
    // In no particular order, as the host keeps them.
    let mut act = pods(5);
    act.reverse();
    for p in &mut act {
        p.ready = p.id != 1;
    }
    let plan = reconcile(&j, &obs(&act, &tally(0, 0)), at(0), &NO_BACKOFF);
    assert_eq!(plan.delete, vec![1, 4, 3]);
    assert_eq!(plan.delete_reason, "Scaled down");
    assert_eq!((plan.status.active, plan.status.terminating), (2, 3));
}

#[test]
fn completes_with_success_criteria_then_complete() {
    let mut j = job(|s| s.completions = Some(2));
    let plan = reconcile(&j, &obs(&[], &tally(2, 1)), at(7), &NO_BACKOFF);
    assert_eq!(
        types(&plan.status),
        [
            ("SuccessCriteriaMet", "CompletionsReached"),
            ("Complete", "CompletionsReached")
        ]
    );
    assert_eq!(plan.status.completion_time, Some(at(7)));
    assert_eq!((plan.status.succeeded, plan.status.failed), (2, 1));
    assert_eq!(plan.notes[0].reason, "Completed");
    // A finished Job is left alone.
    j.status = plan.status;
    let again = reconcile(&j, &obs(&[], &tally(2, 1)), at(9), &NO_BACKOFF);
    assert_eq!(again.create, 0);
    assert_eq!(again.status.conditions.len(), 2);
}

#[test]
fn work_queue_completes_when_all_pods_ended_after_a_success() {
    let j = job(|s| s.parallelism = Some(2));
    let one = pods(1);
    let waiting = reconcile(&j, &obs(&one, &tally(1, 0)), at(1), &NO_BACKOFF);
    assert!(waiting.status.conditions.is_empty());
    assert_eq!(waiting.create, 0);
    let done = reconcile(&j, &obs(&[], &tally(2, 0)), at(2), &NO_BACKOFF);
    assert_eq!(
        types(&done.status).last(),
        Some(&("Complete", "CompletionsReached"))
    );
}

#[test]
fn backoff_limit_counts_failed_pods_with_restart_policy_never() {
    let j = job(|s| s.backoff_limit = Some(4));
    let plan = reconcile(&j, &obs(&[], &tally(0, 4)), at(0), &NO_BACKOFF);
    assert!(plan.status.conditions.is_empty());
    assert_eq!(plan.create, 1);
    let plan = reconcile(&j, &obs(&[], &tally(0, 5)), at(0), &NO_BACKOFF);
    assert_eq!(
        types(&plan.status),
        [
            ("FailureTarget", "BackoffLimitExceeded"),
            ("Failed", "BackoffLimitExceeded")
        ]
    );
    assert_eq!(
        plan.status.conditions[1].message,
        "Job has reached the specified backoff limit"
    );
    assert_eq!(plan.status.completion_time, None);
    assert_eq!(plan.create, 0);
}

#[test]
fn failing_job_terminates_active_pods_before_the_failed_condition() {
    let mut j = job(|s| {
        s.parallelism = Some(3);
        s.completions = Some(3);
        s.backoff_limit = Some(0);
    });
    let act = pods(2);
    let plan = reconcile(&j, &obs(&act, &tally(0, 1)), at(3), &NO_BACKOFF);
    assert_eq!(plan.delete, [0, 1]);
    assert_eq!(plan.delete_reason, "BackoffLimitExceeded");
    assert_eq!(
        types(&plan.status),
        [("FailureTarget", "BackoffLimitExceeded")]
    );
    assert_eq!((plan.status.active, plan.status.terminating), (0, 2));
    // Next pass: the two pods are gone (counted as failed) → Failed.
    j.status = plan.status;
    let plan = reconcile(&j, &obs(&[], &tally(0, 3)), at(4), &NO_BACKOFF);
    assert_eq!(
        types(&plan.status),
        [
            ("FailureTarget", "BackoffLimitExceeded"),
            ("Failed", "BackoffLimitExceeded")
        ]
    );
    assert_eq!(plan.status.failed, 3);
}

#[test]
fn on_failure_counts_restarts_of_running_pods() {
    // (backoffLimit, restarts) → fails?
    for (limit, restarts, fails) in [
        (4, 3, false),
        (4, 4, true),
        (0, 0, false),
        (0, 1, true),
        (1, 1, true),
    ] {
        let j = job(|s| {
            s.backoff_limit = Some(limit);
            std::sync::Arc::make_mut(&mut s.template.spec).restart_policy =
                Some("OnFailure".into());
        });
        let mut act = pods(1);
        act[0].restart_count = restarts;
        let plan = reconcile(&j, &obs(&act, &tally(0, 0)), at(0), &NO_BACKOFF);
        let failed = plan.status.condition("FailureTarget").is_some();
        assert_eq!(failed, fails, "limit {limit} restarts {restarts}");
        assert_eq!(plan.delete.len(), usize::from(fails));
    }
}

#[test]
fn deadline_fails_the_job_and_is_requeued_until_then() {
    let mut j = job(|s| s.active_deadline_seconds = Some(100));
    j.status.start_time = Some(at(0));
    let act = pods(1);
    let early = reconcile(&j, &obs(&act, &tally(0, 0)), at(40), &NO_BACKOFF);
    assert_eq!(early.requeue_after, Some(Duration::from_secs(60)));
    assert!(early.delete.is_empty());
    let late = reconcile(&j, &obs(&act, &tally(0, 0)), at(100), &NO_BACKOFF);
    assert_eq!(late.delete, [0]);
    assert_eq!(late.delete_reason, "DeadlineExceeded");
    assert_eq!(types(&late.status), [("FailureTarget", "DeadlineExceeded")]);
    assert_eq!(
        late.status.conditions[0].message,
        "Job was active longer than specified deadline"
    );
}

#[test]
fn replacement_pods_wait_for_exponential_backoff() {
    let j = job(|s| s.backoff_limit = Some(6));
    let policy = BackoffPolicy::default();
    let mut record = BackoffRecord::default();
    record.failed(at(0));
    record.failed(at(10));
    let t = Tally {
        backoff: record,
        ..tally(0, 2)
    };
    let o = obs(&[], &t);
    let wait = reconcile(&j, &o, at(15), &policy);
    assert_eq!(wait.create, 0);
    assert_eq!(wait.requeue_after, Some(Duration::from_secs(15)));
    let go = reconcile(&j, &o, at(30), &policy);
    assert_eq!(go.create, 1);
}

#[test]
fn start_time_is_kept_once_set() {
    let mut j = job(|_| {});
    j.status.start_time = Some(at(5));
    let plan = reconcile(&j, &obs(&[], &tally(0, 0)), at(50), &NO_BACKOFF);
    assert_eq!(plan.status.start_time, Some(at(5)));
}

#[test]
fn indexed_jobs_create_the_lowest_missing_indexes_and_report_them() {
    let j = job(|s| {
        s.completions = Some(5);
        s.parallelism = Some(2);
        s.completion_mode = Some("Indexed".into());
    });
    let mut done = crate::controller::indexes::Indexes::new();
    done.insert(0);
    done.insert(2);
    let mut running = pods(1);
    running[0].index = Some(1);
    let t = Tally {
        succeeded_indexes: Some(done.clone()),
        ..tally(2, 0)
    };
    let o = obs(&running, &t);
    let plan = reconcile(&j, &o, at(0), &NO_BACKOFF);
    assert_eq!((plan.create, plan.indexes.clone()), (1, vec![3]));
    assert_eq!(plan.status.completed_indexes.as_deref(), Some("0,2"));
    assert_eq!(plan.status.active, 2);

    for i in [1, 3, 4] {
        done.insert(i);
    }
    let t = Tally {
        succeeded_indexes: Some(done),
        ..tally(5, 0)
    };
    let o = obs(&[], &t);
    let plan = reconcile(&j, &o, at(0), &NO_BACKOFF);
    assert_eq!(plan.status.completed_indexes.as_deref(), Some("0-4"));
    assert_eq!(types(&plan.status).last().map(|t| t.0), Some("Complete"));
}

#[test]
fn suspending_stops_pods_without_failures_and_resuming_resets_start_time() {
    let mut j = job(|s| {
        s.completions = Some(2);
        s.parallelism = Some(2);
        s.active_deadline_seconds = Some(10);
    });
    j.status.start_time = Some(at(0));
    j.spec.suspend = Some(true);
    let running = pods(2);
    let plan = reconcile(&j, &obs(&running, &tally(0, 0)), at(100), &NO_BACKOFF);
    assert_eq!(plan.delete.len(), 2);
    assert_eq!(plan.delete_reason, REASON_SUSPENDED);
    assert_eq!(plan.create, 0);
    assert!(types(&plan.status).contains(&("Suspended", "JobSuspended")));
    assert!(plan.notes.iter().any(|n| n.reason == "Suspended"));
    assert!(
        !types(&plan.status).iter().any(|t| t.0 == "FailureTarget"),
        "no deadline while suspended"
    );

    j.status = plan.status;
    j.spec.suspend = Some(false);
    let plan = reconcile(&j, &obs(&[], &tally(0, 0)), at(200), &NO_BACKOFF);
    let cond = plan.status.condition("Suspended").unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "JobResumed")
    );
    assert_eq!(
        plan.status.start_time,
        Some(at(200)),
        "the deadline counts from the resume"
    );
    assert_eq!(plan.create, 2);
    assert!(plan.notes.iter().any(|n| n.reason == "Resumed"));
}

#[test]
fn a_job_created_suspended_starts_nothing_and_has_no_start_time() {
    let j = job(|s| s.suspend = Some(true));
    let plan = reconcile(&j, &obs(&[], &tally(0, 0)), at(5), &NO_BACKOFF);
    assert_eq!((plan.create, plan.status.start_time), (0, None));
    assert!(types(&plan.status).contains(&("Suspended", "JobSuspended")));
}

#[test]
fn replacement_waits_for_terminating_pods_only_with_policy_failed() {
    let mut deleted = pods(1);
    deleted[0].terminating = true;
    for (policy, create) in [("TerminatingOrFailed", 1), ("Failed", 0)] {
        let j = job(|s| s.pod_replacement_policy = Some(policy.into()));
        let plan = reconcile(&j, &obs(&deleted, &tally(0, 0)), at(0), &NO_BACKOFF);
        assert_eq!(plan.create, create, "{policy}");
        assert_eq!(plan.status.terminating, 1);
    }
}

#[test]
fn a_fail_job_match_fails_before_the_backoff_limit() {
    let j = job(|s| s.backoff_limit = Some(0));
    let t = Tally {
        fail_job: Some("Container main for pod default/p failed with exit code 42".into()),
        ..tally(0, 1)
    };
    let plan = reconcile(&j, &obs(&[], &t), at(0), &NO_BACKOFF);
    assert_eq!(
        types(&plan.status),
        [
            ("FailureTarget", "PodFailurePolicy"),
            ("Failed", "PodFailurePolicy")
        ]
    );
    assert_eq!(
        plan.status.conditions[1].message,
        "Container main for pod default/p failed with exit code 42"
    );
}

#[test]
fn failed_indexes_are_not_retried_and_back_off_per_index() {
    let j = job(|s| {
        s.completions = Some(4);
        s.parallelism = Some(4);
        s.completion_mode = Some("Indexed".into());
        s.backoff_limit_per_index = Some(1);
    });
    let mut t = Tally::new(&j.spec);
    t.failed_indexes.as_mut().unwrap().insert(0);
    let mut record = crate::controller::tally::IndexRecord {
        failed: 1,
        ..Default::default()
    };
    record.backoff.failed(at(0));
    t.indexes.insert(1, record);
    let policy = BackoffPolicy::default();
    // Index 0 failed for good, index 1 backs off for 10 s, 2 and 3 start now.
    let plan = reconcile(&j, &obs(&[], &t), at(4), &policy);
    assert_eq!(plan.indexes, [2, 3]);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(6)));
    assert_eq!(plan.status.failed_indexes.as_deref(), Some("0"));
    let later = reconcile(&j, &obs(&[], &t), at(10), &policy);
    assert_eq!(later.indexes, [1, 2, 3]);
}
