//! The kubelet's part: runs one pod's container, restarts it in place under restartPolicy
//! OnFailure with CrashLoopBackOff-style delays, and reports each change to the host.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::controller::backoff::BackoffPolicy;
use crate::host::{Reading, Shared};
use crate::logs::{Ended, LogStream, PodLog};
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
        /// The last run's log, when its start was not reported (a run that ended before it
        /// ever waited): the update then stands for `Started` too.
        log: Option<Arc<PodLog>>,
        /// Whether the last run's log is blank (the host then keeps its one blank log for
        /// it, rather than the run's own).
        blank: bool,
    },
}

/// How the kubelet runs a pod.
pub struct PodRun {
    /// Host index of the pod.
    pub pod: usize,
    /// Pod name, for the prefix of streamed logs (empty when logs do not stream).
    pub name: String,
    /// The pod's own sandbox; none for a pod that runs in its template's shared one.
    pub sandbox: Option<Arc<dyn Sandbox>>,
}

/// How the kubelet runs each pod of a Job (shared by them, so that a pod handed from
/// the host to its task is a few words).
pub struct RunTemplate {
    /// Container name, for the prefix of streamed logs.
    pub container: Arc<str>,
    /// Restart failed runs in place (restartPolicy OnFailure).
    pub restart_on_failure: bool,
    /// Delay between in-place restarts.
    pub backoff: BackoffPolicy,
    /// Per-run log cap.
    pub log_limit: usize,
    /// Live log destination.
    pub log_stream: Option<Arc<LogStream>>,
    /// The sandbox of the Job's pods that have none of their own.
    pub shared: Option<Arc<dyn Sandbox>>,
}

/// A pod the host created in the turn a pod's own update caused, for that pod's task to
/// run next (see [`crate::host::Shared`]).
pub struct Successor {
    /// How to run it.
    pub run: PodRun,
    /// How its Job's pods run, unless it is of the Job whose pod the task just ran (the
    /// task keeps that one: no reference count per pod, which both cores would touch).
    pub template: Option<Arc<RunTemplate>>,
}

/// How the host stops the pod a task runs: one switch per task, which its pods use in
/// turn (a channel per pod was an allocation per pod). An order names its pod, so that one
/// given as a pod ended is no order to the task's next pod.
#[derive(Default)]
pub struct KillSwitch {
    /// The last order: which pod to stop, and why.
    order: Mutex<Option<(usize, String)>>,
    notify: Notify,
}

impl KillSwitch {
    /// Orders pod `pod` stopped, for `reason`.
    pub fn kill(&self, pod: usize, reason: String) {
        *self.order.lock().unwrap_or_else(PoisonError::into_inner) = Some((pod, reason));
        self.notify.notify_waiters();
    }

    /// Completes, with the reason, once pod `pod` is ordered stopped.
    pub async fn killed(&self, pod: usize) -> String {
        loop {
            // Registered before the order is read: an order given after the read wakes it.
            let mut notified = std::pin::pin!(self.notify.notified());
            notified.as_mut().enable();
            if let Some(reason) = self.take(pod) {
                return reason;
            }
            notified.await;
        }
    }

    /// The order to stop pod `pod`, if given.
    fn take(&self, pod: usize) -> Option<String> {
        let mut order = self.order.lock().unwrap_or_else(PoisonError::into_inner);
        order.take_if(|(p, _)| *p == pod).map(|(_, reason)| reason)
    }
}

/// How a pod's updates reach the host: straight into it when no one else holds it (the
/// pod's own thread applies the update and runs the turn it causes), else queued over the
/// channel, with a wake-up for the host's loop. Whoever next holds the host applies the
/// queued updates before anything else, so that it sees all in the order they were reported.
pub struct Reporter {
    updates: UpdateSender,
    shared: Option<Arc<Shared>>,
}

/// The sending end of the host's channel of pod updates, which counts what it sends: the
/// host takes an update off the channel before every turn, and most turns find none, which
/// the count tells at the cost of one load.
#[derive(Clone)]
pub struct UpdateSender {
    tx: mpsc::UnboundedSender<PodUpdate>,
    queued: Arc<AtomicUsize>,
}

