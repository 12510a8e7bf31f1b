//! A scripted runtime with no Wasm: each pod's behaviour is read from its container args, so
//! host and controller tests and throughput benchmarks run without guest builds.
//!
//! Args are testbed-like steps: `sleep MS`, `exit N`, `oom`, `trap`, `echo TEXT`, `spin`
//! (waits forever), `yield` (waits once, for no time), `fail-first N` (fail the first N runs
//! of the Job, then succeed), `panic` (the runtime itself panics), `panic-when-stopped`
//! (waits forever; the runtime panics when the run is stopped).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::api::field::ErrorList;
use crate::api::types::Job;
use crate::logs::PodLog;
use crate::runtime::{BoxFuture, PodExit, PodIdentity, PodRuntime, PreparedPod, Sandbox};

/// Runs scripted pods.
#[derive(Debug, Default)]
pub struct FakeRuntime;

struct Script {
    args: Arc<Vec<String>>,
    runs: Arc<AtomicU32>,
}

impl PodRuntime for FakeRuntime {
    fn prepare(&self, job: &Job, _base_dir: &Path) -> Result<Arc<dyn PreparedPod>, ErrorList> {
        let args = job
            .spec
            .template
            .spec
            .containers
            .first()
            .map(|c| c.args.clone())
            .unwrap_or_default();
        Ok(Arc::new(Script {
            args: Arc::new(args),
            runs: Arc::default(),
        }))
    }
}

impl PreparedPod for Script {
    fn image_id(&self) -> Arc<str> {
        "fake".into()
    }
    fn sandbox(&self, _pod: &PodIdentity<'_>) -> Result<Arc<dyn Sandbox>, String> {
        Ok(Arc::new(Script {
            args: self.args.clone(),
            runs: self.runs.clone(),
        }))
    }
}

impl Sandbox for Script {
    fn run(&self, log: Arc<PodLog>) -> BoxFuture<'_, PodExit> {
        let args = self.args.clone();
        let run = self.runs.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            log.mark_started(tokio::time::Instant::now());
            let mut it = args.iter();
            while let Some(step) = it.next() {
                let mut num = || it.next().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
                match step.as_str() {
                    "sleep" => tokio::time::sleep(Duration::from_millis(num())).await,
                    "exit" => return PodExit::Exited(num() as i32),
                    "fail-first" => {
                        if u64::from(run) < num() {
                            return PodExit::Exited(1);
                        }
                    }
                    "oom" => return PodExit::OutOfMemory("memory limit exceeded".into()),
                    "trap" => return PodExit::Trapped("wasm trap: unreachable".into()),
                    "spin" => std::future::pending::<()>().await,
                    "yield" => tokio::task::yield_now().await,
                    "panic" => panic!("the fake runtime panicked"),
                    "panic-when-stopped" => {
                        let _bomb = PanicOnDrop;
                        std::future::pending::<()>().await;
                    }
                    "echo" => {
                        let text = it.next().cloned().unwrap_or_default();
                        log.write(format!("{text}\n").as_bytes());
                    }
                    other => return PodExit::CannotRun(format!("unknown fake step {other:?}")),
                }
            }
            PodExit::Exited(0)
        })
    }
}

/// Panics when dropped: a runtime that fails while a run is stopped.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("the fake runtime panicked while the run was stopped");
    }
}
