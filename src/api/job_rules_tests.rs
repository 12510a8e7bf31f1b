//! The newer Job fields are rejected exactly where Kubernetes rejects them.

use crate::api::defaults::default_job;
use crate::api::types::Job;
use crate::api::validation::validate_job;

/// The errors of a Job whose `spec` (YAML, indented by 2) follows a fixed header.
fn errors(spec: &str) -> Vec<String> {
    let yaml = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n{spec}\n  template:\n    \
         spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        \
         image: t.wasm\n"
    );
    let mut job: Job = serde_yaml_ng::from_str(&yaml).expect("test manifest parses");
    default_job(&mut job);
    validate_job(&job).iter().map(ToString::to_string).collect()
}

fn assert_errors(spec: &str, want: &[&str]) {
    assert_eq!(errors(spec), want, "spec:\n{spec}");
}

#[test]
fn accepts_what_kubernetes_accepts() {
    for spec in [
        // The docs' pod failure policy example.
        "  completions: 12\n  parallelism: 3\n  backoffLimit: 6\n  podFailurePolicy:\n    rules:\n    \
         - action: FailJob\n      onExitCodes:\n        containerName: main\n        operator: In\n        \
         values: [42]\n    - action: Ignore\n      onPodConditions:\n      - type: DisruptionTarget",
        // Per-index back-off with FailIndex.
        "  completions: 10\n  completionMode: Indexed\n  backoffLimitPerIndex: 1\n  maxFailedIndexes: 5\n  \
         podFailurePolicy:\n    rules:\n    - action: FailIndex\n      onExitCodes:\n        operator: In\n        \
         values: [42]",
        // The docs' success policy example.
        "  completions: 10\n  parallelism: 10\n  completionMode: Indexed\n  successPolicy:\n    rules:\n    \
         - succeededIndexes: 0,2-3\n      succeededCount: 1",
        "  managedBy: kubernetes.io/job-controller",
        "  podReplacementPolicy: Failed",
    ] {
        assert_errors(spec, &[]);
    }
    // A manual selector that selects the template's labels.
    let manual = "  manualSelector: true\n  selector:\n    matchLabels:\n      app: x\n    \
                  matchExpressions:\n    - {key: tier, operator: In, values: [a]}";
    assert!(errors_with_labels(manual, "app: x\n        tier: a").is_empty());
}

fn errors_with_labels(spec: &str, labels: &str) -> Vec<String> {
    let yaml = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n{spec}\n  template:\n    \
         metadata:\n      labels:\n        {labels}\n    spec:\n      restartPolicy: Never\n      \
         containers:\n      - name: main\n        image: t.wasm\n"
    );
    let mut job: Job = serde_yaml_ng::from_str(&yaml).expect("test manifest parses");
    default_job(&mut job);
    validate_job(&job).iter().map(ToString::to_string).collect()
}

#[test]
fn pod_failure_policy_rules() {
    assert_errors(
        "  podFailurePolicy:\n    rules:\n    - action: FailIndex\n      onExitCodes:\n        \
         containerName: other\n        operator: In\n        values: [19, 0, 11, 11]\n    \
         - action: Bogus\n      onPodConditions:\n      - {type: DisruptionTarget, status: Maybe}\n    \
         - onExitCodes: {operator: Within, values: []}\n    - action: Count",
        &[
            "spec.podFailurePolicy.rules[0].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set",
            "spec.podFailurePolicy.rules[0].onExitCodes.containerName: Invalid value: \"other\": must be one of the container or initContainer names in the pod template",
            "spec.podFailurePolicy.rules[0].onExitCodes.values[1]: Invalid value: 0: must not be 0 for the In operator",
            "spec.podFailurePolicy.rules[0].onExitCodes.values[3]: Duplicate value: 11",
            "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{19, 0, 11, 11}: must be ordered",
            "spec.podFailurePolicy.rules[1].action: Unsupported value: \"Bogus\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"",
            "spec.podFailurePolicy.rules[1].onPodConditions[0].status: Unsupported value: \"Maybe\": supported values: \"False\", \"True\", \"Unknown\"",
            "spec.podFailurePolicy.rules[2].action: Required value: valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
            "spec.podFailurePolicy.rules[2].onExitCodes.operator: Unsupported value: \"Within\": supported values: \"In\", \"NotIn\"",
            "spec.podFailurePolicy.rules[2].onExitCodes.values: Invalid value: []int32{}: at least one value is required",
            "spec.podFailurePolicy.rules[3]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
        ],
    );
}

