//! Validation of defaulted Jobs, following pkg/apis/batch/validation and core/validation:
//! every error at once, each with its field path. Pure: no file system access here.

use std::collections::BTreeSet;

use super::field::{ErrorList, FieldError, Path};
use super::job_rules;
use super::names::{
    DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG, ENV_VAR_NAME_MSG, LABEL_VALUE_MSG,
    is_dns1123_label_shape, is_dns1123_subdomain_shape, is_env_var_name, is_label_value,
    label_key_error,
};
use super::quantity;
use super::types::{Container, Extra, Job, JobSpec, ObjectMeta, PodSpec, StringMap, Volume};

/// Fields Kubernetes defines that have no meaning for a Wasm pod and are accepted as no-ops.
const HARMLESS_POD_FIELDS: &[&str] = &["dnsPolicy", "schedulerName", "enableServiceLinks"];
const HARMLESS_CONTAINER_FIELDS: &[&str] = &["terminationMessagePath", "terminationMessagePolicy"];
const HARMLESS_META_FIELDS: &[&str] = &["resourceVersion", "generation", "managedFields"];

/// Validates a Job after [`super::defaults::default_job`].
pub fn validate_job(job: &Job) -> ErrorList {
    let mut errs = ErrorList::new();
    let meta = Path::new("metadata");
    if job.api_version != "batch/v1" {
        errs.push(FieldError::not_supported(
            &Path::new("apiVersion"),
            job.api_version.as_str(),
            &["batch/v1"],
        ));
    }
    validate_meta(&job.metadata, &meta, &[], &mut errs);
    unsupported(&job.other, &Path::new(""), &["status"], &mut errs);
    match job.metadata.name.as_deref() {
        None | Some("") => errs.push(FieldError::required(
            &meta.child("name"),
            "name or generateName is required",
        )),
        Some(name) => {
            if name.len() > 253 || !is_dns1123_subdomain_shape(name) {
                let detail = if name.len() > 253 {
                    "must be no more than 253 characters"
                } else {
                    DNS1123_SUBDOMAIN_MSG
                };
                errs.push(FieldError::invalid(&meta.child("name"), name, detail));
            } else if name.len() > 63 {
                // The name becomes the value of the job-name label.
                errs.push(FieldError::invalid(
                    &meta.child("name"),
                    name,
                    "must be no more than 63 characters",
                ));
            }
        }
    }
    if job.metadata.generate_name.is_some() {
        errs.push(FieldError::forbidden(
            &meta.child("generateName"),
            "not supported by wasmjob: give the Job a name",
        ));
    }
    job_rules::validate_selector(job, &mut errs);
    validate_spec(&job.spec, &Path::new("spec"), &mut errs);
    // An Indexed Job's pods are also named `<job>-<index>`, a DNS label (their hostname).
    if job.spec.completion_mode.as_deref() == Some("Indexed")
        && let (Some(name), Some(c)) = (job.metadata.name.as_deref(), job.spec.completions)
        && c > 0
    {
        let host = format!("{name}-{}", c - 1);
        if host.len() > 63 || !is_dns1123_label_shape(&host) {
            errs.push(FieldError::invalid(
                &meta.child("name"),
                name,
                format!("will not able to create pod with invalid DNS label: {host}"),
            ));
        }
    }
    errs
}

pub(crate) fn validate_meta(meta: &ObjectMeta, path: &Path, allow: &[&str], errs: &mut ErrorList) {
    if let Some(ns) = &meta.namespace
        && (ns.len() > 63 || !is_dns1123_label_shape(ns))
    {
        errs.push(FieldError::invalid(
            &path.child("namespace"),
            &**ns,
            DNS1123_LABEL_MSG,
        ));
    }
    validate_labels(&meta.labels, &path.child("labels"), errs);
    for key in meta.annotations.keys() {
        if let Some(msg) = label_key_error(key) {
            errs.push(FieldError::invalid(
                &path.child("annotations"),
                key.as_str(),
                msg,
            ));
        }
    }
    let mut allowed = HARMLESS_META_FIELDS.to_vec();
    allowed.extend_from_slice(allow);
    unsupported(&meta.other, path, &allowed, errs);
}

fn validate_labels(labels: &StringMap, path: &Path, errs: &mut ErrorList) {
    for (k, v) in labels {
        if let Some(msg) = label_key_error(k) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        if !is_label_value(v) {
            let msg = if v.len() > 63 {
                "must be no more than 63 characters"
            } else {
                LABEL_VALUE_MSG
            };
            errs.push(FieldError::invalid(&path.key(k), v.as_str(), msg));
        }
    }
}

