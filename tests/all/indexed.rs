//! Indexed Jobs (issue 6, first part): one successful pod per completion index, named
//! `<job>-<index>-<random>`, the index in `JOB_COMPLETION_INDEX` and on the pod.

use crate::support::*;

#[test]
fn each_index_runs_once_with_its_index_and_is_reported_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "idx",
        "completions: 5\nparallelism: 2\ncompletionMode: Indexed",
        "restartPolicy: Never",
        "",
        &["env", "JOB_COMPLETION_INDEX"],
    );
    let out = run_json(dir.path(), &job, &["--logs"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    let j = &items(&list, "Job")[0];
    assert_eq!(j["status"]["completedIndexes"], "0-4");
    assert_eq!(j["status"]["succeeded"], 5);
    assert_eq!(conditions(j).last().unwrap().0, "Complete");
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 5);
    assert!(max_concurrent(&pods) <= 2);
    let mut seen = Vec::new();
    for p in &pods {
        let index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
            index
        );
        let name = p["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with(&format!("idx-{index}-")), "{name}");
        // The pod printed its own index.
        assert!(
            out.stderr.contains(&format!("[pod/{name}/tb] {index}\n")),
            "{}",
            out.stderr
        );
        seen.push(index);
    }
    seen.sort();
    assert_eq!(seen, ["0", "1", "2", "3", "4"]);
}

#[test]
fn a_failed_index_is_retried_under_its_own_index() {
    let dir = tempfile::tempdir().unwrap();
    // The first run fails (a counter in a shared hostPath), its index is retried, the rest pass.
    let job = testbed_job(
        "retry",
        "completions: 3\nparallelism: 1\ncompletionMode: Indexed\nbackoffLimit: 3",
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
    let j = &items(&list, "Job")[0];
    assert_eq!(j["status"]["completedIndexes"], "0-2");
    assert_eq!(j["status"]["failed"], 1);
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 4, "three indexes and one retry");
    let failed = pods
        .iter()
        .find(|p| p["status"]["phase"] == "Failed")
        .unwrap();
    let index = failed["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        .as_str()
        .unwrap();
    let retried = pods
        .iter()
        .filter(|p| {
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == index
        })
        .count();
    assert_eq!(retried, 2, "the failed index ran again, and only it");
}

#[test]
fn indexed_jobs_are_validated_like_kubernetes() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "noc",
        "completionMode: Indexed\nparallelism: 2",
        "restartPolicy: Never",
        "",
        &["echo", "x"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("spec.completions: Required value: when completion mode is Indexed"),
        "{}",
        out.stderr
    );
    let long = "a".repeat(62);
    let job = testbed_job(
        &long,
        "completionMode: Indexed\ncompletions: 10",
        "restartPolicy: Never",
        "",
        &["echo", "x"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(&format!(
            "will not able to create pod with invalid DNS label: {long}-9"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn the_indexed_example_assigns_one_item_per_index() {
    let examples = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"));
    let out = wasmjob(examples, &["run", "indexed.yaml", "-o", "json", "--logs"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (i, item) in ["apple", "banana", "cherry", "date", "fig"]
        .iter()
        .enumerate()
    {
        let line = format!("Processing {item} (index {i})");
        assert_eq!(
            out.stderr.matches(&line).count(),
            1,
            "{line}: {}",
            out.stderr
        );
    }
    assert_eq!(
        items(&out.json(), "Job")[0]["status"]["completedIndexes"],
        "0-4"
    );
}
