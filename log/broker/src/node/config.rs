//! A node's whole configuration, as one serde struct: the broker
//! configuration file (`spool broker --config FILE`, TOML, every key
//! optional) deserializes into it, the command line overrides its fields,
//! and tests and embedded programs build it in code.
//!
//! Each default is written once, in the layer that uses it (the broker's,
//! the group coordinator's, the Kafka listener's and the log manager's
//! configs); [`NodeConfig::default`] reads them from there. The listen
//! addresses, which only a node has, are defined here.
//! `examples/broker.toml` lists every key with its default, and a test
//! keeps the two equal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use spool_raft::NodeId;
use spool_storage::config::validate_partition_count;
use spool_storage::StorageError;

use crate::broker::{BrokerConfig, ClusterConfig};
use crate::kafka::KafkaConfig;
use crate::{BrokerError, Result};

/// The value of a `*listen` setting that turns that listener off.
pub const OFF: &str = "off";

/// Where a node keeps its data unless told otherwise: a relative directory
/// keeps a first run self-contained.
pub const DEFAULT_DATA_DIR: &str = "spool-data";

/// The gRPC listener: loopback only until the operator decides to expose
/// it. Clients default to the same address.
pub const DEFAULT_LISTEN: &str = spool_client::DEFAULT_BOOTSTRAP;

/// The Prometheus endpoint, next to the client port.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9293";

/// The Kafka protocol listener on Kafka's port, so Kafka clients and tools
/// find it where they look.
pub const DEFAULT_KAFKA_LISTEN: &str = "127.0.0.1:9092";

