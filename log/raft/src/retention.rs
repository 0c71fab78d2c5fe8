//! Retention on a replicated partition.
//!
//! Each replica applies its topic's `retention.ms` and `retention.bytes` to
//! its own log, as Kafka's replicas do, but a segment goes only once Raft
//! no longer needs its entries:
//!
//! 1. The log says which entries retention would delete (all entries
//!    before the first segment it keeps); only applied (committed) ones
//!    are candidates.
//! 2. A snapshot must cover them: if the last one does not, openraft is
//!    asked to build one (cheap: a snapshot is a description, its data is
//!    the log, see [`super::state_machine`]).
//! 3. openraft is asked to purge up to the last of them. A follower purges
//!    at once; a leader waits until no replication stream still reads those
//!    entries. From then on a replica that needs them gets the snapshot:
//!    the leader's remaining log, installed in place of its own.
//! 4. Segments are deleted up to the durable purge point (and never past the
//!    durable snapshot), under the store's write gate so that an install
//!    cannot restart the log in between.
//!
//! A pass that has to wait for openraft too long leaves the rest to the
//! next pass.

use std::sync::Arc;
use std::time::Duration;

use super::PartitionReplica;
use crate::{ReplicationError, Result};
use spool_storage::{PartitionLog, RetentionOutcome};

impl PartitionReplica {
    /// Applies retention to this replica (see the module docs), waiting up
    /// to `patience` for each of openraft's steps.
    pub async fn enforce_retention(&self, patience: Duration) -> Result<RetentionOutcome> {
        let keep_from = blocking(self.log(), |log| log.retained_raft_index()).await?;
        let (first, _) = self.log().raft_index_range();
        if keep_from > first {
            self.purge_raft_log_before(keep_from, patience).await?;
        }
        self.delete_purged_segments().await
    }

    async fn purge_raft_log_before(&self, keep_from: u64, patience: Duration) -> Result<()> {
        let metrics = self.raft().metrics().borrow().clone();
        let Some(applied) = metrics.last_applied else {
            return Ok(());
        };
        // Entries not applied here may not be committed yet: they stay.
        let upto = (keep_from - 1).min(applied.index);
        if metrics.purged.is_some_and(|purged| purged.index >= upto) {
            return Ok(());
        }
        if metrics
            .snapshot
            .is_none_or(|snapshot| snapshot.index < upto)
        {
            self.raft()
                .trigger()
                .snapshot()
                .await
                .map_err(|e| self.replication_error(e))?;
            self.raft()
                .wait(Some(patience))
                .metrics(
                    |m| m.snapshot.is_some_and(|s| s.index >= upto),
                    "a snapshot covering what retention deletes",
                )
                .await
                .map_err(|e| self.replication_error(e))?;
        }
        self.raft()
            .trigger()
            .purge_log(upto)
            .await
            .map_err(|e| self.replication_error(e))?;
        // A leader purges once its replication streams let go of these
        // entries, and looks again only when a member answers: a
        // quiescent group's idle members say nothing unless asked, so ask.
        // Until then the segments stay, and the next pass goes on.
        self.raft()
            .trigger()
            .heartbeat()
            .await
            .map_err(|e| self.replication_error(e))?;
        let purged = self
            .raft()
            .wait(Some(patience))
            .metrics(
                |m| m.purged.is_some_and(|p| p.index >= upto),
                "the purge retention asked for",
            )
            .await;
        if let Err(e) = purged {
            tracing::debug!(error = %e, "retention's purge is not done yet");
        }
        Ok(())
    }

    /// Deletes the segments retention drops, up to the durable purge point
    /// and the durable snapshot.
    async fn delete_purged_segments(&self) -> Result<RetentionOutcome> {
        let _gate = self.gate.lock().await;
        let purged = *self.purge_point.read();
        let snapshot = self
            .current_snapshot
            .lock()
            .as_ref()
            .and_then(|record| record.meta.last_log_id);
        let deletable_before = purged.min(snapshot).map_or(0, |id| id.index + 1);
        blocking(self.log(), move |log| {
            let (segments, bytes) = (log.segment_base_offsets().len(), log.size_bytes());
            // Asked again under the gate: an install may have restarted the
            // log since the purge was planned.
            let keep_from = log.retained_raft_index()?;
            log.delete_raft_before(keep_from.min(deletable_before))?;
            Ok(RetentionOutcome {
                segments_deleted: segments.saturating_sub(log.segment_base_offsets().len()),
                bytes_deleted: bytes.saturating_sub(log.size_bytes()),
                log_start_offset: log.log_start_offset(),
            })
        })
        .await
    }
}

/// Runs `work` on `log` on the blocking pool: it reads and deletes files.
async fn blocking<T: Send + 'static>(
    log: &Arc<PartitionLog>,
    work: impl FnOnce(&PartitionLog) -> spool_storage::Result<T> + Send + 'static,
) -> Result<T> {
    let log = Arc::clone(log);
    tokio::task::spawn_blocking(move || work(&log).map_err(ReplicationError::from))
        .await
        .map_err(|e| ReplicationError::Replication(format!("a retention task failed: {e}")))?
}
