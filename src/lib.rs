//! wasmjob runs Kubernetes batch/v1 Jobs whose pods are sandboxed WebAssembly (WASI) modules.
//!
//! The pieces, from the outside in: [`api`] reads and validates manifests; [`controller`]
//! decides (pure functions of object, pods and time); [`host`] applies those decisions with a
//! [`runtime::PodRuntime`]; [`runtime::wasm`] runs pods on wasmtime.

pub mod api;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod controller;
pub mod host;
pub mod kubelet;
pub mod logs;
pub mod queue;
pub mod runtime;
pub mod schedule;
pub mod store;
