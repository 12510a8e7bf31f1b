//! The object store: Jobs, their Pods and Events, as a tiny API server would hold them.
//! [`Store`] is the host's working set in memory; [`db::StateDb`] makes it durable (views,
//! resume after a crash); [`selector`] parses label selectors.

pub mod db;
pub mod selector;

use std::sync::{Arc, OnceLock};

use jiff::Timestamp;

use crate::api::types::{Job, Pod, StringMap};
use crate::host::pods::LeanPod;
use crate::logs::PodLog;

/// An event recorded on an object, as `kubectl describe` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `Normal` or `Warning`.
    pub type_: String,
    /// e.g. `SuccessfulCreate`.
    pub reason: String,
    /// e.g. `Created pod: pi-rq5rl`.
    pub message: String,
    /// `Job` or `Pod`.
    pub kind: String,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The object's uid.
    pub uid: String,
    /// The component that recorded it, e.g. `job-controller`.
    pub source: String,
    /// When it was first seen.
    pub first_time: Timestamp,
    /// When it was last seen.
    pub time: Timestamp,
    /// How often it was seen (identical events are folded, as Kubernetes does).
    pub count: i32,
}

/// A pod and its logs, one per container run (restarts add runs).
#[derive(Clone)]
pub struct PodEntry {
    /// Index of the owning Job in [`Store::jobs`].
    pub job: usize,
    /// Logs of each container run, oldest first (the first kept inline: most pods run once).
    pub logs: smallvec::SmallVec<[Arc<PodLog>; 1]>,
    /// The Pod object, once made (a lean pod's when first read).
    pod: OnceLock<Box<Pod>>,
    /// The pod while it is lean (see [`LeanPod`]); only read while `pod` is not made.
    lean: Option<LeanPod>,
}

impl PodEntry {
    /// An entry of Job `job` holding `pod`.
    pub fn new(pod: Pod, job: usize) -> Self {
        PodEntry {
            job,
            logs: Default::default(),
            pod: OnceLock::from(Box::new(pod)),
            lean: None,
        }
    }

    /// An entry of Job `job` holding a lean pod, made into a Pod object when first read.
    pub fn lean(lean: LeanPod, job: usize) -> Self {
        PodEntry {
            job,
            logs: Default::default(),
            pod: OnceLock::new(),
            lean: Some(lean),
        }
    }

    /// The Pod object (made now if the pod is lean).
    pub fn pod(&self) -> &Pod {
        self.pod.get_or_init(|| {
            let lean = self.lean.as_ref();
            Box::new(
                lean.expect("an entry holds a lean pod until its Pod is made")
                    .to_pod(),
            )
        })
    }

    /// The Pod object, to change: a lean pod is lean no more.
    pub fn pod_mut(&mut self) -> &mut Pod {
        self.pod();
        self.lean = None;
        self.pod.get_mut().expect("made just now")
    }

    /// The lean pod, while no Pod object has been made of it.
    pub fn lean_mut(&mut self) -> Option<&mut LeanPod> {
        if self.pod.get().is_some() {
            // Made by a reader: from now on the Pod is changed, not the record.
            self.lean = None;
        }
        self.lean.as_mut()
    }

    /// The lean record, while no Pod object has been made of it (after that the Pod is
    /// what is read and changed).
    fn unmade(&self) -> Option<&LeanPod> {
        self.lean.as_ref().filter(|_| self.pod.get().is_none())
    }

    /// Whether the pod is lean: no Pod object has been made of it.
    pub fn is_lean(&self) -> bool {
        self.pod.get().is_none()
    }

    /// Whether the pod finished and succeeded.
    pub fn succeeded(&self) -> bool {
        match self.unmade() {
            Some(lean) => lean.succeeded(),
            None => self.pod().status.phase == "Succeeded",
        }
    }

    /// `f` of the Pod object: a lean pod's is made for the call only, and not kept.
    pub fn with_pod<T>(&self, f: impl FnOnce(&Pod) -> T) -> T {
        match self.unmade() {
            Some(lean) => f(&lean.to_pod()),
            None => f(self.pod()),
        }
    }

    /// The pod's namespace, if set.
    pub fn namespace(&self) -> Option<&str> {
        match self.unmade() {
            Some(lean) => lean.namespace(),
            None => self.pod().metadata.namespace.as_deref(),
        }
    }

    /// Whether the pod was deleted (a lean pod never was).
    pub fn deleted(&self) -> bool {
        !self.is_lean() && self.pod().metadata.deletion_timestamp.is_some()
    }

    /// When the pod was created and when it started (its `startTime`), if it did.
    pub fn created_and_started(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        match self.unmade() {
            Some(lean) => (Some(lean.created()), lean.start_time()),
            None => {
                let pod = self.pod();
                (pod.metadata.creation_timestamp, pod.status.start_time)
            }
        }
    }

    /// The pod's labels and annotations.
    pub fn labels_and_annotations(&self) -> (&Arc<StringMap>, &Arc<StringMap>) {
        match self.unmade() {
            Some(lean) => lean.labels_and_annotations(),
            None => {
                let meta = &self.pod().metadata;
                (&meta.labels, &meta.annotations)
            }
        }
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        match self.unmade() {
            Some(lean) => lean.name(),
            None => self.pod().metadata.name.as_deref().unwrap_or_default(),
        }
    }

    /// Whether the pod's uid is `uid`.
    pub fn has_uid(&self, uid: &str) -> bool {
        match self.unmade() {
            Some(lean) => lean.uid().with_text(|own| own == uid),
            None => self.pod().metadata.uid.as_deref() == Some(uid),
        }
    }

    /// `kubectl get pods`' STATUS column.
    pub fn status_column(&self) -> String {
        match self.unmade() {
            Some(lean) => lean.status_column(),
            None => crate::host::pod_status_column(self.pod()),
        }
    }
}

/// Every object of a run.
#[derive(Default, Clone)]
pub struct Store {
    /// CronJobs in submission order.
    pub cronjobs: Vec<crate::api::cronjob::CronJob>,
    /// Jobs in submission order.
    pub jobs: Vec<Job>,
    /// Pods in creation order, each boxed so that a growing store moves pointers, not pods.
    pub pods: Vec<Box<PodEntry>>,
    /// Events in the order they happened.
    pub events: Vec<Box<Event>>,
    /// Uids of Jobs deleted by a user (`wasmjob delete`) while they ran, as opposed to their
    /// TTL or their CronJob (Replace, history).
    pub deleted_by_user: std::collections::BTreeSet<String>,
}

impl Store {
    /// The pods of Job `job` (index into `jobs`), in creation order.
    pub fn pods_of(&self, job: usize) -> impl Iterator<Item = &PodEntry> {
        self.pods.iter().map(|p| &**p).filter(move |p| p.job == job)
    }

    /// A pod by name.
    pub fn pod(&self, name: &str) -> Option<&PodEntry> {
        self.pods.iter().map(|p| &**p).find(|p| p.name() == name)
    }

    /// Events about one object, oldest first.
    pub fn events_for<'a>(
        &'a self,
        kind: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Event> {
        self.events
            .iter()
            .map(|e| &**e)
            .filter(move |e| e.kind == kind && e.name == name)
    }
}
