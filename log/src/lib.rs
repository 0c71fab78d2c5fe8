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
//! - [`proto`]: the gRPC protocol types, generated from `proto/spool.proto`.
//! - [`consumer_protocol`]: Kafka's consumer-group subscription and
//!   assignment encoding, shared by the coordinator and the client.
//! - [`broker`]: topics and partitions over storage, serving produce, fetch,
//!   offsets and administration requests in protocol types.
//! - [`server`]: the tonic gRPC service in front of a broker.
//! - [`client`]: `Client` with two transports (embedded broker, gRPC), and
//!   the producer, consumer and admin built on it.
//!
//! Data flows one way: `client` → (`server` →) `broker` → `storage` →
//! `record`; `config` and `proto` are shared vocabulary.

pub mod broker;
pub mod client;
pub mod config;
pub mod consumer_protocol;
pub mod error;
pub mod record;
pub mod server;
pub mod storage;

/// The gRPC protocol (package `spool.v1`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("spool.v1");
}

pub use error::{LogError, Result};
