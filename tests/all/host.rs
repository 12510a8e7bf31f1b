//! The host loop on the fake runtime with tokio's paused clock: back-off, deadlines and
//! parallelism checked against exact times, without sleeping.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use wasmjob::api::manifest::{JobManifest, parse_documents};
use wasmjob::clock::{Clock, TokioClock};
use wasmjob::host::{Host, HostConfig};
use wasmjob::runtime::fake::FakeRuntime;
use wasmjob::store::Store;
use wasmjob::store::db::StateDb;

const T0: Timestamp = Timestamp::constant(1_700_000_000, 0);

fn job(spec: &str, restart: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: j}}\nspec:\n{spec}\n  template:\n    spec:\n      restartPolicy: {restart}\n      containers: [{{name: c, image: fake.wasm, args: [{}]}}]\n",
        args.join(", ")
    )
}

/// An in-memory host on the fake runtime, its clock at T0, with `manifest`'s Jobs submitted.
fn submitted(manifest: &str) -> Host {
    let (jobs, errs) = parse_documents(manifest, "t.yaml", std::path::Path::new("."));
    assert!(errs.is_empty(), "{errs:?}");
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(T0));
    let mut host = Host::new(Arc::new(FakeRuntime), clock, HostConfig::default());
    let subs = host.prepare(jobs).map_err(|r| format!("{r:?}")).unwrap();
    host.submit(subs);
    host
}

async fn run(manifest: &str) -> Store {
    let mut host = submitted(manifest);
    host.run(std::future::pending(), |_| {})
        .await
        .expect("an in-memory host has no store to fail");
    host.store().clone()
}

