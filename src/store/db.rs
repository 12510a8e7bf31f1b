//! The durable state directory: one SQLite database (WAL mode) holding Jobs, Pods, Events and
//! pod logs, plus the lock that lets one host at a time run on the directory.
//!
//! SQLite because it gives transactions (a pod's completion and its Job's counters are written
//! in one commit, so they never disagree after a crash) and lets other processes read while a
//! host writes (`wasmjob get -w` in a second terminal). Objects are stored as their JSON, keyed
//! by uid, with the columns views filter on beside them.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::Event;
use crate::api::types::{Job, Pod};

/// `PRAGMA application_id` of a wasmjob state database ("wjob").
const APPLICATION_ID: i64 = 0x776a_6f62;
/// The schema this build reads and writes.
const SCHEMA_VERSION: i64 = 2;
/// The database's file name inside the state directory.
pub const DB_FILE: &str = "state.db";
const LOCK_FILE: &str = "host.lock";

const SCHEMA: &str = "
CREATE TABLE objects (
    uid       TEXT PRIMARY KEY,
    kind      TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    owner     TEXT,
    rv        INTEGER NOT NULL,
    finished  INTEGER NOT NULL DEFAULT 0,
    expires   INTEGER,
    body      TEXT NOT NULL
);
CREATE UNIQUE INDEX objects_by_name ON objects(kind, namespace, name);
CREATE INDEX objects_by_owner ON objects(owner);
CREATE INDEX objects_by_rv ON objects(rv);
CREATE INDEX objects_by_expiry ON objects(expires) WHERE expires IS NOT NULL;
CREATE TABLE job_sources (
    uid       TEXT PRIMARY KEY,
    source    TEXT NOT NULL,
    base_dir  TEXT NOT NULL,
    spec_hash TEXT NOT NULL
);
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    rv         INTEGER NOT NULL,
    object_uid TEXT NOT NULL,
    kind       TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    message    TEXT NOT NULL,
    source     TEXT NOT NULL,
    first_time TEXT NOT NULL,
    last_time  TEXT NOT NULL,
    count      INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_by_key ON events(object_uid, type, reason, message);
CREATE TABLE logs (
    pod_uid TEXT NOT NULL,
    run     INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (pod_uid, run, seq)
);
CREATE TABLE requests (
    id        INTEGER PRIMARY KEY,
    verb      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    uid       TEXT NOT NULL,
    option    TEXT NOT NULL DEFAULT ''
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES ('rv', 0);
";

/// Schema changes after version 1, applied in order: `MIGRATIONS[i]` takes a database from
/// version `i + 1` to `i + 2`.
const MIGRATIONS: &[&str] = &[
    // 2: work queues (items leased to pods) and the ConfigMaps that seeded them.
    "CREATE TABLE queue_items (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        queue    TEXT NOT NULL,
        body     BLOB NOT NULL,
        lease    TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        enqueued INTEGER NOT NULL
    );
    CREATE INDEX queue_items_ready ON queue_items(queue, lease, id);
    CREATE INDEX queue_items_by_lease ON queue_items(lease) WHERE lease IS NOT NULL;
    CREATE TABLE queue_seeds (
        source TEXT PRIMARY KEY,
        hash   TEXT NOT NULL,
        items  BLOB NOT NULL
    );
    CREATE TABLE queue_settles (
        holder  TEXT PRIMARY KEY,
        url     TEXT NOT NULL,
        queues  TEXT NOT NULL,
        success INTEGER NOT NULL
    );",
];

mod queue;
pub use queue::{PendingSettle, QueueStats, StoredItem};

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory or a file in it could not be created or read.
    #[error("state directory {dir}: {source}")]
    Io {
        /// The state directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database is not one of ours, or is damaged.
    #[error(
        "state directory {dir}: {DB_FILE} is not a usable wasmjob state database ({why}); \
         move it away or choose another --state-dir"
    )]
    Foreign {
        /// The state directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Another host holds the directory.
    #[error(
        "state directory {dir} is in use by another wasmjob host (pid {pid}); wait for it to \
         finish or stop it, or choose another --state-dir"
    )]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// The other host's pid, as it recorded it.
        pid: String,
    },
    /// A query or commit failed.
    #[error("state store {}: {source}", dir.display())]
    Sql {
        /// The state directory.
        dir: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database holds no schema yet (a host died while creating it).
    #[error("the state database is empty")]
    Empty,
    /// A stored object could not be decoded.
    #[error("state store {}: {kind} {name:?} is unreadable: {message}", dir.display())]
    Corrupt {
        /// The state directory.
        dir: PathBuf,
        /// Object kind.
        kind: String,
        /// Object name.
        name: String,
        /// The decoding error.
        message: String,
    },
}

