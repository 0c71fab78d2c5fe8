//! The broker: topics and their partitions over Raft replicas of segment
//! logs, answering produce, fetch, offset, group and administration
//! requests expressed in the protocol types of [`spool_protocol::proto`].
//!
//! Every broker is a member of a cluster; a single node is a cluster of one
//! (one voter in every group), running exactly the code a three-broker
//! cluster runs. The cluster side (`cluster`) keeps the controller member
//! and the replicas placed on this broker; the broker owns the data
//! directory, the [`LogManager`] that compacts and closes the logs, the
//! group coordinator and the producer id allocator. It does not know about
//! transports: the gRPC server and the embedded client call the same
//! methods.

mod admin;
mod checks;
mod cluster;
mod delete_records;
mod fetch;
pub mod groups;
mod produce;
mod producer_ids;
mod shards;
mod topic;
pub mod transactions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;

pub use cluster::ClusterConfig;
pub use groups::{GroupConfig, GroupCoordinator};
pub use spool_protocol::coordinator::{OFFSETS_TOPIC, TRANSACTIONS_TOPIC};
pub use topic::{Partition, Topic};
pub use transactions::TransactionConfig;

use crate::{BrokerError, Result};
use spool_storage::config::LogConfig;
use spool_storage::{LogManager, ManagerConfig, SteadyClock};

/// How a broker is set up.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Where partitions and cluster metadata live.
    pub data_dir: PathBuf,
    /// This broker's id (1 for a single node).
    pub node_id: u32,
    /// The address clients are told to use for this broker.
    pub advertised_address: String,
    /// Defaults for topic settings not given when a topic is created.
    pub topic_defaults: LogConfig,
    /// Background work timing.
    pub manager: ManagerConfig,
    /// Consumer group limits, and the offsets topic's shape.
    pub groups: GroupConfig,
    /// Transaction limits, and the transaction state topic's shape.
    pub transactions: TransactionConfig,
    /// The free space kept on the data directory's file system: below it
    /// producers are refused with a retriable storage error, so that a
    /// full disk never stops a partition's Raft log (see
    /// `spool_storage::DiskSpace`). 0 keeps no reserve.
    pub min_free_bytes: u64,
    /// Through which partition logs write, cut and sync their segment
    /// files: the operating system's calls ([`spool_storage::OsFileIo`]),
    /// or a test's fault-injecting disk.
    pub file_io: Arc<dyn spool_storage::FileIo>,
    /// The system's wall clock. The broker reads it once, when it opens,
    /// and keeps time from there with the monotonic clock
    /// ([`spool_storage::SteadyClock`]): a step of the wall clock while it
    /// runs changes no retention, roll or timeout, and is logged. Tests
    /// replace it with a clock they step.
    pub wall_clock: Arc<dyn spool_storage::Clock>,
}

/// The default reserve: 512 MiB. What goes on writing once producers are
/// refused must fit in it: consumer-group offsets, transaction state,
/// Raft votes and metadata, and the index files a new segment starts with
/// (up to 10 MiB each, as in Kafka); a few hundred partitions' worth.
/// Redpanda keeps 5 GiB; a development machine's disk is often smaller.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 512 << 20;

impl BrokerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            data_dir: data_dir.into(),
            node_id: 1,
            advertised_address: "embedded".into(),
            topic_defaults: LogConfig::default(),
            manager: ManagerConfig::default(),
            groups: GroupConfig::default(),
            transactions: TransactionConfig::default(),
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            file_io: Arc::new(spool_storage::OsFileIo),
            wall_clock: Arc::new(spool_storage::SystemClock),
        }
    }
}

/// How long [`Broker::open`] waits for a single node to serve: its
/// groups elect themselves at once, so this only bounds a stuck start.
const SINGLE_NODE_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker. Cheap to share: it lives in an `Arc`.
pub struct Broker {
    config: BrokerConfig,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    manager: parking_lot::Mutex<Option<LogManager>>,
    groups: Arc<GroupCoordinator>,
    cluster: cluster::ClusterState,
    producer_ids: producer_ids::ProducerIds,
    transactions: transactions::TransactionCoordinator,
    /// A client of the cluster for requests to other brokers, made once
    /// it is first needed.
    peer_client: tokio::sync::OnceCell<spool_client::Client>,
    /// The data directory's lock, held from opening to `shutdown` (then
    /// released, so the same process may open the directory again even
    /// while handles to this broker linger).
    data_dir_lock: parking_lot::Mutex<Option<spool_storage::DataDirLock>>,
    /// The free-space reserve producers are admitted by.
    disk_space: spool_storage::DiskSpace,
    /// The broker's time (see [`BrokerConfig::wall_clock`]), shared with
    /// every log it opens.
    clock: Arc<SteadyClock>,
    /// Why the broker can no longer serve, once it cannot (see
    /// [`Broker::failed`]).
    failure: tokio::sync::watch::Sender<Option<String>>,
    /// The broker itself, for work a request starts and does not wait
    /// for: a committed transaction's markers, written after `EndTxn` is
    /// answered.
    me: Weak<Broker>,
}

