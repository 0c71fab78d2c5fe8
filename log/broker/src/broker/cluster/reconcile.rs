//! Keeping a broker's replicas in line with the cluster's metadata, and
//! registering the configured brokers.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::{moves, topic_config};
use crate::broker::topic::Partition;
use crate::broker::{Broker, Topic, OFFSETS_TOPIC, TRANSACTIONS_TOPIC};
use crate::Result;
use spool_raft::metadata::{ClusterImage, MetadataCommand};

impl Broker {
    /// Brings the partitions this broker holds in line with `image`: stops
    /// the replicas of partitions no longer placed here (a deleted topic,
    /// an older incarnation of a re-created one, or a partition moved
    /// away once its group no longer counts this broker as a voter), then
    /// starts the missing ones.
    async fn apply_image(&self, image: &ClusterImage) -> Result<()> {
        let cluster = &self.cluster;
        let node = cluster.config.node_id;
        for (&broker, address) in &image.brokers {
            cluster.grpc.learn_peer(broker, address)?;
        }
        let stale: Vec<(String, u32)> = cluster
            .replicas
            .read()
            .iter()
            .filter(|((topic, index), hosted)| {
                let Some(topic) = image.topics.get(topic).filter(|t| t.id == hosted.topic_id)
                else {
                    return true;
                };
                let placed = topic.replicas.get(*index as usize);
                !placed.is_some_and(|r| r.contains(&node))
                    && moves::moved_away_and_out(&hosted.replica, node)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for (topic, index) in stale {
            self.forget_partition(&topic, index);
            self.unmanage_log(&topic, index);
            cluster.stop_replica(&topic, index).await?;
            tracing::info!(topic = %topic, partition = index, "stopped a replica no longer placed here");
        }
        for (name, assignment) in &image.topics {
            // One topic whose settings this broker cannot take must not
            // keep every other topic from being served.
            let config = match topic_config(&self.config().topic_defaults, &assignment.config) {
                Ok(config) => config,
                Err(e) => {
                    tracing::error!(topic = %name, error = %e, "cannot open the topic's replicas");
                    continue;
                }
            };
            let held = self.topics.read().get(name).cloned();
            if let Some(topic) = held.filter(|t| t.config() != config) {
                topic.apply_config(config.clone());
                tracing::info!(topic = %name, "applied the topic's new settings");
            }
            for (index, replicas) in assignment.replicas.iter().enumerate() {
                let index = index as u32;
                if !replicas.contains(&node) || cluster.replica(name, index).is_some() {
                    continue;
                }
                // One replica that cannot start (its files need an
                // operator) must not keep the others from being served.
                let replica = match cluster
                    .start_replica(name, index, assignment, &config)
                    .await
                {
                    Ok(replica) => replica,
                    Err(e) => {
                        tracing::error!(topic = %name, partition = index, error = %e, "cannot start a replica");
                        continue;
                    }
                };
                let topic = Arc::clone(
                    self.topics
                        .write()
                        .entry(name.clone())
                        .or_insert_with(|| Arc::new(Topic::new(name, config.clone()))),
                );
                let partition = Arc::new(Partition::new(name, index, replica));
                self.manage_log(&partition);
                topic.add_partition(partition);
                tracing::info!(topic = %name, partition = index, "started replica");
            }
        }
        Ok(())
    }

    /// Closes the replicas whose Raft stopped on a storage failure, so
    /// that [`Broker::apply_image`] starts them again from their
    /// directories: the group's other replicas lead meanwhile, and the
    /// restarted one catches up from them (a single replica's partition is
    /// unavailable until then, and loses nothing acknowledged with
    /// acks=all: such an entry is acknowledged only once its fsync
    /// succeeded).
    async fn close_stopped_replicas(&self, image: &ClusterImage) {
        for (topic, index) in self.cluster.stopped_replicas(image) {
            tracing::error!(topic = %topic, partition = index, "a replica's Raft stopped on a storage failure; restarting it from its files");
            if let Err(e) = self.cluster.close_stopped_replica(&topic, index).await {
                tracing::error!(topic = %topic, partition = index, error = %e, "cannot restart the replica yet; trying again");
                continue;
            }
            self.forget_partition(&topic, index);
            self.unmanage_log(&topic, index);
        }
    }

    /// Fails the broker (see `Broker::failed`) once its member of the
    /// controller group stopped by itself, on a storage failure.
    fn check_controller(&self) {
        if self.cluster.controller.replica().stopped() {
            self.fail(
                "the cluster metadata log's Raft stopped on a storage failure (a failed fsync)"
                    .into(),
            );
        }
    }

    /// Once the controller member's metadata stopped coming: waits (a
    /// bounded time) for its Raft to report itself stopped, then fails the
    /// broker if it stopped by itself.
    async fn check_stopped_controller(&self) {
        let mut metrics = self.cluster.controller.replica().raft().metrics();
        let shut_down = metrics.wait_for(|m| m.state == openraft::ServerState::Shutdown);
        let _ = tokio::time::timeout(Duration::from_secs(5), shut_down).await;
        self.check_controller();
    }

    /// Logs, once per change, that the system clock was stepped more than
    /// a second away from the broker's steady clock: an operator should
    /// know that retention and timeouts go by the broker's time until it
    /// restarts (see `BrokerConfig::wall_clock`).
    fn report_clock_step(&self, reported_ms: &mut i64) {
        let step = self.clock.step_ms();
        if (step - *reported_ms).abs() > 1000 {
            tracing::warn!(step_ms = step, "the system clock was stepped while the broker runs; retention, segment rolls and timeouts keep the broker's own time until it restarts");
            *reported_ms = step;
        }
    }

    /// Removes a replicated partition from the topic map (the topic too
    /// once it has none left here).
    fn forget_partition(&self, topic: &str, index: u32) {
        let mut topics = self.topics.write();
        if let Some(found) = topics.get(topic) {
            found.remove_partition(index);
            if found.partition_count() == 0 {
                topics.remove(topic);
            }
        }
    }
}

/// How often the reconciler looks again without a metadata change: moves
/// progress through Raft membership changes the metadata does not show.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// Keeps the broker's replicas in line with the metadata, and carries out
/// the moves of the groups it leads, until the broker is dropped.
pub(crate) async fn reconcile(
    broker: Weak<Broker>,
    mut images: watch::Receiver<Arc<ClusterImage>>,
) {
    let mut clock_step_ms = 0;
    loop {
        let image = Arc::clone(&images.borrow_and_update());
        let Some(strong) = broker.upgrade() else {
            return;
        };
        strong.report_clock_step(&mut clock_step_ms);
        strong.check_controller();
        strong.close_stopped_replicas(&image).await;
        if let Err(e) = strong.apply_image(&image).await {
            tracing::error!(error = %e, "cannot apply cluster metadata; retrying");
            drop(strong);
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        moves::drive_moves(&strong, &image);
        drop(strong);
        let changed = tokio::time::timeout(RECONCILE_EVERY, images.changed()).await;
        if matches!(changed, Ok(Err(_))) {
            // The metadata stopped coming: the broker shuts down, or its
            // controller member stopped on a storage failure.
            if let Some(strong) = broker.upgrade() {
                strong.check_stopped_controller().await;
            }
            return;
        }
    }
}

/// On the controller's leader, registers every configured broker the
/// metadata lacks (or knows at another address), then creates the
/// internal topics once every configured broker is registered (so their
/// replicas spread over all of them); again once a second, since the
/// leadership may move. The first pass runs at once: a single node is
/// ready as soon as it has registered itself and created the offsets
/// topic.
pub(crate) async fn register_brokers(broker: Weak<Broker>) {
    let mut leadership = {
        let Some(strong) = broker.upgrade() else {
            return;
        };
        strong.cluster.controller.replica().raft().metrics()
    };
    loop {
        let Some(strong) = broker.upgrade() else {
            return;
        };
        if let Err(e) = strong.settle_metadata().await {
            tracing::warn!(error = %e, "settling the cluster metadata failed; will retry");
        }
        drop(strong);
        // Wake early when the controller's leadership changes.
        let _ = tokio::time::timeout(Duration::from_secs(1), leadership.changed()).await;
    }
}

impl Broker {
    /// One pass of [`register_brokers`] (a no-op off the controller's
    /// leader).
    async fn settle_metadata(&self) -> Result<()> {
        let cluster = &self.cluster;
        let controller = &cluster.controller;
        if controller.leader() != Some(cluster.config.node_id) {
            return Ok(());
        }
        let timeout = cluster.config.metadata_timeout;
        for (&node, address) in &cluster.config.peers {
            if controller.image().brokers.get(&node) == Some(address) {
                continue;
            }
            let command = MetadataCommand::RegisterBroker {
                node,
                address: address.clone(),
            };
            controller.propose(command, timeout).await?;
        }
        let image = controller.image();
        let all_registered = cluster
            .config
            .peers
            .keys()
            .all(|node| image.brokers.contains_key(node));
        if all_registered && !image.topics.contains_key(OFFSETS_TOPIC) {
            let groups = &self.config().groups;
            let factor = (image.brokers.len() as u32).min(groups.offsets_replication_factor);
            let config = crate::broker::groups::offsets_topic_config(&self.config().topic_defaults);
            let pairs = config.to_owned_pairs();
            controller
                .create_topic(
                    OFFSETS_TOPIC,
                    groups.offsets_partitions,
                    factor,
                    pairs,
                    timeout,
                )
                .await?;
            tracing::info!(
                partitions = groups.offsets_partitions,
                factor,
                "created the offsets topic"
            );
        }
        if all_registered && !image.topics.contains_key(TRANSACTIONS_TOPIC) {
            let transactions = &self.config().transactions;
            let factor = (image.brokers.len() as u32).min(transactions.replication_factor);
            let config = crate::broker::transactions::transactions_topic_config(
                &self.config().topic_defaults,
            );
            controller
                .create_topic(
                    TRANSACTIONS_TOPIC,
                    transactions.partitions,
                    factor,
                    config.to_owned_pairs(),
                    timeout,
                )
                .await?;
            tracing::info!(
                partitions = transactions.partitions,
                factor,
                "created the transaction state topic"
            );
        }
        Ok(())
    }
}

/// How long one replica's retention pass waits for each of openraft's
/// steps (a snapshot, a purge) before leaving the rest to the next pass.
const RETENTION_PATIENCE: Duration = Duration::from_secs(10);

/// Applies retention to every replica this broker runs, every `interval`
/// (the broker's `retention_check_interval`), until the broker is
/// dropped. Each replica purges its Raft log through openraft before it
/// deletes segments (`spool_raft::retention`). The controller's metadata
/// log is never subject to retention: it is the cluster's history.
pub(crate) async fn enforce_retention(broker: Weak<Broker>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(strong) = broker.upgrade() else {
            return;
        };
        let replicas: Vec<_> = strong
            .cluster
            .replicas
            .read()
            .iter()
            .map(|((topic, index), hosted)| (topic.clone(), *index, Arc::clone(&hosted.replica)))
            .collect();
        drop(strong);
        for (topic, index, replica) in replicas {
            match replica.enforce_retention(RETENTION_PATIENCE).await {
                Ok(outcome) if outcome.segments_deleted > 0 => {
                    tracing::info!(topic = %topic, partition = index, ?outcome, "retention deleted segments")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(topic = %topic, partition = index, error = %e, "retention failed; will retry")
                }
            }
        }
    }
}
