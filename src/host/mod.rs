//! The host loop: admits Jobs, reconciles them with the pure controller, and applies each
//! [`Plan`] by starting and terminating pods through the [`PodRuntime`]. It owns the clock
//! and the store; pods report back over a channel. With a [`StateDb`] the pods a turn of the
//! loop creates are committed in one transaction before they start (other changes within
//! [`COMMIT_DELAY`]), so a host killed at any point can be resumed ([`Host::adopt`]) without
//! losing or double-counting a pod.

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use rand::RngExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::defaults::admit_job;
use crate::api::field::{ErrorList, FieldError, Path as FieldPath};
use crate::api::manifest::JobManifest;
use crate::api::types::{Job, Pod};
use crate::clock::Clock;
use crate::controller::backoff::BackoffPolicy;
use crate::controller::job::{ActiveCounts, ActivePod, Observed, Plan, reconcile_status};
use crate::controller::tally::Tally;
use crate::kubelet::{
    KillSwitch, PodRun, PodUpdate, Reporter, RunTemplate, Successor, UpdateSender, run_pod,
};
use crate::logs::{DEFAULT_LOG_LIMIT, LogStream};
use crate::queue::{self, Broker, QueueGrant, QueueRequest};
use crate::runtime::{PodExit, PodIdentity, PodRuntime, PreparedPod};
use crate::store::db::{
    Batch, EventChange, JobSource, LogChunk, PendingSettle, Request, StateDb, StoreError,
    manifest_hash,
};
use crate::store::{PodEntry, Store};

mod cron;
mod events;
mod jobs;
mod persist;
pub mod pods;
mod requests;

pub use cron::{CronSubmission, cron_hash};

pub use pods::pod_status_column;

/// How often the host looks for requests from other processes and saves running pods' logs.
const TICK: Duration = Duration::from_millis(250);
/// Changes that start no pod (pods started or finished, events) are committed at most this
/// long after the previous commit, so that a turn per pod update does not mean a
/// transaction per pod update; new pods are committed (and started) in their own turn.
const COMMIT_DELAY: Duration = Duration::from_millis(20);
/// How many times a pod tries a busy host before it reports over the channel instead (tens
/// of µs: longer than a turn, so that at parallelism up to the cores a pod's thread seldom
/// goes to sleep for want of the host; with 100, a fifth of the CPU time of a P=2 Job of
/// trivial pods went idle).
const SPINS: u32 = 2000;
/// Running pods' new log output is saved every this many ticks.
const LOG_SAVE_TICKS: u32 = 4;

/// Host settings.
#[derive(Clone)]
pub struct HostConfig {
    /// Back-off between failed-pod re-creations and in-place restarts.
    pub backoff: BackoffPolicy,
    /// Cap on each container run's log.
    pub log_limit: usize,
    /// Where pod logs stream live, if anywhere.
    pub log_stream: Option<Arc<LogStream>>,
    /// The broker of pods whose manifest grants work queues (`BROKER_URL`, `QUEUE`).
    pub broker: Option<Arc<dyn Broker>>,
    /// Each CronJob creates at most this many Jobs in this run (`--schedules N`).
    pub schedules_limit: Option<u32>,
    /// Whether [`Host::run`]'s `on_change` is told of changes; without it the host does not
    /// build them.
    pub watch: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            backoff: BackoffPolicy::default(),
            log_limit: DEFAULT_LOG_LIMIT,
            log_stream: None,
            broker: None,
            schedules_limit: None,
            watch: true,
        }
    }
}

/// A change worth showing in a live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A pod was created, started, restarted or finished; `status` is kubectl's STATUS.
    Pod {
        /// Pod name.
        name: String,
        /// e.g. `Running`, `Completed`, `Error`, `OOMKilled`.
        status: String,
        /// Restarts so far.
        restarts: i32,
    },
    /// A Job gained a condition (e.g. `Complete`, `Failed`).
    Job {
        /// Job name.
        name: String,
        /// Condition type.
        condition: String,
        /// Condition reason.
        reason: String,
    },
    /// A CronJob created a Job.
    JobCreated {
        /// The Job's name.
        name: String,
        /// The CronJob's name.
        cronjob: String,
    },
    /// A Job was deleted by `wasmjob delete` while the host ran it.
    JobDeleted {
        /// Job name.
        name: String,
    },
}

