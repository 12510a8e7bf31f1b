//! Pod objects as the kubelet reports them: the new Pod of a Job, and how each container
//! transition (start, restart, finish, host loss) shows in its status.

use std::sync::Arc;

use jiff::Timestamp;

use crate::api::defaults::owner_reference;
use crate::api::types::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, FAILURE_TARGET, Job, ObjectMeta, OwnerReference, Pod, PodCondition, PodStatus,
    SUCCESS_CRITERIA_MET,
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

/// What all pods of a Job have in common, built once per Job.
pub struct PodTemplate {
    /// `generateName` (but an Indexed Job's pods name their index too).
    pub prefix: Arc<str>,
    /// `ownerReferences`: the Job, as [`owner_reference`] names it.
    pub owners: Arc<Vec<OwnerReference>>,
    /// The container's status while the pod is Pending.
    pub container: ContainerStatus,
}

impl PodTemplate {
    /// The template of `job`'s pods, whose module is `image_id`.
    pub fn new(job: &Job, image_id: Arc<str>) -> Self {
        let (name, image) = (job.spec.template.spec.containers.first())
            .map(|c| (c.name.as_str().into(), c.image.as_str().into()))
            .unwrap_or_default();
        PodTemplate {
            prefix: name_prefix(job.name()).into(),
            owners: Arc::new(vec![owner_reference(job)]),
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

/// A new Pending pod of `job` from its `template`, named `name` after `generate_name`.
pub fn new_pod(
    job: &Job,
    template: &PodTemplate,
    generate_name: Arc<str>,
    name: String,
    uid: String,
    now: Timestamp,
) -> Pod {
    let tmpl = &job.spec.template;
    Pod {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            uid: Some(uid),
            labels: tmpl.metadata.labels.clone(),
            annotations: tmpl.metadata.annotations.clone(),
            creation_timestamp: Some(now),
            owner_references: template.owners.clone(),
            deletion_timestamp: None,
            other: Default::default(),
        },
        spec: tmpl.spec.clone(),
        status: PodStatus {
            phase: "Pending".into(),
            container_statuses: smallvec::smallvec![template.container.clone()],
            ..Default::default()
        },
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
