//! The newer Job API (issue 6): pod failure policy, per-index back-off, success policy,
//! selectors and managedBy, run on the testbed guest and compared with what Kubernetes
//! reports.

use serde_json::Value;

use crate::support::*;

fn index_of(pod: &Value) -> &str {
    pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        .as_str()
        .unwrap_or("")
}

fn condition_messages(job: &Value) -> Vec<String> {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["message"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn the_docs_pod_failure_policy_example_fails_the_job_on_exit_code_42() {
    let out = wasmjob(
        examples(),
        &["run", "pod-failure-policy.yaml", "-o", "json", "-q"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let list = out.json();
    let job = items(&list, "Job")[0];
    let want = |t: &str| (t.to_string(), "PodFailurePolicy".to_string());
    assert_eq!(conditions(job), [want("FailureTarget"), want("Failed")]);
    let pods = items(&list, "Pod");
    // The first failure ended the Job: no pod beyond the first three was created.
    assert_eq!(pods.len(), 3);
    let messages = condition_messages(job);
    assert_eq!(messages[0], messages[1]);
    let culprit = pods
        .iter()
        .find(|p| {
            let name = p["metadata"]["name"].as_str().unwrap();
            messages[0]
                == format!(
                    "Container main for pod default/{name} failed with exit code 42 matching \
                     FailJob rule at index 0"
                )
        })
        .unwrap_or_else(|| panic!("no pod named by {:?}", messages[0]));
    assert_eq!(terminated(culprit)["exitCode"], 42);
    assert_eq!(job["status"]["failed"], 3);
    assert_eq!(job["status"]["succeeded"], 0);
    assert_eq!(job["spec"]["podReplacementPolicy"], "Failed");
}

/// A policy rule on `onExitCodes` that ignores exit code 1: the failure neither counts in
/// `failed` nor against `backoffLimit: 0`, and the pod is replaced.
#[test]
fn ignored_failures_do_not_count_against_the_backoff_limit() {
    let dir = tempfile::tempdir().unwrap();
    let policy = "completions: 1\nbackoffLimit: 0\npodFailurePolicy:\n  rules:\n  \
                  - action: Ignore\n    onExitCodes: {operator: In, values: [1]}";
    let job = testbed_job(
        "ignore",
        policy,
        &format!(
            "restartPolicy: Never\nvolumes: [{{name: s, hostPath: {{path: {}}}}}]",
            dir.path().display()
        ),
        "volumeMounts: [{name: s, mountPath: /s}]",
        &["fail-until", "/s/count", "1"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    let job = items(&list, "Job")[0];
    assert_eq!(
        (&job["status"]["failed"], &job["status"]["succeeded"]),
        (&Value::from(0), &Value::from(1))
    );
    assert_eq!(items(&list, "Pod").len(), 2);
    // Without the rule, backoffLimit 0 fails the Job on that first failure.
    let _ = std::fs::remove_file(dir.path().join("count"));
    let plain = testbed_job(
        "plain",
        "completions: 1\nbackoffLimit: 0",
        &format!(
            "restartPolicy: Never\nvolumes: [{{name: s, hostPath: {{path: {}}}}}]",
            dir.path().display()
        ),
        "volumeMounts: [{name: s, mountPath: /s}]",
        &["fail-until", "/s/count", "1"],
    );
    let out = run_json(dir.path(), &plain, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        conditions(items(&out.json(), "Job")[0]).last().unwrap().1,
        "BackoffLimitExceeded"
    );
}

/// Pods the host stops when it shuts down carry `DisruptionTarget`, which the docs' rule
/// ignores: they are not failures, and resuming finishes the Job.
#[test]
fn pods_stopped_by_a_shutdown_are_disruptions_a_policy_can_ignore() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let spec = "completions: 2\nparallelism: 2\nbackoffLimit: 0\npodFailurePolicy:\n  rules:\n  \
                - action: Ignore\n    onPodConditions:\n    - type: DisruptionTarget";
    let path = write(
        dir.path(),
        "job.yaml",
        &testbed_job(
            "disrupt",
            spec,
            "restartPolicy: Never",
            "",
            &["sleep", "60000"],
        ),
    );
    let out = wasmjob_with_state(
        state.path(),
        dir.path(),
        &["run", &path, "-q", "--for", "1s"],
    );
    assert_ne!(out.code, 2, "{}", out.stderr);
    let got = wasmjob_with_state(state.path(), dir.path(), &["get", "pods", "-o", "json"]);
    let list = got.json();
    let pods = list["items"].as_array().unwrap();
    assert_eq!(pods.len(), 2);
    for p in pods {
        assert_eq!(p["status"]["phase"], "Failed");
        let c = &p["status"]["conditions"][0];
        assert_eq!(c["type"], "DisruptionTarget");
        assert_eq!(c["reason"], "TerminationByKubelet");
    }
    let got = wasmjob_with_state(
        state.path(),
        dir.path(),
        &["get", "job", "disrupt", "-o", "json"],
    );
    let job = got.json();
    assert_eq!(
        job["status"]["failed"], 0,
        "ignored, though backoffLimit is 0"
    );
    assert!(job["status"]["conditions"].is_null(), "{job}");
}

/// The docs' backoffLimitPerIndex example: even indexes fail twice each and fail for good,
/// odd ones succeed; the Job fails with FailedIndexes once every index is done.
#[test]
fn per_index_backoff_fails_indexes_not_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "job-backoff-limit-per-index-example",
        "completions: 10\nparallelism: 3\ncompletionMode: Indexed\nbackoffLimitPerIndex: 1\n\
         maxFailedIndexes: 5",
        "restartPolicy: Never",
        "",
        &["echo", "Hello world", "exit-if-index", "0,2,4,6,8", "1"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let list = out.json();
    let j = items(&list, "Job")[0];
    let status = &j["status"];
    assert_eq!(status["completedIndexes"], "1,3,5,7,9");
    assert_eq!(status["failedIndexes"], "0,2,4,6,8");
    assert_eq!(
        (&status["failed"], &status["succeeded"]),
        (&Value::from(10), &Value::from(5))
    );
    let want = |t: &str| (t.to_string(), "FailedIndexes".to_string());
    assert_eq!(conditions(j), [want("FailureTarget"), want("Failed")]);
    assert_eq!(j["spec"]["backoffLimit"], i32::MAX);
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 15);
    // Each even index ran twice, the retry annotated with the failure before it.
    for i in ["0", "2", "4", "6", "8"] {
        let mut counts: Vec<&str> = pods
            .iter()
            .filter(|p| index_of(p) == i)
            .map(|p| {
                p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        counts.sort();
        assert_eq!(counts, ["0", "1"], "index {i}");
    }
}

#[test]
fn too_many_failed_indexes_fail_the_job_early_and_fail_index_skips_retries() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "maxfailed",
        "completions: 6\nparallelism: 1\ncompletionMode: Indexed\nbackoffLimitPerIndex: 3\n\
         maxFailedIndexes: 1\npodFailurePolicy:\n  rules:\n  - action: FailIndex\n    \
         onExitCodes: {operator: In, values: [42]}",
        "restartPolicy: Never",
        "",
        &["exit-if-index", "0,1", "42"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let list = out.json();
    let j = items(&list, "Job")[0];
    assert_eq!(j["status"]["failedIndexes"], "0,1");
    let want = |t: &str| (t.to_string(), "MaxFailedIndexesExceeded".to_string());
    assert_eq!(conditions(j), [want("FailureTarget"), want("Failed")]);
    // FailIndex: no retry despite backoffLimitPerIndex 3; nothing ran after index 1 failed.
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 2, "one pod per failed index");
    assert!(j["status"]["completedIndexes"].is_null(), "{j}");
}

/// The docs' success policy example: one of indexes 0, 2 and 3 is enough; the others are
/// stopped, not counted as failures.
#[test]
fn a_success_policy_completes_the_job_early() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "job-success",
        "parallelism: 10\ncompletions: 10\ncompletionMode: Indexed\nsuccessPolicy:\n  rules:\n  \
         - succeededIndexes: 0,2-3\n    succeededCount: 1",
        "restartPolicy: Never",
        "",
        &["exit-if-index", "2", "0", "sleep", "60000"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    let j = items(&list, "Job")[0];
    let want = |t: &str| (t.to_string(), "SuccessPolicy".to_string());
    assert_eq!(
        conditions(j),
        [want("SuccessCriteriaMet"), want("Complete")]
    );
    assert_eq!(condition_messages(j)[1], "Matched rules at index 0");
    let status = &j["status"];
    assert_eq!(status["completedIndexes"], "2");
    assert_eq!(
        (&status["succeeded"], &status["failed"]),
        (&Value::from(1), &Value::from(0))
    );
    assert!(status["completionTime"].is_string());
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 10);
    let stopped = pods
        .iter()
        .filter(|p| p["status"]["reason"] == "SuccessCriteriaMet")
        .count();
    assert_eq!(stopped, 9);
}

#[test]
fn newer_fields_are_validated_like_kubernetes() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "podFailurePolicy:\n  rules:\n  - action: Ignore\n    onPodConditions:\n    - type: DisruptionTarget",
            "restartPolicy: OnFailure",
            "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
        ),
        (
            "completions: 3\nbackoffLimitPerIndex: 1",
            "restartPolicy: Never",
            "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
        ),
        (
            "completions: 3\nsuccessPolicy:\n  rules:\n  - succeededCount: 1",
            "restartPolicy: Never",
            "spec.successPolicy: Invalid value: {\"rules\":[{\"succeededCount\":1}]}: requires indexed completion mode",
        ),
        (
            "managedBy: example.com/other",
            "restartPolicy: Never",
            "spec.managedBy: Unsupported value: \"example.com/other\": supported values: \"kubernetes.io/job-controller\"",
        ),
    ];
    for (spec, pod, want) in cases {
        let job = testbed_job("v", spec, pod, "", &["echo", "x"]);
        let out = run_json(dir.path(), &job, &[]);
        assert_eq!(out.code, 2, "{spec}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{spec}:\n{}", out.stderr);
        assert!(out.stdout.is_empty(), "nothing started");
    }
}

/// With `manualSelector`, the pods carry the template's labels only and the selector is the
/// manifest's.
#[test]
fn a_manual_selector_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: manual\nspec:\n  \
                    manualSelector: true\n  selector:\n    matchLabels: {app: manual}\n  \
                    template:\n    metadata:\n      labels: {app: manual}\n    spec:\n      \
                    restartPolicy: Never\n      containers:\n      - name: tb\n        image: "
        .to_string()
        + &format!(
            "{:?}\n        args: [echo, hi]\n",
            guest("testbed").display().to_string()
        );
    let out = run_json(dir.path(), &manifest, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    let j = items(&list, "Job")[0];
    assert_eq!(
        j["spec"]["selector"],
        serde_json::json!({"matchLabels": {"app": "manual"}})
    );
    let labels = &items(&list, "Pod")[0]["metadata"]["labels"];
    assert_eq!(labels, &serde_json::json!({"app": "manual"}));
}

/// Deletes the Job's running pod through the running host, then returns the run's progress
/// lines for pod events (`pod/NAME STATUS`) and its final JSON.
fn delete_running_pod(policy: &str) -> (Vec<String>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let spec = format!("completions: 1\npodReplacementPolicy: {policy}");
    let path = write(
        dir.path(),
        "job.yaml",
        &testbed_job(
            "replace",
            &spec,
            "restartPolicy: Never",
            "",
            &["sleep", "1500"],
        ),
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args(["run", &path, "-o", "json", "--backoff-base", "10ms"])
        .env("WASMJOB_STATE_DIR", state.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let first = loop {
        let got = wasmjob_with_state(state.path(), dir.path(), &["get", "pods", "-o", "json"]);
        if got.code == 0
            && let Some(p) = got.json()["items"].as_array().and_then(|ps| {
                ps.iter()
                    .find(|p| p["status"]["phase"] == "Running")
                    .cloned()
            })
        {
            break p["metadata"]["name"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no pod started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let del = wasmjob_with_state(state.path(), dir.path(), &["delete", "pod", &first]);
    assert_eq!(del.code, 0, "{}", del.stderr);
    assert_eq!(del.stdout, format!("pod {first:?} deleted\n"));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = stderr
        .lines()
        .filter_map(|l| l.split_once("] pod/").map(|(_, rest)| rest.to_string()))
        .map(|l| l.replace(&first, "FIRST"))
        .filter(|l| l.starts_with("FIRST") || l.ends_with("Pending"))
        .collect();
    (lines, serde_json::from_slice(&out.stdout).unwrap())
}

/// `podReplacementPolicy`: a deleted pod is interrupted (terminating); TerminatingOrFailed
/// replaces it at once, Failed only once it has stopped. Either way it counts as failed.
#[test]
fn pod_replacement_policy_decides_when_a_deleted_pod_is_replaced() {
    let (eager, list) = delete_running_pod("TerminatingOrFailed");
    let replacement = eager
        .iter()
        .find(|l| !l.starts_with("FIRST"))
        .expect("a replacement")
        .clone();
    assert_eq!(
        eager,
        [
            "FIRST Pending",
            "FIRST Running",
            "FIRST Terminating",
            &replacement,
            "FIRST Deleted"
        ],
    );
    let job = items(&list, "Job")[0];
    assert_eq!(
        (&job["status"]["succeeded"], &job["status"]["failed"]),
        (&Value::from(1), &Value::from(1))
    );
    let (patient, _) = delete_running_pod("Failed");
    let replacement = patient
        .iter()
        .find(|l| !l.starts_with("FIRST"))
        .unwrap()
        .clone();
    assert_eq!(
        patient,
        [
            "FIRST Pending",
            "FIRST Running",
            "FIRST Terminating",
            "FIRST Deleted",
            &replacement
        ],
    );
}

/// Pods stopped because the Job failed count as failed, but neither fail their indexes nor
/// meet the policy: the Job's own failure is not theirs.
#[test]
fn pods_stopped_by_a_failing_job_do_not_fail_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "stopped",
        "completions: 4\nparallelism: 4\ncompletionMode: Indexed\nbackoffLimitPerIndex: 0\n\
         maxFailedIndexes: 0\npodFailurePolicy:\n  rules:\n  - action: Ignore\n    \
         onExitCodes: {operator: In, values: [137]}",
        "restartPolicy: Never",
        "",
        &["exit-if-index", "0", "1", "sleep", "60000"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let list = out.json();
    let j = items(&list, "Job")[0];
    assert_eq!(j["status"]["failedIndexes"], "0");
    assert_eq!(j["status"]["failed"], 4);
    assert_eq!(conditions(j).last().unwrap().1, "MaxFailedIndexesExceeded");
}
