//! Work queues: the docs' job-wq-1, job-wq-2 and job template patterns, redelivery on
//! failure and after a host crash, and queue grants.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::RngExt;
use serde_json::Value;

use crate::support::*;

/// How often each `Done ITEM` line appears in `text`.
fn done_counts(text: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        if let Some(item) = line
            .split("] ")
            .last()
            .and_then(|l| l.strip_prefix("Done "))
        {
            *counts.entry(item.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

fn consumer_job(
    name: &str,
    spec: &str,
    queue: &str,
    restart: &str,
    args: &[&str],
    extra_pod: &str,
    mounts: &str,
) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
{spec}
  template:
    spec:
      restartPolicy: {restart}
{extra_pod}
      containers:
      - name: c
        image: {image}
        args: [{args}]
        env:
        - {{name: BROKER_URL, value: 'wasmjob://embedded'}}
        - {{name: QUEUE, value: {queue}}}
{mounts}
",
        image = guest("queue-consumer").display(),
        args = args.join(", "),
    )
}

fn seed(name: &str, queue: &str, items: &[String]) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  annotations: {{wasmjob.dev/seed-queue: {queue}}}
data:
  items: |
{}
---
",
        items
            .iter()
            .map(|i| format!("    {i}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

const FRUIT: [&str; 8] = [
    "apple", "banana", "cherry", "date", "fig", "grape", "lemon", "melon",
];

#[test]
fn job_wq_1_processes_each_item_once_with_two_pods_at_a_time() {
    let out = wasmjob(
        examples(),
        &["run", "job-wq-1.yaml", "-o", "json", "--logs"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 8);
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Succeeded"));
    assert!(max_concurrent(&pods) <= 2, "never more than parallelism");
    let counts = done_counts(&out.stderr);
    let want: BTreeMap<String, usize> = FRUIT.iter().map(|f| (f.to_string(), 1)).collect();
    assert_eq!(counts, want, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("queue/job1 seeded with 8 items from configmap/default/job1-items")
    );
}

#[test]
fn job_wq_2_drains_the_queue_and_starts_no_pod_after_the_first_success() {
    let out = wasmjob(
        examples(),
        &["run", "job-wq-2.yaml", "-o", "json", "--logs"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    let job = &items(&list, "Job")[0];
    assert_eq!(conditions(job).last().unwrap().0, "Complete");
    let pods = items(&list, "Pod");
    let first_success = pods
        .iter()
        .filter(|p| p["status"]["phase"] == "Succeeded")
        .map(|p| ts(&terminated(p)["finishedAt"]))
        .min()
        .unwrap();
    for p in &pods {
        assert!(
            ts(&p["metadata"]["creationTimestamp"]) <= first_success,
            "a pod started after a success"
        );
    }
    let counts = done_counts(&out.stderr);
    assert_eq!(counts.len(), 9, "{}", out.stderr);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert!(out.stderr.contains("Queue empty, exiting"));
}

#[test]
fn failing_consumers_restart_and_every_item_succeeds_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    let record = dir.path().join("record");
    std::fs::create_dir_all(&marks).unwrap();
    std::fs::create_dir_all(&record).unwrap();
    let fruit: Vec<String> = FRUIT.iter().map(|f| f.to_string()).collect();
    let job = consumer_job(
        "flaky",
        "  parallelism: 2\n  backoffLimit: 10",
        "flaky",
        "OnFailure",
        &[
            "--until-empty",
            "--fail-once-on",
            "banana",
            "--fail-once-on",
            "fig",
            "--marks",
            "/shared/marks",
            "--record",
            "/shared/record",
        ],
        &format!(
            "      volumes: [{{name: shared, hostPath: {{path: {}}}}}]",
            dir.path().display()
        ),
        "        volumeMounts: [{name: shared, mountPath: /shared}]",
    );
    let path = write(
        dir.path(),
        "job.yaml",
        &format!("{}{job}", seed("flaky-items", "flaky", &fruit)),
    );
    let out = wasmjob(
        dir.path(),
        &[
            "run",
            &path,
            "-o",
            "json",
            "--backoff-base",
            "10ms",
            "--logs",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let restarts: i64 = items(&out.json(), "Pod")
        .iter()
        .map(|p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(restarts, 2, "one restart per failing item");
    for f in FRUIT {
        let n = std::fs::read_to_string(record.join(f))
            .unwrap()
            .lines()
            .count();
        assert_eq!(n, 1, "{f} processed {n} times");
    }
    // (Failed once on 2026-12-02: a live-view line written between a streamed log line's
    // text and its newline glued `Done ITEM` to it; each log line is now one write.)
    let done = done_counts(&out.stderr);
    assert_eq!(done.values().sum::<usize>(), 8, "{done:?}\n{}", out.stderr);
}

#[test]
fn a_killed_host_loses_no_item() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let record = dir.path().join("record");
    std::fs::create_dir_all(&record).unwrap();
    let work: Vec<String> = (0..40).map(|i| format!("item-{i:02}")).collect();
    let job = consumer_job(
        "drain",
        "  parallelism: 3\n  backoffLimit: 1000",
        "drain",
        "Never",
        &[
            "--until-empty",
            "--sleep",
            "20",
            "--record",
            "/shared/record",
        ],
        &format!(
            "      volumes: [{{name: shared, hostPath: {{path: {}}}}}]",
            dir.path().display()
        ),
        "        volumeMounts: [{name: shared, mountPath: /shared}]",
    );
    let path = write(
        dir.path(),
        "job.yaml",
        &format!("{}{job}", seed("drain-items", "drain", &work)),
    );
    let args = [
        "run",
        path.as_str(),
        "-q",
        "--no-logs",
        "--backoff-base",
        "5ms",
        "--backoff-max",
        "20ms",
    ];
    let mut rng = rand::rng();
    for _ in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmjob"))
            .args(args)
            .env("WASMJOB_STATE_DIR", &state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(200..700)));
        child.kill().unwrap();
        let _ = child.wait();
    }
    let out = wasmjob_with_state(&state, dir.path(), &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for w in &work {
        assert!(record.join(w).exists(), "{w} was lost");
    }
    let left = wasmjob_with_state(&state, dir.path(), &["queue", "ls"]);
    assert!(
        left.stdout.is_empty(),
        "nothing left in the queue: {}",
        left.stdout
    );
}

#[test]
fn a_pod_reaches_only_the_queues_its_manifest_grants() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let pushed = wasmjob_with_state(&state, dir.path(), &["queue", "push", "secret", "s3cr3t"]);
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    let job = consumer_job(
        "nosy",
        "",
        "public",
        "Never",
        &["--queue", "secret"],
        "",
        "",
    );
    let path = write(dir.path(), "job.yaml", &job);
    let out = wasmjob_with_state(
        &state,
        dir.path(),
        &[
            "run",
            &path,
            "--backoff-base",
            "1ms",
            "--backoff-max",
            "1ms",
            "-o",
            "json",
            "--logs",
        ],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("queue \"secret\" is not granted to this pod"),
        "{}",
        out.stderr
    );
    let list = out.json();
    let pod = &items(&list, "Pod")[0];
    assert_eq!(terminated(pod)["exitCode"], 3);
    let len = wasmjob_with_state(&state, dir.path(), &["queue", "len", "secret"]);
    assert_eq!(len.stdout, "1\n", "the item is untouched");

    let no_queue = consumer_job("bad", "", "", "Never", &[], "", "");
    let out = wasmjob(
        dir.path(),
        &[
            "run",
            &write(
                dir.path(),
                "bad.yaml",
                &no_queue.replace("value: \n", "value: ''\n"),
            ),
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("env[QUEUE]: Required value"),
        "{}",
        out.stderr
    );
}

#[test]
fn job_template_expands_into_one_labelled_job_per_item() {
    let dir = tempfile::tempdir().unwrap();
    let tmpl = examples().join("job-tmpl.yaml");
    let out = wasmjob_with_state(
        dir.path(),
        examples(),
        &[
            "run",
            tmpl.to_str().unwrap(),
            "--expand",
            "ITEM=apple,banana,cherry",
            "-o",
            "json",
            "--logs",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    for item in ["apple", "banana", "cherry"] {
        assert!(
            out.stderr.contains(&format!("Processing item {item}")),
            "{}",
            out.stderr
        );
    }
    let names = wasmjob_with_state(
        dir.path(),
        examples(),
        &["get", "jobs", "-l", "jobgroup=jobexample", "-o", "name"],
    );
    assert_eq!(
        names.stdout,
        "job.batch/process-item-apple\njob.batch/process-item-banana\njob.batch/process-item-cherry\n"
    );
    let pods = wasmjob_with_state(
        dir.path(),
        examples(),
        &["get", "pods", "-l", "jobgroup=jobexample", "-o", "name"],
    );
    assert_eq!(pods.stdout.lines().count(), 3);
    let bad = wasmjob(examples(), &["run", "job-tmpl.yaml", "--expand", "ITEM"]);
    assert_eq!(bad.code, 2);
    let list: Value = out.json();
    assert_eq!(items(&list, "Job").len(), 3);
}

/// A `redis-server` on a free loopback port, stopped when dropped.
struct Redis {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Redis, or says why not (where `redis-server` cannot be installed) and returns None.
fn redis() -> Option<Redis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = tempfile::tempdir().ok()?;
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!(
            "skipped: redis-server is not installed (.ci/run installs Debian's redis-server)"
        );
        return None;
    };
    let redis = Redis {
        child,
        url: format!("redis://127.0.0.1:{port}"),
        _dir: dir,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(redis);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not start on port {port}");
}

fn redis_len(url: &str, key: &str) -> i64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    redis::cmd("LLEN").arg(key).query(&mut conn).unwrap()
}

fn redis_consumer(dir: &Path, url: &str, name: &str) -> String {
    consumer_job(
        name,
        "  parallelism: 2\n  backoffLimit: 100",
        "work",
        "Never",
        &[
            "--until-empty",
            "--sleep",
            "10",
            "--record",
            "/shared/record",
        ],
        &format!(
            "      volumes: [{{name: shared, hostPath: {{path: {}}}}}]",
            dir.display()
        ),
        "        volumeMounts: [{name: shared, mountPath: /shared}]",
    )
    .replace("'wasmjob://embedded'", &format!("'{url}'"))
}

#[test]
fn two_hosts_drain_one_redis_queue_each_item_exactly_once() {
    let Some(redis) = redis() else { return };
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    std::fs::create_dir_all(&record).unwrap();
    let work: Vec<String> = (0..40).map(|i| format!("w{i:02}")).collect();
    let mut push = vec!["queue", "--broker", redis.url.as_str(), "push", "work"];
    push.extend(work.iter().map(String::as_str));
    let pushed = wasmjob(dir.path(), &push);
    assert_eq!(
        pushed.stdout, "queue/work: 40 item(s) pushed\n",
        "{}",
        pushed.stderr
    );
    let path = write(
        dir.path(),
        "job.yaml",
        &redis_consumer(dir.path(), &redis.url, "drain"),
    );
    let hosts: Vec<std::process::Child> = (0..2)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_wasmjob"))
                .args(["run", &path, "-q", "--no-logs", "-o", "name"])
                .env("WASMJOB_STATE_DIR", dir.path().join(format!("state-{i}")))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for h in hosts {
        let out = h.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for w in &work {
        let n = std::fs::read_to_string(record.join(w))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        assert_eq!(n, 1, "{w} processed {n} times");
    }
    assert_eq!(redis_len(&redis.url, "work"), 0);
    assert_eq!(
        redis_len(&redis.url, "work:processing"),
        0,
        "every lease settled"
    );
    let len = wasmjob(
        dir.path(),
        &["queue", "--broker", &redis.url, "len", "work"],
    );
    assert_eq!(len.stdout, "0\n");
}

#[test]
fn a_killed_host_returns_its_redis_leases_when_it_resumes() {
    let Some(redis) = redis() else { return };
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    std::fs::create_dir_all(&record).unwrap();
    let work: Vec<String> = (0..30).map(|i| format!("k{i:02}")).collect();
    let mut push = vec!["queue", "--broker", redis.url.as_str(), "push", "work"];
    push.extend(work.iter().map(String::as_str));
    assert_eq!(wasmjob(dir.path(), &push).code, 0);
    let path = write(
        dir.path(),
        "job.yaml",
        &redis_consumer(dir.path(), &redis.url, "resumable"),
    );
    let state = dir.path().join("state");
    let args = [
        "run",
        path.as_str(),
        "-q",
        "--no-logs",
        "--backoff-base",
        "5ms",
        "--backoff-max",
        "10ms",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args(args)
        .env("WASMJOB_STATE_DIR", &state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while pods hold leases.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while redis_len(&redis.url, "work:processing") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no pod ever leased an item"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let out = wasmjob_with_state(&state, dir.path(), &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for w in &work {
        assert!(record.join(w).exists(), "{w} was lost");
    }
    assert_eq!(redis_len(&redis.url, "work"), 0);
    assert_eq!(redis_len(&redis.url, "work:processing"), 0);
}

#[test]
fn a_dead_hosts_redis_leases_expire_and_another_host_finishes_the_queue() {
    let Some(redis) = redis() else { return };
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    std::fs::create_dir_all(&record).unwrap();
    let work: Vec<String> = (0..12).map(|i| format!("d{i:02}")).collect();
    // Seeded by the manifest: into Redis, since the Job's broker is Redis.
    let job = redis_consumer(dir.path(), &redis.url, "shared")
        .replace("--sleep\", \"10\"", "--sleep\", \"150\"");
    let path = write(
        dir.path(),
        "job.yaml",
        &format!("{}{job}", seed("work-items", "work", &work)),
    );
    let run = |state: &str| {
        Command::new(env!("CARGO_BIN_EXE_wasmjob"))
            .args(["run", path.as_str(), "-q", "--no-logs"])
            .env("WASMJOB_STATE_DIR", dir.path().join(state))
            .env("WASMJOB_REDIS_LEASE_TTL", "1s")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut a = run("state-a");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while redis_len(&redis.url, "work:processing") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no pod ever leased an item"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    a.kill().unwrap();
    let _ = a.wait();
    assert!(
        redis_len(&redis.url, "work:processing") > 0,
        "the dead host's leases remain"
    );
    // Host B never saw host A: its pods wait for A's leases to expire instead of calling the
    // queue drained, then process those items too.
    let b = run("state-b").wait_with_output().unwrap();
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    for w in &work {
        assert!(record.join(w).exists(), "{w} was lost");
    }
    assert_eq!(redis_len(&redis.url, "work"), 0);
    assert_eq!(redis_len(&redis.url, "work:processing"), 0);
}

#[test]
fn a_dropped_redis_connection_is_reestablished() {
    let Some(redis) = redis() else { return };
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    std::fs::create_dir_all(&record).unwrap();
    let work: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    let mut push = vec!["queue", "--broker", redis.url.as_str(), "push", "work"];
    push.extend(work.iter().map(String::as_str));
    assert_eq!(wasmjob(dir.path(), &push).code, 0);
    let job = redis_consumer(dir.path(), &redis.url, "blip")
        .replace("--sleep\", \"10\"", "--sleep\", \"200\"");
    let path = write(dir.path(), "job.yaml", &job);
    let host = Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args(["run", path.as_str(), "-q", "--no-logs"])
        .env("WASMJOB_STATE_DIR", dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while redis_len(&redis.url, "work:processing") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no pod ever leased an item"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query(&mut conn)
        .unwrap();
    let out = host.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for w in &work {
        let n = std::fs::read_to_string(record.join(w)).map_or(0, |t| t.lines().count());
        assert_eq!(n, 1, "{w} processed {n} times");
    }
}
