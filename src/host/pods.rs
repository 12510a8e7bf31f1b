//! Pod objects as the kubelet reports them: the new Pod of a Job, and how each container
//! transition (start, restart, finish, host loss) shows in its status.

use std::sync::Arc;

use jiff::Timestamp;

use crate::api::defaults::owner_reference;
use crate::api::types::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, FAILURE_TARGET, Job, ObjectMeta, OwnerReference, Pod, PodCondition, PodSpec,
    PodStatus, SUCCESS_CRITERIA_MET, StringMap,
};
use crate::controller::job::{
    FAILURE_REASONS, REASON_DEADLINE, REASON_JOB_SUCCEEDED, REASON_SUSPENDED,
};
use crate::runtime::PodExit;

/// The pod status reason of a pod that was running when its host stopped, as Kubernetes
/// reports pods of a lost node.
pub const REASON_NODE_LOST: &str = "NodeLost";
/// The reason of pods the host stopped because it was shutting down (Ctrl-C, `--for`).
pub const REASON_SHUTDOWN: &str = "Terminated";
/// The reason of pods a user deleted (`wasmjob delete pod`) while they ran.
pub const REASON_DELETED: &str = "Deleted";
/// The pod condition of pods stopped by a disruption (host shutdown, host loss, deadline).
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";

pub use crate::api::defaults::COMPLETION_INDEX;

pub use crate::controller::tally::completion_index;

/// The `generateName` of pods named after `stem` (a Job's name, or `<job>-<index>`): its
/// first 58 characters and a dash, as the Job controller cuts it.
pub fn name_prefix(stem: &str) -> String {
    let mut prefix: String = stem.chars().take(58).collect();
    prefix.push('-');
    prefix
}

/// What all pods of a Job have in common, built once per Job and shared by its pods.
#[derive(Debug)]
pub struct PodTemplate {
    /// `generateName` (but an Indexed Job's pods name their index too).
    pub prefix: Arc<str>,
    /// The Job's namespace.
    pub namespace: Option<Arc<str>>,
    /// The pod template's labels.
    pub labels: Arc<StringMap>,
    /// The pod template's annotations.
    pub annotations: Arc<StringMap>,
    /// `ownerReferences`: the Job, as [`owner_reference`] names it.
    pub owners: Arc<Vec<OwnerReference>>,
    /// The pod template's spec.
    pub spec: Arc<PodSpec>,
    /// The container's status while the pod is Pending.
    pub container: ContainerStatus,
}

impl PodTemplate {
    /// The template of `job`'s pods, whose module is `image_id`.
    pub fn new(job: &Job, image_id: Arc<str>) -> Self {
        let tmpl = &job.spec.template;
        let (name, image) = (tmpl.spec.containers.first())
            .map(|c| (c.name.as_str().into(), c.image.as_str().into()))
            .unwrap_or_default();
        PodTemplate {
            prefix: name_prefix(job.name()).into(),
            namespace: job.metadata.namespace.clone(),
            labels: tmpl.metadata.labels.clone(),
            annotations: tmpl.metadata.annotations.clone(),
            owners: Arc::new(vec![owner_reference(job)]),
            spec: tmpl.spec.clone(),
            container: ContainerStatus {
                name,
                state: ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: "ContainerCreating".into(),
                        message: None,
                    }),
                    ..Default::default()
                },
                last_state: None,
                ready: false,
                restart_count: 0,
                image,
                image_id,
                started: false,
            },
        }
    }
}

/// A new Pending pod from `template`, named `name` after `generate_name`.
pub fn new_pod(
    template: &PodTemplate,
    generate_name: Arc<str>,
    name: String,
    uid: String,
    now: Timestamp,
) -> Pod {
    Pod {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: Some(generate_name),
            namespace: template.namespace.clone(),
            uid: Some(uid),
            labels: template.labels.clone(),
            annotations: template.annotations.clone(),
            creation_timestamp: Some(now),
            owner_references: template.owners.clone(),
            deletion_timestamp: None,
            other: Default::default(),
        },
        spec: template.spec.clone(),
        status: PodStatus {
            phase: "Pending".into(),
            container_statuses: smallvec::smallvec![template.container.clone()],
            ..Default::default()
        },
    }
}

/// A pod's uid: a random (version 4) UUID, kept as a number until it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uid(pub u128);

