//! spool-protocol: what brokers and clients say to each other.
//!
//! - [`proto`]: the gRPC messages and services (package `spool.v1`),
//!   generated from `proto/spool.proto`; every per-partition result carries
//!   an [`ErrorCode`](proto::ErrorCode) and a message.
//! - [`with_rpcs!`]: the list of RPCs, written once; the client's
//!   transports and the broker's gRPC handlers are generated from it, so
//!   they cannot drift apart.
//! - [`errors`]: filling a response's error code and message.
//! - [`coordinator`]: the internal topics that coordinate groups and
//!   transactions, and how a key finds its coordinating partition.
//! - [`consumer_protocol`]: Kafka's subscription and assignment encoding,
//!   shared by the group coordinator and the client.
//! - [`transport`]: the gRPC limits both ends agree on.
//!
//! It holds vocabulary, not behaviour: no storage, no Raft, no broker and
//! no client logic, so every other layer can depend on it.

pub mod consumer_protocol;
pub mod coordinator;
mod error;
pub mod errors;
mod rpcs;
pub mod transport;

pub use error::{ProtocolError, Result};

/// The gRPC protocol (package `spool.v1`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("spool.v1");
}

/// A topic and partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}
