//! What the Job controller keeps of a Job's finished pods: counters folded in once per pod as
//! it finishes (Kubernetes does it with its tracking finalizer), after the pod failure
//! policy and per-index back-off have had their say. Resuming folds the stored pods again in
//! the order they finished, so a fresh host arrives at the same tally.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::backoff::BackoffRecord;
use super::indexes::Indexes;
use super::pod_failure::{Action, match_policy};
use crate::api::defaults::COMPLETION_INDEX;
use crate::api::types::{JobSpec, Pod};

/// Annotation of an Indexed Job's pod with `backoffLimitPerIndex`: the failures its index
/// had before the pod was created.
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// Like [`INDEX_FAILURE_COUNT`], for failures the pod failure policy ignored.
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";
/// Pod reason of pods stopped because their Job was suspended; they are not failures.
pub const REASON_SUSPENDED: &str = "JobSuspended";
/// Pod reason of pods stopped because their Job succeeded (a success policy matched); they
/// are not failures either.
pub const REASON_JOB_SUCCEEDED: &str = "SuccessCriteriaMet";

/// Failures of one index of a Job with `backoffLimitPerIndex`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexRecord {
    /// Failures counted against `backoffLimitPerIndex`.
    pub failed: i32,
    /// Failures the pod failure policy ignored.
    pub ignored: i32,
    /// Back-off before the index's next pod (every failure counts here).
    pub backoff: BackoffRecord,
}

/// A Job's finished pods, folded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Pods that succeeded.
    pub succeeded: i32,
    /// Pods that failed, except those the pod failure policy ignored.
    pub failed: i32,
    /// Failures since the last success, for the Job-wide back-off.
    pub backoff: BackoffRecord,
    /// Indexes with a successful pod (Indexed Jobs).
    pub succeeded_indexes: Option<Indexes>,
    /// Indexes that failed for good (Indexed Jobs with `backoffLimitPerIndex`).
    pub failed_indexes: Option<Indexes>,
    /// Per-index failures (with `backoffLimitPerIndex`).
    pub indexes: BTreeMap<i32, IndexRecord>,
    /// The message of the first pod that matched a `FailJob` rule.
    pub fail_job: Option<String>,
}

impl Tally {
    /// The tally of a Job with no finished pods.
    pub fn new(spec: &JobSpec) -> Self {
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        Tally {
            succeeded_indexes: indexed.then(Indexes::new),
            failed_indexes: (indexed && spec.backoff_limit_per_index.is_some()).then(Indexes::new),
            ..Tally::default()
        }
    }

    /// Folds in a pod that succeeded, of completion index `index` if it has one.
    pub fn pod_succeeded(&mut self, index: Option<i32>) {
        self.succeeded += 1;
        self.backoff.succeeded();
        if let (Some(done), Some(i)) = (self.succeeded_indexes.as_mut(), index) {
            done.insert(i);
        }
    }

    /// Folds in `pod`, which just finished at `at`.
    pub fn finished(&mut self, spec: &JobSpec, pod: &Pod, at: Timestamp) {
        if matches!(
            pod.status.reason.as_deref(),
            Some(REASON_SUSPENDED | REASON_JOB_SUCCEEDED)
        ) {
            return;
        }
        let index = completion_index(pod);
        if pod.status.phase == "Succeeded" {
            self.pod_succeeded(index);
            return;
        }
        if pod
            .status
            .reason
            .as_deref()
            .is_some_and(|r| super::job::FAILURE_REASONS.contains(&r))
        {
            // Stopped because the Job failed: a failure, but not one the policy or the
            // per-index limits judge (Kubernetes counts such pods while they still run).
            self.failed += 1;
            self.backoff.failed(at);
            return;
        }
        let matched = spec
            .pod_failure_policy
            .as_ref()
            .and_then(|p| match_policy(p, pod));
        let action = matched.as_ref().map_or(Action::Count, |m| m.0);
        let per_index = spec
            .backoff_limit_per_index
            .zip(self.failed_indexes.as_mut())
            .zip(index);
        // Every failure lengthens the back-off, even one the policy ignores.
        self.backoff.failed(at);
        if action == Action::Ignore {
            if let Some(((_, _), i)) = per_index {
                let record = self.indexes.entry(i).or_default();
                record.ignored += 1;
                record.backoff.failed(at);
            }
            return;
        }
        self.failed += 1;
        if let (Action::FailJob, Some((_, message))) = (action, matched) {
            self.fail_job.get_or_insert(message);
        }
        if let Some(((limit, failed), i)) = per_index {
            let record = self.indexes.entry(i).or_default();
            record.failed += 1;
            record.backoff.failed(at);
            if action == Action::FailIndex || record.failed > limit {
                failed.insert(i);
            }
        }
    }

