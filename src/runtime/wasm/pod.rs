//! One pod on wasmtime: the sandbox (argv, env, preopened volumes, memory limit) built from a
//! Job's pod template, and a container run with its exit classified.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use tempfile::TempDir;
use wasmtime::{
    Engine, Extern, InstancePre, ModuleExport, PoolConcurrencyLimitError, ResourceLimiter, Store,
    Trap, TypedFunc, WasmBacktrace,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use super::WasmOptions;
use super::queue::QueueAccess;
use super::sink::LogSink;
use crate::api::field::{ErrorList, FieldError, Path as FieldPath};
use crate::api::quantity::parse_bytes;
use crate::api::types::Job;
use crate::api::validation::{FieldRef, field_ref_key};
use crate::logs::PodLog;
use crate::queue::QueueGrant;
use crate::runtime::{BoxFuture, PodExit, PodIdentity, PreparedPod, Sandbox};

/// The instance slots of the engine's pool: a pod waits for one before it instantiates, so
/// that more pods than slots queue instead of failing. A pod that cannot be instantiated for
/// want of the host's resources waits for another run to give its instance back.
#[derive(Clone)]
pub struct Slots(Arc<SlotsInner>);

struct SlotsInner {
    permits: tokio::sync::Semaphore,
    /// The permits there are: the pool's slots, or the cap on demand.
    total: usize,
    /// Runs short of the host's resources (see [`start_guest`]). The other runs that hold a
    /// permit hold an instance (or are about to), whose end gives resources back. Counted
    /// only on that rare path, so that a trivial pod touches no counter shared by the cores.
    short: AtomicUsize,
    /// Woken each time a run's store is gone, while runs are short.
    released: tokio::sync::Notify,
}

impl Slots {
    /// `permits` slots.
    pub(super) fn new(permits: usize) -> Self {
        Slots(Arc::new(SlotsInner {
            permits: tokio::sync::Semaphore::new(permits),
            total: permits,
            short: AtomicUsize::new(0),
            released: tokio::sync::Notify::new(),
        }))
    }

    /// Waits for a slot; `None` once the runtime has shut down.
    async fn hold(&self) -> Option<Held<'_>> {
        let permit = self.0.permits.acquire().await.ok()?;
        Some(Held {
            _permit: permit,
            slots: self,
        })
    }

    /// Whether runs that are not short hold permits (the caller, short, holds one too).
    fn others_hold_instances(&self) -> bool {
        let held = self
            .0
            .total
            .saturating_sub(self.0.permits.available_permits());
        held > self.0.short.load(Relaxed)
    }

    /// Waits until a run gives its instance back, or `delay` (a release between the check
    /// in `Held::drop` and the caller's count is caught by the timeout).
    async fn wait_for_release(&self, delay: std::time::Duration) {
        tokio::select! {
            () = self.0.released.notified() => {}
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// A run counted in [`SlotsInner::short`] while it is short, uncounted when it starts, gives
/// up, or is dropped (a pod stopped while it waited).
struct Short<'a>(&'a AtomicUsize);

impl<'a> Short<'a> {
    fn count(short: &'a AtomicUsize) -> Self {
        short.fetch_add(1, Relaxed);
        Short(short)
    }
}

impl Drop for Short<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A run's slot. It is dropped after the run's store (declared before it), and then wakes a
/// run that is short of the host's resources.
struct Held<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
    slots: &'a Slots,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let slots = &self.slots.0;
        if slots.short.load(Relaxed) > 0 {
            slots.released.notify_one();
        }
    }
}

/// Per-store state: the WASI context and the memory limiter.
pub struct PodState {
    pub(super) wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
    /// The work queues the pod may use, if its manifest grants any.
    pub(super) queue: Option<QueueAccess>,
}

impl PodState {
    /// A state with arguments `args` (argv, the program's name first) and no environment,
    /// files or queues, and a memory limit of `limit`.
    fn bare(args: &[impl AsRef<str>], limit: usize) -> Self {
        PodState {
            wasi: WasiCtxBuilder::new().args(args).build_p1(),
            limiter: MemoryLimiter {
                max: limit,
                denied: false,
            },
            queue: None,
        }
    }
}

/// No arguments, for [`PodState::bare`].
const NO_ARGS: &[&str] = &[];

/// Caps linear memory and remembers whether it refused growth (→ OOMKilled).
struct MemoryLimiter {
    max: usize,
    denied: bool,
}

