//! `wasmjob queue push|ls|peek|len|purge`: the producer's side of the embedded work queues
//! (the docs fill their RabbitMQ/Redis queue by hand before running the Job). Safe while a
//! host runs: each command is one transaction on the state database.

use std::io::BufRead;
use std::path::PathBuf;

use super::Outcome;
use super::output::table;
use super::state::StateDir;
use crate::api::names::is_queue_name;
use crate::store::db::StateDb;

/// `wasmjob queue`.
#[derive(Debug, clap::Args)]
pub struct QueueArgs {
    /// A `redis://` broker instead of the embedded queues (push, len, purge); any other URL
    /// means the embedded queues, as in a manifest.
    #[arg(long, global = true, value_name = "URL")]
    broker: Option<String>,
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, clap::Subcommand)]
enum QueueCommand {
    /// Append items: the ITEMs given, or one per line of FILE (`-` for stdin).
    Push {
        /// The queue.
        queue: String,
        /// Items.
        items: Vec<String>,
        /// Read items from this file, one per line (`-`: standard input).
        #[arg(short = 'f', long = "from-file", value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// List the queues with their waiting and leased items.
    Ls,
    /// Show the first items of a queue, and which pod holds each leased one.
    Peek {
        /// The queue.
        queue: String,
        /// How many items.
        #[arg(short = 'n', long, default_value_t = 10)]
        limit: u64,
    },
    /// Print the number of items waiting.
    Len {
        /// The queue.
        queue: String,
    },
    /// Delete the items waiting (leased ones stay with their pods).
    Purge {
        /// The queue.
        queue: String,
    },
}

/// Runs `wasmjob queue ...`.
pub fn queue(args: QueueArgs, state: &StateDir) -> Outcome {
    let name = match &args.command {
        QueueCommand::Push { queue, .. }
        | QueueCommand::Peek { queue, .. }
        | QueueCommand::Len { queue }
        | QueueCommand::Purge { queue } => Some(queue.as_str()),
        QueueCommand::Ls => None,
    };
    if let Some(q) = name
        && !is_queue_name(q)
    {
        eprintln!(
            "error: {q:?} is not a queue name (letters, digits, '-', '_' and '.', at most 253)"
        );
        return Outcome::Invalid;
    }
    // Any other URL means the embedded queues, as in a manifest.
    if let Some(url) = args.broker.as_deref().filter(|u| crate::queue::is_redis(u)) {
        return match remote(url, args.command) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("error: {e}");
                Outcome::JobFailed
            }
        };
    }
    let db = match state.path().map(|dir| StateDb::open(&dir)) {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
    };
    match run(args.command, db) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::JobFailed
        }
    }
}

fn run(command: QueueCommand, mut db: StateDb) -> Result<Outcome, String> {
    let err = |e: crate::store::db::StoreError| e.to_string();
    match command {
        QueueCommand::Push { queue, items, file } => {
            let all = items_to_push(items, file)?;
            let n = db
                .queue_push(&queue, all.iter().map(|i| i.as_bytes()))
                .map_err(err)?;
            println!("queue/{queue}: {n} item(s) pushed");
        }
        QueueCommand::Ls => {
            let stats = db.queues().map_err(err)?;
            if stats.is_empty() {
                eprintln!("No queues found.");
                return Ok(Outcome::Success);
            }
            let mut rows = vec![vec!["NAME".into(), "READY".into(), "LEASED".into()]];
            rows.extend(
                stats
                    .into_iter()
                    .map(|s| vec![s.name, s.ready.to_string(), s.leased.to_string()]),
            );
            print!("{}", table(&rows));
        }
        QueueCommand::Peek { queue, limit } => {
            let items = db.queue_peek(&queue, limit).map_err(err)?;
            if items.is_empty() {
                eprintln!("queue/{queue} is empty");
                return Ok(Outcome::Success);
            }
            let mut rows = vec![vec![
                "ID".into(),
                "ITEM".into(),
                "STATUS".into(),
                "DELIVERIES".into(),
            ]];
            for i in items {
                let status = match &i.lease {
                    None => "Ready".to_string(),
                    // Leases are held per container run: `POD_UID/RUN`.
                    Some(holder) => match db
                        .name_of(holder.split('/').next().unwrap_or(holder))
                        .map_err(err)?
                    {
                        Some(pod) => format!("Leased to pod/{pod}"),
                        None => "Leased".to_string(),
                    },
                };
                let text = String::from_utf8_lossy(&i.body).replace(['\n', '\t'], " ");
                rows.push(vec![i.id.to_string(), text, status, i.attempts.to_string()]);
            }
            print!("{}", table(&rows));
        }
        QueueCommand::Len { queue } => {
            println!("{}", db.queue_len(&queue).map_err(err)?);
        }
        QueueCommand::Purge { queue } => {
            let n = db.queue_purge(&queue).map_err(err)?;
            println!("queue/{queue}: {n} item(s) purged");
        }
    }
    Ok(Outcome::Success)
}

/// `push`, `len` and `purge` on a Redis broker (`ls` and `peek`: use redis-cli).
fn remote(url: &str, command: QueueCommand) -> Result<Outcome, String> {
    let broker = crate::queue::redis::RedisBroker::connect(url).map_err(|e| e.to_string())?;
    match command {
        QueueCommand::Push { queue, items, file } => {
            let all = items_to_push(items, file)?;
            let bodies: Vec<Vec<u8>> = all.iter().map(|i| i.as_bytes().to_vec()).collect();
            broker
                .push_all(&queue, &bodies)
                .map_err(|e| e.to_string())?;
            println!("queue/{queue}: {} item(s) pushed", all.len());
        }
        QueueCommand::Len { queue } => {
            use crate::queue::Broker;
            println!("{}", broker.len(&queue).map_err(|e| e.to_string())?);
        }
        QueueCommand::Purge { queue } => {
            let n = broker.purge(&queue).map_err(|e| e.to_string())?;
            println!("queue/{queue}: {n} item(s) purged");
        }
        _ => return Err("with --broker redis://..., use redis-cli for ls and peek".into()),
    }
    Ok(Outcome::Success)
}

/// The items of a push: arguments, then the lines of FILE; none may be empty.
fn items_to_push(items: Vec<String>, file: Option<PathBuf>) -> Result<Vec<String>, String> {
    if items.iter().any(String::is_empty) {
        return Err("an item cannot be empty".into());
    }
    let mut all = items;
    if let Some(f) = file {
        all.extend(read_lines(&f)?);
    }
    if all.is_empty() {
        return Err("nothing to push: give ITEMs or --from-file FILE".into());
    }
    Ok(all)
}

/// Non-empty lines of `path` (`-`: standard input).
fn read_lines(path: &std::path::Path) -> Result<Vec<String>, String> {
    let lines: Vec<String> = if path == std::path::Path::new("-") {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("reading standard input: {e}"))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .lines()
            .map(str::to_string)
            .collect()
    };
    Ok(lines
        .into_iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}