#[test]
fn pod_failure_policy_needs_restart_policy_never_and_replacement_failed() {
    let yaml = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n  \
                podReplacementPolicy: TerminatingOrFailed\n  podFailurePolicy:\n    rules:\n    \
                - action: Ignore\n      onPodConditions:\n      - type: DisruptionTarget\n  \
                template:\n    spec:\n      restartPolicy: OnFailure\n      containers:\n      \
                - name: main\n        image: t.wasm\n";
    let mut job: Job = serde_yaml_ng::from_str(yaml).unwrap();
    default_job(&mut job);
    let errs: Vec<String> = validate_job(&job).iter().map(ToString::to_string).collect();
    assert_eq!(
        errs,
        [
            "spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\"",
            "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
        ]
    );
}

#[test]
fn per_index_fields_need_indexed_mode() {
    assert_errors(
        "  backoffLimitPerIndex: 1\n  maxFailedIndexes: 2",
        &[
            "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
            "spec.maxFailedIndexes: Invalid value: 2: requires indexed completion mode",
        ],
    );
    assert_errors(
        "  completions: 3\n  completionMode: Indexed\n  maxFailedIndexes: 4",
        &[
            "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified",
            "spec.maxFailedIndexes: Invalid value: 4: must be less than or equal to completions",
        ],
    );
    assert_errors(
        "  completions: 200000\n  parallelism: 20000\n  completionMode: Indexed\n  backoffLimitPerIndex: 1",
        &[
            "spec.maxFailedIndexes: Required value: must be specified when completions is above 100000",
            "spec.parallelism: Invalid value: 20000: must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index",
        ],
    );
}

#[test]
fn success_policy_rules() {
    assert_errors(
        "  completions: 5\n  successPolicy:\n    rules:\n    - succeededCount: 1",
        &[
            "spec.successPolicy: Invalid value: {\"rules\":[{\"succeededCount\":1}]}: requires indexed completion mode",
        ],
    );
    assert_errors(
        "  completions: 5\n  completionMode: Indexed\n  successPolicy:\n    rules:\n    \
         - succeededIndexes: 1-7\n    - succeededIndexes: 0,2-3\n      succeededCount: 4\n    - {}",
        &[
            "spec.successPolicy.rules[0].succeededIndexes: Invalid value: \"1-7\": error parsing succeededIndexes: too large index: \"7\"",
            "spec.successPolicy.rules[1].succeededCount: Invalid value: 4: must be less than or equal to 3 (the number of indexes in the specified succeededIndexes field)",
            "spec.successPolicy.rules[2]: Required value: at least one of succeededCount or succeededIndexes must be specified",
        ],
    );
    assert_errors(
        "  completions: 5\n  completionMode: Indexed\n  successPolicy:\n    rules: []",
        &[
            "spec.successPolicy.rules: Required value: at least one rules must be specified when the successPolicy is specified",
        ],
    );
}

#[test]
fn managed_by_names_kubernetes_controller_only() {
    assert_errors(
        "  managedBy: not a path",
        &[
            "spec.managedBy: Invalid value: \"not a path\": must be a domain-prefixed path (such as \"acme.io/foo\")",
        ],
    );
    assert_errors(
        "  managedBy: example.com/my-controller",
        &[
            "spec.managedBy: Unsupported value: \"example.com/my-controller\": supported values: \"kubernetes.io/job-controller\"",
        ],
    );
}

#[test]
fn selectors_are_generated_unless_manual() {
    assert_errors(
        "  selector:\n    matchLabels:\n      app: x",
        &[
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated",
        ],
    );
    // Selecting by the Job's own name is what generation does too.
    assert_errors("  selector:\n    matchLabels:\n      job-name: j", &[]);
    assert_errors("  manualSelector: true", &["spec.selector: Required value"]);
    assert_eq!(
        errors_with_labels(
            "  manualSelector: true\n  selector:\n    matchLabels:\n      app: y",
            "app: x"
        ),
        [
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"
        ]
    );
    assert_eq!(
        errors_with_labels(
            "  manualSelector: true\n  selector:\n    matchExpressions:\n    - {key: app, operator: In}",
            "app: x"
        ),
        [
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        ]
    );
}