/// Where a Job came from, kept so a later `wasmjob resume` can find its module again and a
/// re-run can tell whether the manifest changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSource {
    /// e.g. `examples/pi.yaml`.
    pub source: String,
    /// The manifest's directory (relative images and hostPaths start here), absolute.
    pub base_dir: PathBuf,
    /// [`manifest_hash`] of the manifest's Job.
    pub spec_hash: String,
}

/// New output of one container run, appended to its stored log.
#[derive(Debug, Clone)]
pub struct LogChunk {
    /// The pod's uid.
    pub pod_uid: String,
    /// Which run of the container (0 first, then one per restart).
    pub run: i32,
    /// The bytes.
    pub data: Vec<u8>,
}

/// An event saved before that was counted again (or, combined, took a new message).
pub struct EventChange<'a> {
    /// The event now.
    pub event: &'a Event,
    /// Its message as saved.
    pub saved_message: String,
    /// Its count as saved.
    pub saved_count: i32,
}

/// Everything one host loop turn changed, written in one transaction.
#[derive(Default)]
pub struct Batch<'a> {
    /// CronJobs to insert or replace.
    pub cronjobs: Vec<&'a crate::api::cronjob::CronJob>,
    /// Jobs to insert or replace.
    pub jobs: Vec<&'a Job>,
    /// Sources of newly created Jobs, by uid.
    pub job_sources: Vec<(String, JobSource)>,
    /// Pods to insert or replace.
    pub pods: Vec<&'a Pod>,
    /// New events.
    pub events: Vec<&'a Event>,
    /// Saved events counted again or combined since.
    pub event_changes: Vec<EventChange<'a>>,
    /// New log output.
    pub logs: Vec<LogChunk>,
    /// Requests the host has carried out, to remove.
    pub done_requests: Vec<i64>,
    /// Pods whose container run ended: `true` acknowledges the queue items leased to the pod
    /// (it succeeded), `false` returns them to their queues.
    pub settle: Vec<(String, bool)>,
    /// Lease settlements an external broker must still carry out (an outbox: recorded with
    /// the pod's end, replayed by the next host if this one dies first).
    pub outbox: Vec<PendingSettle>,
    /// Holders whose external settlement is done.
    pub settled: Vec<String>,
}

impl Batch<'_> {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.cronjobs.is_empty()
            && self.job_sources.is_empty()
            && self.pods.is_empty()
            && self.events.is_empty()
            && self.event_changes.is_empty()
            && self.logs.is_empty()
            && self.done_requests.is_empty()
            && self.settle.is_empty()
            && self.outbox.is_empty()
            && self.settled.is_empty()
    }
}

/// A request to the running host, written by another `wasmjob` process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Row id.
    pub id: i64,
    /// e.g. `delete`.
    pub verb: String,
    /// e.g. `Job`.
    pub kind: String,
    /// Object namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// The uid of the object the request is about: a later object of the same name is
    /// never touched.
    pub uid: String,
    /// Verb option, e.g. `orphan` for `delete --cascade=orphan`.
    pub option: String,
}

/// A Job recorded by an earlier host that has not finished, with what resuming it needs.
pub struct Recorded {
    /// The Job as last committed.
    pub job: Job,
    /// Its pods, oldest first.
    pub pods: Vec<Pod>,
    /// Its manifest's origin (absent only if the database was edited by hand).
    pub source: Option<JobSource>,
}

/// What a cascading delete removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Objects removed, the Job included.
    pub objects: usize,
    /// Pods left behind without an owner (`--cascade=orphan`).
    pub orphaned: usize,
}

