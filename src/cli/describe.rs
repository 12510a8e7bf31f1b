//! `wasmjob describe job|pod NAME`: kubectl's describer layout (aligned `Key:  value` blocks,
//! the pod template, container states) with the object's Events table.

use std::fmt::Write as _;

use jiff::Timestamp;

use super::Outcome;
use super::output::{human_duration, since};
use super::state::{Resource, StateDir, resource_args};
use super::tabwriter::align;
use crate::api::cronjob::CronJob;
use crate::api::types::{Container, ContainerState, Job, Pod, PodSpec, StringMap, Volume};
use crate::store::Event;
use crate::store::db::{StateDb, StoreError};

/// `wasmjob describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// `TYPE [NAME...]` or `TYPE/NAME`; a NAME that matches no object exactly describes those
    /// whose names start with it, as kubectl does.
    #[arg(required = true, value_name = "TYPE")]
    args: Vec<String>,
    /// The namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
}

/// Runs `wasmjob describe`.
pub fn describe(args: DescribeArgs, state: &StateDir) -> Outcome {
    let (res, names) = match resource_args(&args.args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Invalid;
        }
    };
    let db = match state.read() {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
    };
    let now = Timestamp::now();
    let result = match (&db, res) {
        (Some(db), Resource::Jobs) => describe_all(db, "Job", &args.namespace, &names, |j| {
            describe_job(db, j, now)
        }),
        (Some(db), Resource::Pods) => describe_all(db, "Pod", &args.namespace, &names, |p| {
            describe_pod(db, p, now)
        }),
        (Some(db), Resource::CronJobs) => {
            describe_all(db, "CronJob", &args.namespace, &names, |c| {
                describe_cronjob(db, c, now)
            })
        }
        (_, Resource::Events) => {
            eprintln!("error: wasmjob describes cronjobs, jobs and pods; use `wasmjob get events`");
            return Outcome::Invalid;
        }
        _ => Ok((Vec::new(), names.clone())),
    };
    let (texts, missing) = match result {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
    };
    print!("{}", texts.join("\n\n"));
    if texts.is_empty() && names.is_empty() {
        eprintln!("No resources found in {} namespace.", args.namespace);
    }
    for n in &missing {
        eprintln!(
            "Error from server (NotFound): {} {n:?} not found",
            res.plural()
        );
    }
    if missing.is_empty() {
        Outcome::Success
    } else {
        Outcome::JobFailed
    }
}

/// Describes the objects named (exactly, else by prefix), or all of them; returns the texts
/// and the names that matched nothing.
fn describe_all<T: serde::de::DeserializeOwned>(
    db: &StateDb,
    kind: &str,
    namespace: &str,
    names: &[String],
    describe: impl Fn(&T) -> Result<String, StoreError>,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let mut texts = Vec::new();
    let mut missing = Vec::new();
    if names.is_empty() {
        for o in db.list::<T>(kind, Some(namespace))? {
            texts.push(describe(&o)?);
        }
    }
    // Each name is looked up by the name index, not among all objects (a Job's 100,000
    // pods took 1.65 s and 472 MB to describe one).
    for n in names {
        let mut chosen: Vec<T> = db.get(kind, namespace, n)?.into_iter().collect();
        if chosen.is_empty() {
            chosen = db.list_prefixed(kind, namespace, n)?;
        }
        if chosen.is_empty() {
            missing.push(n.clone());
        }
        for o in &chosen {
            texts.push(describe(o)?);
        }
    }
    Ok((texts, missing))
}

/// kubectl's describe time format (RFC 1123 with numeric zone, local time).
fn time(t: Timestamp) -> String {
    t.to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

/// A user's value, with tabs (the aligner's cell separator) shown as spaces.
fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\t') {
        s.replace('\t', " ").into()
    } else {
        s.into()
    }
}

/// `Title:\tk=v` then one `\tk=v` line per further entry, or `<none>`.
fn map_lines(out: &mut String, indent: &str, title: &str, map: &StringMap) {
    if map.is_empty() {
        let _ = writeln!(out, "{indent}{title}:\t<none>");
        return;
    }
    for (i, (k, v)) in map.iter().enumerate() {
        let (k, v) = (clean(k), clean(v));
        if i == 0 {
            let _ = writeln!(out, "{indent}{title}:\t{k}={v}");
        } else {
            let _ = writeln!(out, "{indent}\t{k}={v}");
        }
    }
}