/// Reports each field wasmjob does not understand, so none is silently ignored.
pub(crate) fn unsupported(other: &Extra, path: &Path, harmless: &[&str], errs: &mut ErrorList) {
    for key in other.keys() {
        if !harmless.contains(&key.as_str()) {
            errs.push(FieldError::forbidden(
                &path.child(key),
                "not supported by wasmjob",
            ));
        }
    }
}

pub(crate) fn non_negative(v: Option<i64>, path: &Path, errs: &mut ErrorList) {
    if let Some(v) = v
        && v < 0
    {
        errs.push(FieldError::invalid(
            path,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

pub(crate) fn validate_spec(spec: &JobSpec, path: &Path, errs: &mut ErrorList) {
    non_negative(
        spec.parallelism.map(i64::from),
        &path.child("parallelism"),
        errs,
    );
    non_negative(
        spec.completions.map(i64::from),
        &path.child("completions"),
        errs,
    );
    non_negative(
        spec.backoff_limit.map(i64::from),
        &path.child("backoffLimit"),
        errs,
    );
    non_negative(
        spec.ttl_seconds_after_finished.map(i64::from),
        &path.child("ttlSecondsAfterFinished"),
        errs,
    );
    if let Some(ads) = spec.active_deadline_seconds
        && ads <= 0
    {
        errs.push(FieldError::invalid(
            &path.child("activeDeadlineSeconds"),
            ads,
            "must be greater than or equal to 1",
        ));
    }
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.completions.is_none() {
                errs.push(FieldError::required(
                    &path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        Some(mode) => errs.push(FieldError::not_supported(
            &path.child("completionMode"),
            mode,
            &["NonIndexed", "Indexed"],
        )),
    }
    job_rules::validate_indexed(spec, path, errs);
    if let Some(policy) = &spec.pod_failure_policy {
        job_rules::validate_pod_failure_policy(spec, policy, &path.child("podFailurePolicy"), errs);
    }
    if let Some(policy) = &spec.success_policy {
        job_rules::validate_success_policy(spec, policy, &path.child("successPolicy"), errs);
    }
    job_rules::validate_pod_replacement_policy(spec, path, errs);
    unsupported(&spec.other, path, &[], errs);

    let tmpl = path.child("template");
    validate_meta(
        &spec.template.metadata,
        &tmpl.child("metadata"),
        &["name", "creationTimestamp"],
        errs,
    );
    validate_pod_spec(&spec.template.spec, &tmpl.child("spec"), errs);
    if spec.pod_failure_policy.is_some()
        && let Some(rp @ "OnFailure") = spec.template.spec.restart_policy.as_deref()
    {
        errs.push(FieldError::invalid(
            &tmpl.child("spec").child("restartPolicy"),
            rp,
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
}

fn validate_pod_spec(spec: &PodSpec, path: &Path, errs: &mut ErrorList) {
    let rp = spec.restart_policy.as_deref().unwrap_or("Always");
    if rp != "OnFailure" && rp != "Never" {
        errs.push(FieldError::not_supported(
            &path.child("restartPolicy"),
            rp,
            &["OnFailure", "Never"],
        ));
    }
    unsupported(&spec.other, path, HARMLESS_POD_FIELDS, errs);

    let mut volume_names = BTreeSet::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let vp = path.child("volumes").index(i);
        validate_volume(v, &vp, errs);
        if !volume_names.insert(v.name.as_str()) {
            errs.push(FieldError::duplicate(&vp.child("name"), v.name.as_str()));
        }
    }

    let cp = path.child("containers");
    match spec.containers.as_slice() {
        [] => errs.push(FieldError::required(&cp, "")),
        [c] => validate_container(c, &cp.index(0), &volume_names, errs),
        [_, rest @ ..] => {
            for i in 1..=rest.len() {
                errs.push(FieldError::forbidden(
                    &cp.index(i),
                    "wasmjob runs one container (one Wasm module) per pod",
                ));
            }
        }
    }
}

fn validate_volume(v: &Volume, path: &Path, errs: &mut ErrorList) {
    if v.name.is_empty() {
        errs.push(FieldError::required(&path.child("name"), ""));
    } else if v.name.len() > 63 || !is_dns1123_label_shape(&v.name) {
        errs.push(FieldError::invalid(
            &path.child("name"),
            v.name.as_str(),
            DNS1123_LABEL_MSG,
        ));
    }
    let sources = usize::from(v.empty_dir.is_some()) + usize::from(v.host_path.is_some());
    if !v.other.is_empty() {
        for key in v.other.keys() {
            errs.push(FieldError::forbidden(
                &path.child(key),
                "not supported by wasmjob: use emptyDir or hostPath",
            ));
        }
    } else if sources == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    } else if sources > 1 {
        errs.push(FieldError::forbidden(
            &path.child("hostPath"),
            "may not specify more than 1 volume type",
        ));
    }
    if let Some(ed) = &v.empty_dir {
        let ep = path.child("emptyDir");
        if let Some(m) = ed.medium.as_deref()
            && !matches!(m, "" | "Memory")
        {
            errs.push(FieldError::not_supported(
                &ep.child("medium"),
                m,
                &["", "Memory"],
            ));
        }
        unsupported(&ed.other, &ep, &[], errs);
    }
    if let Some(hp) = &v.host_path {
        let hpp = path.child("hostPath");
        if hp.path.is_empty() {
            errs.push(FieldError::required(&hpp.child("path"), ""));
        } else if hp.path.split(['/', '\\']).any(|seg| seg == "..") {
            errs.push(FieldError::invalid(
                &hpp.child("path"),
                hp.path.as_str(),
                "must not contain '..'",
            ));
        }
        if let Some(t) = hp.type_.as_deref()
            && !matches!(t, "" | "Directory" | "DirectoryOrCreate")
        {
            errs.push(FieldError::not_supported(
                &hpp.child("type"),
                t,
                &["", "Directory", "DirectoryOrCreate"],
            ));
        }
    }
}

fn validate_container(c: &Container, path: &Path, volumes: &BTreeSet<&str>, errs: &mut ErrorList) {
    if c.name.is_empty() {
        errs.push(FieldError::required(&path.child("name"), ""));
    } else if c.name.len() > 63 || !is_dns1123_label_shape(&c.name) {
        errs.push(FieldError::invalid(
            &path.child("name"),
            c.name.as_str(),
            DNS1123_LABEL_MSG,
        ));
    }
    if c.image.trim().is_empty() {
        errs.push(FieldError::required(&path.child("image"), ""));
    }
    unsupported(&c.other, path, HARMLESS_CONTAINER_FIELDS, errs);

    for (i, e) in c.env.iter().enumerate() {
        let ep = path.child("env").index(i);
        if e.name.is_empty() {
            errs.push(FieldError::required(&ep.child("name"), ""));
        } else if !is_env_var_name(&e.name) {
            errs.push(FieldError::invalid(
                &ep.child("name"),
                e.name.as_str(),
                ENV_VAR_NAME_MSG,
            ));
        }
        if let Some(from) = &e.value_from {
            let fp = ep.child("valueFrom");
            if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errs.push(FieldError::invalid(
                    &fp,
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
            unsupported(&from.other, &fp, &[], errs);
            match &from.field_ref {
                Some(fr) if field_ref_key(&fr.field_path).is_none() => {
                    errs.push(FieldError::not_supported(
                        &fp.child("fieldRef").child("fieldPath"),
                        fr.field_path.as_str(),
                        FIELD_REF_PATHS,
                    ));
                }
                Some(_) => {}
                None if from.other.is_empty() => {
                    errs.push(FieldError::invalid(
                        &fp,
                        "",
                        "must specify one of: `fieldRef`",
                    ));
                }
                None => {}
            }
        }
    }

    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let mp = path.child("volumeMounts").index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(&mp.child("name"), ""));
        } else if !volumes.contains(m.name.as_str()) {
            errs.push(FieldError::not_found(&mp.child("name"), m.name.as_str()));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&mp.child("mountPath"), ""));
        } else if !m.mount_path.starts_with('/') {
            errs.push(FieldError::invalid(
                &mp.child("mountPath"),
                m.mount_path.as_str(),
                "must be an absolute path",
            ));
        } else if m.mount_path.split('/').any(|s| s == "..") {
            errs.push(FieldError::invalid(
                &mp.child("mountPath"),
                m.mount_path.as_str(),
                "must not contain '..'",
            ));
        } else if !mount_paths.insert(m.mount_path.trim_end_matches('/')) {
            errs.push(FieldError::invalid(
                &mp.child("mountPath"),
                m.mount_path.as_str(),
                "must be unique",
            ));
        }
        unsupported(&m.other, &mp, &[], errs);
    }

    if let Some(wd) = &c.working_dir {
        let wp = path.child("workingDir");
        let inside_mount = c.volume_mounts.iter().any(|m| {
            let mp = m.mount_path.trim_end_matches('/');
            wd == mp || wd.strip_prefix(mp).is_some_and(|r| r.starts_with('/')) || mp.is_empty()
        });
        if !wd.starts_with('/') || wd.split('/').any(|s| s == "..") {
            errs.push(FieldError::invalid(
                &wp,
                wd.as_str(),
                "must be an absolute path without '..'",
            ));
        } else if !inside_mount {
            errs.push(FieldError::invalid(
                &wp,
                wd.as_str(),
                "must lie inside one of the container's volumeMounts",
            ));
        }
    }

    if let Some(res) = &c.resources {
        let rp = path.child("resources");
        unsupported(&res.other, &rp, &[], errs);
        for (which, map) in [("limits", &res.limits), ("requests", &res.requests)] {
            for (k, q) in map {
                let kp = rp.child(which).key(k);
                let parsed = match k.as_str() {
                    "memory" | "ephemeral-storage" => quantity::parse_bytes(&q.0),
                    "cpu" => quantity::parse_millis(&q.0),
                    _ => {
                        errs.push(FieldError::not_supported(
                            &kp,
                            k.as_str(),
                            &["cpu", "memory"],
                        ));
                        continue;
                    }
                };
                if parsed.is_none() {
                    errs.push(FieldError::invalid(
                        &kp,
                        q.0.as_str(),
                        "must be a valid non-negative quantity, e.g. 64Mi or 500m",
                    ));
                } else if which == "limits" && k == "memory" && parsed == Some(0) {
                    errs.push(FieldError::invalid(
                        &kp,
                        q.0.as_str(),
                        "must be greater than 0",
                    ));
                }
            }
        }
    }
}

/// The `fieldRef.fieldPath`s wasmjob resolves.
pub const FIELD_REF_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels['<KEY>']",
    "metadata.annotations['<KEY>']",
];

/// A parsed `fieldRef.fieldPath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef<'a> {
    /// `metadata.name`
    Name,
    /// `metadata.namespace`
    Namespace,
    /// `metadata.uid`
    Uid,
    /// `metadata.labels['k']`
    Label(&'a str),
    /// `metadata.annotations['k']`
    Annotation(&'a str),
}

/// Parses a supported `fieldRef.fieldPath`.
pub fn field_ref_key(path: &str) -> Option<FieldRef<'_>> {
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
    };
    match path {
        "metadata.name" => Some(FieldRef::Name),
        "metadata.namespace" => Some(FieldRef::Namespace),
        "metadata.uid" => Some(FieldRef::Uid),
        _ => subscript("metadata.labels")
            .map(FieldRef::Label)
            .or_else(|| subscript("metadata.annotations").map(FieldRef::Annotation)),
    }
}

/// `validateScheduleFormat`: the schedule parses as robfig's `ParseStandard` does, and names
/// no time zone (Kubernetes takes that from `timeZone`).
pub fn validate_schedule(schedule: &str, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if let Err(e) = crate::schedule::Schedule::parse_standard(schedule) {
        errs.push(FieldError::invalid(path, schedule, e));
    }
    if schedule.contains("TZ") {
        errs.push(FieldError::invalid(
            path,
            schedule,
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    }
    errs
}

/// `validateTimeZone`: an IANA name the time zone database knows.
pub fn validate_time_zone(tz: Option<&str>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(tz) = tz else { return errs };
    if tz.is_empty() {
        errs.push(FieldError::invalid(
            path,
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return errs;
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    };
    if !tz.split('/').all(part_ok) {
        errs.push(FieldError::invalid(
            path,
            tz,
            format!("unknown time zone {tz}"),
        ));
        return errs;
    }
    if tz.eq_ignore_ascii_case("local") {
        errs.push(FieldError::invalid(
            path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    } else if jiff::tz::TimeZone::get(tz)
        .ok()
        .and_then(|z| z.iana_name().map(|n| n == tz))
        != Some(true)
    {
        // Go's LoadLocation, unlike jiff's lookup, is case-sensitive.
        errs.push(FieldError::invalid(
            path,
            tz,
            format!("unknown time zone {tz}"),
        ));
    }
    errs
}
