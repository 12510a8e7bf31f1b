//! Output formatting in one place: kubectl-style tables, `-o name`, and `-o json|yaml` Lists.

use jiff::Timestamp;
use serde::Serialize;

use crate::api::cronjob::CronJob;
use crate::api::types::{COMPLETE, FAILED, FAILURE_TARGET, Job, Pod};
use crate::host::pod_status_column;
use crate::store::{Event, Store};

/// `-o` formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// kubectl's default tables.
    Table,
    /// Tables with more columns.
    Wide,
    /// The objects as JSON (a `List`, or the object itself when one was asked for by name).
    Json,
    /// The same as YAML.
    Yaml,
    /// `kind/name` lines.
    Name,
    /// A kubectl JSONPath template applied to what `-o json` prints.
    JsonPath(String),
}

impl Format {
    /// Whether stdout carries machine-readable data only.
    pub fn structured(&self) -> bool {
        !matches!(self, Format::Table | Format::Wide)
    }
}

/// Parses `-o`: `table`, `wide`, `json`, `yaml`, `name`, `jsonpath=TEMPLATE`.
pub fn parse_format(s: &str) -> Result<Format, String> {
    if let Some(t) = s
        .strip_prefix("jsonpath=")
        .or_else(|| s.strip_prefix("jsonpath-as-json="))
    {
        let t = t
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .unwrap_or(t);
        crate::cli::jsonpath::Template::parse(t)?;
        return Ok(Format::JsonPath(t.to_string()));
    }
    Ok(match s {
        "table" => Format::Table,
        "wide" => Format::Wide,
        "json" => Format::Json,
        "yaml" => Format::Yaml,
        "name" => Format::Name,
        "jsonpath" => return Err("template format specified but no template given".into()),
        _ => {
            return Err(format!(
                "unable to match a printer suitable for the output format {s:?}, allowed \
                 formats are: json, jsonpath, name, table, wide, yaml"
            ));
        }
    })
}

/// kubectl's `duration.HumanDuration`.
pub fn human_duration(d: jiff::SignedDuration) -> String {
    let s = d.as_secs();
    if s < -1 {
        return "<invalid>".into();
    }
    if s < 0 {
        return "0s".into();
    }
    let (m, h, days) = (s / 60, s / 3600, s / 86400);
    let with = |a: i64, ua: &str, b: i64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua}{b}{ub}")
        }
    };
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        with(m, "m", s % 60, "s")
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        with(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        with(days, "d", h % 24, "h")
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        with(days / 365, "y", days % 365, "d")
    } else {
        format!("{}y", days / 365)
    }
}

/// kubectl's AGE: time since `t`, humanised.
pub fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map_or_else(
        || "<unknown>".into(),
        |t| human_duration(now.duration_since(t)),
    )
}

/// The STATUS column of `kubectl get jobs`.
pub fn job_status_column(job: &Job) -> &'static str {
    let has = |t: &str| job.status.condition(t).is_some_and(|c| c.status == "True");
    if has(COMPLETE) {
        "Complete"
    } else if has(FAILED) {
        "Failed"
    } else if has(FAILURE_TARGET) {
        "FailureTarget"
    } else {
        "Running"
    }
}

/// The COMPLETIONS column of `kubectl get jobs`.
pub fn completions_column(job: &Job) -> String {
    let s = job.status.succeeded;
    match (job.spec.completions, job.spec.parallelism.unwrap_or(1)) {
        (Some(c), _) => format!("{s}/{c}"),
        (None, p) if p > 1 => format!("{s}/1 of {p}"),
        (None, _) => format!("{s}/1"),
    }
}

/// The DURATION column of `kubectl get jobs`.
pub fn job_duration(job: &Job, now: Timestamp) -> String {
    match (job.status.start_time, job.status.completion_time) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.duration_since(start)),
        (Some(start), Some(end)) => human_duration(end.duration_since(start)),
    }
}

/// Columns padded as kubectl's tabwriter pads them (three spaces between columns).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `kubectl get jobs` rows.
fn jobs_rows(jobs: &[&Job], wide: bool, now: Timestamp) -> Vec<Vec<String>> {
    let mut head = vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"];
    if wide {
        head.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
    }
    let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
    for job in jobs {
        let mut row = vec![
            job.name().to_string(),
            job_status_column(job).into(),
            completions_column(job),
            job_duration(job, now),
            since(job.metadata.creation_timestamp, now),
        ];
        if wide {
            let cs = &job.spec.template.spec.containers;
            row.extend(containers_and_images(cs));
            let sel = job.spec.selector.as_ref().map(|s| {
                s.match_labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            });
            row.push(sel.unwrap_or_default());
        }
        rows.push(row);
    }
    rows
}