fn secs(t: Option<Timestamp>) -> f64 {
    t.unwrap().duration_since(T0).as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn failed_pods_are_replaced_after_exponential_backoff() {
    let store = run(&job(
        "  backoffLimit: 6",
        "Never",
        &["sleep", "1000", "fail-first", "3"],
    ))
    .await;
    let created: Vec<f64> = store
        .pods
        .iter()
        .map(|p| secs(p.pod().metadata.creation_timestamp))
        .collect();
    // Each pod runs 1 s; replacements wait 10 s, 20 s, 40 s after each failure.
    assert_eq!(created, [0.0, 11.0, 32.0, 73.0]);
    let job = &store.jobs[0];
    assert_eq!((job.status.failed, job.status.succeeded), (3, 1));
    assert_eq!(job.status.conditions.last().unwrap().type_, "Complete");
    assert_eq!(secs(job.status.completion_time), 74.0);
}

#[tokio::test(start_paused = true)]
async fn deadline_counts_from_start_time_and_stops_backoff_retries() {
    let store = run(&job(
        "  backoffLimit: 6\n  activeDeadlineSeconds: 30",
        "Never",
        &["sleep", "12000", "exit", "1"],
    ))
    .await;
    let job = &store.jobs[0];
    let last = job.status.conditions.last().unwrap();
    assert_eq!(
        (last.type_.as_str(), last.reason.as_str()),
        ("Failed", "DeadlineExceeded")
    );
    assert_eq!(secs(Some(last.last_transition_time)), 30.0);
    // Pods at 0 s and 22 s (12 s run + 10 s back-off); the second is killed at 30 s.
    assert_eq!(store.pods.len(), 2);
    let killed = store.pods[1].pod();
    assert_eq!(killed.status.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(job.status.failed, 2);
}

#[tokio::test(start_paused = true)]
async fn on_failure_restarts_with_crash_loop_backoff() {
    let store = run(&job(
        "  backoffLimit: 6",
        "OnFailure",
        &["sleep", "1000", "fail-first", "2"],
    ))
    .await;
    assert_eq!(store.pods.len(), 1);
    let cs = &store.pods[0].pod().status.container_statuses[0];
    assert_eq!(cs.restart_count, 2);
    assert_eq!(store.pods[0].logs.len(), 3, "one log per run");
    // Runs at 0, 11 (1 s + 10 s back-off) and 32 (1 s + 20 s): finished at 33 s.
    let t = cs.state.terminated.as_ref().unwrap();
    assert_eq!(secs(Some(t.started_at)), 32.0);
    assert_eq!(secs(Some(t.finished_at)), 33.0);
}

#[tokio::test(start_paused = true)]
async fn crash_loop_backoff_is_capped_at_five_minutes_as_the_kubelet_caps_it() {
    let store = run(&job(
        "  backoffLimit: 10",
        "OnFailure",
        &["sleep", "1000", "fail-first", "7"],
    ))
    .await;
    let cs = &store.pods[0].pod().status.container_statuses[0];
    assert_eq!(cs.restart_count, 7);
    // Each run takes 1 s; back-off 10, 20, 40, 80, 160, then 300 (not 320) and 300 (not
    // 640; the Job controller's own cap, six minutes, is for re-created pods).
    let starts: f64 = 1.0 * 7.0 + [10, 20, 40, 80, 160, 300, 300].iter().sum::<u32>() as f64;
    let t = cs.state.terminated.as_ref().unwrap();
    assert_eq!(secs(Some(t.started_at)), starts);
    assert_eq!(t.exit_code, 0);
}

#[tokio::test(start_paused = true)]
async fn parallelism_bounds_active_pods_at_every_moment() {
    let store = run(&job(
        "  completions: 7\n  parallelism: 3",
        "Never",
        &["sleep", "100"],
    ))
    .await;
    assert_eq!(store.pods.len(), 7);
    let mut edges = Vec::new();
    for p in &store.pods {
        edges.push((p.pod().metadata.creation_timestamp.unwrap(), 1));
        let t = p.pod().status.container_statuses[0]
            .state
            .terminated
            .as_ref()
            .unwrap();
        edges.push((t.finished_at, -1));
    }
    edges.sort();
    let mut cur = 0;
    for (_, d) in edges {
        cur += d;
        assert!(cur <= 3);
    }
    assert_eq!(secs(store.jobs[0].status.completion_time), 0.3);
}

/// Pods that end almost at once (each waits once, so that its start is reported before its
/// end), on two worker threads: each ending pod's thread applies its own update and starts
/// the next pod when the host is free, else the update goes over the channel. Either way the
/// live view sees every pod go Pending, Running, Completed in that order, and never more pods
/// unfinished than the parallelism.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_handed_over_between_threads_keep_order_and_parallelism() {
    use std::collections::HashMap;
    use wasmjob::host::Change;
    let (jobs, errs) = parse_documents(
        &job("  completions: 2000\n  parallelism: 2", "Never", &["yield"]),
        "t.yaml",
        std::path::Path::new("."),
    );
    assert!(errs.is_empty(), "{errs:?}");
    let mut host = Host::new(
        Arc::new(FakeRuntime),
        Arc::new(TokioClock::new()),
        HostConfig::default(),
    );
    let subs = host.prepare(jobs).map_err(|r| format!("{r:?}")).unwrap();
    host.submit(subs);
    // Each pod's statuses as the live view saw them; pods unfinished now, and at most.
    type Seen = (HashMap<String, Vec<String>>, i32, i32);
    let seen: Arc<std::sync::Mutex<Seen>> = Arc::default();
    let watch = seen.clone();
    let (host, result) = host
        .spawn(std::future::pending(), move |change| {
            if let Change::Pod { name, status, .. } = change {
                let (pods, unfinished, most) = &mut *watch.lock().unwrap();
                match status.as_str() {
                    "Pending" => *unfinished += 1,
                    "Completed" => *unfinished -= 1,
                    _ => {}
                }
                *most = (*most).max(*unfinished);
                pods.entry(name.clone()).or_default().push(status.clone());
            }
        })
        .await
        .expect("host task");
    result.expect("an in-memory host has no store to fail");
    let (pods, unfinished, most) = &*seen.lock().unwrap();
    assert_eq!((*unfinished, *most), (0, 2));
    assert_eq!(pods.len(), 2000);
    for (name, statuses) in pods {
        assert_eq!(statuses, &["Pending", "Running", "Completed"], "pod/{name}");
    }
    let store = host.store();
    assert_eq!(store.pods.len(), 2000);
    assert!(
        store
            .pods
            .iter()
            .all(|p| p.pod().status.phase == "Succeeded")
    );
    let status = &store.jobs[0].status;
    assert_eq!(
        (status.succeeded, status.failed, status.active),
        (2000, 0, 0)
    );
    assert_eq!(status.conditions.last().unwrap().type_, "Complete");
    let created = store
        .events
        .iter()
        .filter(|e| e.reason == "SuccessfulCreate")
        .map(|e| e.count)
        .sum::<i32>();
    assert_eq!(created, 2000);
}

/// The statuses the live view showed for each pod of `manifest`, in order, with the store.
async fn watched(manifest: &str) -> (Store, Vec<(String, String)>) {
    let mut host = submitted(manifest);
    let mut seen = Vec::new();
    host.run(std::future::pending(), |change| {
        if let wasmjob::host::Change::Pod { name, status, .. } = change {
            seen.push((name.clone(), status.clone()));
        }
    })
    .await
    .expect("an in-memory host has no store to fail");
    (host.store().clone(), seen)
}

/// A run that ends before it ever waits reports its start with its end, in one update: the
/// live view goes from Pending to Completed, and the pod still has its start time and its
/// log. A run that waits is shown Running while it waits.
#[tokio::test(start_paused = true)]
async fn a_run_that_never_waits_reports_its_start_with_its_end() {
    let (store, seen) = watched(&job("  completions: 1", "Never", &["echo", "hi"])).await;
    let statuses: Vec<&str> = seen.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(statuses, ["Pending", "Completed"]);
    let entry = &store.pods[0];
    let pod = entry.pod();
    assert_eq!(pod.status.phase, "Succeeded");
    assert_eq!(pod.status.start_time, Some(T0));
    let terminated = pod.status.container_statuses[0].state.terminated.as_ref();
    assert_eq!(terminated.map(|t| t.started_at), Some(T0));
    assert_eq!(entry.logs.len(), 1);
    assert_eq!(entry.logs[0].contents(), b"hi\n");

    let (store, seen) = watched(&job("  completions: 1", "Never", &["sleep", "5"])).await;
    let statuses: Vec<&str> = seen.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(statuses, ["Pending", "Running", "Completed"]);
    assert_eq!(store.pods[0].pod().status.start_time, Some(T0));
    assert_eq!(secs(store.jobs[0].status.completion_time), 0.005);
}

/// Runs that wrote nothing share the host's one blank log (a wide Job of quiet pods keeps
/// no log allocation per pod); a run that wrote keeps its own.
#[tokio::test(start_paused = true)]
async fn quiet_runs_share_one_blank_log() {
    let store = run(&job("  completions: 3", "Never", &["exit", "0"])).await;
    let logs: Vec<_> = store.pods.iter().map(|e| &e.logs[..]).collect();
    assert!(
        logs.iter()
            .all(|l| l.len() == 1 && l[0].contents().is_empty())
    );
    assert!(std::sync::Arc::ptr_eq(&logs[0][0], &logs[1][0]));
    assert!(std::sync::Arc::ptr_eq(&logs[1][0], &logs[2][0]));

    let store = run(&job("  completions: 2", "Never", &["echo", "hi"])).await;
    assert!(!std::sync::Arc::ptr_eq(
        &store.pods[0].logs[0],
        &store.pods[1].logs[0]
    ));
    assert_eq!(store.pods[1].logs[0].contents(), b"hi\n");
}

/// A host of a Job whose two pods sleep `ms` milliseconds (more than 10), after a run of
/// 10 ms that was then dropped: the pods still run.
async fn two_pods_of_a_dropped_run(ms: &str) -> Host {
    let mut host = submitted(&job(
        "  completions: 2\n  parallelism: 2",
        "Never",
        &["sleep", ms],
    ));
    let run = host.run(std::future::pending(), |_| {});
    assert!(
        tokio::time::timeout(Duration::from_millis(10), run)
            .await
            .is_err(),
        "the pods sleep {ms} ms"
    );
    host
}

/// A run dropped mid-way leaves its pods running; their updates wake the next run of the
/// same host, which finishes the Job.
#[tokio::test(start_paused = true)]
async fn pods_of_a_dropped_run_wake_the_next_run() {
    let mut host = two_pods_of_a_dropped_run("100").await;
    let second = host.run(std::future::pending(), |_| {});
    tokio::time::timeout(Duration::from_secs(60), second)
        .await
        .expect("the second run hears the pods of the first")
        .expect("an in-memory host has no store to fail");
    let status = &host.store().jobs[0].status;
    assert_eq!((status.succeeded, status.active), (2, 0));
}

/// Pods still running when their host is dropped stop with it: nothing would hear of them.
#[tokio::test(start_paused = true)]
async fn pods_stop_with_their_dropped_host() {
    let host = two_pods_of_a_dropped_run("3600000").await;
    let metrics = tokio::runtime::Handle::current().metrics();
    assert_eq!(metrics.num_alive_tasks(), 2, "a task per pod");
    drop(host);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(metrics.num_alive_tasks(), 0, "the pods' tasks ended");
}

#[tokio::test(start_paused = true)]
async fn shutdown_terminates_running_pods() {
    let mut host = submitted(&job(
        "  completions: 2\n  parallelism: 2",
        "Never",
        &["spin"],
    ));
    host.run(
        tokio::time::sleep(std::time::Duration::from_secs(5)),
        |_| {},
    )
    .await
    .expect("an in-memory host has no store to fail");
    let store = host.store();
    assert_eq!(store.pods.len(), 2);
    for p in &store.pods {
        assert_eq!(p.pod().status.phase, "Failed");
        assert_eq!(p.pod().status.reason.as_deref(), Some("Terminated"));
    }
    assert!(store.jobs[0].status.finished().is_none());
}

/// A panic in the runtime while a pod runs (wasmtime panicked when the kernel refused an
/// munmap at its mapping limit) fails that pod as one that could not run. It used to end the
/// pod's task unreported, and the host waited for the pod forever.
#[tokio::test(start_paused = true)]
async fn a_runtime_that_panics_fails_the_pod_instead_of_hanging_the_host() {
    let manifest = job("  completions: 2\n  backoffLimit: 1", "Never", &["panic"]);
    // On the paused clock an idle host jumps to this deadline instead of hanging the test.
    let store = tokio::time::timeout(Duration::from_secs(3600), run(&manifest))
        .await
        .expect("the host waited for a pod whose task had panicked");
    assert_eq!(store.pods.len(), 2, "the failed pod was replaced once");
    for p in &store.pods {
        assert_eq!(p.pod().status.phase, "Failed");
        let state = &p.pod().status.container_statuses[0].state;
        let terminated = state.terminated.as_ref().expect("terminated");
        assert_eq!(terminated.reason, "ContainerCannotRun");
        assert_eq!(terminated.exit_code, 128);
        assert_eq!(
            terminated.message.as_deref(),
            Some("the wasm runtime failed: the fake runtime panicked")
        );
    }
    let job = &store.jobs[0];
    assert_eq!(job.status.failed, 2);
    let failed = job.status.conditions.iter().find(|c| c.type_ == "Failed");
    assert_eq!(
        failed.map(|c| c.reason.as_str()),
        Some("BackoffLimitExceeded")
    );
}

/// A panic while a stopped run's store goes (the deadline here) is noted in the pod's log;
/// the pod ends as the stop says and the run goes on.
#[tokio::test(start_paused = true)]
async fn a_runtime_that_panics_while_a_pod_is_stopped_does_not_hang_the_host() {
    let manifest = job(
        "  activeDeadlineSeconds: 5",
        "Never",
        &["panic-when-stopped"],
    );
    let store = tokio::time::timeout(Duration::from_secs(3600), run(&manifest))
        .await
        .expect("the host waited for a pod whose task had panicked");
    assert_eq!(store.pods.len(), 1);
    let pod = &store.pods[0];
    assert_eq!(pod.pod().status.phase, "Failed");
    let terminated = pod.pod().status.container_statuses[0]
        .state
        .terminated
        .as_ref();
    assert_eq!(
        terminated.map(|t| t.reason.as_ref()),
        Some("DeadlineExceeded")
    );
    let log = String::from_utf8(pod.logs[0].contents()).unwrap();
    assert!(
        log.contains(
            "the wasm runtime failed: the fake runtime panicked while the run was stopped"
        ),
        "{log}"
    );
    let failed = store.jobs[0]
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed");
    assert_eq!(failed.map(|c| c.reason.as_str()), Some("DeadlineExceeded"));
}

/// Runs `manifest` on a host that keeps state in `dir` and "crashes" (its future is dropped,
/// committing nothing more) `crash_after` into the run.
async fn run_until_crash(dir: &std::path::Path, manifest: &str, crash_after: u64) {
    let (jobs, errs) = parse_documents(manifest, "t.yaml", std::path::Path::new("."));
    assert!(errs.is_empty(), "{errs:?}");
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(T0));
    let db = StateDb::open(dir).unwrap();
    let mut host = Host::new(Arc::new(FakeRuntime), clock, HostConfig::default()).with_state(db);
    let subs = host.prepare(jobs).map_err(|r| format!("{r:?}")).unwrap();
    host.submit(subs);
    let run = host.run(std::future::pending(), |_| {});
    let crashed = tokio::time::timeout(Duration::from_secs(crash_after), run).await;
    assert!(crashed.is_err(), "the Job should still be running");
}

