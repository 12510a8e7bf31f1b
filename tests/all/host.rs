//! The host loop on the fake runtime with tokio's paused clock: back-off, deadlines and
//! parallelism checked against exact times, without sleeping.

use std::sync::Arc;

use jiff::Timestamp;
use wasmjob::api::manifest::parse_documents;
use wasmjob::clock::{Clock, TokioClock};
use wasmjob::host::{Host, HostConfig};
use wasmjob::runtime::fake::FakeRuntime;
use wasmjob::store::Store;

const T0: Timestamp = Timestamp::constant(1_700_000_000, 0);

fn job(spec: &str, restart: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: j}}\nspec:\n{spec}\n  template:\n    spec:\n      restartPolicy: {restart}\n      containers: [{{name: c, image: fake.wasm, args: [{}]}}]\n",
        args.join(", ")
    )
}

async fn run(manifest: &str) -> Store {
    let (jobs, errs) = parse_documents(manifest, "t.yaml", std::path::Path::new("."));
    assert!(errs.is_empty(), "{errs:?}");
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(T0));
    let mut host = Host::new(Arc::new(FakeRuntime), clock, HostConfig::default());
    let subs = host.prepare(jobs).map_err(|r| format!("{r:?}")).unwrap();
    host.submit(subs);
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
        .map(|p| secs(p.pod.metadata.creation_timestamp))
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
    let killed = &store.pods[1].pod;
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
    let cs = &store.pods[0].pod.status.container_statuses[0];
    assert_eq!(cs.restart_count, 2);
    assert_eq!(store.pods[0].logs.len(), 3, "one log per run");
    // Runs at 0, 11 (1 s + 10 s back-off) and 32 (1 s + 20 s): finished at 33 s.
    let t = cs.state.terminated.as_ref().unwrap();
    assert_eq!(secs(Some(t.started_at)), 32.0);
    assert_eq!(secs(Some(t.finished_at)), 33.0);
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
        edges.push((p.pod.metadata.creation_timestamp.unwrap(), 1));
        let t = p.pod.status.container_statuses[0]
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

#[tokio::test(start_paused = true)]
async fn shutdown_terminates_running_pods() {
    let (jobs, _) = parse_documents(
        &job("  completions: 2\n  parallelism: 2", "Never", &["spin"]),
        "t.yaml",
        std::path::Path::new("."),
    );
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(T0));
    let mut host = Host::new(Arc::new(FakeRuntime), clock, HostConfig::default());
    let subs = host.prepare(jobs).map_err(|r| format!("{r:?}")).unwrap();
    host.submit(subs);
    host.run(
        tokio::time::sleep(std::time::Duration::from_secs(5)),
        |_| {},
    )
    .await
    .expect("an in-memory host has no store to fail");
    let store = host.store();
    assert_eq!(store.pods.len(), 2);
    for p in &store.pods {
        assert_eq!(p.pod.status.phase, "Failed");
        assert_eq!(p.pod.status.reason.as_deref(), Some("Terminated"));
    }
    assert!(store.jobs[0].status.finished().is_none());
}