impl Uid {
    /// A new random uid from the host's generator (uids need to be unique, not secret).
    pub fn draw(rng: &mut rand::rngs::SmallRng) -> Self {
        use rand::RngExt;
        let bytes = rng.random::<u128>().to_le_bytes();
        Uid(uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .as_u128())
    }

    /// Its usual text form, without the formatting machinery `to_string` goes through.
    pub fn text(self) -> String {
        self.with_text(|t| t.to_string())
    }

    /// `f` of its text form.
    pub fn with_text<T>(self, f: impl FnOnce(&str) -> T) -> T {
        let mut buf = uuid::Uuid::encode_buffer();
        f(uuid::Uuid::from_u128(self.0)
            .hyphenated()
            .encode_lower(&mut buf))
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_text(|t| f.write_str(t))
    }
}

/// How a lean pod's last run ended, as [`finished`] takes it.
#[derive(Debug, Clone)]
struct End {
    exit: PodExit,
    started: Option<Timestamp>,
    at: Timestamp,
}

/// A pod of a Job as the host keeps it while only the usual happened to it: created, its
/// one run started, finished. Under 200 bytes where a Pod object is about 600, and no Pod
/// built per pod: a wide Job's pods are made into Pod objects only when something reads
/// them (output, the state database's commits), by the same functions that would have
/// built them at once ([`new_pod`], [`started`], [`finished`]), so the two agree by
/// construction. Anything else makes the Pod first: a restart, a deletion, the host's
/// loss, a failure (which the tally judges by its Pod), queue leases, an event about the
/// pod.
#[derive(Debug, Clone)]
pub struct LeanPod {
    template: Arc<PodTemplate>,
    name: String,
    uid: Uid,
    created: Timestamp,
    started: Option<Timestamp>,
    end: Option<End>,
    /// What an Indexed Job's pod has of its own.
    indexed: Option<Box<Indexed>>,
}

/// An Indexed Job's pod's own prefix (`<job>-<index>-`), labels and annotations (its
/// template's, with its completion index and, under `backoffLimitPerIndex`, its index's
/// failure count).
#[derive(Debug, Clone)]
pub struct Indexed {
    /// Its completion index.
    pub index: i32,
    /// Its `generateName`.
    pub prefix: Arc<str>,
    /// Its labels.
    pub labels: Arc<StringMap>,
    /// Its annotations.
    pub annotations: Arc<StringMap>,
}

impl LeanPod {
    /// A new Pending pod of `template`, named after its prefix unless `indexed` says its own.
    pub fn new(
        template: Arc<PodTemplate>,
        name: String,
        uid: Uid,
        now: Timestamp,
        indexed: Option<Indexed>,
    ) -> Self {
        LeanPod {
            template,
            name,
            uid,
            created: now,
            started: None,
            end: None,
            indexed: indexed.map(Box::new),
        }
    }

    /// Its completion index, if its Job is Indexed.
    pub fn index(&self) -> Option<i32> {
        self.indexed.as_ref().map(|i| i.index)
    }

    /// Its labels and annotations.
    pub fn labels_and_annotations(&self) -> (&Arc<StringMap>, &Arc<StringMap>) {
        match &self.indexed {
            Some(own) => (&own.labels, &own.annotations),
            None => (&self.template.labels, &self.template.annotations),
        }
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pod's namespace, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.template.namespace.as_deref()
    }

    /// When it was created.
    pub fn created(&self) -> Timestamp {
        self.created
    }

    /// Its `startTime`: when its run started, as [`started`] records it.
    pub fn start_time(&self) -> Option<Timestamp> {
        self.started
    }

    /// The pod's uid.
    pub fn uid(&self) -> Uid {
        self.uid
    }

    /// Notes that the container started at `at`, as [`started`] would; false if this
    /// record cannot hold it (it started or finished already), and the Pod must be made.
    pub fn start(&mut self, at: Timestamp) -> bool {
        let fresh = self.started.is_none() && self.end.is_none();
        if fresh {
            self.started = Some(at);
        }
        fresh
    }

    /// Whether this record can hold the pod's end: it has not finished yet.
    pub fn can_finish(&self) -> bool {
        self.end.is_none()
    }

    /// Notes that the pod finished, as [`finished`] would (see [`LeanPod::can_finish`]).
    pub fn finish(&mut self, exit: PodExit, started: Option<Timestamp>, at: Timestamp) {
        debug_assert!(self.can_finish());
        self.end = Some(End { exit, started, at });
    }

