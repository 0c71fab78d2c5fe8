//! The controller: a broker's member of the controller group, which keeps
//! the broker's [`ClusterImage`] current and proposes metadata commands.
//!
//! Only the group's leader proposes. It validates a command against its
//! image, and its image is current: before validating it confirms its
//! leadership with a quorum (`ensure_linearizable`) and waits until it has
//! applied everything committed. Proposals are serialized on the leader,
//! so two racing `CreateTopic`s of one name cannot both pass validation.
//! A follower answers [`ReplicationError::NotLeader`] naming the leader.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::assignment::Placement;
use super::image::{
    decode_command, encode_command, ClusterImage, MetadataCommand, TopicAssignment,
};
use crate::network::RaftTransport;
use crate::{NodeId, PartitionReplica};
use crate::{ReplicationError, Result};
use spool_record::{BatchBuilder, BatchIter, Compression};
use spool_storage::PartitionLog;

/// How many bytes of metadata records one read takes.
const READ_BYTES: usize = 1 << 20;

pub struct Controller {
    node: NodeId,
    replica: Arc<PartitionReplica>,
    image: watch::Receiver<Arc<ClusterImage>>,
    proposing: tokio::sync::Mutex<()>,
    applier: JoinHandle<()>,
}

impl Controller {
    /// Starts `node`'s member of the controller group over the metadata
    /// log `log`, with `voters` as the group's first membership (ignored
    /// when the log already has one; none for a broker joining a running
    /// cluster, which waits to be added), and starts folding its
    /// committed records into the image.
    pub async fn start(
        node: NodeId,
        log: Arc<PartitionLog>,
        transport: Arc<dyn RaftTransport>,
        config: Arc<openraft::Config>,
        voters: &[NodeId],
    ) -> Result<Controller> {
        let replica =
            PartitionReplica::start(node, super::METADATA_GROUP, log, transport, config).await?;
        if !voters.is_empty() {
            replica.initialize(voters).await?;
        }
        let replica = Arc::new(replica);
        let (publish, image) = watch::channel(Arc::new(ClusterImage::default()));
        let applier = tokio::spawn(apply_committed(Arc::clone(&replica), publish));
        Ok(Controller {
            node,
            replica,
            image,
            proposing: tokio::sync::Mutex::new(()),
            applier,
        })
    }

    /// The metadata as this broker last applied it.
    pub fn image(&self) -> Arc<ClusterImage> {
        Arc::clone(&self.image.borrow())
    }

