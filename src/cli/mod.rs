//! The `wasmjob` command line: argument parsing and dispatch. Exit codes are decided here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod bench;
mod delete;
mod describe;
mod get;
pub mod jsonpath;
mod logs;
pub mod output;
mod patch;
mod queue;
mod run;
mod schedule;
mod state;
pub mod tabwriter;

/// How a command ended, mapped onto the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every Job completed, or the view was shown (exit 0).
    Success,
    /// A Job failed or did not finish, or what was asked for does not exist (exit 1).
    JobFailed,
    /// Invalid input; nothing was started (exit 2).
    Invalid,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        ExitCode::from(match o {
            Outcome::Success => 0,
            Outcome::JobFailed => 1,
            Outcome::Invalid => 2,
        })
    }
}

/// Runs Kubernetes batch/v1 Jobs whose pods are sandboxed WebAssembly (WASI) modules.
#[derive(Debug, Parser)]
#[command(name = "wasmjob", version, about)]
pub struct Cli {
    /// Where Jobs, pods, events and logs are kept [default: $XDG_STATE_HOME/wasmjob, or
    /// ~/.local/state/wasmjob].
    #[arg(long, global = true, env = "WASMJOB_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Jobs of manifest files or directories until they finish.
    Run(RunArgs),
    /// Continue the unfinished Jobs of a host that stopped (crash, kill, power cut).
    Resume(ResumeArgs),
    /// List jobs, pods or events, as `kubectl get` does.
    Get(get::GetArgs),
    /// Show a job or pod in detail with its events, as `kubectl describe` does.
    Describe(describe::DescribeArgs),
    /// Print a pod's log, as `kubectl logs` does.
    Logs(logs::LogsArgs),
    /// Delete jobs with their pods and logs, as `kubectl delete` does.
    Delete(delete::DeleteArgs),
    /// Suspend or resume a Job: `patch job NAME -p '{"spec":{"suspend":true}}'`.
    Patch(patch::PatchArgs),
    /// Fill and inspect the embedded work queues (push, ls, peek, len, purge).
    Queue(queue::QueueArgs),
    /// Print the next fire times of a CronJob schedule, or why Kubernetes would reject it.
    Schedule(schedule::ScheduleArgs),
    /// Measure Job throughput beside the raw wasmtime loop (pods/s, ratio, start latency).
    Bench(bench::BenchArgs),
}

/// Options shared by `run` and `resume`: how the run is shown and paced.
#[derive(Debug, clap::Args)]
pub struct RunOptions {
    /// Output format of the final state: table, wide, json, yaml, name or jsonpath=TEMPLATE.
    #[arg(short, long, value_parser = output::parse_format, default_value = "table")]
    output: output::Format,
    /// Stream pod logs, prefixed `[pod/NAME/CONTAINER]` (to stderr with -o json|yaml|name).
    #[arg(long, conflicts_with = "no_logs")]
    logs: bool,
    /// Do not stream pod logs (the default with -o json|yaml|name).
    #[arg(long)]
    no_logs: bool,
    /// No live view of pod changes on stderr.
    #[arg(short, long)]
    quiet: bool,
    /// Back-off after the first pod failure; doubles per consecutive failure.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    backoff_base: Duration,
    /// Longest back-off between failed-pod re-creations (and in-place restarts).
    #[arg(long, value_parser = parse_duration, default_value = "6m", value_name = "DURATION")]
    backoff_max: Duration,
    /// Cap on each container run's log; output past it is dropped.
    #[arg(long, value_parser = parse_bytes, default_value = "10Mi", value_name = "BYTES")]
    log_limit: u64,
    /// Linear memory cap for containers without resources.limits.memory.
    #[arg(long, value_parser = parse_bytes, default_value = "512Mi", value_name = "BYTES")]
    memory_limit: u64,
    /// Instance slots of the pooling allocator: pods running (or sleeping) at once; more
    /// wait Pending for a slot. 0 allocates each pod's instance on demand, as many at once as
    /// the kernel's limit on memory mappings allows. [default: the Jobs' parallelism, at
    /// least 256 and at most 10000]
    #[arg(long, value_name = "SLOTS")]
    pool: Option<u32>,
    /// Where compiled modules are kept, so that the next run of a module skips compiling it
    /// [default: $XDG_CACHE_HOME/wasmjob, else ~/.cache/wasmjob].
    #[arg(long, env = "WASMJOB_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every module afresh and keep nothing on disk.
    #[arg(long)]
    no_cache: bool,
    /// Each CronJob creates at most N Jobs, then the run ends once they finish.
    #[arg(long, value_name = "N")]
    schedules: Option<u32>,
    /// Stop after this long (running pods are terminated), e.g. `3m`: CronJobs otherwise
    /// keep scheduling until Ctrl-C.
    #[arg(long = "for", value_parser = parse_duration, value_name = "DURATION")]
    run_for: Option<Duration>,
}

/// `wasmjob run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Manifest files (multi-document YAML or JSON) or directories of them.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    options: RunOptions,
    /// Validate and compile, then stop without starting anything.
    #[arg(long)]
    dry_run: bool,
    /// Keep no state: nothing is recorded, nothing can be resumed or looked at afterwards.
    #[arg(long)]
    ephemeral: bool,
    /// Delete recorded Jobs of the same names (with their pods and logs) and run anew;
    /// queue seeds are pushed again.
    #[arg(long, conflicts_with = "ephemeral")]
    replace: bool,
    /// Expand `$NAME` in each manifest once per value, one Job per value (the docs' job
    /// template), e.g. `--expand ITEM=apple,banana,cherry`.
    #[arg(long, value_parser = parse_expansion, value_name = "NAME=V1,V2,...")]
    expand: Option<crate::api::manifest::Expansion>,
}

/// `wasmjob resume`.
#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    options: RunOptions,
}

fn parse_expansion(s: &str) -> Result<crate::api::manifest::Expansion, String> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: use NAME=V1,V2,... (e.g. ITEM=apple,banana)"))?;
    let ok_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok_name {
        return Err(format!(
            "{name:?} is not a variable name (letters, digits, _)"
        ));
    }
    let values: Vec<String> = values
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    if values.is_empty() {
        return Err(format!("{s:?}: no values to expand ${name} with"));
    }
    Ok(crate::api::manifest::Expansion {
        name: name.to_string(),
        values,
    })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 10ms, 30s, 6m)"))
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    crate::api::quantity::parse_bytes(s)
        .ok_or_else(|| format!("{s:?} is not a quantity (use e.g. 64Mi, 1Gi)"))
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Diagnostics for developers: WASMJOB_LOG=debug (tracing's filter syntax), on stderr.
    if std::env::var_os("WASMJOB_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("WASMJOB_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    let state = state::StateDir::new(cli.state_dir);
    match cli.command {
        Command::Run(args) => run::run(args, &state),
        Command::Resume(args) => run::resume(args, &state),
        Command::Get(args) => get::get(args, &state),
        Command::Describe(args) => describe::describe(args, &state),
        Command::Logs(args) => logs::logs(args, &state),
        Command::Delete(args) => delete::delete(args, &state),
        Command::Patch(args) => patch::patch(args, &state),
        Command::Queue(args) => queue::queue(args, &state),
        Command::Schedule(args) => schedule::schedule(args),
        Command::Bench(args) => bench::bench(args),
    }
    .into()
}