/// A second host takes over what the state directory recorded, `at` seconds after T0.
async fn resume(dir: &std::path::Path, at: i64) -> Store {
    resume_as(dir, at, |_| {}, std::future::pending()).await
}

/// [`resume`], with the recorded Job changed by `record` first (what the earlier host might
/// have committed just before it stopped), until the Job finishes or `stop` fires.
async fn resume_as(
    dir: &std::path::Path,
    at: i64,
    record: impl Fn(&mut wasmjob::api::types::Job),
    stop: impl std::future::Future<Output = ()>,
) -> Store {
    let clock: Arc<dyn Clock> =
        Arc::new(TokioClock::starting_at(T0 + SignedDuration::from_secs(at)));
    let db = StateDb::open(dir).unwrap();
    let recorded = db.recorded_unfinished().unwrap();
    assert_eq!(recorded.len(), 1);
    let mut host = Host::new(Arc::new(FakeRuntime), clock, HostConfig::default()).with_state(db);
    for r in recorded {
        let source = r.source.expect("the source is recorded with the Job");
        let manifest = JobManifest {
            job: r.job.clone(),
            source: source.source,
            base_dir: source.base_dir,
        };
        let sub = host.prepare(vec![manifest]).unwrap().remove(0);
        let mut job = r.job;
        record(&mut job);
        host.adopt(sub, job, r.pods);
    }
    host.run(stop, |_| {}).await.unwrap();
    host.store().clone()
}

