//! The kubelet's part: runs one pod's container, restarts it in place under restartPolicy
//! OnFailure with CrashLoopBackOff-style delays, and reports each change to the host.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::controller::backoff::BackoffPolicy;
use crate::host::Shared;
use crate::logs::{LogStream, PodLog};
use crate::runtime::{PodExit, Sandbox};

/// What a pod tells the host.
pub enum PodUpdate {
    /// A container run started, writing to `log`.
    Started {
        /// Host index of the pod.
        pod: usize,
        /// When.
        at: Timestamp,
        /// This run's log.
        log: Arc<PodLog>,
    },
    /// A run failed and the container will restart after a back-off.
    Restarting {
        /// Host index of the pod.
        pod: usize,
        /// How the run ended.
        exit: PodExit,
        /// When it started.
        started: Timestamp,
        /// When it ended.
        at: Timestamp,
    },
    /// The pod is done: its last run ended, or the host terminated it.
    Finished {
        /// Host index of the pod.
        pod: usize,
        /// How the last run ended.
        exit: PodExit,
        /// When it started (None if it never ran).
        started: Option<Timestamp>,
        /// When it ended.
        at: Timestamp,
    },
}

/// How the kubelet runs a pod.
pub struct PodRun {
    /// Host index of the pod.
    pub pod: usize,
    /// Pod name, for log prefixes.
    pub name: String,
    /// Container name, for log prefixes.
    pub container: String,
    /// The pod's sandbox.
    pub sandbox: Box<dyn Sandbox>,
    /// Restart failed runs in place (restartPolicy OnFailure).
    pub restart_on_failure: bool,
    /// Delay between in-place restarts.
    pub backoff: BackoffPolicy,
    /// Per-run log cap.
    pub log_limit: usize,
    /// Live log destination.
    pub log_stream: Option<Arc<LogStream>>,
}

/// A pod the host created in the turn a pod's own update caused, for that pod's task to
/// run next (see [`crate::host::Shared`]).
pub struct Successor {
    /// How to run it.
    pub run: PodRun,
    /// Fires when the host terminates it.
    pub kill: oneshot::Receiver<String>,
}

/// How a pod's updates reach the host: straight into it when no one else holds it (the
/// pod's own thread applies the update and runs the turn it causes), else over the channel.
/// Once one of a pod's updates took the channel its later ones follow, so that the host
/// sees them in order.
pub struct Reporter {
    updates: mpsc::UnboundedSender<PodUpdate>,
    shared: Option<Arc<Shared>>,
    queued: AtomicBool,
}

impl Reporter {
    /// A pod's reporter: over `updates`, or into `shared` when it is free.
    pub fn new(updates: mpsc::UnboundedSender<PodUpdate>, shared: Option<Arc<Shared>>) -> Self {
        Reporter {
            updates,
            shared,
            queued: AtomicBool::new(false),
        }
    }

    /// Reports `update`; with `keep`, a pod the host creates in the turn it causes comes back
    /// to be run by the caller.
    fn report(&self, update: PodUpdate, keep: bool) -> Option<Successor> {
        let update = match &self.shared {
            Some(shared) if !self.queued.load(Ordering::Relaxed) => {
                match shared.report(update, keep) {
                    Ok(successor) => return successor,
                    Err(update) => update,
                }
            }
            _ => update,
        };
        self.queued.store(true, Ordering::Relaxed);
        // The host outlives every pod task, so a failed send only means it is shutting down.
        let _ = self.updates.send(update);
        None
    }
}

/// Runs the pod until it finishes or `kill` fires (with the reason to report), then the
/// pods the host hands this task as they finish.
pub async fn run_pod(
    run: PodRun,
    clock: Arc<dyn Clock>,
    reporter: Reporter,
    kill: oneshot::Receiver<String>,
) {
    // A pod is handed over only after its update went straight into the host, so the
    // reporter has queued nothing and serves the next pod as it is.
    let reporter = Arc::new(reporter);
    let (mut run, mut kill) = (run, kill);
    while let Some(next) = run_one(run, &clock, &reporter, kill).await {
        (run, kill) = (next.run, next.kill);
        // A long chain of pods must not keep the worker from its other tasks.
        tokio::task::consume_budget().await;
    }
}

/// Runs one pod; returns the pod the host handed over when it finished, if any.
async fn run_one(
    run: PodRun,
    clock: &Arc<dyn Clock>,
    reporter: &Arc<Reporter>,
    mut kill: oneshot::Receiver<String>,
) -> Option<Successor> {
    let pod = run.pod;
    let mut restarts = 0u32;
    let finish = |exit, started, at| {
        let update = PodUpdate::Finished {
            pod,
            exit,
            started,
            at,
        };
        reporter.report(update, true)
    };
    loop {
        let log = PodLog::new(
            &run.name,
            &run.container,
            run.log_limit,
            run.log_stream.clone(),
        );
        // The run is reported started when the sandbox says it started (a pod waiting for an
        // instance slot stays Pending), or, if it ends or is stopped first, as it ends, so
        // that every run keeps its log.
        let started: Arc<OnceLock<Timestamp>> = Arc::default();
        let report = {
            let (reporter, log) = (reporter.clone(), log.clone());
            move |at| {
                reporter.report(PodUpdate::Started { pod, at, log }, false);
            }
        };
        let on_start = {
            let (started, clock, report) = (started.clone(), clock.clone(), report.clone());
            Box::new(move || {
                start_once(&started, clock.now(), report);
            })
        };
        let exit = tokio::select! {
            exit = run.sandbox.run(log.clone(), on_start) => exit,
            reason = &mut kill => {
                log.finish();
                let now = clock.now();
                let t0 = start_once(&started, now, report);
                let reason = reason.unwrap_or_else(|_| "Terminated".into());
                return finish(PodExit::Terminated(reason), Some(t0), now);
            }
        };
        log.finish();
        let at = clock.now();
        let t0 = start_once(&started, at, report);
        if exit.success() || !run.restart_on_failure {
            return finish(exit, Some(t0), at);
        }
        restarts += 1;
        reporter.report(
            PodUpdate::Restarting {
                pod,
                exit,
                started: t0,
                at,
            },
            false,
        );
        tokio::select! {
            () = tokio::time::sleep(run.backoff.delay(restarts)) => {}
            reason = &mut kill => {
                let reason = reason.unwrap_or_else(|_| "Terminated".into());
                return finish(PodExit::Terminated(reason), Some(t0), clock.now());
            }
        }
    }
}

/// The run's start time: the first one set, reported (`report`) when this call set it.
fn start_once(
    started: &OnceLock<Timestamp>,
    now: Timestamp,
    report: impl FnOnce(Timestamp),
) -> Timestamp {
    let mut fresh = false;
    let at = *started.get_or_init(|| {
        fresh = true;
        now
    });
    if fresh {
        report(at);
    }
    at
}
