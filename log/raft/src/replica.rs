//! A partition replica: one node's segment log together with the openraft
//! group that replicates it. Writes go through Raft and are answered once
//! committed (on disk on a majority); reads see only committed records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft, ServerState, SnapshotPolicy};
use tokio::sync::watch;

use super::idempotence::LeaderView;
use super::leadership::{caught_up_in, current_leader_term, known_leader};
use super::log_store::{PurgePoint, WriteGate};
use super::network::{GroupNetwork, RaftTransport};
use super::state_machine::CurrentSnapshot;
use super::{
    NodeId, PartitionLogStore, PartitionRaftConfig, PartitionStateMachine, SharedProducers,
};
use crate::producers::{AbortedTxn, ProducerStates};
use crate::{ReplicationError, Result};
use spool_record::BatchIter;
use spool_storage::{LogRead, PartitionLog};

/// openraft's configuration for partition groups.
///
/// - Heartbeats every 100 ms and elections after 1–2 s of silence (the
///   controller's group; partition groups quiesce, see
///   [`quiescent_raft_config`], with the same timing): a
///   leader is replaced within about two seconds of its loss, and a
///   loaded two-core machine's scheduling hiccups (tens of ms) do not
///   cause needless elections.
/// - No snapshots by policy: the state machine persists its applied state
///   every 10,000 entries, which bounds what a restart re-applies, and a
///   snapshot is only needed once something is purged (retention builds
///   one before it purges).
/// - A replica added by a move becomes a voter only once it is within
///   [`MOVE_LAG_ENTRIES`] of the leader (openraft's default, 5,000, would
///   let a move drop an old replica while the new one still lacks
///   thousands of entries).
/// - openraft never purges by itself (`max_in_snapshot_log_to_keep` is
///   unbounded): a follower that lags keeps catching up from the log, and
///   only retention decides when records go.
pub fn partition_raft_config(cluster_name: &str) -> Result<Arc<openraft::Config>> {
    let config = openraft::Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: 100,
        election_timeout_min: 1_000,
        election_timeout_max: 2_000,
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: u64::MAX,
        replication_lag_threshold: MOVE_LAG_ENTRIES,
        ..openraft::Config::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| ReplicationError::InvalidRequest(format!("invalid Raft configuration: {e}")))
}

/// openraft's configuration for a quiescent partition group (see
/// [`crate::liveness`]): `base` with heartbeats every 500 ms instead of
/// 100. Such a group's heartbeats and election timer are off, so its
/// openraft tick (every 1.5 heartbeat intervals) only checks whether a
/// membership change removed its leader: every 750 ms is soon enough,
/// where every 150 ms woke a broker's thousand groups 6,700 times a
/// second for nothing (most of an idle broker's CPU). The same interval
/// bounds one AppendEntries call, which may then last 500 ms before it is
/// given up and sent again: long enough for a loaded two-core machine,
/// short beside the election timeout.
pub fn quiescent_raft_config(base: &openraft::Config) -> Result<Arc<openraft::Config>> {
    let config = openraft::Config {
        heartbeat_interval: QUIESCENT_TICK_BASE_MS.min(base.election_timeout_min / 2),
        ..base.clone()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| ReplicationError::InvalidRequest(format!("invalid Raft configuration: {e}")))
}

/// See [`quiescent_raft_config`].
const QUIESCENT_TICK_BASE_MS: u64 = 500;

/// How close (in entries) a replica added by a move must be to the
/// leader's log before it becomes a voter. Small, so that the group never
/// counts on a replica that still lacks much; not zero, so that a move
/// completes under a steady stream of writes.
pub const MOVE_LAG_ENTRIES: u64 = 16;

/// How long a learner a move left out may stay before the leader removes
/// it without having heard that it holds the new membership.
pub const LEFTOVER_LEARNER_PATIENCE: Duration = Duration::from_secs(30);

