//! The `wasmjob` command line: argument parsing and dispatch. Exit codes are decided here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub mod output;
mod run;

/// How a command ended, mapped onto the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every Job completed (exit 0).
    Success,
    /// A Job failed or did not finish (exit 1).
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Jobs of manifest files or directories until they finish.
    Run(RunArgs),
}

/// `wasmjob run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Manifest files (multi-document YAML or JSON) or directories of them.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output format of the final state.
    #[arg(short, long, value_enum, default_value = "table")]
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
    /// Validate and compile, then stop without starting anything.
    #[arg(long)]
    dry_run: bool,
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
    match cli.command {
        Command::Run(args) => run::run(args).into(),
    }
}