    /// Follows the image as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterImage>> {
        self.image.clone()
    }

    /// The controller group's replica on this broker (for the router).
    pub fn replica(&self) -> &Arc<PartitionReplica> {
        &self.replica
    }

    /// The broker that leads the controller group, as this one knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.replica.leader()
    }

    /// Places and creates a topic: `partitions` partitions with
    /// `replication_factor` replicas each over the registered brokers.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        config: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<TopicAssignment> {
        let placement = Placement::Spread {
            partitions,
            replication_factor,
        };
        self.create_placed_topic(name, placement, config, timeout)
            .await
    }

    /// Creates a topic with its replicas where `placement` puts them,
    /// checked against the brokers registered when it is proposed.
    pub async fn create_placed_topic(
        &self,
        name: &str,
        placement: Placement,
        config: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<TopicAssignment> {
        let name = name.to_string();
        let image = self
            .propose_with(timeout, |image| {
                let brokers: Vec<NodeId> = image.brokers.keys().copied().collect();
                let start = image.topics_created as usize;
                let replicas = placement.replicas(&brokers, start)?;
                Ok(MetadataCommand::CreateTopic {
                    name: name.clone(),
                    config: config.clone(),
                    replicas,
                })
            })
            .await?;
        image.topics.get(&name).cloned().ok_or_else(|| {
            ReplicationError::Replication(format!("topic `{name}` vanished after its creation"))
        })
    }

    /// Grows topic `name` to `count` partitions, placing the new ones over
    /// the registered brokers with as many replicas as its first
    /// partition has.
    pub async fn add_partitions(
        &self,
        name: &str,
        count: u32,
        explicit: Option<Vec<Vec<NodeId>>>,
        timeout: Duration,
    ) -> Result<Arc<ClusterImage>> {
        self.propose_with(timeout, |image| {
            let topic = image
                .topics
                .get(name)
                .ok_or_else(|| ReplicationError::UnknownTopic(name.to_string()))?;
            let current = topic.replicas.len() as u32;
            if count <= current {
                return Err(ReplicationError::InvalidConfig {
                    key: "partitions".into(),
                    value: count.to_string(),
                    reason: format!("the topic has {current} partitions; the count can only grow"),
                });
            }
            let factor = topic.replicas.first().map_or(1, Vec::len) as u32;
            let brokers: Vec<NodeId> = image.brokers.keys().copied().collect();
            let start = image.topics_created as usize + current as usize;
            let placement = match &explicit {
                Some(replicas) => Placement::Explicit(replicas.clone()),
                None => Placement::Spread {
                    partitions: count - current,
                    replication_factor: factor,
                },
            };
            let replicas = placement.replicas(&brokers, start)?;
            let fits = replicas.len() == (count - current) as usize
                && replicas.iter().all(|r| r.len() == factor as usize);
            if !fits {
                return Err(ReplicationError::InvalidConfig {
                    key: "replica.assignment".into(),
                    value: format!("{replicas:?}"),
                    reason: format!(
                        "{} new partitions of {factor} replicas each were to be given",
                        count - current
                    ),
                });
            }
            Ok(MetadataCommand::AddPartitions {
                name: name.to_string(),
                replicas,
            })
        })
        .await
    }

    /// Admits broker `node` (started with `--join`) at `address`: makes it
    /// a learner of the controller group, so that it receives every
    /// metadata record, and registers it, so that placement and moves may
    /// use it. Repeating it is harmless.
    pub async fn admit_broker(
        &self,
        node: NodeId,
        address: String,
        timeout: Duration,
    ) -> Result<Arc<ClusterImage>> {
        self.ensure_leader().await?;
        let raft = self.replica.raft();
        let added = tokio::time::timeout(
            timeout,
            raft.add_learner(node, openraft::BasicNode::default(), false),
        );
        match added.await {
            Ok(Ok(_)) => {}
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                return Err(ReplicationError::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Ok(Err(e)) => {
                return Err(ReplicationError::Replication(format!(
                    "adding broker {node}: {e}"
                )))
            }
            Err(_) => return Err(ReplicationError::Timeout(format!("adding broker {node}"))),
        }
        self.propose(MetadataCommand::RegisterBroker { node, address }, timeout)
            .await
    }

    /// Proposes `command` and returns the image that includes it.
    pub async fn propose(
        &self,
        command: MetadataCommand,
        timeout: Duration,
    ) -> Result<Arc<ClusterImage>> {
        self.propose_with(timeout, |_| Ok(command.clone())).await
    }

    /// Builds a command from the leader's current image, validates it,
    /// appends it and waits until the image includes it.
    async fn propose_with(
        &self,
        timeout: Duration,
        build: impl Fn(&ClusterImage) -> Result<MetadataCommand>,
    ) -> Result<Arc<ClusterImage>> {
        let _serial = self.proposing.lock().await;
        self.ensure_leader().await?;
        let mut image = self.image.clone();
        let committed = self.replica.high_watermark();
        self.wait_for_image(&mut image, committed, timeout).await?;
        let command = build(&image.borrow())?;
        image.borrow().check(&command)?;
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(0, None, Some(&encode_command(&command)?), &[]);
        let batch = self.replica.append(builder.build(), timeout).await?;
        self.wait_for_image(&mut image, batch.next_offset, timeout)
            .await?;
        let applied = Arc::clone(&image.borrow());
        Ok(applied)
    }

    /// Confirms with a quorum that this broker leads the group.
    async fn ensure_leader(&self) -> Result<()> {
        match self.replica.raft().ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                Err(ReplicationError::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(e) => Err(ReplicationError::Replication(format!(
                "controller on node {}: {e}",
                self.node
            ))),
        }
    }

    async fn wait_for_image(
        &self,
        image: &mut watch::Receiver<Arc<ClusterImage>>,
        offset: u64,
        timeout: Duration,
    ) -> Result<()> {
        let reached =
            tokio::time::timeout(timeout, image.wait_for(|i| i.next_offset >= offset)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ReplicationError::Closed("the controller stopped".into())),
            Err(_) => Err(ReplicationError::Timeout(format!(
                "metadata did not reach offset {offset} within {timeout:?}"
            ))),
        }
    }

    /// Stops the applier and the group.
    pub async fn shutdown(&self) -> Result<()> {
        self.applier.abort();
        self.replica.shutdown().await
    }
}

/// Folds committed metadata records into the image, forever: reads from
/// the image's next offset whenever the high watermark moves.
async fn apply_committed(
    replica: Arc<PartitionReplica>,
    publish: watch::Sender<Arc<ClusterImage>>,
) {
    let mut high_watermark = replica.subscribe_high_watermark();
    let mut image = ClusterImage::default();
    loop {
        while image.next_offset < *high_watermark.borrow_and_update() {
            match apply_some(&replica, &mut image) {
                Ok(true) => {
                    publish.send_replace(Arc::new(image.clone()));
                }
                // Nothing readable below the high watermark yet (the log
                // start moved past it): wait for the next change.
                Ok(false) => break,
                Err(e) => {
                    // Waiting for the next high watermark change could wait
                    // forever on an idle cluster: retry on a timer instead.
                    tracing::error!(error = %e, "cannot apply metadata records; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        if high_watermark.changed().await.is_err() {
            return;
        }
    }
}

/// Applies the committed records of one read; false if it read nothing.
fn apply_some(replica: &PartitionReplica, image: &mut ClusterImage) -> Result<bool> {
    let before = image.next_offset;
    let read = replica.read_committed(before, READ_BYTES)?;
    for batch in BatchIter::new(&read.bytes) {
        for record in batch?.records()?.iter() {
            let record = record?;
            if record.offset < before {
                continue;
            }
            let command = decode_command(record.value.unwrap_or_default())?;
            image.apply(record.offset, command);
        }
    }
    image.next_offset = image.next_offset.max(read.next_offset);
    Ok(image.next_offset > before)
}
