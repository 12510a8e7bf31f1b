//! `wasmjob patch job NAME -p '{"spec":{"suspend":true}}'`: suspends or resumes a Job, as
//! the docs do it with `kubectl patch`. Only `spec.suspend` may change. While a host runs the
//! Job, the host applies it (a suspended Job's pods stop, not counted as failures); otherwise
//! the recorded Job changes and `wasmjob resume` continues it.

use super::Outcome;
use super::delete::wait_for_host;
use super::state::{Resource, StateDir, resource_args};
use crate::api::types::Job;
use crate::store::db::{Batch, HostLock};

/// `wasmjob patch`.
#[derive(Debug, clap::Args)]
pub struct PatchArgs {
    /// `job NAME` or `job/NAME`.
    #[arg(required = true, value_name = "TYPE")]
    args: Vec<String>,
    /// The patch, JSON or YAML: `{"spec":{"suspend":true}}` (or `false`).
    #[arg(short, long)]
    patch: String,
    /// kubectl's patch type (`strategic`, `merge`): both mean the same here.
    #[arg(long = "type", default_value = "strategic", value_parser = ["strategic", "merge", "json"])]
    patch_type: String,
    /// The namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
}

/// The suspend value a patch sets, or why it cannot be applied.
fn suspend_of(patch: &str) -> Result<bool, String> {
    let value: serde_json::Value =
        serde_yaml_ng::from_str(patch).map_err(|e| format!("unable to parse the patch: {e}"))?;
    let suspend = value
        .pointer("/spec/suspend")
        .and_then(serde_json::Value::as_bool)
        .ok_or("wasmjob patches spec.suspend only: use {\"spec\":{\"suspend\":true}}")?;
    let only = value.as_object().is_some_and(|o| o.len() == 1)
        && value["spec"].as_object().is_some_and(|o| o.len() == 1);
    if !only {
        return Err("wasmjob patches spec.suspend only: other fields cannot change".into());
    }
    Ok(suspend)
}

/// Runs `wasmjob patch`.
pub fn patch(args: PatchArgs, state: &StateDir) -> Outcome {
    let names = match resource_args(&args.args) {
        Ok((Resource::Jobs, names)) if !names.is_empty() => names,
        Ok(_) => {
            eprintln!("error: wasmjob patches jobs: `wasmjob patch job NAME -p PATCH`");
            return Outcome::Invalid;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Invalid;
        }
    };
    if args.patch_type == "json" {
        eprintln!("error: use --type=strategic or merge with {{\"spec\":{{\"suspend\":true}}}}");
        return Outcome::Invalid;
    }
    let suspend = match suspend_of(&args.patch) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Invalid;
        }
    };
    let (dir, mut db) = match (state.path(), state.read()) {
        (Ok(dir), Ok(Some(db))) => (dir, db),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
        (_, Ok(None)) => {
            for n in &names {
                eprintln!("Error from server (NotFound): jobs.batch {n:?} not found");
            }
            return Outcome::JobFailed;
        }
    };
    let mut outcome = Outcome::Success;
    for name in &names {
        let job: Option<Job> = match db.get("Job", &args.namespace, name) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::JobFailed;
            }
        };
        let Some(mut job) = job else {
            eprintln!("Error from server (NotFound): jobs.batch {name:?} not found");
            outcome = Outcome::JobFailed;
            continue;
        };
        let result = if HostLock::holder(&dir).is_none()
            && let Ok(_lock) = HostLock::acquire(&dir)
        {
            job.spec.suspend = Some(suspend);
            let batch = Batch {
                jobs: vec![&job],
                ..Batch::default()
            };
            db.commit(&batch).map_err(|e| e.to_string())
        } else {
            let option = format!("suspend={suspend}");
            db.request("patch", "Job", &args.namespace, name, job.uid(), &option)
                .map_err(|e| e.to_string())
                .and_then(|id| {
                    wait_for_host(&mut db, &dir, id, |db| {
                        job.spec.suspend = Some(suspend);
                        let batch = Batch {
                            jobs: vec![&job],
                            ..Batch::default()
                        };
                        db.commit(&batch).map_err(|e| e.to_string())
                    })
                })
        };
        match result {
            Ok(()) => println!("job.batch/{name} patched"),
            Err(e) => {
                eprintln!("error: {e}");
                outcome = Outcome::JobFailed;
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::suspend_of;

    #[test]
    fn only_spec_suspend_may_change() {
        assert_eq!(suspend_of(r#"{"spec":{"suspend":true}}"#), Ok(true));
        assert_eq!(suspend_of("spec: {suspend: false}"), Ok(false));
        assert!(suspend_of(r#"{"spec":{"parallelism":3}}"#).is_err());
        assert!(suspend_of(r#"{"spec":{"suspend":true,"parallelism":3}}"#).is_err());
        assert!(suspend_of("{").is_err());
    }
}
