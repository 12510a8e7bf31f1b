//! `wasmjob-queue`: a guest's handle on the work queues its pod was granted.
//!
//! A pod reaches queues only through its host: the manifest's `env` names the broker
//! (`BROKER_URL`) and the queues (`QUEUE`, comma-separated for several); the host refuses any
//! other queue. An item popped is leased to the pod: [`Item::ack`] marks it done at once, and
//! whatever the pod has not acknowledged is acknowledged when the pod succeeds, or goes back
//! to the queue if the pod fails, is killed, or its host dies.
//!
//! ```no_run
//! let queue = wasmjob_queue::Queue::from_env()?;
//! while let Some(item) = queue.pop()? {
//!     println!("Working on {}", item.text());
//!     item.ack()?;
//! }
//! # Ok::<(), wasmjob_queue::Error>(())
//! ```
//!
//! Built for anything but wasm32, the crate runs against an in-memory queue ([`mock`]) so that
//! guest logic can be unit-tested natively.

use std::borrow::Cow;
use std::fmt;

/// Status codes of the host interface (module `wasmjob_queue`).
mod status {
    pub const OK: i32 = 0;
    pub const EMPTY: i32 = 1;
    pub const PENDING: i32 = 2;
    pub const DENIED: i32 = -1;
    pub const TOO_SMALL: i32 = -2;
    pub const UNAVAILABLE: i32 = -3;
    pub const INVALID: i32 = -4;
    pub const NOT_LEASED: i32 = -5;
}

/// Why a queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The pod's manifest does not grant this queue (or names no broker).
    Denied(String),
    /// `QUEUE` is not set in the pod's environment.
    NoQueue,
    /// The broker could not be reached or failed; the operation may be retried.
    Unavailable,
    /// The item is not leased to this pod (already acknowledged, or its lease was lost).
    NotLeased(u64),
    /// The host rejected the call's arguments.
    Invalid,
    /// A status code this library does not know.
    Other(i32),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Denied(q) => write!(f, "queue {q:?} is not granted to this pod"),
            Error::NoQueue => write!(f, "QUEUE is not set in the pod's environment"),
            Error::Unavailable => write!(f, "the queue broker is unavailable"),
            Error::NotLeased(id) => write!(f, "item {id} is not leased to this pod"),
            Error::Invalid => write!(f, "the host rejected the call"),
            Error::Other(code) => write!(f, "queue call failed with status {code}"),
        }
    }
}

impl std::error::Error for Error {}

fn check(code: i32, queue: &str, id: u64) -> Result<(), Error> {
    match code {
        status::OK => Ok(()),
        status::DENIED => Err(Error::Denied(queue.to_string())),
        status::UNAVAILABLE => Err(Error::Unavailable),
        status::INVALID => Err(Error::Invalid),
        status::NOT_LEASED => Err(Error::NotLeased(id)),
        other => Err(Error::Other(other)),
    }
}

/// A named work queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    name: String,
}

/// One item, leased to this pod until acknowledged (or the pod ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    queue: String,
    id: u64,
    body: Vec<u8>,
}

impl Queue {
    /// The queue named by the pod's `QUEUE` variable (the first, if it lists several).
    pub fn from_env() -> Result<Queue, Error> {
        let names = std::env::var("QUEUE").map_err(|_| Error::NoQueue)?;
        let first = names.split(',').map(str::trim).find(|n| !n.is_empty());
        first.map(Queue::new).ok_or(Error::NoQueue)
    }

    /// The queue `name` (the host checks that the pod may use it).
    pub fn new(name: impl Into<String>) -> Queue {
        Queue { name: name.into() }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the next item, leasing it to this pod; `None` once the queue is drained. While
    /// nothing waits but other pods still hold items (which come back if they fail), it
    /// waits: the queue is not over yet. Acknowledge an item before popping the next: two
    /// pods that each hold an unacknowledged item and pop again would wait on each other.
    pub fn pop(&self) -> Result<Option<Item>, Error> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (code, id, len) = sys::pop(&self.name, &mut buf);
            match code {
                status::OK => {
                    buf.truncate(len as usize);
                    return Ok(Some(Item {
                        queue: self.name.clone(),
                        id,
                        body: buf,
                    }));
                }
                status::EMPTY => return Ok(None),
                status::PENDING => std::thread::sleep(std::time::Duration::from_millis(100)),
                // The host keeps the item for this pod; ask again with room for it.
                status::TOO_SMALL => buf.resize(len as usize, 0),
                other => return check(other, &self.name, 0).map(|()| None),
            }
        }
    }

    /// Appends an item.
    pub fn push(&self, body: impl AsRef<[u8]>) -> Result<(), Error> {
        check(sys::push(&self.name, body.as_ref()), &self.name, 0)
    }

    /// Items waiting (not leased).
    pub fn len(&self) -> Result<u64, Error> {
        let (code, n) = sys::len(&self.name);
        check(code, &self.name, 0).map(|()| n)
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> Result<bool, Error> {
        self.len().map(|n| n == 0)
    }
}

impl Item {
    /// The item's bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The item as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The broker's id of the item.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Marks the item done: it will not be delivered again, whatever becomes of the pod.
    pub fn ack(self) -> Result<(), Error> {
        check(sys::ack(&self.queue, self.id), &self.queue, self.id)
    }
}

#[cfg(target_arch = "wasm32")]
mod sys {
    #[link(wasm_import_module = "wasmjob_queue")]
    unsafe extern "C" {
        #[link_name = "pop"]
        fn host_pop(
            q: *const u8,
            q_len: usize,
            buf: *mut u8,
            cap: usize,
            id: *mut u64,
            len: *mut u32,
        ) -> i32;
        #[link_name = "ack"]
        fn host_ack(q: *const u8, q_len: usize, id: u64) -> i32;
        #[link_name = "push"]
        fn host_push(q: *const u8, q_len: usize, body: *const u8, body_len: usize) -> i32;
        #[link_name = "len"]
        fn host_len(q: *const u8, q_len: usize, out: *mut u64) -> i32;
    }