fn describe_job(db: &StateDb, job: &Job, now: Timestamp) -> Result<String, StoreError> {
    let mut out = String::new();
    let spec = &job.spec;
    let status = &job.status;
    let _ = writeln!(out, "Name:\t{}", job.name());
    let _ = writeln!(
        out,
        "Namespace:\t{}",
        job.metadata.namespace.as_deref().unwrap_or("default")
    );
    let selector = spec.selector.as_ref().map(|s| {
        s.match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    });
    let _ = writeln!(out, "Selector:\t{}", selector.unwrap_or_default());
    map_lines(&mut out, "", "Labels", &job.metadata.labels);
    map_lines(&mut out, "", "Annotations", &job.metadata.annotations);
    let _ = writeln!(out, "Parallelism:\t{}", spec.parallelism.unwrap_or(1));
    match spec.completions {
        Some(c) => {
            let _ = writeln!(out, "Completions:\t{c}");
        }
        None => {
            let _ = writeln!(out, "Completions:\t<unset>");
        }
    }
    let _ = writeln!(
        out,
        "Completion Mode:\t{}",
        spec.completion_mode.as_deref().unwrap_or("NonIndexed")
    );
    let _ = writeln!(out, "Suspend:\t{}", spec.suspend.unwrap_or(false));
    let _ = writeln!(out, "Backoff Limit:\t{}", spec.backoff_limit.unwrap_or(6));
    if let Some(start) = status.start_time {
        let _ = writeln!(out, "Start Time:\t{}", time(start));
    }
    if let (Some(start), Some(end)) = (status.start_time, status.completion_time) {
        let _ = writeln!(out, "Completed At:\t{}", time(end));
        let _ = writeln!(
            out,
            "Duration:\t{}",
            human_duration(end.duration_since(start))
        );
    }
    if let Some(d) = spec.active_deadline_seconds {
        let _ = writeln!(out, "Active Deadline Seconds:\t{d}s");
    }
    let _ = writeln!(
        out,
        "Pods Statuses:\t{} Active ({} Ready) / {} Succeeded / {} Failed",
        status.active, status.ready, status.succeeded, status.failed
    );
    if spec.completion_mode.as_deref() == Some("Indexed") {
        let _ = writeln!(
            out,
            "Completed Indexes:\t{}",
            cap_indexes(status.completed_indexes.as_deref().unwrap_or_default(), 50)
        );
    }
    let _ = writeln!(out, "Pod Template:");
    map_lines(&mut out, "  ", "Labels", &spec.template.metadata.labels);
    if !spec.template.metadata.annotations.is_empty() {
        map_lines(
            &mut out,
            "  ",
            "Annotations",
            &spec.template.metadata.annotations,
        );
    }
    let _ = writeln!(out, "  Containers:");
    for c in &spec.template.spec.containers {
        container(&mut out, c, None);
    }
    volumes(&mut out, "  ", &spec.template.spec);
    events(&mut out, &db.events(job.uid())?, now);
    Ok(align(&out))
}

/// A container's block: image, command, state (for a pod), limits, env, mounts.
fn container(out: &mut String, c: &Container, pod: Option<&Pod>) {
    let indent = if pod.is_some() { "  " } else { "   " };
    let _ = writeln!(out, "{indent}{}:", c.name);
    let _ = writeln!(out, "    Image:\t{}", clean(&c.image));
    let cs = pod.and_then(|p| {
        p.status
            .container_statuses
            .iter()
            .find(|s| *s.name == *c.name)
    });
    if let Some(cs) = cs
        && !cs.image_id.is_empty()
    {
        let _ = writeln!(out, "    Image ID:\t{}", cs.image_id);
    }
    for (title, list) in [("Command", &c.command), ("Args", &c.args)] {
        if !list.is_empty() {
            let _ = writeln!(out, "    {title}:");
            for a in list {
                let _ = writeln!(out, "      {}", clean(a));
            }
        }
    }
    if let Some(cs) = cs {
        state(out, "State", &cs.state);
        if let Some(last) = cs.last_state.as_ref().filter(|s| !s.is_empty()) {
            state(out, "Last State", last);
        }
        let ready = if cs.ready { "True" } else { "False" };
        let _ = writeln!(out, "    Ready:\t{ready}");
        let _ = writeln!(out, "    Restart Count:\t{}", cs.restart_count);
    }
    if let Some(r) = &c.resources {
        for (title, map) in [("Limits", &r.limits), ("Requests", &r.requests)] {
            if !map.is_empty() {
                let _ = writeln!(out, "    {title}:");
                for (k, v) in map {
                    let _ = writeln!(out, "      {k}:\t{}", v.0);
                }
            }
        }
    }
    if c.env.is_empty() {
        let _ = writeln!(out, "    Environment:\t<none>");
    } else {
        let _ = writeln!(out, "    Environment:");
        for e in &c.env {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => from.field_ref.as_ref().map_or_else(String::new, |f| {
                    format!(
                        " ({}:{})",
                        f.api_version.as_deref().unwrap_or("v1"),
                        f.field_path
                    )
                }),
                (None, None) => String::new(),
            };
            let _ = writeln!(out, "      {}:\t{}", clean(&e.name), clean(&value));
        }
    }
    if c.volume_mounts.is_empty() {
        let _ = writeln!(out, "    Mounts:\t<none>");
    } else {
        let _ = writeln!(out, "    Mounts:");
        for m in &c.volume_mounts {
            let mode = if m.read_only == Some(true) {
                "ro"
            } else {
                "rw"
            };
            let _ = writeln!(out, "      {} from {} ({mode})", m.mount_path, m.name);
        }
    }
}

