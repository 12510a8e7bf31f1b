//! `wasmjob run` and `wasmjob resume`: read, validate and compile every manifest (or the
//! recorded unfinished Jobs), reconcile them with what the state directory already holds,
//! then run them with a live view and print their final state.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::output::{Format, Listing, RenderError, render};
use super::state::StateDir;
use super::{Outcome, ResumeArgs, RunArgs, RunOptions};
use crate::api::cronjob::CronJob;
use crate::api::manifest::{CronJobManifest, JobManifest, load_expanded};
use crate::api::types::{COMPLETE, FAILED, Job, JobSpec, ObjectMeta, Pod};
use crate::clock::{Clock, TokioClock};
use crate::controller::backoff::BackoffPolicy;
use crate::host::{Change, CronSubmission, Host, HostConfig, Rejected, Submission};
use crate::logs::LogStream;
use crate::queue::{Broker, EmbeddedBroker};
use crate::runtime::wasm::{WasmOptions, WasmRuntime};
use crate::store::db::{Batch, HostLock, JobSource, StateDb};

/// Runs `wasmjob run` and returns how it ended.
pub fn run(args: RunArgs, state: &StateDir) -> Outcome {
    let loaded = match load_expanded(&args.paths, args.expand.as_ref()) {
        Ok(m) => m,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Outcome::Invalid;
        }
    };
    if loaded.jobs.is_empty() && loaded.cronjobs.is_empty() {
        let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!("error: no Jobs or CronJobs found in {}", paths.join(", "));
        return Outcome::Invalid;
    }
    block_on(async {
        if args.dry_run {
            let demand = pool_demand(&loaded.jobs, &loaded.cronjobs);
            let host = match new_host(&args.options, None, demand) {
                Ok(h) => h,
                Err(o) => return o,
            };
            return match (
                host.prepare(loaded.jobs),
                host.prepare_cronjobs(loaded.cronjobs),
            ) {
                (Ok(_), Ok(_)) => Outcome::Success,
                (Err(mut a), b) => {
                    a.extend(b.err().unwrap_or_default());
                    report_rejected(a)
                }
                (Ok(_), Err(b)) => report_rejected(b),
            };
        }
        // --ephemeral keeps nothing: without work queues, CronJobs or TTLs (which keep their
        // state in a database) the host needs none; with them it keeps one in a directory
        // removed at the end.
        if args.ephemeral && !needs_state(&loaded) {
            let demand = pool_demand(&loaded.jobs, &loaded.cronjobs);
            let mut host = match new_host(&args.options, None, demand) {
                Ok(h) => h,
                Err(o) => return o,
            };
            let submissions = match host.prepare(loaded.jobs) {
                Ok(s) => s,
                Err(rejected) => return report_rejected(rejected),
            };
            host.submit(submissions);
            if !args.options.quiet {
                announce_created(&host);
            }
            return drive(host, &args.options).await;
        }
        let tmp = match args.ephemeral.then(tempfile::tempdir).transpose() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: creating a temporary state directory: {e}");
                return Outcome::JobFailed;
            }
        };
        let dir = match &tmp {
            Some(t) => Ok(t.path().to_path_buf()),
            None => state.path(),
        };
        let opened = match dir {
            Ok(dir) => open_state(&dir),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::JobFailed;
            }
        };
        let Ok(Opened {
            lock,
            mut db,
            broker,
        }) = opened
        else {
            return Outcome::JobFailed;
        };
        if tmp.is_some()
            && let Err(e) = db.set_ephemeral()
        {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
        let demand = pool_demand(&loaded.jobs, &loaded.cronjobs);
        let mut host = match new_host(&args.options, Some(broker), demand) {
            Ok(h) => h,
            Err(o) => return o,
        };
        let submissions = match host.prepare(loaded.jobs.clone()) {
            Ok(s) => s,
            Err(rejected) => return report_rejected(rejected),
        };
        let cron_submissions = match host.prepare_cronjobs(loaded.cronjobs.clone()) {
            Ok(s) => s,
            Err(rejected) => return report_rejected(rejected),
        };
        let cron_plan = match reconcile_cronjobs(&db, cron_submissions, args.replace) {
            Ok(p) => p,
            Err(o) => return o,
        };
        for uid in &cron_plan.replace {
            if let Err(e) = db.delete_cronjob(uid, None) {
                eprintln!("error: {e}");
                return Outcome::JobFailed;
            }
        }
        let plan = match reconcile_with_state(&db, submissions, args.replace) {
            Ok(p) => p,
            Err(o) => return o,
        };
        for uid in &plan.replace {
            if let Err(e) = db.delete_job(uid, false, None) {
                eprintln!("error: {e}");
                return Outcome::JobFailed;
            }
        }
        let live = !args.options.quiet;
        if let Err(e) = seed_queues(&mut db, &loaded, args.replace, live) {
            eprintln!("error: {e}");
            return Outcome::JobFailed;
        }
        host = host.with_state(db);
        for (sub, stored, pods) in plan.adopt {
            if live {
                let name = stored.name().to_string();
                if let Some(c) = stored.status.finished() {
                    eprintln!(
                        "job.batch/{name} unchanged: it already finished ({}); use --replace to run it again",
                        c.type_
                    );
                } else {
                    eprintln!("{}", resumed_note(&name, &pods));
                }
            }
            host.adopt(sub, stored, pods);
        }
        host.submit(plan.new);
        for (sub, stored, jobs) in cron_plan.adopt {
            if live {
                eprintln!("cronjob.batch/{} resumed", stored.name());
            }
            host.adopt_cronjob(sub, stored, jobs);
        }
        if live {
            for cj in &cron_plan.new {
                eprintln!("cronjob.batch/{} created", cj.cronjob().name());
            }
        }
        host.submit_cronjobs(cron_plan.new);
        if live {
            announce_created(&host);
        }
        let outcome = drive(host, &args.options).await;
        drop(lock);
        outcome
    })
}