impl UpdateSender {
    /// A channel of updates, and the count of those sent and not yet received.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<PodUpdate>, Arc<AtomicUsize>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        (
            UpdateSender {
                tx,
                queued: queued.clone(),
            },
            rx,
            queued,
        )
    }

    /// Sends `update`; the receiver lowers the count as it takes each one. Counted first, so
    /// that a count of none means none is in the channel. The host outlives every pod task,
    /// so a failed send only means it is shutting down.
    pub fn send(&self, update: PodUpdate) {
        self.queued.fetch_add(1, Ordering::Release);
        if self.tx.send(update).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl PodUpdate {
    /// Host index of the pod.
    pub fn pod(&self) -> usize {
        match self {
            PodUpdate::Started { pod, .. }
            | PodUpdate::Restarting { pod, .. }
            | PodUpdate::Finished { pod, .. } => *pod,
        }
    }
}

impl Reporter {
    /// A pod's reporter: over `updates`, or into `shared` when it is free.
    pub fn new(updates: UpdateSender, shared: Option<Arc<Shared>>) -> Self {
        Reporter { updates, shared }
    }

    /// Reports `update`; with `keep` (the caller's kill switch), a pod the host creates in
    /// the turn it causes comes back to be run by the caller. `now`, if given, is the clock's
    /// reading for that turn (the update's own time, read a moment before).
    fn report(
        &self,
        update: PodUpdate,
        keep: Option<&Arc<KillSwitch>>,
        now: Option<Reading>,
    ) -> Option<Successor> {
        let update = match &self.shared {
            Some(shared) => match shared.report(update, keep, now) {
                Ok(successor) => return successor,
                Err(update) => update,
            },
            None => update,
        };
        self.updates.send(update);
        if let Some(shared) = &self.shared {
            shared.wake();
        }
        None
    }
}

/// Runs the pod until it finishes or the host stops it through `kill` (with the reason to
/// report), then the pods the host hands this task as they finish.
pub async fn run_pod(
    run: PodRun,
    template: Arc<RunTemplate>,
    clock: Arc<dyn Clock>,
    reporter: Reporter,
    kill: Arc<KillSwitch>,
) {
    // The pods handed to this task report through the same reporter, and log to the same
    // allocation while the host lets go of their logs (see `PodLog::renew`).
    let reporter = Arc::new(reporter);
    let (mut run, mut template, mut spare) = (run, template, None);
    loop {
        let next;
        (next, spare) = run_one(run, &template, &clock, &reporter, &kill, spare).await;
        let Some(next) = next else { break };
        run = next.run;
        if let Some(other) = next.template {
            template = other;
        }
        // A long chain of pods must not keep the worker from its other tasks.
        tokio::task::consume_budget().await;
    }
}

/// Runs one pod; returns the pod the host handed over when it finished, if any, and its
/// last run's log for the next pod to reuse. `spare` is a log to reuse.
async fn run_one(
    run: PodRun,
    template: &RunTemplate,
    clock: &Arc<dyn Clock>,
    reporter: &Arc<Reporter>,
    kill: &Arc<KillSwitch>,
    mut spare: Option<Arc<PodLog>>,
) -> (Option<Successor>, Option<Arc<PodLog>>) {
    let pod = run.pod;
    let mut restarts = 0u32;
    loop {
        let log = PodLog::renew(
            spare.take(),
            &run.name,
            &template.container,
            template.log_limit,
            template.log_stream.clone(),
        );
        // The sandbox notes when the guest starts (a pod waiting for an instance slot stays
        // Pending). The start is reported once the run first waits; a run that ends (or is
        // stopped) before it ever waited reports its start with its end, in one update, so
        // that a trivial pod costs the host one turn, not two. Every run keeps its log.
        let mut reported = false;
        let report_start = |reported: &mut bool| {
            if let Some(started) = log.started().filter(|_| !*reported) {
                *reported = true;
                let at = clock.at(started);
                let log = log.clone();
                reporter.report(PodUpdate::Started { pod, at, log }, None, None);
            }
        };
        // `ended`: the log as the run ended (its start and blankness, read under one lock).
        let finish = |exit, instant, reported: bool, ended: Ended| {
            let at = clock.at(instant);
            let now = Reading { instant, time: at };
            let update = PodUpdate::Finished {
                pod,
                exit,
                started: Some(clock.at(ended.started.unwrap_or(instant))),
                at,
                log: (!reported).then(|| log.clone()),
                blank: ended.blank,
            };
            reporter.report(update, Some(kill), Some(now))
        };
        // The host hands a pod no sandbox only if its template has a shared one.
        let Some(sandbox) = run.sandbox.as_ref().or(template.shared.as_ref()) else {
            let ended = log.finish();
            let exit = PodExit::CannotRun("the pod has no sandbox".into());
            return (finish(exit, Instant::now(), reported, ended), Some(log));
        };
        // A panic in the runtime (wasmtime's own: e.g. an munmap the kernel refuses at its
        // mapping limit, when a store is made, run or dropped) ends this run as one that
        // could not run. Left to unwind, it would end the pod's task unreported and the host
        // would wait for the pod forever.
        let exit = match guarded(&log, || sandbox.run(log.clone())) {
            Err(exit) => exit,
            Ok(mut sandbox) => {
                // Biased: the run first, then the kill (no random draw per pod to pick).
                let exit = tokio::select! {
                    biased;
                    exit = std::future::poll_fn(|cx| {
                        let poll = guarded(&log, || sandbox.as_mut().poll(cx))
                            .unwrap_or_else(std::task::Poll::Ready);
                        if poll.is_pending() {
                            report_start(&mut reported);
                        }
                        poll
                    }) => exit,
                    reason = kill.killed(pod) => {
                        // The guest's store and instance slot go before the host hears of it.
                        let _ = guarded(&log, move || drop(sandbox));
                        let ended = log.finish();
                        let exit = PodExit::Terminated(reason);
                        let next = finish(exit, Instant::now(), reported, ended);
                        return (next, Some(log));
                    }
                };
                // The run has ended: a panic while its store goes is only noted in its log.
                let _ = guarded(&log, move || drop(sandbox));
                exit
            }
        };
        let ended = log.finish();
        let instant = Instant::now();
        if exit.success() || !template.restart_on_failure {
            let next = finish(exit, instant, reported, ended);
            return (next, Some(log));
        }
        let at = clock.at(instant);
        log.mark_started(instant);
        let t0 = clock.at(log.started().unwrap_or(instant));
        report_start(&mut reported);
        restarts += 1;
        reporter.report(
            PodUpdate::Restarting {
                pod,
                exit,
                started: t0,
                at,
            },
            None,
            None,
        );
        tokio::select! {
            () = tokio::time::sleep(template.backoff.delay(restarts)) => {}
            reason = kill.killed(pod) => {
                // Stopped in back-off: the last run is the one that ended above (its start
                // noted since, if it never started).
                let ended = Ended { started: log.started(), ..ended };
                let exit = PodExit::Terminated(reason);
                let next = finish(exit, Instant::now(), true, ended);
                return (next, Some(log));
            }
        }
    }
}

/// `f`, or the exit of a run that could not run if it panics (noted in `log`).
fn guarded<T>(log: &PodLog, f: impl FnOnce() -> T) -> Result<T, PodExit> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let message = match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
            (Some(s), _) => s,
            (_, Some(s)) => s.as_str(),
            _ => "a panic",
        };
        let msg = format!("the wasm runtime failed: {message}");
        log.note(&msg);
        PodExit::CannotRun(msg)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A task's switch stops the pod an order names, whether the order comes before the
    /// pod waits or while it does, and not the task's next pod.
    #[tokio::test(start_paused = true)]
    async fn a_kill_switch_stops_the_pod_it_names_only() {
        let kill = Arc::new(KillSwitch::default());
        kill.kill(3, "Deleted".into());
        assert_eq!(kill.killed(3).await, "Deleted");
        // Taken: the same pod waits on.
        let again = tokio::time::timeout(Duration::from_secs(1), kill.killed(3));
        assert!(again.await.is_err());
        // An order for pod 3, given as it ended, is none for pod 4.
        kill.kill(3, "Deleted".into());
        let waiting = tokio::spawn({
            let kill = kill.clone();
            async move { kill.killed(4).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        kill.kill(4, "Terminated".into());
        assert_eq!(waiting.await.unwrap(), "Terminated");
    }
}