/// The queues a Job's pods may use, with their broker.
type JobQueues = (QueueRequest, Arc<dyn Broker>);

/// A Job accepted by the host, with its prepared pod template.
pub struct Submission {
    job: Job,
    prepared: Arc<dyn PreparedPod>,
    source: JobSource,
    /// The queues the pods may use, with their broker.
    queues: Option<JobQueues>,
}

impl Submission {
    /// The Job.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Where it came from.
    pub fn source(&self) -> &JobSource {
        &self.source
    }
}

/// A Job that could not be prepared, with its problems.
#[derive(Debug)]
pub struct Rejected {
    /// Where the Job came from.
    pub source: String,
    /// Its name.
    pub name: String,
    /// What is wrong.
    pub errors: ErrorList,
}

/// Per-Job bookkeeping beside the Job object.
struct JobState {
    prepared: Arc<dyn PreparedPod>,
    /// The work queues its pods may use, with their broker.
    queues: Option<JobQueues>,
    /// Its pods that have not finished, kept up to date as they change (in no particular
    /// order), so that a reconcile pass need not gather them.
    active: Vec<ActivePod>,
    /// `active`, counted as it changes.
    counts: ActiveCounts,
    /// Its finished pods, folded.
    tally: Tally,
    /// What its pods have in common.
    template: Arc<pods::PodTemplate>,
    /// How the kubelet runs its pods.
    run: Arc<RunTemplate>,
    requeue_at: Option<Instant>,
    /// Written to the store once, with the Job's first commit.
    source: Option<JobSource>,
    /// Whether the state database's pod names under its prefix are in `Host::names`.
    stored_names_loaded: bool,
    dirty: bool,
    deleted: bool,
}

/// Per-pod bookkeeping beside the Pod object.
struct PodState {
    /// The kill switch of the task that runs the pod, while it runs and was not stopped.
    kill: Option<Arc<KillSwitch>>,
    /// Where the pod is in its Job's `active` list while it has not finished.
    slot: usize,
    dirty: bool,
    /// First container run whose log may have output not yet saved.
    unsaved_run: usize,
}

/// A pod created in this turn, started once the turn is committed.
struct Start {
    pod: usize,
    run: Result<PodRun, String>,
}

