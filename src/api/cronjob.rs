//! `batch/v1` CronJob (and the docs' older `batch/v1beta1`): types, Kubernetes' defaults
//! (pkg/apis/batch/v1/defaults.go) and validation (pkg/apis/batch/validation).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::defaults::{DEFAULT_NAMESPACE, default_job_spec};
use super::field::{ErrorList, FieldError, Path, Value};
use super::names::{DNS1123_SUBDOMAIN_MSG, is_dns1123_subdomain_shape};
use super::types::{Extra, JobSpec, ObjectMeta};
use super::validation::{
    non_negative, unsupported, validate_meta, validate_schedule, validate_spec, validate_time_zone,
};

/// A CronJob: Jobs from `jobTemplate` on a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJob {
    /// `batch/v1` (or `batch/v1beta1` in manifests, stored as `batch/v1`).
    pub api_version: String,
    /// `CronJob`.
    pub kind: String,
    /// Name, labels, uid.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Schedule and template.
    #[serde(default)]
    pub spec: CronJobSpec,
    /// What the controller observed.
    #[serde(default)]
    pub status: CronJobStatus,
    /// Other top-level fields.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

impl CronJob {
    /// The name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// The uid, assigned when the host accepts it.
    pub fn uid(&self) -> &str {
        self.metadata.uid.as_deref().unwrap_or("")
    }
}

/// `spec` of a CronJob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpec {
    /// Cron schedule (robfig/cron `ParseStandard`).
    #[serde(default)]
    pub schedule: String,
    /// IANA time zone of the schedule; the host's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// A run later than this many seconds after its scheduled time is skipped (missed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<i64>,
    /// `Allow`, `Forbid` or `Replace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<String>,
    /// No new Jobs while true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// The Jobs to create.
    #[serde(default)]
    pub job_template: JobTemplateSpec,
    /// Finished successful Jobs kept (3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_jobs_history_limit: Option<i32>,
    /// Finished failed Jobs kept (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_jobs_history_limit: Option<i32>,
    /// Fields wasmjob does not support.
    #[serde(flatten, skip_serializing)]
    pub other: Extra,
}

/// `jobTemplate`: the metadata and spec of each Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplateSpec {
    /// Labels and annotations of the Jobs.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The Jobs' spec.
    #[serde(default)]
    pub spec: JobSpec,
}

/// `status` of a CronJob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobStatus {
    /// Jobs running now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<ObjectReference>,
    /// The last time a Job was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Timestamp>,
    /// The last time a Job completed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Timestamp>,
}

/// A reference to a Job in `status.active`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// `batch/v1`.
    pub api_version: String,
    /// `Job`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its uid.
    pub uid: String,
}

/// The concurrency policies.
pub const CONCURRENCY_POLICIES: &[&str] = &["Allow", "Forbid", "Replace"];
/// Annotation on each Job: the time it was scheduled for (RFC 3339, in the schedule's zone).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Kubernetes' CronJob defaults.
pub fn default_cronjob(cj: &mut CronJob) {
    if cj.metadata.namespace.is_none() {
        cj.metadata.namespace = Some(DEFAULT_NAMESPACE.into());
    }
    let spec = &mut cj.spec;
    spec.concurrency_policy
        .get_or_insert_with(|| "Allow".into());
    spec.suspend.get_or_insert(false);
    spec.successful_jobs_history_limit.get_or_insert(3);
    spec.failed_jobs_history_limit.get_or_insert(1);
    default_job_spec(&mut spec.job_template.spec);
}

/// Validates a defaulted CronJob, every error at once.
pub fn validate_cronjob(cj: &CronJob) -> ErrorList {
    let mut errs = ErrorList::new();
    let meta = Path::new("metadata");
    validate_meta(&cj.metadata, &meta, &[], &mut errs);
    unsupported(&cj.other, &Path::new(""), &["status"], &mut errs);
    match cj.metadata.name.as_deref() {
        None | Some("") => errs.push(FieldError::required(
            &meta.child("name"),
            "name or generateName is required",
        )),
        Some(name) if !is_dns1123_subdomain_shape(name) => {
            errs.push(FieldError::invalid(
                &meta.child("name"),
                name,
                DNS1123_SUBDOMAIN_MSG,
            ));
        }
        // Job names get an 11-character `-<minutes>` suffix and must stay within 63.
        Some(name) if name.len() > 52 => errs.push(FieldError::invalid(
            &meta.child("name"),
            name,
            "must be no more than 52 characters",
        )),
        Some(_) => {}
    }
    let spec = Path::new("spec");
    let s = &cj.spec;
    if s.schedule.is_empty() {
        errs.push(FieldError::required(&spec.child("schedule"), ""));
    } else {
        errs.extend(validate_schedule(&s.schedule, &spec.child("schedule")));
    }
    errs.extend(validate_time_zone(
        s.time_zone.as_deref(),
        &spec.child("timeZone"),
    ));
    if let Some(p) = s.concurrency_policy.as_deref()
        && !CONCURRENCY_POLICIES.contains(&p)
    {
        errs.push(FieldError::not_supported(
            &spec.child("concurrencyPolicy"),
            p,
            CONCURRENCY_POLICIES,
        ));
    }
    non_negative(
        s.starting_deadline_seconds,
        &spec.child("startingDeadlineSeconds"),
        &mut errs,
    );
    non_negative(
        s.successful_jobs_history_limit.map(i64::from),
        &spec.child("successfulJobsHistoryLimit"),
        &mut errs,
    );
    non_negative(
        s.failed_jobs_history_limit.map(i64::from),
        &spec.child("failedJobsHistoryLimit"),
        &mut errs,
    );
    unsupported(&s.other, &spec, &[], &mut errs);
    let tmpl = spec.child("jobTemplate");
    validate_meta(
        &s.job_template.metadata,
        &tmpl.child("metadata"),
        &[],
        &mut errs,
    );
    let js = &s.job_template.spec;
    validate_spec(js, &tmpl.child("spec"), &mut errs);
    // validateJobTemplateSpec: a CronJob's Jobs always get generated selectors.
    if js.manual_selector == Some(true) {
        errs.push(FieldError::not_supported(
            &tmpl.child("spec").child("manualSelector"),
            Value::Raw("true".into()),
            &["nil", "false"],
        ));
    }
    if js.selector.is_some() {
        errs.push(FieldError::forbidden(
            &tmpl.child("spec").child("selector"),
            "not supported by wasmjob: a CronJob's Jobs get selectors generated from their uids",
        ));
    }
    errs
}
