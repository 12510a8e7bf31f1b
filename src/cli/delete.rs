//! `wasmjob delete job NAME`: removes Jobs with their pods, events and logs (or, with
//! `--cascade=orphan`, leaves the pods without an owner), as `kubectl delete` does. While a
//! host runs on the state directory the deletion is handed to it, so that it stops the Job's
//! pods and never writes them again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Outcome;
use super::state::{Resource, StateDir, resource_args};
use crate::api::manifest::load_paths;
use crate::api::types::{Job, Pod};
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
    if let Ok((Resource::Pods, given)) = resource_args(&args.args) {
        return delete_pods(&args, &given, state);
    }
    if let Ok((Resource::CronJobs, given)) = resource_args(&args.args) {
        return delete_cronjobs(&args, &given, state);
    }
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
            db.delete_job(job.uid(), orphan, None)
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
            Resource::Jobs => names.extend(given),
            Resource::CronJobs => return Err("no cronjobs are recorded".into()),
            Resource::Pods => return Err("pods are deleted by delete_pods".into()),
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
        .request("delete", "Job", ns, name, job.uid(), option)
        .map_err(|e| e.to_string())?;
    let uid = job.uid().to_string();
    wait_for_host(db, dir, id, |db| {
        db.delete_job(&uid, orphan, None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .map_err(|e| format!("deleting job.batch {name:?}: {e}"))
}

/// Waits until the running host has carried out request `id`. If the host stops first, the
/// request is withdrawn and `direct` does the work under the directory's lock.
pub(super) fn wait_for_host(
    db: &mut StateDb,
    dir: &Path,
    id: i64,
    direct: impl FnOnce(&mut StateDb) -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.request_pending(id).map_err(|e| e.to_string())? {
        if HostLock::holder(dir).is_none()
            && let Ok(_lock) = HostLock::acquire(dir)
        {
            // The host ended without serving the request: nothing else writes now.
            if db.request_pending(id).map_err(|e| e.to_string())? {
                db.cancel_request(id).map_err(|e| e.to_string())?;
                direct(db)?;
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            // Withdrawn, so that it cannot act later.
            let _ = db.cancel_request(id);
            return Err("the running wasmjob host did not answer within 30s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `wasmjob delete pod NAME...`: pods that no unfinished Job owns (orphans, or pods of
/// finished Jobs) are removed; a running Job's running pods are stopped and replaced.
fn delete_pods(args: &DeleteArgs, names: &[String], state: &StateDir) -> Outcome {
    let (dir, db) = match (state.path(), state.read()) {
        (Ok(dir), Ok(Some(db))) => (dir, db),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
        (_, Ok(None)) => {
            for n in names {
                eprintln!("Error from server (NotFound): pods {n:?} not found");
            }
            return Outcome::JobFailed;
        }
    };
    let mut db = db;
    let mut outcome = Outcome::Success;
    for name in names {
        let result = delete_pod(&mut db, &dir, &args.namespace, name);
        match result {
            Ok(true) => println!("pod {name:?} deleted"),
            Ok(false) if args.ignore_not_found => {}
            Ok(false) => {
                eprintln!("Error from server (NotFound): pods {name:?} not found");
                outcome = Outcome::JobFailed;
            }
            Err(e) => {
                eprintln!("error: {e}");
                outcome = Outcome::JobFailed;
            }
        }
    }
    outcome
}

fn delete_pod(db: &mut StateDb, dir: &Path, ns: &str, name: &str) -> Result<bool, String> {
    let err = |e: StoreError| e.to_string();
    let Some(pod) = db
        .get::<crate::api::types::Pod>("Pod", ns, name)
        .map_err(err)?
    else {
        return Ok(false);
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if let Some(owner) = pod.metadata.owner_references.iter().find(|o| o.controller) {
        let job: Option<Job> = db.get("Job", ns, &owner.name).map_err(err)?;
        if job.is_some_and(|j| j.uid() == owner.uid && j.status.finished().is_none()) {
            return stop_pod(db, dir, &pod, &owner.name);
        }
    }
    if HostLock::holder(dir).is_none()
        && let Ok(_lock) = HostLock::acquire(dir)
    {
        db.delete_pod(&uid, None).map_err(err)?;
        return Ok(true);
    }
    let id = db
        .request("delete", "Pod", ns, name, &uid, "")
        .map_err(err)?;
    wait_for_host(db, dir, id, |db| db.delete_pod(&uid, None).map_err(err))?;
    Ok(true)
}

/// A pod of a Job that has not finished: a running one is interrupted by the host that runs
/// it, and replaced as the Job's `podReplacementPolicy` says; finished ones stay, because
/// the Job counts them.
fn stop_pod(db: &mut StateDb, dir: &Path, pod: &Pod, job: &str) -> Result<bool, String> {
    let err = |e: StoreError| e.to_string();
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    if crate::host::pods::is_finished(pod) {
        return Err(format!(
            "pod {name:?} has finished and job.batch/{job} has not: the Job counts its \
             finished pods, which go with it; delete the Job"
        ));
    }
    if HostLock::holder(dir).is_none() {
        return Err(format!(
            "pod {name:?} belongs to job.batch/{job}, which no wasmjob host is running now: \
             `wasmjob resume` it, or delete the Job"
        ));
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let id = db
        .request("delete", "Pod", ns, name, &uid, "stop")
        .map_err(err)?;
    // A host that ends without serving the request leaves the pod to be marked lost.
    wait_for_host(db, dir, id, |_| Ok(()))?;
    Ok(true)
}

/// `wasmjob delete cronjob NAME...`: the CronJob with its Jobs, their pods and logs.
fn delete_cronjobs(args: &DeleteArgs, names: &[String], state: &StateDir) -> Outcome {
    let (dir, mut db) = match (state.path(), state.read()) {
        (Ok(dir), Ok(Some(db))) => (dir, db),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
        (_, Ok(None)) => {
            for n in names {
                eprintln!("Error from server (NotFound): cronjobs.batch {n:?} not found");
            }
            return Outcome::JobFailed;
        }
    };
    let mut outcome = Outcome::Success;
    for name in names {
        let cj: Option<crate::api::cronjob::CronJob> =
            match db.get("CronJob", &args.namespace, name) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Outcome::JobFailed;
                }
            };
        let Some(cj) = cj else {
            if !args.ignore_not_found {
                eprintln!("Error from server (NotFound): cronjobs.batch {name:?} not found");
                outcome = Outcome::JobFailed;
            }
            continue;
        };
        let uid = cj.uid().to_string();
        let result = if HostLock::holder(&dir).is_none()
            && let Ok(_lock) = HostLock::acquire(&dir)
        {
            db.delete_cronjob(&uid, None)
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            db.request("delete", "CronJob", &args.namespace, name, &uid, "")
                .map_err(|e| e.to_string())
                .and_then(|id| {
                    wait_for_host(&mut db, &dir, id, |db| {
                        db.delete_cronjob(&uid, None)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    })
                })
        };
        match result {
            Ok(()) => println!("cronjob.batch {name:?} deleted"),
            Err(e) => {
                eprintln!("error: {e}");
                outcome = Outcome::JobFailed;
            }
        }
    }
    outcome
}
