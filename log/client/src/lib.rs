//! spool-client: one client API over any transport.
//!
//! A [`Client`] sends protocol messages through a [`Transport`]:
//! [`Client::connect`] speaks gRPC to a broker or cluster (splitting
//! requests by partition leader and following leader and coordinator
//! changes); an embedded node (spool-broker's `Node`) hands out clients
//! whose transport calls the broker in the same process. Both carry the
//! same messages, so the [`Producer`], [`Consumer`] and [`Admin`] built on
//! a client behave the same either way, and a program moves from embedded
//! to a cluster by changing one line.
//!
//! This crate depends on spool-protocol and spool-record only: a program
//! that connects to a cluster compiles no storage, no Raft and no broker.

mod admin;
mod consumer;
mod error;
pub mod group;
mod grpc;
mod partitioner;
mod producer;
mod records;
mod routing;
mod transport;

use std::sync::Arc;

pub use admin::{Admin, PartitionInfo, TopicInfo};
pub use consumer::{AbortedFilter, Consumer, ConsumerConfig, OffsetReset};
pub use error::{ClientError, Result};
pub use group::{Assignor, GroupSettings, MoveRecorder, PartitionMoves, RebalanceListener};
pub use partitioner::partition_for_key;
pub use producer::{GroupMetadata, Producer, ProducerConfig, RecordMetadata};
pub use records::{ConsumerRecord, ProducerRecord};
pub use spool_protocol::coordinator::murmur2;
pub use spool_protocol::{proto, TopicPartition};
pub use transport::{PendingProduce, Transport};

use spool_protocol::proto::{MetadataRequest, TopicMetadata};

/// The default broker address of every client command.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9292";

/// A handle to a broker or cluster, embedded or remote. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    transport: Arc<dyn Transport>,
}

impl Client {
    /// A client sending through `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> Client {
        Client { transport }
    }

    /// Connects to a broker over gRPC (`host:port` or `http://host:port`,
    /// or a comma-separated list of them, tried in order until one
    /// answers, as Kafka's `bootstrap.servers`); the rest of its cluster
    /// is found through it.
    pub async fn connect(address: &str) -> Result<Client> {
        let transport = grpc::GrpcTransport::connect(address).await?;
        Ok(Client::new(Arc::new(transport)))
    }

    pub fn producer(&self, config: ProducerConfig) -> Producer {
        Producer::new(self.clone(), config)
    }

    pub fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.clone(), config)
    }

    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// One topic's metadata; an unknown topic is an error, not an entry
    /// with an error code.
    pub async fn topic_metadata(&self, topic: &str) -> Result<TopicMetadata> {
        let metadata = self
            .metadata(MetadataRequest {
                topics: vec![topic.to_string()],
            })
            .await?;
        let topic_meta = metadata
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::UnknownTopic(topic.to_string()))?;
        match ClientError::from_code(topic_meta.error, &topic_meta.message) {
            Some(e) => Err(e),
            None => Ok(topic_meta),
        }
    }
}