impl Broker {
    /// Opens a single node: a cluster of one broker, every group with one
    /// voter. Answers once the node serves (its controller leads, it is
    /// registered, and the offsets topic is up), so that a program can
    /// create topics and join groups at once.
    pub async fn open(config: BrokerConfig) -> Result<Arc<Broker>> {
        let node = u64::from(config.node_id);
        let peers = BTreeMap::from([(node, config.advertised_address.clone())]);
        let broker = Broker::open_cluster(config, ClusterConfig::new(node, peers)?).await?;
        broker.wait_until_serving(SINGLE_NODE_READY_TIMEOUT).await?;
        Ok(broker)
    }

    /// Opens the broker as a member of the cluster `cluster` describes:
    /// its member of the controller group, then (in the background, as the
    /// metadata shows them) the replicas placed on it. Serve
    /// [`Broker::raft_router`] beside the client service so peers reach it.
    pub async fn open_cluster(
        mut config: BrokerConfig,
        cluster: ClusterConfig,
    ) -> Result<Arc<Broker>> {
        // Producer ids carry the node id: it must be the cluster's.
        config.node_id =
            u32::try_from(cluster.node_id).map_err(|_| BrokerError::InvalidConfig {
                key: "node_id".into(),
                value: cluster.node_id.to_string(),
                reason: "node ids must fit in 32 bits".into(),
            })?;
        refuse_old_layout(&config.data_dir)?;
        // Before anything in the directory is read or written.
        let data_dir_lock = spool_storage::DataDirLock::acquire(&config.data_dir)?;
        let retention_interval = config.manager.retention_check_interval;
        let joining = cluster.join;
        let manager = LogManager::start(config.manager.clone());
        let clock = Arc::new(SteadyClock::over(Arc::clone(&config.wall_clock)));
        let files = cluster::LogFiles {
            io: Arc::clone(&config.file_io),
            clock: Arc::clone(&clock) as Arc<dyn spool_storage::Clock>,
        };
        let state = cluster::ClusterState::start(cluster, &config.data_dir, files).await?;
        let metadata_log = Arc::clone(state.controller.replica().log());
        manager.insert_replicated(spool_raft::metadata::METADATA_GROUP, metadata_log);
        let images = state.controller.subscribe();
        let producer_ids =
            producer_ids::ProducerIds::open(&config.data_dir, u64::from(config.node_id))?;
        let groups = Arc::new(GroupCoordinator::new(config.groups.clone()));
        let transactions = transactions::TransactionCoordinator::new(config.transactions.clone());
        tracing::info!(dir = %config.data_dir.display(), node = config.node_id, "broker opened");
        let disk_space = spool_storage::DiskSpace::new(&config.data_dir, config.min_free_bytes);
        let broker = Arc::new_cyclic(|me| Broker {
            config,
            topics: RwLock::default(),
            manager: parking_lot::Mutex::new(Some(manager)),
            groups,
            cluster: state,
            producer_ids,
            transactions,
            peer_client: tokio::sync::OnceCell::new(),
            data_dir_lock: parking_lot::Mutex::new(Some(data_dir_lock)),
            disk_space,
            clock,
            failure: tokio::sync::watch::channel(None).0,
            me: Weak::clone(me),
        });
        tokio::spawn(transactions::sweep(Arc::downgrade(&broker)));
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

    /// Milliseconds since the Unix epoch by the broker's steady clock (see
    /// [`BrokerConfig::wall_clock`]): what its timeouts are measured with.
    pub(crate) fn now_ms(&self) -> i64 {
        spool_storage::Clock::now_ms(self.clock.as_ref()) as i64
    }

    /// Completes, with the reason, once the broker can no longer serve:
    /// its member of the controller group stopped on a storage failure (a
    /// failed fsync of the metadata log). Its process should then stop;
    /// started again, the broker recovers from what its syncs covered and
    /// catches up from its peers. Kafka too shuts a broker down when its
    /// metadata log's directory fails. (A partition replica whose fsync
    /// failed is restarted in place instead: the cluster metadata is what
    /// every part of the broker reads, and restarting the process is the
    /// one way to rebuild all of it from the disk.)
    pub async fn failed(&self) -> String {
        let mut failure = self.failure.subscribe();
        let reason = match failure.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            // The sender lives as long as `self`.
            Err(_) => None,
        };
        reason.unwrap_or_default()
    }

    /// Records that the broker can no longer serve, once.
    fn fail(&self, reason: String) {
        self.failure.send_if_modified(|failure| match failure {
            Some(_) => false,
            None => {
                tracing::error!(reason = %reason, "the broker cannot serve any longer; stop and restart it");
                *failure = Some(reason);
                true
            }
        });
    }

    /// This broker's node id in its cluster.
    pub fn cluster_node(&self) -> spool_raft::NodeId {
        self.cluster.config.node_id
    }

    /// Where Raft messages for this broker's groups go.
    pub fn raft_router(&self) -> Arc<spool_raft::network::RaftRouter> {
        Arc::clone(&self.cluster.router)
    }

