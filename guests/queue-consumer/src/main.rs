//! `queue-consumer`: the worker of the Kubernetes docs' work-queue Jobs. It pops an item from
//! the queue named by `QUEUE` (one item, as job-wq-1's workers do, or `--until-empty` as
//! job-wq-2's), prints `Working on ITEM`, "processes" it (`--sleep MS`), acknowledges it and
//! prints `Done ITEM`.
//!
//! For tests of redelivery: `--fail-once-on ITEM --marks DIR` makes the first pod that gets ITEM
//! fail (exit 1) before acknowledging it, leaving a mark in DIR (a shared volume) so that
//! the retry succeeds; `--record DIR` appends a line to `DIR/ITEM` for each processing, just
//! before the acknowledgement (so a crash can only make it count twice, never lose it).
//!
//! Exit codes: 0 done (or nothing to do), 1 a deliberate failure, 2 a bad command line,
//! 3 a queue error (e.g. the queue is not granted).

use std::path::PathBuf;
use std::process::exit;
use std::time::Duration;

use wasmjob_queue::Queue;

#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    until_empty: bool,
    sleep_ms: u64,
    fail_once_on: Vec<String>,
    marks: Option<PathBuf>,
    record: Option<PathBuf>,
    queue: Option<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--until-empty" => o.until_empty = true,
            "--sleep" => {
                let v = value("--sleep")?;
                o.sleep_ms = v
                    .parse()
                    .map_err(|_| format!("--sleep {v:?}: not a number of milliseconds"))?;
            }
            "--fail-once-on" => o.fail_once_on.push(value("--fail-once-on")?),
            "--marks" => o.marks = Some(PathBuf::from(value("--marks")?)),
            "--record" => o.record = Some(PathBuf::from(value("--record")?)),
            "--queue" => o.queue = Some(value("--queue")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !o.fail_once_on.is_empty() && o.marks.is_none() {
        return Err("--fail-once-on needs --marks DIR (a volume the pods share)".into());
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("queue-consumer: {e}");
            exit(2);
        }
    };
    let queue = match &options.queue {
        Some(name) => Ok(Queue::new(name.clone())),
        None => Queue::from_env(),
    };
    let code = match queue.and_then(|q| work(&q, &options)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("queue-consumer: {e}");
            3
        }
    };
    exit(code);
}

/// Processes items; returns the exit code.
fn work(queue: &Queue, o: &Options) -> Result<i32, wasmjob_queue::Error> {
    loop {
        let Some(item) = queue.pop()? else {
            if o.until_empty {
                println!("Queue empty, exiting");
            } else {
                println!("Queue {} is empty, nothing to do", queue.name());
            }
            return Ok(0);
        };
        let text = item.text().into_owned();
        println!("Working on {text}");
        if o.sleep_ms > 0 {
            std::thread::sleep(Duration::from_millis(o.sleep_ms));
        }
        if o.fail_once_on.contains(&text) && first_failure(o, &text) {
            eprintln!("Failing on {text} (once)");
            return Ok(1);
        }
        if let Some(dir) = &o.record {
            record(dir, &text);
        }
        item.ack()?;
        println!("Done {text}");
        if !o.until_empty {
            return Ok(0);
        }
    }
}

/// Appends a line to `dir/ITEM`; a failure to record is reported, not fatal.
fn record(dir: &std::path::Path, item: &str) {
    use std::io::Write;
    let path = dir.join(item.replace('/', "_"));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(b"processed\n"));
    if let Err(e) = written {
        eprintln!("queue-consumer: recording {}: {e}", path.display());
    }
}

/// Whether this is the first failure on `item`: leaves a mark so the next attempt succeeds.
fn first_failure(o: &Options, item: &str) -> bool {
    let Some(dir) = &o.marks else { return false };
    let mark = dir.join(format!("failed-{}", item.replace('/', "_")));
    // create_new: exactly one attempt ever sees the mark missing.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(mark)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmjob_queue::mock;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn parses_the_documented_options() {
        let o = parse(&args(&["--until-empty", "--sleep", "5", "--queue", "job2"])).unwrap();
        assert!(o.until_empty);
        assert_eq!((o.sleep_ms, o.queue.as_deref()), (5, Some("job2")));
        assert!(parse(&args(&["--fail-once-on", "x"])).is_err());
        assert!(parse(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn one_item_per_run_or_until_empty() {
        mock::reset();
        mock::seed("q", &["apple", "banana", "cherry"]);
        let q = Queue::new("q");
        let one = Options::default();
        assert_eq!(work(&q, &one), Ok(0));
        assert_eq!(q.len(), Ok(2));
        let all = Options {
            until_empty: true,
            ..Options::default()
        };
        assert_eq!(work(&q, &all), Ok(0));
        assert_eq!(q.len(), Ok(0));
        assert!(mock::leased().is_empty(), "every item acknowledged");
    }

    #[test]
    fn fails_once_on_the_chosen_item_leaving_it_leased() {
        mock::reset();
        mock::seed("q", &["apple"]);
        let dir = std::env::temp_dir().join(format!("qc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("failed-apple"));
        let o = Options {
            fail_once_on: vec!["apple".into()],
            marks: Some(dir.clone()),
            ..Options::default()
        };
        assert_eq!(work(&Queue::new("q"), &o), Ok(1));
        assert_eq!(
            mock::leased(),
            ["apple"],
            "not acknowledged: the host will requeue it"
        );
        assert!(
            !first_failure(&o, "apple"),
            "the second attempt goes through"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