    /// Whether the pod finished and succeeded.
    pub fn succeeded(&self) -> bool {
        self.end.as_ref().is_some_and(|e| e.exit.success())
    }

    /// The Pod object.
    pub fn to_pod(&self) -> Pod {
        let prefix = self
            .indexed
            .as_ref()
            .map_or(&self.template.prefix, |i| &i.prefix);
        let mut pod = new_pod(
            &self.template,
            prefix.clone(),
            self.name.clone(),
            self.uid.text(),
            self.created,
        );
        if let Some(own) = &self.indexed {
            pod.metadata.labels = own.labels.clone();
            pod.metadata.annotations = own.annotations.clone();
        }
        if let Some(at) = self.started {
            started(&mut pod, at);
        }
        if let Some(End { exit, started, at }) = &self.end {
            finished(&mut pod, exit, *started, *at);
        }
        pod
    }

    /// `kubectl get pods`' STATUS, as [`pod_status_column`] shows the Pod (never deleted,
    /// never restarted).
    pub fn status_column(&self) -> String {
        match (&self.end, self.started) {
            (Some(end), _) => end.exit.reason().to_string(),
            (None, Some(_)) => "Running".into(),
            (None, None) => (self.template.container.state.waiting.as_ref())
                .map_or_else(|| "Pending".into(), |w| w.reason.to_string()),
        }
    }
}

/// The container started running at `at`.
pub fn started(pod: &mut Pod, at: Timestamp) {
    let status = &mut pod.status;
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
}

/// The container failed and will restart in place after a back-off (CrashLoopBackOff).
pub fn restarting(pod: &mut Pod, exit: &PodExit, started: Timestamp, at: Timestamp) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    if let Some(cs) = pod.status.container_statuses.first_mut() {
        cs.last_state = Some(Box::new(terminated(exit, started, at)));
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
}

/// The pod is done: its last run ended as `exit`.
pub fn finished(pod: &mut Pod, exit: &PodExit, started: Option<Timestamp>, at: Timestamp) {
    let status = &mut pod.status;
    status.phase = if exit.success() {
        "Succeeded"
    } else {
        "Failed"
    }
    .into();
    if let PodExit::Terminated(reason) = exit {
        status.reason = Some(reason.clone());
        status.message = Some(format!("Pod was terminated by wasmjob: {reason}"));
        // Pods the host stops on its own account are disruptions, which a pod failure
        // policy can match; those its Job's controller stops are not.
        let disruption = match reason.as_str() {
            REASON_SHUTDOWN => Some("Pod was terminated in response to imminent node shutdown."),
            REASON_DEADLINE => {
                Some("Pod was terminated because its Job exceeded activeDeadlineSeconds.")
            }
            _ => None,
        };
        if let Some(message) = disruption {
            status.conditions.push(PodCondition {
                type_: DISRUPTION_TARGET.into(),
                status: "True".into(),
                last_transition_time: at,
                reason: "TerminationByKubelet".into(),
                message: message.into(),
            });
        }
    }
    if let Some(cs) = status.container_statuses.first_mut() {
        cs.state = terminated(exit, started.unwrap_or(at), at);
        cs.ready = false;
        cs.started = false;
    }
}

/// The host stopped (crash, kill, power cut) while the pod was pending or running: the pod
/// failed, as a pod of a lost node does, with a `DisruptionTarget` condition. If its Job's
/// controller was stopping it (`stopping`, see [`stopping_reason`]), it ends as that stop
/// would have ended it, so that it counts as the stop would have (a suspended or succeeded
/// Job's pods are not failures).
pub fn lost(pod: &mut Pod, at: Timestamp, stopping: Option<&str>) {
    let message = "The wasmjob host stopped while this pod was running";
    let started = pod
        .status
        .container_statuses
        .first()
        .and_then(|c| c.state.running.as_ref())
        .map_or(at, |r| r.started_at);
    if let Some(reason) = stopping {
        finished(pod, &PodExit::Terminated(reason.into()), Some(started), at);
        return;
    }
    let exit = PodExit::Terminated(REASON_NODE_LOST.into());
    finished(pod, &exit, Some(started), at);
    pod.status.message = Some(message.into());
    pod.status.conditions.push(PodCondition {
        type_: DISRUPTION_TARGET.into(),
        status: "True".into(),
        last_transition_time: at,
        reason: "DeletionByPodGC".into(),
        message: "PodGC: the host running the pod restarted".into(),
    });
}

