//! The host loop: admits Jobs, reconciles them with the pure controller, and applies each
//! [`Plan`] by starting and terminating pods through the [`PodRuntime`]. It owns the clock
//! and the store; pods report back over a channel. With a [`StateDb`] every turn of the loop
//! is committed in one transaction before the pods it created start, so a host killed at
//! any point can be resumed ([`Host::adopt`]) without losing or double-counting a pod.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rand::RngExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::api::defaults::admit_job;
use crate::api::field::{ErrorList, FieldError, Path as FieldPath};
use crate::api::manifest::JobManifest;
use crate::api::types::{Job, Pod};
use crate::clock::Clock;
use crate::controller::backoff::{BackoffPolicy, BackoffRecord};
use crate::controller::job::{ActivePod, Observed, Plan, reconcile};
use crate::kubelet::{PodRun, PodUpdate, run_pod};
use crate::logs::{DEFAULT_LOG_LIMIT, LogStream};
use crate::queue::{self, Broker, QueueGrant, QueueRequest};
use crate::runtime::{PodExit, PodIdentity, PodRuntime, PreparedPod};
use crate::store::db::{
    Batch, JobSource, LogChunk, PendingSettle, Request, StateDb, StoreError, manifest_hash,
};
use crate::store::{Event, PodEntry, Store};

mod cron;
pub mod pods;

pub use cron::{CronSubmission, cron_hash};

pub use pods::pod_status_column;

/// How often the host looks for requests from other processes and saves running pods' logs.
const TICK: Duration = Duration::from_millis(250);
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
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            backoff: BackoffPolicy::default(),
            log_limit: DEFAULT_LOG_LIMIT,
            log_stream: None,
            broker: None,
            schedules_limit: None,
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
    active: BTreeSet<usize>,
    succeeded: i32,
    failed: i32,
    backoff: BackoffRecord,
    requeue_at: Option<Instant>,
    /// Written to the store once, with the Job's first commit.
    source: Option<JobSource>,
    dirty: bool,
    deleted: bool,
}

/// Per-pod bookkeeping beside the Pod object.
struct PodState {
    kill: Option<oneshot::Sender<String>>,
    terminating: bool,
    dirty: bool,
    /// First container run whose log may have output not yet saved.
    unsaved_run: usize,
}

/// A pod created in this turn, started once the turn is committed.
struct Start {
    pod: usize,
    run: Result<PodRun, String>,
    kill: oneshot::Receiver<String>,
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
    names: HashSet<String>,
    updates_tx: mpsc::UnboundedSender<PodUpdate>,
    updates_rx: mpsc::UnboundedReceiver<PodUpdate>,
    db: Option<StateDb>,
    dirty_jobs: Vec<usize>,
    dirty_crons: Vec<usize>,
    dirty_pods: Vec<usize>,
    saved_events: usize,
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
}

impl Host {
    /// A host with no Jobs that keeps its state in memory only.
    pub fn new(runtime: Arc<dyn PodRuntime>, clock: Arc<dyn Clock>, config: HostConfig) -> Self {
        let (updates_tx, updates_rx) = mpsc::unbounded_channel();
        Host {
            runtime,
            clock,
            config,
            store: Store::default(),
            jobs: Vec::new(),
            crons: Vec::new(),
            pods: Vec::new(),
            names: HashSet::new(),
            updates_tx,
            updates_rx,
            db: None,
            dirty_jobs: Vec::new(),
            dirty_crons: Vec::new(),
            dirty_pods: Vec::new(),
            saved_events: 0,
            starts: Vec::new(),
            done_requests: Vec::new(),
            settle: Vec::new(),
            outbox: Vec::new(),
            settled: Vec::new(),
            redis: Default::default(),
            deleted: HashSet::new(),
            store_error: None,
        }
    }

    /// Keeps the host's state in `db`: each turn of the loop is committed before the pods it
    /// created start. The caller holds the directory's [`crate::store::db::HostLock`].
    pub fn with_state(mut self, db: StateDb) -> Self {
        self.db = Some(db);
        self
    }

