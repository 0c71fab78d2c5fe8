//! What a group's Raft says of its leadership: the term a replica leads,
//! the leader it knows, and waiting until a new leader applied its log.
//! Free functions over a `Raft`, shared by the replica and the producer
//! state view it keeps as leader.

use std::time::Duration;

use openraft::{BasicNode, Raft, ServerState};

use crate::{NodeId, PartitionRaftConfig, ReplicationError, Result};

/// The term `raft` leads, or [`ReplicationError::NotLeader`] naming the leader it
/// knows.
pub(super) fn current_leader_term(raft: &Raft<PartitionRaftConfig>) -> Result<u64> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    match metrics.state {
        ServerState::Leader => Ok(metrics.current_term),
        _ => Err(ReplicationError::NotLeader {
            leader: known_leader(&metrics),
        }),
    }
}

/// The leader a replica's metrics name, unless its Raft stopped.
pub(super) fn known_leader(metrics: &openraft::RaftMetrics<NodeId, BasicNode>) -> Option<NodeId> {
    match metrics.state {
        ServerState::Shutdown => None,
        _ => metrics.current_leader,
    }
}

/// Waits (up to `timeout`) until `raft`, leading in `term`, has applied
/// its whole log; fails with [`ReplicationError::NotLeader`] if it stopped leading
/// in `term` meanwhile (led by someone else, or by this replica again in a
/// newer term, whose log may hold entries a view built now would miss).
pub(super) async fn caught_up_in(
    raft: &Raft<PartitionRaftConfig>,
    term: u64,
    timeout: Duration,
) -> Result<()> {
    let caught_up = raft
        .wait(Some(timeout))
        .metrics(
            |m| m.current_term != term || m.last_applied.map(|l| l.index) >= m.last_log_index,
            "the leader applied its whole log",
        )
        .await
        .map_err(|e| {
            ReplicationError::Timeout(format!("waiting for the leader to apply its log: {e}"))
        })?;
    if caught_up.current_term != term || caught_up.state != ServerState::Leader {
        return Err(ReplicationError::NotLeader {
            leader: caught_up.current_leader,
        });
    }
    Ok(())
}
