//! WAL checkpoints off the writer's thread. SQLite's automatic checkpoint runs inside the
//! commit that crosses the threshold, on the host loop's thread: copying thousands of pages
//! back into the database there stalled every pod waiting for that commit. Instead the host's
//! connection reports the WAL's size after each commit, and past [`CHECKPOINT_PAGES`] a
//! thread with a connection of its own runs a PASSIVE checkpoint, which never blocks the
//! writer or readers.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

/// WAL pages (of 4 KiB) after which a checkpoint is asked for: SQLite's own default.
pub(super) const CHECKPOINT_PAGES: i32 = 1000;

#[derive(Default)]
struct Flags {
    wanted: AtomicBool,
    stop: AtomicBool,
}

/// The checkpointing thread of one writer connection.
pub(super) struct Checkpointer {
    flags: Arc<Flags>,
    thread: Option<JoinHandle<()>>,
}

/// Asks the checkpointer for a checkpoint; cheap enough to call after every commit.
#[derive(Clone)]
pub(super) struct Poke {
    flags: Arc<Flags>,
    thread: std::thread::Thread,
}

impl Poke {
    pub(super) fn poke(&self) {
        if !self.flags.wanted.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

impl Checkpointer {
    /// Starts the thread on the database at `path`; `None` if it cannot open it (the writer
    /// then keeps SQLite's automatic checkpoints).
    pub(super) fn start(path: &Path) -> Option<(Checkpointer, Poke)> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        // Its own close must not checkpoint (or block on) anything: the writer closes last.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .ok()?;
        let shared = Arc::new(Flags::default());
        let flags = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wasmjob-checkpoint".into())
            .spawn(move || {
                loop {
                    // A checkpoint asked for is run even when the writer is closing.
                    if flags.wanted.swap(false, Ordering::AcqRel) {
                        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                        });
                        tracing::debug!(?done, "checkpoint (WAL pages, pages copied)");
                    } else if flags.stop.load(Ordering::Acquire) {
                        return;
                    } else {
                        std::thread::park();
                    }
                }
            })
            .ok()?;
        let poke = Poke {
            flags: shared.clone(),
            thread: thread.thread().clone(),
        };
        let checkpointer = Checkpointer {
            flags: shared,
            thread: Some(thread),
        };
        Some((checkpointer, poke))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.flags.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poke_copies_the_wal_into_the_database_off_the_writers_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (x BLOB);",
            )
            .unwrap();
        writer
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .unwrap();
        for _ in 0..100 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(40000))", [])
                .unwrap();
        }
        let db_size = || std::fs::metadata(&path).unwrap().len();
        // Everything is still in the WAL.
        assert!(db_size() < 100_000, "{}", db_size());
        let (checkpointer, poke) = Checkpointer::start(&path).unwrap();
        poke.poke();
        drop(checkpointer);
        assert!(db_size() > 4_000_000, "{}", db_size());
        drop(writer);
    }
}
