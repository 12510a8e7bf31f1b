//! Output formatting in one place: kubectl-style tables, `-o name`, and `-o json|yaml` Lists.

use jiff::Timestamp;
use serde::Serialize;

use crate::api::cronjob::CronJob;
use crate::api::types::{COMPLETE, FAILED, FAILURE_TARGET, Job, Pod};
use crate::host::pod_status_column;
use crate::store::{Event, PodEntry, Store};

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
fn pods_rows(pods: &[PodView<'_>], wide: bool, now: Timestamp) -> Vec<Vec<String>> {
    let mut rows = vec![pods_header(wide)];
    rows.extend(
        pods.iter()
            .map(|p| p.with_pod(|pod| pod_row(pod, wide, now))),
    );
    rows
}

/// The header row of `kubectl get pods`.
pub fn pods_header(wide: bool) -> Vec<String> {
    let mut head = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if wide {
        head.extend(["IMAGE", "EXIT CODE"]);
    }
    head.into_iter().map(String::from).collect()
}

/// A pod's row of `kubectl get pods`.
pub fn pod_row(pod: &Pod, wide: bool, now: Timestamp) -> Vec<String> {
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
        row.push(cs.first().map(|c| c.image.to_string()).unwrap_or_default());
        let code = cs
            .first()
            .and_then(|c| c.state.terminated.as_ref())
            .map(|t| t.exit_code.to_string());
        row.push(code.unwrap_or_default());
    }
    row
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
    pub pods: Vec<PodView<'a>>,
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
            pods: store.pods.iter().map(|p| PodView::Entry(p)).collect(),
            events: Vec::new(),
            namespaces: false,
        }
    }

    fn len(&self) -> usize {
        self.cronjobs.len() + self.jobs.len() + self.pods.len() + self.events.len()
    }

    /// The one object, when the listing holds exactly one.
    fn only(&self) -> Option<Item<'_>> {
        (self.len() == 1).then(|| self.items().next()).flatten()
    }

    /// The objects in print order: CronJobs, Jobs, Pods, then Events.
    fn items(&self) -> impl Iterator<Item = Item<'_>> {
        let cronjobs = self.cronjobs.iter().map(|&c| Item::CronJob(c));
        let jobs = self.jobs.iter().map(|&j| Item::Job(j));
        let pods = self.pods.iter().map(|&p| Item::Pod(p));
        let events = self.events.iter().map(|&e| Item::Event(e));
        cronjobs.chain(jobs).chain(pods).chain(events)
    }
}

/// One object of a listing, serialized as `-o json` shows it.
enum Item<'a> {
    CronJob(&'a CronJob),
    Job(&'a Job),
    Pod(PodView<'a>),
    Event(&'a Event),
}

/// A pod to list: a Pod object, or a host's entry, whose lean pod is made into a Pod only
/// while it is printed (and not at all for its name).
#[derive(Clone, Copy)]
pub enum PodView<'a> {
    /// A Pod object.
    Pod(&'a Pod),
    /// A pod the host keeps.
    Entry(&'a PodEntry),
}

impl PodView<'_> {
    /// `f` of the Pod object.
    pub fn with_pod<T>(self, f: impl FnOnce(&Pod) -> T) -> T {
        match self {
            PodView::Pod(pod) => f(pod),
            PodView::Entry(entry) => entry.with_pod(f),
        }
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        match self {
            PodView::Pod(pod) => pod.metadata.name.as_deref().unwrap_or_default(),
            PodView::Entry(entry) => entry.name(),
        }
    }

    /// The pod's namespace, if set.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            PodView::Pod(pod) => pod.metadata.namespace.as_deref(),
            PodView::Entry(entry) => entry.namespace(),
        }
    }

    /// Whether the pod was deleted.
    pub fn deleted(&self) -> bool {
        match self {
            PodView::Pod(pod) => pod.metadata.deletion_timestamp.is_some(),
            PodView::Entry(entry) => entry.deleted(),
        }
    }
}

impl<'a> From<&'a Pod> for PodView<'a> {
    fn from(pod: &'a Pod) -> Self {
        PodView::Pod(pod)
    }
}

impl Serialize for Item<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Item::CronJob(c) => c.serialize(s),
            Item::Job(j) => j.serialize(s),
            Item::Pod(p) => p.with_pod(|pod| pod.serialize(s)),
            Item::Event(e) => event_object(e).serialize(s),
        }
    }
}

