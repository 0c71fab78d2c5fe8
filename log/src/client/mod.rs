//! The client: one API over two transports.
//!
//! [`Client::embedded`] runs a broker inside the process and calls it
//! directly; [`Client::connect`] speaks gRPC to a broker. Both carry the same
//! protocol messages, so the [`Producer`], [`Consumer`] and [`Admin`] built
//! on a client behave the same either way, and a program moves from embedded
//! to a cluster by changing one line.

mod admin;
mod consumer;
pub mod group;
mod partitioner;
mod producer;
mod routing;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tonic::transport::Channel;

pub use admin::{Admin, PartitionInfo, TopicInfo};
pub use consumer::{AbortedFilter, Consumer, ConsumerConfig, OffsetReset};
pub use group::{Assignor, GroupSettings, RebalanceListener};
pub use partitioner::murmur2;
pub use producer::{GroupMetadata, Producer, ProducerConfig, RecordMetadata};

use crate::broker::{Broker, BrokerConfig};
use crate::proto::*;
use crate::server::{CONNECTION_WINDOW_BYTES, STREAM_WINDOW_BYTES};
use crate::{LogError, Result};

/// The default broker address of every client command.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9292";

/// A record to produce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Shared, so a program sending many records to one topic clones a
    /// reference, not the name.
    pub topic: Arc<str>,
    /// `None`: chosen by key hash, or sticky for keyless records.
    pub partition: Option<u32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// `None`: the producer's clock at send time.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }
}

/// A consumed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
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

#[derive(Clone)]
enum Transport {
    Embedded(Arc<Broker>),
    Grpc {
        routes: Arc<routing::Routes>,
        address: String,
    },
}

/// A handle to a broker, embedded or remote. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
}

impl Client {
    /// Runs a broker on `data_dir` inside this process.
    pub async fn embedded(data_dir: impl AsRef<Path>) -> Result<Client> {
        let broker = Broker::open(BrokerConfig::new(data_dir.as_ref())).await?;
        Ok(Client::from_broker(broker))
    }

    /// Wraps a broker this process already runs.
    pub fn from_broker(broker: Arc<Broker>) -> Client {
        Client {
            transport: Transport::Embedded(broker),
        }
    }

    /// Connects to a broker over gRPC (`host:port` or `http://host:port`).
    pub async fn connect(address: &str) -> Result<Client> {
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let transport_error = |e: &dyn std::fmt::Display| LogError::Transport {
            address: address.to_string(),
            reason: e.to_string(),
        };
        let channel = Channel::from_shared(uri)
            .map_err(|e| transport_error(&e))?
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .connect_timeout(std::time::Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| transport_error(&e))?;
        let routes = routing::Routes::new(routing::spool_client(channel), address);
        Ok(Client {
            transport: Transport::Grpc {
                routes: Arc::new(routes),
                address: address.to_string(),
            },
        })
    }

    /// The embedded broker, if this client runs one.
    pub fn embedded_broker(&self) -> Option<&Arc<Broker>> {
        match &self.transport {
            Transport::Embedded(broker) => Some(broker),
            Transport::Grpc { .. } => None,
        }
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
            .ok_or_else(|| LogError::UnknownTopic(topic.to_string()))?;
        match LogError::from_code(topic_meta.error, &topic_meta.message) {
            Some(e) => Err(e),
            None => Ok(topic_meta),
        }
    }
}