    pub fn pop(queue: &str, buf: &mut [u8]) -> (i32, u64, u32) {
        let (mut id, mut len) = (0u64, 0u32);
        // SAFETY: every pointer is valid for the length passed with it for the whole call.
        let code = unsafe {
            host_pop(
                queue.as_ptr(),
                queue.len(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut id,
                &mut len,
            )
        };
        (code, id, len)
    }

    pub fn ack(queue: &str, id: u64) -> i32 {
        // SAFETY: the pointer is valid for the length passed with it.
        unsafe { host_ack(queue.as_ptr(), queue.len(), id) }
    }

    pub fn push(queue: &str, body: &[u8]) -> i32 {
        // SAFETY: both pointers are valid for the lengths passed with them.
        unsafe { host_push(queue.as_ptr(), queue.len(), body.as_ptr(), body.len()) }
    }

    pub fn len(queue: &str) -> (i32, u64) {
        let mut n = 0u64;
        // SAFETY: the pointers are valid for the call.
        let code = unsafe { host_len(queue.as_ptr(), queue.len(), &mut n) };
        (code, n)
    }
}

#[cfg(not(target_arch = "wasm32"))]
use mock as sys;

/// An in-memory stand-in for the host, used when the crate is built natively (tests).
#[cfg(not(target_arch = "wasm32"))]
pub mod mock {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, VecDeque};

    use super::status;

    #[derive(Default)]
    struct State {
        next_id: u64,
        queues: BTreeMap<String, VecDeque<(u64, Vec<u8>)>>,
        leased: BTreeMap<u64, (String, Vec<u8>)>,
        denied: Vec<String>,
    }

    thread_local! {
        static STATE: RefCell<State> = RefCell::default();
    }

    /// Appends items to `queue` (as a producer outside the pod would).
    pub fn seed(queue: &str, items: &[&str]) {
        for item in items {
            push(queue, item.as_bytes());
        }
    }

    /// Makes calls on `queue` fail as a queue the manifest does not grant.
    pub fn deny(queue: &str) {
        STATE.with(|s| s.borrow_mut().denied.push(queue.to_string()));
    }

    /// Items leased and not acknowledged.
    pub fn leased() -> Vec<String> {
        STATE.with(|s| {
            s.borrow()
                .leased
                .values()
                .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                .collect()
        })
    }

    /// Empties every queue.
    pub fn reset() {
        STATE.with(|s| *s.borrow_mut() = State::default());
    }

    fn denied(queue: &str) -> bool {
        STATE.with(|s| s.borrow().denied.iter().any(|q| q == queue))
    }

    pub(crate) fn pop(queue: &str, buf: &mut [u8]) -> (i32, u64, u32) {
        if denied(queue) {
            return (status::DENIED, 0, 0);
        }
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let Some((id, body)) = s.queues.get_mut(queue).and_then(VecDeque::pop_front) else {
                return (status::EMPTY, 0, 0);
            };
            if body.len() > buf.len() {
                let len = body.len() as u32;
                s.queues
                    .entry(queue.into())
                    .or_default()
                    .push_front((id, body));
                return (status::TOO_SMALL, 0, len);
            }
            buf[..body.len()].copy_from_slice(&body);
            let len = body.len() as u32;
            s.leased.insert(id, (queue.to_string(), body));
            (status::OK, id, len)
        })
    }

    pub(crate) fn ack(queue: &str, id: u64) -> i32 {
        if denied(queue) {
            return status::DENIED;
        }
        STATE.with(|s| match s.borrow_mut().leased.remove(&id) {
            Some(_) => status::OK,
            None => status::NOT_LEASED,
        })
    }

    pub(crate) fn push(queue: &str, body: &[u8]) -> i32 {
        if denied(queue) {
            return status::DENIED;
        }
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.next_id += 1;
            let id = s.next_id;
            s.queues
                .entry(queue.into())
                .or_default()
                .push_back((id, body.to_vec()));
            status::OK
        })
    }

    pub(crate) fn len(queue: &str) -> (i32, u64) {
        if denied(queue) {
            return (status::DENIED, 0);
        }
        STATE.with(|s| {
            (
                status::OK,
                s.borrow().queues.get(queue).map_or(0, |q| q.len() as u64),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_order_and_acks_leases() {
        mock::reset();
        mock::seed("fruit", &["apple", "banana"]);
        let q = Queue::new("fruit");
        assert_eq!(q.len(), Ok(2));
        let a = q.pop().unwrap().unwrap();
        assert_eq!(a.text(), "apple");
        assert_eq!(mock::leased(), ["apple"]);
        a.ack().unwrap();
        assert!(mock::leased().is_empty());
        assert_eq!(q.pop().unwrap().unwrap().text(), "banana");
        assert_eq!(q.pop(), Ok(None));
    }

    #[test]
    fn large_items_are_fetched_whole() {
        mock::reset();
        let big = "x".repeat(200_000);
        mock::seed("big", &[&big]);
        let item = Queue::new("big").pop().unwrap().unwrap();
        assert_eq!(item.body().len(), 200_000);
    }

    #[test]
    fn a_queue_not_granted_is_denied() {
        mock::reset();
        mock::deny("secret");
        let q = Queue::new("secret");
        assert_eq!(q.pop(), Err(Error::Denied("secret".into())));
        assert_eq!(q.push("x"), Err(Error::Denied("secret".into())));
    }
}