/// How long a learner a move left out keeps receiving heartbeats after it
/// holds the membership that left it out, before the leader removes it.
/// Holding the membership is not enough: its broker stops the replica
/// only once it knows the membership committed, which the next heartbeat
/// tells it (a quiescent group's leader heartbeats every liveness tick,
/// 250 ms, while its group has learners); once removed, it hears from the
/// group no more.
pub const INFORMED_LEARNER_GRACE: Duration = Duration::from_secs(1);

/// A learner a move left out, as its leader follows it.
#[derive(Clone, Copy, Debug)]
struct Leftover {
    first_seen: std::time::Instant,
    /// Since when it holds the membership at this log index, committed:
    /// a newer membership (another learner removed) starts the grace
    /// again, for it is the one its broker must see committed.
    informed_at: Option<(u64, std::time::Instant)>,
}

/// One node's replica of one partition.
pub struct PartitionReplica {
    pub(super) node: NodeId,
    pub(super) group: Arc<str>,
    pub(super) raft: Raft<PartitionRaftConfig>,
    pub(super) log: Arc<PartitionLog>,
    pub(super) high_watermark: watch::Receiver<u64>,
    /// Shared with the log store and the state machine: retention deletes
    /// segments under it, so never during an install's log restart.
    pub(super) gate: WriteGate,
    pub(super) purge_point: PurgePoint,
    pub(super) current_snapshot: CurrentSnapshot,
    /// Held while one request's batches are proposed, so that they are
    /// consecutive entries (and records) in the log: a producer computes
    /// each batch's offset from the first one's.
    pub(super) proposing: tokio::sync::Mutex<()>,
    /// The producer table as applied, and the leader's view of it.
    pub(super) producers: SharedProducers,
    pub(super) producer_view: LeaderView,
    /// When each learner a move left out was first seen, and first seen
    /// holding the membership that left it out (on the leader).
    leftover_since: parking_lot::Mutex<BTreeMap<NodeId, Leftover>>,
    /// Set by [`PartitionReplica::shutdown`]: a Raft stopped on request is
    /// not one that [`PartitionReplica::stopped`] reports.
    stop_requested: std::sync::atomic::AtomicBool,
}

impl PartitionReplica {
    /// Starts the replica of `group` on `node` over `log`, recovering its
    /// Raft state from the log's directory. Messages to other members go
    /// through `transport`; the caller registers [`PartitionReplica::raft`]
    /// with the node's router so that messages reach this replica.
    pub async fn start(
        node: NodeId,
        group: impl Into<Arc<str>>,
        log: Arc<PartitionLog>,
        transport: Arc<dyn RaftTransport>,
        config: Arc<openraft::Config>,
    ) -> Result<PartitionReplica> {
        let group = group.into();
        super::repair::repair_before_start(&log)?;
        let gate = WriteGate::default();
        let store = PartitionLogStore::open_gated(Arc::clone(&log), Arc::clone(&gate))?;
        let machine = PartitionStateMachine::open_gated(Arc::clone(&log), Arc::clone(&gate))?;
        let high_watermark = machine.subscribe_high_watermark();
        let purge_point = store.purge_point();
        let current_snapshot = machine.current_snapshot();
        let producers = machine.producers();
        let network = GroupNetwork::new(Arc::clone(&group), transport);
        let raft = Raft::new(node, config, network, store, machine)
            .await
            .map_err(|e| {
                ReplicationError::Replication(format!("group {group} on node {node}: {e}"))
            })?;
        Ok(PartitionReplica {
            node,
            group,
            raft,
            log,
            high_watermark,
            gate,
            purge_point,
            current_snapshot,
            proposing: tokio::sync::Mutex::new(()),
            producers,
            producer_view: LeaderView::default(),
            leftover_since: Default::default(),
            stop_requested: Default::default(),
        })
    }