/// One method per RPC, dispatching on the transport. `async` RPCs await the
/// broker's method; `sync` ones call it directly.
macro_rules! rpc {
    (@call async $broker:ident . $name:ident ($request:ident)) => { $broker.$name($request).await };
    (@call sync $broker:ident . $name:ident ($request:ident)) => { $broker.$name($request) };
    // Produce, fetch and list-offsets go to each partition's leader.
    (@grpc produce $routes:ident $address:ident $request:ident) => { rpc!(@routed produce $routes $address $request) };
    (@grpc fetch $routes:ident $address:ident $request:ident) => { rpc!(@routed fetch $routes $address $request) };
    (@grpc list_offsets $routes:ident $address:ident $request:ident) => { rpc!(@routed list_offsets $routes $address $request) };
    (@grpc write_txn_markers $routes:ident $address:ident $request:ident) => { rpc!(@routed write_txn_markers $routes $address $request) };
    // Transaction requests go to the transactional id's coordinator; a
    // producer without one asks any broker for its id.
    (@grpc init_producer_id $routes:ident $address:ident $request:ident) => {
        match $request.transactional_id.is_empty() {
            true => $routes.call_any($request, rpc!(@send init_producer_id $address)).await,
            false => rpc!(@group init_producer_id $routes $address $request),
        }
    };
    (@grpc add_partitions_to_txn $routes:ident $address:ident $request:ident) => { rpc!(@group add_partitions_to_txn $routes $address $request) };
    (@grpc add_offsets_to_txn $routes:ident $address:ident $request:ident) => { rpc!(@group add_offsets_to_txn $routes $address $request) };
    (@grpc end_txn $routes:ident $address:ident $request:ident) => { rpc!(@group end_txn $routes $address $request) };
    (@grpc verify_txn_partition $routes:ident $address:ident $request:ident) => { rpc!(@group verify_txn_partition $routes $address $request) };
    (@grpc abort_transaction $routes:ident $address:ident $request:ident) => { rpc!(@group abort_transaction $routes $address $request) };
    (@grpc txn_offset_commit $routes:ident $address:ident $request:ident) => { rpc!(@group txn_offset_commit $routes $address $request) };
    // Each broker lists the transactional ids it coordinates.
    (@grpc list_transactions $routes:ident $address:ident $request:ident) => {
        $routes
            .call_all($request, rpc!(@send list_transactions $address), merge_transaction_listings)
            .await
    };
    (@grpc describe_transactions $routes:ident $address:ident $request:ident) => {
        describe_each_transaction($routes, $address, $request).await
    };
    // Topic creation and deletion go to the controller's leader.
    (@grpc create_topics $routes:ident $address:ident $request:ident) => { rpc!(@controller create_topics $routes $address $request) };
    (@grpc delete_topics $routes:ident $address:ident $request:ident) => { rpc!(@controller delete_topics $routes $address $request) };
    // Group requests go to the group's coordinator.
    (@grpc join_group $routes:ident $address:ident $request:ident) => { rpc!(@group join_group $routes $address $request) };
    (@grpc sync_group $routes:ident $address:ident $request:ident) => { rpc!(@group sync_group $routes $address $request) };
    (@grpc heartbeat $routes:ident $address:ident $request:ident) => { rpc!(@group heartbeat $routes $address $request) };
    (@grpc leave_group $routes:ident $address:ident $request:ident) => { rpc!(@group leave_group $routes $address $request) };
    (@grpc offset_commit $routes:ident $address:ident $request:ident) => { rpc!(@group offset_commit $routes $address $request) };
    (@grpc offset_fetch $routes:ident $address:ident $request:ident) => { rpc!(@group offset_fetch $routes $address $request) };
    (@group $name:ident $routes:ident $address:ident $request:ident) => {
        $routes.call_group($request, rpc!(@send $name $address)).await
    };
    // Each broker lists the groups it coordinates.
    (@grpc list_groups $routes:ident $address:ident $request:ident) => {
        $routes
            .call_all($request, rpc!(@send list_groups $address), merge_group_listings)
            .await
    };
    // Each group is described by its coordinator.
    (@grpc describe_groups $routes:ident $address:ident $request:ident) => {
        describe_each_group($routes, $address, $request).await
    };
    (@controller $name:ident $routes:ident $address:ident $request:ident) => {
        $routes.call_controller($request, rpc!(@send $name $address)).await
    };
    // One RPC on a given connection, as routing sends it.
    (@send $name:ident $address:ident) => {
        |mut client, request| async move {
            client
                .$name(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| status_error($address, status))
        }
    };
    // Any broker answers the rest alike.
    (@grpc $name:ident $routes:ident $address:ident $request:ident) => {
        $routes.call_any($request, rpc!(@send $name $address)).await
    };
    (@routed $name:ident $routes:ident $address:ident $request:ident) => {
        $routes.call($request, rpc!(@send $name $address)).await
    };
    ($($kind:ident $name:ident($request:ty) -> $response:ty;)*) => {
        impl Client {
            $(
                pub async fn $name(&self, request: $request) -> Result<$response> {
                    match &self.transport {
                        Transport::Embedded(broker) => Ok(rpc!(@call $kind broker.$name(request))),
                        Transport::Grpc { routes, address } => rpc!(@grpc $name routes address request),
                    }
                }
            )*
        }
    };
}

with_rpcs!(rpc);

/// Merges the group listings of several brokers, each group once.
fn merge_group_listings(into: &mut ListGroupsResponse, part: ListGroupsResponse) {
    for listing in part.groups {
        if !into.groups.iter().any(|g| g.group_id == listing.group_id) {
            into.groups.push(listing);
        }
    }
    into.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
}

/// Merges the transaction listings of several brokers, each id once.
fn merge_transaction_listings(into: &mut ListTransactionsResponse, part: ListTransactionsResponse) {
    for listing in part.transactions {
        if !into
            .transactions
            .iter()
            .any(|t| t.transactional_id == listing.transactional_id)
        {
            into.transactions.push(listing);
        }
    }
    into.transactions
        .sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
}

/// DescribeTransactions split into one request per id, each sent to the
/// id's coordinator.
async fn describe_each_transaction(
    routes: &routing::Routes,
    address: &str,
    request: DescribeTransactionsRequest,
) -> Result<DescribeTransactionsResponse> {
    let mut transactions = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let one = routing::DescribeOneTransaction(id);
        let described = routes
            .call_group(
                one,
                |mut client, one: routing::DescribeOneTransaction| async move {
                    let response = client
                        .describe_transactions(DescribeTransactionsRequest {
                            transactional_ids: vec![one.0],
                        })
                        .await
                        .map_err(|status| status_error(address, status))?;
                    Ok(response
                        .into_inner()
                        .transactions
                        .into_iter()
                        .next()
                        .unwrap_or_default())
                },
            )
            .await?;
        transactions.push(described);
    }
    Ok(DescribeTransactionsResponse { transactions })
}

/// DescribeGroups split into one request per group, each sent to the
/// group's coordinator.
async fn describe_each_group(
    routes: &routing::Routes,
    address: &str,
    request: DescribeGroupsRequest,
) -> Result<DescribeGroupsResponse> {
    let mut groups = Vec::with_capacity(request.group_ids.len());
    for group_id in request.group_ids {
        let one = routing::DescribeOneGroup(group_id);
        let described = routes
            .call_group(
                one,
                |mut client, one: routing::DescribeOneGroup| async move {
                    let response = client
                        .describe_groups(DescribeGroupsRequest {
                            group_ids: vec![one.0],
                        })
                        .await
                        .map_err(|status| status_error(address, status))?;
                    Ok(response
                        .into_inner()
                        .groups
                        .into_iter()
                        .next()
                        .unwrap_or_default())
                },
            )
            .await?;
        groups.push(described);
    }
    Ok(DescribeGroupsResponse { groups })
}

fn status_error(address: &str, status: tonic::Status) -> LogError {
    LogError::Transport {
        address: address.to_string(),
        reason: format!("{}: {}", status.code(), status.message()),
    }
}
