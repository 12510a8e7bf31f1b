//! `spec.podFailurePolicy`: which rule, if any, a failed pod matches (kubernetes'
//! pkg/controller/job/pod_failure_policy.go `matchPodFailurePolicy`).

use crate::api::types::{Pod, PodFailurePolicy, PodFailurePolicyOnExitCodes};

/// What a matching rule does with a failed pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The Job fails at once (reason `PodFailurePolicy`).
    FailJob,
    /// The pod's index fails at once (needs `backoffLimitPerIndex`).
    FailIndex,
    /// The pod is not counted against any back-off limit.
    Ignore,
    /// The pod counts as a failure, as without a policy.
    Count,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "FailJob" => Action::FailJob,
            "FailIndex" => Action::FailIndex,
            "Ignore" => Action::Ignore,
            "Count" => Action::Count,
            _ => return None,
        })
    }
}

/// The first rule of `policy` that failed pod `pod` matches: its action and, for `FailJob`,
/// the message of the Job's failure condition. `None`: no rule matched (the pod counts).
pub fn match_policy(policy: &PodFailurePolicy, pod: &Pod) -> Option<(Action, String)> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    for (index, rule) in policy.rules.iter().enumerate() {
        // Validation admits only known actions; an unknown one (a newer API) is skipped.
        let Some(action) = Action::parse(&rule.action) else {
            continue;
        };
        if let Some(req) = &rule.on_exit_codes {
            if let Some((container, code)) = matching_container(pod, req) {
                let message = format!(
                    "Container {container} for pod {namespace}/{name} failed with exit code \
                     {code} matching {} rule at index {index}",
                    rule.action
                );
                return Some((action, message));
            }
        } else if let Some(pattern) = rule.on_pod_conditions.iter().find(|pattern| {
            let want = pattern.status.as_deref().unwrap_or("True");
            pod.status
                .conditions
                .iter()
                .any(|c| c.type_ == pattern.type_ && c.status == want)
        }) {
            let message = format!(
                "Pod {namespace}/{name} has condition {} matching {} rule at index {index}",
                pattern.type_, rule.action
            );
            return Some((action, message));
        }
    }
    None
}

/// The first container whose non-zero exit code satisfies `req` (exit code 0 never matches).
fn matching_container<'a>(
    pod: &'a Pod,
    req: &PodFailurePolicyOnExitCodes,
) -> Option<(&'a str, i32)> {
    pod.status.container_statuses.iter().find_map(|cs| {
        let code = cs.state.terminated.as_ref()?.exit_code;
        let named = req.container_name.as_deref().is_none_or(|n| n == &*cs.name);
        let listed = req.values.contains(&code);
        let hit = match req.operator.as_str() {
            "In" => listed,
            "NotIn" => !listed,
            _ => false,
        };
        (named && code != 0 && hit).then_some((&*cs.name, code))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::types::{
        ContainerState, ContainerStateTerminated, ContainerStatus, ObjectMeta, PodCondition,
        PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule, PodStatus,
    };
    use jiff::Timestamp;

    /// A Failed pod `default/job-abcde` whose container `main` exited with `exit_code`
    /// (Succeeded for 0), with `conditions` set True. Shared with the tally's tests.
    pub(crate) fn pod(exit_code: i32, conditions: &[&str]) -> Pod {
        Pod {
            api_version: "v1".into(),
            kind: "Pod".into(),
            metadata: ObjectMeta {
                name: Some("job-abcde".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Default::default(),
            status: PodStatus {
                phase: if exit_code == 0 {
                    "Succeeded"
                } else {
                    "Failed"
                }
                .into(),
                conditions: conditions
                    .iter()
                    .map(|t| PodCondition {
                        type_: (*t).into(),
                        status: "True".into(),
                        last_transition_time: Timestamp::UNIX_EPOCH,
                        reason: String::new(),
                        message: String::new(),
                    })
                    .collect(),
                container_statuses: smallvec::smallvec![ContainerStatus {
                    name: "main".into(),
                    state: ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code,
                            reason: "Error".into(),
                            message: None,
                            started_at: Timestamp::UNIX_EPOCH,
                            finished_at: Timestamp::UNIX_EPOCH,
                        }),
                        ..Default::default()
                    },
                    last_state: None,
                    ready: false,
                    restart_count: 0,
                    image: "".into(),
                    image_id: "".into(),
                    started: false,
                }],
                ..Default::default()
            },
        }
    }

    fn exit_rule(
        action: &str,
        container: Option<&str>,
        op: &str,
        values: &[i32],
    ) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodes {
                container_name: container.map(Into::into),
                operator: op.into(),
                values: values.to_vec(),
            }),
            ..Default::default()
        }
    }

    fn condition_rule(action: &str, type_: &str) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_pod_conditions: vec![PodFailurePolicyOnPodConditionsPattern {
                type_: type_.into(),
                status: None,
            }],
            ..Default::default()
        }
    }

    /// The docs' example: FailJob on exit code 42 of container main, Ignore on disruption.
    fn docs_policy() -> PodFailurePolicy {
        PodFailurePolicy {
            rules: vec![
                exit_rule("FailJob", Some("main"), "In", &[42]),
                condition_rule("Ignore", "DisruptionTarget"),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn first_matching_rule_decides_with_kubernetes_messages() {
        let policy = docs_policy();
        assert_eq!(
            match_policy(&policy, &pod(42, &[])),
            Some((
                Action::FailJob,
                "Container main for pod default/job-abcde failed with exit code 42 matching \
                 FailJob rule at index 0"
                    .into()
            ))
        );
        assert_eq!(
            match_policy(&policy, &pod(137, &["DisruptionTarget"])),
            Some((
                Action::Ignore,
                "Pod default/job-abcde has condition DisruptionTarget matching Ignore rule at \
                 index 1"
                    .into()
            ))
        );
        // Exit code 42 with a disruption: the exit-code rule comes first.
        assert_eq!(
            match_policy(&policy, &pod(42, &["DisruptionTarget"])).map(|m| m.0),
            Some(Action::FailJob)
        );
        assert_eq!(match_policy(&policy, &pod(1, &[])), None);
    }

    #[test]
    fn exit_code_rules_follow_operator_and_container() {
        let not_in = PodFailurePolicy {
            rules: vec![exit_rule("Count", None, "NotIn", &[1, 2])],
            ..Default::default()
        };
        assert_eq!(
            match_policy(&not_in, &pod(3, &[])).map(|m| m.0),
            Some(Action::Count)
        );
        assert_eq!(match_policy(&not_in, &pod(2, &[])), None);
        // Exit code 0 never matches, even NotIn.
        assert_eq!(match_policy(&not_in, &pod(0, &[])), None);
        let other = PodFailurePolicy {
            rules: vec![exit_rule("FailJob", Some("sidecar"), "In", &[42])],
            ..Default::default()
        };
        assert_eq!(match_policy(&other, &pod(42, &[])), None);
    }

    #[test]
    fn condition_status_must_match() {
        let mut policy = PodFailurePolicy {
            rules: vec![condition_rule("Ignore", "DisruptionTarget")],
            ..Default::default()
        };
        policy.rules[0].on_pod_conditions[0].status = Some("False".into());
        assert_eq!(
            match_policy(&policy, &pod(137, &["DisruptionTarget"])),
            None
        );
    }
}
