//! Kubernetes API objects: types, defaulting, validation and manifest reading. Pure.

pub mod cronjob;
pub mod defaults;
pub mod field;
pub mod job_rules;
pub mod manifest;
pub mod names;
pub mod quantity;
pub mod types;
pub mod validation;
