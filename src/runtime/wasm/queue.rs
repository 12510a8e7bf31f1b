//! The `wasmjob_queue` host functions a guest imports to use its granted work queues (the
//! guest side is the `wasmjob-queue` crate in `guests/queue`). Every call checks the grant
//! and every guest pointer; a bad pointer is an error code, never a host fault.
//!
//! Status codes: 0 ok, 1 empty (pop), 2 pending (pop: nothing waiting, but other pods hold
//! leases whose items may come back; ask again later), -1 denied, -2 buffer too small (pop; the item is kept
//! for the pod and the needed length written), -3 broker unavailable, -4 invalid arguments,
//! -5 not leased (ack).

use std::collections::HashMap;

use wasmtime::{Caller, Extern, Linker};

use super::pod::PodState;
use crate::queue::{Popped, QueueGrant};

const OK: i32 = 0;
const EMPTY: i32 = 1;
const PENDING: i32 = 2;
const DENIED: i32 = -1;
const TOO_SMALL: i32 = -2;
const UNAVAILABLE: i32 = -3;
const INVALID: i32 = -4;
const NOT_LEASED: i32 = -5;

/// The largest item a guest can push: queues carry work descriptions, not data sets.
pub const MAX_ITEM_BYTES: usize = 1 << 20;

/// A pod's queue access during one container run.
pub struct QueueAccess {
    grant: QueueGrant,
    /// Items popped but not yet delivered (the guest's buffer was too small), by queue.
    pending: HashMap<String, (u64, Vec<u8>)>,
}

impl QueueAccess {
    /// Access as `grant` allows.
    pub fn new(grant: QueueGrant) -> Self {
        QueueAccess {
            grant,
            pending: HashMap::new(),
        }
    }
}

/// Reads `len` bytes at `ptr` of the guest's memory.
fn read(caller: &mut Caller<'_, PodState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let mem = match caller.get_export("memory") {
        Some(Extern::Memory(m)) => m,
        _ => return None,
    };
    let (ptr, len) = (
        usize::try_from(ptr as u32).ok()?,
        usize::try_from(len as u32).ok()?,
    );
    mem.data(&caller)
        .get(ptr..ptr.checked_add(len)?)
        .map(<[u8]>::to_vec)
}

/// Writes `bytes` at `ptr` of the guest's memory.
fn write(caller: &mut Caller<'_, PodState>, ptr: i32, bytes: &[u8]) -> bool {
    let mem = match caller.get_export("memory") {
        Some(Extern::Memory(m)) => m,
        _ => return false,
    };
    let ptr = ptr as u32 as usize;
    match ptr
        .checked_add(bytes.len())
        .and_then(|end| mem.data_mut(&mut *caller).get_mut(ptr..end))
    {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

/// The queue named at (`ptr`, `len`), if the pod may use it; else the status to return.
fn granted(caller: &mut Caller<'_, PodState>, ptr: i32, len: i32) -> Result<String, i32> {
    if len as u32 > 253 {
        return Err(INVALID);
    }
    let name = read(caller, ptr, len).ok_or(INVALID)?;
    let name = String::from_utf8(name).map_err(|_| INVALID)?;
    match &caller.data().queue {
        Some(q) if q.grant.allows(&name) => Ok(name),
        _ => Err(DENIED),
    }
}

fn pop(
    mut caller: Caller<'_, PodState>,
    q: i32,
    q_len: i32,
    buf: i32,
    cap: i32,
    id_out: i32,
    len_out: i32,
) -> i32 {
    let queue = match granted(&mut caller, q, q_len) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let Some(access) = caller.data_mut().queue.as_mut() else {
        return DENIED;
    };
    let item = match access.pending.remove(&queue) {
        Some(item) => item,
        None => match access.grant.broker.pop(&queue, &access.grant.holder) {
            Ok(Popped::Item(id, body)) => (id, body),
            Ok(Popped::Empty) => return EMPTY,
            Ok(Popped::Pending) => return PENDING,
            Err(e) => {
                tracing::warn!(queue, error = %e, "queue pop failed");
                return UNAVAILABLE;
            }
        },
    };
    let len = u32::try_from(item.1.len()).unwrap_or(u32::MAX);
    if !write(&mut caller, len_out, &len.to_le_bytes()) {
        keep(&mut caller, queue, item);
        return INVALID;
    }
    if item.1.len() > cap as u32 as usize {
        keep(&mut caller, queue, item);
        return TOO_SMALL;
    }
    if !write(&mut caller, buf, &item.1) || !write(&mut caller, id_out, &item.0.to_le_bytes()) {
        keep(&mut caller, queue, item);
        return INVALID;
    }
    OK
}

/// Keeps a popped item for the pod's next `pop` of the same queue (it stays leased).
fn keep(caller: &mut Caller<'_, PodState>, queue: String, item: (u64, Vec<u8>)) {
    if let Some(access) = caller.data_mut().queue.as_mut() {
        access.pending.insert(queue, item);
    }
}

fn ack(mut caller: Caller<'_, PodState>, q: i32, q_len: i32, id: i64) -> i32 {
    let queue = match granted(&mut caller, q, q_len) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let Some(access) = caller.data().queue.as_ref() else {
        return DENIED;
    };
    match access
        .grant
        .broker
        .ack(&queue, id as u64, &access.grant.holder)
    {
        Ok(true) => OK,
        Ok(false) => NOT_LEASED,
        Err(e) => {
            tracing::warn!(queue, error = %e, "queue ack failed");
            UNAVAILABLE
        }
    }
}

fn push(mut caller: Caller<'_, PodState>, q: i32, q_len: i32, body: i32, body_len: i32) -> i32 {
    let queue = match granted(&mut caller, q, q_len) {
        Ok(n) => n,
        Err(code) => return code,
    };
    if body_len as u32 as usize > MAX_ITEM_BYTES {
        return INVALID;
    }
    let Some(bytes) = read(&mut caller, body, body_len) else {
        return INVALID;
    };
    let Some(access) = caller.data().queue.as_ref() else {
        return DENIED;
    };
    match access.grant.broker.push(&queue, &bytes) {
        Ok(()) => OK,
        Err(e) => {
            tracing::warn!(queue, error = %e, "queue push failed");
            UNAVAILABLE
        }
    }
}

fn len(mut caller: Caller<'_, PodState>, q: i32, q_len: i32, out: i32) -> i32 {
    let queue = match granted(&mut caller, q, q_len) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let Some(access) = caller.data().queue.as_ref() else {
        return DENIED;
    };
    match access.grant.broker.len(&queue) {
        Ok(n) => {
            if write(&mut caller, out, &n.to_le_bytes()) {
                OK
            } else {
                INVALID
            }
        }
        Err(e) => {
            tracing::warn!(queue, error = %e, "queue len failed");
            UNAVAILABLE
        }
    }
}

/// Adds the `wasmjob_queue` functions to `linker`. Modules that do not import them are not
/// affected; a pod without a grant gets "denied" from every call.
pub fn add_to_linker(linker: &mut Linker<PodState>) -> wasmtime::Result<()> {
    const M: &str = "wasmjob_queue";
    linker.func_wrap(M, "pop", pop)?;
    linker.func_wrap(M, "ack", ack)?;
    linker.func_wrap(M, "push", push)?;
    linker.func_wrap(M, "len", len)?;
    Ok(())
}
