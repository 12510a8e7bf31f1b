//! Validation of the newer Job fields, in the order and with the messages of kubernetes'
//! `validateJobSpec` (pkg/apis/batch/validation): per-index back-off, `managedBy`, Indexed
//! limits, pod failure policy, success policy, pod replacement policy, and the selector.

use std::collections::BTreeSet;

use super::defaults::{
    CONTROLLER_UID_LABEL, JOB_NAME_LABEL, LEGACY_CONTROLLER_UID_LABEL, LEGACY_JOB_NAME_LABEL,
};
use super::field::{ErrorList, FieldError, Path, Value};
use super::names::{DNS1123_SUBDOMAIN_MSG, is_dns1123_subdomain_shape, label_key_error};
use super::types::{
    Job, JobSpec, LabelSelector, PodFailurePolicy, PodFailurePolicyOnExitCodes,
    PodFailurePolicyOnPodConditionsPattern, StringMap, SuccessPolicy,
};
use super::validation::non_negative;

/// The controller name of Kubernetes' own Job controller, the one wasmjob implements.
pub const JOB_CONTROLLER_NAME: &str = "kubernetes.io/job-controller";

const MAX_PARALLELISM_INDEXED: i32 = 100_000;
const MAX_FAILED_INDEXES: i32 = 100_000;
const COMPLETIONS_SOFT_LIMIT: i32 = 100_000;
const PARALLELISM_LIMIT_HIGH_COMPLETIONS: i32 = 10_000;
const MAX_FAILED_INDEXES_HIGH_COMPLETIONS: i32 = 10_000;
const MAX_POD_FAILURE_POLICY_RULES: usize = 20;
const MAX_EXIT_CODE_VALUES: usize = 255;
const MAX_POD_CONDITION_PATTERNS: usize = 20;
const MAX_MANAGED_BY_LENGTH: usize = 63;
const MAX_SUCCEEDED_INDEXES_LENGTH: usize = 64 * 1024;
const MAX_SUCCESS_POLICY_RULES: usize = 20;
const ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
const OPERATORS: &[&str] = &["In", "NotIn"];
const CONDITION_STATUSES: &[&str] = &["False", "True", "Unknown"];