/// Says which of the host's Jobs are new (not started before).
fn announce_created(host: &Host) {
    for job in &host.store().jobs {
        if job.status.start_time.is_none() {
            eprintln!("job.batch/{} created", job.name());
        }
    }
}

/// Whether a run needs a state database beside what it must record: for work queues (the
/// embedded broker and the leases settled with each pod), CronJobs (their Jobs' history) and
/// `ttlSecondsAfterFinished` (found expired in it). A feature that comes to need the database
/// must be added here, or `--ephemeral` runs would go without it.
fn needs_state(loaded: &crate::api::manifest::Manifests) -> bool {
    !loaded.cronjobs.is_empty()
        || !loaded.seeds.is_empty()
        || loaded.jobs.iter().any(|m| {
            m.job.spec.ttl_seconds_after_finished.is_some()
                || !matches!(crate::queue::requested(&m.job), Ok(None))
        })
}

/// Pushes what the manifests' queue seeds have not pushed before, to the broker of the Jobs
/// that use each queue (Redis or the embedded queue). `--replace` empties the queue first.
fn seed_queues(
    db: &mut StateDb,
    loaded: &crate::api::manifest::Manifests,
    replace: bool,
    live: bool,
) -> Result<(), String> {
    let err = |e: crate::store::db::StoreError| e.to_string();
    for seed in &loaded.seeds {
        let redis_url = loaded.jobs.iter().find_map(|m| {
            let req = crate::queue::requested(&m.job).ok().flatten()?;
            (crate::queue::is_redis(&req.url) && req.queues.contains(&seed.queue))
                .then_some(req.url)
        });
        let redis = redis_url
            .map(|url| crate::queue::redis::RedisBroker::connect(&url))
            .transpose()
            .map_err(|e| e.to_string())?;
        let items: Vec<Vec<u8>> = seed.items.iter().map(|i| i.as_bytes().to_vec()).collect();
        if replace {
            db.forget_seed(&seed.source).map_err(err)?;
            match &redis {
                Some(r) => {
                    r.purge(&seed.queue).map_err(|e| e.to_string())?;
                }
                None => {
                    db.queue_purge(&seed.queue).map_err(err)?;
                }
            }
        }
        let delta = db.seed_delta(&seed.source, &items).map_err(err)?;
        if delta.is_empty() {
            continue;
        }
        match &redis {
            // Pushed first: a crash before the record pushes again (never loses an item).
            Some(r) => {
                r.push_all(&seed.queue, &delta).map_err(|e| e.to_string())?;
                db.record_seed(&seed.source, &seed.hash, &items, None, &[])
                    .map_err(err)?;
            }
            None => db
                .record_seed(&seed.source, &seed.hash, &items, Some(&seed.queue), &delta)
                .map_err(err)?,
        }
        if live {
            eprintln!(
                "queue/{} seeded with {} items from configmap/{}",
                seed.queue,
                delta.len(),
                seed.source
            );
        }
    }
    Ok(())
}