/// Looks again for the host's resources after a yield, before waiting for other runs (see
/// [`start_guest`]).
const SHORTAGE_YIELDS: u32 = 100;
/// Waits for the host's resources while no other run holds an instance, before giving up:
/// with the delays doubling from [`SHORTAGE_DELAY`] to [`SHORTAGE_MAX_DELAY`], about 1 s.
const SHORTAGE_ALONE_WAITS: u32 = 10;
/// The first wait after the yields.
const SHORTAGE_DELAY: std::time::Duration = std::time::Duration::from_millis(1);
/// The longest wait between looks: other runs' ends wake a waiting run before.
const SHORTAGE_MAX_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// Table elements allowed per store: generous for real programs, bounded for hostile ones.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max && maximum.is_none_or(|m| desired <= m);
        self.denied |= !ok;
        Ok(ok)
    }
    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.denied = true;
        Ok(())
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|m| desired <= m))
    }
    fn instances(&self) -> usize {
        1
    }
    fn memories(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        4
    }
}

/// Where a mount's host directory comes from.
#[derive(Debug, Clone)]
enum Source {
    Host { path: PathBuf, create: bool },
    EmptyDir(String),
}

#[derive(Debug, Clone)]
struct Mount {
    source: Source,
    guest: String,
    read_only: bool,
}

/// An environment variable, literal or resolved per pod.
#[derive(Debug, Clone)]
enum EnvValue {
    Literal(String),
    Field(String),
}

/// A Job's pod template, compiled and resolved.
pub struct PreparedWasm {
    common: Arc<Common>,
    image_id: Arc<str>,
    env: Vec<(String, EnvValue)>,
    mounts: Vec<Mount>,
    working_dir: Option<String>,
    /// The one sandbox of pods that have nothing of their own (no volumes or working
    /// directory, no environment from their metadata; see `sandbox` for queues and the
    /// completion index): those pods take a reference count rather than a sandbox each.
    shared: Option<Arc<WasmSandbox>>,
}

/// A module ready to run: linked, and its `_start` (checked at compile time to take and
/// return nothing) found once rather than by name in every instance.
#[derive(Clone)]
pub(super) struct Guest {
    pub(super) pre: InstancePre<PodState>,
    pub(super) start: ModuleExport,
}

/// What every sandbox of a Job shares, behind one reference count: a pod's sandbox and run
/// take one count, not one per part (the counts are touched by both cores at once).
struct Common {
    engine: Engine,
    slots: Slots,
    guest: Guest,
    argv: Box<[String]>,
    memory_limit: usize,
}

impl PreparedWasm {
    pub(super) fn new(
        engine: Engine,
        slots: Slots,
        guest: Guest,
        image_id: Arc<str>,
        job: &Job,
        base_dir: &Path,
        options: &WasmOptions,
    ) -> Result<Self, ErrorList> {
        let spec = &job.spec.template.spec;
        let c = &spec.containers[0];
        let cpath = FieldPath::new("spec")
            .child("template")
            .child("spec")
            .child("containers")
            .index(0);
        let mut errs = ErrorList::new();
        let argv = std::iter::once(c.name.clone())
            .chain(c.command.iter().cloned())
            .chain(c.args.iter().cloned())
            .collect();
        let env = c
            .env
            .iter()
            .map(|e| {
                let v = match e.value_from.as_ref().and_then(|f| f.field_ref.as_ref()) {
                    Some(fr) => EnvValue::Field(fr.field_path.clone()),
                    None => EnvValue::Literal(e.value.clone().unwrap_or_default()),
                };
                (e.name.clone(), v)
            })
            .collect::<Vec<_>>();
        let mut mounts = Vec::new();
        for m in &c.volume_mounts {
            let Some((vi, v)) = spec
                .volumes
                .iter()
                .enumerate()
                .find(|(_, v)| v.name == m.name)
            else {
                continue; // validation reported it
            };
            let source = if let Some(hp) = &v.host_path {
                let path = base_dir.join(&hp.path);
                let create = hp.type_.as_deref() == Some("DirectoryOrCreate");
                if !create && !path.is_dir() {
                    let vp = FieldPath::new("spec")
                        .child("template")
                        .child("spec")
                        .child("volumes")
                        .index(vi);
                    errs.push(FieldError::invalid(
                        &vp.child("hostPath").child("path"),
                        hp.path.as_str(),
                        format!("{} is not an existing directory", path.display()),
                    ));
                }
                Source::Host { path, create }
            } else {
                Source::EmptyDir(v.name.clone())
            };
            mounts.push(Mount {
                source,
                guest: m.mount_path.clone(),
                read_only: m.read_only.unwrap_or(false),
            });
        }
        let memory_limit = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.get("memory"))
            .and_then(|q| parse_bytes(&q.0))
            .unwrap_or(options.default_memory_limit);
        let memory_limit = usize::try_from(memory_limit).unwrap_or(usize::MAX);
        if memory_limit < 64 << 10 {
            errs.push(FieldError::invalid(
                &cpath.child("resources").child("limits").key("memory"),
                format!("{memory_limit}"),
                "must be at least 64Ki, one WebAssembly page",
            ));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let common = Arc::new(Common {
            engine,
            slots,
            guest,
            argv,
            memory_limit,
        });
        // Set when every variable is a literal, none taken from the pod's metadata.
        let literal_env: Option<Vec<(String, String)>> = (env.iter())
            .map(|(k, v)| match v {
                EnvValue::Literal(v) => Some((k.clone(), v.clone())),
                EnvValue::Field(_) => None,
            })
            .collect();
        let plain = mounts.is_empty() && c.working_dir.is_none();
        let shared = literal_env.filter(|_| plain).map(|env| {
            Arc::new(WasmSandbox {
                common: common.clone(),
                env,
                preopens: Vec::new(),
                queues: None,
                runs: Default::default(),
                _tmp: None,
            })
        });
        Ok(PreparedWasm {
            common,
            image_id,
            env,
            mounts,
            working_dir: c.working_dir.clone(),
            shared,
        })
    }
}