/// Why `job`'s controller stops whatever pods of it still run, as its recorded status and
/// spec tell: it met its success criteria, it is failing (the reason of its
/// `FailureTarget`), or it is suspended. A host that stopped meanwhile left those pods
/// recorded as running.
pub fn stopping_reason(job: &Job) -> Option<&'static str> {
    let status = &job.status;
    if status.condition(SUCCESS_CRITERIA_MET).is_some() {
        return Some(REASON_JOB_SUCCEEDED);
    }
    if let Some(target) = status.condition(FAILURE_TARGET) {
        return FAILURE_REASONS
            .iter()
            .copied()
            .find(|r| *r == target.reason);
    }
    (job.spec.suspend == Some(true)).then_some(REASON_SUSPENDED)
}

/// How many times the container has run: its restarts, plus the current run unless it is
/// waiting to (re)start or was stopped while waiting in back-off (then the kubelet reports
/// the last run's start again, and the restart counted never began).
pub fn runs(cs: &ContainerStatus) -> i32 {
    let started = cs.state.running.is_some() || cs.state.terminated.is_some();
    let stopped_in_backoff = matches!(
        (&cs.state.terminated, cs.last_state.as_ref().and_then(|s| s.terminated.as_ref())),
        (Some(t), Some(l)) if t.started_at == l.started_at
    );
    if started && !stopped_in_backoff {
        cs.restart_count.saturating_add(1)
    } else {
        cs.restart_count.max(0)
    }
}

/// Whether the pod has finished.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(&*pod.status.phase, "Succeeded" | "Failed")
}

/// When the pod finished, if it did.
pub fn finished_at(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .container_statuses
        .first()
        .and_then(|c| c.state.terminated.as_ref())
        .map(|t| t.finished_at)
}

fn terminated(exit: &PodExit, started: Timestamp, at: Timestamp) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: exit.exit_code(),
            reason: exit.reason(),
            message: exit.message().map(str::to_string),
            started_at: started,
            finished_at: at,
        }),
        ..Default::default()
    }
}