/// Runs `wasmjob resume`: continues every unfinished Job recorded in the state directory.
pub fn resume(args: ResumeArgs, state: &StateDir) -> Outcome {
    block_on(async {
        let opened = match state.path() {
            Ok(dir) => open_state(&dir),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::JobFailed;
            }
        };
        let Ok(Opened { lock, db, broker }) = opened else {
            return Outcome::JobFailed;
        };
        let recorded = match db.recorded_unfinished() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::JobFailed;
            }
        };
        // A CronJob's Jobs resume with it.
        let recorded: Vec<_> = recorded
            .into_iter()
            .filter(|r| {
                !r.job
                    .metadata
                    .owner_references
                    .iter()
                    .any(|o| o.kind == "CronJob")
            })
            .collect();
        let cronjobs: Vec<CronJob> = match db.list("CronJob", None) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::JobFailed;
            }
        };
        if recorded.is_empty() && cronjobs.is_empty() {
            eprintln!("nothing to resume: every recorded Job has finished");
            return Outcome::Success;
        }
        let demand = pool_demand_of(
            recorded.iter().map(|r| &r.job.spec),
            cronjobs.iter().map(|c| &c.spec.job_template.spec),
        );
        let mut host = match new_host(&args.options, Some(broker), demand) {
            Ok(h) => h,
            Err(o) => return o,
        };
        let mut adopt_crons = Vec::new();
        for cj in cronjobs {
            let loaded = db.job_source(cj.uid()).and_then(|src| {
                let mut jobs = Vec::new();
                for job in db.owned::<Job>("Job", cj.uid())? {
                    let pods: Vec<Pod> = db.owned("Pod", job.uid())?;
                    jobs.push((job, pods));
                }
                Ok((src, jobs))
            });
            let (source, jobs) = match loaded {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Outcome::JobFailed;
                }
            };
            let Some(source) = source else {
                eprintln!(
                    "error: cronjob.batch/{} has no recorded manifest; delete it or run its manifest again",
                    cj.name()
                );
                return Outcome::JobFailed;
            };
            let manifest = crate::api::manifest::CronJobManifest {
                cronjob: cj.clone(),
                source: source.source,
                base_dir: source.base_dir,
            };
            match host.prepare_cronjobs(vec![manifest]) {
                Ok(subs) => {
                    adopt_crons.extend(subs.into_iter().map(|s| (s, cj.clone(), jobs.clone())))
                }
                Err(rejected) => return report_rejected(rejected),
            }
        }
        let mut adopt = Vec::new();
        for r in recorded {
            let Some(source) = r.source else {
                eprintln!(
                    "error: job.batch/{} has no recorded manifest; delete it or run its manifest again",
                    r.job.name()
                );
                return Outcome::JobFailed;
            };
            let manifest = JobManifest {
                job: r.job.clone(),
                source: source.source,
                base_dir: source.base_dir,
            };
            match host.prepare(vec![manifest]) {
                Ok(subs) => {
                    adopt.extend(subs.into_iter().map(|s| (s, r.job.clone(), r.pods.clone())))
                }
                Err(rejected) => return report_rejected(rejected),
            }
        }
        host = host.with_state(db);
        for (sub, job, pods) in adopt {
            if !args.options.quiet {
                eprintln!("{}", resumed_note(job.name(), &pods));
            }
            host.adopt(sub, job, pods);
        }
        for (sub, cj, jobs) in adopt_crons {
            if !args.options.quiet {
                eprintln!("cronjob.batch/{} resumed", cj.name());
            }
            host.adopt_cronjob(sub, cj, jobs);
        }
        let outcome = drive(host, &args.options).await;
        drop(lock);
        outcome
    })
}

fn block_on(f: impl Future<Output = Outcome>) -> Outcome {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            Outcome::JobFailed
        }
    }
}

/// What the live view says of a resumed Job.
fn resumed_note(name: &str, pods: &[Pod]) -> String {
    let lost = pods
        .iter()
        .filter(|p| !crate::host::pods::is_finished(p))
        .count();
    if lost == 0 {
        format!("job.batch/{name} resumed")
    } else {
        format!(
            "job.batch/{name} resumed: {lost} interrupted pod(s) marked Failed (NodeLost); \
             they count toward backoffLimit, and new pods wait out the back-off"
        )
    }
}

