//! `wasmjob get`: kubectl's listing of jobs, pods and events from the state directory, with
//! selectors, output formats and `-w` to follow a run in progress.

use std::io::Write;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::jsonpath::{ItemWise, Template};
use super::output::{
    Format, List, Listing, PodView, RenderError, parse_format, pod_row, pods_header, render,
    render_string, table, tracked, with_namespaces,
};
use super::state::{Resource, StateDir, resource_args};
use super::{Outcome, parse_duration};
use crate::api::cronjob::CronJob;
use crate::api::types::{Job, Pod};
use crate::store::Event;
use crate::store::db::{HostLock, StateDb, StoreError};
use crate::store::selector::Selector;

/// `wasmjob get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// `TYPE [NAME...]` or `TYPE/NAME...`; TYPE is jobs, pods, cronjobs or events.
    #[arg(required = true, value_name = "TYPE")]
    args: Vec<String>,
    /// Label selector, e.g. `job-name=pi`, `app in (a,b)`, `tier!=web`.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Output format: table, wide, json, yaml, name or jsonpath=TEMPLATE.
    #[arg(short, long, value_parser = parse_format, default_value = "table")]
    output: Format,
    /// After listing, print objects again as they change, while a run is in progress.
    #[arg(short, long)]
    watch: bool,
    /// The namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// List objects of every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Stop watching after this long (0: when the run ends or on Ctrl-C).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    request_timeout: Option<Duration>,
    /// Accepted for old kubectl sessions; finished pods are always shown.
    #[arg(short = 'a', long, hide = true)]
    show_all: bool,
}

/// Objects of one kind.
enum Objects {
    CronJobs(Vec<CronJob>),
    Jobs(Vec<Job>),
    Pods(Vec<Pod>),
    Events(Vec<Event>),
}

impl Objects {
    fn listing(&self) -> Listing<'_> {
        let mut l = Listing::default();
        match self {
            Objects::CronJobs(v) => l.cronjobs = v.iter().collect(),
            Objects::Jobs(v) => l.jobs = v.iter().collect(),
            Objects::Pods(v) => l.pods = v.iter().map(PodView::from).collect(),
            Objects::Events(v) => l.events = v.iter().collect(),
        }
        l
    }

    fn names(&self) -> Vec<&str> {
        match self {
            Objects::CronJobs(v) => v.iter().map(CronJob::name).collect(),
            Objects::Jobs(v) => v.iter().map(Job::name).collect(),
            Objects::Pods(v) => v
                .iter()
                .map(|p| p.metadata.name.as_deref().unwrap_or(""))
                .collect(),
            Objects::Events(v) => v.iter().map(|e| e.name.as_str()).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Objects::CronJobs(v) => v.is_empty(),
            Objects::Jobs(v) => v.is_empty(),
            Objects::Pods(v) => v.is_empty(),
            Objects::Events(v) => v.is_empty(),
        }
    }

    /// Keeps the objects that `keep(name, labels)` selects.
    fn retain(&mut self, keep: impl Fn(&str, &std::collections::BTreeMap<String, String>) -> bool) {
        let none = Default::default();
        match self {
            Objects::CronJobs(v) => v.retain(|c| keep(c.name(), &c.metadata.labels)),
            Objects::Jobs(v) => v.retain(|j| keep(j.name(), &j.metadata.labels)),
            Objects::Pods(v) => {
                v.retain(|p| keep(p.metadata.name.as_deref().unwrap_or(""), &p.metadata.labels))
            }
            Objects::Events(v) => v.retain(|e| keep(&e.name, &none)),
        }
    }
}

