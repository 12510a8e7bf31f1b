//! The wasmtime runtime: one Engine per process, modules compiled once and shared through an
//! `InstancePre`, one Store per container run with memory, epoch and output limits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, ExternType, InstanceAllocationStrategy, Linker, Module,
    PoolingAllocationConfig, WasmBacktraceDetails,
};

use super::{PodRuntime, PreparedPod};
use crate::api::field::{ErrorList, FieldError, Path as FieldPath};
use crate::api::types::Job;

mod cache;
mod pod;
mod queue;
mod sink;

use pod::{PodState, PreparedWasm};

/// How often the epoch advances: the time slice of a spinning guest, and the latency of
/// stopping one.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instance slots of the pooling allocator by default: enough for 10,000 pods waiting at
/// once. Each slot reserves (but does not commit) address space for one linear memory.
pub const DEFAULT_POOL: u32 = 10_000;

/// Bytes of each pooled memory and table reset in place when a pod ends.
const KEEP_RESIDENT: usize = 1 << 20;

/// Decommits (madvise) gathered before they are made in one go.
const DECOMMIT_BATCH: usize = 32;

/// Memory mappings an instance allocated on demand takes: its memory's reservation and
/// accessible part, its fiber stack and guard page, the store's own (6.75 measured, for
/// 100 sleeping pods).
const MAPPINGS_PER_INSTANCE: usize = 8;
/// Memory mappings left to the rest of the process (the host's, an embedding program's).
const MAPPINGS_SPARE: usize = 4096;

/// How many instances may live at once on demand: as many as the kernel's limit on a
/// process's memory mappings (`vm.max_map_count`, 65,530 by default) leaves room for, so
/// that a wide Job's pods wait their turn as `Pending` rather than reach the limit, where
/// mappings fail with ENOMEM (and wasmtime panics on an munmap the kernel refuses).
fn on_demand_limit() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .map_or(tokio::sync::Semaphore::MAX_PERMITS, |max| {
            (max.saturating_sub(MAPPINGS_SPARE) / MAPPINGS_PER_INSTANCE).max(1)
        })
}

/// Limits applied to every pod.
#[derive(Debug, Clone)]
pub struct WasmOptions {
    /// Linear memory cap for containers without `resources.limits.memory`.
    pub default_memory_limit: u64,
    /// Pods instantiated at once from a pre-reserved pool (the pooling instance allocator:
    /// no mmap/munmap per pod, copy-on-write memory images reset in place); more pods wait
    /// for a slot. 0 allocates each instance on demand, as many at once as the kernel's
    /// limit on memory mappings leaves room for (7,679 with Linux's default).
    pub pool: u32,
    /// Where compiled modules are kept between runs (keyed by module hash and engine
    /// settings), so that a module is compiled once; `None` compiles in every process.
    pub cache_dir: Option<PathBuf>,
}

impl Default for WasmOptions {
    fn default() -> Self {
        WasmOptions {
            default_memory_limit: 512 << 20,
            pool: DEFAULT_POOL,
            cache_dir: None,
        }
    }
}

/// A compiled module and its pre-linked WASI imports.
struct Compiled {
    guest: pod::Guest,
    image_id: Arc<str>,
}

/// Runs pods as WASI preview1 command modules on wasmtime.
pub struct WasmRuntime {
    engine: Engine,
    slots: pod::Slots,
    options: WasmOptions,
    modules: Mutex<HashMap<PathBuf, Arc<Compiled>>>,
    cache: Option<cache::ModuleCache>,
}