    /// The state database, if the host has one.
    pub fn state(&self) -> Option<&StateDb> {
        self.db.as_ref()
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
    /// its manifest, prepared (the same spec). Pods that were still pending or running when that host stopped are
    /// marked failed, as Kubernetes marks the pods of a lost node; finished pods count as
    /// they were recorded, and back-off and deadlines continue from the recorded times.
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
        let mut lost = Vec::new();
        for (i, pod) in pods.iter_mut().enumerate() {
            if !pods::is_finished(pod) {
                pods::lost(pod, now);
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
            self.event(
                "Pod",
                p,
                "Warning",
                pods::REASON_NODE_LOST,
                format!("Pod {name} was running when the wasmjob host stopped; marked Failed"),
                now,
            );
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
            queues,
            prepared,
            active: BTreeSet::new(),
            succeeded: 0,
            failed: 0,
            backoff: BackoffRecord::default(),
            requeue_at: Some(Instant::now()),
            source,
            dirty: false,
            deleted: false,
        };
        // Counters and back-off are recomputed from the pods, as the Job controller does.
        let mut finished: Vec<(Timestamp, bool)> = pods
            .iter()
            .filter_map(|p| Some((pods::finished_at(p)?, p.status.phase == "Succeeded")))
            .collect();
        finished.sort();
        for (at, success) in finished {
            if success {
                state.succeeded += 1;
                state.backoff.succeeded();
            } else {
                state.failed += 1;
                state.backoff.failed(at);
            }
        }
        self.store.jobs.push(job);
        self.jobs.push(state);
        for pod in pods {
            if let Some(name) = &pod.metadata.name {
                self.names.insert(name.clone());
            }
            self.store.pods.push(PodEntry {
                pod,
                job: j,
                logs: Vec::new(),
            });
            self.pods.push(PodState {
                kill: None,
                terminating: false,
                dirty: false,
                unsaved_run: 0,
            });
        }
        self.touch_job(j);
        j
    }

    /// The objects so far.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs until every Job has finished (or can make no progress, e.g. parallelism 0), or
    /// until `shutdown` resolves, in which case running pods are terminated first.
    /// `on_change` sees each change as it happens. Fails only if the state database does;
    /// running pods are terminated first then.
    pub async fn run(
        &mut self,
        shutdown: impl Future<Output = ()>,
        mut on_change: impl FnMut(&Change),
    ) -> Result<(), StoreError> {
        tokio::pin!(shutdown);
        let mut shutting_down = false;
        let mut ticks = 0u32;
        let mut tick = tokio::time::interval_at(Instant::now() + TICK, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let now = Instant::now();
            if self.store_error.is_some() && !shutting_down {
                shutting_down = true;
                self.kill_all();
            }
            for c in 0..self.crons.len() {
                if !shutting_down && self.crons[c].requeue_at.is_some_and(|t| t <= now) {
                    self.crons[c].requeue_at = None;
                    self.sync_cron(c, &mut on_change);
                }
            }
            for j in 0..self.jobs.len() {
                if self.jobs[j].requeue_at.is_some_and(|t| t <= now) {
                    self.jobs[j].requeue_at = None;
                    if shutting_down {
                        self.count_pods(j);
                    } else {
                        self.sync_job(j, &mut on_change);
                    }
                }
            }
            self.commit(false);
            self.start_pods();
            let running = self.jobs.iter().any(|j| !j.active.is_empty());
            let next = self
                .jobs
                .iter()
                .filter_map(|j| j.requeue_at)
                .chain(self.crons.iter().filter_map(|c| c.requeue_at))
                .min();
            if !running && (next.is_none() || shutting_down) {
                break;
            }
            tokio::select! {
                update = self.updates_rx.recv() => {
                    // The host holds a sender, so the channel never closes while it runs.
                    let Some(update) = update else { break };
                    self.apply(update, &mut on_change);
                    while let Ok(more) = self.updates_rx.try_recv() {
                        self.apply(more, &mut on_change);
                    }
                }
                () = sleep_until(next) => {}
                _ = tick.tick(), if self.db.is_some() => {
                    ticks += 1;
                    if ticks.is_multiple_of(LOG_SAVE_TICKS) {
                        self.touch_running_pods();
                    }
                    for (_, broker) in self.jobs.iter().filter_map(|j| j.queues.as_ref()) {
                        broker.keepalive();
                    }
                    if !shutting_down {
                        self.serve_requests(&mut on_change);
                        self.collect_expired(&mut on_change);
                    }
                }
                () = &mut shutdown, if !shutting_down => {
                    shutting_down = true;
                    self.kill_all();
                }
            }
        }
        self.commit(true);
        match self.store_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn kill_all(&mut self) {
        for p in 0..self.pods.len() {
            self.kill(p, "Terminated");
        }
    }

    /// While shutting down nothing is reconciled, but the counters keep up with the pods so
    /// that what is saved agrees with them.
    fn count_pods(&mut self, j: usize) {
        let state = &self.jobs[j];
        let active = i32::try_from(state.active.len()).unwrap_or(i32::MAX);
        let status = &mut self.store.jobs[j].status;
        let counts = (active, state.succeeded, state.failed);
        if (status.active, status.succeeded, status.failed) != counts {
            (status.active, status.succeeded, status.failed) = counts;
            status.ready = status.ready.min(active);
            self.touch_job(j);
        }
    }

    fn sync_job(&mut self, j: usize, on_change: &mut impl FnMut(&Change)) {
        if self.jobs[j].deleted {
            return;
        }
        let now = self.clock.now();
        let state = &self.jobs[j];
        let active: Vec<ActivePod> = state
            .active
            .iter()
            .map(|&p| {
                let pod = &self.store.pods[p].pod;
                let cs = pod.status.container_statuses.first();
                ActivePod {
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    restart_count: cs.map_or(0, |c| c.restart_count),
                    ready: cs.is_some_and(|c| c.ready),
                    terminating: self.pods[p].terminating,
                }
            })
            .collect();
        let observed = Observed {
            active: &active,
            succeeded: state.succeeded,
            failed: state.failed,
            backoff: state.backoff,
        };
        let plan = reconcile(&self.store.jobs[j], &observed, now, &self.config.backoff);
        tracing::debug!(
            job = self.store.jobs[j].name(),
            active = active.len(),
            create = plan.create,
            delete = plan.delete.len(),
            requeue = ?plan.requeue_after,
            "reconciled"
        );
        self.apply_plan(j, plan, now, on_change);
    }

    fn apply_plan(
        &mut self,
        j: usize,
        plan: Plan,
        now: Timestamp,
        on_change: &mut impl FnMut(&Change),
    ) {
        let job_name = self.store.jobs[j].name().to_string();
        if self.store.jobs[j].status != plan.status {
            self.touch_job(j);
        }
        let before = self.store.jobs[j].status.conditions.len();
        let was_finished = self.store.jobs[j].status.finished().is_some();
        self.store.jobs[j].status = plan.status;
        if !was_finished && self.store.jobs[j].status.finished().is_some() {
            self.job_finished(j);
        }
        for cond in &self.store.jobs[j].status.conditions[before..] {
            on_change(&Change::Job {
                name: job_name.clone(),
                condition: cond.type_.clone(),
                reason: cond.reason.clone(),
            });
        }
        for note in plan.notes {
            self.event("Job", j, note.type_, note.reason, note.message, now);
        }
        let victims: Vec<usize> = self.jobs[j]
            .active
            .iter()
            .copied()
            .filter(|&p| {
                plan.delete
                    .iter()
                    .any(|n| self.store.pods[p].pod.metadata.name.as_deref() == Some(n))
            })
            .collect();
        for p in victims {
            self.kill(p, plan.delete_reason);
            let name = self.pod_name(p);
            self.event(
                "Job",
                j,
                "Normal",
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
                now,
            );
        }
        for _ in 0..plan.create {
            self.create_pod(j, now, on_change);
        }
        self.jobs[j].requeue_at = plan.requeue_after.map(|d| Instant::now() + d);
    }

    fn pod_name(&self, p: usize) -> String {
        self.store.pods[p]
            .pod
            .metadata
            .name
            .clone()
            .unwrap_or_default()
    }

    fn kill(&mut self, p: usize, reason: &str) {
        if let Some(kill) = self.pods[p].kill.take() {
            tracing::debug!(pod = p, reason, "terminating");
            self.pods[p].terminating = true;
            // A pod that already finished dropped its receiver; nothing to stop then.
            let _ = kill.send(reason.to_string());
        }
    }

    /// Records an event on Job `index` (kind `Job`) or pod `index` (kind `Pod`).
    fn event(
        &mut self,
        kind: &'static str,
        index: usize,
        type_: &'static str,
        reason: &str,
        message: String,
        time: Timestamp,
    ) {
        let (meta, source) = match kind {
            "Job" => (&self.store.jobs[index].metadata, "job-controller"),
            "CronJob" => (&self.store.cronjobs[index].metadata, "cronjob-controller"),
            _ => (&self.store.pods[index].pod.metadata, "kubelet"),
        };
        self.store.events.push(Event {
            type_: type_.into(),
            reason: reason.into(),
            message,
            kind: kind.into(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            source: source.into(),
            first_time: time,
            time,
            count: 1,
        });
    }

    /// `<job>-` plus five random characters from Kubernetes' alphabet, unique in this host
    /// and in its state database.
    fn generate_name(&mut self, prefix: &str, namespace: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut rng = rand::rng();
        loop {
            let suffix: String = (0..5)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            let name = format!("{prefix}{suffix}");
            // A failed lookup only risks a collision, which the commit would then report.
            let stored = self
                .db
                .as_ref()
                .is_some_and(|db| db.name_taken("Pod", namespace, &name).unwrap_or(false));
            if !stored && self.names.insert(name.clone()) {
                return name;
            }
        }
    }

    fn create_pod(&mut self, j: usize, now: Timestamp, on_change: &mut impl FnMut(&Change)) {
        let job = &self.store.jobs[j];
        let base = format!("{}-", job.name().chars().take(58).collect::<String>());
        let namespace = job.metadata.namespace.clone().unwrap_or_default();
        let restart_on_failure =
            job.spec.template.spec.restart_policy.as_deref() == Some("OnFailure");
        let name = self.generate_name(&base, &namespace);
        let uid = uuid::Uuid::new_v4().to_string();
        let prepared = self.jobs[j].prepared.clone();
        let job = &self.store.jobs[j];
        let pod = pods::new_pod(job, name.clone(), uid.clone(), prepared.image_id(), now);
        let container = pod.status.container_statuses[0].name.clone();
        let queues = self.jobs[j]
            .queues
            .as_ref()
            .map(|(req, broker)| QueueGrant {
                broker: broker.clone(),
                queues: req.queues.clone(),
                holder: uid.clone(),
            });
        let identity = PodIdentity {
            name: name.clone(),
            namespace,
            uid,
            labels: pod.metadata.labels.clone(),
            annotations: pod.metadata.annotations.clone(),
            queues,
        };
        let p = self.store.pods.len();
        self.store.pods.push(PodEntry {
            pod,
            job: j,
            logs: Vec::new(),
        });
        self.jobs[j].active.insert(p);
        let (kill_tx, kill_rx) = oneshot::channel();
        self.pods.push(PodState {
            kill: Some(kill_tx),
            terminating: false,
            dirty: false,
            unsaved_run: 0,
        });
        self.touch_pod(p);
        self.event(
            "Job",
            j,
            "Normal",
            "SuccessfulCreate",
            format!("Created pod: {name}"),
            now,
        );
        on_change(&Change::Pod {
            name: name.clone(),
            status: "Pending".into(),
            restarts: 0,
        });
        let run = prepared.sandbox(&identity).map(|sandbox| PodRun {
            pod: p,
            name,
            container,
            sandbox,
            restart_on_failure,
            backoff: self.config.backoff,
            log_limit: self.config.log_limit,
            log_stream: self.config.log_stream.clone(),
        });
        self.starts.push(Start {
            pod: p,
            run,
            kill: kill_rx,
        });
    }

    /// Starts the pods created this turn; they are in the store by now.
    fn start_pods(&mut self) {
        for Start { pod, run, kill } in std::mem::take(&mut self.starts) {
            if self.store_error.is_some() {
                // Nothing durable knows of this pod: it never ran.
                let _ = self.updates_tx.send(PodUpdate::Finished {
                    pod,
                    exit: PodExit::Terminated("Terminated".into()),
                    started: None,
                    at: self.clock.now(),
                });
                continue;
            }
            match run {
                Ok(run) => {
                    tokio::spawn(run_pod(
                        run,
                        self.clock.clone(),
                        self.updates_tx.clone(),
                        kill,
                    ));
                }
                Err(msg) => {
                    // Reported like a container that could not start: the pod fails at once.
                    let _ = self.updates_tx.send(PodUpdate::Finished {
                        pod,
                        exit: PodExit::CannotRun(msg),
                        started: None,
                        at: self.clock.now(),
                    });
                }
            }
        }
    }

    fn apply(&mut self, update: PodUpdate, on_change: &mut impl FnMut(&Change)) {
        let (p, finished) = match update {
            PodUpdate::Started { pod: p, at, log } => {
                let entry = &mut self.store.pods[p];
                entry.logs.push(log);
                pods::started(&mut entry.pod, at);
                (p, None)
            }
            PodUpdate::Restarting {
                pod: p,
                exit,
                started,
                at,
            } => {
                pods::restarting(&mut self.store.pods[p].pod, &exit, started, at);
                self.settle_leases(p, false);
                self.event(
                    "Pod",
                    p,
                    "Warning",
                    "BackOff",
                    "Back-off restarting failed container".into(),
                    at,
                );
                (p, None)
            }
            PodUpdate::Finished {
                pod: p,
                exit,
                started,
                at,
            } => {
                pods::finished(&mut self.store.pods[p].pod, &exit, started, at);
                self.settle_leases(p, exit.success());
                (p, Some((exit.success(), at)))
            }
        };
        self.touch_pod(p);
        let entry = &self.store.pods[p];
        on_change(&Change::Pod {
            name: entry.pod.metadata.name.clone().unwrap_or_default(),
            status: pod_status_column(&entry.pod),
            restarts: entry
                .pod
                .status
                .container_statuses
                .first()
                .map_or(0, |c| c.restart_count),
        });
        let j = entry.job;
        if let Some((success, at)) = finished {
            let state = &mut self.jobs[j];
            state.active.remove(&p);
            self.pods[p].kill = None;
            if success {
                state.succeeded += 1;
                state.backoff.succeeded();
            } else {
                state.failed += 1;
                state.backoff.failed(at);
            }
        }
        // Any change may move the Job on: reconcile it in this turn of the loop.
        self.jobs[j].requeue_at = Some(Instant::now());
    }

    /// A run of pod `p` ended: its queue leases are acknowledged (success) or returned, in
    /// the commit that records how the run ended.
    fn settle_leases(&mut self, p: usize, success: bool) {
        let Some((req, broker)) = &self.jobs[self.store.pods[p].job].queues else {
            return;
        };
        let pod = &self.store.pods[p].pod;
        let Some(uid) = &pod.metadata.uid else {
            return;
        };
        // Leases belong to one container run (`UID/RUN`): the next run's never go with this one.
        let run = pod
            .status
            .container_statuses
            .first()
            .map_or(0, |c| pods::runs(c) - 1)
            .max(0);
        let uid = queue::holder(uid, run);
        if broker.settles_in_store() {
            self.settle.push((uid, success));
        } else {
            self.outbox.push(PendingSettle {
                holder: uid,
                url: req.url.clone(),
                queues: req.queues.clone(),
                success,
            });
        }
    }

    /// Carries out the external settlements just committed; each one done is dropped from
    /// the outbox with the next commit (a host that dies first leaves it to the next host).
    fn settle_external(&mut self, done: Vec<PendingSettle>) {
        for p in done {
            let broker = self.jobs.iter().find_map(|j| {
                j.queues
                    .as_ref()
                    .filter(|(r, _)| r.url == p.url)
                    .map(|(_, b)| b.clone())
            });
            let Some(broker) = broker else { continue };
            match broker.settle(&p.holder, &p.queues, p.success) {
                Ok(()) => self.settled.push(p.holder),
                Err(e) => tracing::warn!(error = %e, holder = p.holder, "settling leases failed"),
            }
        }
    }

    fn touch_job(&mut self, j: usize) {
        if !self.jobs[j].dirty {
            self.jobs[j].dirty = true;
            self.dirty_jobs.push(j);
        }
    }

    fn touch_pod(&mut self, p: usize) {
        if !self.pods[p].dirty {
            self.pods[p].dirty = true;
            self.dirty_pods.push(p);
        }
    }

    /// Marks running pods so their new log output is saved with the next commit.
    fn touch_running_pods(&mut self) {
        let active: Vec<usize> = self
            .jobs
            .iter()
            .flat_map(|j| j.active.iter().copied())
            .collect();
        for p in active {
            if self.store.pods[p].logs.len() > self.pods[p].unsaved_run {
                self.touch_pod(p);
            }
        }
    }

    /// Writes what changed since the last commit in one transaction. After a failure the
    /// host stops (terminating its pods); `last` makes the final attempt after that.
    fn commit(&mut self, last: bool) {
        let dirty_jobs = std::mem::take(&mut self.dirty_jobs);
        let dirty_crons = std::mem::take(&mut self.dirty_crons);
        let dirty_pods = std::mem::take(&mut self.dirty_pods);
        for &j in &dirty_jobs {
            self.jobs[j].dirty = false;
        }
        for &c in &dirty_crons {
            self.crons[c].dirty = false;
        }
        for &p in &dirty_pods {
            self.pods[p].dirty = false;
        }
        let Some(db) = self.db.as_mut() else {
            self.saved_events = self.store.events.len();
            self.settle.clear();
            let outbox = std::mem::take(&mut self.outbox);
            self.settle_external(outbox);
            self.settled.clear();
            return;
        };
        if self.store_error.is_some() && !last {
            return;
        }
        let mut batch = Batch::default();
        let deleted = |uid: Option<&str>| {
            !self.deleted.is_empty() && self.deleted.contains(uid.unwrap_or_default())
        };
        for &j in &dirty_jobs {
            let state = &mut self.jobs[j];
            let job = &self.store.jobs[j];
            if deleted(job.metadata.uid.as_deref()) {
                continue;
            }
            batch.jobs.push(job);
            if let Some(source) = state.source.take() {
                batch.job_sources.push((job.uid().to_string(), source));
            }
        }
        for &c in &dirty_crons {
            let cj = &self.store.cronjobs[c];
            if deleted(cj.metadata.uid.as_deref()) {
                continue;
            }
            batch.cronjobs.push(cj);
            if let Some(source) = self.crons[c].take_source() {
                batch.job_sources.push((cj.uid().to_string(), source));
            }
        }
        for &p in &dirty_pods {
            let entry = &self.store.pods[p];
            if deleted(entry.pod.metadata.uid.as_deref()) {
                continue;
            }
            batch.pods.push(&entry.pod);
            let uid = entry.pod.metadata.uid.clone().unwrap_or_default();
            let state = &mut self.pods[p];
            for (run, log) in entry.logs.iter().enumerate().skip(state.unsaved_run) {
                let data = log.take_unsaved();
                if !data.is_empty() {
                    batch.logs.push(LogChunk {
                        pod_uid: uid.clone(),
                        run: i32::try_from(run).unwrap_or(i32::MAX),
                        data,
                    });
                }
            }
            // The last run may still write; earlier ones are complete.
            state.unsaved_run = entry.logs.len().saturating_sub(1);
        }
        for e in &self.store.events[self.saved_events..] {
            if !deleted(Some(&e.uid)) {
                batch.events.push(e);
            }
        }
        batch.done_requests = std::mem::take(&mut self.done_requests);
        batch.settle = std::mem::take(&mut self.settle);
        let outbox = std::mem::take(&mut self.outbox);
        batch.outbox = outbox.clone();
        batch.settled = std::mem::take(&mut self.settled);
        self.saved_events = self.store.events.len();
        let committed = db.commit(&batch);
        drop(batch);
        match committed {
            Ok(()) => self.settle_external(outbox),
            Err(e) => {
                tracing::error!(error = %e, "committing the host's state failed");
                self.store_error.get_or_insert(e);
            }
        }
    }

    /// Carries out requests that other `wasmjob` processes left in the state database.
    fn serve_requests(&mut self, on_change: &mut impl FnMut(&Change)) {
        let Some(db) = self.db.as_ref() else { return };
        let requests = match db.requests() {
            Ok(r) => r,
            Err(e) => {
                self.store_error.get_or_insert(e);
                return;
            }
        };
        for req in requests {
            if req.verb == "delete" && req.kind == "Job" {
                self.delete_job(
                    &req.uid,
                    &req.name,
                    req.option == "orphan",
                    Some(req.id),
                    on_change,
                );
            } else if req.verb == "delete" && req.kind == "Pod" {
                self.delete_pod(&req);
            } else if req.verb == "delete" && req.kind == "CronJob" {
                self.delete_cronjob(&req, on_change);
            } else {
                self.done_requests.push(req.id);
            }
        }
    }

    /// `wasmjob delete pod` of a pod no running Job owns: stops it if it still runs here.
    fn delete_pod(&mut self, req: &Request) {
        self.commit(false);
        if let Some(p) = self
            .store
            .pods
            .iter()
            .position(|e| e.pod.metadata.uid.as_deref() == Some(req.uid.as_str()))
        {
            self.store.pods[p].pod.metadata.deletion_timestamp = Some(self.clock.now());
            self.deleted.insert(req.uid.clone());
            self.kill(p, "Deleted");
        }
        let Some(db) = self.db.as_mut() else { return };
        if let Err(e) = db.delete_pod(&req.uid, Some(req.id)) {
            self.store_error.get_or_insert(e);
        }
    }

    /// Deletes the Jobs whose `ttlSecondsAfterFinished` has run out, with their pods.
    fn collect_expired(&mut self, on_change: &mut impl FnMut(&Change)) {
        let Some(db) = self.db.as_ref() else { return };
        match db.expired_jobs(self.clock.now()) {
            Ok(expired) => {
                for (uid, name) in expired {
                    self.delete_job(&uid, &name, false, None, on_change);
                }
            }
            Err(e) => {
                self.store_error.get_or_insert(e);
            }
        }
    }

    /// `wasmjob delete job` (request `request`) or the TTL controller while this host runs:
    /// terminates the Job's pods (unless orphaned) and removes it from the store, with the
    /// request, in one transaction; nothing of it is written again.
    fn delete_job(
        &mut self,
        uid: &str,
        name: &str,
        orphan: bool,
        request: Option<i64>,
        on_change: &mut impl FnMut(&Change),
    ) {
        // Commit first so that the deletion sees every pod this host created.
        self.commit(false);
        let found = self.store.jobs.iter().position(|j| j.uid() == uid);
        let now = self.clock.now();
        if let Some(j) = found.filter(|&j| !self.jobs[j].deleted) {
            let state = &mut self.jobs[j];
            state.deleted = true;
            state.requeue_at = None;
            self.store.jobs[j].metadata.deletion_timestamp = Some(now);
            self.deleted.insert(uid.to_string());
            let pods: Vec<usize> = (0..self.store.pods.len())
                .filter(|&p| self.store.pods[p].job == j)
                .collect();
            for p in pods {
                let meta = &mut self.store.pods[p].pod.metadata;
                if orphan {
                    // Orphans keep running and are saved as pods without an owner.
                    meta.owner_references.clear();
                    self.touch_pod(p);
                } else {
                    meta.deletion_timestamp = Some(now);
                    self.deleted.insert(meta.uid.clone().unwrap_or_default());
                    self.kill(p, "Deleted");
                }
            }
            on_change(&Change::JobDeleted { name: name.into() });
        }
        let Some(db) = self.db.as_mut() else { return };
        if let Err(e) = db.delete_job(uid, orphan, request) {
            self.store_error.get_or_insert(e);
        }
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