/// The CONTAINERS and IMAGES columns of `-o wide`.
fn containers_and_images(cs: &[crate::api::types::Container]) -> [String; 2] {
    let join = |f: fn(&crate::api::types::Container) -> &str| {
        cs.iter().map(f).collect::<Vec<_>>().join(",")
    };
    [join(|c| c.name.as_str()), join(|c| c.image.as_str())]
}

/// `kubectl get cronjobs` rows.
fn cronjobs_rows(cronjobs: &[&CronJob], wide: bool, now: Timestamp) -> Vec<Vec<String>> {
    let mut head = vec![
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "SUSPEND",
        "ACTIVE",
        "LAST SCHEDULE",
        "AGE",
    ];
    if wide {
        head.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
    }
    let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
    for cj in cronjobs {
        let s = &cj.spec;
        let mut row = vec![
            cj.name().to_string(),
            s.schedule.clone(),
            s.time_zone.clone().unwrap_or_else(|| "<none>".into()),
            if s.suspend == Some(true) {
                "True"
            } else {
                "False"
            }
            .into(),
            cj.status.active.len().to_string(),
            cj.status
                .last_schedule_time
                .map_or_else(|| "<none>".into(), |t| since(Some(t), now)),
            since(cj.metadata.creation_timestamp, now),
        ];
        if wide {
            let cs = &s.job_template.spec.template.spec.containers;
            row.extend(containers_and_images(cs));
            row.push("<none>".into());
        }
        rows.push(row);
    }
    rows
}

/// `kubectl get pods` rows.
fn pods_rows(pods: &[&Pod], wide: bool, now: Timestamp) -> Vec<Vec<String>> {
    let mut head = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if wide {
        head.extend(["IMAGE", "EXIT CODE"]);
    }
    let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
    for pod in pods {
        let cs = &pod.status.container_statuses;
        let ready = cs.iter().filter(|c| c.ready).count();
        let restarts: i32 = cs.iter().map(|c| c.restart_count).sum();
        let mut row = vec![
            pod.metadata.name.clone().unwrap_or_default(),
            format!("{ready}/{}", cs.len().max(1)),
            pod_status_column(pod),
            restarts.to_string(),
            since(pod.metadata.creation_timestamp, now),
        ];
        if wide {
            row.push(cs.first().map(|c| c.image.clone()).unwrap_or_default());
            let code = cs
                .first()
                .and_then(|c| c.state.terminated.as_ref())
                .map(|t| t.exit_code.to_string());
            row.push(code.unwrap_or_default());
        }
        rows.push(row);
    }
    rows
}

/// `kubectl get events` rows.
fn events_rows(events: &[&Event], wide: bool, now: Timestamp) -> Vec<Vec<String>> {
    let mut head = vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];
    if wide {
        head = vec![
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST SEEN",
            "COUNT",
        ];
    }
    let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
    for e in events {
        let object = format!("{}/{}", e.kind.to_lowercase(), e.name);
        let mut row = vec![
            since(Some(e.time), now),
            e.type_.clone(),
            e.reason.clone(),
            object,
        ];
        if wide {
            row.push(e.source.clone());
            row.push(e.message.clone());
            row.push(since(Some(e.first_time), now));
            row.push(e.count.to_string());
        } else {
            row.push(e.message.clone());
        }
        rows.push(row);
    }
    rows
}

/// An event as the `v1` Event object `kubectl get events -o json` shows.
pub fn event_object(e: &Event) -> serde_json::Value {
    let suffix: String = e
        .uid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{}{}", e.name, suffix, e.reason.len()),
            "namespace": e.namespace,
        },
        "involvedObject": {
            "apiVersion": if e.kind == "Job" { "batch/v1" } else { "v1" },
            "kind": e.kind,
            "name": e.name,
            "namespace": e.namespace,
            "uid": e.uid,
        },
        "type": e.type_,
        "reason": e.reason,
        "message": e.message,
        "source": { "component": e.source },
        "firstTimestamp": e.first_time,
        "lastTimestamp": e.time,
        "count": e.count,
    })
}

/// Objects to print, by kind.
#[derive(Default)]
pub struct Listing<'a> {
    /// CronJobs.
    pub cronjobs: Vec<&'a CronJob>,
    /// Jobs.
    pub jobs: Vec<&'a Job>,
    /// Pods.
    pub pods: Vec<&'a Pod>,
    /// Events.
    pub events: Vec<&'a Event>,
    /// Whether tables get a NAMESPACE column (`-A`).
    pub namespaces: bool,
}

impl<'a> Listing<'a> {
    /// Every Job and Pod of a run.
    pub fn of_store(store: &'a Store) -> Self {
        Listing {
            cronjobs: store.cronjobs.iter().collect(),
            jobs: store.jobs.iter().collect(),
            pods: store.pods.iter().map(|p| &p.pod).collect(),
            events: Vec::new(),
            namespaces: false,
        }
    }