/// Everything a node is started with. Field names are the keys of the
/// broker configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where partitions and cluster metadata live.
    pub data_dir: PathBuf,
    /// This broker's id, unique in its cluster.
    pub node_id: u32,
    /// gRPC listen address (clients and Raft peers), or `off` for a node
    /// that serves only its own process (embedded).
    pub listen: String,
    /// Prometheus endpoint, or `off`.
    pub metrics_listen: String,
    /// Kafka protocol listener, or `off`.
    pub kafka_listen: String,
    /// Host given to Kafka clients in Metadata and FindCoordinator
    /// (default: the listener's host). Clients connect to this host, so it
    /// must be one they can reach; set it when listening on 0.0.0.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_advertised_host: Option<String>,
    /// Create topics that Kafka clients ask metadata for (Kafka's
    /// `auto.create.topics.enable`).
    pub kafka_auto_create_topics: bool,
    /// Partitions of an auto-created topic (Kafka's `num.partitions`).
    pub kafka_auto_create_partitions: u32,
    /// How long the first rebalance of a new consumer group waits for more
    /// members, in ms (Kafka's `group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// Shortest consumer-group session timeout a member may ask for, in ms.
    pub group_min_session_timeout_ms: u64,
    /// Partitions of `__consumer_offsets`, fixed when a cluster first
    /// starts.
    pub offsets_topic_partitions: u32,
    /// Replicas of each offsets partition (fewer on a smaller cluster).
    pub offsets_topic_replication_factor: u32,
    /// How often retention runs, in ms.
    pub retention_check_interval_ms: u64,
    /// Free bytes kept on the data directory's file system (default 512
    /// MiB, `DEFAULT_MIN_FREE_BYTES`): below it producers are refused with
    /// a retriable storage error until space returns, so a full disk never
    /// stops a partition; 0 keeps no reserve.
    pub storage_min_free_bytes: u64,
    /// Cluster members as `id=host:port`, this broker included; empty for
    /// a single node.
    pub peers: Vec<String>,
    /// Join a running cluster as a new broker instead of founding one.
    pub join: bool,
    /// Defaults for new topics, as topic settings
    /// (`retention.ms = "3600000"`).
    pub topic_defaults: BTreeMap<String, String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        let broker = BrokerConfig::new(DEFAULT_DATA_DIR);
        let kafka = KafkaConfig::new(String::new(), 0);
        NodeConfig {
            data_dir: broker.data_dir,
            node_id: broker.node_id,
            listen: DEFAULT_LISTEN.into(),
            metrics_listen: DEFAULT_METRICS_LISTEN.into(),
            kafka_listen: DEFAULT_KAFKA_LISTEN.into(),
            kafka_advertised_host: None,
            kafka_auto_create_topics: kafka.auto_create_topics,
            kafka_auto_create_partitions: kafka.auto_create_partitions,
            group_initial_rebalance_delay_ms: millis(broker.groups.initial_rebalance_delay),
            group_min_session_timeout_ms: millis(broker.groups.min_session_timeout),
            offsets_topic_partitions: broker.groups.offsets_partitions,
            offsets_topic_replication_factor: broker.groups.offsets_replication_factor,
            retention_check_interval_ms: millis(broker.manager.retention_check_interval),
            storage_min_free_bytes: broker.min_free_bytes,
            peers: Vec::new(),
            join: false,
            topic_defaults: BTreeMap::new(),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A listen setting, `None` when it is `off`.
fn enabled(address: &str) -> Option<&str> {
    (address != OFF).then_some(address)
}

impl NodeConfig {
    /// A node inside a program: data in `data_dir`, no listeners.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            data_dir: data_dir.into(),
            listen: OFF.into(),
            metrics_listen: OFF.into(),
            kafka_listen: OFF.into(),
            ..NodeConfig::default()
        }
    }

    /// Parses a broker configuration file's text.
    pub fn from_toml(text: &str) -> Result<NodeConfig> {
        parse(text, "(text)")
    }

    /// Reads and parses a broker configuration file.
    pub fn from_file(path: &Path) -> Result<NodeConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| BrokerError::io(path, e))?;
        parse(&text, &path.display().to_string())
    }

    /// The gRPC listen address, unless it is `off`.
    pub fn grpc_listen(&self) -> Option<&str> {
        enabled(&self.listen)
    }

    /// The Prometheus endpoint's address, unless it is `off`.
    pub fn metrics_listen(&self) -> Option<&str> {
        enabled(&self.metrics_listen)
    }

    /// The Kafka listener's address, unless it is `off`.
    pub fn kafka_listen(&self) -> Option<&str> {
        enabled(&self.kafka_listen)
    }

    /// The broker's configuration, validated, and its cluster's when it
    /// has peers.
    pub fn broker_config(&self) -> Result<(BrokerConfig, Option<ClusterConfig>)> {
        let mut config = BrokerConfig::new(&self.data_dir);
        config.node_id = self.node_id;
        if let Some(listen) = self.grpc_listen() {
            config.advertised_address = listen.to_string();
        }
        config.groups.min_session_timeout =
            Duration::from_millis(self.group_min_session_timeout_ms);
        config.groups.initial_rebalance_delay =
            Duration::from_millis(self.group_initial_rebalance_delay_ms);
        check_partitions("offsets_topic_partitions", self.offsets_topic_partitions)?;
        config.groups.offsets_partitions = self.offsets_topic_partitions;
        if self.offsets_topic_replication_factor < 1 {
            return Err(invalid(
                "offsets_topic_replication_factor",
                0,
                "must be at least 1",
            ));
        }
        config.groups.offsets_replication_factor = self.offsets_topic_replication_factor;
        config.manager.retention_check_interval =
            Duration::from_millis(self.retention_check_interval_ms.max(1));
        config.min_free_bytes = self.storage_min_free_bytes;
        for (key, value) in &self.topic_defaults {
            config.topic_defaults.set(key, value)?;
        }
        if self.peers.is_empty() {
            return Ok((config, None));
        }
        if self.grpc_listen().is_none() {
            return Err(invalid(
                "listen",
                OFF,
                "a cluster member must listen: its peers reach it there",
            ));
        }
        let peers = parse_peers(&self.peers)?;
        let node = NodeId::from(config.node_id);
        if let Some(address) = peers.get(&node) {
            config.advertised_address = address.clone();
        }
        let mut cluster = ClusterConfig::new(node, peers)?;
        cluster.join = self.join;
        Ok((config, Some(cluster)))
    }

    /// The Kafka listener's settings once it is bound to `local`.
    pub fn kafka_config(&self, local: std::net::SocketAddr) -> Result<KafkaConfig> {
        let host = self
            .kafka_advertised_host
            .clone()
            .unwrap_or_else(|| local.ip().to_string());
        let mut kafka = KafkaConfig::new(host, local.port());
        kafka.auto_create_topics = self.kafka_auto_create_topics;
        check_partitions(
            "kafka_auto_create_partitions",
            self.kafka_auto_create_partitions,
        )?;
        kafka.auto_create_partitions = self.kafka_auto_create_partitions;
        Ok(kafka)
    }
}

fn parse(text: &str, origin: &str) -> Result<NodeConfig> {
    toml::from_str(text).map_err(|e| BrokerError::ConfigFile {
        path: origin.to_string(),
        reason: e.to_string(),
    })
}

fn invalid(key: &str, value: impl ToString, reason: impl ToString) -> BrokerError {
    BrokerError::InvalidConfig {
        key: key.into(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// A partition count, checked as a topic's is, but named by its own key.
fn check_partitions(key: &str, count: u32) -> Result<()> {
    validate_partition_count(count).map_err(|e| match e {
        StorageError::InvalidConfig { reason, .. } => invalid(key, count, reason),
        other => other.into(),
    })
}

/// Parses `id=host:port` entries.
pub fn parse_peers(entries: &[String]) -> Result<BTreeMap<NodeId, String>> {
    entries
        .iter()
        .map(|entry| {
            let (id, address) = entry
                .split_once('=')
                .ok_or_else(|| invalid("peers", entry, "a peer is `id=host:port`"))?;
            let id: NodeId = id
                .trim()
                .parse()
                .map_err(|_| invalid("peers", entry, format!("`{id}` is not a node id")))?;
            Ok((id, address.trim().to_string()))
        })
        .collect()
}
