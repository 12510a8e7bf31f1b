//! `wasmjob logs`: a pod's stored output, as `kubectl logs` prints it: the current container
//! run, or `--previous`; `--tail`, `--prefix`, `-l` for several pods, `-f` to follow a run in
//! progress.

use std::io::Write;
use std::time::Duration;

use super::Outcome;
use super::state::StateDir;
use crate::api::types::{Job, Pod};
use crate::host::pods::{is_finished, runs};
use crate::store::db::{HostLock, StateDb, StoreError};
use crate::store::selector::Selector;

/// `wasmjob logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// `POD`, `pod/POD`, or `job/NAME` (the Job's first pod).
    #[arg(value_name = "POD", required_unless_present = "selector")]
    target: Option<String>,
    /// Print the logs of every pod this label selector matches.
    #[arg(short = 'l', long, conflicts_with = "target")]
    selector: Option<String>,
    /// The previous run of the container (before its last restart).
    #[arg(short, long)]
    previous: bool,
    /// Keep printing output as the running container writes it.
    #[arg(short, long)]
    follow: bool,
    /// Print only the last N lines [default: all; 10 with -l].
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    tail: Option<i64>,
    /// Prefix each line with `[pod/NAME/CONTAINER] `.
    #[arg(long)]
    prefix: bool,
    /// The container (a pod has one).
    #[arg(short, long)]
    container: Option<String>,
    /// The namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
}

/// One container run to print.
struct Source {
    pod: String,
    uid: String,
    container: String,
    run: i32,
    last_seq: i64,
    /// Whether the next byte printed starts a line (chunks split lines anywhere).
    line_start: bool,
}

/// Runs `wasmjob logs`.
pub fn logs(args: LogsArgs, state: &StateDir) -> Outcome {
    let db = match state.read() {
        Ok(Some(db)) => db,
        Ok(None) => {
            return not_found(&args);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
    };
    match print_logs(&db, &args, state) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::JobFailed
        }
    }
}

fn not_found(args: &LogsArgs) -> Outcome {
    match &args.target {
        Some(t) => {
            let (kind, name) = split_target(t);
            eprintln!("Error from server (NotFound): {kind} {name:?} not found");
        }
        None => eprintln!("No resources found in {} namespace.", args.namespace),
    }
    Outcome::JobFailed
}

fn split_target(t: &str) -> (&'static str, &str) {
    match t.split_once('/') {
        Some(("job" | "jobs" | "job.batch" | "jobs.batch", n)) => ("jobs.batch", n),
        Some((_, n)) => ("pods", n),
        None => ("pods", t),
    }
}