/// Items as kubectl's `List` of them, serialized straight from the objects: a run of 100,000
/// pods is written as it is read, never held as one JSON tree. `items` serializes as a
/// sequence (a listing's objects, or pods read one by one from the state directory).
pub struct List<I>(pub I);

/// A listing's objects, for [`List`].
struct Items<'l, 'a>(&'l Listing<'a>);

impl Serialize for Items<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.items())
    }
}

impl<I: Serialize> Serialize for List<I> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("apiVersion", "v1")?;
        m.serialize_entry("items", &self.0)?;
        m.serialize_entry("kind", "List")?;
        m.serialize_entry("metadata", &serde_json::json!({ "resourceVersion": "" }))?;
        m.end()
    }
}

/// Why a listing could not be printed.
#[derive(Debug)]
pub enum RenderError {
    /// The format cannot render it (e.g. a JSONPath template that does not apply).
    Invalid(String),
    /// Writing failed (e.g. stdout closed by `| head`).
    Io(std::io::Error),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Invalid(e) => f.write_str(e),
            RenderError::Io(e) => write!(f, "writing the output: {e}"),
        }
    }
}

/// A writer that keeps its first I/O error, so that one can be told from a format's own.
struct Tracked<'w> {
    inner: &'w mut dyn std::io::Write,
    error: Option<std::io::Error>,
}

impl Tracked<'_> {
    fn keep<T>(&mut self, result: std::io::Result<T>) -> std::io::Result<T> {
        result.inspect_err(|e| {
            self.error
                .get_or_insert_with(|| std::io::Error::new(e.kind(), e.to_string()));
        })
    }
}

impl std::io::Write for Tracked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.inner.write(buf);
        self.keep(result)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.inner.flush();
        self.keep(result)
    }
}

/// Writes `listing` in `format` to `out`. `single`: one object was asked for by name, so
/// JSON and YAML show it alone rather than in a `List`, as kubectl does. JSON and YAML are
/// written object by object as they are serialized.
pub fn render<'a>(
    listing: &Listing<'a>,
    format: &Format,
    now: Timestamp,
    single: bool,
    out: &mut dyn std::io::Write,
) -> Result<(), RenderError> {
    tracked(out, |out| render_to(listing, format, now, single, out))
}

/// Runs `write` on `out`, telling a failure to write ([`RenderError::Io`], e.g. stdout
/// closed by `| head`) from the format's own.
pub fn tracked(
    out: &mut dyn std::io::Write,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<(), String>,
) -> Result<(), RenderError> {
    let mut out = Tracked {
        inner: out,
        error: None,
    };
    let result = write(&mut out);
    match (out.error, result) {
        (Some(e), _) => Err(RenderError::Io(e)),
        (None, Err(e)) => Err(RenderError::Invalid(e)),
        (None, Ok(())) => Ok(()),
    }
}

/// [`render`] into a string (what `kubectl get -w` filters line by line, and tests read).
pub fn render_string(
    listing: &Listing<'_>,
    format: &Format,
    now: Timestamp,
    single: bool,
) -> Result<String, RenderError> {
    let mut buf = Vec::new();
    render(listing, format, now, single, &mut buf)?;
    String::from_utf8(buf).map_err(|e| RenderError::Invalid(e.to_string()))
}

fn render_to(
    listing: &Listing<'_>,
    format: &Format,
    now: Timestamp,
    single: bool,
    out: &mut dyn std::io::Write,
) -> Result<(), String> {
    use std::io::Write;
    let io = |e: std::io::Error| e.to_string();
    let only = listing.only().filter(|_| single);
    match format {
        Format::Table | Format::Wide => {
            let text = tables(listing, *format == Format::Wide, now);
            out.write_all(text.as_bytes()).map_err(io)
        }
        Format::Name => {
            let mut w = std::io::BufWriter::new(out);
            for item in listing.items() {
                match item {
                    Item::CronJob(c) => writeln!(w, "cronjob.batch/{}", c.name()),
                    Item::Job(j) => writeln!(w, "job.batch/{}", j.name()),
                    Item::Pod(p) => writeln!(w, "pod/{}", p.name()),
                    Item::Event(e) => writeln!(
                        w,
                        "event/{}",
                        event_object(e)["metadata"]["name"].as_str().unwrap_or("")
                    ),
                }
                .map_err(io)?;
            }
            w.flush().map_err(io)
        }
        Format::Json => {
            let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
            match only {
                Some(item) => serde_json::to_writer_pretty(&mut w, &item),
                None => serde_json::to_writer_pretty(&mut w, &List(Items(listing))),
            }
            .map_err(|e| e.to_string())?;
            w.write_all(b"\n").and_then(|()| w.flush()).map_err(io)
        }
        Format::Yaml => {
            let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
            match only {
                Some(item) => serde_yaml_ng::to_writer(&mut w, &item),
                None => serde_yaml_ng::to_writer(&mut w, &List(Items(listing))),
            }
            .map_err(|e| e.to_string())?;
            w.flush().map_err(io)
        }
        Format::JsonPath(t) => {
            let value = match only {
                Some(item) => serde_json::to_value(&item),
                None => serde_json::to_value(List(Items(listing))),
            }
            .map_err(|e| e.to_string())?;
            let text = crate::cli::jsonpath::Template::parse(t)?.render(&value)?;
            out.write_all(text.as_bytes()).map_err(io)
        }
    }
}