impl WasmRuntime {
    /// Creates the engine and starts its epoch ticker (a plain thread, so that guests busy on
    /// every tokio worker still get interrupted).
    pub fn new(options: WasmOptions) -> Result<Self, String> {
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .wasm_backtrace_details(WasmBacktraceDetails::Disable);
        // Instances on demand are capped by the memory mappings they take.
        let mut permits = on_demand_limit();
        let engine = if options.pool > 0 {
            let mut pool = PoolingAllocationConfig::default();
            let n = options.pool;
            pool.total_core_instances(n)
                .total_memories(n)
                .total_tables(n)
                .total_stacks(n)
                // A finished pod's small memory and tables are reset with memset (only the
                // resident pages, found with PAGEMAP_SCAN where the kernel has it) rather
                // than madvise, whose TLB flush interrupts every other core.
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(KEEP_RESIDENT)
                .pagemap_scan(wasmtime::Enabled::Auto)
                // What is still decommitted is batched.
                .decommit_batch_size(DECOMMIT_BATCH);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
            match Engine::new(&config) {
                Ok(engine) => {
                    permits = n as usize;
                    engine
                }
                Err(e) => {
                    // E.g. a `ulimit -v` too small for the reservation: run on demand.
                    tracing::warn!("no instance pool of {n} slots ({e}); allocating on demand");
                    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                    Engine::new(&config).map_err(|e| format!("creating the wasm engine: {e}"))?
                }
            }
        } else {
            Engine::new(&config).map_err(|e| format!("creating the wasm engine: {e}"))?
        };
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasmjob-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| format!("starting the epoch thread: {e}"))?;
        let cache = options
            .cache_dir
            .clone()
            .map(|dir| cache::ModuleCache::new(dir, &engine));
        Ok(WasmRuntime {
            cache,
            engine,
            slots: pod::Slots::new(permits),
            options,
            modules: Mutex::default(),
        })
    }

    /// Reads, compiles and links a module once per path.
    fn compile(&self, path: &Path) -> Result<Arc<Compiled>, String> {
        let key = path
            .canonicalize()
            .map_err(|e| format!("cannot read module: {e}"))?;
        if let Some(c) = self
            .modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let bytes = std::fs::read(&key).map_err(|e| format!("cannot read module: {e}"))?;
        let digest = Sha256::digest(&bytes);
        let module = match &self.cache {
            Some(cache) => cache
                .module(&self.engine, &bytes, &digest)
                .map(|(module, source)| {
                    tracing::debug!(module = %key.display(), ?source, "module ready");
                    module
                }),
            None => Module::from_binary(&self.engine, &bytes),
        }
        .map_err(|e| format!("not a valid WebAssembly module: {}", e.root_cause()))?;
        let start = match (
            module.get_export("_start"),
            module.get_export_index("_start"),
        ) {
            (Some(ExternType::Func(f)), Some(start))
                if f.params().len() == 0 && f.results().len() == 0 =>
            {
                start
            }
            (Some(ExternType::Func(_)), _) => {
                return Err("not a WASI command module: its _start takes or returns values".into());
            }
            _ => return Err("not a WASI command module: it exports no _start function".into()),
        };
        let mut linker: Linker<PodState> = Linker::new(&self.engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut PodState| &mut s.wasi)
            .map_err(|e| format!("linking WASI: {e}"))?;
        // wasmtime-wasi turns exit codes of 126 and above into an anonymous error; a pod's
        // exit code must reach its status as the module gave it, as a process's would.
        linker.allow_shadowing(true);
        linker
            .func_wrap(
                "wasi_snapshot_preview1",
                "proc_exit",
                |_: wasmtime::Caller<'_, PodState>, status: i32| -> wasmtime::Result<()> {
                    Err(wasmtime::Error::new(wasmtime_wasi::I32Exit(status)))
                },
            )
            .map_err(|e| format!("linking WASI: {e}"))?;
        queue::add_to_linker(&mut linker).map_err(|e| format!("linking queues: {e}"))?;
        let pre = linker.instantiate_pre(&module).map_err(|e| {
            format!(
                "the module needs imports wasmjob does not provide (WASI preview1 and wasmjob_queue): {}",
                e.root_cause()
            )
        })?;
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let image_id = format!("sha256:{hex}");
        let compiled = Arc::new(Compiled {
            guest: pod::Guest { pre, start },
            image_id: image_id.into(),
        });
        self.modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, compiled.clone());
        Ok(compiled)
    }
}

impl WasmRuntime {
    /// The limit a controller can approach: the module at `path` instantiated and run `n`
    /// times with `argv` from its `InstancePre`, `concurrency` at a time, each in a fresh store with the
    /// same limits as a pod but no controller, no pod objects and no logs. Returns the wall
    /// time and the number of runs that did not exit 0.
    pub async fn raw_loop(
        &self,
        path: &Path,
        argv: &[String],
        n: usize,
        concurrency: usize,
    ) -> Result<(Duration, usize), String> {
        let compiled = self.compile(path)?;
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let limit = usize::try_from(self.options.default_memory_limit).unwrap_or(usize::MAX);
        let t0 = std::time::Instant::now();
        let workers: Vec<_> = (0..concurrency.clamp(1, n.max(1)))
            .map(|_| {
                let (engine, guest) = (self.engine.clone(), compiled.guest.clone());
                let slots = self.slots.clone();
                let (next, failures) = (next.clone(), failures.clone());
                let argv = argv.to_vec();
                tokio::spawn(async move {
                    use std::sync::atomic::Ordering::Relaxed;
                    while next.fetch_add(1, Relaxed) < n {
                        if !pod::raw_run(&engine, &slots, &guest, &argv, limit).await {
                            failures.fetch_add(1, Relaxed);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.map_err(|e| format!("raw loop worker: {e}"))?;
        }
        let failed = failures.load(std::sync::atomic::Ordering::Relaxed);
        Ok((t0.elapsed(), failed))
    }
}

impl PodRuntime for WasmRuntime {
    fn prepare(&self, job: &Job, base_dir: &Path) -> Result<Arc<dyn PreparedPod>, ErrorList> {
        let spec = &job.spec.template.spec;
        let cpath = FieldPath::new("spec")
            .child("template")
            .child("spec")
            .child("containers")
            .index(0);
        let Some(container) = spec.containers.first() else {
            return Err(vec![FieldError::required(&cpath, "")]);
        };
        let image = base_dir.join(&container.image);
        let compiled = self.compile(&image).map_err(|e| {
            vec![FieldError::invalid(
                &cpath.child("image"),
                container.image.as_str(),
                e,
            )]
        })?;
        let prepared = PreparedWasm::new(
            self.engine.clone(),
            self.slots.clone(),
            compiled.guest.clone(),
            compiled.image_id.clone(),
            job,
            base_dir,
            &self.options,
        )?;
        Ok(Arc::new(prepared))
    }
}
