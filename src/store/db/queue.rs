//! Work queues in the state database: items in FIFO order, each leased to at most one pod.
//! A lease ends with the pod's container run, in the same transaction that records it:
//! acknowledged when the pod succeeds, returned to the queue when the run fails.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{StateDb, StoreError};

/// One stored item, as `wasmjob queue peek` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// Its id (increasing, never reused).
    pub id: u64,
    /// Its bytes.
    pub body: Vec<u8>,
    /// The pod (uid) holding it, if leased.
    pub lease: Option<String>,
    /// Deliveries so far.
    pub attempts: u32,
}

/// A queue's counts, as `wasmjob queue ls` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Items waiting.
    pub ready: u64,
    /// Items leased to pods.
    pub leased: u64,
}

/// A settlement an external broker (Redis) still owes: recorded in the commit that records
/// the pod's end, removed once the broker has done it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSettle {
    /// The pod's uid.
    pub holder: String,
    /// The broker.
    pub url: String,
    /// The queues the pod was granted.
    pub queues: Vec<String>,
    /// Acknowledge (the pod succeeded) or requeue.
    pub success: bool,
}

/// Records new pending settlements and drops those carried out.
pub(super) fn outbox(
    tx: &Transaction<'_>,
    add: &[PendingSettle],
    done: &[String],
) -> rusqlite::Result<()> {
    for p in add {
        tx.execute(
            "INSERT OR REPLACE INTO queue_settles (holder, url, queues, success)
             VALUES (?1, ?2, ?3, ?4)",
            params![p.holder, p.url, p.queues.join(","), p.success],
        )?;
    }
    for h in done {
        tx.execute("DELETE FROM queue_settles WHERE holder = ?1", [h])?;
    }
    Ok(())
}

/// Acknowledges (success) or returns (failure) the items leased to each pod.
pub(super) fn settle(tx: &Transaction<'_>, settle: &[(String, bool)]) -> rusqlite::Result<()> {
    if settle.is_empty() {
        return Ok(());
    }
    let mut ack = tx.prepare_cached("DELETE FROM queue_items WHERE lease = ?1")?;
    let mut release = tx.prepare_cached("UPDATE queue_items SET lease = NULL WHERE lease = ?1")?;
    for (holder, success) in settle {
        if *success {
            ack.execute([holder])?;
        } else {
            release.execute([holder])?;
        }
    }
    Ok(())
}

