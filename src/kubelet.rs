//! The kubelet's part: runs one pod's container, restarts it in place under restartPolicy
//! OnFailure with CrashLoopBackOff-style delays, and reports each change to the host.

use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::controller::backoff::BackoffPolicy;
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

/// Runs the pod until it finishes or `kill` fires (with the reason to report).
pub async fn run_pod(
    run: PodRun,
    clock: Arc<dyn Clock>,
    updates: mpsc::UnboundedSender<PodUpdate>,
    mut kill: oneshot::Receiver<String>,
) {
    let pod = run.pod;
    let mut restarts = 0u32;
    // The host outlives every pod task, so a failed send only means it is shutting down.
    let finish = |exit, started, updates: &mpsc::UnboundedSender<PodUpdate>, at| {
        let _ = updates.send(PodUpdate::Finished {
            pod,
            exit,
            started,
            at,
        });
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
            let (updates, log) = (updates.clone(), log.clone());
            move |at| {
                let _ = updates.send(PodUpdate::Started { pod, at, log });
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
                return finish(PodExit::Terminated(reason), Some(t0), &updates, now);
            }
        };
        log.finish();
        let at = clock.now();
        let t0 = start_once(&started, at, report);
        if exit.success() || !run.restart_on_failure {
            return finish(exit, Some(t0), &updates, at);
        }
        restarts += 1;
        let _ = updates.send(PodUpdate::Restarting {
            pod,
            exit,
            started: t0,
            at,
        });
        tokio::select! {
            () = tokio::time::sleep(run.backoff.delay(restarts)) => {}
            reason = &mut kill => {
                let reason = reason.unwrap_or_else(|_| "Terminated".into());
                return finish(PodExit::Terminated(reason), Some(t0), &updates, clock.now());
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
