//! The broker: topics and their partitions on top of the storage engine,
//! answering produce, fetch, offset and administration requests expressed in
//! the protocol types of [`crate::proto`].
//!
//! The broker owns the data directory (one directory per partition, named
//! `<topic>-<partition>`, plus topic metadata under `topics/`) and the
//! [`LogManager`] that runs background flushing, retention and compaction.
//! It does not know about transports: the gRPC server and the embedded client
//! call the same methods.

mod admin;
mod cluster;
mod fetch;
pub mod groups;
mod idempotence;
mod produce;
mod producer_ids;
mod topic;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

pub use cluster::ClusterConfig;
pub use groups::{GroupConfig, GroupCoordinator, OFFSETS_TOPIC};
pub use topic::{Partition, Topic};

use crate::config::LogConfig;
use crate::proto::{InitProducerIdRequest, InitProducerIdResponse};
use crate::storage::{LogManager, ManagerConfig};
use crate::{LogError, Result};

/// How a broker is set up.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Where partitions and topic metadata live.
    pub data_dir: PathBuf,
    /// This broker's id in metadata responses (1 for a single node).
    pub node_id: u32,
    /// The address clients are told to use for this broker.
    pub advertised_address: String,
    /// Defaults for topic settings not given when a topic is created.
    pub topic_defaults: LogConfig,
    /// Background work timing.
    pub manager: ManagerConfig,
    /// Consumer group limits.
    pub groups: GroupConfig,
}

impl BrokerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            data_dir: data_dir.into(),
            node_id: 1,
            advertised_address: "embedded".into(),
            topic_defaults: LogConfig::default(),
            manager: ManagerConfig::default(),
            groups: GroupConfig::default(),
        }
    }
}

/// A single-node broker. Cheap to share: wrap it in an `Arc`.
pub struct Broker {
    config: BrokerConfig,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    manager: parking_lot::Mutex<Option<LogManager>>,
    groups: Arc<GroupCoordinator>,
    /// Set once, when the broker runs as part of a cluster.
    cluster: std::sync::OnceLock<cluster::ClusterState>,
    producer_ids: producer_ids::ProducerIds,
}