    fn len(&self) -> usize {
        self.cronjobs.len() + self.jobs.len() + self.pods.len() + self.events.len()
    }

    /// The objects as JSON values: Jobs, then Pods, then Events.
    fn values(&self) -> Vec<serde_json::Value> {
        let mut out: Vec<serde_json::Value> = Vec::with_capacity(self.len());
        out.extend(self.cronjobs.iter().map(to_value));
        out.extend(self.jobs.iter().map(to_value));
        out.extend(self.pods.iter().map(to_value));
        out.extend(self.events.iter().map(|e| event_object(e)));
        out
    }
}

fn to_value(v: &impl Serialize) -> serde_json::Value {
    // Our API types always serialize.
    serde_json::to_value(v).expect("API objects serialize to JSON")
}

/// Renders `listing` in `format`. `single`: one object was asked for by name, so JSON and
/// YAML show it alone rather than in a `List`, as kubectl does.
pub fn render<'a>(
    listing: &Listing<'a>,
    format: &Format,
    now: Timestamp,
    single: bool,
) -> Result<String, String> {
    Ok(match format {
        Format::Table | Format::Wide => {
            let wide = *format == Format::Wide;
            let mut parts = Vec::new();
            let ns = |rows: Vec<Vec<String>>, namespaces: Vec<&str>| {
                if !listing.namespaces {
                    return table(&rows);
                }
                let head = std::iter::once("NAMESPACE");
                let rows: Vec<Vec<String>> = head
                    .chain(namespaces)
                    .zip(rows)
                    .map(|(n, row)| std::iter::once(n.to_string()).chain(row).collect())
                    .collect();
                table(&rows)
            };
            let of =
                |m: &'a crate::api::types::ObjectMeta| m.namespace.as_deref().unwrap_or("default");
            if !listing.cronjobs.is_empty() {
                let rows = cronjobs_rows(&listing.cronjobs, wide, now);
                parts.push(ns(
                    rows,
                    listing.cronjobs.iter().map(|c| of(&c.metadata)).collect(),
                ));
            }
            if !listing.jobs.is_empty() {
                let rows = jobs_rows(&listing.jobs, wide, now);
                parts.push(ns(
                    rows,
                    listing.jobs.iter().map(|j| of(&j.metadata)).collect(),
                ));
            }
            if !listing.pods.is_empty() {
                let rows = pods_rows(&listing.pods, wide, now);
                parts.push(ns(
                    rows,
                    listing.pods.iter().map(|p| of(&p.metadata)).collect(),
                ));
            }
            if !listing.events.is_empty() {
                let rows = events_rows(&listing.events, wide, now);
                parts.push(ns(
                    rows,
                    listing
                        .events
                        .iter()
                        .map(|e| e.namespace.as_str())
                        .collect(),
                ));
            }
            parts.join("\n")
        }
        Format::Name => {
            let mut out = String::new();
            for c in &listing.cronjobs {
                out.push_str(&format!("cronjob.batch/{}\n", c.name()));
            }
            for j in &listing.jobs {
                out.push_str(&format!("job.batch/{}\n", j.name()));
            }
            for p in &listing.pods {
                out.push_str(&format!(
                    "pod/{}\n",
                    p.metadata.name.as_deref().unwrap_or("")
                ));
            }
            for e in &listing.events {
                out.push_str(&format!(
                    "event/{}\n",
                    event_object(e)["metadata"]["name"].as_str().unwrap_or("")
                ));
            }
            out
        }
        Format::Json | Format::Yaml | Format::JsonPath(_) => {
            let mut values = listing.values();
            let value = if single && values.len() == 1 {
                values.remove(0)
            } else {
                serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": values,
                    "metadata": { "resourceVersion": "" },
                })
            };
            if let Format::JsonPath(t) = format {
                crate::cli::jsonpath::Template::parse(t)?.render(&value)?
            } else if *format == Format::Yaml {
                serde_yaml_ng::to_string(&value).map_err(|e| e.to_string())?
            } else {
                let mut s = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
                s.push('\n');
                s
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    #[test]
    fn humanises_durations_like_kubectl() {
        let cases = [
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (240, "4m"),
            (45 * 60, "45m"),
            (179 * 60, "179m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (36 * 3600, "36h"),
            (2 * 86400, "2d"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400, "3y"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                human_duration(SignedDuration::from_secs(secs)),
                want,
                "{secs}"
            );
        }
        assert_eq!(human_duration(SignedDuration::from_secs(-5)), "<invalid>");
    }

    #[test]
    fn pads_columns_with_three_spaces() {
        let rows = vec![
            vec!["NAME".to_string(), "STATUS".into()],
            vec!["pi".to_string(), "Complete".into()],
        ];
        assert_eq!(table(&rows), "NAME   STATUS\npi     Complete\n");
    }
}
