//! `wasmjob bench`: the Job controller's throughput beside the raw wasmtime loop, in one run.

use std::path::PathBuf;
use std::sync::Arc;

use super::Outcome;
use crate::bench::{BenchConfig, Row};
use crate::runtime::wasm::{WasmOptions, WasmRuntime};

/// `wasmjob bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The module to run (a WASI command); a built-in module whose `_start` returns at once
    /// when unset.
    #[arg(long)]
    module: Option<PathBuf>,
    /// Pods of each Job, and runs of each raw loop.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    completions: usize,
    /// Parallelisms to measure, comma-separated; `cores` is the number of CPU cores.
    #[arg(short, long, default_value = "1,cores,1000", value_delimiter = ',')]
    parallelism: Vec<String>,
    /// Rounds per parallelism, raw loop and Job taking turns; each figure is the best round,
    /// which a busy machine disturbs least.
    #[arg(short, long, default_value_t = 3)]
    repeat: usize,
    /// Also measure the Job with the state database (one SQLite commit per loop turn).
    #[arg(long)]
    with_state: bool,
    /// Instance slots of the pooling allocator (0: allocate on demand), as `run --pool`.
    #[arg(long, default_value_t = crate::runtime::wasm::DEFAULT_POOL)]
    pool: u32,
    /// Arguments for the module, after `--`.
    #[arg(last = true)]
    args: Vec<String>,
}

/// Runs the benchmark and prints one row per parallelism.
pub fn bench(args: BenchArgs) -> Outcome {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut parallelism = Vec::new();
    for p in &args.parallelism {
        match p.as_str() {
            "cores" => parallelism.push(cores),
            n => match n.parse::<usize>() {
                Ok(n) if n > 0 => parallelism.push(n),
                _ => {
                    eprintln!("error: --parallelism: {n:?} is not a positive number or \"cores\"");
                    return Outcome::Invalid;
                }
            },
        }
    }
    let config = BenchConfig {
        module: args.module.clone(),
        args: args.args.clone(),
        completions: args.completions,
        parallelism,
        with_state: args.with_state,
        repeat: args.repeat.max(1),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return Outcome::JobFailed;
        }
    };
    let pool = args.pool;
    let rows = rt.block_on(async {
        let runtime = Arc::new(WasmRuntime::new(WasmOptions {
            pool,
            ..WasmOptions::default()
        })?);
        crate::bench::run(runtime, &config).await
    });
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
    };
    let module = config
        .module
        .as_ref()
        .map_or("built-in trivial module".to_string(), |m| {
            m.display().to_string()
        });
    println!(
        "{module}, {} pods per run, {cores} cores, best of {} rounds",
        config.completions, config.repeat
    );
    let mut out = String::from(
        "PARALLELISM\tRAW PODS/S\tJOB PODS/S\tJOB/RAW\tBY CPU\tSTATE PODS/S\tSTATE/RAW\tSTART P50\tSTART P99\n",
    );
    let n = config.completions;
    for r in &rows {
        let raw = Row::rate(n, r.raw);
        let job = Row::rate(n, r.job);
        let (state, state_ratio) = r.job_state.map_or(("-".into(), "-".into()), |d| {
            let s = Row::rate(n, d);
            (format!("{s:.0}"), format!("{:.2}", s / raw))
        });
        out.push_str(&format!(
            "{}\t{raw:.0}\t{job:.0}\t{:.2}\t{:.2}\t{state}\t{state_ratio}\t{:?}\t{:?}\n",
            r.parallelism,
            job / raw,
            // Raw CPU per pod over the Job's: the cost ratio, whatever the neighbours do.
            r.cpu.0.as_secs_f64() / r.cpu.1.as_secs_f64().max(1e-9),
            r.start.0,
            r.start.1,
        ));
    }
    print!("{}", super::tabwriter::align(&out));
    let failed: usize = rows.iter().map(|r| r.failed).sum();
    if failed > 0 {
        eprintln!("error: {failed} runs or pods did not exit 0");
        if let Some(first) = rows.iter().find_map(|r| r.failure.as_ref()) {
            eprintln!("first failed pod: {first}");
        }
        return Outcome::JobFailed;
    }
    Outcome::Success
}