impl PreparedPod for PreparedWasm {
    fn image_id(&self) -> Arc<str> {
        self.image_id.clone()
    }

    fn shared_sandbox(&self) -> Option<Arc<dyn Sandbox>> {
        self.shared.clone().map(|s| s as Arc<dyn Sandbox>)
    }

    fn shares_sandbox(&self, pod: &PodIdentity<'_>) -> bool {
        // A pod with queues numbers its runs (its leases' holders), and an Indexed Job's
        // pod has its index in its environment: those have a sandbox of their own.
        self.shared.is_some()
            && pod.queues.is_none()
            && !pod
                .annotations
                .contains_key(crate::api::defaults::COMPLETION_INDEX)
    }

    fn sandbox(&self, pod: &PodIdentity<'_>) -> Result<Arc<dyn Sandbox>, String> {
        if let Some(shared) = self.shared.as_ref().filter(|_| self.shares_sandbox(pod)) {
            return Ok(shared.clone());
        }
        let needs_tmp = self
            .mounts
            .iter()
            .any(|m| matches!(m.source, Source::EmptyDir(_)));
        let tmp = if needs_tmp {
            Some(
                tempfile::Builder::new()
                    .prefix(&format!("wasmjob-{}-", pod.name))
                    .tempdir()
                    .map_err(|e| format!("creating emptyDir volumes: {e}"))?,
            )
        } else {
            None
        };
        // Empty (no allocation) for a pod without volumes, as most are.
        let mut preopens =
            Vec::with_capacity(self.mounts.len() + usize::from(self.working_dir.is_some()));
        for m in &self.mounts {
            let host = match (&m.source, &tmp) {
                (Source::Host { path, create }, _) => {
                    if *create {
                        std::fs::create_dir_all(path)
                            .map_err(|e| format!("creating hostPath {}: {e}", path.display()))?;
                    }
                    path.clone()
                }
                (Source::EmptyDir(name), Some(tmp)) => {
                    let dir = tmp.path().join(name);
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| format!("creating emptyDir {name}: {e}"))?;
                    dir
                }
                (Source::EmptyDir(_), None) => {
                    unreachable!("a temporary directory exists when an emptyDir is mounted")
                }
            };
            preopens.push((host, m.guest.clone(), m.read_only));
        }
        if let Some(wd) = &self.working_dir {
            // WASI preview1 has no current directory; wasi-libc resolves relative paths
            // through a preopen named ".", so the working directory is preopened as ".".
            let (host, guest, ro) = preopens
                .iter()
                .filter(|(_, g, _)| {
                    wd == g.trim_end_matches('/')
                        || wd.starts_with(&format!("{}/", g.trim_end_matches('/')))
                })
                .max_by_key(|(_, g, _)| g.len())
                .cloned()
                .ok_or_else(|| format!("workingDir {wd} is not inside a volume mount"))?;
            let rel = wd
                .trim_start_matches(guest.trim_end_matches('/'))
                .trim_start_matches('/');
            preopens.push((host.join(rel), ".".into(), ro));
        }
        let env = self
            .env
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    EnvValue::Literal(s) => s.clone(),
                    EnvValue::Field(path) => match field_ref_key(path) {
                        Some(FieldRef::Name) => pod.name.to_string(),
                        Some(FieldRef::Namespace) => pod.namespace.to_string(),
                        Some(FieldRef::Uid) => pod.uid.to_string(),
                        Some(FieldRef::Label(k)) => pod.labels.get(k).cloned().unwrap_or_default(),
                        Some(FieldRef::Annotation(k)) => {
                            pod.annotations.get(k).cloned().unwrap_or_default()
                        }
                        None => String::new(),
                    },
                };
                (k.clone(), value)
            })
            .collect::<Vec<_>>();
        let mut env = env;
        // Indexed Jobs: the index, as Kubernetes injects it through the downward API.
        if let Some(i) = pod.annotations.get(crate::api::defaults::COMPLETION_INDEX)
            && !env.iter().any(|(k, _)| k == "JOB_COMPLETION_INDEX")
        {
            env.push(("JOB_COMPLETION_INDEX".into(), i.clone()));
        }
        Ok(Arc::new(WasmSandbox {
            common: self.common.clone(),
            env,
            preopens,
            queues: pod.queues.cloned(),
            runs: Default::default(),
            _tmp: tmp,
        }))
    }
}

