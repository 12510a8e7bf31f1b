//! The host loop: admits Jobs, reconciles them with the pure controller, and applies each
//! [`Plan`] by starting and terminating pods through the [`PodRuntime`]. It owns the clock
//! and the store; pods report back over a channel.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;

use jiff::Timestamp;
use rand::RngExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::api::defaults::{admit_job, owner_reference};
use crate::api::field::ErrorList;
use crate::api::manifest::JobManifest;
use crate::api::types::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Job, ObjectMeta, Pod, PodStatus,
};
use crate::clock::Clock;
use crate::controller::backoff::{BackoffPolicy, BackoffRecord};
use crate::controller::job::{ActivePod, Observed, Plan, reconcile};
use crate::kubelet::{PodRun, PodUpdate, run_pod};
use crate::logs::{DEFAULT_LOG_LIMIT, LogStream};
use crate::runtime::{PodExit, PodIdentity, PodRuntime, PreparedPod};
use crate::store::{Event, PodEntry, Store};

/// Host settings.
#[derive(Clone)]
pub struct HostConfig {
    /// Back-off between failed-pod re-creations and in-place restarts.
    pub backoff: BackoffPolicy,
    /// Cap on each container run's log.
    pub log_limit: usize,
    /// Where pod logs stream live, if anywhere.
    pub log_stream: Option<Arc<LogStream>>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            backoff: BackoffPolicy::default(),
            log_limit: DEFAULT_LOG_LIMIT,
            log_stream: None,
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
}

/// A Job accepted by the host, with its prepared pod template.
pub struct Submission {
    job: Job,
    prepared: Arc<dyn PreparedPod>,
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
    active: BTreeSet<usize>,
    succeeded: i32,
    failed: i32,
    backoff: BackoffRecord,
    requeue_at: Option<Instant>,
}

/// Per-pod bookkeeping beside the Pod object.
struct PodState {
    kill: Option<oneshot::Sender<String>>,
    terminating: bool,
}

/// Runs Jobs to completion.
pub struct Host {
    runtime: Arc<dyn PodRuntime>,
    clock: Arc<dyn Clock>,
    config: HostConfig,
    store: Store,
    jobs: Vec<JobState>,
    pods: Vec<PodState>,
    names: HashSet<String>,
    updates_tx: mpsc::UnboundedSender<PodUpdate>,
    updates_rx: mpsc::UnboundedReceiver<PodUpdate>,
}

impl Host {
    /// A host with no Jobs.
    pub fn new(runtime: Arc<dyn PodRuntime>, clock: Arc<dyn Clock>, config: HostConfig) -> Self {
        let (updates_tx, updates_rx) = mpsc::unbounded_channel();
        Host {
            runtime,
            clock,
            config,
            store: Store::default(),
            jobs: Vec::new(),
            pods: Vec::new(),
            names: HashSet::new(),
            updates_tx,
            updates_rx,
        }
    }