/// The objects of `res` (those changed after revision `after`, if given; those named
/// `names`, if any, found by name).
fn load(
    db: &StateDb,
    res: Resource,
    ns: Option<&str>,
    after: Option<i64>,
    names: &[String],
) -> Result<Objects, StoreError> {
    fn changed<T: serde::de::DeserializeOwned>(
        db: &StateDb,
        kind: &str,
        ns: Option<&str>,
        after: i64,
    ) -> Result<Vec<T>, StoreError> {
        Ok(db
            .changed_since(kind, ns, after)?
            .into_iter()
            .map(|(_, o)| o)
            .collect())
    }
    Ok(match res {
        Resource::Jobs if after.is_some() => {
            Objects::Jobs(changed(db, "Job", ns, after.unwrap_or(-1))?)
        }
        Resource::Jobs if !names.is_empty() => Objects::Jobs(db.list_named("Job", ns, names)?),
        Resource::Jobs => Objects::Jobs(db.list("Job", ns)?),
        Resource::Pods if after.is_some() => {
            Objects::Pods(changed(db, "Pod", ns, after.unwrap_or(-1))?)
        }
        Resource::Pods if !names.is_empty() => Objects::Pods(db.list_named("Pod", ns, names)?),
        Resource::Pods => Objects::Pods(db.list("Pod", ns)?),
        Resource::CronJobs if after.is_some() => {
            Objects::CronJobs(changed(db, "CronJob", ns, after.unwrap_or(-1))?)
        }
        Resource::CronJobs if !names.is_empty() => {
            Objects::CronJobs(db.list_named("CronJob", ns, names)?)
        }
        Resource::CronJobs => Objects::CronJobs(db.list("CronJob", ns)?),
        Resource::Events => {
            let mut events = db.events_since(after.unwrap_or(-1))?;
            events.retain(|e| ns.is_none_or(|ns| e.namespace == ns));
            Objects::Events(events)
        }
    })
}

/// Runs `wasmjob get`.
pub fn get(args: GetArgs, state: &StateDir) -> Outcome {
    let (res, names) = match resource_args(&args.args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Invalid;
        }
    };
    let selector = match args.selector.as_deref().map(Selector::parse).transpose() {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Invalid;
        }
    };
    if !names.is_empty() && !selector.is_empty() {
        eprintln!("error: name cannot be provided when a selector is specified");
        return Outcome::Invalid;
    }
    let ns = (!args.all_namespaces).then_some(args.namespace.as_str());
    let db = match state.read() {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
    };
    let now = Timestamp::now();
    let selected = |name: &str, labels: &std::collections::BTreeMap<String, String>| {
        (names.is_empty() || names.iter().any(|n| n == name)) && selector.matches(labels)
    };
    // All pods, the one kind that comes by the 100,000, are printed as they are read (named
    // objects are few, and found by name below); a JSONPath template must read the items
    // one by one for that.
    let template = match &args.output {
        Format::JsonPath(t) => Template::parse(t).ok(),
        _ => None,
    };
    let item_wise = template.as_ref().and_then(Template::item_wise);
    if let Some(db) = &db
        && res == Resource::Pods
        && names.is_empty()
        && !args.watch
        && (!matches!(args.output, Format::JsonPath(_)) || item_wise.is_some())
    {
        return list_pods(db, &args, ns, &selector, now, item_wise.as_ref());
    }
    let (mut objects, rv) = match &db {
        Some(db) => match db
            .revision()
            .and_then(|rv| Ok((load(db, res, ns, None, &names)?, rv)))
        {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::JobFailed;
            }
        },
        None => (load_none(res), 0),
    };
    objects.retain(selected);
    let present = objects.names();
    let mut outcome = Outcome::Success;
    for n in names.iter().filter(|n| !present.contains(&n.as_str())) {
        eprintln!(
            "Error from server (NotFound): {} {n:?} not found",
            res.plural()
        );
        outcome = Outcome::JobFailed;
    }
    // kubectl prints an empty List for -o json and -o yaml, and the message otherwise.
    let as_list = matches!(args.output, Format::Json | Format::Yaml);
    if objects.is_empty() && names.is_empty() && !args.watch && !as_list {
        no_resources(ns);
        return outcome;
    }
    if !objects.is_empty() || (as_list && names.is_empty() && !args.watch) {
        let mut listing = objects.listing();
        listing.namespaces = args.all_namespaces;
        match render(
            &listing,
            &args.output,
            now,
            names.len() == 1,
            &mut std::io::stdout().lock(),
        ) {
            Ok(()) | Err(RenderError::Io(_)) => {}
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::Invalid;
            }
        }
    }
    if args.watch {
        return watch(&args, state, res, ns, rv, &selected);
    }
    outcome
}

