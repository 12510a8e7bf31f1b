//! The object store: Jobs, their Pods and Events, as a tiny API server would hold them.
//! [`Store`] is the host's working set in memory; [`db::StateDb`] makes it durable (views,
//! resume after a crash); [`selector`] parses label selectors.

pub mod db;
pub mod selector;

use std::sync::Arc;

use jiff::Timestamp;

use crate::api::types::{Job, Pod};
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
    /// The Pod object.
    pub pod: Pod,
    /// Index of the owning Job in [`Store::jobs`].
    pub job: usize,
    /// Logs of each container run, oldest first (the first kept inline: most pods run once).
    pub logs: smallvec::SmallVec<[Arc<PodLog>; 1]>,
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
        self.pods
            .iter()
            .map(|p| &**p)
            .find(|p| p.pod.metadata.name.as_deref() == Some(name))
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