/// `rows` (a header, then one per object) with a NAMESPACE column before the others when
/// `namespaces` (of each object) are given, as `kubectl get -A` prints them.
pub fn with_namespaces<S: Into<String>>(
    rows: Vec<Vec<String>>,
    namespaces: Option<Vec<S>>,
) -> Vec<Vec<String>> {
    let Some(namespaces) = namespaces else {
        return rows;
    };
    let head = std::iter::once("NAMESPACE".to_string());
    head.chain(namespaces.into_iter().map(Into::into))
        .zip(rows)
        .map(|(n, row)| std::iter::once(n).chain(row).collect())
        .collect()
}

/// The tables of `kubectl get`, one per kind, a blank line between them.
fn tables(listing: &Listing<'_>, wide: bool, now: Timestamp) -> String {
    fn of(m: &crate::api::types::ObjectMeta) -> &str {
        m.namespace.as_deref().unwrap_or("default")
    }
    let mut parts = Vec::new();
    let ns = |rows: Vec<Vec<String>>, namespaces: Vec<&str>| {
        table(&with_namespaces(
            rows,
            listing.namespaces.then_some(namespaces),
        ))
    };
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
            listing
                .pods
                .iter()
                .map(|p| p.namespace().unwrap_or("default"))
                .collect(),
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

    fn pod(name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "uid": "u-1",
                "namespace": "default",
                "name": name,
                "creationTimestamp": "2026-11-23T00:00:00Z",
            },
            "spec": { "containers": [{ "name": "c", "image": "c.wasm" }] },
            "status": { "phase": "Succeeded" },
        }))
        .expect("a Pod")
    }

    #[test]
    fn json_is_a_list_in_kubectl_field_order_or_the_object_asked_for() {
        let (a, b) = (pod("a"), pod("b"));
        let listing = Listing {
            pods: vec![(&a).into(), (&b).into()],
            ..Default::default()
        };
        let now = Timestamp::UNIX_EPOCH;
        let text = render_string(&listing, &Format::Json, now, false).unwrap();
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"][1]["metadata"]["name"], "b");
        // Fields as the API types order them (kubectl's order), not sorted.
        let meta = text.find("\"metadata\"").unwrap();
        let at = |key: &str| text[meta..].find(&format!("\"{key}\"")).unwrap();
        assert!(at("name") < at("namespace") && at("uid") < at("creationTimestamp"));
        // One object asked for by name is printed alone.
        let one = Listing {
            pods: vec![(&a).into()],
            ..Default::default()
        };
        let text = render_string(&one, &Format::Yaml, now, true).unwrap();
        let obj: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            (obj["kind"].as_str(), obj["metadata"]["name"].as_str()),
            (Some("Pod"), Some("a"))
        );
    }

    #[test]
    fn a_closed_output_is_told_from_a_bad_template() {
        struct Closed;
        impl std::io::Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let a = pod("a");
        let listing = Listing {
            pods: vec![(&a).into()],
            ..Default::default()
        };
        let now = Timestamp::UNIX_EPOCH;
        for format in [Format::Json, Format::Yaml, Format::Name, Format::Table] {
            let got = render(&listing, &format, now, false, &mut Closed);
            assert!(
                matches!(got, Err(RenderError::Io(_))),
                "{format:?}: {got:?}"
            );
        }
        let bad = Format::JsonPath("{.items[0].metadata.name".into());
        let got = render(&listing, &bad, now, false, &mut Vec::new());
        assert!(matches!(got, Err(RenderError::Invalid(_))), "{got:?}");
    }
}