/// kubectl's word for an empty listing.
fn no_resources(ns: Option<&str>) {
    match ns {
        Some(ns) => eprintln!("No resources found in {ns} namespace."),
        None => eprintln!("No resources found"),
    }
}

/// `wasmjob get pods` (all of them, those `selector` selects) as a table, names, a JSON or
/// YAML `List`, or a JSONPath template that reads the items one by one (`item_wise`), built
/// as the pods are read: no more than the rows are kept (a Job's 100,000 pods took 1.4 s and
/// 510 MB for a table, 2.7 s and 475 MB for JSON, 2.5 s and 1.2 GB for JSONPath, when all
/// were loaded first).
fn list_pods(
    db: &StateDb,
    args: &GetArgs,
    ns: Option<&str>,
    selector: &Selector,
    now: Timestamp,
    item_wise: Option<&ItemWise<'_>>,
) -> Outcome {
    let pods = Pods {
        db,
        ns,
        selector,
        listed: std::cell::Cell::new(0),
    };
    if let Some(template) = item_wise {
        return pods_jsonpath(&pods, template, ns);
    }
    let structured = matches!(args.output, Format::Json | Format::Yaml);
    // A table waits for all its rows (the columns' widths depend on them).
    let text = match structured {
        true => String::new(),
        false => match pods.rows(args, now) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::JobFailed;
            }
        },
    };
    if !structured && pods.listed.get() == 0 {
        no_resources(ns);
        return Outcome::Success;
    }
    let printed = tracked(&mut std::io::stdout().lock(), |out| {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
        let text_error = |e: std::io::Error| e.to_string();
        match &args.output {
            Format::Json => {
                serde_json::to_writer_pretty(&mut w, &List(&pods)).map_err(|e| e.to_string())?;
                w.write_all(b"\n").map_err(text_error)?;
            }
            Format::Yaml => {
                serde_yaml_ng::to_writer(&mut w, &List(&pods)).map_err(|e| e.to_string())?
            }
            _ => w.write_all(text.as_bytes()).map_err(text_error)?,
        }
        w.flush().map_err(text_error)
    });
    match printed {
        // A closed stdout (e.g. `| head`) is not an error.
        Ok(()) | Err(RenderError::Io(_)) => Outcome::Success,
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::JobFailed
        }
    }
}

/// The pods through an item-wise JSONPath template, written as they are read; with no pods,
/// kubectl's "No resources found" instead.
fn pods_jsonpath(pods: &Pods<'_>, template: &ItemWise<'_>, ns: Option<&str>) -> Outcome {
    let mut db_error = None;
    let printed = tracked(&mut std::io::stdout().lock(), |out| {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
        let mut items = template.writer();
        let mut text = String::new();
        let mut failed = None;
        let mut closed = false;
        let read = pods.each(|pod| {
            if failed.is_some() || closed {
                return;
            }
            if pods.listed.get() == 1 {
                text.push_str(template.before());
            }
            match serde_json::to_value(pod) {
                Ok(item) => items.item(&item, &mut text),
                Err(e) => failed = Some(e.to_string()),
            }
            if text.len() >= 1 << 16 {
                // A write error (e.g. `| head`) is kept by `tracked`; nothing more is
                // rendered then.
                closed = w.write_all(text.as_bytes()).is_err();
                text.clear();
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if closed {
            return Ok(());
        }
        if let Err(e) = read {
            db_error = Some(e);
            return Ok(());
        }
        if pods.listed.get() > 0 {
            text.push_str(template.after());
        }
        w.write_all(text.as_bytes())
            .and_then(|()| w.flush())
            .map_err(|e| e.to_string())
    });
    if let Some(e) = db_error {
        eprintln!("error: {e}");
        return Outcome::JobFailed;
    }
    match printed {
        Ok(()) if pods.listed.get() == 0 => {
            no_resources(ns);
            Outcome::Success
        }
        Ok(()) | Err(RenderError::Io(_)) => Outcome::Success,
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::Invalid
        }
    }
}

/// The pods of a state directory that a selector selects, read one by one.
struct Pods<'a> {
    db: &'a StateDb,
    ns: Option<&'a str>,
    selector: &'a Selector,
    /// How many were printed.
    listed: std::cell::Cell<usize>,
}

impl Pods<'_> {
    /// Hands each selected pod to `f`.
    fn each(&self, mut f: impl FnMut(&Pod)) -> Result<(), StoreError> {
        self.db.for_each("Pod", self.ns, |pod: Pod| {
            if self.selector.matches(&pod.metadata.labels) {
                self.listed.set(self.listed.get() + 1);
                f(&pod);
            }
        })
    }

    /// The table (`-o wide` too) or the `pod/NAME` lines.
    fn rows(&self, args: &GetArgs, now: Timestamp) -> Result<String, StoreError> {
        let wide = args.output == Format::Wide;
        let mut rows = vec![pods_header(wide)];
        let mut namespaces = Vec::new();
        let mut names = String::new();
        self.each(|pod| {
            let name = pod.metadata.name.as_deref().unwrap_or("");
            if args.output == Format::Name {
                names.push_str(&format!("pod/{name}\n"));
                return;
            }
            namespaces.push(
                pod.metadata
                    .namespace
                    .as_deref()
                    .unwrap_or("default")
                    .to_string(),
            );
            rows.push(pod_row(pod, wide, now));
        })?;
        Ok(match args.output {
            Format::Name => names,
            _ => table(&with_namespaces(
                rows,
                args.all_namespaces.then_some(namespaces),
            )),
        })
    }
}

