//! `wasmjob run`: read, validate and compile every manifest, then run the Jobs with a live
//! view, and print their final state.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use super::output::{Format, render};
use super::{Outcome, RunArgs};
use crate::api::manifest::load_paths;
use crate::api::types::{COMPLETE, FAILED};
use crate::clock::{Clock, TokioClock};
use crate::controller::backoff::BackoffPolicy;
use crate::host::{Change, Host, HostConfig};
use crate::logs::LogStream;
use crate::runtime::wasm::{WasmOptions, WasmRuntime};

/// Runs `wasmjob run` and returns how it ended.
pub fn run(args: RunArgs) -> Outcome {
    let manifests = match load_paths(&args.paths) {
        Ok(m) => m,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Outcome::Invalid;
        }
    };
    if manifests.is_empty() {
        eprintln!("error: no Jobs found in {}", paths_list(&args));
        return Outcome::Invalid;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return Outcome::JobFailed;
        }
    };
    runtime.block_on(run_async(args, manifests))
}

fn paths_list(args: &RunArgs) -> String {
    args.paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn run_async(args: RunArgs, manifests: Vec<crate::api::manifest::JobManifest>) -> Outcome {
    let wasm = match WasmRuntime::new(WasmOptions {
        default_memory_limit: args.memory_limit,
    }) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
    };
    let stream_logs = args.logs || (!args.no_logs && !args.output.structured());
    let log_stream = stream_logs.then(|| {
        let out: Box<dyn Write + Send> = if args.output.structured() {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        LogStream::new(out)
    });
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
    let config = HostConfig {
        backoff: BackoffPolicy {
            base: args.backoff_base,
            max: args.backoff_max,
        },
        log_limit: usize::try_from(args.log_limit).unwrap_or(usize::MAX),
        log_stream,
    };
    let mut host = Host::new(Arc::new(wasm), clock.clone(), config);
    let submissions = match host.prepare(manifests) {
        Ok(s) => s,
        Err(rejected) => {
            for r in rejected {
                let msg = match r.errors.as_slice() {
                    [one] => one.to_string(),
                    many => many.iter().map(|e| format!("\n* {e}")).collect(),
                };
                eprintln!(
                    "error: {}: The Job {:?} is invalid: {msg}",
                    r.source, r.name
                );
            }
            return Outcome::Invalid;
        }
    };
    if args.dry_run {
        return Outcome::Success;
    }
    host.submit(submissions);
    let live = !args.quiet;
    let started = Instant::now();
    if live {
        for job in &host.store().jobs {
            eprintln!("job.batch/{} created", job.name());
        }
    }
    let shutdown = async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: terminating running pods");
        } else {
            std::future::pending::<()>().await;
        }
    };
    host.run(shutdown, |change| {
        if live {
            let t = started.elapsed().as_secs_f64();
            match change {
                Change::Pod {
                    name,
                    status,
                    restarts,
                } if *restarts > 0 => {
                    eprintln!("[{t:7.3}s] pod/{name} {status} (restarts: {restarts})")
                }
                Change::Pod { name, status, .. } => eprintln!("[{t:7.3}s] pod/{name} {status}"),
                Change::Job {
                    name,
                    condition,
                    reason,
                } => {
                    eprintln!("[{t:7.3}s] job.batch/{name} {condition} ({reason})")
                }
            }
        }
    })
    .await;
    let store = host.store();
    let text = render(store, args.output, clock.now());
    let mut stdout = std::io::stdout().lock();
    if !args.output.structured() && stream_logs && !store.pods.is_empty() {
        let _ = writeln!(stdout);
    }
    // A closed stdout (e.g. `| head`) is not an error of the Jobs.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    let all_complete = store
        .jobs
        .iter()
        .all(|j| j.status.condition(COMPLETE).is_some());
    if !all_complete && args.output == Format::Table {
        for j in &store.jobs {
            if j.status.condition(COMPLETE).is_none() && j.status.condition(FAILED).is_none() {
                eprintln!(
                    "note: job.batch/{} did not finish (parallelism {:?} and nothing left to run)",
                    j.name(),
                    j.spec.parallelism.unwrap_or(1)
                );
            }
        }
    }
    if all_complete {
        Outcome::Success
    } else {
        Outcome::JobFailed
    }
}
