//! A broker in a cluster: its member of the controller group, the Raft
//! replicas of the partitions placed on it, and the tasks that keep those
//! in step with the cluster's metadata.
//!
//! - The controller's image says which partitions this broker holds; the
//!   reconciler starts a [`PartitionReplica`] for each (and stops those of
//!   deleted topics) whenever the image changes.
//! - The controller's leader registers every configured broker that the
//!   metadata does not know yet.
//! - A partition's preferred leader (its first replica) initializes the
//!   group at once, so leaders start spread as placement spread them; the
//!   other replicas initialize only if the group is still uninitialized a
//!   few election timeouts later (the preferred leader may be down).
//!
//! Replicated data lives under `<data_dir>/cluster/`: the metadata log in
//! `__cluster_metadata-0`, partitions in `<topic>.<id>-<partition>`.
//!
//! This module holds the configuration and the state (controller, router,
//! running replicas); [`reconcile`] keeps the replicas in line with the
//! metadata and [`status`] answers metadata and cluster-status requests.

mod listeners;
mod moves;
mod reconcile;
mod status;
mod topic_changes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

pub(crate) use moves::ask_to_join;
pub(crate) use reconcile::{enforce_retention, reconcile, register_brokers};

use crate::{BrokerError, Result};
use spool_protocol::proto::spool_client::SpoolClient;
use spool_protocol::proto::ErrorCode;
use spool_raft::grpc::GrpcTransport;
use spool_raft::liveness::{Liveness, LivenessTiming};
use spool_raft::metadata::{ClusterImage, Controller, TopicAssignment, METADATA_GROUP};
use spool_raft::network::{RaftRouter, RaftTransport};
use spool_raft::{
    partition_raft_config, quiescent_raft_config, NodeId, PartitionReplica, ReplicationError,
};
use spool_storage::config::LogConfig;
use spool_storage::{Clock, FileIo, PartitionLog};
use tonic::transport::Channel;

/// How a broker joins a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This broker's id; unique in the cluster.
    pub node_id: NodeId,
    /// Every broker of the cluster, this one included, with the address
    /// of its gRPC listener (clients and Raft peers use the same port).
    /// All of them are voters of the controller group, so an odd count of
    /// three or five is what a production cluster wants.
    pub peers: BTreeMap<NodeId, String>,
    /// openraft settings for every group (see [`partition_raft_config`]).
    pub raft: Arc<openraft::Config>,
    /// How long an admin request waits for the controller (Kafka's
    /// `request.timeout.ms` default, 30 s).
    pub metadata_timeout: Duration,
    /// A broker added to a running cluster (`--join`): it founds no
    /// controller group but asks the cluster to admit it.
    pub join: bool,
}

impl ClusterConfig {
    pub fn new(node_id: NodeId, peers: BTreeMap<NodeId, String>) -> Result<ClusterConfig> {
        if !peers.contains_key(&node_id) {
            return Err(BrokerError::InvalidConfig {
                key: "peers".into(),
                value: format!("{peers:?}"),
                reason: format!("must include this broker's own id {node_id}"),
            });
        }
        Ok(ClusterConfig {
            node_id,
            peers,
            raft: partition_raft_config("spool")?,
            metadata_timeout: Duration::from_secs(30),
            join: false,
        })
    }
}

/// The cluster side of a broker.
pub(crate) struct ClusterState {
    pub config: ClusterConfig,
    pub controller: Controller,
    pub router: Arc<RaftRouter>,
    transport: Arc<dyn RaftTransport>,
    /// openraft's configuration for partition groups (quiescent).
    partition_raft: Arc<openraft::Config>,
    /// Detects failed brokers for the partition groups, which are
    /// quiescent (see `spool_raft::liveness`); stops when dropped.
    _liveness: Liveness,
    /// The same transport, to teach it brokers that joined later.
    grpc: Arc<GrpcTransport>,
    /// Groups whose move this broker is carrying out now.
    moving: parking_lot::Mutex<std::collections::BTreeSet<String>>,
    dir: PathBuf,
    files: LogFiles,
    /// The replicas this broker runs, by topic and partition, each with
    /// its topic's id.
    replicas: RwLock<BTreeMap<(String, u32), Hosted>>,
}

