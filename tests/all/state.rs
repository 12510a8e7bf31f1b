//! State that outlives a run: the seeds' kubectl session replayed (get, describe, logs,
//! jsonpath, delete), crash-resume at random SIGKILL points, re-runs, locking, and damaged
//! state directories.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::RngExt;
use serde_json::Value;
use tempfile::TempDir;

use crate::support::*;

/// A state directory and a working directory shared by several commands.
struct Session {
    state: TempDir,
    dir: TempDir,
}

impl Session {
    fn new() -> Self {
        Session {
            state: tempfile::tempdir().unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        wasmjob_with_state(self.state.path(), self.dir.path(), args)
    }

    fn write(&self, name: &str, text: &str) -> String {
        write(self.dir.path(), name, text)
    }

    /// Starts `wasmjob ARGS...` in the background.
    fn spawn(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_wasmjob"))
            .args(args)
            .current_dir(self.dir.path())
            .env("WASMJOB_STATE_DIR", self.state.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting wasmjob")
    }

    /// `get TYPE -o json` items.
    fn items(&self, what: &str) -> Vec<Value> {
        let out = self.run(&["get", what, "-o", "json"]);
        if out.stdout.is_empty() {
            return Vec::new();
        }
        out.json()["items"].as_array().cloned().unwrap_or_default()
    }

    /// Polls until `f` holds (the run is another process), failing after a minute.
    fn wait_for(&self, what: &str, f: impl Fn(&Session) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn phase_count(pods: &[Value], phase: &str) -> i64 {
    pods.iter()
        .filter(|p| p["status"]["phase"] == phase)
        .count() as i64
}

#[test]
fn seeds_kubectl_session_replays_after_the_run() {
    let s = Session::new();
    let pi = examples().join("pi.yaml");
    let out = s.run(&["run", pi.to_str().unwrap(), "-q"]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let jobs = s.run(&["get", "jobs"]);
    let row: Vec<&str> = jobs
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["pi", "Complete", "1/1"], "{}", jobs.stdout);

    let pods = s.run(&["get", "pods"]);
    let rows: Vec<&str> = pods.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", pods.stdout);
    assert!(rows[0].contains("Completed"), "{}", pods.stdout);
    let pod = rows[0].split_whitespace().next().unwrap().to_string();
    assert!(pod.starts_with("pi-") && pod.len() == 8, "{pod}");

    let describe = s.run(&["describe", "jobs/pi"]);
    assert_eq!(describe.code, 0, "{}", describe.stderr);
    let d = &describe.stdout;
    for want in [
        "Name:             pi\n",
        "Namespace:        default\n",
        "Parallelism:      1\n",
        "Completions:      1\n",
        "Backoff Limit:    4\n",
        "Pods Statuses:    0 Active (0 Ready) / 1 Succeeded / 0 Failed\n",
        "Pod Template:\n",
        "           job-name=pi\n",
        "Events:\n  Type    Reason            Age   From            Message\n",
        &format!("job-controller  Created pod: {pod}\n"),
        "job-controller  Job completed\n",
    ] {
        assert!(d.contains(want), "describe lacks {want:?}:\n{d}");
    }
    assert!(d.contains("Start Time:") && d.contains("Completed At:") && d.contains("Duration:"));

    // pods=$(kubectl get pods --selector=job-name=pi --output=jsonpath={.items..metadata.name})
    for template in ["{.items..metadata.name}", "{.items[*].metadata.name}"] {
        let out = s.run(&[
            "get",
            "pods",
            "--selector=job-name=pi",
            &format!("--output=jsonpath={template}"),
        ]);
        assert_eq!(out.stdout, pod, "{template}: {}", out.stderr);
    }
    // Such templates read the pods one by one; with none selected, kubectl's message.
    let none = s.run(&[
        "get",
        "pods",
        "-l",
        "job-name=none",
        "-o",
        "jsonpath=names: {.items[*].metadata.name}",
    ]);
    assert_eq!(
        (none.code, none.stdout.as_str(), none.stderr.as_str()),
        (0, "", "No resources found in default namespace.\n")
    );
    let logs = s.run(&["logs", &pod]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(
        logs.stdout.starts_with("3.14159265358979"),
        "{}",
        logs.stdout
    );
    assert_eq!(logs.stdout.trim_end().len(), 2002);
    let by_job = s.run(&["logs", "job/pi"]);
    assert_eq!(by_job.stdout, logs.stdout);

    let describe_pod = s.run(&["describe", "pod", &pod]);
    for want in [
        "Status:         Succeeded",
        "Controlled By:  Job/pi",
        "Reason:       Completed",
        "Exit Code:    0",
    ] {
        assert!(
            describe_pod.stdout.contains(want),
            "{want}:\n{}",
            describe_pod.stdout
        );
    }

    let pod_uid = s.items("pods")[0]["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let del = s.run(&["delete", "jobs/pi"]);
    assert_eq!(
        (del.code, del.stdout.as_str()),
        (0, "job.batch \"pi\" deleted\n"),
        "{}",
        del.stderr
    );
    let after = s.run(&["get", "jobs"]);
    assert_eq!(after.stdout, "");
    assert_eq!(after.stderr, "No resources found in default namespace.\n");
    assert!(s.items("pods").is_empty());
    let gone = s.run(&["logs", &pod]);
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr.contains(&format!("pods \"{pod}\" not found")),
        "{}",
        gone.stderr
    );
    let events = s.run(&["get", "events", "-o", "json"]);
    assert_eq!(
        events.json()["items"],
        serde_json::json!([]),
        "events of deleted objects go: {}",
        events.stdout
    );
    // The log rows went with the pod.
    let db = wasmjob::store::db::StateDb::open_existing(s.state.path())
        .unwrap()
        .unwrap();
    assert!(db.log_chunks(&pod_uid, 0, -1).unwrap().is_empty());
    let again = s.run(&["delete", "job", "pi"]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("jobs.batch \"pi\" not found"),
        "{}",
        again.stderr
    );
}

#[test]
fn sigkill_at_random_points_loses_and_double_counts_nothing() {
    let s = Session::new();
    let job = testbed_job(
        "twenty",
        "completions: 20\nparallelism: 4\nbackoffLimit: 1000",
        "restartPolicy: Never",
        "",
        &["echo", "working", "sleep", "120", "echo", "done"],
    );
    let path = s.write("job.yaml", &job);
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
    let mut interrupted = 0;
    for round in 0..6 {
        let mut child = s.spawn(&args);
        let delay = rng.random_range(50..900);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let jobs = s.items("jobs");
        let pods = s.items("pods");
        if jobs.is_empty() {
            assert!(pods.is_empty(), "round {round}: pods without their Job");
            continue;
        }
        let status = &jobs[0]["status"];
        // One commit holds a pod's end and the Job's counters: they always agree.
        assert_eq!(
            status["succeeded"].as_i64().unwrap(),
            phase_count(&pods, "Succeeded"),
            "round {round} ({delay} ms)"
        );
        assert_eq!(
            status["failed"].as_i64().unwrap(),
            phase_count(&pods, "Failed"),
            "round {round} ({delay} ms)"
        );
        assert!(phase_count(&pods, "Succeeded") <= 20);
        interrupted += pods
            .iter()
            .filter(|p| matches!(p["status"]["phase"].as_str(), Some("Running" | "Pending")))
            .count();
    }
    let out = s.run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let jobs = s.items("jobs");
    let pods = s.items("pods");
    assert_eq!(conditions(&jobs[0]).last().unwrap().0, "Complete");
    assert_eq!(jobs[0]["status"]["succeeded"], 20);
    assert_eq!(phase_count(&pods, "Succeeded"), 20);
    let failed: Vec<&Value> = pods
        .iter()
        .filter(|p| p["status"]["phase"] == "Failed")
        .collect();
    assert_eq!(
        failed.len(),
        interrupted,
        "every interrupted pod, and only those, failed"
    );
    assert_eq!(jobs[0]["status"]["failed"], interrupted);
    for p in &failed {
        assert_eq!(p["status"]["reason"], "NodeLost", "{p}");
        assert_eq!(p["status"]["conditions"][0]["type"], "DisruptionTarget");
    }
    // Every successful pod's log was kept in full.
    let logs = s.run(&["logs", "-l", "job-name=twenty", "--tail=-1"]);
    assert_eq!(logs.stdout.matches("done\n").count(), 20, "{}", logs.stdout);
}

#[test]
fn logs_of_a_job_with_several_pods_read_its_first_pod() {
    let s = Session::new();
    let job = testbed_job(
        "three",
        "completions: 3",
        "restartPolicy: Never",
        "",
        &["echo", "hi"],
    );
    let path = s.write("job.yaml", &job);
    let out = s.run(&["run", &path, "-q"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut pods = s.items("pods");
    let created = |p: &Value| -> jiff::Timestamp {
        p["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    pods.sort_by_key(created);
    let first = pods[0]["metadata"]["name"].as_str().unwrap();
    let logs = s.run(&["logs", "job/three"]);
    assert_eq!(logs.stdout, "hi\n");
    assert!(
        logs.stderr
            .contains(&format!("Found 3 pods, using pod/{first}")),
        "{}",
        logs.stderr
    );
}

#[test]
fn rerunning_a_manifest_resumes_or_refuses_and_replace_starts_anew() {
    let s = Session::new();
    let job = testbed_job("again", "", "restartPolicy: Never", "", &["echo", "one"]);
    let path = s.write("job.yaml", &job);
    let first = s.run(&["run", &path, "-o", "json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let uid = items(&first.json(), "Job")[0]["metadata"]["uid"].clone();

    let second = s.run(&["run", &path, "-o", "json"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("job.batch/again unchanged"),
        "{}",
        second.stderr
    );
    let list = second.json();
    assert_eq!(items(&list, "Job")[0]["metadata"]["uid"], uid);
    assert_eq!(items(&list, "Pod").len(), 1, "nothing new started");

    let changed = testbed_job("again", "", "restartPolicy: Never", "", &["echo", "two"]);
    s.write("job.yaml", &changed);
    let refused = s.run(&["run", &path]);
    assert_eq!(refused.code, 2);
    assert!(
        refused
            .stderr
            .contains("job.batch \"again\" already exists with a different spec; use --replace"),
        "{}",
        refused.stderr
    );
    assert_eq!(s.items("pods").len(), 1);

    let replaced = s.run(&["run", &path, "--replace", "-o", "json"]);
    assert_eq!(replaced.code, 0, "{}", replaced.stderr);
    let list = replaced.json();
    assert_ne!(items(&list, "Job")[0]["metadata"]["uid"], uid);
    let pods = s.items("pods");
    assert_eq!(pods.len(), 1, "the old pod went with the old Job");
    let name = pods[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(s.run(&["logs", name]).stdout, "two\n");
}

#[test]
fn one_host_per_state_dir_and_views_follow_a_run_in_progress() {
    let s = Session::new();
    let slow = testbed_job(
        "slow",
        "completions: 2",
        "restartPolicy: Never",
        "",
        &["echo", "begin", "sleep", "1500", "echo", "end"],
    );
    let path = s.write("slow.yaml", &slow);
    let mut host = s.spawn(&["run", &path, "-q"]);
    s.wait_for("a running pod", |s| {
        s.items("pods")
            .iter()
            .any(|p| p["status"]["phase"] == "Running")
    });

    let other = s.write(
        "other.yaml",
        &testbed_job("other", "", "restartPolicy: Never", "", &["echo", "x"]),
    );
    let refused = s.run(&["run", &other]);
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("is in use by another wasmjob host (pid"),
        "{}",
        refused.stderr
    );

    // `logs -f` follows the running pod to its end; `get pods -w` prints changes until the
    // run is over.
    let pod = s.items("pods")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let watch = s.spawn(&["get", "pods", "-w", "--request-timeout", "60s"]);
    let follow = s.run(&["logs", "-f", &pod]);
    assert_eq!(follow.stdout, "begin\nend\n", "{}", follow.stderr);
    assert!(host.wait().unwrap().success());
    let watched = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&watched.stdout);
    assert!(text.matches("Completed").count() >= 2, "{text}");
}

#[test]
fn deleting_a_running_job_stops_its_pods_through_the_host() {
    let s = Session::new();
    let job = testbed_job(
        "forever",
        "parallelism: 2\ncompletions: 2",
        "restartPolicy: Never",
        "",
        &["spin"],
    );
    let path = s.write("job.yaml", &job);
    let host = s.spawn(&["run", &path]);
    s.wait_for("two running pods", |s| {
        s.items("pods")
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
            == 2
    });
    let del = s.run(&["delete", "job", "forever"]);
    assert_eq!(
        (del.code, del.stdout.as_str()),
        (0, "job.batch \"forever\" deleted\n"),
        "{}",
        del.stderr
    );
    let out = host.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the Job did not complete: {stderr}"
    );
    assert!(stderr.contains("job.batch/forever deleted"), "{stderr}");
    assert!(s.items("jobs").is_empty());
    assert!(
        s.items("pods").is_empty(),
        "the host wrote no pod after the deletion"
    );
}

#[test]
fn logs_previous_and_tail_pick_container_runs_and_lines() {
    let s = Session::new();
    let job = testbed_job(
        "flaky",
        "backoffLimit: 5",
        "restartPolicy: OnFailure\nvolumes: [{name: data, emptyDir: {}}]",
        "volumeMounts: [{name: data, mountPath: /data}]",
        &[
            "echo",
            "line1",
            "echo",
            "line2",
            "fail-until",
            "/data/count",
            "2",
        ],
    );
    let path = s.write("job.yaml", &job);
    let out = s.run(&["run", &path, "-q", "--backoff-base", "5ms"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pod = s.items("pods")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let current = s.run(&["logs", &pod]);
    assert_eq!(current.stdout, "line1\nline2\nattempt 3: passing\n");
    let previous = s.run(&["logs", &pod, "--previous"]);
    assert_eq!(
        previous.stdout,
        "line1\nline2\nattempt 2 of fail-until 2: failing\n"
    );
    let tail = s.run(&["logs", &pod, "--tail", "1", "--prefix"]);
    assert_eq!(tail.stdout, format!("[pod/{pod}/tb] attempt 3: passing\n"));
    let describe = s.run(&["describe", "pod", &pod]);
    assert!(
        describe.stdout.contains("Restart Count:  2"),
        "{}",
        describe.stdout
    );
    assert!(describe.stdout.contains("BackOff"), "{}", describe.stdout);
    assert!(
        describe.stdout.contains("(x2 over"),
        "repeated events fold: {}",
        describe.stdout
    );

    let first_run_only = testbed_job("once", "", "restartPolicy: Never", "", &["echo", "x"]);
    let p2 = s.write("once.yaml", &first_run_only);
    assert_eq!(s.run(&["run", &p2, "-q"]).code, 0);
    let once = s.run(&["get", "pods", "-l", "job-name=once", "-o", "name"]);
    let once = once.stdout.trim().trim_start_matches("pod/");
    let none = s.run(&["logs", once, "-p"]);
    assert_eq!(none.code, 1);
    assert!(
        none.stderr.contains("previous terminated container \"tb\""),
        "{}",
        none.stderr
    );
}

#[test]
fn get_selects_by_label_and_name_and_prints_kubectl_formats() {
    let s = Session::new();
    let a = testbed_job("alpha", "", "restartPolicy: Never", "", &["echo", "a"]);
    let b = testbed_job("beta", "", "restartPolicy: Never", "", &["exit", "3"]);
    let path = s.write("jobs.yaml", &format!("{a}---\n{b}"));
    let out = s.run(&[
        "run",
        &path,
        "-q",
        "--backoff-base",
        "1ms",
        "--backoff-max",
        "2ms",
    ]);
    assert_eq!(out.code, 1, "beta fails");
    let names = |args: &[&str]| s.run(args).stdout;
    assert_eq!(
        names(&["get", "jobs", "-o", "name"]),
        "job.batch/alpha\njob.batch/beta\n"
    );
    assert_eq!(
        names(&[
            "get",
            "job/beta",
            "-o",
            "jsonpath={.status.conditions[-1:].reason}"
        ]),
        "BackoffLimitExceeded"
    );
    assert_eq!(
        names(&["get", "jobs", "-l", "job-name!=alpha", "-o", "name"]),
        "job.batch/beta\n"
    );
    assert_eq!(
        names(&[
            "get",
            "jobs",
            "-l",
            "job-name in (alpha, gamma)",
            "-o",
            "name"
        ]),
        "job.batch/alpha\n"
    );
    let single = s.run(&["get", "job", "alpha", "-o", "json"]).json();
    assert_eq!(single["kind"], "Job", "one named object prints alone");
    let missing = s.run(&["get", "job", "alpha", "gamma"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("jobs.batch \"gamma\" not found"));
    assert!(missing.stdout.contains("alpha"));
    // Pods are printed from rows built as they are read, not from all pods loaded first.
    let beta = names(&["get", "pods", "-l", "job-name=beta", "-o", "name"]);
    assert_eq!(beta.lines().count(), 7, "backoffLimit 6: {beta}");
    assert!(beta.lines().all(|l| l.starts_with("pod/beta-")), "{beta}");
    let wide = names(&["get", "pods", "-l", "job-name=alpha", "-o", "wide"]);
    let lines: Vec<&str> = wide.lines().collect();
    assert_eq!(lines.len(), 2, "{wide}");
    assert!(lines[0].starts_with("NAME ") && lines[0].ends_with("   EXIT CODE"));
    let alpha: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(alpha.len(), 7, "{wide}");
    assert_eq!(alpha[1..4], ["0/1", "Completed", "0"], "{wide}");
    assert!(
        alpha[5].ends_with("testbed.wasm") && alpha[6] == "0",
        "{wide}"
    );
    let all = names(&["get", "pods", "-A"]);
    assert!(all.starts_with("NAMESPACE   NAME "), "{all}");
    assert_eq!(
        all.lines()
            .skip(1)
            .filter(|l| l.starts_with("default "))
            .count(),
        8
    );
    let missing = s.run(&["get", "pods", alpha[0], "nope"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("pods \"nope\" not found"),
        "{}",
        missing.stderr
    );
    assert_eq!(missing.stdout.lines().count(), 2, "{}", missing.stdout);
    assert!(missing.stdout.contains(alpha[0]));
    let names_all = names(&["get", "pods", "-A", "-o", "name"]);
    assert_eq!(
        names_all.lines().count(),
        8,
        "no namespace in names: {names_all}"
    );
    let named = s.run(&["get", "pods", alpha[0], "nope", "-o", "name"]);
    assert_eq!(named.code, 1);
    assert_eq!(named.stdout, format!("pod/{}\n", alpha[0]));
    assert!(
        named.stderr.contains("pods \"nope\" not found"),
        "{}",
        named.stderr
    );
    for (args, message) in [
        (
            vec!["get", "pods", "-l", "job-name=gamma"],
            "No resources found in default namespace.",
        ),
        (
            vec!["get", "pods", "-n", "other"],
            "No resources found in other namespace.",
        ),
        (
            vec!["get", "pods", "-A", "-l", "job-name=gamma"],
            "No resources found",
        ),
    ] {
        let none = s.run(&args);
        assert_eq!((none.code, none.stdout.as_str()), (0, ""), "{args:?}");
        assert_eq!(none.stderr.trim_end(), message, "{args:?}");
    }
    // JSON and YAML Lists are written as the pods are read, too.
    let list = s.run(&["get", "pods", "-o", "json"]).json();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 8);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["kind"] == "Pod")
    );
    let empty = s
        .run(&["get", "pods", "-l", "job-name=gamma", "-o", "json"])
        .json();
    assert_eq!(
        empty["items"],
        serde_json::json!([]),
        "an empty List, as kubectl prints"
    );
    let yaml = names(&["get", "pods", "-l", "job-name=alpha", "-o", "yaml"]);
    assert!(
        yaml.starts_with("apiVersion: v1\nitems:\n- apiVersion: v1\n"),
        "{yaml}"
    );
    assert!(yaml.contains(&format!("name: {}\n", alpha[0])), "{yaml}");
    // describe finds names by the name index: exactly, else as a prefix, as kubectl does.
    let described = |args: &[&str]| {
        let out = s.run(args);
        let count = out.stdout.matches("\nNamespace:    ").count();
        (out.code, count, out.stderr)
    };
    assert_eq!(
        described(&["describe", "pod", alpha[0]]),
        (0, 1, String::new())
    );
    assert_eq!(
        described(&["describe", "pods", "beta"]),
        (0, 7, String::new())
    );
    let (code, count, stderr) = described(&["describe", "pod", "alpha", "gamma"]);
    assert_eq!((code, count), (1, 1));
    assert!(stderr.contains("pods \"gamma\" not found"), "{stderr}");
    let job = s.run(&["get", "job", "beta", "alpha", "-o", "name"]);
    assert_eq!(
        job.stdout, "job.batch/alpha\njob.batch/beta\n",
        "in name order"
    );
    let bad = s.run(&["get", "pods", "-l", "a in (b"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("unable to parse requirement"),
        "{}",
        bad.stderr
    );
    let events = s.run(&["get", "events"]);
    assert!(
        events.stdout.starts_with("LAST SEEN   TYPE"),
        "{}",
        events.stdout
    );
    assert!(
        events.stdout.contains("BackoffLimitExceeded"),
        "{}",
        events.stdout
    );
    let range = names(&[
        "get",
        "pods",
        "-l",
        "job-name=alpha",
        "-o",
        "jsonpath={range .items[*]}{.metadata.labels.job-name}{\"\\t\"}{.status.phase}{\"\\n\"}{end}",
    ]);
    assert_eq!(range, "alpha\tSucceeded\n");
}

#[test]
fn damaged_or_foreign_state_directories_give_clear_errors() {
    let s = Session::new();
    let job = s.write(
        "job.yaml",
        &testbed_job("j", "", "restartPolicy: Never", "", &["echo", "x"]),
    );
    let db = s.state.path().join("state.db");

    std::fs::write(
        &db,
        b"this is not a database, it is a text file of some length",
    )
    .unwrap();
    for args in [vec!["get", "jobs"], vec!["run", job.as_str()]] {
        let out = s.run(&args);
        assert_eq!(out.code, 1, "{args:?}");
        assert!(
            out.stderr
                .contains("state.db is not a usable wasmjob state database"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"));
    }

    std::fs::remove_file(&db).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE accounts (id INTEGER); INSERT INTO accounts VALUES (1);")
        .unwrap();
    drop(conn);
    let out = s.run(&["run", job.as_str()]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("a SQLite database of another program"),
        "{}",
        out.stderr
    );

    std::fs::remove_file(&db).unwrap();
    assert_eq!(s.run(&["run", job.as_str(), "-q"]).code, 0);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE objects SET body = '{\"kind\": 1' WHERE kind = 'Job'",
        [],
    )
    .unwrap();
    drop(conn);
    let out = s.run(&["get", "jobs"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("Job \"j\" is unreadable"),
        "{}",
        out.stderr
    );

    let file_not_dir = s.dir.path().join("plain-file");
    std::fs::write(&file_not_dir, "x").unwrap();
    let out = wasmjob_with_state(&file_not_dir, s.dir.path(), &["run", job.as_str()]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("state directory"), "{}", out.stderr);
}

#[test]
fn ephemeral_runs_keep_nothing() {
    let s = Session::new();
    let job = s.write(
        "job.yaml",
        &testbed_job("tmp", "", "restartPolicy: Never", "", &["echo", "x"]),
    );
    assert_eq!(s.run(&["run", &job, "--ephemeral", "-q"]).code, 0);
    assert!(!s.state.path().join("state.db").exists());
    assert_eq!(
        s.run(&["get", "jobs"]).stderr,
        "No resources found in default namespace.\n"
    );
}

#[test]
fn a_left_over_request_never_touches_a_later_job_of_the_same_name() {
    let s = Session::new();
    let job = s.write(
        "job.yaml",
        &testbed_job("again", "", "restartPolicy: Never", "", &["echo", "x"]),
    );
    assert_eq!(s.run(&["run", &job, "-q"]).code, 0);
    // A deletion asked of a host that died before serving it, about an older "again".
    let mut db = wasmjob::store::db::StateDb::open(s.state.path()).unwrap();
    db.request(
        "delete",
        "Job",
        "default",
        "again",
        "uid-of-an-older-job",
        "",
    )
    .unwrap();
    drop(db);
    let out = s.run(&["run", &job, "--replace"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("deleted"), "{}", out.stderr);
    assert_eq!(s.items("jobs").len(), 1);
}

#[test]
fn logs_of_a_pod_stopped_in_back_off_show_its_last_run() {
    let s = Session::new();
    let job = testbed_job(
        "crashy",
        "backoffLimit: 2",
        "restartPolicy: OnFailure\nvolumes: [{name: data, emptyDir: {}}]",
        "volumeMounts: [{name: data, mountPath: /data}]",
        &["fail-until", "/data/count", "10"],
    );
    let path = s.write("job.yaml", &job);
    let out = s.run(&["run", &path, "-q", "--backoff-base", "5ms"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let pod = s.items("pods")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.run(&["logs", &pod]).stdout,
        "attempt 2 of fail-until 10: failing\n"
    );
    assert_eq!(
        s.run(&["logs", &pod, "-p"]).stdout,
        "attempt 1 of fail-until 10: failing\n"
    );
}

#[test]
fn orphaned_pods_are_lost_with_their_host_and_can_be_deleted() {
    let s = Session::new();
    let job = s.write(
        "job.yaml",
        &testbed_job(
            "spinner",
            "parallelism: 2\ncompletions: 2",
            "restartPolicy: Never",
            "",
            &["spin"],
        ),
    );
    let mut host = s.spawn(&["run", &job, "-q"]);
    s.wait_for("two running pods", |s| {
        s.items("pods")
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
            == 2
    });
    let del = s.run(&["delete", "job", "spinner", "--cascade=orphan"]);
    assert_eq!(del.code, 0, "{}", del.stderr);
    let pods = s.items("pods");
    assert_eq!(pods.len(), 2, "orphans stay");
    assert!(
        pods.iter()
            .all(|p| p["metadata"]["ownerReferences"].is_null())
    );
    host.kill().unwrap();
    let _ = host.wait();
    let other = s.write(
        "other.yaml",
        &testbed_job("other", "", "restartPolicy: Never", "", &["echo", "x"]),
    );
    assert_eq!(s.run(&["run", &other, "-q"]).code, 0);
    let orphans: Vec<Value> = s
        .items("pods")
        .into_iter()
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("spinner-")
        })
        .collect();
    assert_eq!(orphans.len(), 2);
    for p in &orphans {
        assert_eq!(p["status"]["reason"], "NodeLost", "{p}");
        let name = p["metadata"]["name"].as_str().unwrap();
        let out = s.run(&["delete", "pod", name]);
        assert_eq!(
            out.stdout,
            format!("pod {name:?} deleted\n"),
            "{}",
            out.stderr
        );
    }
    let cron = s.run(&["delete", "cronjob", "other"]);
    assert_eq!(cron.code, 1);
    assert!(
        cron.stderr.contains("cronjobs.batch \"other\" not found"),
        "{}",
        cron.stderr
    );
    assert_eq!(s.items("jobs").len(), 1, "the Job named other is untouched");
    let all = s.run(&["get", "jobs", "-A"]);
    assert!(
        all.stdout.starts_with("NAMESPACE   NAME    STATUS"),
        "{}",
        all.stdout
    );
    assert!(
        all.stdout.contains("\ndefault     other   Complete"),
        "{}",
        all.stdout
    );
}

#[test]
fn ttl_after_finished_deletes_jobs_with_their_pods_and_logs() {
    let s = Session::new();
    let quick = testbed_job(
        "quick",
        "ttlSecondsAfterFinished: 0",
        "restartPolicy: Never",
        "",
        &["echo", "x"],
    );
    let kept = testbed_job(
        "kept",
        "ttlSecondsAfterFinished: 3600",
        "restartPolicy: Never",
        "",
        &["echo", "y"],
    );
    let slow = testbed_job("slow", "", "restartPolicy: Never", "", &["sleep", "1200"]);
    let path = s.write("jobs.yaml", &format!("{quick}---\n{kept}---\n{slow}"));
    let out = s.run(&["run", &path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The host deleted `quick` while `slow` still ran; `kept` has an hour to go.
    assert!(
        out.stderr.contains("job.batch/quick deleted"),
        "{}",
        out.stderr
    );
    let names = s.run(&["get", "jobs", "-o", "name"]).stdout;
    assert_eq!(names, "job.batch/kept\njob.batch/slow\n");
    let pods = s.run(&["get", "pods", "-o", "name"]).stdout;
    assert!(!pods.contains("pod/quick-"), "{pods}");

    // Where no host runs, the next command that looks collects what expired.
    let alone = s.write(
        "alone.yaml",
        &testbed_job(
            "alone",
            "ttlSecondsAfterFinished: 0",
            "restartPolicy: Never",
            "",
            &["echo", "z"],
        ),
    );
    let out = s.run(&["run", &alone, "-o", "name"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("job.batch/alone"),
        "the run still reports how it ended"
    );
    let names = s.run(&["get", "jobs", "-o", "name"]).stdout;
    assert!(!names.contains("alone"), "{names}");
    let db = wasmjob::store::db::StateDb::open_existing(s.state.path())
        .unwrap()
        .unwrap();
    let left: Vec<Value> = db.list("Pod", None).unwrap();
    assert!(left.iter().all(|p| {
        !p["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("alone-")
    }));
}

#[test]
fn ttl_example_validates() {
    let bad = testbed_job(
        "neg",
        "ttlSecondsAfterFinished: -1",
        "restartPolicy: Never",
        "",
        &["echo"],
    );
    let s = Session::new();
    let out = s.run(&["run", &s.write("neg.yaml", &bad)]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(
            "spec.ttlSecondsAfterFinished: Invalid value: -1: must be greater than or equal to 0"
        ),
        "{}",
        out.stderr
    );
    let ok = s.run(&[
        "run",
        examples().join("pi-with-ttl.yaml").to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

#[test]
fn patching_suspend_stops_a_running_job_and_resume_continues_it() {
    let s = Session::new();
    let job = testbed_job(
        "pausable",
        "completions: 2\nparallelism: 2\nactiveDeadlineSeconds: 600",
        "restartPolicy: Never",
        "",
        &["sleep", "1500", "echo", "done"],
    );
    let path = s.write("job.yaml", &job);
    let host = s.spawn(&["run", &path]);
    s.wait_for("two running pods", |s| {
        s.items("pods")
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count()
            == 2
    });
    let patched = s.run(&[
        "patch",
        "job",
        "pausable",
        "--type=strategic",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    assert_eq!(
        (patched.code, patched.stdout.as_str()),
        (0, "job.batch/pausable patched\n"),
        "{}",
        patched.stderr
    );
    let out = host.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("job.batch/pausable is suspended"),
        "{stderr}"
    );
    let j = &s.items("jobs")[0];
    assert_eq!(j["status"]["failed"], 0, "suspension is no failure");
    assert!(conditions(j).contains(&("Suspended".into(), "JobSuspended".into())));
    for p in s.items("pods") {
        assert_eq!(p["status"]["reason"], "JobSuspended", "{p}");
    }

    let resumed = s.run(&["patch", "job/pausable", "-p", "spec: {suspend: false}"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let out = s.run(&["resume", "-q", "--no-logs", "-o", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    let j = &items(&list, "Job")[0];
    assert_eq!(j["status"]["succeeded"], 2);
    assert_eq!(j["status"]["failed"], 0);
    let suspended = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Suspended")
        .unwrap();
    assert_eq!(
        (suspended["status"].as_str(), suspended["reason"].as_str()),
        (Some("False"), Some("JobResumed"))
    );
    assert_eq!(conditions(j).last().unwrap().0, "Complete");

    let bad = s.run(&[
        "patch",
        "job",
        "pausable",
        "-p",
        r#"{"spec":{"parallelism":5}}"#,
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("wasmjob patches spec.suspend only"),
        "{}",
        bad.stderr
    );
}
