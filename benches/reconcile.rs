//! The pure Job controller step on a Job with 10,000 active pods (NonIndexed and Indexed):
//! it must stay cheap enough to run after every batch of pod updates.
//!
//! `cargo bench --bench reconcile`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use wasmjob::api::defaults::default_job;
use wasmjob::api::types::Job;
use wasmjob::controller::backoff::BackoffPolicy;
use wasmjob::controller::job::{ActivePod, Observed, reconcile};
use wasmjob::controller::tally::Tally;

const ACTIVE: usize = 10_000;

fn job(indexed: bool) -> Job {
    let mode = if indexed { "Indexed" } else { "NonIndexed" };
    let yaml = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: big\nspec:\n  completions: 100000\n  \
         parallelism: 10000\n  completionMode: {mode}\n  template:\n    spec:\n      \
         restartPolicy: Never\n      containers:\n      - name: c\n        image: x.wasm\n"
    );
    let mut job: Job = serde_yaml_ng::from_str(&yaml).expect("bench manifest");
    default_job(&mut job);
    job
}

fn bench(c: &mut Criterion) {
    let now = jiff::Timestamp::now();
    for indexed in [false, true] {
        let job = job(indexed);
        let mut tally = Tally::new(&job.spec);
        // Half the completions done; one pod fewer than parallelism active, so the step
        // creates one.
        tally.succeeded = 50_000;
        if let Some(done) = tally.succeeded_indexes.as_mut() {
            for i in 0..50_000 {
                done.insert(i);
            }
        }
        let active: Vec<ActivePod> = (0..ACTIVE - 1)
            .map(|i| ActivePod {
                id: i,
                restart_count: 0,
                ready: true,
                terminating: false,
                index: indexed.then_some(50_000 + i as i32),
            })
            .collect();
        let obs = Observed::new(&active, &tally);
        let name = if indexed { "indexed" } else { "non_indexed" };
        c.bench_function(&format!("reconcile_{name}_10000_active"), |b| {
            b.iter(|| {
                reconcile(
                    black_box(&job),
                    black_box(&obs),
                    now,
                    &BackoffPolicy::default(),
                )
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