fn state(out: &mut String, title: &str, s: &ContainerState) {
    if let Some(r) = &s.running {
        let _ = writeln!(out, "    {title}:\tRunning");
        let _ = writeln!(out, "      Started:\t{}", time(r.started_at));
    } else if let Some(w) = &s.waiting {
        let _ = writeln!(out, "    {title}:\tWaiting");
        let _ = writeln!(out, "      Reason:\t{}", w.reason);
    } else if let Some(t) = &s.terminated {
        let _ = writeln!(out, "    {title}:\tTerminated");
        let _ = writeln!(out, "      Reason:\t{}", t.reason);
        if let Some(m) = &t.message {
            let _ = writeln!(out, "      Message:\t{}", clean(&m.replace('\n', " ")));
        }
        let _ = writeln!(out, "      Exit Code:\t{}", t.exit_code);
        let _ = writeln!(out, "      Started:\t{}", time(t.started_at));
        let _ = writeln!(out, "      Finished:\t{}", time(t.finished_at));
    } else {
        let _ = writeln!(out, "    {title}:\t<none>");
    }
}

fn volumes(out: &mut String, indent: &str, spec: &PodSpec) {
    if spec.volumes.is_empty() {
        let _ = writeln!(out, "{indent}Volumes:\t<none>");
        return;
    }
    let _ = writeln!(out, "{indent}Volumes:");
    for v in &spec.volumes {
        volume(out, indent, v);
    }
}

fn volume(out: &mut String, indent: &str, v: &Volume) {
    let _ = writeln!(out, "{indent} {}:", v.name);
    if let Some(e) = &v.empty_dir {
        let _ = writeln!(
            out,
            "{indent}  Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)"
        );
        let _ = writeln!(
            out,
            "{indent}  Medium:\t{}",
            e.medium.as_deref().unwrap_or("")
        );
    } else if let Some(h) = &v.host_path {
        let _ = writeln!(
            out,
            "{indent}  Type:\tHostPath (bare host directory volume)"
        );
        let _ = writeln!(out, "{indent}  Path:\t{}", h.path);
        let _ = writeln!(
            out,
            "{indent}  HostPathType:\t{}",
            h.type_.as_deref().unwrap_or("")
        );
    }
}

fn events(out: &mut String, events: &[Event], now: Timestamp) {
    if events.is_empty() {
        let _ = writeln!(out, "Events:\t<none>");
        return;
    }
    let _ = writeln!(out, "Events:");
    let _ = writeln!(out, "  Type\tReason\tAge\tFrom\tMessage");
    let _ = writeln!(out, "  ----\t------\t----\t----\t-------");
    for e in events {
        let age = if e.count > 1 {
            format!(
                "{} (x{} over {})",
                since(Some(e.time), now),
                e.count,
                since(Some(e.first_time), now)
            )
        } else {
            since(Some(e.time), now)
        };
        let _ = writeln!(
            out,
            "  {}\t{}\t{age}\t{}\t{}",
            e.type_,
            e.reason,
            e.source,
            clean(e.message.trim())
        );
    }
}

