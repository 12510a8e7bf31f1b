//! `wasmjob bench`: controller throughput against the limit, measured side by side in one
//! process. For each parallelism P it runs (a) the raw wasmtime loop — the same module and
//! engine, `InstancePre`, a fresh store per run, P at a time, no controller — and (b) a Job
//! of the same module with N completions and parallelism P, without and with the state
//! database, and reports pods/s, the ratios to (a), and pod start latency (creation to the
//! container start: a slot of the pool and instantiation, up to the guest's `_start`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::api::manifest::load_paths;
use crate::api::types::Pod;
use crate::clock::TokioClock;
use crate::host::{Host, HostConfig};
use crate::runtime::wasm::WasmRuntime;
use crate::store::db::StateDb;

/// The smallest WASI command: exports `_start` (which returns at once) and a memory.
pub const TRIVIAL_MODULE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type 0: () -> ()
    0x03, 0x02, 0x01, 0x00, // func 0: type 0
    0x05, 0x03, 0x01, 0x00, 0x01, // memory 0: 1 page
    0x07, 0x13, 0x02, // exports:
    0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00, // "_start" func 0
    0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00, // "memory" memory 0
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: func 0 is `end`
];

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The module; the built-in trivial one when unset.
    pub module: Option<PathBuf>,
    /// Its arguments after argv[0].
    pub args: Vec<String>,
    /// Completions of the Job (and runs of the raw loop).
    pub completions: usize,
    /// The parallelisms to measure, one row each.
    pub parallelism: Vec<usize>,
    /// Whether to measure the Job with the state database too.
    pub with_state: bool,
    /// Rounds per parallelism; each figure is the best (shortest) of its rounds.
    pub repeat: usize,
}

/// One parallelism's figures.
#[derive(Debug, Clone)]
pub struct Row {
    /// P.
    pub parallelism: usize,
    /// Wall time of the raw loop.
    pub raw: Duration,
    /// Wall time of the Job, in memory.
    pub job: Duration,
    /// The process's CPU time (all threads) during the raw loop and during the in-memory
    /// Job: their ratio is the cost per pod, which a shared machine's other load disturbs
    /// less than wall time (but which does not see a core left idle).
    pub cpu: (Duration, Duration),
    /// Wall time of the Job with the state database, if measured.
    pub job_state: Option<Duration>,
    /// Pod start latency percentiles (in-memory Job): p50, p99.
    pub start: (Duration, Duration),
    /// Runs or pods that did not succeed (should be 0).
    pub failed: usize,
    /// How the first pod that did not succeed ended, if one did not.
    pub failure: Option<String>,
}

impl Row {
    /// Pods per second of a wall time.
    pub fn rate(n: usize, d: Duration) -> f64 {
        n as f64 / d.as_secs_f64().max(1e-9)
    }
}

/// Runs the benchmark on `runtime` (one engine for every measurement).
pub async fn run(runtime: Arc<WasmRuntime>, config: &BenchConfig) -> Result<Vec<Row>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let module = match &config.module {
        Some(m) => std::path::absolute(m).map_err(|e| format!("{}: {e}", m.display()))?,
        None => {
            let p = dir.path().join("trivial.wasm");
            std::fs::write(&p, TRIVIAL_MODULE).map_err(|e| format!("writing module: {e}"))?;
            p
        }
    };
    let mut rows = Vec::new();
    for &p in &config.parallelism {
        // argv as a pod gets it: the container name, then the arguments.
        let argv: Vec<String> = std::iter::once("bench".to_string())
            .chain(config.args.iter().cloned())
            .collect();
        let mut row: Option<Row> = None;
        for _ in 0..config.repeat.max(1) {
            let cpu0 = process_cpu();
            let (raw, raw_failed) = runtime
                .raw_loop(&module, &argv, config.completions, p)
                .await?;
            let raw_cpu = process_cpu().saturating_sub(cpu0);
            let job = run_job(&runtime, dir.path(), &module, config, p, false).await?;
            let cpu = (raw_cpu, job.cpu);
            let state = if config.with_state {
                Some(run_job(&runtime, dir.path(), &module, config, p, true).await?)
            } else {
                None
            };
            let state_failed = state.as_ref().map_or(0, |s| s.failed);
            let round = Row {
                parallelism: p,
                raw,
                job: job.wall,
                cpu,
                job_state: state.as_ref().map(|s| s.wall),
                start: job.start,
                failed: raw_failed + job.failed + state_failed,
                failure: job.failure.or(state.and_then(|s| s.failure)),
            };
            row = Some(match row {
                None => round,
                Some(best) => Row {
                    parallelism: p,
                    raw: best.raw.min(round.raw),
                    job: best.job.min(round.job),
                    cpu: (best.cpu.0.min(round.cpu.0), best.cpu.1.min(round.cpu.1)),
                    job_state: best.job_state.zip(round.job_state).map(|(a, b)| a.min(b)),
                    start: if round.job < best.job {
                        round.start
                    } else {
                        best.start
                    },
                    failed: best.failed + round.failed,
                    failure: best.failure.or(round.failure),
                },
            });
        }
        rows.extend(row);
    }
    Ok(rows)
}