fn print_logs(db: &StateDb, args: &LogsArgs, state: &StateDir) -> Result<Outcome, StoreError> {
    let ns = args.namespace.as_str();
    let pods: Vec<Pod> = match (&args.target, &args.selector) {
        (Some(t), _) => {
            let (kind, name) = split_target(t);
            if kind == "jobs.batch" {
                let Some(job) = db.get::<Job>("Job", ns, name)? else {
                    return Ok(not_found(args));
                };
                // Only the first pod is read: a Job may have 100,000.
                let (count, first) = db.first_owned::<Pod>("Pod", job.uid())?;
                if let Some(pod) = first.as_ref().filter(|_| count > 1) {
                    eprintln!(
                        "Found {count} pods, using pod/{}",
                        pod.metadata.name.as_deref().unwrap_or("")
                    );
                }
                first.into_iter().collect()
            } else {
                match db.get::<Pod>("Pod", ns, name)? {
                    Some(p) => vec![p],
                    None => return Ok(not_found(args)),
                }
            }
        }
        (None, Some(sel)) => {
            let sel = match Selector::parse(sel) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(Outcome::Invalid);
                }
            };
            let pods: Vec<Pod> = db.list("Pod", Some(ns))?;
            pods.into_iter()
                .filter(|p| sel.matches(&p.metadata.labels))
                .collect()
        }
        (None, None) => Vec::new(),
    };
    if pods.is_empty() {
        eprintln!("No resources found in {ns} namespace.");
        return Ok(Outcome::Success);
    }
    let tail = args
        .tail
        .unwrap_or(if args.selector.is_some() { 10 } else { -1 });
    let mut sources = Vec::new();
    let mut outcome = Outcome::Success;
    for pod in &pods {
        match source(pod, args) {
            Ok(s) => sources.push(s),
            Err(msg) => {
                eprintln!("Error from server (BadRequest): {msg}");
                outcome = Outcome::JobFailed;
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    for s in &mut sources {
        let chunks = db.log_chunks(&s.uid, s.run, -1)?;
        if let Some((seq, _)) = chunks.last() {
            s.last_seq = *seq;
        }
        let data: Vec<u8> = chunks.into_iter().flat_map(|(_, d)| d).collect();
        write_lines(&mut stdout, &tail_lines(&data, tail), s, args.prefix);
    }
    let _ = stdout.flush();
    drop(stdout);
    if args.follow {
        follow(db, &mut sources, args, state)?;
    }
    Ok(outcome)
}

/// Which run of the pod's container to print, or why there is none.
fn source(pod: &Pod, args: &LogsArgs) -> Result<Source, String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = match &args.container {
        Some(c) => pod
            .status
            .container_statuses
            .iter()
            .find(|s| *s.name == **c)
            .ok_or_else(|| format!("container {c} is not valid for pod {name}"))?,
        None => pod
            .status
            .container_statuses
            .first()
            .ok_or_else(|| format!("pod {name} has no container"))?,
    };
    // Runs are numbered from 0; the current one is the last that began.
    let current = runs(status) - 1;
    let run = if args.previous { current - 1 } else { current };
    if run < 0 {
        return Err(if args.previous {
            format!(
                "previous terminated container {:?} in pod {name:?} not found",
                status.name
            )
        } else {
            let reason = status
                .state
                .waiting
                .as_ref()
                .map_or("ContainerCreating", |w| &*w.reason);
            format!(
                "container {:?} in pod {name:?} is waiting to start: {reason}",
                status.name
            )
        });
    }
    Ok(Source {
        pod: name,
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        container: status.name.to_string(),
        run,
        last_seq: -1,
        line_start: true,
    })
}

/// The last `n` lines of `data` (all if `n < 0`).
fn tail_lines(data: &[u8], n: i64) -> Vec<u8> {
    let Ok(n) = usize::try_from(n) else {
        return data.to_vec();
    };
    if n == 0 {
        return Vec::new();
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                return data[i + 1..].to_vec();
            }
        }
    }
    data.to_vec()
}

/// Writes `data`, prefixing each line with `[pod/NAME/CONTAINER] ` if `prefix`.
fn write_lines(out: &mut impl Write, data: &[u8], s: &mut Source, prefix: bool) {
    // A closed stdout (e.g. `| head`) ends the output quietly.
    if !prefix {
        let _ = out.write_all(data);
        return;
    }
    for piece in data.split_inclusive(|&b| b == b'\n') {
        if s.line_start {
            let _ = write!(out, "[pod/{}/{}] ", s.pod, s.container);
        }
        let _ = out.write_all(piece);
        s.line_start = piece.ends_with(b"\n");
    }
}

/// Prints new output until every followed run has ended (its pod finished or restarted) or
/// no host is running any more.
fn follow(
    db: &StateDb,
    sources: &mut Vec<Source>,
    args: &LogsArgs,
    state: &StateDir,
) -> Result<(), StoreError> {
    let dir = state.path().unwrap_or_default();
    while !sources.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
        let host_running = HostLock::holder(&dir).is_some();
        let mut ended = Vec::new();
        for (i, s) in sources.iter_mut().enumerate() {
            // Read the pod first: output saved before it finished is then read below.
            let pod: Option<Pod> = db.get("Pod", &args.namespace, &s.pod)?;
            let done = match &pod {
                None => true,
                Some(p) => {
                    is_finished(p)
                        || p.status
                            .container_statuses
                            .first()
                            .is_some_and(|c| c.restart_count > s.run)
                }
            };
            let chunks = db.log_chunks(&s.uid, s.run, s.last_seq)?;
            let mut stdout = std::io::stdout().lock();
            for (seq, data) in chunks {
                s.last_seq = seq;
                write_lines(&mut stdout, &data, s, args.prefix);
            }
            let _ = stdout.flush();
            if done || !host_running {
                ended.push(i);
            }
        }
        for i in ended.into_iter().rev() {
            sources.remove(i);
        }
    }
    Ok(())
}