/// kubectl's `describeCronJob` layout.
fn describe_cronjob(db: &StateDb, cj: &CronJob, now: Timestamp) -> Result<String, StoreError> {
    let mut out = String::new();
    let s = &cj.spec;
    let _ = writeln!(out, "Name:\t{}", cj.name());
    let _ = writeln!(
        out,
        "Namespace:\t{}",
        cj.metadata.namespace.as_deref().unwrap_or("default")
    );
    map_lines(&mut out, "", "Labels", &cj.metadata.labels);
    map_lines(&mut out, "", "Annotations", &cj.metadata.annotations);
    let _ = writeln!(out, "Schedule:\t{}", clean(&s.schedule));
    if let Some(tz) = &s.time_zone {
        let _ = writeln!(out, "Time Zone:\t{tz}");
    }
    let _ = writeln!(
        out,
        "Concurrency Policy:\t{}",
        s.concurrency_policy.as_deref().unwrap_or("Allow")
    );
    let _ = writeln!(out, "Suspend:\t{}", s.suspend.unwrap_or(false));
    let limit = |v: Option<i32>| v.map_or_else(|| "<unset>".to_string(), |n| n.to_string());
    let _ = writeln!(
        out,
        "Successful Job History Limit:\t{}",
        limit(s.successful_jobs_history_limit)
    );
    let _ = writeln!(
        out,
        "Failed Job History Limit:\t{}",
        limit(s.failed_jobs_history_limit)
    );
    let _ = writeln!(
        out,
        "Starting Deadline Seconds:\t{}",
        s.starting_deadline_seconds
            .map_or_else(|| "<unset>".to_string(), |d| format!("{d}s"))
    );
    let _ = writeln!(out, "Selector:\t<unset>");
    let js = &s.job_template.spec;
    let _ = writeln!(out, "Parallelism:\t{}", js.parallelism.unwrap_or(1));
    match js.completions {
        Some(c) => {
            let _ = writeln!(out, "Completions:\t{c}");
        }
        None => {
            let _ = writeln!(out, "Completions:\t<unset>");
        }
    }
    let _ = writeln!(out, "Pod Template:");
    map_lines(&mut out, "  ", "Labels", &js.template.metadata.labels);
    let _ = writeln!(out, "  Containers:");
    for c in &js.template.spec.containers {
        container(&mut out, c, None);
    }
    volumes(&mut out, "  ", &js.template.spec);
    let _ = writeln!(
        out,
        "Last Schedule Time:\t{}",
        cj.status
            .last_schedule_time
            .map_or_else(|| "<unset>".to_string(), time)
    );
    let active: Vec<&str> = cj.status.active.iter().map(|a| a.name.as_str()).collect();
    let _ = writeln!(
        out,
        "Active Jobs:\t{}",
        if active.is_empty() {
            "<none>".to_string()
        } else {
            active.join(", ")
        }
    );
    events(&mut out, &db.events(cj.uid())?, now);
    Ok(align(&out))
}

fn describe_pod(db: &StateDb, pod: &Pod, now: Timestamp) -> Result<String, StoreError> {
    let mut out = String::new();
    let meta = &pod.metadata;
    let _ = writeln!(out, "Name:\t{}", meta.name.as_deref().unwrap_or(""));
    let _ = writeln!(
        out,
        "Namespace:\t{}",
        meta.namespace.as_deref().unwrap_or("default")
    );
    if let Some(t) = pod.status.start_time {
        let _ = writeln!(out, "Start Time:\t{}", time(t));
    }
    map_lines(&mut out, "", "Labels", &meta.labels);
    map_lines(&mut out, "", "Annotations", &meta.annotations);
    let _ = writeln!(out, "Status:\t{}", pod.status.phase);
    if let Some(r) = &pod.status.reason {
        let _ = writeln!(out, "Reason:\t{r}");
    }
    if let Some(m) = &pod.status.message {
        let _ = writeln!(out, "Message:\t{}", clean(m));
    }
    if let Some(o) = meta.owner_references.iter().find(|o| o.controller) {
        let _ = writeln!(out, "Controlled By:\t{}/{}", o.kind, o.name);
    }
    let _ = writeln!(out, "Containers:");
    for c in &pod.spec.containers {
        container(&mut out, c, Some(pod));
    }
    if !pod.status.conditions.is_empty() {
        let _ = writeln!(out, "Conditions:");
        let _ = writeln!(out, "  Type\tStatus");
        for c in &pod.status.conditions {
            let _ = writeln!(out, "  {}\t{}", c.type_, c.status);
        }
    }
    volumes(&mut out, "", &pod.spec);
    let uid = meta.uid.as_deref().unwrap_or("");
    events(&mut out, &db.events(uid)?, now);
    Ok(align(&out))
}

/// An index list as kubectl describes it: cut at the first comma past `soft_limit`
/// characters, with `...`; `<none>` when empty.
fn cap_indexes(indexes: &str, soft_limit: usize) -> String {
    if indexes.is_empty() {
        return "<none>".into();
    }
    match indexes
        .get(soft_limit..)
        .and_then(|rest| rest.find(','))
        .map(|i| soft_limit + i)
    {
        Some(comma) => format!("{}...", &indexes[..=comma]),
        None => indexes.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::cap_indexes;

    #[test]
    fn index_lists_are_cut_as_kubectl_cuts_them() {
        assert_eq!(cap_indexes("", 50), "<none>");
        assert_eq!(cap_indexes("0-99999", 50), "0-99999");
        let long: String = (0..40)
            .map(|i| (i * 2).to_string())
            .collect::<Vec<_>>()
            .join(",");
        // The first comma at or after the 50th character ends the list.
        assert_eq!(
            cap_indexes(&long, 50),
            "0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,..."
        );
    }
}