    /// `status.succeeded`: successful pods, or an Indexed Job's completed indexes.
    pub fn succeeded(&self, completions: Option<i32>) -> i32 {
        match (&self.succeeded_indexes, completions) {
            (Some(done), Some(c)) => done.count_below(c),
            _ => self.succeeded,
        }
    }

    /// Annotations a new pod of index `i` carries with `backoffLimitPerIndex`.
    pub fn index_annotations(&self, i: i32) -> Vec<(&'static str, String)> {
        let record = self.indexes.get(&i).copied().unwrap_or_default();
        let mut notes = vec![(INDEX_FAILURE_COUNT, record.failed.to_string())];
        if record.ignored > 0 {
            notes.push((INDEX_IGNORED_FAILURE_COUNT, record.ignored.to_string()));
        }
        notes
    }
}

/// The completion index of a pod of an Indexed Job.
pub fn completion_index(pod: &Pod) -> Option<i32> {
    pod.metadata.annotations.get(COMPLETION_INDEX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{PodFailurePolicy, PodFailurePolicyOnExitCodes, PodFailurePolicyRule};

    fn failed_pod(index: i32, exit_code: i32) -> Pod {
        let mut pod = super::super::pod_failure::tests::pod(exit_code, &[]);
        std::sync::Arc::make_mut(&mut pod.metadata.annotations)
            .insert(COMPLETION_INDEX.into(), index.to_string());
        pod
    }

    fn rule(action: &str, code: i32) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodes {
                container_name: None,
                operator: "In".into(),
                values: vec![code],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn policy_actions_decide_what_a_failure_counts_for() {
        let spec = JobSpec {
            completions: Some(3),
            completion_mode: Some("Indexed".into()),
            backoff_limit_per_index: Some(1),
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![rule("Ignore", 3), rule("FailIndex", 4), rule("FailJob", 5)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let t0 = Timestamp::UNIX_EPOCH;
        let mut t = Tally::new(&spec);
        // Ignored: no failure counted, but the back-off grows and the pod's index remembers.
        t.finished(&spec, &failed_pod(0, 3), t0);
        assert_eq!((t.failed, t.backoff.failures_after_last_success), (0, 1));
        assert_eq!(
            t.index_annotations(0),
            [
                (INDEX_FAILURE_COUNT, "0".into()),
                (INDEX_IGNORED_FAILURE_COUNT, "1".into())
            ]
        );
        // Counted twice: past backoffLimitPerIndex 1, the index fails.
        t.finished(&spec, &failed_pod(0, 1), t0);
        assert!(!t.failed_indexes.as_ref().unwrap().contains(0));
        t.finished(&spec, &failed_pod(0, 1), t0);
        assert!(t.failed_indexes.as_ref().unwrap().contains(0));
        // FailIndex fails the index on its first failure.
        t.finished(&spec, &failed_pod(1, 4), t0);
        assert_eq!(t.failed_indexes.as_ref().unwrap().to_string(), "0,1");
        // FailJob records the message; successes fill completed indexes.
        t.finished(&spec, &failed_pod(2, 5), t0);
        assert!(t.fail_job.as_deref().unwrap().contains("exit code 5"));
        t.finished(&spec, &failed_pod(2, 0), t0);
        assert_eq!((t.failed, t.succeeded(Some(3))), (4, 1));
    }
}