/// Runs Jobs to completion.
pub struct Host {
    runtime: Arc<dyn PodRuntime>,
    clock: Arc<dyn Clock>,
    config: HostConfig,
    store: Store,
    jobs: Vec<JobState>,
    crons: Vec<cron::CronState>,
    pods: Vec<PodState>,
    /// Pod names this host did not draw (adopted pods', and the state database's under a
    /// Job's prefix), by [`jobs::name_key`]: a drawn name is checked against them.
    names: foldhash::HashSet<u64>,
    /// Where each name prefix's sequence of suffixes stands (see [`jobs::NameSequence`]).
    name_sequences: foldhash::HashMap<Arc<str>, jobs::NameSequence>,
    /// The log of every finished run that wrote nothing.
    blank_log: Arc<crate::logs::PodLog>,
    /// Draws pod names and uids: seeded from the system's generator, then fast (the thread
    /// generator costs a cryptographic block and a reference count per draw).
    rng: rand::rngs::SmallRng,
    updates_tx: UpdateSender,
    updates_rx: mpsc::UnboundedReceiver<PodUpdate>,
    /// Updates sent over the channel and not yet taken (see [`UpdateSender`]).
    queued: Arc<AtomicUsize>,
    db: Option<StateDb>,
    dirty_jobs: Vec<usize>,
    dirty_crons: Vec<usize>,
    dirty_pods: Vec<usize>,
    events: events::Events,
    starts: Vec<Start>,
    done_requests: Vec<i64>,
    /// Pods whose run ended since the last commit, and whether it succeeded: their queue
    /// leases are settled in that commit.
    settle: Vec<(String, bool)>,
    /// Settlements an external broker owes, recorded in the next commit.
    outbox: Vec<PendingSettle>,
    /// Holders whose external settlement is done, dropped from the outbox in the next commit.
    settled: Vec<String>,
    /// Redis brokers by URL, connected once.
    redis: std::sync::Mutex<std::collections::HashMap<String, Arc<dyn Broker>>>,
    /// Uids of objects deleted while the host ran; they are never written again.
    deleted: HashSet<String>,
    store_error: Option<StoreError>,
    /// When the state database was last committed to.
    last_commit: Instant,
    /// The clock's reading for the last turn (at first, the host's creation): a moment
    /// already past, so what is requeued at it is due at the next turn, without a clock read
    /// per pod update.
    last_turn: Instant,
    /// Changes not yet shown to `on_change` (only kept with [`HostConfig::watch`]).
    changes: Vec<Change>,
    /// Pods are being terminated and nothing new starts: the run ends once they have.
    shutting_down: bool,
    /// When the loop of [`Host::run`] next wakes by itself, as of its last turn.
    loop_next: Option<Instant>,
    /// The host as its pods reach it while it runs.
    shared: std::sync::Weak<Shared>,
    /// Wakes the loop of [`Host::run`]; one for the host's life, so that pods of a run that
    /// was dropped (whose reporters hold that run's [`Shared`]) still wake a later run.
    wake: Arc<tokio::sync::Notify>,
}

impl Host {
    /// A host with no Jobs that keeps its state in memory only.
    pub fn new(runtime: Arc<dyn PodRuntime>, clock: Arc<dyn Clock>, config: HostConfig) -> Self {
        let (updates_tx, updates_rx, queued) = UpdateSender::channel();
        Host {
            runtime,
            clock,
            config,
            store: Store::default(),
            jobs: Vec::new(),
            crons: Vec::new(),
            pods: Vec::new(),
            names: Default::default(),
            name_sequences: Default::default(),
            rng: rand::make_rng(),
            blank_log: crate::logs::PodLog::new("", "", 0, None),
            updates_tx,
            updates_rx,
            queued,
            db: None,
            dirty_jobs: Vec::new(),
            dirty_crons: Vec::new(),
            dirty_pods: Vec::new(),
            events: events::Events::default(),
            starts: Vec::new(),
            done_requests: Vec::new(),
            settle: Vec::new(),
            outbox: Vec::new(),
            settled: Vec::new(),
            redis: Default::default(),
            deleted: HashSet::new(),
            store_error: None,
            last_commit: Instant::now(),
            last_turn: Instant::now(),
            changes: Vec::new(),
            shutting_down: false,
            loop_next: None,
            shared: std::sync::Weak::new(),
            wake: Arc::default(),
        }
    }

    /// Keeps the host's state in `db`: each turn of the loop is committed before the pods it
    /// created start. The caller holds the directory's [`crate::store::db::HostLock`]. Call
    /// it before submitting anything: a host without a database tracks no changes to save.
    pub fn with_state(mut self, db: StateDb) -> Self {
        self.db = Some(db);
        self
    }

    /// Prepares every Job's pod template (reads and compiles modules). Either all are ready,
    /// or nothing is submitted and every problem is returned.
    pub fn prepare(&self, manifests: Vec<JobManifest>) -> Result<Vec<Submission>, Vec<Rejected>> {
        let mut ok = Vec::new();
        let mut rejected = Vec::new();
        for m in manifests {
            let prepared = self.broker_for(&m.job).and_then(|queues| {
                let prepared = self.runtime.prepare(&m.job, &m.base_dir)?;
                Ok((prepared, queues))
            });
            match prepared {
                Ok((prepared, queues)) => {
                    let source = JobSource {
                        source: m.source,
                        base_dir: absolute(&m.base_dir),
                        spec_hash: manifest_hash(&m.job),
                    };
                    ok.push(Submission {
                        job: m.job,
                        prepared,
                        source,
                        queues,
                    })
                }
                Err(errors) => rejected.push(Rejected {
                    source: m.source,
                    name: m.job.name().to_string(),
                    errors,
                }),
            }
        }
        if rejected.is_empty() {
            Ok(ok)
        } else {
            Err(rejected)
        }
    }

