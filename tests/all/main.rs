//! Integration tests: the `wasmjob` binary on real guests, and the host on the fake runtime.
//! One test binary, so the guests and the crate are built once.

mod cli;
mod cron;
mod host;
mod indexed;
mod policies;
mod queue;
mod sandbox;
mod state;
mod support;
