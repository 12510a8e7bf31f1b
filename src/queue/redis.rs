//! The Redis broker, selected by a `redis://` `BROKER_URL`: how users outgrow one machine,
//! several wasmjob hosts draining one queue. The reliable-queue pattern: producers `RPUSH`
//! items to the list `QUEUE` (`redis-cli rpush job2 apple`, as the docs do); a pop `LMOVE`s
//! the head to `QUEUE:processing` and records a lease (id, holder, expiry); acknowledging
//! removes it; a lease whose host died expires and its item goes back to the head of the
//! queue. Each step is one Lua script, so it is atomic however many hosts pop at once.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use redis::Script;

use super::{Broker, QueueError};

/// How long a lease lives unless its host renews it (it does, every third of this).
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// Requeues expired leases of the queue, then leases its head to ARGV[1] until ARGV[2] (ms).
/// Returns `{id, item}` or nil.
const POP: &str = r"
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[3])
for _, id in ipairs(expired) do
  local item = redis.call('HGET', KEYS[4], id)
  local holder = redis.call('HGET', KEYS[5], id)
  if item then
    redis.call('LREM', KEYS[2], 1, item)
    redis.call('LPUSH', KEYS[1], item)
  end
  if holder then redis.call('SREM', KEYS[1] .. ':held:' .. holder, id) end
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
end
local item = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not item then return false end
local id = redis.call('INCR', KEYS[6])
redis.call('ZADD', KEYS[3], ARGV[2], id)
redis.call('HSET', KEYS[4], id, item)
redis.call('HSET', KEYS[5], id, ARGV[1])
redis.call('SADD', KEYS[1] .. ':held:' .. ARGV[1], id)
return {id, item}
";

/// Ends lease ARGV[1] if ARGV[2] holds it: acknowledged (ARGV[3] = 1) or requeued (0).
const END: &str = r"
if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[2] then return 0 end
local item = redis.call('HGET', KEYS[4], ARGV[1])
redis.call('LREM', KEYS[2], 1, item)
if ARGV[3] == '0' then redis.call('LPUSH', KEYS[1], item) end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('SREM', KEYS[1] .. ':held:' .. ARGV[2], ARGV[1])
return 1
";

/// Ends every lease ARGV[1] holds: acknowledged (ARGV[2] = 1) or requeued (0).
const SETTLE: &str = r"
local held = KEYS[1] .. ':held:' .. ARGV[1]
local ids = redis.call('SMEMBERS', held)
for _, id in ipairs(ids) do
  if redis.call('HGET', KEYS[5], id) == ARGV[1] then
    local item = redis.call('HGET', KEYS[4], id)
    redis.call('LREM', KEYS[2], 1, item)
    if ARGV[2] == '0' then redis.call('LPUSH', KEYS[1], item) end
    redis.call('ZREM', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
  end
end
redis.call('DEL', held)
return #ids
";

/// Pushes the expiry of every lease ARGV[1] holds to ARGV[2] (ms).
const RENEW: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1] .. ':held:' .. ARGV[1])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[3], 'XX', ARGV[2], id) end
return #ids
";

/// Queues on one Redis server.
pub struct RedisBroker {
    url: String,
    conn: Mutex<redis::Connection>,
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

fn err(url: &str) -> impl Fn(redis::RedisError) -> QueueError + '_ {
    move |e| QueueError(format!("{url}: {e}"))
}

impl RedisBroker {
    /// Connects to `url` (`redis://host:port[/db]`), failing within a few seconds if the
    /// server cannot be reached.
    pub fn connect(url: &str) -> Result<Self, QueueError> {
        let client = redis::Client::open(url).map_err(err(url))?;
        let conn = client
            .get_connection_with_timeout(Duration::from_secs(3))
            .map_err(err(url))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(err(url))?;
        conn.set_write_timeout(Some(Duration::from_secs(10)))
            .map_err(err(url))?;
        Ok(RedisBroker {
            url: url.to_string(),
            conn: Mutex::new(conn),
            holders: Mutex::default(),
            last_renew: Mutex::new(Instant::now()),
        })
    }

    fn run<T: redis::FromRedisValue>(
        &self,
        script: &str,
        queue: &str,
        args: &[String],
    ) -> Result<T, QueueError> {
        let script = Script::new(script);
        let mut invocation = script.prepare_invoke();
        for k in keys(queue) {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(a);
        }
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        invocation.invoke(&mut *conn).map_err(err(&self.url))
    }

    fn expiry() -> i64 {
        let ttl = i64::try_from(LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
        Timestamp::now().as_millisecond().saturating_add(ttl)
    }
}

impl Broker for RedisBroker {
    fn pop(&self, queue: &str, holder: &str) -> Result<Option<(u64, Vec<u8>)>, QueueError> {
        let now = Timestamp::now().as_millisecond();
        let popped: Option<(u64, Vec<u8>)> = self.run(
            POP,
            queue,
            &[holder.into(), Self::expiry().to_string(), now.to_string()],
        )?;
        if popped.is_some() {
            self.holders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((queue.to_string(), holder.to_string()));
        }
        Ok(popped)
    }

    fn ack(&self, queue: &str, id: u64, holder: &str) -> Result<bool, QueueError> {
        let done: i64 = self.run(END, queue, &[id.to_string(), holder.into(), "1".into()])?;
        Ok(done == 1)
    }

    fn push(&self, queue: &str, body: &[u8]) -> Result<(), QueueError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        redis::cmd("RPUSH")
            .arg(queue)
            .arg(body)
            .query::<i64>(&mut *conn)
            .map(|_| ())
            .map_err(err(&self.url))
    }

    fn len(&self, queue: &str) -> Result<u64, QueueError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        redis::cmd("LLEN")
            .arg(queue)
            .query::<u64>(&mut *conn)
            .map_err(err(&self.url))
    }

    fn settles_in_store(&self) -> bool {
        false
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
            if last.elapsed() < LEASE_TTL / 3 {
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
            let args = [holder.clone(), Self::expiry().to_string()];
            if let Err(e) = self.run::<i64>(RENEW, &q, &args) {
                tracing::warn!(queue = q, error = %e, "renewing leases failed");
            }
        }
    }
}