/// One pod's sandbox, or the one that pods with nothing of their own share; its emptyDir
/// volumes are removed when it is dropped.
struct WasmSandbox {
    common: Arc<Common>,
    env: Vec<(String, String)>,
    preopens: Vec<(PathBuf, String, bool)>,
    queues: Option<QueueGrant>,
    /// Container runs so far, counted for pods with queues: each run holds its queue leases
    /// under its own name.
    runs: std::sync::atomic::AtomicI32,
    _tmp: Option<TempDir>,
}

impl Sandbox for WasmSandbox {
    fn run(&self, log: Arc<PodLog>) -> BoxFuture<'_, PodExit> {
        // Counted first: every run the kubelet reports, even one that cannot start, has a
        // number, and the host settles queue leases by it. Only pods with queues count (a
        // shared sandbox's counter would be a write both cores make per pod).
        let run = match self.queues {
            Some(_) => self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            None => 0,
        };
        let mut b = WasiCtxBuilder::new();
        let common = &self.common;
        b.args(&common.argv)
            .stdout(LogSink(log.clone()))
            .stderr(LogSink(log.clone()));
        for (k, v) in &self.env {
            b.env(k, v);
        }
        for (host, guest, ro) in &self.preopens {
            let perms = if *ro {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            if let Err(e) = b.preopened_dir(host, guest, perms) {
                let msg = format!("mounting {} at {guest}: {}", host.display(), e.root_cause());
                return Box::pin(async move { PodExit::CannotRun(msg) });
            }
        }
        let state = PodState {
            wasi: b.build_p1(),
            limiter: MemoryLimiter {
                max: common.memory_limit,
                denied: false,
            },
            queue: self.queues.clone().map(|mut grant| {
                grant.holder = crate::queue::holder(&grant.holder, run);
                QueueAccess::new(grant)
            }),
        };
        let store = new_store(&common.engine, state);
        // The run borrows the sandbox (its caller holds it throughout): no reference count
        // per pod on the one a Job's pods share.
        Box::pin(async move {
            // An instance slot of the pool, held until the store that used it is gone.
            let Some(slot) = common.slots.hold().await else {
                return PodExit::CannotRun("the wasm runtime has shut down".into());
            };
            // Declared after the slot, so that a run stopped mid-way (its future dropped)
            // drops the store first too.
            let mut store = store;
            let started = || log.mark_started(tokio::time::Instant::now());
            let result =
                start_guest(&common.engine, &slot, &common.guest, &mut store, started).await;
            let exit = classify(result, store.data().limiter.denied, common.memory_limit);
            // The store gives its instance back to the pool before the slot is released:
            // a captured store would only be dropped with this future, after the permit,
            // and a pod let in meanwhile would find the pool full.
            drop(store);
            drop(slot);
            if let PodExit::Trapped(msg) | PodExit::OutOfMemory(msg) = &exit {
                log.note(msg);
            }
            exit
        })
    }
}

/// One bare run of a module for [`super::WasmRuntime::raw_loop`]: a WASI context with the
/// arguments and discarded output, a store with the pod's memory limiter and epoch deadline,
/// instantiate, `_start`. Whether it exited 0.
pub(super) async fn raw_run(
    engine: &Engine,
    slots: &Slots,
    guest: &Guest,
    argv: &[String],
    limit: usize,
) -> bool {
    let state = PodState::bare(argv, limit);
    let Some(slot) = slots.hold().await else {
        return false;
    };
    let mut store = new_store(engine, state);
    let result = start_guest(engine, &slot, guest, &mut store, || {}).await;
    drop(store);
    drop(slot);
    matches!(classify(result, false, limit), PodExit::Exited(0))
}

/// A pod's store: its state, memory limiter and epoch deadline (a guest yields at every tick).
fn new_store(engine: &Engine, state: PodState) -> Store<PodState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
    store
}