/// The pods as the `items` of a [`List`].
impl serde::Serialize for &Pods<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(None)?;
        let mut failed = None;
        let listed = self.each(|pod| {
            if failed.is_none()
                && let Err(e) = seq.serialize_element(pod)
            {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        listed.map_err(S::Error::custom)?;
        seq.end()
    }
}

fn load_none(res: Resource) -> Objects {
    match res {
        Resource::Pods => Objects::Pods(Vec::new()),
        Resource::Events => Objects::Events(Vec::new()),
        Resource::CronJobs => Objects::CronJobs(Vec::new()),
        Resource::Jobs => Objects::Jobs(Vec::new()),
    }
}

/// Prints objects again as they change. Stops when the run that was in progress ends, after
/// `--request-timeout`, or on Ctrl-C.
fn watch(
    args: &GetArgs,
    state: &StateDir,
    res: Resource,
    ns: Option<&str>,
    mut rv: i64,
    selected: &impl Fn(&str, &std::collections::BTreeMap<String, String>) -> bool,
) -> Outcome {
    let Ok(dir) = state.path() else {
        return Outcome::JobFailed;
    };
    let deadline = args
        .request_timeout
        .filter(|d| !d.is_zero())
        .map(|d| Instant::now() + d);
    let mut saw_host = HostLock::holder(&dir).is_some();
    let mut db = None;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let running = HostLock::holder(&dir).is_some();
        if db.is_none() {
            db = state.read().ok().flatten();
        }
        if let Some(db) = &db {
            let next = match db.revision() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Outcome::JobFailed;
                }
            };
            if next > rv {
                let mut changed = match load(db, res, ns, Some(rv), &[]) {
                    Ok(o) => o,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Outcome::JobFailed;
                    }
                };
                rv = next;
                changed.retain(selected);
                if !changed.is_empty() {
                    let mut listing = changed.listing();
                    listing.namespaces = args.all_namespaces;
                    print_changes(&listing, &args.output);
                }
            }
        }
        if running {
            saw_host = true;
        } else if saw_host {
            return Outcome::Success;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Outcome::Success;
        }
    }
}

/// Changed objects as `kubectl get -w` prints them: table rows without the header.
fn print_changes(listing: &Listing<'_>, format: &Format) {
    let now = Timestamp::now();
    match render_string(listing, format, now, false) {
        Ok(text) if matches!(format, Format::Table | Format::Wide) => {
            for line in text.lines().filter(|l| !is_header(l)) {
                println!("{line}");
            }
        }
        Ok(text) => print!("{text}"),
        Err(e) => eprintln!("error: {e}"),
    }
}

fn is_header(line: &str) -> bool {
    line.starts_with("NAME ") || line.starts_with("LAST SEEN ")
}