    /// The consumer group coordinator.
    pub fn groups(&self) -> &Arc<GroupCoordinator> {
        &self.groups
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// A topic this broker holds partitions of.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// The topics this broker holds partitions of.
    pub fn topic_names(&self) -> Vec<String> {
        self.topics.read().keys().cloned().collect()
    }

    /// The partition, if this broker holds it. A partition of a known
    /// topic placed on other brokers is `NotLeader` naming its leader; any
    /// other is `UnknownTopicOrPartition`.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        if let Some(found) = self.topic(topic).and_then(|t| t.partition(partition)) {
            return Ok(found);
        }
        let image = self.cluster.controller.image();
        if let Some(replicas) = image
            .topics
            .get(topic)
            .and_then(|t| t.replicas.get(partition as usize))
        {
            return Err(BrokerError::NotLeader {
                leader: self.cluster.leader_of(topic, partition, replicas),
            });
        }
        Err(BrokerError::UnknownTopicOrPartition {
            topic: topic.to_string(),
            partition,
        })
    }

    /// Waits until this broker serves: its controller group has a leader
    /// that registered it, the offsets and transaction state topics exist
    /// and every partition of them placed here has a leader. A single node waits for this at open;
    /// on a cluster it also waits for the other brokers.
    pub async fn wait_until_serving(&self, timeout: Duration) -> Result<()> {
        let ready = async {
            loop {
                if self.serving() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(timeout, ready).await.map_err(|_| {
            BrokerError::Timeout(format!(
                "broker {} did not start serving within {timeout:?}",
                self.config.node_id
            ))
        })
    }

    fn serving(&self) -> bool {
        let image = self.cluster.controller.image();
        self.cluster.controller.leader().is_some()
            && image.brokers.contains_key(&self.cluster.config.node_id)
            && self.local_replicas_led(OFFSETS_TOPIC) == Some(true)
            && self.local_replicas_led(TRANSACTIONS_TOPIC) == Some(true)
    }

    /// Whether every partition of `topic` placed on this broker runs here
    /// and knows its leader; `None` for a topic the metadata lacks.
    fn local_replicas_led(&self, topic: &str) -> Option<bool> {
        let image = self.cluster.controller.image();
        let node = self.cluster.config.node_id;
        let assignment = image.topics.get(topic)?;
        Some(
            assignment
                .replicas
                .iter()
                .enumerate()
                .all(|(index, replicas)| {
                    !replicas.contains(&node)
                        || self
                            .cluster
                            .replica(topic, index as u32)
                            .is_some_and(|r| r.leader().is_some())
                }),
        )
    }

    /// Registers a replica's log with the manager, which compacts it (if
    /// its topic says so) and closes it at shutdown.
    fn manage_log(&self, partition: &Partition) {
        if let Some(manager) = self.manager.lock().as_ref() {
            manager.insert_replicated(partition.log_name(), Arc::clone(&partition.log));
        }
    }

    fn unmanage_log(&self, topic: &str, index: u32) {
        if let Some(manager) = self.manager.lock().as_ref() {
            manager.remove(&format!("{topic}-{index}"));
        }
    }

    /// Stops every Raft group of this broker, then background work, and
    /// closes every log cleanly (flushed, indexed, checkpointed), so the
    /// next start recovers nothing. Every step is taken even when one
    /// fails (a log whose fsync failed cannot close cleanly), and the data
    /// directory's lock is always released; the first failure is returned.
    pub async fn shutdown(&self) -> Result<()> {
        let mut first_failure = None;
        let mut note = |outcome: Result<()>| {
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "shutting down");
                first_failure.get_or_insert(e);
            }
        };
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for topic in topics {
            for partition in topic.partitions() {
                note(partition.replica().shutdown().await.map_err(Into::into));
            }
        }
        note(self.cluster.controller.shutdown().await.map_err(Into::into));
        let manager = self.manager.lock().take();
        if let Some(manager) = manager {
            note(manager.shutdown().map_err(Into::into));
        }
        self.data_dir_lock.lock().take();
        match first_failure {
            None => {
                tracing::info!(dir = %self.config.data_dir.display(), "broker shut down cleanly");
                Ok(())
            }
            Some(e) => Err(e),
        }
    }
}

/// Before single nodes ran as clusters of one, a single node kept topics
/// under `topics/` and partitions in `<topic>-<partition>`; such a
/// directory cannot be served as it is, and starting over it would hide
/// its data. Refused with a clear error instead.
fn refuse_old_layout(data_dir: &Path) -> Result<()> {
    if data_dir.join("topics").is_dir() && !data_dir.join("cluster").exists() {
        return Err(BrokerError::InvalidConfig {
            key: "data_dir".into(),
            value: data_dir.display().to_string(),
            reason: "it holds a single-node broker's data in the layout of spool before \
                     single nodes ran as one-voter clusters (a `topics/` directory); \
                     start the broker on a new directory and produce the data again"
                .into(),
        });
    }
    Ok(())
}
