//! The Redis broker, selected by a `redis://` `BROKER_URL`: how users outgrow one machine,
//! several wasmjob hosts draining one queue. The reliable-queue pattern: producers `RPUSH`
//! items to the list `QUEUE` (`redis-cli rpush job2 apple`, as the docs do); a pop `LMOVE`s
//! the head to `QUEUE:processing` and records a lease (id, holder, expiry); acknowledging
//! removes it; a lease whose host died expires and its item goes back to the head of the
//! queue. Each step is one Lua script, so it is atomic however many hosts pop at once, and
//! times come from the Redis server's clock, so hosts' clocks need not agree.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{Script, Value};

use super::{Broker, Popped, QueueError};

/// How long a lease lives unless its host renews it (it does, every third of this); the
/// environment variable `WASMJOB_REDIS_LEASE_TTL` (e.g. `5s`) overrides it.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// The lease TTL in effect.
pub fn lease_ttl() -> Duration {
    std::env::var("WASMJOB_REDIS_LEASE_TTL")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(LEASE_TTL)
}

/// Milliseconds on the server's clock, for scripts.
const NOW: &str =
    "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n";

/// Ends lease `id`: acknowledged, or requeued at the head if `requeue`.
const END_LEASE: &str = r"
local function end_lease(id, requeue)
  local item = redis.call('HGET', KEYS[4], id)
  local holder = redis.call('HGET', KEYS[5], id)
  if item then
    redis.call('LREM', KEYS[2], 1, item)
    if requeue then redis.call('LPUSH', KEYS[1], item) end
  end
  if holder then redis.call('SREM', KEYS[1] .. ':held:' .. holder, id) end
  local nonce = redis.call('HGET', KEYS[1] .. ':lease-nonce', id)
  if nonce then redis.call('HDEL', KEYS[1] .. ':nonces', nonce) end
  redis.call('HDEL', KEYS[1] .. ':lease-nonce', id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
end
";

/// Requeues expired leases, then leases the head to ARGV[1] for ARGV[2] ms. ARGV[3] is the
/// pop's nonce: a retried pop (after a lost reply) gets the same lease back. Returns
/// `{id, item}`; -1 when the queue is empty but other holders' leases may yet return items;
/// nil when it is empty.
const POP: &str = r"
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(expired) do end_lease(id, true) end
local prev = redis.call('HGET', KEYS[1] .. ':nonces', ARGV[3])
if prev then
  local item = redis.call('HGET', KEYS[4], prev)
  if item then return {tonumber(prev), item} end
end
local item = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not item then
  local others = redis.call('ZCARD', KEYS[3]) - redis.call('SCARD', KEYS[1] .. ':held:' .. ARGV[1])
  if others > 0 then return -1 end
  return false
end
local id = redis.call('INCR', KEYS[6])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), id)
redis.call('HSET', KEYS[4], id, item)
redis.call('HSET', KEYS[5], id, ARGV[1])
redis.call('SADD', KEYS[1] .. ':held:' .. ARGV[1], id)
redis.call('HSET', KEYS[1] .. ':nonces', ARGV[3], id)
redis.call('HSET', KEYS[1] .. ':lease-nonce', id, ARGV[3])
return {id, item}
";

/// Acknowledges lease ARGV[1] if ARGV[2] holds it; 1 if it did.
const ACK: &str = r"
if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[2] then return 0 end
end_lease(ARGV[1], false)
return 1
";

/// Ends every lease ARGV[1] holds: acknowledged (ARGV[2] = 1) or requeued (0).
const SETTLE: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1] .. ':held:' .. ARGV[1])
for _, id in ipairs(ids) do
  if redis.call('HGET', KEYS[5], id) == ARGV[1] then end_lease(id, ARGV[2] == '0') end
end
redis.call('DEL', KEYS[1] .. ':held:' .. ARGV[1])
return #ids
";

/// Pushes the expiry of every lease ARGV[1] holds ARGV[2] ms past now.
const RENEW: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1] .. ':held:' .. ARGV[1])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[3], 'XX', now + tonumber(ARGV[2]), id) end
return #ids
";

/// Queues on one Redis server.
pub struct RedisBroker {
    url: String,
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    /// (queue, holder) pairs with leases from this host, renewed while they last.
    holders: Mutex<HashSet<(String, String)>>,
    last_renew: Mutex<Instant>,
}

fn keys(queue: &str) -> [String; 6] {
    [
        queue.to_string(),
        format!("{queue}:processing"),
        format!("{queue}:leases"),
        format!("{queue}:lease-items"),
        format!("{queue}:lease-holders"),
        format!("{queue}:lease-seq"),
    ]
}

fn ttl_ms() -> String {
    lease_ttl().as_millis().to_string()
}

impl RedisBroker {
    /// Connects to `url` (`redis://host:port[/db]`), failing within a few seconds if the
    /// server cannot be reached.
    pub fn connect(url: &str) -> Result<Self, QueueError> {
        let client = redis::Client::open(url).map_err(|e| QueueError(format!("{url}: {e}")))?;
        let broker = RedisBroker {
            url: url.to_string(),
            client,
            conn: Mutex::new(None),
            holders: Mutex::default(),
            last_renew: Mutex::new(Instant::now()),
        };
        let mut conn = broker.conn.lock().unwrap_or_else(|e| e.into_inner());
        *conn = Some(broker.open()?);
        drop(conn);
        Ok(broker)
    }