impl Broker {
    /// Opens the data directory, recovering every partition found there.
    pub fn open(config: BrokerConfig) -> Result<Broker> {
        let manager = LogManager::start(config.manager.clone());
        let mut topics = topic::load_all(&config.data_dir, &config.topic_defaults)?;
        let offsets_topic = match topics.get(OFFSETS_TOPIC) {
            Some(topic) => Arc::clone(topic),
            None => {
                let mut compacted = config.topic_defaults.clone();
                compacted.cleanup_policy = crate::config::CleanupPolicy::COMPACT;
                compacted.retention_ms = None;
                let topic = Arc::new(Topic::create(
                    &config.data_dir,
                    OFFSETS_TOPIC,
                    1,
                    compacted,
                )?);
                topics.insert(OFFSETS_TOPIC.to_string(), Arc::clone(&topic));
                topic
            }
        };
        let offsets_partition =
            offsets_topic
                .partition(0)
                .ok_or_else(|| LogError::UnknownTopicOrPartition {
                    topic: OFFSETS_TOPIC.into(),
                    partition: 0,
                })?;
        let groups = Arc::new(GroupCoordinator::open(
            config.groups.clone(),
            offsets_partition,
        )?);
        for topic in topics.values() {
            for partition in topic.partitions() {
                manager.insert(partition.log_name(), Arc::clone(&partition.log));
            }
        }
        let producer_ids =
            producer_ids::ProducerIds::open(&config.data_dir, u64::from(config.node_id))?;
        tracing::info!(dir = %config.data_dir.display(), topics = topics.len(), "broker opened");
        Ok(Broker {
            producer_ids,
            config,
            topics: RwLock::new(topics),
            manager: parking_lot::Mutex::new(Some(manager)),
            groups,
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// Opens the broker as a member of a cluster: its local topics as
    /// [`Broker::open`] does, then its member of the controller group and
    /// the replicas the metadata places on it. Serve
    /// [`Broker::raft_router`] beside the client service so peers reach it.
    pub async fn open_cluster(
        mut config: BrokerConfig,
        cluster: ClusterConfig,
    ) -> Result<Arc<Broker>> {
        // Producer ids carry the node id: it must be the cluster's.
        config.node_id = u32::try_from(cluster.node_id).map_err(|_| LogError::InvalidConfig {
            key: "node_id".into(),
            value: cluster.node_id.to_string(),
            reason: "node ids must fit in 32 bits".into(),
        })?;
        let data_dir = config.data_dir.clone();
        let retention_interval = config.manager.retention_check_interval;
        let joining = cluster.join;
        let broker = Arc::new(Broker::open(config)?);
        let state = cluster::ClusterState::start(cluster, &data_dir).await?;
        let images = state.controller.subscribe();
        if broker.cluster.set(state).is_err() {
            return Err(LogError::InvalidRequest(
                "the broker joined a cluster twice".into(),
            ));
        }
        tokio::spawn(cluster::reconcile(Arc::downgrade(&broker), images));
        tokio::spawn(cluster::register_brokers(Arc::downgrade(&broker)));
        if joining {
            tokio::spawn(cluster::ask_to_join(Arc::downgrade(&broker)));
        }
        tokio::spawn(cluster::enforce_retention(
            Arc::downgrade(&broker),
            retention_interval,
        ));
        Ok(broker)
    }

    /// This broker's node id in its cluster; `None` on a single node.
    pub fn cluster_node(&self) -> Option<crate::replication::NodeId> {
        self.cluster.get().map(|c| c.config.node_id)
    }

    /// Where Raft messages for this broker's groups go; `None` on a
    /// single node.
    pub fn raft_router(&self) -> Option<Arc<crate::replication::network::RaftRouter>> {
        self.cluster.get().map(|c| Arc::clone(&c.router))
    }

    /// Stops every Raft group of this broker (a no-op on a single node).
    /// Call before [`Broker::shutdown`].
    pub async fn leave_cluster(&self) -> Result<()> {
        let Some(cluster) = self.cluster.get() else {
            return Ok(());
        };
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for topic in topics {
            for partition in topic.partitions() {
                if let Some(replica) = partition.replica() {
                    replica.shutdown().await?;
                }
            }
        }
        cluster.controller.shutdown().await
    }

    /// The consumer group coordinator.
    /// Answers `InitProducerId`: a new producer id (see `producer_ids`).
    pub fn init_producer_id(&self, request: InitProducerIdRequest) -> InitProducerIdResponse {
        self.producer_ids.init_producer_id(&request)
    }

    pub fn groups(&self) -> &Arc<GroupCoordinator> {
        &self.groups
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn topic_names(&self) -> Vec<String> {
        self.topics.read().keys().cloned().collect()
    }

    /// The partition, or `UnknownTopicOrPartition`. In a cluster, a
    /// partition placed on other brokers is `NotLeader` naming its leader.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        if let Some(found) = self.topic(topic).and_then(|t| t.partition(partition)) {
            return Ok(found);
        }
        if let Some(cluster) = self.cluster.get() {
            let image = cluster.controller.image();
            if let Some(replicas) = image
                .topics
                .get(topic)
                .and_then(|t| t.replicas.get(partition as usize))
            {
                return Err(LogError::NotLeader {
                    leader: cluster.leader_of(topic, partition, replicas),
                });
            }
        }
        Err(LogError::UnknownTopicOrPartition {
            topic: topic.to_string(),
            partition,
        })
    }

    fn register_logs(&self, topic: &Topic) {
        if let Some(manager) = self.manager.lock().as_ref() {
            for partition in topic.partitions() {
                manager.insert(partition.log_name(), Arc::clone(&partition.log));
            }
        }
    }

    /// Stops background work and closes every partition cleanly (flushed,
    /// indexed, checkpointed), so the next start recovers nothing.
    pub fn shutdown(&self) -> Result<()> {
        if let Some(manager) = self.manager.lock().take() {
            manager.shutdown()?;
        }
        // After the logs are flushed: the tables then cover synced data, and
        // the next start reads nothing again.
        for topic in self.topics.read().values() {
            for partition in topic.partitions() {
                if let Some(producers) = partition.local_producers() {
                    producers.persist(&partition.log)?;
                }
            }
        }
        tracing::info!(dir = %self.config.data_dir.display(), "broker shut down cleanly");
        Ok(())
    }
}