/// `backoffLimitPerIndex`, `maxFailedIndexes`, `managedBy` and the Indexed limits: the checks
/// `validateJobSpec` makes between `ttlSecondsAfterFinished` and `podFailurePolicy`.
pub(crate) fn validate_indexed(spec: &JobSpec, path: &Path, errs: &mut ErrorList) {
    let per_index = spec.backoff_limit_per_index;
    let max_failed = spec.max_failed_indexes;
    non_negative(
        per_index.map(i64::from),
        &path.child("backoffLimitPerIndex"),
        errs,
    );
    if let Some(m) = max_failed {
        non_negative(Some(m.into()), &path.child("maxFailedIndexes"), errs);
        if per_index.is_none() {
            errs.push(FieldError::required(
                &path.child("backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
    }
    if let Some(by) = &spec.managed_by {
        validate_managed_by(by, &path.child("managedBy"), errs);
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    if !indexed {
        if spec
            .completion_mode
            .as_deref()
            .is_none_or(|m| m == "NonIndexed")
        {
            for (field, v) in [
                ("backoffLimitPerIndex", per_index),
                ("maxFailedIndexes", max_failed),
            ] {
                if let Some(v) = v {
                    errs.push(FieldError::invalid(
                        &path.child(field),
                        v,
                        "requires indexed completion mode",
                    ));
                }
            }
        }
        return;
    }
    if let Some(p) = spec.parallelism.filter(|p| *p > MAX_PARALLELISM_INDEXED) {
        errs.push(FieldError::invalid(
            &path.child("parallelism"),
            p,
            format!(
                "must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"
            ),
        ));
    }
    if let (Some(c), Some(m)) = (spec.completions, max_failed)
        && m > c
    {
        errs.push(FieldError::invalid(
            &path.child("maxFailedIndexes"),
            m,
            "must be less than or equal to completions",
        ));
    }
    if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES) {
        errs.push(FieldError::invalid(
            &path.child("maxFailedIndexes"),
            m,
            format!("must be less than or equal to {MAX_FAILED_INDEXES}"),
        ));
    }
    if spec.completions.is_some_and(|c| c > COMPLETIONS_SOFT_LIMIT) && per_index.is_some() {
        let detail = |limit: i32| {
            format!(
                "must be less than or equal to {limit} when completions are above \
                 {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
            )
        };
        if max_failed.is_none() {
            errs.push(FieldError::required(
                &path.child("maxFailedIndexes"),
                format!("must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"),
            ));
        }
        if let Some(p) = spec
            .parallelism
            .filter(|p| *p > PARALLELISM_LIMIT_HIGH_COMPLETIONS)
        {
            errs.push(FieldError::invalid(
                &path.child("parallelism"),
                p,
                detail(PARALLELISM_LIMIT_HIGH_COMPLETIONS),
            ));
        }
        if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES_HIGH_COMPLETIONS) {
            errs.push(FieldError::invalid(
                &path.child("maxFailedIndexes"),
                m,
                detail(MAX_FAILED_INDEXES_HIGH_COMPLETIONS),
            ));
        }
    }
}

/// `IsDomainPrefixedPath`, then wasmjob's own rule: it is the only controller here, so a Job
/// handed to another one would never run.
fn validate_managed_by(by: &str, path: &Path, errs: &mut ErrorList) {
    if by.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    let before = errs.len();
    match by.split_once('/') {
        Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
            if !is_dns1123_subdomain_shape(host) || host.len() > 253 {
                errs.push(FieldError::invalid(path, host, DNS1123_SUBDOMAIN_MSG));
            }
            let path_ok = rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c));
            if !path_ok {
                errs.push(FieldError::invalid(
                    path,
                    rest,
                    "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
                ));
            }
        }
        _ => errs.push(FieldError::invalid(
            path,
            by,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
    }
    if by.len() > MAX_MANAGED_BY_LENGTH {
        errs.push(FieldError::too_long_detail(
            path,
            format!("may not be longer than {MAX_MANAGED_BY_LENGTH}"),
        ));
    }
    if errs.len() == before && by != JOB_CONTROLLER_NAME {
        errs.push(FieldError::not_supported(path, by, &[JOB_CONTROLLER_NAME]));
    }
}

/// `validatePodFailurePolicy`.
pub(crate) fn validate_pod_failure_policy(
    spec: &JobSpec,
    policy: &PodFailurePolicy,
    path: &Path,
    errs: &mut ErrorList,
) {
    let rules = path.child("rules");
    if policy.rules.len() > MAX_POD_FAILURE_POLICY_RULES {
        errs.push(FieldError::too_many(
            &rules,
            policy.rules.len(),
            MAX_POD_FAILURE_POLICY_RULES,
        ));
    }
    let containers: BTreeSet<&str> = spec
        .template
        .spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for (i, rule) in policy.rules.iter().enumerate() {
        let rp = rules.index(i);
        let action = rp.child("action");
        match rule.action.as_str() {
            "" => errs.push(FieldError::required(
                &action,
                format!("valid values: {}", go_list(ACTIONS)),
            )),
            "FailIndex" if spec.backoff_limit_per_index.is_none() => {
                errs.push(FieldError::invalid(
                    &action,
                    "FailIndex",
                    "requires the backoffLimitPerIndex to be set",
                ));
            }
            a if !ACTIONS.contains(&a) => {
                errs.push(FieldError::not_supported(&action, a, ACTIONS));
            }
            _ => {}
        }
        if let Some(codes) = &rule.on_exit_codes {
            validate_exit_codes(codes, &rp.child("onExitCodes"), &containers, errs);
        }
        if !rule.on_pod_conditions.is_empty() {
            validate_conditions(&rule.on_pod_conditions, &rp.child("onPodConditions"), errs);
        }
        match (
            rule.on_exit_codes.is_some(),
            rule.on_pod_conditions.is_empty(),
        ) {
            (true, false) => errs.push(FieldError::invalid(
                &rp,
                Value::Omit,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (false, true) => errs.push(FieldError::invalid(
                &rp,
                Value::Omit,
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
        super::validation::unsupported(&rule.other, &rp, &[], errs);
    }
    super::validation::unsupported(&policy.other, path, &[], errs);
}

fn validate_exit_codes(
    req: &PodFailurePolicyOnExitCodes,
    path: &Path,
    containers: &BTreeSet<&str>,
    errs: &mut ErrorList,
) {
    let op = path.child("operator");
    match req.operator.as_str() {
        "" => errs.push(FieldError::required(
            &op,
            format!("valid values: {}", go_list(OPERATORS)),
        )),
        o if !OPERATORS.contains(&o) => errs.push(FieldError::not_supported(&op, o, OPERATORS)),
        _ => {}
    }
    if let Some(name) = &req.container_name
        && !containers.contains(name.as_str())
    {
        errs.push(FieldError::invalid(
            &path.child("containerName"),
            name.as_str(),
            "must be one of the container or initContainer names in the pod template",
        ));
    }
    let values = path.child("values");
    let raw = || {
        let list: Vec<String> = req.values.iter().map(i32::to_string).collect();
        Value::Raw(format!("[]int32{{{}}}", list.join(", ")))
    };
    if req.values.is_empty() {
        errs.push(FieldError::invalid(
            &values,
            raw(),
            "at least one value is required",
        ));
    } else if req.values.len() > MAX_EXIT_CODE_VALUES {
        errs.push(FieldError::too_many(
            &values,
            req.values.len(),
            MAX_EXIT_CODE_VALUES,
        ));
    }
    let mut seen = BTreeSet::new();
    for (j, &v) in req.values.iter().enumerate() {
        let vp = values.index(j);
        if req.operator == "In" && v == 0 {
            errs.push(FieldError::invalid(
                &vp,
                v,
                "must not be 0 for the In operator",
            ));
        }
        if !seen.insert(v) {
            errs.push(FieldError::duplicate(&vp, v));
        }
    }
    if req.values.windows(2).any(|w| w[0] > w[1]) {
        errs.push(FieldError::invalid(&values, raw(), "must be ordered"));
    }
}

fn validate_conditions(
    patterns: &[PodFailurePolicyOnPodConditionsPattern],
    path: &Path,
    errs: &mut ErrorList,
) {
    if patterns.len() > MAX_POD_CONDITION_PATTERNS {
        errs.push(FieldError::too_many(
            path,
            patterns.len(),
            MAX_POD_CONDITION_PATTERNS,
        ));
    }
    for (j, p) in patterns.iter().enumerate() {
        let pp = path.index(j);
        if let Some(msg) = label_key_error(&p.type_) {
            errs.push(FieldError::invalid(
                &pp.child("type"),
                p.type_.as_str(),
                msg,
            ));
        }
        let sp = pp.child("status");
        match p.status.as_deref() {
            None | Some("") => errs.push(FieldError::required(
                &sp,
                format!("valid values: {}", go_list(CONDITION_STATUSES)),
            )),
            Some(s) if !CONDITION_STATUSES.contains(&s) => {
                errs.push(FieldError::not_supported(&sp, s, CONDITION_STATUSES));
            }
            Some(_) => {}
        }
    }
}

/// `validateSuccessPolicy` (only for Indexed Jobs; others get one error).
pub(crate) fn validate_success_policy(
    spec: &JobSpec,
    policy: &SuccessPolicy,
    path: &Path,
    errs: &mut ErrorList,
) {
    if spec.completion_mode.as_deref() != Some("Indexed") {
        let shown = serde_json::to_string(policy).unwrap_or_default();
        errs.push(FieldError::invalid(
            path,
            Value::Raw(shown),
            "requires indexed completion mode",
        ));
        return;
    }
    // Kubernetes dereferences completions here; a missing one was reported already.
    let completions = spec.completions.unwrap_or(0);
    let rules = path.child("rules");
    if policy.rules.is_empty() {
        errs.push(FieldError::required(
            &rules,
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if policy.rules.len() > MAX_SUCCESS_POLICY_RULES {
        errs.push(FieldError::too_many(
            &rules,
            policy.rules.len(),
            MAX_SUCCESS_POLICY_RULES,
        ));
    }
    for (i, rule) in policy.rules.iter().enumerate() {
        let rp = rules.index(i);
        if rule.succeeded_count.is_none() && rule.succeeded_indexes.is_none() {
            errs.push(FieldError::required(
                &rp,
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let mut total = 0;
        if let Some(text) = &rule.succeeded_indexes {
            let ip = rp.child("succeededIndexes");
            if text.len() > MAX_SUCCEEDED_INDEXES_LENGTH {
                errs.push(FieldError::too_long_detail(
                    &ip,
                    format!("must have at most {MAX_SUCCEEDED_INDEXES_LENGTH} bytes"),
                ));
            }
            match indexes_total(text, completions) {
                Ok(t) => total = t,
                Err(e) => errs.push(FieldError::invalid(
                    &ip,
                    text.as_str(),
                    format!("error parsing succeededIndexes: {e}"),
                )),
            }
        }
        if let Some(n) = rule.succeeded_count {
            let cp = rp.child("succeededCount");
            non_negative(Some(n.into()), &cp, errs);
            if n > completions {
                errs.push(FieldError::invalid(
                    &cp,
                    n,
                    format!(
                        "must be less than or equal to {completions} (the number of specified completions)"
                    ),
                ));
            }
            if rule.succeeded_indexes.is_some() && i64::from(n) > total {
                errs.push(FieldError::invalid(
                    &cp,
                    n,
                    format!(
                        "must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"
                    ),
                ));
            }
        }
        super::validation::unsupported(&rule.other, &rp, &[], errs);
    }
    super::validation::unsupported(&policy.other, path, &[], errs);
}

/// `validateIndexesFormat`: how many indexes `s` names, or why it is malformed.
fn indexes_total(s: &str, completions: i32) -> Result<i64, String> {
    if s.is_empty() {
        return Ok(0);
    }
    let mut last: Option<i64> = None;
    let mut total = 0;
    for interval in s.split(',') {
        let limits: Vec<&str> = interval.split('-').collect();
        if limits.len() > 2 {
            return Err(format!(
                "the fragment {interval:?} violates the requirement that an index interval can have at most two parts separated by '-'"
            ));
        }
        let parse = |t: &str| -> Result<i64, String> {
            let x: i64 = t
                .parse()
                .map_err(|_| format!("cannot convert string to integer for index: {t:?}"))?;
            if x >= i64::from(completions) {
                return Err(format!("too large index: {t:?}"));
            }
            Ok(x)
        };
        let x = parse(limits[0])?;
        let y = match limits.get(1) {
            Some(t) => {
                let y = parse(t)?;
                if x >= y {
                    return Err(format!("non-increasing order, previous: {x}, current: {y}"));
                }
                y
            }
            None => x,
        };
        if let Some(l) = last
            && l >= x
        {
            return Err(format!("non-increasing order, previous: {l}, current: {x}"));
        }
        total += y - x + 1;
        last = Some(y);
    }
    Ok(total)
}

/// `validatePodReplacementPolicy`.
pub(crate) fn validate_pod_replacement_policy(spec: &JobSpec, path: &Path, errs: &mut ErrorList) {
    let Some(p) = spec.pod_replacement_policy.as_deref() else {
        return;
    };
    let path = path.child("podReplacementPolicy");
    if spec.pod_failure_policy.is_some() {
        if p != "Failed" {
            errs.push(FieldError::not_supported(&path, p, &["Failed"]));
        }
    } else if !matches!(p, "TerminatingOrFailed" | "Failed") {
        errs.push(FieldError::not_supported(
            &path,
            p,
            &["Failed", "TerminatingOrFailed"],
        ));
    }
}

/// The selector checks of `ValidateJob`: a manual selector must be given and match the pod
/// template; a generated one may only hold what wasmjob generates (the uid is not known
/// yet, so any uid a manifest names is wrong).
pub(crate) fn validate_selector(job: &Job, errs: &mut ErrorList) {
    let spec = &job.spec;
    let path = Path::new("spec").child("selector");
    let labels = &spec.template.metadata.labels;
    let labels_path = Path::new("spec")
        .child("template")
        .child("metadata")
        .child("labels");
    if spec.manual_selector == Some(true) {
        let Some(sel) = &spec.selector else {
            errs.push(FieldError::required(&path, ""));
            return;
        };
        let before = errs.len();
        validate_label_selector(sel, &path, errs);
        if errs.len() == before && !sel.matches(labels) {
            errs.push(FieldError::invalid(
                &labels_path,
                Value::Raw(go_map(labels)),
                "`selector` does not match template `labels`",
            ));
        }
        return;
    }
    let name = job.name();
    for key in [LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL] {
        if let Some(v) = labels.get(key)
            && v != name
        {
            errs.push(FieldError::invalid(
                &labels_path.key(key),
                Value::Raw(go_map(labels)),
                format!("must be '{name}'"),
            ));
        }
    }
    for key in [LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL] {
        if labels.contains_key(key) {
            errs.push(FieldError::invalid(
                &labels_path.key(key),
                Value::Raw(go_map(labels)),
                "must be the Job's uid, which wasmjob sets: leave it out",
            ));
        }
    }
    let Some(sel) = &spec.selector else { return };
    let before = errs.len();
    validate_label_selector(sel, &path, errs);
    // What the generated selector must select: the labels every pod of the Job carries.
    const UID: &str = "<uid>";
    let expected: StringMap = [
        (CONTROLLER_UID_LABEL, UID),
        (LEGACY_CONTROLLER_UID_LABEL, UID),
        (JOB_NAME_LABEL, name),
        (LEGACY_JOB_NAME_LABEL, name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut generated = sel.clone();
    generated
        .match_labels
        .entry(CONTROLLER_UID_LABEL.into())
        .or_insert_with(|| UID.into());
    if errs.len() == before && !generated.matches(&expected) {
        errs.push(FieldError::invalid(
            &path,
            Value::Raw(go_selector(sel)),
            "`selector` not auto-generated",
        ));
    }
}

/// `ValidateLabelSelector`.
fn validate_label_selector(sel: &LabelSelector, path: &Path, errs: &mut ErrorList) {
    for (i, r) in sel.match_expressions.iter().enumerate() {
        let rp = path.child("matchExpressions").index(i);
        match r.operator.as_str() {
            "In" | "NotIn" if r.values.is_empty() => errs.push(FieldError::required(
                &rp.child("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                errs.push(FieldError::forbidden(
                    &rp.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => errs.push(FieldError::invalid(
                &rp.child("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        if let Some(msg) = label_key_error(&r.key) {
            errs.push(FieldError::invalid(&rp.child("key"), r.key.as_str(), msg));
        }
    }
    let lp = path.child("matchLabels");
    for (k, v) in &sel.match_labels {
        if let Some(msg) = label_key_error(k) {
            errs.push(FieldError::invalid(&lp, k.as_str(), msg));
        }
        if !super::names::is_label_value(v) {
            errs.push(FieldError::invalid(
                &lp.key(k),
                v.as_str(),
                super::names::LABEL_VALUE_MSG,
            ));
        }
    }
    super::validation::unsupported(&sel.other, path, &[], errs);
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%#v` of a `map[string]string`.
fn go_map(m: &StringMap) -> String {
    let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

/// Go's `%#v` of a `metav1.LabelSelector`.
fn go_selector(sel: &LabelSelector) -> String {
    let labels = if sel.match_labels.is_empty() {
        "map[string]string(nil)".to_string()
    } else {
        go_map(&sel.match_labels)
    };
    let exprs = if sel.match_expressions.is_empty() {
        "[]v1.LabelSelectorRequirement(nil)".to_string()
    } else {
        let items: Vec<String> = sel
            .match_expressions
            .iter()
            .map(|r| {
                let values: Vec<String> = r.values.iter().map(|v| format!("{v:?}")).collect();
                format!(
                    "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:[]string{{{}}}}}",
                    r.key,
                    r.operator,
                    values.join(", ")
                )
            })
            .collect();
        format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

#[cfg(test)]
#[path = "job_rules_tests.rs"]
mod tests;
