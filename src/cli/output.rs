//! Output formatting in one place: kubectl-style tables, `-o name`, and `-o json|yaml` Lists.

use jiff::Timestamp;
use serde::Serialize;

use crate::api::types::{COMPLETE, FAILED, FAILURE_TARGET, Job, Pod};
use crate::host::pod_status_column;
use crate::store::Store;

/// `-o` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// kubectl's default tables.
    Table,
    /// Tables with more columns.
    Wide,
    /// A Kubernetes `List` of the Jobs and Pods, as JSON.
    Json,
    /// The same `List` as YAML.
    Yaml,
    /// `kind/name` lines.
    Name,
}

impl Format {
    /// Whether stdout carries machine-readable data only.
    pub fn structured(self) -> bool {
        matches!(self, Format::Json | Format::Yaml | Format::Name)
    }
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

fn since(t: Option<Timestamp>, now: Timestamp) -> String {
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

fn job_duration(job: &Job, now: Timestamp) -> String {
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
pub fn jobs_table(jobs: &[&Job], wide: bool, now: Timestamp) -> String {
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
            row.push(
                cs.iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            row.push(
                cs.iter()
                    .map(|c| c.image.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
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
    table(&rows)
}

/// `kubectl get pods` rows.
pub fn pods_table(pods: &[&Pod], wide: bool, now: Timestamp) -> String {
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
    table(&rows)
}

/// A Kubernetes `List`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct List<'a> {
    api_version: &'static str,
    kind: &'static str,
    items: Vec<Item<'a>>,
    metadata: ListMeta,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Item<'a> {
    Job(&'a Job),
    Pod(&'a Pod),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    resource_version: &'static str,
}

/// Renders the whole store in `format`.
pub fn render(store: &Store, format: Format, now: Timestamp) -> String {
    let jobs: Vec<&Job> = store.jobs.iter().collect();
    let pods: Vec<&Pod> = store.pods.iter().map(|p| &p.pod).collect();
    match format {
        Format::Table | Format::Wide => {
            let wide = format == Format::Wide;
            let mut out = jobs_table(&jobs, wide, now);
            if !pods.is_empty() {
                out.push('\n');
                out.push_str(&pods_table(&pods, wide, now));
            }
            out
        }
        Format::Name => {
            let mut out = String::new();
            for j in &jobs {
                out.push_str(&format!("job.batch/{}\n", j.name()));
            }
            for p in &pods {
                out.push_str(&format!(
                    "pod/{}\n",
                    p.metadata.name.as_deref().unwrap_or("")
                ));
            }
            out
        }
        Format::Json | Format::Yaml => {
            let list = List {
                api_version: "v1",
                kind: "List",
                items: jobs
                    .into_iter()
                    .map(Item::Job)
                    .chain(pods.into_iter().map(Item::Pod))
                    .collect(),
                metadata: ListMeta {
                    resource_version: "",
                },
            };
            if format == Format::Json {
                let mut s = serde_json::to_string_pretty(&list)
                    .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
                s.push('\n');
                s
            } else {
                serde_yaml_ng::to_string(&list).unwrap_or_else(|e| format!("error: {e}\n"))
            }
        }
    }
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