    /// The broker of a Job whose pods use queues: Redis for a `redis://` URL (connected once
    /// per URL), else the embedded one. Queues granted without a broker (a host that keeps no
    /// state) are denied to the pod.
    fn broker_for(&self, job: &Job) -> Result<Option<JobQueues>, ErrorList> {
        let Some(req) = queue::requested(job)? else {
            return Ok(None);
        };
        if !queue::is_redis(&req.url) {
            return Ok(self.config.broker.clone().map(|b| (req, b)));
        }
        let mut cache = self.redis.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = cache.get(&req.url) {
            return Ok(Some((req, b.clone())));
        }
        let broker = queue::connect_redis(&req.url).map_err(|e| {
            vec![FieldError::invalid(
                &FieldPath::new("spec")
                    .child("template")
                    .child("spec")
                    .child("containers")
                    .index(0)
                    .child("env")
                    .key("BROKER_URL"),
                req.url.as_str(),
                format!("cannot reach the broker: {e}"),
            )]
        })?;
        cache.insert(req.url.clone(), broker.clone());
        Ok(Some((req, broker)))
    }

    /// Admits prepared Jobs: assigns uids, the selector and pod labels, as the API server does.
    pub fn submit(&mut self, submissions: Vec<Submission>) {
        for Submission {
            mut job,
            prepared,
            source,
            queues,
        } in submissions
        {
            admit_job(&mut job, uuid::Uuid::new_v4().to_string(), self.clock.now());
            self.push_job(job, prepared, Some(source), queues, Vec::new());
        }
    }

    /// Takes over Job `stored`, recorded by an earlier host, with its pods; `submission` is
    /// its manifest, prepared (the same spec). Pods that were still pending or running when
    /// that host stopped are marked failed, as Kubernetes marks the pods of a lost node (or,
    /// if the Job was stopping them, as that stop ends them: see [`pods::stopping_reason`]);
    /// finished pods count as they were recorded, and back-off and deadlines continue from
    /// the recorded times.
    pub fn adopt(&mut self, submission: Submission, stored: Job, pods: Vec<Pod>) {
        self.adopt_parts(stored, submission.prepared, submission.queues, pods);
    }

    fn adopt_parts(
        &mut self,
        stored: Job,
        prepared: Arc<dyn PreparedPod>,
        queues: Option<JobQueues>,
        mut pods: Vec<Pod>,
    ) {
        let now = self.clock.now();
        let stopping = pods::stopping_reason(&stored);
        let mut lost = Vec::new();
        for (i, pod) in pods.iter_mut().enumerate() {
            if !pods::is_finished(pod) {
                pods::lost(pod, now, stopping);
                lost.push(i);
            }
        }
        let first = self.store.pods.len();
        self.push_job(stored, prepared, None, queues, pods);
        for i in lost {
            let p = first + i;
            let name = self.pod_name(p);
            self.touch_pod(p);
            self.settle_leases(p, false);
            let message = match stopping {
                None => {
                    format!("Pod {name} was running when the wasmjob host stopped; marked Failed")
                }
                Some(reason) => format!(
                    "Pod {name} was running when the wasmjob host stopped, which was stopping it \
                     ({reason}); marked Failed with that reason"
                ),
            };
            self.event("Pod", p, "Warning", pods::REASON_NODE_LOST, message, now);
        }
    }