    /// Makes `voters` the group's first membership. Every member may call
    /// this with the same voters; a group that already has a membership
    /// (initialized before, or by another member first) is left as it is.
    pub async fn initialize(&self, voters: &[NodeId]) -> Result<()> {
        let members: BTreeMap<NodeId, BasicNode> = voters
            .iter()
            .map(|&id| (id, BasicNode::default()))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(self.replication_error(e)),
        }
    }

    /// The producer table as this replica applied it.
    pub fn producer_states(&self) -> ProducerStates {
        self.producers.lock().clone()
    }

    /// Whole batches from `offset` on, only those below the high
    /// watermark: a reader never sees a record that is not committed.
    pub fn read_committed(&self, offset: u64, max_bytes: usize) -> Result<LogRead> {
        let high_watermark = self.high_watermark();
        self.read_below(offset, max_bytes, high_watermark, high_watermark)
    }

    /// Whole batches from `offset` on below the last stable offset, which
    /// no open transaction's record passes, with the aborted transactions
    /// whose records they may hold (Kafka's read_committed fetch). Answers
    /// the read, the last stable offset and the aborted transactions.
    pub fn read_stable(
        &self,
        offset: u64,
        max_bytes: usize,
    ) -> Result<(LogRead, u64, Vec<AbortedTxn>)> {
        // The high watermark first: the state machine records a batch's
        // transaction before it moves the watermark past the batch, so
        // every transaction open below this watermark is in the table read
        // next (one that closed meanwhile is in its aborted list).
        let high_watermark = self.high_watermark();
        let first_open = self.producers.lock().first_unstable_offset();
        let stable = first_open.map_or(high_watermark, |first| first.min(high_watermark));
        let read = self.read_below(offset, max_bytes, stable, high_watermark)?;
        // Looked up again after the read rather than copying the table:
        // the read ends at or below `stable`, so a transaction that closed
        // in between has no records in it, and aborted entries are only
        // added (or pruned below the log start).
        let aborted = self
            .producers
            .lock()
            .aborted_between(offset, read.next_offset);
        Ok((read, stable, aborted))
    }

    /// The offset below which every transaction is decided.
    pub fn last_stable_offset(&self) -> u64 {
        let high_watermark = self.high_watermark();
        let first_open = self.producers.lock().first_unstable_offset();
        first_open.map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Whether, as this leader's view stands, producer `producer_id` at
    /// `epoch` has a transaction open here (so its partition was verified).
    pub fn transaction_open(&self, producer_id: i64, epoch: i16) -> bool {
        self.producer_view.transaction_open(producer_id, epoch)
    }

    /// Whole batches from `offset` that end at or below `limit`; the read
    /// reports `high_watermark` as the log end.
    fn read_below(
        &self,
        offset: u64,
        max_bytes: usize,
        limit: u64,
        high_watermark: u64,
    ) -> Result<LogRead> {
        if offset >= limit {
            // Past the partition's end is out of range (Kafka's rule: the
            // consumer resets), between the limit and the end only early.
            // Only a leader that applied its whole log knows the end: on a
            // follower or a leader still catching up, the offset may yet
            // arrive, and a reset there would skip or repeat records.
            let (log_start, log_end) = (self.log.log_start_offset(), self.log.log_end_offset());
            if offset > log_end && self.knows_the_log_end() {
                return Err(ReplicationError::OffsetOutOfRange {
                    offset,
                    log_start,
                    log_end,
                });
            }
            return Ok(LogRead {
                bytes: Vec::new(),
                next_offset: offset,
                log_start_offset: self.log.log_start_offset(),
                log_end_offset: high_watermark,
            });
        }
        let mut read = self.log.read(offset, max_bytes)?;
        let mut kept = 0usize;
        let mut next_offset = offset;
        for batch in BatchIter::new(&read.bytes) {
            let batch = batch?;
            if batch.next_offset() > limit {
                break;
            }
            kept += batch.size();
            next_offset = batch.next_offset();
        }
        read.bytes.truncate(kept);
        read.next_offset = next_offset;
        read.log_end_offset = high_watermark;
        Ok(read)
    }

    /// Whether this replica's log end is the partition's: it leads and
    /// has applied its whole log, so every entry it holds is committed and
    /// every committed entry is here.
    fn knows_the_log_end(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader
            && metrics.last_applied.map(|l| l.index) >= metrics.last_log_index
    }

    /// The offset after the last committed record this replica knows of.
    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    /// Follows the high watermark.
    pub fn subscribe_high_watermark(&self) -> watch::Receiver<u64> {
        self.high_watermark.clone()
    }

    /// Waits until the high watermark reaches `offset`, or `timeout`.
    pub async fn wait_for_high_watermark(&self, offset: u64, timeout: Duration) -> Result<u64> {
        let mut watcher = self.high_watermark.clone();
        let reached = tokio::time::timeout(timeout, watcher.wait_for(|hw| *hw >= offset)).await;
        match reached {
            Ok(Ok(hw)) => Ok(*hw),
            Ok(Err(_)) => Err(ReplicationError::Closed(format!(
                "group {} stopped",
                self.group
            ))),
            Err(_) => Err(ReplicationError::Timeout(format!(
                "high watermark {} of group {} on node {} did not reach {offset}",
                self.high_watermark(),
                self.group,
                self.node
            ))),
        }
    }

    /// Makes `target` the group's voters (on its leader), one step per
    /// call; the caller repeats until [`PartitionReplica::membership_is`]
    /// `target`. A step that fails (a crash, a lost leadership) is taken
    /// again by whoever leads next.
    ///
    /// 1. New members join as learners and catch up (by snapshot if the
    ///    log they need is purged).
    /// 2. The voters change through a joint configuration (a majority of
    ///    the old voters and one of the new must agree meanwhile); members
    ///    left out stay as learners, so that replication goes on to them
    ///    until they hold the new configuration and see they are out.
    /// 3. Such a learner is removed once it holds the configuration that
    ///    made it one, committed, and has had [`INFORMED_LEARNER_GRACE`]
    ///    of heartbeats to learn that it committed (or after
    ///    [`LEFTOVER_LEARNER_PATIENCE`]).
    pub async fn change_voters(&self, target: &BTreeSet<NodeId>) -> Result<()> {
        let (voters, joint) = self.voters();
        if voters != *target || joint {
            for &node in target.difference(&self.members()) {
                self.raft
                    .add_learner(node, BasicNode::default(), true)
                    .await
                    .map_err(|e| self.write_error(e))?;
            }
            self.raft
                .change_membership(target.clone(), true)
                .await
                .map_err(|e| self.write_error(e))?;
        }
        let done_with = self.learners_to_remove(target);
        if !done_with.is_empty() {
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(done_with), false)
                .await
                .map_err(|e| self.write_error(e))?;
        }
        Ok(())
    }

    /// Whether the group's voters are `target`, with no change under way
    /// and no other member left.
    pub fn membership_is(&self, target: &BTreeSet<NodeId>) -> bool {
        let (voters, joint) = self.voters();
        voters == *target && !joint && self.members() == *target
    }

    /// Learners outside `target` that may go: those the leader has
    /// replicated the current, committed membership to at least
    /// [`INFORMED_LEARNER_GRACE`] ago, and those left over for longer than
    /// [`LEFTOVER_LEARNER_PATIENCE`] (their broker was down during the
    /// move; back, it will not start a replica the metadata no longer
    /// places there, so it has nothing to learn).
    fn learners_to_remove(&self, target: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let config_index = metrics.membership_config.log_id().map_or(0, |id| id.index);
        let committed = metrics.last_applied.map_or(0, |id| id.index) >= config_index;
        let leftover: BTreeSet<NodeId> = metrics
            .membership_config
            .membership()
            .learner_ids()
            .filter(|learner| !target.contains(learner))
            .collect();
        let mut since = self.leftover_since.lock();
        since.retain(|learner, _| leftover.contains(learner));
        let now = std::time::Instant::now();
        leftover
            .into_iter()
            .filter(|learner| {
                let holds_it = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(learner).copied().flatten())
                    .is_some_and(|matched| matched.index >= config_index);
                let seen = since.entry(*learner).or_insert(Leftover {
                    first_seen: now,
                    informed_at: None,
                });
                seen.informed_at = match (holds_it && committed, seen.informed_at) {
                    (false, _) => None,
                    (true, Some((index, at))) if index == config_index => Some((index, at)),
                    (true, _) => Some((config_index, now)),
                };
                let graced = seen
                    .informed_at
                    .is_some_and(|(_, at)| now.duration_since(at) >= INFORMED_LEARNER_GRACE);
                graced || now.duration_since(seen.first_seen) >= LEFTOVER_LEARNER_PATIENCE
            })
            .collect()
    }

    /// The group's members as this replica last saw its membership:
    /// voters and learners, including a change not yet committed.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        membership.nodes().map(|(id, _)| *id).collect()
    }

    /// Whether this replica has applied (so the group committed) the
    /// membership it last saw.
    pub fn membership_applied(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = *metrics.membership_config.log_id();
        metrics.last_applied >= membership
    }

    /// The group's voters as this replica last saw them, and whether a
    /// change between two configurations is under way.
    pub fn voters(&self) -> (BTreeSet<NodeId>, bool) {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let joint = membership.get_joint_config().len() > 1;
        (membership.voter_ids().collect(), joint)
    }

    /// The term this replica leads, once it has applied its whole log in
    /// that term, so that its applied state holds everything committed
    /// before the term began: what a new leader waits for before serving
    /// state folded from the log (its producer table, committed offsets).
    /// Fails with [`ReplicationError::NotLeader`] on a follower, or when the
    /// leadership moved meanwhile.
    pub async fn caught_up_term(&self, timeout: Duration) -> Result<u64> {
        let term = current_leader_term(&self.raft)?;
        caught_up_in(&self.raft, term, timeout).await?;
        Ok(term)
    }

    /// The term this replica leads now, if it leads.
    pub fn leading_term(&self) -> Option<u64> {
        current_leader_term(&self.raft).ok()
    }

    /// The node this replica believes leads the group; `None` once its
    /// Raft stopped (after a storage failure, say): its last belief,
    /// often itself, would send clients to a replica that answers nothing.
    pub fn leader(&self) -> Option<NodeId> {
        known_leader(&self.raft.metrics().borrow())
    }

    /// True once the group's Raft stopped on this node by itself (a fatal
    /// storage error such as a failed fsync), not because
    /// [`PartitionReplica::shutdown`] was called: it takes no part in the
    /// group until the replica is started again.
    pub fn stopped(&self) -> bool {
        !self
            .stop_requested
            .load(std::sync::atomic::Ordering::SeqCst)
            && self.raft.metrics().borrow().state == ServerState::Shutdown
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    pub fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    /// The group's `Raft`, for the node's router and for membership changes.
    pub fn raft(&self) -> &Raft<PartitionRaftConfig> {
        &self.raft
    }

    /// Stops the group's tasks; the log stays open for the caller.
    pub async fn shutdown(&self) -> Result<()> {
        self.stop_requested
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.raft.shutdown().await.map_err(|e| {
            ReplicationError::Replication(format!("shutting down group {}: {e}", self.group))
        })
    }

    /// A membership change's error: not-leader names the leader.
    fn write_error(
        &self,
        e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
    ) -> ReplicationError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
                ReplicationError::NotLeader {
                    leader: forward.leader_id,
                }
            }
            e => self.replication_error(e),
        }
    }

    pub(super) fn replication_error<E: std::fmt::Display>(&self, e: E) -> ReplicationError {
        ReplicationError::Replication(format!("group {} on node {}: {e}", self.group, self.node))
    }
}
