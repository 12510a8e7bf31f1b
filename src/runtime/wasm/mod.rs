//! The wasmtime runtime: one Engine per process, modules compiled once and shared through an
//! `InstancePre`, one Store per container run with memory, epoch and output limits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstancePre, Linker, Module, WasmBacktraceDetails};

use super::{PodRuntime, PreparedPod};
use crate::api::field::{ErrorList, FieldError, Path as FieldPath};
use crate::api::types::Job;

mod pod;
mod queue;
mod sink;

use pod::{PodState, PreparedWasm};

/// How often the epoch advances: the time slice of a spinning guest, and the latency of
/// stopping one.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits applied to every pod.
#[derive(Debug, Clone)]
pub struct WasmOptions {
    /// Linear memory cap for containers without `resources.limits.memory`.
    pub default_memory_limit: u64,
}

impl Default for WasmOptions {
    fn default() -> Self {
        WasmOptions {
            default_memory_limit: 512 << 20,
        }
    }
}

/// A compiled module and its pre-linked WASI imports.
struct Compiled {
    pre: InstancePre<PodState>,
    image_id: String,
}

/// Runs pods as WASI preview1 command modules on wasmtime.
pub struct WasmRuntime {
    engine: Engine,
    options: WasmOptions,
    modules: Mutex<HashMap<PathBuf, Arc<Compiled>>>,
}

impl WasmRuntime {
    /// Creates the engine and starts its epoch ticker (a plain thread, so that guests busy on
    /// every tokio worker still get interrupted).
    pub fn new(options: WasmOptions) -> Result<Self, String> {
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .wasm_backtrace_details(WasmBacktraceDetails::Disable);
        let engine = Engine::new(&config).map_err(|e| format!("creating the wasm engine: {e}"))?;
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
        Ok(WasmRuntime {
            engine,
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
        let module = Module::from_binary(&self.engine, &bytes)
            .map_err(|e| format!("not a valid WebAssembly module: {}", e.root_cause()))?;
        if module.get_export("_start").is_none() {
            return Err("not a WASI command module: it exports no _start function".into());
        }
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
        let digest = Sha256::digest(&bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let image_id = format!("sha256:{hex}");
        let compiled = Arc::new(Compiled { pre, image_id });
        self.modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, compiled.clone());
        Ok(compiled)
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
            compiled.pre.clone(),
            compiled.image_id.clone(),
            job,
            base_dir,
            &self.options,
        )?;
        Ok(Arc::new(prepared))
    }
}