    fn push_job(
        &mut self,
        job: Job,
        prepared: Arc<dyn PreparedPod>,
        source: Option<JobSource>,
        queues: Option<JobQueues>,
        pods: Vec<Pod>,
    ) -> usize {
        let j = self.store.jobs.len();
        let mut state = JobState {
            tally: Tally::new(&job.spec),
            template: Arc::new(pods::PodTemplate::new(&job, prepared.image_id())),
            run: Arc::new(RunTemplate {
                container: (job.spec.template.spec.containers.first())
                    .map_or_else(|| "".into(), |c| c.name.as_str().into()),
                restart_on_failure: job.spec.template.spec.restart_policy.as_deref()
                    == Some("OnFailure"),
                backoff: self.config.backoff.crash_loop(),
                log_limit: self.config.log_limit,
                log_stream: self.config.log_stream.clone(),
                shared: prepared.shared_sandbox(),
            }),
            queues,
            prepared,
            active: Vec::new(),
            counts: ActiveCounts::default(),
            requeue_at: Some(self.last_turn),
            source,
            stored_names_loaded: false,
            dirty: false,
            deleted: false,
        };
        // The tally is rebuilt from the pods in the order they finished, as the Job
        // controller counts them.
        let mut finished: Vec<(Timestamp, &Pod)> = pods
            .iter()
            .filter_map(|p| Some((pods::finished_at(p)?, p)))
            .collect();
        finished.sort_by_key(|(at, _)| *at);
        for (at, pod) in finished {
            state.tally.finished(&job.spec, pod, at);
        }
        // Room for the pods the Job will at least create, so that a wide Job's tables do
        // not grow (rehashing and copying) pod by pod.
        let expected = job
            .spec
            .completions
            .or(job.spec.parallelism)
            .map_or(0, |n| usize::try_from(n).unwrap_or(0).min(1 << 17));
        self.store.pods.reserve(expected);
        self.pods.reserve(expected);
        self.store.jobs.push(job);
        self.jobs.push(state);
        for pod in pods {
            if let Some(name) = &pod.metadata.name {
                self.names.insert(jobs::name_key(name));
            }
            self.store.pods.push(Box::new(PodEntry::new(pod, j)));
            self.pods.push(PodState {
                kill: None,
                slot: usize::MAX,
                dirty: false,
                unsaved_run: 0,
            });
        }
        self.touch_job(j);
        j
    }

    /// Closes the state database, if the host keeps one (dropping the host does too).
    pub fn close_state(&mut self) {
        self.db = None;
    }