/// The compiled-module cache: `--cache-dir` (or `WASMJOB_CACHE_DIR`), else the user's cache
/// directory; none with `--no-cache` or where no such directory is known.
fn cache_dir(o: &RunOptions) -> Option<PathBuf> {
    if o.no_cache {
        return None;
    }
    let user = || {
        let xdg = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("wasmjob"))
    };
    o.cache_dir.clone().or_else(user)
}

/// The fewest instance slots reserved when `--pool` is not given: reserving a slot costs
/// about 10 µs at start (its stack's guard page), so a small run stays quick to start while
/// room is left for `wasmjob patch` to raise parallelism.
const MIN_AUTO_POOL: u32 = 256;

/// Instance slots for these manifests: what their parallelism can run at once.
fn pool_demand(jobs: &[JobManifest], cronjobs: &[CronJobManifest]) -> u32 {
    pool_demand_of(
        jobs.iter().map(|m| &m.job.spec),
        cronjobs.iter().map(|m| &m.cronjob.spec.job_template.spec),
    )
}

/// Pods at once: each Job's parallelism (no more than its completions); each CronJob's
/// Job twice over, since a schedule may start one before the last has finished.
fn pool_demand_of<'a>(
    jobs: impl Iterator<Item = &'a JobSpec>,
    cron_jobs: impl Iterator<Item = &'a JobSpec>,
) -> u32 {
    let at_once = |s: &JobSpec| {
        let p = s.parallelism.unwrap_or(1).max(0);
        u64::try_from(s.completions.map_or(p, |c| p.min(c.max(0)))).unwrap_or(0)
    };
    let n = jobs.map(at_once).sum::<u64>() + 2 * cron_jobs.map(at_once).sum::<u64>();
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn new_host(o: &RunOptions, broker: Option<Arc<dyn Broker>>, demand: u32) -> Result<Host, Outcome> {
    let pool = o
        .pool
        .unwrap_or_else(|| demand.clamp(MIN_AUTO_POOL, crate::runtime::wasm::DEFAULT_POOL));
    let wasm = WasmRuntime::new(WasmOptions {
        default_memory_limit: o.memory_limit,
        pool,
        cache_dir: cache_dir(o),
    })
    .map_err(|e| {
        eprintln!("error: {e}");
        Outcome::JobFailed
    })?;
    let log_stream = streams_logs(o).then(|| {
        let out: Box<dyn Write + Send> = if o.output.structured() {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        LogStream::new(out)
    });
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
    let config = HostConfig {
        backoff: BackoffPolicy {
            base: o.backoff_base,
            max: o.backoff_max,
        },
        log_limit: usize::try_from(o.log_limit).unwrap_or(usize::MAX),
        log_stream,
        broker,
        schedules_limit: o.schedules,
        // The live view is the only watcher.
        watch: !o.quiet,
    };
    Ok(Host::new(Arc::new(wasm), clock, config))
}

fn streams_logs(o: &RunOptions) -> bool {
    o.logs || (!o.no_logs && !o.output.structured())
}

fn report_rejected(rejected: Vec<Rejected>) -> Outcome {
    for r in rejected {
        let msg = match r.errors.as_slice() {
            [one] => one.to_string(),
            many => many.iter().map(|e| format!("\n* {e}")).collect(),
        };
        eprintln!(
            "error: {}: The Job {:?} is invalid: {msg}",
            r.source, r.name
        );
    }
    Outcome::Invalid
}

/// A state directory taken over by this host.
struct Opened {
    lock: HostLock,
    db: StateDb,
    broker: Arc<dyn Broker>,
}

/// Takes the directory's lock and opens it; what the host before this one left running is
/// lost with it: requests to it are dropped, its orphaned pods fail, queue leases return,
/// and Jobs past their TTL are collected. Errors are reported here.
fn open_state(dir: &std::path::Path) -> Result<Opened, ()> {
    let fail = |e: String| eprintln!("error: {e}");
    let lock = HostLock::acquire(dir).map_err(|e| fail(e.to_string()))?;
    let mut db = StateDb::open(dir).map_err(|e| fail(e.to_string()))?;
    let now = jiff::Timestamp::now();
    let mut orphans = db.unfinished_orphans().map_err(|e| fail(e.to_string()))?;
    orphans
        .iter_mut()
        .for_each(|p| crate::host::pods::lost(p, now, None));
    let batch = Batch {
        pods: orphans.iter().collect(),
        ..Batch::default()
    };
    db.commit(&batch)
        .and_then(|()| db.clear_requests())
        .and_then(|()| db.release_all_leases().map(|_| ()))
        .and_then(|()| db.collect_expired(now).map(|_| ()))
        .map_err(|e| fail(e.to_string()))?;
    // Lease settlements a Redis broker still owes from the host before (one connection
    // attempt per broker).
    let mut brokers: std::collections::HashMap<String, Result<Arc<dyn Broker>, String>> =
        std::collections::HashMap::new();
    for p in db.pending_settles().map_err(|e| fail(e.to_string()))? {
        let broker = brokers
            .entry(p.url.clone())
            .or_insert_with(|| crate::queue::connect_redis(&p.url).map_err(|e| e.to_string()));
        let done = match broker {
            Ok(b) => b
                .settle(&p.holder, &p.queues, p.success)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        match done {
            Ok(()) => {
                let batch = Batch {
                    settled: vec![p.holder],
                    ..Batch::default()
                };
                db.commit(&batch).map_err(|e| fail(e.to_string()))?;
            }
            Err(e) => eprintln!(
                "warning: settling the queue leases of pod uid {} on {}: {e} (retried at the next start)",
                p.holder, p.url
            ),
        }
    }
    let broker = EmbeddedBroker::open(dir).map_err(|e| fail(e.to_string()))?;
    Ok(Opened {
        lock,
        db,
        broker: Arc::new(broker),
    })
}

/// How a manifest's object stands against what the state directory records.
enum Standing<T> {
    /// Not recorded: create it.
    New,
    /// Recorded, to be deleted first (`--replace`): its uid.
    Replace(String),
    /// Recorded from the same manifest: take it over.
    Same(T),
    /// Recorded with another spec: refused.
    Changed(T),
}

/// Looks up `kind` `name` in `ns` and compares its recorded manifest hash with `hash`.
fn standing<T: serde::de::DeserializeOwned>(
    db: &StateDb,
    kind: &str,
    ns: &str,
    name: &str,
    hash: &str,
    replace: bool,
    uid: impl Fn(&T) -> &str,
) -> Result<Standing<T>, Outcome> {
    let fail = |e: crate::store::db::StoreError| {
        eprintln!("error: {e}");
        Outcome::JobFailed
    };
    let Some(stored) = db.get::<T>(kind, ns, name).map_err(fail)? else {
        return Ok(Standing::New);
    };
    if replace {
        return Ok(Standing::Replace(uid(&stored).to_string()));
    }
    let same = db
        .job_source(uid(&stored))
        .map_err(fail)?
        .is_some_and(|s| s.spec_hash == hash);
    Ok(if same {
        Standing::Same(stored)
    } else {
        Standing::Changed(stored)
    })
}

/// Reports refused manifests; `Err(Invalid)` if there were any.
fn refuse(conflicts: Vec<String>) -> Result<(), Outcome> {
    if conflicts.is_empty() {
        return Ok(());
    }
    for c in conflicts {
        eprintln!("error: {c}");
    }
    Err(Outcome::Invalid)
}

/// A recorded Job with its pods.
type JobWithPods = (Job, Vec<Pod>);

/// What a run does with each of its manifests of one kind, given what the state directory
/// holds: `S` is a submission, `A` one to take over with what is recorded of it.
struct Plan<S, A> {
    new: Vec<S>,
    adopt: Vec<A>,
    /// Uids of recorded objects to delete first (`--replace`).
    replace: Vec<String>,
}

/// What a run does with each of its CronJobs.
type CronPlan = Plan<CronSubmission, (CronSubmission, CronJob, Vec<JobWithPods>)>;
/// What a run does with each of its Jobs.
type StatePlan = Plan<Submission, (Submission, Job, Vec<Pod>)>;

/// Sorts `submissions` against the state directory: new ones are created; a recorded one of
/// the same manifest is taken over (`adopt` reads what else it needs); a recorded one with a
/// different spec is a conflict (`conflict` says it) unless `replace`. Every conflict is
/// reported before anything starts. `object` gives a submission's kind (as the state
/// directory records it), metadata and source (with its manifest hash).
fn plan_against_state<S, T, A>(
    db: &StateDb,
    submissions: Vec<S>,
    replace: bool,
    object: impl Fn(&S) -> (&'static str, &ObjectMeta, &JobSource),
    uid: impl Fn(&T) -> &str,
    conflict: impl Fn(&S, &T) -> String,
    mut adopt: impl FnMut(S, T) -> Result<A, crate::store::db::StoreError>,
) -> Result<Plan<S, A>, Outcome>
where
    T: serde::de::DeserializeOwned,
{
    let mut plan = Plan {
        new: Vec::new(),
        adopt: Vec::new(),
        replace: Vec::new(),
    };
    let mut conflicts = Vec::new();
    for sub in submissions {
        let (kind, meta, source) = object(&sub);
        let ns = meta.namespace.as_deref().unwrap_or("default");
        let name = meta.name.as_deref().unwrap_or_default();
        match standing::<T>(db, kind, ns, name, &source.spec_hash, replace, &uid)? {
            Standing::New => plan.new.push(sub),
            Standing::Replace(uid) => {
                plan.replace.push(uid);
                plan.new.push(sub);
            }
            Standing::Changed(stored) => conflicts.push(conflict(&sub, &stored)),
            Standing::Same(stored) => plan.adopt.push(adopt(sub, stored).map_err(|e| {
                eprintln!("error: {e}");
                Outcome::JobFailed
            })?),
        }
    }
    refuse(conflicts)?;
    Ok(plan)
}

/// As [`reconcile_with_state`], for CronJobs: a recorded one of the same manifest goes on
/// from its last schedule (with its Jobs).
fn reconcile_cronjobs(
    db: &StateDb,
    submissions: Vec<CronSubmission>,
    replace: bool,
) -> Result<CronPlan, Outcome> {
    plan_against_state(
        db,
        submissions,
        replace,
        |sub| ("CronJob", &sub.cronjob().metadata, sub.source()),
        |c: &CronJob| c.uid(),
        |sub, stored| {
            format!(
                "{}: cronjob.batch {:?} already exists with a different spec; use --replace to \
                 delete it (and its Jobs) and run this one",
                sub.source().source,
                stored.name()
            )
        },
        |sub, stored| {
            let mut jobs = Vec::new();
            for job in db.owned::<Job>("Job", stored.uid())? {
                let pods: Vec<Pod> = db.owned("Pod", job.uid())?;
                jobs.push((job, pods));
            }
            Ok((sub, stored, jobs))
        },
    )
}

/// New Jobs are created; an unfinished recorded Job of the same manifest is resumed; a
/// finished one is shown as it ended (as `kubectl apply` leaves an unchanged object alone);
/// a recorded Job with a different spec is an error unless `--replace`. Every conflict is
/// reported before anything starts.
fn reconcile_with_state(
    db: &StateDb,
    submissions: Vec<Submission>,
    replace: bool,
) -> Result<StatePlan, Outcome> {
    plan_against_state(
        db,
        submissions,
        replace,
        |sub| ("Job", &sub.job().metadata, sub.source()),
        |j: &Job| j.uid(),
        |sub, stored| {
            format!(
                "{}: job.batch {:?} already exists with a different spec; use --replace to \
                 delete it and run this one, or `wasmjob delete job {}`",
                sub.source().source,
                stored.name(),
                stored.name()
            )
        },
        |sub, stored| {
            let pods: Vec<Pod> = db.owned("Pod", stored.uid())?;
            Ok((sub, stored, pods))
        },
    )
}

/// Runs the host with the live view, then prints the final state.
async fn drive(host: Host, o: &RunOptions) -> Outcome {
    let live = !o.quiet;
    let started = Instant::now();
    let run_for = o.run_for;
    let shutdown = async move {
        let time_up = async {
            match run_for {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                if signal.is_ok() {
                    eprintln!("interrupted: terminating running pods");
                } else {
                    std::future::pending::<()>().await;
                }
            }
            () = time_up => eprintln!("time is up (--for): terminating running pods"),
        }
    };
    let run = host.spawn(shutdown, move |change| {
        if !live {
            return;
        }
        let t = started.elapsed().as_secs_f64();
        let what = match change {
            Change::Pod {
                name,
                status,
                restarts,
            } if *restarts > 0 => format!("pod/{name} {status} (restarts: {restarts})"),
            Change::Pod { name, status, .. } => format!("pod/{name} {status}"),
            Change::Job {
                name,
                condition,
                reason,
            } => format!("job.batch/{name} {condition} ({reason})"),
            Change::JobDeleted { name } => format!("job.batch/{name} deleted"),
            Change::JobCreated { name, cronjob } => {
                format!("cronjob.batch/{cronjob} created job.batch/{name}")
            }
        };
        // One write per line, so that lines never interleave with streamed logs.
        let line = format!("[{t:7.3}s] {what}\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
    });
    let (mut host, result) = match run.await {
        Ok(done) => done,
        Err(e) => {
            eprintln!("error: the host stopped: {e}");
            return Outcome::JobFailed;
        }
    };
    if let Err(e) = &result {
        eprintln!("error: {e}");
    }
    let store = host.store();
    let now = jiff::Timestamp::now();
    let jobs: Vec<&Job> = store
        .jobs
        .iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .collect();
    let mut listing = Listing::of_store(store);
    listing.jobs = jobs.clone();
    listing
        .cronjobs
        .retain(|c| c.metadata.deletion_timestamp.is_none());
    listing.pods.retain(|p| !p.deleted());
    let mut stdout = std::io::stdout().lock();
    if !o.output.structured() && streams_logs(o) && !listing.pods.is_empty() {
        let _ = writeln!(stdout);
    }
    match render(&listing, &o.output, now, false, &mut stdout) {
        // A closed stdout (e.g. `| head`) is not an error of the Jobs.
        Ok(()) | Err(RenderError::Io(_)) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Invalid;
        }
    }
    let _ = stdout.flush();
    // A Job a user deleted did not complete; one its TTL or its CronJob (Replace, history)
    // deleted counts as it had ended (a replaced Job was not a failure).
    let all_complete = !(store.jobs.is_empty() && store.cronjobs.is_empty())
        && store.jobs.iter().all(|j| {
            if store.deleted_by_user.contains(j.uid()) {
                false
            } else if j.metadata.deletion_timestamp.is_some() {
                j.status.condition(FAILED).is_none()
            } else {
                j.status.condition(COMPLETE).is_some()
            }
        })
        && result.is_ok();
    if o.output == Format::Table && result.is_ok() {
        for j in &jobs {
            let suspended = j.spec.suspend == Some(true);
            if suspended {
                eprintln!(
                    "note: job.batch/{0} is suspended; to continue: wasmjob patch job {0} -p '{{\"spec\":{{\"suspend\":false}}}}' && wasmjob resume",
                    j.name()
                );
            } else if j.status.condition(COMPLETE).is_none() && j.status.condition(FAILED).is_none()
            {
                eprintln!(
                    "note: job.batch/{} did not finish (parallelism {:?} and nothing left to run)",
                    j.name(),
                    j.spec.parallelism.unwrap_or(1)
                );
            }
        }
    }
    // The process ends next: the state database is closed as it should be, and the rest
    // (every pod object, the engine's pool of instance slots) is left for the exit to free
    // at once; dropping it piece by piece took a quarter of a second after 10,000 pods.
    host.close_state();
    std::mem::forget(host);
    if all_complete {
        Outcome::Success
    } else {
        Outcome::JobFailed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(parallelism: Option<i32>, completions: Option<i32>) -> JobSpec {
        JobSpec {
            parallelism,
            completions,
            ..Default::default()
        }
    }

    #[test]
    fn the_pool_is_sized_for_what_can_run_at_once() {
        let none: [JobSpec; 0] = [];
        for (jobs, crons, want) in [
            (vec![spec(None, None)], vec![], 1),
            (vec![spec(Some(10_000), Some(10_000))], vec![], 10_000),
            // No more than the completions left to run, nothing for parallelism 0.
            (
                vec![spec(Some(50), Some(4)), spec(Some(0), None)],
                vec![],
                4,
            ),
            // A CronJob may overlap its next Job with the last one.
            (vec![spec(Some(3), None)], vec![spec(Some(2), Some(8))], 7),
        ] {
            assert_eq!(pool_demand_of(jobs.iter(), crons.iter()), want);
        }
        assert_eq!(pool_demand_of(none.iter(), none.iter()), 0);
    }
}