#[tokio::test(start_paused = true)]
async fn a_resumed_job_keeps_its_deadline_and_fails_its_lost_pods() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = job(
        "  activeDeadlineSeconds: 30",
        "Never",
        &["sleep", "100000000"],
    );
    run_until_crash(dir.path(), &manifest, 10).await;
    let store = resume(dir.path(), 20).await;
    let job = &store.jobs[0];
    let last = job.status.conditions.last().unwrap();
    assert_eq!(
        (last.type_.as_str(), last.reason.as_str()),
        ("Failed", "DeadlineExceeded")
    );
    // The deadline counts from the recorded startTime, not from the resume.
    assert_eq!(secs(Some(last.last_transition_time)), 30.0);
    assert_eq!(secs(job.status.start_time), 0.0);
    let lost = store.pods[0].pod();
    assert_eq!(lost.status.phase, "Failed");
    assert_eq!(lost.status.reason.as_deref(), Some("NodeLost"));
    assert_eq!(lost.status.conditions[0].type_, "DisruptionTarget");
    assert_eq!(
        job.status.failed,
        store
            .pods
            .iter()
            .filter(|p| p.pod().status.phase == "Failed")
            .count() as i32
    );
}

/// A host that stops while its Job's controller is stopping the Job's pods (the Job was
/// suspended, or met its success criteria, and the pods' ends were not committed yet) leaves
/// them recorded as running; the next host ends them as that stop would have, not as
/// failures of a lost node that count against the Job.
#[tokio::test(start_paused = true)]
async fn pods_a_job_was_stopping_when_its_host_stopped_are_not_counted_as_failed() {
    use wasmjob::api::types::{FAILURE_TARGET, Job, JobCondition, SUCCESS_CRITERIA_MET};
    let manifest = job(
        "  completions: 2\n  parallelism: 2",
        "Never",
        &["sleep", "100000000"],
    );
    fn recorded(_: &mut Job) {}
    fn suspended(job: &mut Job) {
        job.spec.suspend = Some(true);
    }
    /// Pushes the interim condition a Job's controller records before it stops its pods.
    fn interim(job: &mut Job, type_: &str, reason: &str, message: &str) {
        job.status.conditions.push(JobCondition {
            type_: type_.into(),
            status: "True".into(),
            last_probe_time: T0,
            last_transition_time: T0,
            reason: reason.into(),
            message: message.into(),
        });
    }
    fn succeeded(job: &mut Job) {
        let message = "Reached expected number of succeeded pods";
        interim(job, SUCCESS_CRITERIA_MET, "CompletionsReached", message);
    }
    fn failing(job: &mut Job) {
        let message = "Job has reached the specified backoff limit";
        interim(job, FAILURE_TARGET, "BackoffLimitExceeded", message);
    }
    type Record = fn(&mut Job);
    let cases: [(Record, &str, i32); 4] = [
        (recorded, "NodeLost", 2),
        (suspended, "JobSuspended", 0),
        (succeeded, "SuccessCriteriaMet", 0),
        // A failing Job's stopped pods count as failed, as they do while it runs.
        (failing, "BackoffLimitExceeded", 2),
    ];
    for (record, reason, failed) in cases {
        let dir = tempfile::tempdir().unwrap();
        run_until_crash(dir.path(), &manifest, 10).await;
        // A suspended Job waits: the host is stopped 5 s in (before a lost pod's
        // replacement, 10 s of back-off away, would start).
        let stop = tokio::time::sleep(Duration::from_secs(5));
        let store = resume_as(dir.path(), 20, record, stop).await;
        let lost: Vec<_> = store.pods.iter().take(2).map(|p| &p.pod().status).collect();
        for status in &lost {
            assert_eq!(
                (&*status.phase, status.reason.as_deref()),
                ("Failed", Some(reason))
            );
        }
        assert_eq!(store.jobs[0].status.failed, failed, "{reason}");
        // Its event says why it ended so.
        let name = store.pods[0].pod().metadata.name.as_deref().unwrap();
        let events: Vec<&str> = store
            .events_for("Pod", name)
            .map(|e| e.message.as_str())
            .collect();
        assert_eq!(events.len(), 1, "{reason}: {events:?}");
        let stopping = reason != "NodeLost";
        assert_eq!(
            events[0].contains(&format!("({reason})")),
            stopping,
            "{events:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_resumed_job_continues_back_off_from_the_recorded_failures() {
    let dir = tempfile::tempdir().unwrap();
    // Pods fail at once: at 0 s, then at 10 s (after a 10 s back-off); the next is due at
    // 30 s (20 s after the second failure). The host dies at 15 s. The fake counts runs per
    // host, so the resumed host's first two pods fail too: back-off goes on doubling.
    let manifest = job("  backoffLimit: 6", "Never", &["fail-first", "2"]);
    run_until_crash(dir.path(), &manifest, 15).await;
    let store = resume(dir.path(), 15).await;
    let created: Vec<f64> = store
        .pods
        .iter()
        .map(|p| secs(p.pod().metadata.creation_timestamp))
        .collect();
    assert_eq!(created, [0.0, 10.0, 30.0, 70.0, 150.0]);
    let job = &store.jobs[0];
    assert_eq!((job.status.failed, job.status.succeeded), (4, 1));
    assert_eq!(job.status.conditions.last().unwrap().type_, "Complete");
}

fn cron(spec: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: hello}}\nspec:\n  schedule: '*/1 * * * *'\n{spec}\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: c, image: fake.wasm, args: [{}]}}]\n",
        args.join(", ")
    )
}