    /// The objects so far.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs until every Job has finished (or can make no progress, e.g. parallelism 0), or
    /// until `shutdown` resolves, in which case running pods are terminated first.
    /// `on_change` sees each change (with [`HostConfig::watch`]), in order, shortly after it
    /// happens. Fails only if the state database does; running pods are terminated first then.
    ///
    /// While it runs the host is shared with its pods ([`Shared`]): a pod that ends applies
    /// its own update and starts the next pod on its own thread when no one else is busy
    /// with the host, and this loop does the rest (timers, requests, shutdown, updates
    /// that found the host busy).
    pub async fn run(
        &mut self,
        shutdown: impl Future<Output = ()>,
        mut on_change: impl FnMut(&Change),
    ) -> Result<(), StoreError> {
        let running = Running::start(self);
        let shared = running.shared.clone();
        let has_db = lock(&shared).as_ref().is_some_and(|h| h.db.is_some());
        tokio::pin!(shutdown);
        let mut ticks = 0u32;
        let mut tick = tokio::time::interval_at(Instant::now() + TICK, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = Vec::new();
        loop {
            let (end, shutting_down, queued) = {
                let mut guard = lock(&shared);
                let Some(host) = guard.as_mut() else { break };
                host.apply_queued();
                let (end, _) = host.turn(None, None);
                shared.active.store(end.active, Ordering::Relaxed);
                host.loop_next = end.next;
                std::mem::swap(&mut host.changes, &mut changes);
                (end, host.shutting_down, host.has_queued())
            };
            for change in changes.drain(..) {
                on_change(&change);
            }
            if end.done {
                break;
            }
            if queued {
                // Updates came while the turn ran (or from it: pods that could not start).
                // They are taken at once, but through the select, so that a stream of them
                // still lets shutdown and the ticks in.
                shared.wake();
            }
            tokio::select! {
                // Updates that found the host busy are queued with a wake-up.
                () = shared.wake.notified() => {}
                () = sleep_until(end.next) => {}
                _ = tick.tick(), if has_db => {
                    let mut guard = lock(&shared);
                    let Some(host) = guard.as_mut() else { break };
                    ticks += 1;
                    if ticks.is_multiple_of(LOG_SAVE_TICKS) {
                        host.touch_running_pods();
                    }
                    for (_, broker) in host.jobs.iter().filter_map(|j| j.queues.as_ref()) {
                        broker.keepalive();
                    }
                    if !host.shutting_down {
                        host.serve_requests();
                        host.collect_expired();
                    }
                }
                () = &mut shutdown, if !shutting_down => {
                    let mut guard = lock(&shared);
                    let Some(host) = guard.as_mut() else { break };
                    host.shutting_down = true;
                    host.kill_all();
                }
            }
        }
        drop(running);
        self.commit(true);
        match self.store_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Applies the updates that found the host busy, in the order they were queued; whether
    /// there were any.
    fn apply_queued(&mut self) -> bool {
        if !self.has_queued() {
            return false;
        }
        let mut any = false;
        while let Ok(update) = self.updates_rx.try_recv() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.apply(update);
            any = true;
        }
        any
    }

    /// Whether updates wait in the channel (or are being sent).
    fn has_queued(&self) -> bool {
        self.queued.load(Ordering::Acquire) > 0
    }

    /// One turn of the host: reconciles what is due, commits (with a state database: what
    /// pods it creates, at once, and the rest within [`COMMIT_DELAY`]) and starts the pods
    /// it created; with `keep` (the Job of the pod the caller ran, and the caller's kill
    /// switch), the first of them is returned to be run by the caller. `now` is the clock's
    /// reading, if the caller has just read it.
    fn turn(
        &mut self,
        keep: Option<(usize, &Arc<KillSwitch>)>,
        now: Option<Reading>,
    ) -> (TurnEnd, Option<Successor>) {
        // A reading taken before the caller waited for the host may be older than the last
        // turn's: time never goes back from turn to turn.
        let now = match now {
            Some(reading) if reading.instant >= self.last_turn => reading,
            _ => {
                let instant = now.map_or_else(Instant::now, |r| r.instant.max(self.last_turn));
                Reading {
                    instant,
                    time: self.clock.at(instant),
                }
            }
        };
        self.last_turn = now.instant;
        if self.store_error.is_some() && !self.shutting_down {
            self.shutting_down = true;
            self.kill_all();
        }
        for c in 0..self.crons.len() {
            if !self.shutting_down && self.crons[c].requeue_at.is_some_and(|t| t <= now.instant) {
                self.crons[c].requeue_at = None;
                self.sync_cron(c, now);
            }
        }
        for j in 0..self.jobs.len() {
            if self.jobs[j].requeue_at.is_some_and(|t| t <= now.instant) {
                self.jobs[j].requeue_at = None;
                if self.shutting_down {
                    self.count_pods(j);
                } else {
                    self.sync_job(j, now);
                }
            }
        }
        let mut commit_at = self.last_commit + COMMIT_DELAY;
        if let Some(t) = self.events.changes_saved
            && !self.events.changed.is_empty()
        {
            // Changes to saved events wait for a commit COMMIT_DELAY after their last
            // write (see `commit`), not after the last commit.
            commit_at = commit_at.min(t + COMMIT_DELAY);
        }
        if self.db.is_none() || !self.starts.is_empty() || Instant::now() >= commit_at {
            self.commit(false);
        }
        if self.store_error.is_some() && !self.shutting_down {
            self.shutting_down = true;
            self.kill_all();
        }
        let successor = self.start_pods(keep);
        let active = self.jobs.iter().map(|j| j.active.len()).sum();
        let next = self
            .jobs
            .iter()
            .filter_map(|j| j.requeue_at)
            .chain(self.crons.iter().filter_map(|c| c.requeue_at))
            .min();
        let done = active == 0 && (next.is_none() || self.shutting_down);
        // What waits for a commit is written by `commit_at` at the latest.
        let next = match self.unsaved() {
            true => Some(next.map_or(commit_at, |n| n.min(commit_at))),
            false => next,
        };
        (TurnEnd { done, next, active }, successor)
    }

    /// [`Host::run`] as a task of its own on the current tokio runtime; the task gives the
    /// host back with the result. On a multi-thread runtime this is the fast way to run it:
    /// the loop then lives on a worker thread, where the updates that found the host busy
    /// reach it without waking a thread of their own (awaited from `block_on`, each of
    /// them crosses threads).
    pub fn spawn(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        mut on_change: impl FnMut(&Change) + Send + 'static,
    ) -> tokio::task::JoinHandle<(Host, Result<(), StoreError>)> {
        tokio::spawn(async move {
            let result = self.run(shutdown, &mut on_change).await;
            (self, result)
        })
    }

    fn kill_all(&mut self) {
        for p in 0..self.pods.len() {
            self.kill(p, pods::REASON_SHUTDOWN);
        }
    }
}

impl Drop for Host {
    /// Pods still running stop with their host: no one would hear of them again.
    fn drop(&mut self) {
        for (p, state) in self.pods.iter_mut().enumerate() {
            if let Some(kill) = state.kill.take() {
                kill.kill(p, pods::REASON_SHUTDOWN.into());
            }
        }
    }
}

/// A reading of the clock, as tokio's instant and as the time it stands for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    /// Tokio's clock.
    pub instant: Instant,
    /// The time ([`Clock::at`] the instant).
    pub time: Timestamp,
}

