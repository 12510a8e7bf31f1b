//! Hostile and sandboxed guests: each ends with the right status while the host stays healthy,
//! and reaches only what its manifest grants.

use crate::support::*;

fn run_one(args: &[&str], pod: &str, container: &str) -> (serde_json::Value, Output) {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "t",
        "backoffLimit: 0",
        &format!("restartPolicy: Never\n{pod}"),
        container,
        args,
    );
    let out = run_json(dir.path(), &job, &["--logs"]);
    let list = out.json();
    let pod = items(&list, "Pod")[0].clone();
    (pod, out)
}

#[test]
fn memory_bomb_is_oom_killed() {
    let (pod, out) = run_one(
        &["alloc", "256Mi"],
        "",
        "resources: {limits: {memory: 64Mi}}",
    );
    assert_eq!(out.code, 1);
    assert_eq!(terminated(&pod)["reason"], "OOMKilled");
    assert_eq!(terminated(&pod)["exitCode"], 137);
    assert!(
        terminated(&pod)["message"]
            .as_str()
            .unwrap()
            .contains("64Mi")
    );
}

#[test]
fn allocation_within_the_limit_succeeds() {
    let (pod, out) = run_one(
        &["alloc", "32Mi", "echo", "ok"],
        "",
        "resources: {limits: {memory: 64Mi}}",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(terminated(&pod)["reason"], "Completed");
}

#[test]
fn trap_is_an_error_with_the_trap_in_the_log() {
    let (pod, out) = run_one(&["echo", "before", "trap"], "", "");
    assert_eq!(out.code, 1);
    assert_eq!(pod["status"]["phase"], "Failed");
    assert_eq!(terminated(&pod)["reason"], "Error");
    assert_eq!(terminated(&pod)["exitCode"], 134);
    assert!(
        terminated(&pod)["message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{pod}"
    );
    assert!(out.stderr.contains("] before"), "{}", out.stderr);
}

#[test]
fn flood_of_output_is_capped_and_the_pod_still_completes() {
    let (pod, out) = run_one(&["print", "1Gi", "echo", "after"], "", "");
    assert_eq!(out.code, 0, "{}", &out.stderr[..out.stderr.len().min(500)]);
    assert_eq!(terminated(&pod)["reason"], "Completed");
    assert!(
        out.stderr.len() < 16 << 20,
        "streamed log is bounded: {} bytes",
        out.stderr.len()
    );
    assert!(
        out.stderr.contains("log truncated at 10485760 bytes"),
        "truncation is reported"
    );
}

#[test]
fn no_file_access_without_a_volume() {
    let (pod, out) = run_one(&["read", "/etc/passwd"], "", "");
    assert_eq!(out.code, 1);
    assert_eq!(terminated(&pod)["exitCode"], 1);
    assert!(out.stderr.contains("read /etc/passwd:"), "{}", out.stderr);
    assert!(!out.stderr.contains("root:"), "host file leaked");
}

#[test]
fn host_path_is_granted_read_only_and_cannot_be_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("in.txt"), "granted\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret\n").unwrap();
    let pod = format!(
        "volumes: [{{name: data, hostPath: {{path: {}}}}}]",
        data.display()
    );
    let mount = "volumeMounts: [{name: data, mountPath: /data, readOnly: true}]";
    let (p, out) = run_one(&["read", "/data/in.txt"], &pod, mount);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("] granted"));
    assert_eq!(terminated(&p)["reason"], "Completed");
    let (_, out) = run_one(&["write", "/data/out.txt", "x"], &pod, mount);
    assert_eq!(out.code, 1, "read-only mount refused the write");
    assert!(!data.join("out.txt").exists());
    let (_, out) = run_one(&["read", "/data/../secret.txt"], &pod, mount);
    assert_eq!(out.code, 1);
    assert!(!out.stderr.contains("] secret"), "escaped the mount");
}

#[test]
fn empty_dir_is_writable_and_working_dir_resolves_relative_paths() {
    let pod = "volumes: [{name: scratch, emptyDir: {}}]";
    let container = "volumeMounts: [{name: scratch, mountPath: /scratch}]\nworkingDir: /scratch";
    let (p, out) = run_one(
        &["write", "/scratch/a.txt", "hello", "read", "a.txt"],
        pod,
        container,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("] hello"), "{}", out.stderr);
    assert_eq!(terminated(&p)["reason"], "Completed");
}

#[test]
fn env_values_and_field_refs_reach_the_guest_and_nothing_else_does() {
    let container = "env:\n- {name: GREETING, value: hi}\n- name: POD\n  valueFrom: {fieldRef: {fieldPath: metadata.name}}\n- name: JOB\n  valueFrom: {fieldRef: {fieldPath: \"metadata.labels['job-name']\"}}";
    let (p, out) = run_one(
        &["env", "GREETING", "env", "POD", "env", "JOB", "env", "HOME"],
        "",
        container,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let name = p["metadata"]["name"].as_str().unwrap();
    let prefix = format!("[pod/{name}/tb] ");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect();
    assert_eq!(lines, ["hi", name, "t", ""]);
}

#[test]
fn exit_codes_reach_the_pod_status_unchanged() {
    // Regression: wasmtime-wasi reports proc_exit(>= 126) as an anonymous error.
    for code in [3, 42, 200] {
        let (pod, out) = run_one(&["exit", &code.to_string()], "", "");
        assert_eq!(out.code, 1);
        assert_eq!(terminated(&pod)["exitCode"], code);
        assert_eq!(terminated(&pod)["reason"], "Error");
    }
}

#[test]
fn a_sleeping_guest_is_stopped_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "nap",
        "activeDeadlineSeconds: 1",
        "restartPolicy: Never",
        "",
        &["sleep", "600000"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 1);
    let list = out.json();
    assert_eq!(
        conditions(items(&list, "Job")[0]).last().unwrap().1,
        "DeadlineExceeded"
    );
    assert_eq!(
        terminated(items(&list, "Pod")[0])["reason"],
        "DeadlineExceeded"
    );
}