/// Runs CronJobs on the fake runtime with a paused clock until each made `limit` Jobs.
async fn run_cron(manifest: &str, limit: u32, state: Option<&std::path::Path>) -> Store {
    let (m, errs) =
        wasmjob::api::manifest::parse_manifests(manifest, "c.yaml", std::path::Path::new("."));
    assert!(errs.is_empty(), "{errs:?}");
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(T0));
    let config = HostConfig {
        schedules_limit: Some(limit),
        ..HostConfig::default()
    };
    let mut host = Host::new(Arc::new(FakeRuntime), clock, config);
    if let Some(dir) = state {
        host = host.with_state(StateDb::open(dir).unwrap());
    }
    let subs = host
        .prepare_cronjobs(m.cronjobs)
        .map_err(|r| format!("{r:?}"))
        .unwrap();
    host.submit_cronjobs(subs);
    host.run(std::future::pending(), |_| {}).await.unwrap();
    host.store().clone()
}

/// Most Jobs of `store` running at once, from their start and completion times.
fn max_overlap(store: &Store) -> usize {
    let mut edges = Vec::new();
    for j in &store.jobs {
        let Some(start) = j.status.start_time else {
            panic!("{} never started: {:?}", j.name(), j.status);
        };
        edges.push((start, 1));
        // A replaced Job ends when it is deleted.
        let end = j
            .status
            .completion_time
            .or(j.metadata.deletion_timestamp)
            .or(j.status.conditions.last().map(|c| c.last_transition_time))
            .unwrap();
        edges.push((end, -1));
    }
    edges.sort();
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

#[tokio::test(start_paused = true)]
async fn cronjob_creates_a_job_each_minute_named_by_minute() {
    let store = run_cron(&cron("", &["sleep", "20000"]), 3, None).await;
    let created: Vec<f64> = store
        .jobs
        .iter()
        .map(|j| secs(j.metadata.creation_timestamp))
        .collect();
    // T0 is 22:13:20: the runs are at 22:14, 22:15 and 22:16.
    // (Kubernetes looks again 100 ms after each schedule time.)
    assert_eq!(created, [40.1, 100.1, 160.1]);
    let names: Vec<&str> = store.jobs.iter().map(|j| j.name()).collect();
    let minute = (1_700_000_000 + 40) / 60;
    assert_eq!(
        names,
        [
            format!("hello-{minute}"),
            format!("hello-{}", minute + 1),
            format!("hello-{}", minute + 2)
        ]
    );
    assert!(
        store
            .jobs
            .iter()
            .all(|j| j.status.condition("Complete").is_some())
    );
    let cj = &store.cronjobs[0];
    assert_eq!(secs(cj.status.last_schedule_time), 160.0);
    assert!(cj.status.active.is_empty());
    assert!(cj.status.last_successful_time.is_some());
    // In UTC without spec.timeZone, written as Go's RFC 3339 writes it.
    assert_eq!(
        store.jobs[0].metadata.annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        "2023-11-14T22:14:00Z"
    );
    assert_eq!(store.jobs[0].metadata.owner_references[0].kind, "CronJob");
}

#[tokio::test(start_paused = true)]
async fn concurrency_policies_on_the_host() {
    let slow = ["sleep", "150000"];
    let allow = run_cron(&cron("", &slow), 4, None).await;
    assert!(max_overlap(&allow) >= 2, "Allow overlaps");
    let forbid = run_cron(&cron("  concurrencyPolicy: Forbid", &slow), 3, None).await;
    assert_eq!(max_overlap(&forbid), 1, "Forbid never has two active Jobs");
    let replace = run_cron(&cron("  concurrencyPolicy: Replace", &slow), 3, None).await;
    assert_eq!(max_overlap(&replace), 1, "Replace ends the old Job first");
    let replaced: Vec<_> = replace
        .jobs
        .iter()
        .filter(|j| j.metadata.deletion_timestamp.is_some())
        .collect();
    assert_eq!(replaced.len(), 2, "the first two were replaced");
}

#[tokio::test(start_paused = true)]
async fn history_limits_and_ttl_delete_old_jobs_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = run_cron(
        &cron(
            "  successfulJobsHistoryLimit: 2\n  failedJobsHistoryLimit: 1",
            &["sleep", "1000"],
        ),
        6,
        Some(dir.path()),
    )
    .await;
    let db = StateDb::open_existing(dir.path()).unwrap().unwrap();
    let kept: Vec<wasmjob::api::types::Job> = db.list("Job", None).unwrap();
    // The history limit prunes as new runs finish: the last pass kept 2 (and the newest).
    assert!(kept.len() <= 3, "{}", kept.len());
    assert_eq!(store.jobs.len(), 6);

    let dir = tempfile::tempdir().unwrap();
    let ttl = cron("  successfulJobsHistoryLimit: 100", &["sleep", "1000"]).replace(
        "  jobTemplate:\n    spec:\n",
        "  jobTemplate:\n    spec:\n      ttlSecondsAfterFinished: 30\n",
    );
    run_cron(&ttl, 3, Some(dir.path())).await;
    let db = StateDb::open_existing(dir.path()).unwrap().unwrap();
    let left: Vec<wasmjob::api::types::Job> = db.list("Job", None).unwrap();
    // Runs at 40, 100, 160 s, each done a second later; the host stops after the third
    // finishes (161 s): the first two expired at 71 and 131 s, the third is 30 s from it.
    assert_eq!(left.len(), 1);
}