/// How a turn of the host ended.
struct TurnEnd {
    /// Nothing runs and nothing is due: the run is over.
    done: bool,
    /// When the next turn is due if nothing happens before.
    next: Option<Instant>,
    /// Pods that have not finished.
    active: usize,
}

/// A host while [`Host::run`] runs it, shared with its pods. Whoever holds the lock does
/// the host's work: a pod that ends on a worker thread applies its own update there and
/// runs the turn it causes, and runs the pod that turn creates in the same task, instead of
/// waking the loop's thread and a thread for the new pod (two hand-overs between threads
/// per pod, which cost more than a trivial pod itself). A pod that finds the host busy
/// reports over the channel, as every update did before.
pub struct Shared {
    /// Boxed: a pod spinning for the host takes the lock's cache line, which then must hold
    /// nothing the turn it waits for reads (the host's first fields did).
    host: std::sync::Mutex<Option<Box<Host>>>,
    /// Wakes the loop after a pod's turn changed what it waits for, or queued an update.
    wake: Arc<tokio::sync::Notify>,
    /// Pods not finished, as of the last turn.
    active: AtomicUsize,
    /// The runtime's worker threads (as many as cores, unless configured otherwise).
    threads: usize,
    /// Whether a pod's turn holds the host: a pod waiting for it reads this, in a cache line
    /// of its own, rather than try the lock over and over (a failed `try_lock` takes the
    /// lock's line from the turn, which then waits to get it back to unlock).
    busy: Padded<std::sync::atomic::AtomicBool>,
}

/// A value in a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
struct Padded<T>(T);

