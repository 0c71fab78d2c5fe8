//! spool-broker: a broker, and the services that put it on the network.
//!
//! - [`broker`]: the [`Broker`]: topics and their partitions over Raft
//!   replicas of segment logs, consumer groups, transactions, producer
//!   ids, and the cluster member that keeps them in step with the
//!   metadata. It answers every request in protocol types and knows no
//!   transport.
//! - [`grpc`]: the tonic service in front of a broker (with the Raft
//!   peers' service on the same port), and the Prometheus endpoint.
//! - [`kafka`]: Kafka's wire protocol, each request translated to the
//!   broker's own.
//! - [`embedded`]: the client transport that calls a broker in the same
//!   process.
//! - [`node`]: a whole broker started from one [`NodeConfig`], with its
//!   listeners or embedded: what the `spool broker` command, tests and
//!   embedded programs start.
//!
//! Dependencies point down: spool-broker uses spool-raft (replication,
//! metadata), spool-storage, spool-record and spool-protocol, and
//! spool-client only to call other brokers (transaction markers,
//! verifying a transaction's partitions). Nothing below it knows it.

pub mod broker;
pub mod embedded;
mod error;
pub mod grpc;
pub mod kafka;
pub mod node;

pub use broker::{Broker, BrokerConfig, ClusterConfig};
pub use embedded::EmbeddedTransport;
pub use error::{respond, BrokerError, Result};
pub use node::{Node, NodeConfig};