/// The `SuccessfulCreate` events of Job `j`: (message, count), oldest first.
fn created_events(events: impl IntoIterator<Item = (String, String, i32)>) -> Vec<(String, i32)> {
    events
        .into_iter()
        .filter(|(reason, _, _)| reason == "SuccessfulCreate")
        .map(|(_, message, count)| (message, count))
        .collect()
}

/// As client-go's EventCorrelator: after 9 `Created pod` events of a Job, the rest are one
/// `(combined from similar events)` event with the latest pod's name and a count.
fn assert_combined(created: &[(String, i32)], pods: &[String]) {
    assert_eq!(created.len(), 10, "{created:?}");
    for (i, (message, count)) in created[..9].iter().enumerate() {
        assert_eq!(
            (message.as_str(), *count),
            (format!("Created pod: {}", pods[i]).as_str(), 1)
        );
    }
    let last = pods.last().unwrap();
    assert_eq!(
        created[9],
        (
            format!("(combined from similar events): Created pod: {last}"),
            pods.len() as i32 - 9
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_wide_jobs_create_events_are_combined_as_kubernetes_does() {
    let store = run(&job(
        "  completions: 25\n  parallelism: 5",
        "Never",
        &["sleep", "1000"],
    ))
    .await;
    let pods: Vec<String> = store
        .pods
        .iter()
        .map(|p| p.pod().metadata.name.clone().unwrap())
        .collect();
    assert_eq!(pods.len(), 25);
    let created = created_events(
        store
            .events
            .iter()
            .map(|e| (e.reason.clone(), e.message.clone(), e.count)),
    );
    assert_combined(&created, &pods);
    // Other reasons are their own group.
    assert_eq!(
        store
            .events
            .iter()
            .filter(|e| e.reason == "Completed")
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn combined_events_are_saved_as_they_grow() {
    let dir = tempfile::tempdir().unwrap();
    let (jobs, errs) = parse_documents(
        &job(
            "  completions: 25\n  parallelism: 5",
            "Never",
            &["sleep", "1000"],
        ),
        "t.yaml",
        std::path::Path::new("."),
    );
    assert!(errs.is_empty(), "{errs:?}");
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(T0));
    let db = StateDb::open(dir.path()).unwrap();
    let mut host = Host::new(Arc::new(FakeRuntime), clock, HostConfig::default()).with_state(db);
    let subs = host.prepare(jobs).map_err(|r| format!("{r:?}")).unwrap();
    host.submit(subs);
    host.run(std::future::pending(), |_| {}).await.unwrap();
    let store = host.store().clone();
    drop(host);
    let pods: Vec<String> = store
        .pods
        .iter()
        .map(|p| p.pod().metadata.name.clone().unwrap())
        .collect();
    let db = StateDb::open(dir.path()).unwrap();
    let saved = db.events(store.jobs[0].uid()).unwrap();
    // Pods were created over five seconds, in five commits: the combined event was saved,
    // then counted and renamed in later commits.
    let created = created_events(saved.into_iter().map(|e| (e.reason, e.message, e.count)));
    assert_combined(&created, &pods);
}

/// A Job's pods that only ran and succeeded stay lean records to the end: the tally counted
/// them without making their Pod objects, which are made when read. A failed pod is made
/// into its Pod when it ends (the tally judges failures by the Pod).
#[tokio::test(start_paused = true)]
async fn succeeded_pods_stay_lean_and_failed_ones_are_made_into_pods() {
    let store = run(&job(
        "  completions: 20\n  parallelism: 2",
        "Never",
        &["exit", "0"],
    ))
    .await;
    assert_eq!(store.jobs[0].status.succeeded, 20);
    assert_eq!(store.pods.len(), 20);
    assert!(store.pods.iter().all(|p| p.is_lean() && p.succeeded()));
    assert!(
        store
            .pods
            .iter()
            .all(|p| p.pod().status.phase == "Succeeded")
    );
    let store = run(&job("  backoffLimit: 1", "Never", &["exit", "3"])).await;
    assert_eq!(store.jobs[0].status.failed, 2);
    assert_eq!(store.pods.len(), 2);
    assert!(store.pods.iter().all(|p| !p.is_lean() && !p.succeeded()));
    let exit = |p: &wasmjob::store::PodEntry| {
        let state = &p.pod().status.container_statuses[0].state;
        state.terminated.as_ref().map(|t| t.exit_code)
    };
    assert!(store.pods.iter().all(|p| exit(p) == Some(3)));
}
