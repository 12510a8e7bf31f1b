//! `sleep`: waits for the sum of its operands, as coreutils' `sleep` does: `sleep 1`,
//! `sleep 0.5`, `sleep 1m 30s` (suffixes `s`, `m`, `h`, `d`), `sleep infinity`; it takes no
//! options and no exponents. It is the image of pods that only wait
//! (`benches/sleepers.yaml`), as busybox's `sleep` is on a cluster.
//!
//! It is written without std and without wasi-libc's start-up, so that a waiting pod costs
//! the host what waiting costs: its module has no data, no table and no heap, and a run
//! touches one page of its memory (the stack). A std guest's run touches six (data, stack,
//! heap) and a table, and each first touch is a page fault, some of them with a TLB shootdown
//! on every core; a module with data also has its image mapped into each fresh pool slot.
//! For 10,000 sleeping pods the std testbed took a third longer in all. Built as a `cdylib`
//! that exports `_start` itself: a `bin` gets wasi-libc's `_start`, whose thread-pointer
//! set-up reads and then writes a page of data. Messages go through [`say!`] (see `text`),
//! the suffixes through comparisons rather than a table: no data at all.
//!
//! Exit codes: 0 after the wait; 1 for a missing or invalid operand (reported on stderr with
//! coreutils' wording), a command line too long, or a wait the host refused.

// On its target it has no std; elsewhere (the guests' native unit tests) it is a stub.
#![cfg_attr(target_os = "wasi", no_std)]

#[cfg(target_os = "wasi")]
mod command;
// Built natively, only its tests use it.
#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
mod duration;
#[cfg(target_os = "wasi")]
mod text;
#[cfg(target_os = "wasi")]
mod wasi;