impl Shared {
    /// Wakes the host's loop (to apply queued updates).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Applies `update` and runs the turn it causes, unless someone else holds the host (or
    /// its run is over): then `update` comes back. With `keep` (the caller's kill switch), a
    /// pod the turn creates is returned for the caller to run. `now` is the clock's reading
    /// for the turn, if the caller has just read it (for the update's own time).
    pub(crate) fn report(
        &self,
        update: PodUpdate,
        keep: Option<&Arc<KillSwitch>>,
        now: Option<Reading>,
    ) -> Result<Option<Successor>, PodUpdate> {
        // While no more pods run than there are threads, a pod that finds the host busy
        // with another pod's turn (a few microseconds) spins for it rather than queue: its
        // thread has nothing else to do. With more, it queues, and the loop takes many
        // updates in one turn, while the thread runs other pods.
        let spin = self.active.load(Ordering::Relaxed) <= self.threads;
        let mut spins = 0;
        let mut guard = loop {
            match self.host.try_lock() {
                Ok(guard) => break guard,
                Err(std::sync::TryLockError::WouldBlock) if spin && spins < SPINS => {
                    spins += 1;
                    std::hint::spin_loop();
                    while self.busy.0.load(Ordering::Relaxed) && spins < SPINS {
                        spins += 1;
                        std::hint::spin_loop();
                    }
                }
                Err(std::sync::TryLockError::WouldBlock) => return Err(update),
                Err(std::sync::TryLockError::Poisoned(_)) => {
                    // A turn panicked: the loop stops the run (see `lock`).
                    self.wake.notify_one();
                    return Err(update);
                }
            }
        };
        let Some(host) = guard.as_mut() else {
            return Err(update);
        };
        self.busy.0.store(true, Ordering::Relaxed);
        // Should the turn panic, the loop must hear of it.
        let on_panic = WakeOnPanic(&self.wake);
        // Updates queued before this one (of this pod or another) go first, so that the
        // host sees every update in the order it was reported.
        // Queued updates may be later than the caller's reading: the turn then reads anew.
        let queued = host.apply_queued();
        let keep = keep.map(|kill| (host.store.pods[update.pod()].job, kill));
        host.apply(update);
        let (end, successor) = host.turn(keep, now.filter(|_| !queued));
        std::mem::forget(on_panic);
        // Stored only if changed: the line is read by every pod's report, and a store would
        // take it from the other core's cache.
        if self.active.load(Ordering::Relaxed) != end.active {
            self.active.store(end.active, Ordering::Relaxed);
        }
        let wake = end.done
            || end.next != host.loop_next
            || !host.changes.is_empty()
            || host.shutting_down
            || host.has_queued();
        self.busy.0.store(false, Ordering::Relaxed);
        drop(guard);
        if wake {
            self.wake.notify_one();
        }
        Ok(successor)
    }
}

/// The host moved into its [`Shared`] for a run, and back out when the run ends or is
/// dropped.
struct Running<'a> {
    slot: &'a mut Host,
    shared: Arc<Shared>,
}

impl<'a> Running<'a> {
    fn start(slot: &'a mut Host) -> Self {
        let stand_in = Host::new(
            slot.runtime.clone(),
            slot.clock.clone(),
            slot.config.clone(),
        );
        let mut host = std::mem::replace(slot, stand_in);
        // Each run starts afresh: not shutting down, nothing left to show from a run that
        // was dropped.
        host.shutting_down = false;
        host.changes.clear();
        host.loop_next = None;
        let shared = Arc::new(Shared {
            host: std::sync::Mutex::new(None),
            wake: host.wake.clone(),
            active: AtomicUsize::new(0),
            threads: tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers()),
            busy: Padded::default(),
        });
        host.shared = Arc::downgrade(&shared);
        *lock(&shared) = Some(Box::new(host));
        Running { slot, shared }
    }
}

impl Drop for Running<'_> {
    /// Puts the host back: updates that arrive from now on wait in its channel for a later
    /// run.
    fn drop(&mut self) {
        let host = (self.shared.host.lock())
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut host) = host {
            host.shared = std::sync::Weak::new();
            *self.slot = *host;
        }
    }
}

/// Wakes the loop if dropped while its thread panics.
struct WakeOnPanic<'a>(&'a tokio::sync::Notify);

impl Drop for WakeOnPanic<'_> {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// The host, for the loop. A turn that panicked in a pod's task leaves the host half
/// updated; the loop then panics too, as it would have had it run that turn itself.
fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Option<Box<Host>>> {
    match shared.host.lock() {
        Ok(guard) => guard,
        Err(_) => panic!("a turn of the host panicked in a pod's task"),
    }
}

fn absolute(p: &Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