/// The STATUS column of `kubectl get pods`: `Terminating` for a deleted pod still running,
/// else the container's reason when it has one, else the pod's reason, else its phase.
pub fn pod_status_column(pod: &Pod) -> String {
    if pod.metadata.deletion_timestamp.is_some() && !is_finished(pod) {
        return "Terminating".into();
    }
    if let Some(c) = pod.status.container_statuses.first() {
        if let Some(t) = &c.state.terminated {
            return t.reason.to_string();
        }
        if let Some(w) = &c.state.waiting {
            return w.reason.to_string();
        }
    }
    pod.status
        .reason
        .clone()
        .unwrap_or_else(|| pod.status.phase.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PodEntry;

    fn template() -> Arc<PodTemplate> {
        let mut job: Job = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": { "name": "pi", "namespace": "batch" },
            "spec": { "template": {
                "metadata": { "labels": { "app": "pi" } },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{ "name": "pi", "image": "pi.wasm" }],
                },
            } },
        }))
        .unwrap();
        crate::api::defaults::admit_job(&mut job, "job-uid".into(), Timestamp::UNIX_EPOCH);
        Arc::new(PodTemplate::new(&job, "sha256:abc".into()))
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    /// A lean pod in each state it can hold: made into a Pod, it is the pod built at once
    /// from the same updates, and its STATUS column is the Pod's.
    #[test]
    fn a_lean_pod_reads_as_the_pod_built_at_once() {
        let template = template();
        let uid = Uid(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
        let exits = [
            PodExit::Exited(0),
            PodExit::Exited(3),
            PodExit::Trapped("wasm trap: unreachable".into()),
            PodExit::OutOfMemory("memory limit".into()),
            PodExit::Terminated(REASON_DEADLINE.into()),
            PodExit::Terminated(REASON_SHUTDOWN.into()),
            PodExit::CannotRun("no such file".into()),
        ];
        let mut cases: Vec<(Option<i64>, Option<PodExit>)> = vec![(None, None), (Some(1), None)];
        for exit in exits {
            cases.push((Some(1), Some(exit.clone())));
            cases.push((None, Some(exit)));
        }
        for (start, end) in cases {
            let mut lean = LeanPod::new(template.clone(), "pi-bcdfg".into(), uid, at(0), None);
            let mut eager = new_pod(
                &template,
                template.prefix.clone(),
                "pi-bcdfg".into(),
                "01234567-89ab-4def-8123-456789abcdef".into(),
                at(0),
            );
            if let Some(s) = start {
                assert!(lean.start(at(s)));
                started(&mut eager, at(s));
            }
            if let Some(exit) = &end {
                assert!(lean.can_finish());
                lean.finish(exit.clone(), start.map(at), at(2));
                finished(&mut eager, exit, start.map(at), at(2));
            }
            let case = format!("{start:?} {end:?}");
            assert_eq!(lean.to_pod(), eager, "{case}");
            assert_eq!(lean.status_column(), pod_status_column(&eager), "{case}");
            assert_eq!(
                lean.succeeded(),
                eager.status.phase == "Succeeded",
                "{case}"
            );
            let times = (eager.metadata.creation_timestamp, eager.status.start_time);
            assert_eq!((Some(lean.created()), lean.start_time()), times, "{case}");
            // A second start, or a second end, is not the lean record's to hold.
            assert_eq!(lean.can_finish(), end.is_none(), "{case}");
            assert_eq!(
                lean.start(at(3)),
                start.is_none() && end.is_none(),
                "{case}"
            );
        }
    }

    /// An Indexed Job's lean pod reads with its own prefix, labels and annotations.
    #[test]
    fn an_indexed_lean_pod_reads_with_its_own_labels_and_annotations() {
        let template = template();
        let mut labels = template.labels.clone();
        Arc::make_mut(&mut labels).insert(COMPLETION_INDEX.into(), "7".into());
        let mut annotations = template.annotations.clone();
        Arc::make_mut(&mut annotations).insert(COMPLETION_INDEX.into(), "7".into());
        let indexed = Indexed {
            index: 7,
            prefix: "pi-7-".into(),
            labels: labels.clone(),
            annotations: annotations.clone(),
        };
        let uid = Uid(1);
        let mut lean = LeanPod::new(
            template.clone(),
            "pi-7-bcdfg".into(),
            uid,
            at(0),
            Some(indexed),
        );
        assert!(lean.start(at(1)));
        lean.finish(PodExit::Exited(0), Some(at(1)), at(2));
        let mut eager = new_pod(
            &template,
            "pi-7-".into(),
            "pi-7-bcdfg".into(),
            uid.text(),
            at(0),
        );
        eager.metadata.labels = labels;
        eager.metadata.annotations = annotations;
        started(&mut eager, at(1));
        finished(&mut eager, &PodExit::Exited(0), Some(at(1)), at(2));
        assert_eq!(lean.to_pod(), eager);
        assert_eq!(lean.index(), Some(7));
        assert_eq!(completion_index(&eager), Some(7));
        assert_eq!(
            lean.labels_and_annotations()
                .1
                .get(COMPLETION_INDEX)
                .unwrap(),
            "7"
        );
    }

    /// An entry's lean pod is made into a Pod when read, and what happens to it then
    /// changes that Pod; printing it by name, uid or `with_pod` leaves it lean.
    #[test]
    fn a_lean_pod_read_once_is_changed_as_a_pod_from_then_on() {
        let template = template();
        let uid = Uid::draw(&mut rand::make_rng());
        let lean = LeanPod::new(template.clone(), "pi-bcdfg".into(), uid, at(0), None);
        let mut entry = PodEntry::lean(lean, 0);
        assert_eq!(entry.name(), "pi-bcdfg");
        assert_eq!(entry.namespace(), Some("batch"));
        assert!(entry.has_uid(&uid.text()) && !entry.has_uid("other"));
        assert_eq!(entry.status_column(), "ContainerCreating");
        let shown = entry.with_pod(|p| (p.metadata.uid.clone(), p.metadata.labels.clone()));
        assert_eq!(shown.0, Some(uid.text()));
        assert_eq!(shown.1.get("app").map(String::as_str), Some("pi"));
        assert!(entry.is_lean() && !entry.deleted());
        assert!(entry.lean_mut().unwrap().start(at(1)));
        // Read: from now on the Pod is changed, not the record.
        assert_eq!(entry.pod().status.phase, "Running");
        assert!(!entry.is_lean() && entry.lean_mut().is_none());
        finished(entry.pod_mut(), &PodExit::Exited(0), Some(at(1)), at(2));
        assert!(entry.succeeded());
        assert_eq!(entry.status_column(), "Completed");
        assert!(entry.has_uid(&uid.text()));
        entry.pod_mut().metadata.deletion_timestamp = Some(at(3));
        assert!(entry.deleted());
    }
}
