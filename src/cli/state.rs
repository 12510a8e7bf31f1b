//! Finding and opening the state directory, and the resource names the views accept.

use std::path::PathBuf;

use crate::store::db::{HostLock, StateDb};

/// The state directory chosen by `--state-dir`, `WASMJOB_STATE_DIR` or the XDG default.
pub struct StateDir {
    explicit: Option<PathBuf>,
}

impl StateDir {
    /// From the command line (clap has already read `WASMJOB_STATE_DIR` into it).
    pub fn new(explicit: Option<PathBuf>) -> Self {
        StateDir { explicit }
    }

    /// The directory: `--state-dir`, else `$XDG_STATE_HOME/wasmjob`, else
    /// `~/.local/state/wasmjob`.
    pub fn path(&self) -> Result<PathBuf, String> {
        if let Some(p) = &self.explicit {
            return Ok(p.clone());
        }
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(x) = non_empty("XDG_STATE_HOME") {
            return Ok(PathBuf::from(x).join("wasmjob"));
        }
        if let Some(home) = non_empty("HOME") {
            return Ok(PathBuf::from(home).join(".local/state/wasmjob"));
        }
        Err("no state directory: set --state-dir or WASMJOB_STATE_DIR (or HOME)".into())
    }

    /// Opens the database for a view; `None` when nothing was ever recorded there. Where no
    /// host runs, Jobs past their `ttlSecondsAfterFinished` are collected first, so views
    /// never show what the TTL controller would have deleted.
    pub fn read(&self) -> Result<Option<StateDb>, String> {
        let dir = self.path()?;
        let mut db = StateDb::open_existing(&dir).map_err(|e| e.to_string())?;
        if let Some(db) = db.as_mut()
            && HostLock::holder(&dir).is_none()
            && let Ok(_lock) = HostLock::acquire(&dir)
        {
            db.collect_expired(jiff::Timestamp::now())
                .map_err(|e| e.to_string())?;
        }
        Ok(db)
    }
}

/// The kinds the views know, by any of kubectl's names for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `jobs`, `job`, `jobs.batch`, `job.batch`.
    Jobs,
    /// `pods`, `pod`, `po`.
    Pods,
    /// `cronjobs`, `cronjob`, `cj`, `cronjobs.batch`.
    CronJobs,
    /// `events`, `event`, `ev`.
    Events,
}

impl Resource {
    /// Parses a resource name as kubectl accepts it.
    pub fn parse(s: &str) -> Option<Resource> {
        Some(match s.to_ascii_lowercase().as_str() {
            "jobs" | "job" | "jobs.batch" | "job.batch" => Resource::Jobs,
            "pods" | "pod" | "po" => Resource::Pods,
            "cronjobs" | "cronjob" | "cj" | "cronjobs.batch" | "cronjob.batch" => {
                Resource::CronJobs
            }
            "events" | "event" | "ev" => Resource::Events,
            _ => return None,
        })
    }

    /// kubectl's qualified plural, as in `jobs.batch "pi" not found`.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Jobs => "jobs.batch",
            Resource::Pods => "pods",
            Resource::CronJobs => "cronjobs.batch",
            Resource::Events => "events",
        }
    }
}

/// Splits kubectl's argument forms `TYPE NAME...` and `TYPE/NAME...` into (type, names).
pub fn resource_args(args: &[String]) -> Result<(Resource, Vec<String>), String> {
    let unknown = |t: &str| {
        format!(
            "the server doesn't have a resource type \"{t}\" (wasmjob knows jobs, pods, cronjobs, events)"
        )
    };
    let Some(first) = args.first() else {
        return Err(
            "you must specify the type of resource to get (jobs, pods, cronjobs, events)".into(),
        );
    };
    if first.contains('/') {
        let mut kind = None;
        let mut names = Vec::new();
        for a in args {
            let (t, n) = a
                .split_once('/')
                .ok_or_else(|| format!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'wasmjob get job/pi' instead of 'wasmjob get job pi'): {a}"))?;
            let r = Resource::parse(t).ok_or_else(|| unknown(t))?;
            if kind.is_some_and(|k| k != r) {
                return Err("wasmjob takes one resource type at a time".into());
            }
            kind = Some(r);
            names.push(n.to_string());
        }
        return Ok((kind.unwrap_or(Resource::Jobs), names));
    }
    let r = Resource::parse(first).ok_or_else(|| unknown(first))?;
    Ok((r, args[1..].to_vec()))
}