    /// Prepares every Job's pod template (reads and compiles modules). Either all are ready,
    /// or nothing is submitted and every problem is returned.
    pub fn prepare(&self, manifests: Vec<JobManifest>) -> Result<Vec<Submission>, Vec<Rejected>> {
        let mut ok = Vec::new();
        let mut rejected = Vec::new();
        for m in manifests {
            match self.runtime.prepare(&m.job, &m.base_dir) {
                Ok(prepared) => ok.push(Submission {
                    job: m.job,
                    prepared,
                }),
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

    /// Admits prepared Jobs: assigns uids, the selector and pod labels, as the API server does.
    pub fn submit(&mut self, submissions: Vec<Submission>) {
        for Submission { mut job, prepared } in submissions {
            admit_job(&mut job, uuid::Uuid::new_v4().to_string(), self.clock.now());
            self.store.jobs.push(job);
            self.jobs.push(JobState {
                prepared,
                active: BTreeSet::new(),
                succeeded: 0,
                failed: 0,
                backoff: BackoffRecord::default(),
                requeue_at: Some(Instant::now()),
            });
        }
    }

    /// The objects so far.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs until every Job has finished (or can make no progress, e.g. parallelism 0), or
    /// until `shutdown` resolves, in which case running pods are terminated first.
    /// `on_change` sees each change as it happens.
    pub async fn run(
        &mut self,
        shutdown: impl Future<Output = ()>,
        mut on_change: impl FnMut(&Change),
    ) {
        tokio::pin!(shutdown);
        let mut shutting_down = false;
        loop {
            let now = Instant::now();
            for j in 0..self.jobs.len() {
                if !shutting_down && self.jobs[j].requeue_at.is_some_and(|t| t <= now) {
                    self.jobs[j].requeue_at = None;
                    self.sync_job(j, &mut on_change);
                }
            }
            let running = self.jobs.iter().any(|j| !j.active.is_empty());
            let next = self.jobs.iter().filter_map(|j| j.requeue_at).min();
            if !running && (next.is_none() || shutting_down) {
                return;
            }
            tokio::select! {
                update = self.updates_rx.recv() => {
                    // The host holds a sender, so the channel never closes while it runs.
                    let Some(update) = update else { return };
                    self.apply(update, &mut on_change);
                    while let Ok(more) = self.updates_rx.try_recv() {
                        self.apply(more, &mut on_change);
                    }
                }
                () = sleep_until(next) => {}
                () = &mut shutdown, if !shutting_down => {
                    shutting_down = true;
                    for p in 0..self.pods.len() {
                        self.kill(p, "Terminated");
                    }
                }
            }
        }
    }

    fn sync_job(&mut self, j: usize, on_change: &mut impl FnMut(&Change)) {
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
        let before = self.store.jobs[j].status.conditions.len();
        self.store.jobs[j].status = plan.status;
        for cond in &self.store.jobs[j].status.conditions[before..] {
            on_change(&Change::Job {
                name: job_name.clone(),
                condition: cond.type_.clone(),
                reason: cond.reason.clone(),
            });
        }
        for note in plan.notes {
            self.event("Job", &job_name, note.type_, note.reason, note.message, now);
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
                &job_name,
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

    fn event(
        &mut self,
        kind: &'static str,
        name: &str,
        type_: &'static str,
        reason: &'static str,
        message: String,
        time: Timestamp,
    ) {
        let source = if kind == "Job" {
            "job-controller"
        } else {
            "kubelet"
        };
        self.store.events.push(Event {
            type_,
            reason,
            message,
            kind,
            name: name.to_string(),
            source,
            time,
        });
    }

    /// `<job>-` plus five random characters from Kubernetes' alphabet, unique in this host.
    fn generate_name(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut rng = rand::rng();
        loop {
            let suffix: String = (0..5)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            let name = format!("{prefix}{suffix}");
            if self.names.insert(name.clone()) {
                return name;
            }
        }
    }

    fn create_pod(&mut self, j: usize, now: Timestamp, on_change: &mut impl FnMut(&Change)) {
        let job = &self.store.jobs[j];
        let mut base: String = job.name().chars().take(58).collect();
        base.push('-');
        let tmpl = job.spec.template.clone();
        let owner = owner_reference(job);
        let namespace = job.metadata.namespace.clone().unwrap_or_default();
        let job_name = job.name().to_string();
        let restart_on_failure = tmpl.spec.restart_policy.as_deref() == Some("OnFailure");
        let name = self.generate_name(&base);
        let uid = uuid::Uuid::new_v4().to_string();
        let container = tmpl.spec.containers.first().cloned().unwrap_or_default();
        let prepared = self.jobs[j].prepared.clone();
        let pod = Pod {
            api_version: "v1".into(),
            kind: "Pod".into(),
            metadata: ObjectMeta {
                name: Some(name.clone()),
                generate_name: Some(base),
                namespace: Some(namespace.clone()),
                uid: Some(uid.clone()),
                labels: tmpl.metadata.labels.clone(),
                annotations: tmpl.metadata.annotations.clone(),
                creation_timestamp: Some(now),
                owner_references: vec![owner],
                other: Default::default(),
            },
            spec: tmpl.spec,
            status: PodStatus {
                phase: "Pending".into(),
                container_statuses: vec![ContainerStatus {
                    name: container.name.clone(),
                    state: ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: "ContainerCreating".into(),
                            message: None,
                        }),
                        ..Default::default()
                    },
                    last_state: ContainerState::default(),
                    ready: false,
                    restart_count: 0,
                    image: container.image.clone(),
                    image_id: prepared.image_id(),
                    started: false,
                }],
                ..Default::default()
            },
        };
        let identity = PodIdentity {
            name: name.clone(),
            namespace,
            uid,
            labels: pod.metadata.labels.clone(),
            annotations: pod.metadata.annotations.clone(),
        };
        let p = self.store.pods.len();
        self.store.pods.push(PodEntry {
            pod,
            job: j,
            logs: Vec::new(),
        });
        self.jobs[j].active.insert(p);
        self.event(
            "Job",
            &job_name,
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
        let (kill_tx, kill_rx) = oneshot::channel();
        self.pods.push(PodState {
            kill: Some(kill_tx),
            terminating: false,
        });
        match prepared.sandbox(&identity) {
            Ok(sandbox) => {
                let run = PodRun {
                    pod: p,
                    name,
                    container: container.name,
                    sandbox,
                    restart_on_failure,
                    backoff: self.config.backoff,
                    log_limit: self.config.log_limit,
                    log_stream: self.config.log_stream.clone(),
                };
                tokio::spawn(run_pod(
                    run,
                    self.clock.clone(),
                    self.updates_tx.clone(),
                    kill_rx,
                ));
            }
            Err(msg) => {
                // Reported like a container that could not start: the pod fails at once.
                let _ = self.updates_tx.send(PodUpdate::Finished {
                    pod: p,
                    exit: PodExit::CannotRun(msg),
                    started: None,
                    at: now,
                });
            }
        }
    }

    fn apply(&mut self, update: PodUpdate, on_change: &mut impl FnMut(&Change)) {
        let (p, finished) = match update {
            PodUpdate::Started { pod: p, at, log } => {
                let entry = &mut self.store.pods[p];
                entry.logs.push(log);
                let status = &mut entry.pod.status;
                status.phase = "Running".into();
                status.start_time.get_or_insert(at);
                if let Some(cs) = status.container_statuses.first_mut() {
                    cs.state = ContainerState {
                        running: Some(ContainerStateRunning { started_at: at }),
                        ..Default::default()
                    };
                    cs.ready = true;
                    cs.started = true;
                }
                (p, None)
            }
            PodUpdate::Restarting {
                pod: p,
                exit,
                started,
                at,
            } => {
                let name = self.pod_name(p);
                let status = &mut self.store.pods[p].pod.status;
                if let Some(cs) = status.container_statuses.first_mut() {
                    cs.last_state = terminated(&exit, started, at);
                    cs.state = ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: "CrashLoopBackOff".into(),
                            message: Some(format!(
                                "back-off restarting failed container {} in pod {name}",
                                cs.name
                            )),
                        }),
                        ..Default::default()
                    };
                    cs.ready = false;
                    cs.started = false;
                    cs.restart_count += 1;
                }
                self.event(
                    "Pod",
                    &name,
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
                let status = &mut self.store.pods[p].pod.status;
                status.phase = if exit.success() {
                    "Succeeded"
                } else {
                    "Failed"
                }
                .into();
                if let PodExit::Terminated(reason) = &exit {
                    status.reason = Some(reason.clone());
                    status.message = Some(format!("Pod was terminated by wasmjob: {reason}"));
                }
                if let Some(cs) = status.container_statuses.first_mut() {
                    cs.state = terminated(&exit, started.unwrap_or(at), at);
                    cs.ready = false;
                    cs.started = false;
                }
                (p, Some((exit.success(), at)))
            }
        };
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
}

fn terminated(exit: &PodExit, started: Timestamp, at: Timestamp) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: exit.exit_code(),
            reason: exit.reason().to_string(),
            message: exit.message().map(str::to_string),
            started_at: started,
            finished_at: at,
        }),
        ..Default::default()
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The STATUS column of `kubectl get pods`: the container's reason when it has one, else the
/// pod's reason, else its phase.
pub fn pod_status_column(pod: &Pod) -> String {
    if let Some(c) = pod.status.container_statuses.first() {
        if let Some(t) = &c.state.terminated {
            return t.reason.clone();
        }
        if let Some(w) = &c.state.waiting {
            return w.reason.clone();
        }
    }
    pod.status
        .reason
        .clone()
        .unwrap_or_else(|| pod.status.phase.clone())
}