/// The hash of a manifest's Job (labels, annotations, spec) that tells whether a re-run is
/// of the same Job.
pub fn manifest_hash(job: &Job) -> String {
    let json = serde_json::to_vec(&(&job.metadata.labels, &job.metadata.annotations, &job.spec))
        .unwrap_or_default();
    Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An open state database.
pub struct StateDb {
    conn: Connection,
    dir: PathBuf,
}

impl StateDb {
    /// Opens (creating if need be) the database of state directory `dir` for writing.
    pub fn open(dir: &Path) -> Result<StateDb, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            dir: dir.into(),
            source,
        })?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Self::open_with(dir, flags, true)
    }

    /// Opens the database of `dir` for reading; `None` if the directory holds none yet.
    pub fn open_existing(dir: &Path) -> Result<Option<StateDb>, StoreError> {
        if !dir.join(DB_FILE).exists() {
            return Ok(None);
        }
        // Read-write so that WAL recovery can run; views never write objects.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        match Self::open_with(dir, flags, false) {
            Ok(db) => Ok(Some(db)),
            Err(StoreError::Empty) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_with(dir: &Path, flags: OpenFlags, create: bool) -> Result<StateDb, StoreError> {
        let foreign = |why: String| StoreError::Foreign {
            dir: dir.into(),
            why,
        };
        let path = dir.join(DB_FILE);
        if path.is_dir() {
            return Err(foreign("it is a directory".into()));
        }
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| foreign(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| foreign(e.to_string()))?;
        let db = StateDb {
            conn,
            dir: dir.into(),
        };
        let app_id: i64 = db
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| foreign(e.to_string()))?;
        let version: i64 = db
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| foreign(e.to_string()))?;
        if app_id == 0 && version == 0 {
            let tables: i64 = db
                .conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(|e| foreign(e.to_string()))?;
            if tables > 0 {
                return Err(foreign("a SQLite database of another program".into()));
            }
            if !create {
                // A host that died while creating the database: nothing was recorded.
                return Err(StoreError::Empty);
            }
            db.init()?;
        } else if app_id != APPLICATION_ID {
            return Err(foreign(format!(
                "a SQLite database of another program (application_id {app_id:#x})"
            )));
        } else if version > SCHEMA_VERSION {
            return Err(foreign(format!(
                "written by a newer wasmjob (schema {version}; this one knows {SCHEMA_VERSION})"
            )));
        } else if version < SCHEMA_VERSION {
            db.migrate(version)?;
        }
        if create {
            // WAL lets views read while the host writes. FULL sync makes each commit durable
            // before the pods it records start, so even a power cut loses nothing recorded.
            db.conn
                .pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| foreign(e.to_string()))?;
            db.conn
                .pragma_update(None, "synchronous", "FULL")
                .map_err(|e| foreign(e.to_string()))?;
        }
        Ok(db)
    }

    fn init(&self) -> Result<(), StoreError> {
        let batch = format!(
            "BEGIN; {SCHEMA} {} PRAGMA application_id = {APPLICATION_ID}; \
             PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;",
            MIGRATIONS.join("\n")
        );
        self.conn.execute_batch(&batch).map_err(|e| self.sql(e))
    }

    /// Brings a database of schema `from` up to date, one transaction per step. Each step
    /// re-reads the version under the write lock, so two processes never apply one twice.
    fn migrate(&self, from: i64) -> Result<(), StoreError> {
        for (i, step) in MIGRATIONS.iter().enumerate() {
            let to = i as i64 + 2;
            if to <= from {
                continue;
            }
            let run = || -> rusqlite::Result<()> {
                self.conn.execute_batch("BEGIN IMMEDIATE")?;
                let now: i64 = self
                    .conn
                    .query_row("PRAGMA user_version", [], |r| r.get(0))?;
                if now < to {
                    self.conn
                        .execute_batch(&format!("{step} PRAGMA user_version = {to};"))?;
                }
                self.conn.execute_batch("COMMIT")
            };
            if let Err(e) = run() {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(self.sql(e));
            }
        }
        Ok(())
    }

    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sql {
            dir: self.dir.clone(),
            source,
        }
    }

    fn corrupt(&self, kind: &str, name: &str, e: impl ToString) -> StoreError {
        StoreError::Corrupt {
            dir: self.dir.clone(),
            kind: kind.into(),
            name: name.into(),
            message: e.to_string(),
        }
    }

    /// For a state directory removed when the run ends (`--ephemeral`): commits are not
    /// synced to disk and closing skips the last checkpoint, since nothing will read them.
    pub fn set_ephemeral(&self) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "synchronous", "OFF")
            .and_then(|()| {
                self.conn
                    .set_db_config(
                        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                        true,
                    )
                    .map(drop)
            })
            .map_err(|e| self.sql(e))
    }

    /// Writes a batch in one transaction.
    pub fn commit(&mut self, batch: &Batch<'_>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let dir = self.dir.clone();
        let sql = |source| StoreError::Sql {
            dir: dir.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        // Prepared once per connection, as every statement of a commit is: parsing them
        // took a tenth of a commit's time.
        let rv: i64 = tx
            .prepare_cached("UPDATE meta SET value = value + 1 WHERE key = 'rv' RETURNING value")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(sql)?;
        {
            // An update leaves `owner` alone: SQLite rewrites the entry of every index whose
            // column is assigned, equal or not, and a pod's owner index page was one frame
            // of the dozen each commit writes. An owner changes only when orphaned, which
            // `delete_job` writes itself. An update, then an insert where it found no row,
            // rather than one upsert: an upsert may abort after a write, so SQLite keeps a
            // statement journal (a copy of each page it changes) for it.
            let mut update = tx
                .prepare_cached(
                    "UPDATE objects SET rv = ?2, finished = ?3, body = ?4, expires = ?5
                     WHERE uid = ?1",
                )
                .map_err(sql)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO objects (uid, kind, namespace, name, owner, rv, finished, body,
                        expires)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(sql)?;
            let mut put = |o: Put<'_>| {
                let updated = update
                    .execute(params![o.uid, rv, o.finished, o.body, o.expires])
                    .map_err(sql)?;
                if updated == 0 {
                    insert
                        .execute(params![
                            o.uid,
                            o.kind,
                            o.namespace,
                            o.name,
                            o.owner,
                            rv,
                            o.finished,
                            o.body,
                            o.expires
                        ])
                        .map_err(sql)?;
                }
                Ok::<(), StoreError>(())
            };
            fn controller(m: &crate::api::types::ObjectMeta) -> Option<&str> {
                let owner = m.owner_references.iter().find(|o| o.controller)?;
                Some(&owner.uid)
            }
            for cj in &batch.cronjobs {
                put(Put {
                    uid: cj.uid(),
                    kind: "CronJob",
                    namespace: namespace(&cj.metadata.namespace),
                    name: cj.name(),
                    owner: None,
                    finished: false,
                    body: to_json(cj),
                    expires: None,
                })?;
            }
            for job in &batch.jobs {
                put(Put {
                    uid: job.uid(),
                    kind: "Job",
                    namespace: namespace(&job.metadata.namespace),
                    name: job.name(),
                    owner: controller(&job.metadata),
                    finished: job.status.finished().is_some(),
                    body: to_json(job),
                    expires: crate::controller::ttl::expiry(job).map(|t| t.as_microsecond()),
                })?;
            }
            for pod in &batch.pods {
                put(Put {
                    uid: pod.metadata.uid.as_deref().unwrap_or_default(),
                    kind: "Pod",
                    namespace: namespace(&pod.metadata.namespace),
                    name: pod.metadata.name.as_deref().unwrap_or_default(),
                    owner: controller(&pod.metadata),
                    finished: matches!(&*pod.status.phase, "Succeeded" | "Failed"),
                    body: to_json(pod),
                    expires: None,
                })?;
            }
            let mut src = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO job_sources (uid, source, base_dir, spec_hash)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sql)?;
            for (uid, s) in &batch.job_sources {
                src.execute(params![
                    uid,
                    s.source,
                    s.base_dir.to_string_lossy(),
                    s.spec_hash
                ])
                .map_err(sql)?;
            }
            let mut ev = tx
                .prepare_cached(
                    "INSERT INTO events (rv, object_uid, kind, namespace, name, type, reason,
                        message, source, first_time, last_time, count)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (object_uid, type, reason, message) DO UPDATE SET
                        rv = excluded.rv, last_time = excluded.last_time,
                        count = count + excluded.count",
                )
                .map_err(sql)?;
            for e in &batch.events {
                ev.execute(params![
                    rv,
                    e.uid,
                    e.kind,
                    e.namespace,
                    e.name,
                    e.type_,
                    e.reason,
                    e.message,
                    e.source,
                    sortable(e.first_time),
                    sortable(e.time),
                    e.count
                ])
                .map_err(sql)?;
            }
            // A changed message that another event of the object already has (only possible
            // across hosts) keeps the saved one rather than failing the commit.
            let mut change = tx
                .prepare_cached(
                    "UPDATE OR IGNORE events SET rv = ?1, message = ?2, last_time = ?3,
                        count = count + ?4
                     WHERE object_uid = ?5 AND type = ?6 AND reason = ?7 AND message = ?8",
                )
                .map_err(sql)?;
            for c in &batch.event_changes {
                let e = c.event;
                change
                    .execute(params![
                        rv,
                        e.message,
                        sortable(e.time),
                        e.count - c.saved_count,
                        e.uid,
                        e.type_,
                        e.reason,
                        c.saved_message
                    ])
                    .map_err(sql)?;
            }
            let mut log = tx
                .prepare_cached(
                    "INSERT INTO logs (pod_uid, run, seq, data) VALUES (?1, ?2,
                        (SELECT coalesce(max(seq) + 1, 0) FROM logs WHERE pod_uid = ?1 AND run = ?2),
                        ?3)",
                )
                .map_err(sql)?;
            for c in &batch.logs {
                log.execute(params![c.pod_uid, c.run, c.data])
                    .map_err(sql)?;
            }
            let mut done = tx
                .prepare_cached("DELETE FROM requests WHERE id = ?1")
                .map_err(sql)?;
            for id in &batch.done_requests {
                done.execute([id]).map_err(sql)?;
            }
            queue::settle(&tx, &batch.settle).map_err(sql)?;
            queue::outbox(&tx, &batch.outbox, &batch.settled).map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        kind: &str,
        name: &str,
        body: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(body).map_err(|e| self.corrupt(kind, name, e))
    }

    /// Objects from `sql`, which selects `rv, kind, name, body`, with their revisions.
    fn query_rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<(i64, T)>, StoreError> {
        let mut out = Vec::new();
        self.each_row(sql, params, |rv, o| out.push((rv, o)))?;
        Ok(out)
    }

    /// Hands each object `sql` selects (`rv, kind, name, body`) to `f` as it is read.
    fn each_row<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        mut f: impl FnMut(i64, T),
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.sql(e))?;
        let mut rows = stmt.query(params).map_err(|e| self.sql(e))?;
        while let Some(row) = rows.next().map_err(|e| self.sql(e))? {
            let text = |i| {
                let v = row.get_ref(i)?;
                v.as_str().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(i, v.data_type(), Box::new(e))
                })
            };
            let (rv, kind, name, body) =
                (|| Ok((row.get(0)?, text(1)?, text(2)?, text(3)?)))().map_err(|e| self.sql(e))?;
            f(rv, self.decode(kind, name, body)?);
        }
        Ok(())
    }

    /// Objects from `sql`, which selects `rv, kind, name, body`.
    fn query_objects<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<T>, StoreError> {
        Ok(self
            .query_rows(sql, params)?
            .into_iter()
            .map(|(_, o)| o)
            .collect())
    }

    /// Objects of `kind`, in `namespace` (all if `None`), ordered by namespace and name.
    pub fn list<T: DeserializeOwned>(
        &self,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.for_each(kind, namespace, |o| out.push(o))?;
        Ok(out)
    }

    /// [`StateDb::list`], handing each object to `f` as it is read instead of keeping them
    /// all (`kubectl get pods` on a Job of 100,000 pods needs only their rows).
    pub fn for_each<T: DeserializeOwned>(
        &self,
        kind: &str,
        namespace: Option<&str>,
        mut f: impl FnMut(T),
    ) -> Result<(), StoreError> {
        self.each_row(
            "SELECT rv, kind, name, body FROM objects
             WHERE kind = ?1 AND (?2 IS NULL OR namespace = ?2) ORDER BY namespace, name",
            params![kind, namespace],
            |_, o| f(o),
        )
    }

    /// [`StateDb::list`] of the objects named `names` only, found by the name index rather
    /// than among all (a Job's 100,000 pods).
    pub fn list_named<T: DeserializeOwned>(
        &self,
        kind: &str,
        namespace: Option<&str>,
        names: &[String],
    ) -> Result<Vec<T>, StoreError> {
        let names = serde_json::Value::from(names).to_string();
        self.query_objects(
            "SELECT rv, kind, name, body FROM objects
             WHERE kind = ?1 AND (?2 IS NULL OR namespace = ?2)
             AND name IN (SELECT value FROM json_each(?3)) ORDER BY namespace, name",
            params![kind, namespace, names],
        )
    }

    /// Objects of `kind` in `namespace` whose names start with `prefix`, by name (only the
    /// names are compared before a body is read).
    pub fn list_prefixed<T: DeserializeOwned>(
        &self,
        kind: &str,
        namespace: &str,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.query_objects(
            "SELECT rv, kind, name, body FROM objects WHERE kind = ?1 AND namespace = ?2
             AND substr(name, 1, length(?3)) = ?3 ORDER BY name",
            params![kind, namespace, prefix],
        )
    }

    /// One object by name.
    pub fn get<T: DeserializeOwned>(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        Ok(self
            .query_objects(
                "SELECT rv, kind, name, body FROM objects
                 WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![kind, namespace, name],
            )?
            .pop())
    }

    /// Objects of `kind` owned by the object with uid `owner`, oldest first.
    pub fn owned<T: DeserializeOwned>(
        &self,
        kind: &str,
        owner: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.query_objects(
            "SELECT rv, kind, name, body FROM objects WHERE kind = ?1 AND owner = ?2 ORDER BY rowid",
            params![kind, owner],
        )
    }

    /// How many objects of `kind` `owner` owns, and the first of them (by creation).
    pub fn first_owned<T: DeserializeOwned>(
        &self,
        kind: &str,
        owner: &str,
    ) -> Result<(usize, Option<T>), StoreError> {
        let count: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM objects WHERE kind = ?1 AND owner = ?2",
                params![kind, owner],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        let first = self.query_objects(
            "SELECT rv, kind, name, body FROM objects WHERE kind = ?1 AND owner = ?2
             ORDER BY rowid LIMIT 1",
            params![kind, owner],
        )?;
        Ok((
            usize::try_from(count).unwrap_or_default(),
            first.into_iter().next(),
        ))
    }

    /// Jobs that have not finished, oldest first.
    pub fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.query_objects(
            "SELECT rv, kind, name, body FROM objects WHERE kind = 'Job' AND finished = 0
             ORDER BY rowid",
            [],
        )
    }

    /// `(uid, name)` of the Jobs whose `ttlSecondsAfterFinished` has run out at `now`.
    pub fn expired_jobs(&self, now: Timestamp) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT uid, name FROM objects WHERE kind = 'Job' AND expires <= ?1 ORDER BY expires",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([now.as_microsecond()], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// The TTL controller's work where no host runs it: deletes every expired Job with its
    /// pods and logs. The caller holds the directory's lock.
    pub fn collect_expired(&mut self, now: Timestamp) -> Result<usize, StoreError> {
        let expired = self.expired_jobs(now)?;
        for (uid, _) in &expired {
            self.delete_job(uid, false, None)?;
        }
        Ok(expired.len())
    }

    /// Every unfinished Job with its pods and source, oldest first: what a resume takes over.
    pub fn recorded_unfinished(&self) -> Result<Vec<Recorded>, StoreError> {
        self.unfinished_jobs()?
            .into_iter()
            .map(|job| {
                Ok(Recorded {
                    pods: self.owned("Pod", job.uid())?,
                    source: self.job_source(job.uid())?,
                    job,
                })
            })
            .collect()
    }

    /// Objects of `kind` written after revision `rv`, with the revision of their last write.
    pub fn changed_since<T: DeserializeOwned>(
        &self,
        kind: &str,
        namespace: Option<&str>,
        rv: i64,
    ) -> Result<Vec<(i64, T)>, StoreError> {
        self.query_rows(
            "SELECT rv, kind, name, body FROM objects
             WHERE kind = ?1 AND (?2 IS NULL OR namespace = ?2) AND rv > ?3 ORDER BY rv, rowid",
            params![kind, namespace, rv],
        )
    }

    /// The revision of the last commit.
    pub fn revision(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'rv'", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    /// Whether an object of `kind` named `name` exists in `namespace`.
    pub fn name_taken(&self, kind: &str, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            )
            .map_err(|e| self.sql(e))?;
        stmt.exists(params![kind, namespace, name])
            .map_err(|e| self.sql(e))
    }

    /// The names of stored `kind` objects in `namespace` that start with `prefix`, in one
    /// query (a host generating many names checks them in memory).
    pub fn names_with_prefix(
        &self,
        kind: &str,
        namespace: &str,
        prefix: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name FROM objects WHERE kind = ?1 AND namespace = ?2
                 AND substr(name, 1, length(?3)) = ?3",
            )
            .map_err(|e| self.sql(e))?;
        let names = stmt
            .query_map(params![kind, namespace, prefix], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        names
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.sql(e))
    }

    /// The name of the object with uid `uid`, if it exists.
    pub fn name_of(&self, uid: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT name FROM objects WHERE uid = ?1", [uid], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Where Job `uid` came from.
    pub fn job_source(&self, uid: &str) -> Result<Option<JobSource>, StoreError> {
        self.conn
            .query_row(
                "SELECT source, base_dir, spec_hash FROM job_sources WHERE uid = ?1",
                [uid],
                |r| {
                    Ok(JobSource {
                        source: r.get(0)?,
                        base_dir: PathBuf::from(r.get::<_, String>(1)?),
                        spec_hash: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Events about the object with uid `uid`, oldest first.
    pub fn events(&self, uid: &str) -> Result<Vec<Event>, StoreError> {
        self.query_events(
            "SELECT type, reason, message, kind, namespace, name, object_uid, source,
                    first_time, last_time, count
             FROM events WHERE object_uid = ?1 ORDER BY last_time, id",
            [uid],
        )
    }

    /// Events recorded or repeated after revision `rv` (-1: all), oldest first.
    pub fn events_since(&self, rv: i64) -> Result<Vec<Event>, StoreError> {
        self.query_events(
            "SELECT type, reason, message, kind, namespace, name, object_uid, source,
                    first_time, last_time, count
             FROM events WHERE rv > ?1 ORDER BY last_time, id",
            [rv],
        )
    }

    fn query_events(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Event>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params, |r| {
                Ok((
                    Event {
                        type_: r.get(0)?,
                        reason: r.get(1)?,
                        message: r.get(2)?,
                        kind: r.get(3)?,
                        namespace: r.get(4)?,
                        name: r.get(5)?,
                        uid: r.get(6)?,
                        source: r.get(7)?,
                        first_time: Timestamp::UNIX_EPOCH,
                        time: Timestamp::UNIX_EPOCH,
                        count: r.get(10)?,
                    },
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut e, first, last) = row.map_err(|e| self.sql(e))?;
            let reason = e.reason.clone();
            let parse = |s: &str| {
                s.parse::<Timestamp>()
                    .map_err(|err| self.corrupt("Event", &reason, err))
            };
            e.first_time = parse(&first)?;
            e.time = parse(&last)?;
            out.push(e);
        }
        Ok(out)
    }

    /// The chunks of one run's log after chunk number `after` (-1 for all), with their numbers.
    pub fn log_chunks(
        &self,
        pod_uid: &str,
        run: i32,
        after: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, data FROM logs WHERE pod_uid = ?1 AND run = ?2 AND seq > ?3
                 ORDER BY seq",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![pod_uid, run, after], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// Queues a request about object `uid` for the running host.
    pub fn request(
        &mut self,
        verb: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        uid: &str,
        option: &str,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO requests (verb, kind, namespace, name, uid, option)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![verb, kind, namespace, name, uid, option],
            )
            .map_err(|e| self.sql(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Whether request `id` is still waiting for the host.
    pub fn request_pending(&self, id: i64) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM requests WHERE id = ?1")
            .map_err(|e| self.sql(e))?;
        stmt.exists([id]).map_err(|e| self.sql(e))
    }

    /// Drops every request: a host that starts owns the directory, and requests left from
    /// before were addressed to a host that is gone.
    pub fn clear_requests(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM requests", [])
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Withdraws request `id`.
    pub fn cancel_request(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM requests WHERE id = ?1", [id])
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Requests waiting for the host, oldest first.
    pub fn requests(&self) -> Result<Vec<Request>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, verb, kind, namespace, name, uid, option FROM requests ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Request {
                    id: r.get(0)?,
                    verb: r.get(1)?,
                    kind: r.get(2)?,
                    namespace: r.get(3)?,
                    name: r.get(4)?,
                    uid: r.get(5)?,
                    option: r.get(6)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// Deletes CronJob `uid` with its events, and its Jobs with theirs (cascade).
    pub fn delete_cronjob(&mut self, uid: &str, request: Option<i64>) -> Result<usize, StoreError> {
        let jobs: Vec<Job> = self.owned("Job", uid)?;
        let mut n = 0;
        for j in &jobs {
            n += self.delete_job(j.uid(), false, None)?.objects;
        }
        n += self.delete_job(uid, false, request)?.objects;
        Ok(n)
    }

    /// Deletes pod `uid` with its events and logs (and the request that asked, if any).
    pub fn delete_pod(&mut self, uid: &str, request: Option<i64>) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        let sql = |source| StoreError::Sql {
            dir: dir.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        tx.execute("UPDATE meta SET value = value + 1 WHERE key = 'rv'", [])
            .map_err(sql)?;
        for stmt in [
            "DELETE FROM logs WHERE pod_uid = ?1",
            "DELETE FROM events WHERE object_uid = ?1",
            "DELETE FROM objects WHERE uid = ?1",
        ] {
            tx.execute(stmt, [uid]).map_err(sql)?;
        }
        if let Some(id) = request {
            tx.execute("DELETE FROM requests WHERE id = ?1", [id])
                .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// Unfinished pods that no Job owns (orphaned by `delete --cascade=orphan`): when a host
    /// starts, nothing runs them any more.
    pub fn unfinished_orphans(&self) -> Result<Vec<Pod>, StoreError> {
        self.query_objects(
            "SELECT rv, kind, name, body FROM objects
             WHERE kind = 'Pod' AND finished = 0 AND owner IS NULL ORDER BY rowid",
            [],
        )
    }

    /// Deletes Job `uid` with its events and source; its pods (with their logs and events)
    /// too unless `orphan`, in which case they lose their owner reference and stay. The
    /// request that asked for it, if any, is removed in the same transaction.
    pub fn delete_job(
        &mut self,
        uid: &str,
        orphan: bool,
        request: Option<i64>,
    ) -> Result<Deleted, StoreError> {
        let dir = self.dir.clone();
        let sql = |source| StoreError::Sql {
            dir: dir.clone(),
            source,
        };
        let pods: Vec<Pod> = self.owned("Pod", uid)?;
        let tx = self.conn.transaction().map_err(sql)?;
        let rv: i64 = tx
            .query_row(
                "UPDATE meta SET value = value + 1 WHERE key = 'rv' RETURNING value",
                [],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let mut deleted = Deleted::default();
        for mut pod in pods {
            let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
            if orphan {
                Arc::make_mut(&mut pod.metadata.owner_references).retain(|o| o.uid != uid);
                tx.execute(
                    "UPDATE objects SET owner = NULL, rv = ?2, body = ?3 WHERE uid = ?1",
                    params![pod_uid, rv, to_json(&pod)],
                )
                .map_err(sql)?;
                deleted.orphaned += 1;
            } else {
                tx.execute("DELETE FROM logs WHERE pod_uid = ?1", [&pod_uid])
                    .map_err(sql)?;
                tx.execute("DELETE FROM events WHERE object_uid = ?1", [&pod_uid])
                    .map_err(sql)?;
                tx.execute("DELETE FROM objects WHERE uid = ?1", [&pod_uid])
                    .map_err(sql)?;
                deleted.objects += 1;
            }
        }
        tx.execute("DELETE FROM events WHERE object_uid = ?1", [uid])
            .map_err(sql)?;
        tx.execute("DELETE FROM job_sources WHERE uid = ?1", [uid])
            .map_err(sql)?;
        if let Some(id) = request {
            tx.execute("DELETE FROM requests WHERE id = ?1", [id])
                .map_err(sql)?;
        }
        deleted.objects += tx
            .execute("DELETE FROM objects WHERE uid = ?1", [uid])
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(deleted)
    }
}

/// RFC 3339 with nanoseconds always written, so that text order is time order.
fn sortable(t: Timestamp) -> String {
    format!("{t:.9}")
}

/// One object's row, for [`StateDb::commit`].
struct Put<'a> {
    uid: &'a str,
    kind: &'static str,
    namespace: &'a str,
    name: &'a str,
    owner: Option<&'a str>,
    finished: bool,
    body: String,
    expires: Option<i64>,
}

fn namespace(ns: &Option<Arc<str>>) -> &str {
    ns.as_deref().unwrap_or("default")
}

fn to_json(value: &impl Serialize) -> String {
    // Our own types always serialize; an error here would be a bug in a derive.
    serde_json::to_string(value).expect("API objects serialize to JSON")
}

/// The exclusive lock a host holds on its state directory while it runs.
pub struct HostLock {
    _file: File,
}

impl HostLock {
    /// Takes the lock of `dir`, or says which process holds it. A view that probes the lock
    /// can hold it for an instant, so a busy lock is retried for a moment before giving up.
    pub fn acquire(dir: &Path) -> Result<HostLock, StoreError> {
        let io = |source| StoreError::Io {
            dir: dir.into(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if tries < 10 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut pid = String::new();
                    let _ = file.read_to_string(&mut pid);
                    return Err(StoreError::Locked {
                        dir: dir.into(),
                        pid: pid.trim().to_string(),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(HostLock { _file: file })
    }

    /// The pid of the host running on `dir`, if one is.
    pub fn holder(dir: &Path) -> Option<String> {
        let mut file = File::open(dir.join(LOCK_FILE)).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(_) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                Some(pid.trim().to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_sort_as_text_in_time_order() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let times = [
            "2026-01-01T00:00:56Z",
            "2026-01-01T00:00:56.1Z",
            "2026-01-01T00:00:56.5Z",
            "2026-01-01T00:00:56.51Z",
        ];
        let texts: Vec<String> = times.iter().map(|s| sortable(t(s))).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
        assert_eq!(texts[0], "2026-01-01T00:00:56.000000000Z");
        assert_eq!(texts[0].parse::<Timestamp>().unwrap(), t(times[0]));
    }

    #[test]
    fn updates_keep_a_pods_owner_until_orphaning_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(dir.path()).unwrap();
        let meta = |name: &str, uid: &str| serde_json::json!({"name": name, "namespace": "default", "uid": uid});
        let job: Job = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": meta("j", "job-1"),
            "spec": {"template": {"spec": {"containers": []}}},
        }))
        .unwrap();
        let mut owned_meta = meta("j-abcde", "pod-1");
        owned_meta["ownerReferences"] = serde_json::json!([{"apiVersion": "batch/v1",
            "kind": "Job", "name": "j", "uid": "job-1", "controller": true,
            "blockOwnerDeletion": true}]);
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": owned_meta,
            "spec": {"containers": []}, "status": {"phase": "Running"},
        }))
        .unwrap();
        let put = |db: &mut StateDb, jobs: Vec<&Job>, pod: &Pod| {
            let pods = vec![pod];
            db.commit(&Batch {
                jobs,
                pods,
                ..Default::default()
            })
            .unwrap();
        };
        put(&mut db, vec![&job], &pod);
        pod.status.phase = "Failed".into();
        // The owner is the one the pod was created with: an update that names another
        // leaves it (orphaning, the one change of owner, is written by `delete_job`).
        Arc::make_mut(&mut pod.metadata.owner_references)[0].uid = "job-2".into();
        put(&mut db, vec![&job], &pod);
        let owned: Vec<Pod> = db.owned("Pod", "job-1").unwrap();
        assert_eq!(owned.len(), 1, "an update keeps the owner");
        assert_eq!(owned[0].status.phase, "Failed");
        assert!(db.owned::<Pod>("Pod", "job-2").unwrap().is_empty());

        // Orphaned: the deletion clears the owner, and later updates leave it cleared.
        pod.status.phase = "Running".into();
        put(&mut db, vec![&job], &pod);
        db.delete_job("job-1", true, None).unwrap();
        Arc::make_mut(&mut pod.metadata.owner_references).clear();
        put(&mut db, Vec::new(), &pod);
        assert!(db.owned::<Pod>("Pod", "job-1").unwrap().is_empty());
        let orphans = db.unfinished_orphans().unwrap();
        assert_eq!(orphans.len(), 1);
        assert!(orphans[0].metadata.owner_references.is_empty());
    }

    #[test]
    fn requests_name_the_uid_and_go_with_the_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(dir.path()).unwrap();
        let id = db
            .request("delete", "Job", "default", "pi", "uid-1", "")
            .unwrap();
        assert!(db.request_pending(id).unwrap());
        assert_eq!(db.requests().unwrap()[0].uid, "uid-1");
        db.delete_job("uid-1", false, Some(id)).unwrap();
        assert!(!db.request_pending(id).unwrap());
        db.request("delete", "Job", "default", "pi", "uid-2", "")
            .unwrap();
        db.clear_requests().unwrap();
        assert!(db.requests().unwrap().is_empty());
    }
}