/// Instantiates `pre` in `store` and runs its `_start`, calling `on_start` just before the
/// guest first runs. The run holds `held`. Some failures are the host's, not the pod's, and
/// the run looks again (in a fresh store: the failed attempt counted against the store's
/// limit of one instance) rather than fail the pod:
/// - The pool is full: with every slot taken, wasmtime can miss for a moment the slot the
///   run's permit stands for, freed into a shard of its index allocator that the search had
///   already passed, or in a batch of decommits another thread is flushing. The same holds
///   for the pool's fiber stacks, taken when `_start` is called (before the guest runs).
/// - Instantiation meets ENOMEM: the host is out of memory mappings or address space (a
///   `ulimit -v`, an embedding program's own mappings). ENOMEM from `_start` fails the pod:
///   the guest may have run by then.
///
/// The first [`SHORTAGE_YIELDS`] looks follow a yield. Then the run waits for another run
/// to end (or a delay doubling up to [`SHORTAGE_MAX_DELAY`]), as long as other runs hold
/// instances, a pod Pending as a cluster's waits in `ContainerCreating`; while none does, it
/// gives up after [`SHORTAGE_ALONE_WAITS`] waits.
async fn start_guest(
    engine: &Engine,
    held: &Held<'_>,
    guest: &Guest,
    store: &mut Store<PodState>,
    on_start: impl FnOnce(),
) -> wasmtime::Result<()> {
    let mut on_start = Some(on_start);
    let (mut looks, mut alone, mut short) = (0u32, 0u32, None);
    loop {
        let e = match guest.pre.instantiate_async(&mut *store).await {
            Ok(instance) => {
                // No longer short: the run holds an instance now.
                short = None;
                let start = instance
                    .get_module_export(&mut *store, &guest.start)
                    .and_then(Extern::into_func)
                    .ok_or_else(|| wasmtime::Error::msg("the module's _start is gone"))?;
                // SAFETY: the module's `_start` was checked, when it was compiled, to be a
                // function of no parameters and no results.
                let start = unsafe { TypedFunc::<(), ()>::new_unchecked(&*store, start) };
                if let Some(on_start) = on_start.take() {
                    on_start();
                }
                match start.call_async(&mut *store, ()).await {
                    Err(e) if e.is::<PoolConcurrencyLimitError>() => e,
                    result => return result,
                }
            }
            Err(e) if lacks_host_resources(&e) => e,
            Err(e) => return Err(e),
        };
        let slots = held.slots;
        short.get_or_insert_with(|| Short::count(&slots.0.short));
        // A fresh store for the next look; this one's instance (if any) is given back.
        let used = std::mem::replace(store, Store::new(engine, PodState::bare(NO_ARGS, 0)));
        *store = new_store(engine, used.into_data());
        looks += 1;
        if looks <= SHORTAGE_YIELDS {
            tokio::task::yield_now().await;
            continue;
        }
        if !slots.others_hold_instances() {
            alone += 1;
            if alone > SHORTAGE_ALONE_WAITS {
                return Err(e);
            }
        }
        let doublings = (looks - SHORTAGE_YIELDS - 1).min(16);
        let delay = (SHORTAGE_DELAY * (1 << doublings)).min(SHORTAGE_MAX_DELAY);
        slots.wait_for_release(delay).await;
    }
}

/// Whether an instantiation failed for want of the host's resources: a full pool, or ENOMEM
/// from mapping memory (or, in the unit test, a stack).
fn lacks_host_resources(e: &wasmtime::Error) -> bool {
    let nomem = rustix::io::Errno::NOMEM;
    e.is::<PoolConcurrencyLimitError>()
        || e.chain().any(|cause| {
            cause.downcast_ref::<rustix::io::Errno>() == Some(&nomem)
                || cause
                    .downcast_ref::<std::io::Error>()
                    .and_then(std::io::Error::raw_os_error)
                    == Some(nomem.raw_os_error())
        })
}

