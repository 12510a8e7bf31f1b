//! Controllers: pure decisions from (object, observed pods, now) to actions.

pub mod backoff;
pub mod cronjob;
pub mod indexes;
pub mod job;
pub mod pod_failure;
pub mod success_policy;
pub mod tally;
pub mod ttl;