/// A replica this broker runs, of which incarnation of its topic.
#[derive(Clone)]
struct Hosted {
    topic_id: u64,
    replica: Arc<PartitionReplica>,
}

/// The Raft group (and directory) of a partition: `<topic>.<id>-<index>`.
/// The topic id keeps a re-created topic's groups apart from the old
/// ones, which a broker that was down during the delete still has.
fn group_id(topic: &str, topic_id: u64, partition: u32) -> String {
    format!("{topic}.{topic_id}-{partition}")
}

impl ClusterState {
    /// Starts this broker's controller member; the caller wires the router
    /// into its gRPC server.
    pub async fn start(
        config: ClusterConfig,
        data_dir: &std::path::Path,
        files: LogFiles,
    ) -> Result<ClusterState> {
        let node = config.node_id;
        let dir = data_dir.join("cluster");
        let others: std::collections::HashMap<NodeId, String> = config
            .peers
            .iter()
            .filter(|(&n, _)| n != node)
            .map(|(&n, a)| (n, a.clone()))
            .collect();
        let grpc = Arc::new(GrpcTransport::new(node, &others)?);
        let transport: Arc<dyn RaftTransport> = Arc::clone(&grpc) as Arc<dyn RaftTransport>;
        let metadata_name = format!("{METADATA_GROUP}-0");
        let metadata_log = open_log(&dir, &metadata_name, LogConfig::default(), &files)?;
        let voters: Vec<NodeId> = match config.join {
            true => Vec::new(),
            false => config.peers.keys().copied().collect(),
        };
        let controller = Controller::start(
            node,
            metadata_log,
            Arc::clone(&transport),
            Arc::clone(&config.raft),
            &voters,
        )
        .await?;
        let router = Arc::new(RaftRouter::default());
        router.register(METADATA_GROUP, controller.replica().raft().clone());
        let liveness = Liveness::spawn(
            node,
            Arc::clone(&router),
            Arc::clone(&transport),
            LivenessTiming::from_raft(&config.raft),
        );
        let partition_raft = quiescent_raft_config(&config.raft)?;
        Ok(ClusterState {
            partition_raft,
            config,
            controller,
            router,
            transport,
            _liveness: liveness,
            grpc,
            moving: Default::default(),
            dir,
            files,
            replicas: RwLock::default(),
        })
    }

