//! `wasmjob delete job NAME`: removes Jobs with their pods, events and logs (or, with
//! `--cascade=orphan`, leaves the pods without an owner), as `kubectl delete` does. While a
//! host runs on the state directory the deletion is handed to it, so that it stops the Job's
//! pods and never writes them again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Outcome;
use super::state::{Resource, StateDir, resource_args};
use crate::api::manifest::load_paths;
use crate::api::types::Job;
use crate::store::db::{HostLock, StateDb, StoreError};
use crate::store::selector::Selector;

/// `wasmjob delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// `job NAME...` or `job/NAME...`.
    #[arg(value_name = "TYPE")]
    args: Vec<String>,
    /// Delete the Jobs these manifests (files or directories) define.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    filenames: Vec<PathBuf>,
    /// Delete the Jobs this label selector matches.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Delete every Job in the namespace.
    #[arg(long)]
    all: bool,
    /// `background` (default) or `foreground` delete the Job's pods too; `orphan` keeps them.
    #[arg(long, default_value = "background", default_missing_value = "background", num_args = 0..=1,
          value_parser = ["background", "foreground", "orphan", "true", "false"])]
    cascade: String,
    /// The namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Treat a Job that does not exist as deleted.
    #[arg(long)]
    ignore_not_found: bool,
}

/// Runs `wasmjob delete`.
pub fn delete(args: DeleteArgs, state: &StateDir) -> Outcome {
    let names = match targets(&args) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Invalid;
        }
    };
    let orphan = matches!(args.cascade.as_str(), "orphan" | "false");
    let dir = match state.path() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
    };
    let db = match state.read() {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
    };
    let mut outcome = Outcome::Success;
    let Some(mut db) = db else {
        for n in &names {
            outcome = report_missing(&args, n, outcome);
        }
        return outcome;
    };
    let names = match select(&db, &args, names) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
    };
    // With no host running, hold the lock so that no run starts while rows go.
    let _lock = match HostLock::holder(&dir) {
        Some(_) => None,
        None => match HostLock::acquire(&dir) {
            Ok(l) => Some(l),
            Err(StoreError::Locked { .. }) => None,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::JobFailed;
            }
        },
    };
    let direct = _lock.is_some();
    for name in names {
        let job: Option<Job> = match db.get("Job", &args.namespace, &name) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::JobFailed;
            }
        };
        let Some(job) = job else {
            outcome = report_missing(&args, &name, outcome);
            continue;
        };
        let result = if direct {
            db.delete_job(job.uid(), orphan)
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            ask_host(&mut db, &dir, &job, orphan)
        };
        match result {
            Ok(()) => println!("job.batch {name:?} deleted"),
            Err(e) => {
                eprintln!("error: {e}");
                outcome = Outcome::JobFailed;
            }
        }
    }
    outcome
}

fn report_missing(args: &DeleteArgs, name: &str, outcome: Outcome) -> Outcome {
    if args.ignore_not_found {
        return outcome;
    }
    eprintln!("Error from server (NotFound): jobs.batch {name:?} not found");
    Outcome::JobFailed
}

/// The Job names given by arguments or manifests (selectors are resolved later).
fn targets(args: &DeleteArgs) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    if !args.filenames.is_empty() {
        let manifests = load_paths(&args.filenames).map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\nerror: ")
        })?;
        names.extend(manifests.into_iter().map(|m| m.job.name().to_string()));
    }
    if !args.args.is_empty() {
        let (res, given) = resource_args(&args.args)?;
        match res {
            Resource::Jobs | Resource::CronJobs => names.extend(given),
            Resource::Pods => {
                return Err(
                    "wasmjob deletes jobs (their pods go with them): `wasmjob delete job NAME`"
                        .into(),
                );
            }
            Resource::Events => return Err("events go with the objects they are about".into()),
        }
    }
    let by_selector = args.selector.is_some() || args.all;
    if names.is_empty() && !by_selector {
        return Err(
            "resource(s) were provided, but no name was specified: use `wasmjob delete job NAME`, -l SELECTOR, --all or -f FILE"
                .into(),
        );
    }
    Ok(names)
}

/// Adds the Jobs that `-l` or `--all` select.
fn select(db: &StateDb, args: &DeleteArgs, mut names: Vec<String>) -> Result<Vec<String>, String> {
    if args.selector.is_none() && !args.all {
        return Ok(names);
    }
    let sel = match &args.selector {
        Some(s) => Selector::parse(s).map_err(|e| e.to_string())?,
        None => Selector::default(),
    };
    let jobs: Vec<Job> = db
        .list("Job", Some(&args.namespace))
        .map_err(|e| e.to_string())?;
    names.extend(
        jobs.iter()
            .filter(|j| sel.matches(&j.metadata.labels))
            .map(|j| j.name().to_string()),
    );
    if names.is_empty() {
        eprintln!("No resources found");
    }
    Ok(names)
}

/// Hands the deletion to the running host and waits until it is done; if the host stops
/// first, deletes directly.
fn ask_host(db: &mut StateDb, dir: &Path, job: &Job, orphan: bool) -> Result<(), String> {
    let option = if orphan { "orphan" } else { "" };
    let ns = job.metadata.namespace.as_deref().unwrap_or("default");
    let name = job.name();
    let id = db
        .request("delete", "Job", ns, name, option)
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.request_pending(id).map_err(|e| e.to_string())? {
        if HostLock::holder(dir).is_none()
            && let Ok(_lock) = HostLock::acquire(dir)
        {
            // The host ended without serving the request: nothing else writes now.
            if db.request_pending(id).map_err(|e| e.to_string())? {
                db.cancel_request(id).map_err(|e| e.to_string())?;
                db.delete_job(job.uid(), orphan)
                    .map_err(|e| e.to_string())?;
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the running wasmjob host did not carry out the deletion of job.batch {name:?} within 30s"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