impl StateDb {
    /// Settlements an external broker still owes (a host died before carrying them out).
    pub fn pending_settles(&self) -> Result<Vec<PendingSettle>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT holder, url, queues, success FROM queue_settles")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PendingSettle {
                    holder: r.get(0)?,
                    url: r.get(1)?,
                    queues: r
                        .get::<_, String>(2)?
                        .split(',')
                        .map(str::to_string)
                        .collect(),
                    success: r.get(3)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// Appends items to `queue` in one transaction.
    pub fn queue_push<'b>(
        &mut self,
        queue: &str,
        items: impl IntoIterator<Item = &'b [u8]>,
    ) -> Result<usize, StoreError> {
        let dir = self.dir.clone();
        let sql = |source| StoreError::Sql {
            dir: dir.clone(),
            source,
        };
        let now = Timestamp::now().as_microsecond();
        let tx = self.conn.transaction().map_err(sql)?;
        let mut n = 0;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO queue_items (queue, body, enqueued) VALUES (?1, ?2, ?3)",
                )
                .map_err(sql)?;
            for body in items {
                put.execute(params![queue, body, now]).map_err(sql)?;
                n += 1;
            }
        }
        tx.commit().map_err(sql)?;
        Ok(n)
    }

    /// Leases the oldest waiting item of `queue` to `holder` (a pod's uid).
    pub fn queue_pop(
        &mut self,
        queue: &str,
        holder: &str,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.conn
            .query_row(
                "UPDATE queue_items SET lease = ?2, attempts = attempts + 1
                 WHERE id = (SELECT id FROM queue_items WHERE queue = ?1 AND lease IS NULL
                             ORDER BY id LIMIT 1)
                 RETURNING id, body",
                params![queue, holder],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Whether items of `queue` are leased to holders other than `holder` (their items may
    /// come back if those pods fail).
    pub fn queue_leased_to_others(&self, queue: &str, holder: &str) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM queue_items WHERE queue = ?1 AND lease IS NOT NULL AND lease != ?2",
            )
            .map_err(|e| self.sql(e))?;
        stmt.exists(params![queue, holder]).map_err(|e| self.sql(e))
    }

    /// Acknowledges item `id` of `queue` if `holder` holds it; `false` if it does not.
    pub fn queue_ack(&mut self, queue: &str, id: u64, holder: &str) -> Result<bool, StoreError> {
        let id = i64::try_from(id).unwrap_or(-1);
        self.conn
            .execute(
                "DELETE FROM queue_items WHERE id = ?1 AND queue = ?2 AND lease = ?3",
                params![id, queue, holder],
            )
            .map(|n| n == 1)
            .map_err(|e| self.sql(e))
    }

    /// Items of `queue` waiting to be popped.
    pub fn queue_len(&self, queue: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM queue_items WHERE queue = ?1 AND lease IS NULL",
                [queue],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.sql(e))
    }

    /// Every queue that holds items, by name.
    pub fn queues(&self) -> Result<Vec<QueueStats>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT queue, sum(lease IS NULL), sum(lease IS NOT NULL) FROM queue_items
                 GROUP BY queue ORDER BY queue",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(QueueStats {
                    name: r.get(0)?,
                    ready: r.get::<_, i64>(1)? as u64,
                    leased: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// The first `limit` items of `queue`, leased ones included, oldest first.
    pub fn queue_peek(&self, queue: &str, limit: u64) -> Result<Vec<StoredItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, body, lease, attempts FROM queue_items WHERE queue = ?1
                 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(
                params![queue, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    Ok(StoredItem {
                        id: r.get::<_, i64>(0)? as u64,
                        body: r.get(1)?,
                        lease: r.get(2)?,
                        attempts: r.get::<_, i64>(3)? as u32,
                    })
                },
            )
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// Deletes the waiting items of `queue` (leased ones stay with their pods).
    pub fn queue_purge(&mut self, queue: &str) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM queue_items WHERE queue = ?1 AND lease IS NULL",
                [queue],
            )
            .map_err(|e| self.sql(e))
    }

    /// Returns every leased item to its queue: when a host starts, the pods of the host
    /// before it are gone. Returns how many went back.
    pub fn release_all_leases(&mut self) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE queue_items SET lease = NULL WHERE lease IS NOT NULL",
                [],
            )
            .map_err(|e| self.sql(e))
    }

    /// What a seed (`source`, e.g. a ConfigMap) must still push of `items`: all of them the
    /// first time, nothing when the same content was seeded before, and only the items not
    /// seeded before when its content changed (a multiset difference), so that a re-run or
    /// resume never pushes an item twice.
    pub fn seed_delta(&self, source: &str, items: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, StoreError> {
        let before: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT items FROM queue_seeds WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let mut seen: Vec<Vec<u8>> = before
            .map(|b| b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        let mut new = Vec::new();
        for item in items {
            match seen.iter().position(|s| s == item) {
                Some(i) => {
                    seen.swap_remove(i);
                }
                None => new.push(item.clone()),
            }
        }
        Ok(new)
    }

    /// Pushes `push` to the embedded `queue` (if `queue` is given: a Redis queue is pushed by
    /// its broker) and records that `source` has seeded `items`, in one transaction.
    pub fn record_seed(
        &mut self,
        source: &str,
        hash: &str,
        items: &[Vec<u8>],
        queue: Option<&str>,
        push: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        let sql = |source| StoreError::Sql {
            dir: dir.clone(),
            source,
        };
        let now = Timestamp::now().as_microsecond();
        let tx = self.conn.transaction().map_err(sql)?;
        if let Some(queue) = queue {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO queue_items (queue, body, enqueued) VALUES (?1, ?2, ?3)",
                )
                .map_err(sql)?;
            for body in push {
                put.execute(params![queue, body, now]).map_err(sql)?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO queue_seeds (source, hash, items) VALUES (?1, ?2, ?3)",
            params![source, hash, items.join(&b'\n')],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)
    }

    /// Forgets that `source` seeded a queue (`--replace` seeds again).
    pub fn forget_seed(&mut self, source: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM queue_seeds WHERE source = ?1", [source])
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, StateDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        (dir, db)
    }

    #[test]
    fn leases_items_in_order_and_settles_them_with_the_pod() {
        let (_d, mut db) = db();
        let items: Vec<&[u8]> = vec![b"apple", b"banana", b"cherry"];
        db.queue_push("fruit", items).unwrap();
        let (a, body) = db.queue_pop("fruit", "pod-1").unwrap().unwrap();
        assert_eq!(body, b"apple");
        let (b, _) = db.queue_pop("fruit", "pod-2").unwrap().unwrap();
        assert_eq!(db.queue_len("fruit").unwrap(), 1);
        assert!(
            !db.queue_ack("fruit", a, "pod-2").unwrap(),
            "only the holder acks"
        );
        assert!(db.queue_ack("fruit", a, "pod-1").unwrap());
        // pod-2 fails: banana goes back, ahead of cherry.
        let batch = super::super::Batch {
            settle: vec![("pod-2".into(), false)],
            ..Default::default()
        };
        db.commit(&batch).unwrap();
        let (again, body) = db.queue_pop("fruit", "pod-3").unwrap().unwrap();
        assert_eq!((again, body.as_slice()), (b, b"banana".as_slice()));
        assert_eq!(db.queue_peek("fruit", 10).unwrap()[0].attempts, 2);
        // pod-3 succeeds without acking: its lease is acknowledged with it.
        let batch = super::super::Batch {
            settle: vec![("pod-3".into(), true)],
            ..Default::default()
        };
        db.commit(&batch).unwrap();
        let stats = db.queues().unwrap();
        assert_eq!(
            stats,
            [QueueStats {
                name: "fruit".into(),
                ready: 1,
                leased: 0
            }]
        );
    }

    #[test]
    fn a_seed_pushes_each_item_once_even_when_its_content_changes() {
        let (_d, mut db) = db();
        let v = |s: &[&str]| s.iter().map(|i| i.as_bytes().to_vec()).collect::<Vec<_>>();
        let first = v(&["a", "b", "b"]);
        let delta = db.seed_delta("default/cm", &first).unwrap();
        assert_eq!(delta, first);
        db.record_seed("default/cm", "h1", &first, Some("q"), &delta)
            .unwrap();
        assert!(db.seed_delta("default/cm", &first).unwrap().is_empty());
        let second = v(&["b", "a", "c", "b", "b"]);
        assert_eq!(
            db.seed_delta("default/cm", &second).unwrap(),
            v(&["c", "b"])
        );
        assert_eq!(db.queue_len("q").unwrap(), 3);
        db.queue_pop("q", "p").unwrap();
        assert_eq!(db.release_all_leases().unwrap(), 1);
        assert_eq!(db.queue_purge("q").unwrap(), 3);
    }
}