    /// The controller's leader, once there is one and the metadata knows
    /// every configured broker (a cluster that just started elects and
    /// registers within a few seconds; placing replicas before that would
    /// see too few brokers).
    pub async fn settled_controller(&self) -> Result<NodeId> {
        let deadline = tokio::time::Instant::now() + self.config.metadata_timeout;
        loop {
            if let Some(leader) = self.controller.leader() {
                if self.controller.image().brokers.len() >= self.config.peers.len() {
                    return Ok(leader);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BrokerError::Timeout(
                    "the controller has no leader, or the brokers are not all registered".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Forwards a topic request to the controller's leader, asking again
    /// whoever leads next while the leader cannot be reached (it may just
    /// have died), until the metadata timeout. `None` when this broker now
    /// leads the controller and must carry the request out itself. A
    /// retried request may have taken effect at its first attempt, so then
    /// the error `done_already` counts as success.
    pub async fn forward_until_answered<F, Fut>(
        &self,
        send: F,
        applied: impl Fn(&ClusterImage) -> bool,
        done_already: ErrorCode,
    ) -> Option<Result<()>>
    where
        F: Fn(SpoolClient<Channel>) -> Fut,
        Fut: std::future::Future<
            Output = std::result::Result<Vec<spool_protocol::proto::TopicResult>, tonic::Status>,
        >,
    {
        let deadline = tokio::time::Instant::now() + self.config.metadata_timeout;
        let mut retried = false;
        loop {
            let leader = match self.settled_controller().await {
                Ok(leader) => leader,
                Err(e) => return Some(Err(e)),
            };
            if leader == self.config.node_id {
                return None;
            }
            let outcome = self.forward_to_controller(leader, &send, &applied).await;
            let unreachable = matches!(
                outcome,
                Err(BrokerError::Unreachable { .. } | BrokerError::Timeout(_))
            );
            if unreachable && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                retried = true;
                continue;
            }
            return Some(match outcome {
                Err(BrokerError::Coded { code, .. }) if retried && code == done_already => Ok(()),
                other => other,
            });
        }
    }

    /// Sends a topic request to the controller's leader `leader` as a
    /// client would, then waits until this broker's own metadata shows
    /// the outcome (`applied`), so the caller can use the topic here at
    /// once.
    async fn forward_to_controller<F, Fut>(
        &self,
        leader: NodeId,
        send: &F,
        applied: &impl Fn(&ClusterImage) -> bool,
    ) -> Result<()>
    where
        F: Fn(SpoolClient<Channel>) -> Fut,
        Fut: std::future::Future<
            Output = std::result::Result<Vec<spool_protocol::proto::TopicResult>, tonic::Status>,
        >,
    {
        let address = self.config.peers.get(&leader).ok_or_else(|| {
            BrokerError::Replication(ReplicationError::Replication(format!(
                "the controller's leader {leader} is not a configured peer"
            )))
        })?;
        let unreachable = |reason: String| BrokerError::Unreachable {
            address: address.clone(),
            reason,
        };
        // Bounded: two brokers with stale views of the leader could
        // otherwise hand a request back and forth.
        let timeout = self.config.metadata_timeout;
        let forwarded = async {
            let client = SpoolClient::connect(format!("http://{address}"))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            send(client)
                .await
                .map_err(|status| unreachable(status.to_string()))
        };
        let results = tokio::time::timeout(timeout, forwarded)
            .await
            .map_err(|_| {
                BrokerError::Timeout(format!(
                    "the controller's leader did not answer within {timeout:?}"
                ))
            })??;
        for result in results {
            if let Some(e) = BrokerError::from_code(result.error, &result.message) {
                return Err(e);
            }
        }
        let mut images = self.controller.subscribe();
        let timeout = self.config.metadata_timeout;
        let shown = tokio::time::timeout(timeout, images.wait_for(|image| applied(image)))
            .await
            .is_ok_and(|seen| seen.is_ok());
        if !shown {
            return Err(BrokerError::Timeout(format!(
                "the change was made, but this broker's metadata did not show it within {timeout:?}"
            )));
        }
        Ok(())
    }

    pub fn replica(&self, topic: &str, partition: u32) -> Option<Arc<PartitionReplica>> {
        let replicas = self.replicas.read();
        let hosted = replicas.get(&(topic.to_string(), partition))?;
        Some(Arc::clone(&hosted.replica))
    }

    /// The leader of a partition as this broker knows it: its replica's
    /// view when it holds one, else the preferred leader.
    pub fn leader_of(&self, topic: &str, partition: u32, replicas: &[NodeId]) -> Option<NodeId> {
        match self.replica(topic, partition) {
            Some(replica) => replica.leader(),
            None => replicas.first().copied(),
        }
    }

    async fn start_replica(
        &self,
        topic: &str,
        index: u32,
        assignment: &TopicAssignment,
        config: &LogConfig,
    ) -> Result<Arc<PartitionReplica>> {
        let node = self.config.node_id;
        let group = group_id(topic, assignment.id, index);
        let log = open_log(&self.dir, &group, config.clone(), &self.files)?;
        let replica = Arc::new(
            PartitionReplica::start(
                node,
                group.as_str(),
                log,
                Arc::clone(&self.transport),
                Arc::clone(&self.partition_raft),
            )
            .await?,
        );
        self.router
            .register_quiescent(group.as_str(), replica.raft().clone());
        let key = (topic.to_string(), index);
        let hosted = Hosted {
            topic_id: assignment.id,
            replica: Arc::clone(&replica),
        };
        self.replicas.write().insert(key.clone(), hosted);
        let voters = assignment.replicas[index as usize].clone();
        if assignment.moved.contains(&index) {
            // The group exists: this replica waits for its leader to add it.
            return Ok(replica);
        }
        if voters.first() == Some(&node) {
            if let Err(e) = replica.initialize(&voters).await {
                // Forget the replica, or the reconciler's retry would skip
                // it and the partition would never be served.
                self.replicas.write().remove(&key);
                self.router.unregister(&group);
                replica.shutdown().await?;
                return Err(e.into());
            }
        } else {
            let delay = Duration::from_millis(self.config.raft.election_timeout_max * 3);
            let late = Arc::clone(&replica);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(false) = late.raft().is_initialized().await {
                    if let Err(e) = late.initialize(&voters).await {
                        tracing::warn!(error = %e, "initializing a partition group failed");
                    }
                }
            });
        }
        Ok(replica)
    }

    /// The partitions whose replica here stopped by itself: its Raft quit
    /// on a fatal storage error (a failed fsync, a write the disk refused).
    /// Only those `image` still places here, as the same incarnation of
    /// their topic: a replica of a deleted topic is left to
    /// [`ClusterState::stop_replica`], which also deletes its directory.
    pub fn stopped_replicas(&self, image: &ClusterImage) -> Vec<(String, u32)> {
        self.replicas
            .read()
            .iter()
            .filter(|((topic, _), hosted)| {
                hosted.replica.stopped()
                    && image
                        .topics
                        .get(topic)
                        .is_some_and(|t| t.id == hosted.topic_id)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Closes a replica whose Raft stopped by itself, so that the
    /// reconciler opens it again from its directory. After a failed fsync
    /// its log is first cut back to what its syncs covered (see
    /// `PartitionLog::discard_unsynced`); while that fails too (the disk
    /// still fails) the replica stays as it is, to be tried again.
    async fn close_stopped_replica(&self, topic: &str, partition: u32) -> Result<()> {
        let key = (topic.to_string(), partition);
        let Some(hosted) = self.replicas.read().get(&key).cloned() else {
            return Ok(());
        };
        let log = hosted.replica.log();
        if let Some(failure) = log.failed_sync() {
            let cut = log.discard_unsynced()?;
            tracing::warn!(topic, partition, failure = %failure, bytes_cut = cut, "cut a replica back to what its syncs covered");
        }
        self.replicas.write().remove(&key);
        self.router
            .unregister(&group_id(topic, hosted.topic_id, partition));
        hosted.replica.shutdown().await?;
        Ok(())
    }

    /// Stops the replica of `topic`/`partition` and deletes its directory.
    async fn stop_replica(&self, topic: &str, partition: u32) -> Result<()> {
        let hosted = self
            .replicas
            .write()
            .remove(&(topic.to_string(), partition));
        if let Some(hosted) = hosted {
            self.router
                .unregister(&group_id(topic, hosted.topic_id, partition));
            let replica = hosted.replica;
            replica.shutdown().await?;
            replica.log().mark_deleted();
            let dir = replica.log().dir().to_path_buf();
            std::fs::remove_dir_all(&dir).map_err(|e| BrokerError::io(&dir, e))?;
        }
        Ok(())
    }
}

/// What every log of a broker is opened with.
#[derive(Clone)]
pub(crate) struct LogFiles {
    /// Through which segment files are written and synced.
    pub io: Arc<dyn FileIo>,
    /// The broker's steady clock, for rolls and retention.
    pub clock: Arc<dyn Clock>,
}

fn open_log(
    dir: &std::path::Path,
    name: &str,
    config: LogConfig,
    files: &LogFiles,
) -> Result<Arc<PartitionLog>> {
    let path = dir.join(name);
    let (clock, io) = (Arc::clone(&files.clock), Arc::clone(&files.io));
    Ok(Arc::new(PartitionLog::open_with_io(
        path, config, clock, io,
    )?))
}

/// A topic's settings: the broker's defaults with the topic's own on top.
pub(crate) fn topic_config(defaults: &LogConfig, pairs: &[(String, String)]) -> Result<LogConfig> {
    let mut config = defaults.clone();
    for (key, value) in pairs {
        config.set(key, value)?;
    }
    Ok(config)
}
