//! Work queues, the docs' job-wq pattern: pods pop items through their host, never over an
//! ambient network. A pod's manifest grants queues with two env variables, as the docs'
//! manifests carry them: `BROKER_URL` picks the broker and `QUEUE` names the queues the pod
//! may touch (comma-separated). The [`Broker`] trait is what the runtime's host functions
//! call; [`EmbeddedBroker`] keeps queues in the state database.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::api::field::{ErrorList, FieldError, Path as FieldPath};
use crate::api::types::Job;
use crate::store::db::{StateDb, StoreError};

pub mod redis;

/// Whether `url` selects the Redis broker (anything else is the embedded one).
pub fn is_redis(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

/// The broker for a Redis `url`.
pub fn connect_redis(url: &str) -> Result<Arc<dyn Broker>, QueueError> {
    Ok(Arc::new(redis::RedisBroker::connect(url)?))
}

/// Why a queue operation failed (the guest sees "unavailable").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueueError(pub String);

impl From<StoreError> for QueueError {
    fn from(e: StoreError) -> Self {
        QueueError(e.to_string())
    }
}

/// What a pop found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popped {
    /// An item, now leased: `(id, body)`.
    Item(u64, Vec<u8>),
    /// Nothing waiting, but other pods hold leases whose items may come back (if they fail):
    /// not yet the end of the queue.
    Pending,
    /// Nothing waiting and nothing leased to anyone else: the queue is drained.
    Empty,
}

/// A queue backend. Items popped are leased to a holder (a pod's uid) until acknowledged, or
/// until the host settles the holder's leases when its container run ends.
pub trait Broker: Send + Sync {
    /// Leases the next item of `queue` to `holder`.
    fn pop(&self, queue: &str, holder: &str) -> Result<Popped, QueueError>;
    /// Acknowledges item `id` held by `holder`; `false` if `holder` does not hold it.
    fn ack(&self, queue: &str, id: u64, holder: &str) -> Result<bool, QueueError>;
    /// Appends an item.
    fn push(&self, queue: &str, body: &[u8]) -> Result<(), QueueError>;
    /// Items waiting.
    fn len(&self, queue: &str) -> Result<u64, QueueError>;
    /// Whether the host settles leases in its own state commits (the embedded broker);
    /// otherwise it calls [`Broker::settle`] once a pod's end is committed.
    fn settles_in_store(&self) -> bool {
        false
    }
    /// Acknowledges (`success`) or requeues every lease `holder` has on `queues`.
    fn settle(&self, _holder: &str, _queues: &[String], _success: bool) -> Result<(), QueueError> {
        Ok(())
    }
    /// Called on every host tick: keeps this host's leases from expiring.
    fn keepalive(&self) {}
}

/// Queues in the state database, through a connection of their own: pods pop and ack while
/// the host commits; leases are settled in the host's commits.
pub struct EmbeddedBroker {
    db: Mutex<StateDb>,
}

impl EmbeddedBroker {
    /// Opens the queues of state directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Ok(EmbeddedBroker {
            db: Mutex::new(StateDb::open(dir)?),
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, StateDb> {
        // A panic while holding the lock cannot leave a transaction open: rusqlite rolls back.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Broker for EmbeddedBroker {
    fn pop(&self, queue: &str, holder: &str) -> Result<Popped, QueueError> {
        let mut db = self.db();
        Ok(match db.queue_pop(queue, holder)? {
            Some((id, body)) => Popped::Item(id, body),
            None if db.queue_leased_to_others(queue, holder)? => Popped::Pending,
            None => Popped::Empty,
        })
    }

    fn ack(&self, queue: &str, id: u64, holder: &str) -> Result<bool, QueueError> {
        Ok(self.db().queue_ack(queue, id, holder)?)
    }

    fn push(&self, queue: &str, body: &[u8]) -> Result<(), QueueError> {
        self.db().queue_push(queue, [body])?;
        Ok(())
    }

    fn len(&self, queue: &str) -> Result<u64, QueueError> {
        Ok(self.db().queue_len(queue)?)
    }

    fn settles_in_store(&self) -> bool {
        true
    }
}

/// Who holds the leases of run `run` (0 first) of the pod with uid `uid`.
pub fn holder(uid: &str, run: i32) -> String {
    format!("{uid}/{run}")
}

/// The queues one pod may use, and the broker that holds them.
#[derive(Clone)]
pub struct QueueGrant {
    /// The broker.
    pub broker: Arc<dyn Broker>,
    /// Queue names the manifest grants.
    pub queues: Vec<String>,
    /// The pod's uid: each container run holds its leases as [`holder`]`(uid, run)`.
    pub holder: String,
}

impl fmt::Debug for QueueGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueGrant")
            .field("queues", &self.queues)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl QueueGrant {
    /// Whether the pod may use `queue`.
    pub fn allows(&self, queue: &str) -> bool {
        self.queues.iter().any(|q| q == queue)
    }
}

/// What a pod template asks of queues: the broker URL and the queue names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRequest {
    /// `BROKER_URL` as written.
    pub url: String,
    /// The queues of `QUEUE`.
    pub queues: Vec<String>,
}

/// Reads a Job's queue grant from its container's env (`BROKER_URL` and `QUEUE`, as literal
/// values). `None` when the pod uses no broker.
pub fn requested(job: &Job) -> Result<Option<QueueRequest>, ErrorList> {
    let Some(c) = job.spec.template.spec.containers.first() else {
        return Ok(None);
    };
    let path = FieldPath::new("spec")
        .child("template")
        .child("spec")
        .child("containers")
        .index(0)
        .child("env");
    let value = |name: &str| {
        c.env
            .iter()
            .enumerate()
            .find(|(_, e)| e.name == name)
            .map(|(i, e)| (i, e.value.clone()))
    };
    let Some((_, url)) = value("BROKER_URL") else {
        return Ok(None);
    };
    let url = url.unwrap_or_default();
    let mut errs = ErrorList::new();
    let queues: Vec<String> = match value("QUEUE") {
        Some((_, Some(v))) => v
            .split(',')
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    if queues.is_empty() {
        errs.push(FieldError::required(
            &path.key("QUEUE"),
            "a pod with BROKER_URL names its queues in QUEUE (comma-separated)",
        ));
    }
    for q in &queues {
        if !crate::api::names::is_queue_name(q) {
            errs.push(FieldError::invalid(
                &path.key("QUEUE"),
                q.as_str(),
                "a queue name consists of letters, digits, '-', '_' and '.' (at most 253)",
            ));
        }
    }
    if errs.is_empty() {
        Ok(Some(QueueRequest { url, queues }))
    } else {
        Err(errs)
    }
}