/// Maps a run's result onto a container exit.
fn classify(result: wasmtime::Result<()>, memory_denied: bool, limit: usize) -> PodExit {
    let oom = || {
        PodExit::OutOfMemory(format!(
            "memory limit of {} exceeded",
            crate::api::quantity::format_bytes(limit as u64)
        ))
    };
    match result {
        Ok(()) => PodExit::Exited(0),
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                return if exit.0 != 0 && memory_denied {
                    oom()
                } else {
                    PodExit::Exited(exit.0)
                };
            }
            if memory_denied {
                return oom();
            }
            let mut msg = match e.downcast_ref::<Trap>() {
                Some(t) => t.to_string(),
                None => e.root_cause().to_string(),
            };
            if let Some(bt) = e.downcast_ref::<WasmBacktrace>() {
                msg = format!("{msg}\n{bt}");
            }
            PodExit::Trapped(msg.trim_end().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use super::super::{WasmOptions, WasmRuntime};
    use crate::api::types::Job;
    use crate::logs::PodLog;
    use crate::runtime::{PodExit, PodIdentity, PodRuntime, PreparedPod};

    /// A Job of `image` (relative to `dir`) with `args`, prepared on a runtime whose pool has
    /// one instance slot.
    fn pool_of_one(dir: &Path, image: &str, args: &str) -> (WasmRuntime, Arc<dyn PreparedPod>) {
        let job: Job = serde_yaml_ng::from_str(&format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: t}}\nspec:\n  template:\n    \
             spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: {image}, \
             args: [{args}]}}]\n"
        ))
        .unwrap();
        let runtime = WasmRuntime::new(WasmOptions {
            pool: 1,
            ..WasmOptions::default()
        })
        .unwrap();
        let prepared = runtime.prepare(&job, dir).unwrap();
        (runtime, prepared)
    }

    /// One container run of a new sandbox of `prepared` (pod `name`), and when it started.
    async fn run_once(
        prepared: &dyn PreparedPod,
        name: &str,
    ) -> (PodExit, Option<tokio::time::Instant>) {
        let labels = BTreeMap::new();
        let identity = PodIdentity {
            name,
            namespace: "default",
            uid: &"u",
            labels: &labels,
            annotations: &labels,
            queues: None,
        };
        let sandbox = prepared.sandbox(&identity).unwrap();
        let log = PodLog::new(name, "c", 1 << 10, None);
        let exit = sandbox.run(log.clone()).await;
        (exit, log.started())
    }

    /// A run hands its pool slot on only once its store has given the instance back. The
    /// slot's permit wakes a waiting pod on another thread at once, so the store must be gone
    /// by then: it was dropped a moment after the permit, and now and then the pod let in
    /// found a pool of one still full and failed ("maximum concurrent limit ... reached").
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slot_is_handed_on_only_once_its_instance_is_back_in_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.wasm"), crate::bench::TRIVIAL_MODULE).unwrap();
        let (_runtime, prepared) = pool_of_one(dir.path(), "t.wasm", "");
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let prepared = prepared.clone();
                tokio::spawn(async move {
                    let mut failed = Vec::new();
                    for _ in 0..1000 {
                        match run_once(&*prepared, "t-1").await.0 {
                            PodExit::Exited(0) => {}
                            other => failed.push(other),
                        }
                    }
                    failed
                })
            })
            .collect();
        for t in tasks {
            let failed = t.await.unwrap();
            assert!(
                failed.is_empty(),
                "{} runs failed: {:?}",
                failed.len(),
                failed[0]
            );
        }
    }

    /// A run that waits for an instance slot has not started: a pod beyond the pool stays
    /// Pending (it once showed Running while it waited).
    #[tokio::test]
    async fn a_run_starts_only_once_it_has_an_instance_slot() {
        let testbed = concat!(env!("CARGO_MANIFEST_DIR"), "/guests/bin/testbed.wasm");
        let (_runtime, prepared) = pool_of_one(Path::new("."), testbed, "sleep, '50'");
        let run = |name: &'static str| {
            let prepared = prepared.clone();
            async move {
                let (exit, started) = run_once(&*prepared, name).await;
                (exit, started, tokio::time::Instant::now())
            }
        };
        let ((a, a_start, a_end), (b, b_start, b_end)) = tokio::join!(run("a"), run("b"));
        assert_eq!((a, b), (PodExit::Exited(0), PodExit::Exited(0)));
        let (a_start, b_start) = (a_start.unwrap(), b_start.unwrap());
        // b waited for a's slot, and started only once a had ended.
        assert!(a_start < a_end, "a ran 50 ms");
        assert!(
            a_end <= b_start,
            "b started {:?} before a ended",
            a_end - b_start
        );
        assert!(b_start < b_end, "b ran 50 ms");
    }

    /// A module runs only if it exports `_start` as a function of no parameters and no
    /// results: found once when it is compiled, `_start` is called unchecked in every pod.
    #[test]
    fn a_module_needs_a_start_that_takes_and_returns_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = WasmRuntime::new(WasmOptions {
            pool: 1,
            ..WasmOptions::default()
        })
        .unwrap();
        let trivial = crate::bench::TRIVIAL_MODULE;
        let compile = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            runtime.compile(&path).map(|_| ())
        };
        assert_eq!(compile("ok.wasm", trivial), Ok(()));
        // The same module with its export renamed `_begin`.
        let pos = trivial.windows(6).position(|w| w == b"_start").unwrap();
        let mut renamed = trivial.to_vec();
        renamed[pos..pos + 6].copy_from_slice(b"_begin");
        assert_eq!(
            compile("none.wasm", &renamed),
            Err("not a WASI command module: it exports no _start function".into())
        );
        // The same module with `_start` taking an i32: type `(i32) -> ()`.
        let old_type: &[u8] = &[0x01, 0x04, 0x01, 0x60, 0x00, 0x00];
        let pos = trivial.windows(6).position(|w| w == old_type).unwrap();
        let mut typed = trivial[..pos].to_vec();
        typed.extend_from_slice(&[0x01, 0x05, 0x01, 0x60, 0x01, 0x7f, 0x00]);
        typed.extend_from_slice(&trivial[pos + 6..]);
        assert_eq!(
            compile("param.wasm", &typed),
            Err("not a WASI command module: its _start takes or returns values".into())
        );
    }

    /// Pods with nothing of their own share their Job's one sandbox; a pod whose environment
    /// takes its metadata (a `fieldRef`, or an Indexed Job's index) gets a sandbox of its own.
    #[test]
    fn plain_pods_share_a_sandbox_and_pods_with_their_own_environment_do_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.wasm"), crate::bench::TRIVIAL_MODULE).unwrap();
        let runtime = WasmRuntime::new(WasmOptions {
            pool: 1,
            ..WasmOptions::default()
        })
        .unwrap();
        let prepare = |env: &str| {
            let job: Job = serde_yaml_ng::from_str(&format!(
                "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: t}}\nspec:\n  template:\n    \
                 spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: t.wasm, \
                 env: {env}}}]\n"
            ))
            .unwrap();
            runtime.prepare(&job, dir.path()).unwrap()
        };
        let plain = prepare("[{name: A, value: b}]");
        let own = prepare("[{name: P, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]");
        let none = BTreeMap::new();
        let indexed = BTreeMap::from([(
            crate::api::defaults::COMPLETION_INDEX.to_string(),
            "3".to_string(),
        )]);
        let identity = |annotations| PodIdentity {
            name: "t-abcde",
            namespace: "default",
            uid: &"u",
            labels: &none,
            annotations,
            queues: None,
        };
        let sandbox = |prepared: &Arc<dyn PreparedPod>, annotations| {
            prepared.sandbox(&identity(annotations)).unwrap()
        };
        let first = sandbox(&plain, &none);
        assert!(Arc::ptr_eq(&first, &sandbox(&plain, &none)));
        assert!(!Arc::ptr_eq(&first, &sandbox(&plain, &indexed)));
        let own_first = sandbox(&own, &none);
        assert!(!Arc::ptr_eq(&own_first, &sandbox(&own, &none)));
        // What the host asks so as to pass a shared sandbox by its template, not per pod.
        assert!(Arc::ptr_eq(&first, &plain.shared_sandbox().unwrap()));
        assert!(plain.shares_sandbox(&identity(&none)));
        assert!(!plain.shares_sandbox(&identity(&indexed)));
        assert!(own.shared_sandbox().is_none() && !own.shares_sandbox(&identity(&none)));
    }

    /// The trivial module, and a runtime with `slots` instance slots that has compiled it.
    fn trivial_on_pool(dir: &Path, slots: u32) -> (WasmRuntime, Arc<super::super::Compiled>) {
        let path = dir.join("t.wasm");
        std::fs::write(&path, crate::bench::TRIVIAL_MODULE).unwrap();
        let runtime = WasmRuntime::new(WasmOptions {
            pool: slots,
            ..WasmOptions::default()
        })
        .unwrap();
        let compiled = runtime.compile(&path).unwrap();
        (runtime, compiled)
    }

    /// A run whose permit stands for a slot wasmtime cannot find yet (see
    /// [`super::start_guest`]) looks again, in a fresh store, until the slot is back. It used
    /// to fail the pod with "maximum concurrent limit of 10000 for memory stripe 0 reached":
    /// about one `wasmjob bench -n 10000 -p 10000 -r 2` in two failed a pod, or a whole round.
    #[tokio::test]
    async fn a_run_that_finds_the_pool_full_looks_again_until_its_slot_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, compiled) = trivial_on_pool(dir.path(), 1);
        // Another store holds the only slot, as a store being torn down on another thread
        // may still hold the slot its permit was already handed on for.
        let mut holder = super::new_store(
            &runtime.engine,
            super::PodState::bare(super::NO_ARGS, 1 << 20),
        );
        compiled
            .guest
            .pre
            .instantiate_async(&mut holder)
            .await
            .unwrap();
        let (engine, guest) = (runtime.engine.clone(), compiled.guest.clone());
        let slots = runtime.slots.clone();
        let run = tokio::spawn(async move {
            let held = slots.hold().await.unwrap();
            let mut store =
                super::new_store(&engine, super::PodState::bare(super::NO_ARGS, 1 << 20));
            super::start_guest(&engine, &held, &guest, &mut store, || {}).await
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!run.is_finished(), "it gave up while the pool was full");
        drop(holder);
        run.await.unwrap().unwrap();
    }

    /// A run short of the host's resources waits as long as another run holds an instance
    /// (whose end gives resources back), far past the second or so it waits when none does,
    /// and starts when that run ends. The other run was short too until it got its instance,
    /// and its guest then runs for a while (20 s of the paused clock).
    #[tokio::test(start_paused = true)]
    async fn a_run_short_of_resources_waits_while_other_runs_hold_theirs() {
        let sleep = concat!(env!("CARGO_MANIFEST_DIR"), "/guests/bin/sleep.wasm");
        let runtime = WasmRuntime::new(WasmOptions {
            pool: 2,
            ..WasmOptions::default()
        })
        .unwrap();
        let compiled = runtime.compile(Path::new(sleep)).unwrap();
        let (engine, guest) = (&runtime.engine, &compiled.guest);
        let sleeping = || super::PodState::bare(&["sleep", "20"], 64 << 20);
        // Both slots are taken outside any run: the pool is full.
        let mut outside = Vec::new();
        for _ in 0..2 {
            let mut store = super::new_store(engine, sleeping());
            guest.pre.instantiate_async(&mut store).await.unwrap();
            outside.push(store);
        }
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let (engine, guest, slots) = (engine.clone(), guest.clone(), runtime.slots.clone());
                let state = sleeping();
                tokio::spawn(async move {
                    let held = slots.hold().await.unwrap();
                    let mut store = super::new_store(&engine, state);
                    super::start_guest(&engine, &held, &guest, &mut store, || {}).await
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        // One slot comes free: one run gets it and sleeps 20 s; the other waits meanwhile.
        outside.pop();
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        assert!(
            runs.iter().all(|run| !run.is_finished()),
            "a run gave up while another held an instance"
        );
        // The first run ends at 20 s; the second gets its slot and ends 20 s later.
        for run in runs {
            run.await.unwrap().unwrap();
        }
    }

    /// Runs that all lack the host's resources, none of them holding an instance, give up
    /// (after a second or so) rather than wait for each other forever.
    #[tokio::test(start_paused = true)]
    async fn runs_short_of_resources_give_up_when_no_run_holds_an_instance() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, compiled) = trivial_on_pool(dir.path(), 2);
        let (engine, guest) = (&runtime.engine, &compiled.guest);
        // Both slots are taken outside any run; both permits are free.
        let mut outside = Vec::new();
        for _ in 0..2 {
            let mut store =
                super::new_store(engine, super::PodState::bare(super::NO_ARGS, 1 << 20));
            guest.pre.instantiate_async(&mut store).await.unwrap();
            outside.push(store);
        }
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let (engine, guest, slots) = (engine.clone(), guest.clone(), runtime.slots.clone());
                tokio::spawn(async move {
                    let held = slots.hold().await.unwrap();
                    let mut store =
                        super::new_store(&engine, super::PodState::bare(super::NO_ARGS, 1 << 20));
                    super::start_guest(&engine, &held, &guest, &mut store, || {}).await
                })
            })
            .collect();
        let ends = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            let mut ends = Vec::new();
            for run in runs {
                ends.push(run.await.unwrap());
            }
            ends
        })
        .await
        .expect("the runs waited for each other");
        for end in ends {
            let e = end.expect_err("no slot was free");
            assert!(e.is::<wasmtime::PoolConcurrencyLimitError>(), "{e:?}");
        }
    }

    /// What counts as the host's shortage, for which a run waits, and what fails the pod.
    #[test]
    fn only_a_full_pool_or_enomem_is_the_hosts_shortage() {
        use wasmtime::Error;
        let nomem = rustix::io::Errno::NOMEM;
        let shortage = [
            Error::new(nomem).context("mmap failed to allocate 0x100000 bytes"),
            Error::new(std::io::Error::from_raw_os_error(nomem.raw_os_error()))
                .context("failed to allocate a fiber stack"),
        ];
        for e in &shortage {
            assert!(super::lacks_host_resources(e), "{e:?}");
        }
        let others = [
            Error::new(rustix::io::Errno::ACCESS),
            Error::new(std::io::Error::from_raw_os_error(
                rustix::io::Errno::INVAL.raw_os_error(),
            )),
            Error::msg("memory minimum size of 100 pages exceeds memory limits"),
        ];
        for e in &others {
            assert!(!super::lacks_host_resources(e), "{e:?}");
        }
    }
}
