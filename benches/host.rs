//! The host loop alone: a Job of 10,000 completions whose pods are scripted (the fake
//! runtime: no Wasm, each pod ends at once), so the time per pod is the controller's and
//! the host's own cost — what a Job adds to the raw wasmtime loop.
//!
//! `cargo bench --bench host`

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use wasmjob::api::manifest::parse_documents;
use wasmjob::clock::TokioClock;
use wasmjob::host::{Host, HostConfig};
use wasmjob::runtime::fake::FakeRuntime;

const COMPLETIONS: usize = 10_000;

fn host(parallelism: usize) -> Host {
    let yaml = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: bench\nspec:\n  completions: \
         {COMPLETIONS}\n  parallelism: {parallelism}\n  template:\n    spec:\n      \
         restartPolicy: Never\n      containers:\n      - name: c\n        image: fake.wasm\n"
    );
    let (jobs, errors) = parse_documents(&yaml, "bench.yaml", std::path::Path::new("."));
    assert!(errors.is_empty(), "{errors:?}");
    let mut host = Host::new(
        Arc::new(FakeRuntime),
        Arc::new(TokioClock::new()),
        HostConfig::default(),
    );
    let subs = host
        .prepare(jobs)
        .expect("the fake runtime prepares any Job");
    host.submit(subs);
    host
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("host_fake_pods");
    group.throughput(Throughput::Elements(COMPLETIONS as u64));
    group.sample_size(20);
    // One thread (the host's own cost per pod) and two (as on this machine: the host and
    // its pods hand over between threads).
    for (threads, p) in [(1, 2), (2, 1), (2, 2), (2, 1000)] {
        let rt = match threads {
            1 => tokio::runtime::Builder::new_current_thread(),
            n => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(n);
                b
            }
        }
        .enable_time()
        .build()
        .expect("runtime");
        let name = format!("threads_{threads}_completions_{COMPLETIONS}_parallelism_{p}");
        group.bench_function(name, |b| {
            b.iter_batched(
                || host(p),
                |h| {
                    let (h, result) = rt
                        .block_on(async { h.spawn(std::future::pending(), |_| {}).await })
                        .expect("host task");
                    result.expect("in-memory host");
                    assert_eq!(h.store().pods.len(), COMPLETIONS);
                    // Dropped outside the timing.
                    h
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
