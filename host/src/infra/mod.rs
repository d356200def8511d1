//! Infrastructure: what the sections stand on. Modules here import only `config`, `db`,
//! `error` and each other — never a section (a test reads the `use crate::` lines).

pub mod api_usage;
pub mod bus;
pub mod cache;
pub mod cron;
pub mod eventlog;
pub mod hashing;
pub mod jobs;
pub mod livedocs;
pub mod metrics;
pub mod outbound;
pub mod ratelimit;
pub mod redis;
pub mod sandbox;
pub mod secrets;
pub mod template;
