//! Controllers: pure decisions from (object, observed pods, now) to actions.

pub mod backoff;
pub mod cronjob;
pub mod indexes;
pub mod job;
pub mod ttl;
