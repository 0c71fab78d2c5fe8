//! Topic and partition configuration.
//!
//! Configuration arrives as Kafka-style `key=value` pairs (from the command
//! line, a config file or a request) and leaves as a typed [`LogConfig`]. Every
//! key is validated; unknown keys are rejected with the list of known ones, so
//! a typo never silently falls back to a default. This module owns parsing
//! and validation only; it does not touch files.

mod log_config;
mod names;

pub use log_config::{CleanupPolicy, FsyncPolicy, LogConfig};
pub use names::{
    validate_partition_count, validate_topic_name, MAX_PARTITIONS, MAX_TOPIC_NAME_LEN,
};
