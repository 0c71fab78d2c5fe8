//! Which groups this broker coordinates: those whose partition of the
//! offsets topic (their *shard*) it leads.
//!
//! A shard is loaded once per term of leadership: the replica must have
//! applied its whole log in that term (so everything committed before the
//! term is applied), then the shard's committed offsets are folded from the
//! log. Groups are kept in memory only, so a shard loaded for a new term
//! starts with none: the members of its groups, told `NOT_COORDINATOR` by
//! the old leader or unknown to the new one, find the coordinator again and
//! rejoin (their committed offsets are in the log and survive).

use std::sync::Arc;
use std::time::Duration;

use super::offsets::OffsetStore;
use crate::broker::Partition;
use crate::{LogError, Result};

/// How long loading a shard may wait for its replica to apply its log.
const LOAD_PATIENCE: Duration = Duration::from_secs(10);

/// A partition of the offsets topic while this broker leads it.
pub struct Shard {
    pub index: u32,
    pub offsets: OffsetStore,
    partition: Arc<Partition>,
    /// The term of leadership the shard was loaded for.
    term: u64,
    /// Commits are checked and proposed under it, so that they reach the
    /// log in the order the coordinator accepted them.
    pub order: tokio::sync::Mutex<()>,
}

impl Shard {
    /// Loads shard `index` over `partition`, which this broker must lead
    /// (else `NotCoordinator` for `group`).
    pub async fn load(group: &str, index: u32, partition: Arc<Partition>) -> Result<Shard> {
        let term = partition
            .replica()
            .caught_up_term(LOAD_PATIENCE)
            .await
            .map_err(|e| not_coordinator(group, e))?;
        let offsets = OffsetStore::load(Arc::clone(&partition))?;
        tracing::info!(
            shard = index,
            term,
            "coordinating the groups of an offsets partition"
        );
        Ok(Shard {
            index,
            offsets,
            partition,
            term,
            order: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether this broker still leads the shard in the term it loaded it
    /// for, through `partition` (a replica restarted since is a new one).
    pub fn is_current_for(&self, partition: &Arc<Partition>) -> bool {
        Arc::ptr_eq(&self.partition, partition) && self.is_current()
    }

    /// Whether this broker still leads the shard in the term it loaded it
    /// for.
    pub fn is_current(&self) -> bool {
        self.partition.replica().leading_term() == Some(self.term)
    }
}

/// A replica's leadership error, as a group request sees it.
pub fn not_coordinator(group: &str, e: LogError) -> LogError {
    match e {
        LogError::NotLeader { leader } => LogError::NotCoordinator {
            group: group.to_string(),
            leader,
        },
        LogError::Timeout(reason) => LogError::CoordinatorNotAvailable {
            group: group.to_string(),
            reason,
        },
        other => other,
    }
}
