//! Kubernetes' defaulting for Jobs (pkg/apis/batch/v1/defaults.go), and the labels and
//! selector the API server adds when it accepts a Job.

use std::sync::Arc;

use super::types::{Job, LabelSelector, OwnerReference};

/// Namespace of objects that name none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Default `spec.backoffLimit`.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;

/// Label carrying the Job's uid (and its legacy short form).
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// Legacy form of [`CONTROLLER_UID_LABEL`].
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
/// Label carrying the Job's name (and its legacy short form).
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// Annotation and label with an Indexed Job's pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Legacy form of [`JOB_NAME_LABEL`].
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";

/// Fills in the defaults Kubernetes applies to a Job before validation.
pub fn default_job(job: &mut Job) {
    if job.metadata.namespace.is_none() {
        job.metadata.namespace = Some(DEFAULT_NAMESPACE.into());
    }
    default_job_spec(&mut job.spec);
    if job.metadata.labels.is_empty() {
        job.metadata.labels = job.spec.template.metadata.labels.clone();
    }
}

/// The defaults of a Job's spec (also a CronJob's `jobTemplate.spec`).
pub fn default_job_spec(spec: &mut super::types::JobSpec) {
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
        spec.parallelism = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    // With a per-index limit, the Job-wide one is off unless set.
    spec.backoff_limit
        .get_or_insert(if spec.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            DEFAULT_BACKOFF_LIMIT
        });
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    spec.manual_selector.get_or_insert(false);
    let replacement = if spec.pod_failure_policy.is_some() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    spec.pod_replacement_policy
        .get_or_insert_with(|| replacement.into());
    if let Some(policy) = &mut spec.pod_failure_policy {
        for pattern in policy
            .rules
            .iter_mut()
            .flat_map(|r| &mut r.on_pod_conditions)
        {
            if pattern.status.as_deref().is_none_or(str::is_empty) {
                pattern.status = Some("True".into());
            }
        }
    }
    if spec.template.spec.restart_policy.is_none() {
        // Pods default to Always, which validation then rejects for Jobs, as Kubernetes does.
        std::sync::Arc::make_mut(&mut spec.template.spec).restart_policy = Some("Always".into());
    }
}

/// What the API server adds when it creates a Job: uid, creation time and, unless the
/// manifest asks for a manual selector, the generated selector and the pod template labels
/// that match it (`generateSelector`).
pub fn admit_job(job: &mut Job, uid: String, now: jiff::Timestamp) {
    if job.spec.manual_selector != Some(true) {
        let name = job.name().to_string();
        let labels = Arc::make_mut(&mut job.spec.template.metadata.labels);
        for (k, v) in [
            (LEGACY_JOB_NAME_LABEL, &name),
            (JOB_NAME_LABEL, &name),
            (LEGACY_CONTROLLER_UID_LABEL, &uid),
            (CONTROLLER_UID_LABEL, &uid),
        ] {
            labels.entry(k.into()).or_insert_with(|| v.clone());
        }
        job.spec
            .selector
            .get_or_insert_with(LabelSelector::default)
            .match_labels
            .entry(CONTROLLER_UID_LABEL.into())
            .or_insert_with(|| uid.clone());
    }
    // Defaulting copies the template's labels to a Job that has none, as the API server
    // does when it reads the admitted Job back.
    if job.metadata.labels.is_empty() {
        job.metadata.labels = job.spec.template.metadata.labels.clone();
    }
    job.metadata.uid = Some(uid);
    job.metadata.creation_timestamp = Some(now);
}

/// The owner reference a Job's pods carry.
pub fn owner_reference(job: &Job) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.name().into(),
        uid: job.uid().into(),
        controller: true,
        block_owner_deletion: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::JobSpec;

    fn job(spec: JobSpec) -> Job {
        Job {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            metadata: Default::default(),
            spec,
            status: Default::default(),
            other: Default::default(),
        }
    }

    #[test]
    fn defaults_follow_kubernetes() {
        // (completions, parallelism) in → out
        let cases = [
            ((None, None), (Some(1), Some(1))),
            ((Some(5), None), (Some(5), Some(1))),
            ((None, Some(2)), (None, Some(2))), // work queue: completions stay unset
            ((Some(4), Some(2)), (Some(4), Some(2))),
        ];
        for ((c, p), (wc, wp)) in cases {
            let mut j = job(JobSpec {
                completions: c,
                parallelism: p,
                ..Default::default()
            });
            default_job(&mut j);
            assert_eq!((j.spec.completions, j.spec.parallelism), (wc, wp));
            assert_eq!(j.spec.backoff_limit, Some(6));
            assert_eq!(j.metadata.namespace.as_deref(), Some("default"));
            assert_eq!(
                j.spec.template.spec.restart_policy.as_deref(),
                Some("Always")
            );
        }
    }

    #[test]
    fn admission_adds_selector_and_labels() {
        let mut j = job(JobSpec::default());
        j.metadata.name = Some("pi".into());
        admit_job(&mut j, "u-1".into(), jiff::Timestamp::UNIX_EPOCH);
        let labels = &j.spec.template.metadata.labels;
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
        let sel = j.spec.selector.unwrap();
        assert_eq!(
            sel.match_labels["batch.kubernetes.io/controller-uid"],
            "u-1"
        );
    }
}
