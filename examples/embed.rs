//! Embedding wasmjob: an edge host runs a Job on its own tokio runtime and watches it.
//!
//! `cargo run --example embed -- examples/pi-parallel.yaml`

use std::sync::Arc;

use wasmjob::api::manifest::load_paths;
use wasmjob::clock::TokioClock;
use wasmjob::host::{Change, Host, HostConfig};
use wasmjob::runtime::wasm::{WasmOptions, WasmRuntime};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/pi.yaml".into());
    let jobs = load_paths(&[path.into()]).map_err(|errs| {
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(msgs.join("\n"))
    })?;
    let runtime = Arc::new(WasmRuntime::new(WasmOptions::default()).map_err(anyhow::Error::msg)?);
    let mut host = Host::new(runtime, Arc::new(TokioClock::new()), HostConfig::default());
    let prepared = host.prepare(jobs).map_err(|r| anyhow::anyhow!("{r:?}"))?;
    host.submit(prepared);
    host.run(std::future::pending(), |change| {
        if let Change::Job {
            name, condition, ..
        } = change
        {
            println!("{name}: {condition}");
        }
    })
    .await?;
    for job in &host.store().jobs {
        println!(
            "{} succeeded={} failed={}",
            job.name(),
            job.status.succeeded,
            job.status.failed
        );
    }
    for pod in &host.store().pods {
        let log = pod.logs.last().map(|l| l.contents()).unwrap_or_default();
        println!(
            "{}: {} bytes of log",
            pod.pod().metadata.name.as_deref().unwrap_or(""),
            log.len()
        );
    }
    Ok(())
}