    fn open(&self) -> Result<redis::Connection, QueueError> {
        let err = |e: redis::RedisError| QueueError(format!("{}: {e}", self.url));
        let conn = self
            .client
            .get_connection_with_timeout(Duration::from_secs(3))
            .map_err(err)?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(err)?;
        conn.set_write_timeout(Some(Duration::from_secs(10)))
            .map_err(err)?;
        Ok(conn)
    }

    /// Runs `f` on the connection; after a dropped connection, reconnects and runs it once
    /// more (every call here is safe to repeat: pops carry a nonce).
    fn with_conn<T>(
        &self,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, QueueError> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 0..2 {
            if guard.is_none() {
                *guard = Some(self.open()?);
            }
            let Some(conn) = guard.as_mut() else { continue };
            match f(conn) {
                Ok(v) => return Ok(v),
                Err(e) if attempt == 0 && (e.is_io_error() || e.is_connection_dropped()) => {
                    tracing::warn!(url = self.url, error = %e, "redis connection lost; reconnecting");
                    *guard = None;
                }
                Err(e) => return Err(QueueError(format!("{}: {e}", self.url))),
            }
        }
        Err(QueueError(format!("{}: connection lost", self.url)))
    }

    fn run<T: redis::FromRedisValue>(
        &self,
        body: &str,
        queue: &str,
        args: &[String],
    ) -> Result<T, QueueError> {
        let script = Script::new(&format!("{NOW}{END_LEASE}{body}"));
        self.with_conn(|conn| {
            let mut invocation = script.prepare_invoke();
            for k in keys(queue) {
                invocation.key(k);
            }
            for a in args {
                invocation.arg(a);
            }
            invocation.invoke(conn)
        })
    }
}

impl Broker for RedisBroker {
    fn pop(&self, queue: &str, holder: &str) -> Result<Popped, QueueError> {
        let nonce = uuid::Uuid::new_v4().to_string();
        let v: Value = self.run(POP, queue, &[holder.into(), ttl_ms(), nonce])?;
        let popped = match v {
            Value::Nil => Popped::Empty,
            Value::Int(-1) => Popped::Pending,
            Value::Array(parts) => match parts.as_slice() {
                [Value::Int(id), Value::BulkString(item)] => {
                    Popped::Item(u64::try_from(*id).unwrap_or(0), item.clone())
                }
                _ => return Err(QueueError(format!("{}: unexpected pop reply", self.url))),
            },
            other => {
                return Err(QueueError(format!(
                    "{}: unexpected pop reply {other:?}",
                    self.url
                )));
            }
        };
        if let Popped::Item(..) = popped {
            self.holders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((queue.to_string(), holder.to_string()));
        }
        Ok(popped)
    }

    fn ack(&self, queue: &str, id: u64, holder: &str) -> Result<bool, QueueError> {
        let done: i64 = self.run(ACK, queue, &[id.to_string(), holder.into()])?;
        Ok(done == 1)
    }

    fn push(&self, queue: &str, body: &[u8]) -> Result<(), QueueError> {
        self.push_all(queue, &[body.to_vec()])
    }

    fn len(&self, queue: &str) -> Result<u64, QueueError> {
        self.with_conn(|conn| redis::cmd("LLEN").arg(queue).query::<u64>(conn))
    }

    fn settle(&self, holder: &str, queues: &[String], success: bool) -> Result<(), QueueError> {
        let flag = if success { "1" } else { "0" };
        for q in queues {
            let _: i64 = self.run(SETTLE, q, &[holder.into(), flag.into()])?;
            self.holders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(q.clone(), holder.to_string()));
        }
        Ok(())
    }

    fn keepalive(&self) {
        {
            let mut last = self.last_renew.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < lease_ttl() / 3 {
                return;
            }
            *last = Instant::now();
        }
        let holders: Vec<(String, String)> = self
            .holders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        for (q, holder) in holders {
            if let Err(e) = self.run::<i64>(RENEW, &q, &[holder, ttl_ms()]) {
                tracing::warn!(queue = q, error = %e, "renewing leases failed");
            }
        }
    }
}

impl RedisBroker {
    /// Appends items in one `RPUSH`: all or none.
    pub fn push_all(&self, queue: &str, items: &[Vec<u8>]) -> Result<(), QueueError> {
        if items.is_empty() {
            return Ok(());
        }
        self.with_conn(|conn| {
            let mut cmd = redis::cmd("RPUSH");
            cmd.arg(queue);
            for i in items {
                cmd.arg(i.as_slice());
            }
            cmd.query::<i64>(conn).map(|_| ())
        })
    }

    /// Deletes the items waiting in `queue` (leased ones stay with their pods).
    pub fn purge(&self, queue: &str) -> Result<u64, QueueError> {
        self.with_conn(|conn| {
            let n: u64 = redis::cmd("LLEN").arg(queue).query(conn)?;
            redis::cmd("DEL").arg(queue).query::<i64>(conn)?;
            Ok(n)
        })
    }
}
