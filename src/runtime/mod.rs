//! How pods run: the [`PodRuntime`] trait, implemented by [`wasm`] (wasmtime) and [`fake`]
//! (scripted, for tests and benchmarks). Nothing outside `runtime::wasm` names wasmtime.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use crate::api::field::ErrorList;
use crate::api::types::Job;
use crate::logs::PodLog;

pub mod fake;
pub mod wasm;

/// A boxed, sendable future that may borrow for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How one container run ended. A guest failing is data, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodExit {
    /// The module exited (or returned from `_start`) with this code.
    Exited(i32),
    /// The module trapped (e.g. `unreachable`, out-of-bounds access, stack overflow).
    Trapped(String),
    /// The module needed more memory than its limit allowed.
    OutOfMemory(String),
    /// The host stopped it; the reason is the Job's (e.g. `DeadlineExceeded`).
    Terminated(String),
    /// The host could not start it (e.g. a hostPath that vanished).
    CannotRun(String),
}

impl PodExit {
    /// Whether the run succeeded.
    pub fn success(&self) -> bool {
        matches!(self, PodExit::Exited(0))
    }

    /// Exit code as Kubernetes reports it: the module's code, 137 for kills (SIGKILL) and
    /// OOM, 134 for traps (SIGABRT), 128 when it could not run.
    pub fn exit_code(&self) -> i32 {
        match self {
            PodExit::Exited(c) => *c,
            PodExit::Trapped(_) => 134,
            PodExit::OutOfMemory(_) | PodExit::Terminated(_) => 137,
            PodExit::CannotRun(_) => 128,
        }
    }

    /// The container's `state.terminated.reason`.
    pub fn reason(&self) -> crate::api::types::Text {
        match self {
            PodExit::Exited(0) => "Completed".into(),
            PodExit::Exited(_) | PodExit::Trapped(_) => "Error".into(),
            PodExit::OutOfMemory(_) => "OOMKilled".into(),
            PodExit::Terminated(r) => r.clone().into(),
            PodExit::CannotRun(_) => "ContainerCannotRun".into(),
        }
    }

    /// The container's `state.terminated.message`, if any.
    pub fn message(&self) -> Option<&str> {
        match self {
            PodExit::Exited(_) => None,
            PodExit::Trapped(m) | PodExit::OutOfMemory(m) | PodExit::CannotRun(m) => Some(m),
            PodExit::Terminated(_) => None,
        }
    }
}

/// The pod a sandbox is made for: what `fieldRef`s and logs need, borrowed from the Pod.
#[derive(Clone, Copy)]
pub struct PodIdentity<'a> {
    /// Pod name.
    pub name: &'a str,
    /// Pod namespace.
    pub namespace: &'a str,
    /// Pod uid (formatted only if the runtime needs it).
    pub uid: &'a (dyn std::fmt::Display + Sync),
    /// Pod labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Pod annotations.
    pub annotations: &'a BTreeMap<String, String>,
    /// The work queues the pod may use, if its manifest grants any.
    pub queues: Option<&'a crate::queue::QueueGrant>,
}

/// Runs pods.
pub trait PodRuntime: Send + Sync + 'static {
    /// Checks and prepares a Job's pod template once (reads and compiles the module, checks
    /// volumes). Problems are field errors, reported before anything starts.
    fn prepare(&self, job: &Job, base_dir: &Path) -> Result<Arc<dyn PreparedPod>, ErrorList>;
}

/// A Job's pod template, ready to run many pods.
pub trait PreparedPod: Send + Sync {
    /// The module's content id (`sha256:...`), shown as the container's `imageID`.
    fn image_id(&self) -> Arc<str>;

    /// One pod's sandbox (its emptyDir volumes live as long as it does). Pods with nothing
    /// of their own (no volumes, no per-pod environment, no queues) may share one.
    fn sandbox(&self, pod: &PodIdentity<'_>) -> Result<Arc<dyn Sandbox>, String>;

    /// The sandbox that pods with nothing of their own share, if there is one.
    fn shared_sandbox(&self) -> Option<Arc<dyn Sandbox>> {
        None
    }

    /// Whether [`PreparedPod::sandbox`] gives `pod` the shared sandbox (only if there is
    /// one): a host that holds that one then passes none per pod (a reference count both
    /// cores would touch).
    fn shares_sandbox(&self, pod: &PodIdentity<'_>) -> bool {
        let _ = pod;
        false
    }
}

/// One pod: runs its container, possibly several times (restartPolicy OnFailure).
pub trait Sandbox: Send + Sync {
    /// Runs the container once, writing its output to `log`, and notes in `log` when it
    /// starts (its instance is ready and its entry point about to run: `PodLog::mark_started`
    /// with tokio's `Instant::now()`), not at all if it never does (e.g. it cannot be
    /// instantiated, or waits for an instance slot). Dropping the future stops it.
    fn run(&self, log: Arc<PodLog>) -> BoxFuture<'_, PodExit>;
}