/// CPU time this process has used so far, all threads together (zero if the clock cannot
/// be read). Through the C library: rustix's own vDSO lookup fails under valgrind.
fn process_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// What one Job run measured.
struct JobRun {
    wall: Duration,
    /// The process's CPU time meanwhile.
    cpu: Duration,
    /// Start latency p50, p99.
    start: (Duration, Duration),
    /// Pods that did not succeed.
    failed: usize,
    /// The first of them: its name, STATUS column and message.
    failure: Option<String>,
}

/// Runs one Job of `module` with `config.completions` completions at parallelism `p`.
async fn run_job(
    runtime: &Arc<WasmRuntime>,
    dir: &Path,
    module: &Path,
    config: &BenchConfig,
    p: usize,
    with_state: bool,
) -> Result<JobRun, String> {
    let args: Vec<String> = config
        .args
        .iter()
        .map(|a| serde_json::to_string(a).unwrap_or_default())
        .collect();
    let manifest = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: bench\nspec:\n  completions: {}\n  \
         parallelism: {p}\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      \
         containers:\n      - name: bench\n        image: {}\n        args: [{}]\n",
        config.completions,
        serde_json::to_string(&module.display().to_string()).unwrap_or_default(),
        args.join(", ")
    );
    let path = dir.join("bench.yaml");
    std::fs::write(&path, manifest).map_err(|e| format!("writing manifest: {e}"))?;
    let jobs = load_paths(&[path]).map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let config = HostConfig {
        watch: false,
        ..HostConfig::default()
    };
    let mut host = Host::new(runtime.clone(), Arc::new(TokioClock::new()), config);
    let state = tempfile::tempdir_in(dir).map_err(|e| format!("state directory: {e}"))?;
    if with_state {
        let db = StateDb::open(state.path()).map_err(|e| e.to_string())?;
        host = host.with_state(db);
    }
    let submissions = host
        .prepare(jobs)
        .map_err(|r| format!("the bench Job was refused: {r:?}"))?;
    let (t0, cpu0) = (std::time::Instant::now(), process_cpu());
    host.submit(submissions);
    let (host, result) = host
        .spawn(std::future::pending(), |_| {})
        .await
        .map_err(|e| e.to_string())?;
    result.map_err(|e| e.to_string())?;
    let (wall, cpu) = (t0.elapsed(), process_cpu().saturating_sub(cpu0));
    let mut latencies: Vec<Duration> = host
        .store()
        .pods
        .iter()
        .filter_map(|e| {
            let (created, started) = e.created_and_started();
            let (created, started) = (created?, started?);
            Some(created.duration_until(started).unsigned_abs())
        })
        .collect();
    latencies.sort();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let failures: Vec<&Pod> = host
        .store()
        .pods
        .iter()
        .filter(|e| !e.succeeded())
        .map(|e| e.pod())
        .collect();
    // The cause is the first pod to fail, not those its Job then stopped.
    let first = failures
        .iter()
        .min_by_key(|p| crate::host::pods::finished_at(p))
        .map(|pod| {
            let message = pod
                .status
                .container_statuses
                .first()
                .and_then(|c| c.state.terminated.as_ref())
                .and_then(|t| t.message.clone())
                .or_else(|| pod.status.message.clone())
                .unwrap_or_default();
            format!(
                "pod/{} {}: {message}",
                pod.metadata.name.as_deref().unwrap_or_default(),
                crate::host::pod_status_column(pod)
            )
        });
    let (failed, failure) = (failures.len(), first);
    Ok(JobRun {
        wall,
        cpu,
        start: (pct(0.5), pct(0.99)),
        failed,
        failure,
    })
}
