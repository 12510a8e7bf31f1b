//! Shared helpers: running the binary, writing manifests that use the testbed guest.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Path of a guest module built by build.rs.
pub fn guest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("guests/bin")
        .join(format!("{name}.wasm"))
}

/// The repository's `examples/` directory.
pub fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
}

/// What a `wasmjob` invocation produced.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout parsed as JSON (for `-o json`).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// The compiled-module cache the tests' runs share.
pub fn module_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("module-cache")
}

/// Runs `wasmjob ARGS...` in `dir` with a state directory of its own, so that runs never
/// see each other's Jobs.
pub fn wasmjob(dir: &Path, args: &[&str]) -> Output {
    let state = tempfile::tempdir().expect("a temporary state directory");
    wasmjob_with_state(state.path(), dir, args)
}

/// Runs `wasmjob ARGS...` in `dir` on the state directory `state`.
pub fn wasmjob_with_state(state: &Path, dir: &Path, args: &[&str]) -> Output {
    wasmjob_env(state, dir, args, &[])
}

/// Runs `wasmjob ARGS...` in `dir` on the state directory `state`, with `env` set too.
pub fn wasmjob_env(state: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args(args)
        .current_dir(dir)
        .env("WASMJOB_STATE_DIR", state)
        // Every test's runs share one compiled-module cache, outside the user's own.
        .env("WASMJOB_CACHE_DIR", module_cache())
        .envs(env.iter().copied())
        .output()
        .expect("running wasmjob");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A Job manifest running the testbed guest with `args`; `spec` is extra YAML under `spec:`
/// and `pod` extra YAML under `spec.template.spec:` (both indented by the caller's 2 spaces).
pub fn testbed_job(name: &str, spec: &str, pod: &str, container: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec}
  template:
    spec:
{pod}
      containers:
      - name: tb
        image: {image}
        args: [{args}]
{container}
",
        image = guest("testbed").display(),
        args = args.join(", "),
        spec = indent(spec, 2),
        pod = indent(pod, 6),
        container = indent(container, 8),
    )
}

fn indent(s: &str, n: usize) -> String {
    s.lines()
        .map(|l| format!("{}{l}", " ".repeat(n)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("writing manifest");
    p.display().to_string()
}

/// Runs one testbed Job with `-o json` and fast back-off; returns the output.
pub fn run_json(dir: &Path, manifest: &str, extra: &[&str]) -> Output {
    let path = write(dir, "job.yaml", manifest);
    let mut args = vec![
        "run",
        path.as_str(),
        "-o",
        "json",
        "-q",
        "--backoff-base",
        "10ms",
        "--backoff-max",
        "40ms",
    ];
    args.extend_from_slice(extra);
    wasmjob(dir, &args)
}

/// Items of a `List` of the given kind.
pub fn items<'a>(list: &'a Value, kind: &str) -> Vec<&'a Value> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == kind)
        .collect()
}

/// `(type, reason)` of a Job's conditions, in order.
pub fn conditions(job: &Value) -> Vec<(String, String)> {
    job["status"]["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["type"].as_str().unwrap_or("").to_string(),
                        c["reason"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The terminated state of a pod's container.
pub fn terminated(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]["state"]["terminated"]
}

/// Parses an RFC 3339 timestamp field.
pub fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
}

/// The most pods active at once, from creation and finish timestamps.
pub fn max_concurrent(pods: &[&Value]) -> usize {
    let mut edges: Vec<(jiff::Timestamp, i32)> = Vec::new();
    for p in pods {
        edges.push((ts(&p["metadata"]["creationTimestamp"]), 1));
        edges.push((ts(&terminated(p)["finishedAt"]), -1));
    }
    // At equal times, an end comes before a start: [start, end) intervals.
    edges.sort_by_key(|&(t, d)| (t, d));
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}
