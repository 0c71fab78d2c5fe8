//! spool-log: the log core of spool.
//!
//! This crate owns everything between a producer's encoded record batch and
//! the bytes on disk:
//!
//! - [`record`]: the record batch format (Kafka's v2 layout, with the Raft
//!   term in the partition-leader-epoch slot). Producers encode a batch once;
//!   the log validates it with one CRC pass and stores it as-is.
//! - [`storage`]: the segment log of one partition (append, read, truncate,
//!   time lookup, recovery, retention, compaction) and a [`storage::LogManager`]
//!   that runs background flushing, retention and cleaning for many logs.
//! - [`config`]: topic and partition configuration, validated with clear
//!   errors.
//!
//! Data flows one way: `config` is used by `storage`, which uses `record`;
//! `record` depends on nothing else in the crate.

pub mod config;
pub mod error;
pub mod record;
pub mod storage;

pub use error::{LogError, Result};
