//! Repairs a replica's Raft files at its start, before openraft reads
//! them, after a crash in the middle of a snapshot install.
//!
//! - An install restarts the log with the leader's batches between writing
//!   the `raft-installing` marker and naming the snapshot in
//!   `raft-snapshot`. A marker left behind means the log may hold part of
//!   the leader's batches, or none: the install is finished without them,
//!   the log restarting empty right after the snapshot. The replica then
//!   holds the snapshot's state (its high watermark and last entry) but not
//!   the records before it, as if retention had deleted them here; Raft
//!   needs no more, and a voter's last log id never goes back.
//! - openraft persists the purge that follows an install without waiting
//!   for the install (they run on different tasks). A purge point past the
//!   last durable snapshot means the crash came before the install changed
//!   anything: the purge is taken back to the snapshot, and the leader
//!   sends the snapshot again.

use super::raft_state::RaftStateFile;
use super::raft_state::RAFT_STATE_FILE;
use super::state_machine::{
    SnapshotRecord, RAFT_APPLIED_FILE, RAFT_INSTALLING_FILE, RAFT_SNAPSHOT_FILE,
};
use crate::{ReplicationError, Result};
use spool_storage::PartitionLog;
use spool_storage::{read_durable, remove_durable, write_durable};

/// Runs both repairs on `log`'s directory.
pub(super) fn repair_before_start(log: &PartitionLog) -> Result<()> {
    finish_interrupted_install(log)?;
    keep_purge_within_snapshot(log)
}

fn finish_interrupted_install(log: &PartitionLog) -> Result<()> {
    let dir = log.dir();
    let Some(installing) = read_durable::<SnapshotRecord>(dir, RAFT_INSTALLING_FILE)? else {
        return Ok(());
    };
    let current: Option<SnapshotRecord> = read_durable(dir, RAFT_SNAPSHOT_FILE)?;
    let finished = current.is_some_and(|c| c.meta.last_log_id >= installing.meta.last_log_id);
    if !finished {
        let last = installing.meta.last_log_id.ok_or_else(|| {
            ReplicationError::InvalidRequest("an install marker without a last log id".into())
        })?;
        tracing::warn!(
            dir = %dir.display(),
            snapshot = %last,
            "a snapshot install was interrupted; finishing it without the records before it"
        );
        log.restart_at(installing.high_watermark, last.index + 1)?;
        write_durable(dir, RAFT_SNAPSHOT_FILE, &installing)?;
        // The applied state before the install is older than the snapshot.
        remove_durable(dir, RAFT_APPLIED_FILE)?;
        let mut state: RaftStateFile = read_durable(dir, RAFT_STATE_FILE)?.unwrap_or_default();
        state.last_purged = Some(last);
        write_durable(dir, RAFT_STATE_FILE, &state)?;
    }
    Ok(remove_durable(dir, RAFT_INSTALLING_FILE)?)
}

fn keep_purge_within_snapshot(log: &PartitionLog) -> Result<()> {
    let dir = log.dir();
    let Some(mut state) = read_durable::<RaftStateFile>(dir, RAFT_STATE_FILE)? else {
        return Ok(());
    };
    let snapshot = read_durable::<SnapshotRecord>(dir, RAFT_SNAPSHOT_FILE)?;
    let snapshot_last = snapshot.and_then(|s| s.meta.last_log_id);
    if state.last_purged <= snapshot_last {
        return Ok(());
    }
    // Taking the purge back is only sound while the log still holds every
    // entry after the snapshot; retention never deletes past it.
    let (first, _) = log.raft_index_range();
    let after_snapshot = snapshot_last.map_or(0, |id| id.index + 1);
    if first > after_snapshot {
        return Err(ReplicationError::InvalidRequest(format!(
            "{}: the Raft log is purged past its last snapshot and starts at entry {first}",
            dir.display()
        )));
    }
    tracing::warn!(
        dir = %dir.display(),
        "the Raft log was purged past its last snapshot (a crash during an install); taking the purge back"
    );
    state.last_purged = snapshot_last;
    Ok(write_durable(dir, RAFT_STATE_FILE, &state)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use openraft::{EntryPayload, SnapshotMeta, Vote};

    use super::*;
    use crate::entry::{encode_entry, log_id};
    use crate::log_store::append_stored_batches;
    use crate::{BatchPayload, PartitionEntry};
    use spool_record::{BatchBuilder, Compression};
    use spool_storage::config::LogConfig;
    use spool_storage::SystemClock;

    /// A log holding `count` data entries of term 1, one record each.
    fn log_with_entries(dir: &std::path::Path, count: u64) -> PartitionLog {
        let log = PartitionLog::open(dir, LogConfig::default(), Arc::new(SystemClock)).unwrap();
        let mut encoded = Vec::new();
        for index in 0..count {
            let mut builder = BatchBuilder::new(Compression::None);
            builder.push(1_000, None, Some(format!("v{index}").as_bytes()), &[]);
            let entry = PartitionEntry {
                log_id: log_id(1, index),
                payload: EntryPayload::Normal(BatchPayload::new(builder.build().into())),
            };
            encode_entry(&entry, &mut encoded).unwrap();
        }
        append_stored_batches(&log, &mut encoded).unwrap();
        log
    }

    fn record(term: u64, index: u64, high_watermark: u64) -> SnapshotRecord {
        SnapshotRecord {
            meta: SnapshotMeta {
                last_log_id: Some(log_id(term, index)),
                last_membership: Default::default(),
                snapshot_id: format!("{term}-{index}"),
            },
            high_watermark,
            producers: Default::default(),
        }
    }

    fn raft_state(dir: &std::path::Path) -> RaftStateFile {
        read_durable(dir, RAFT_STATE_FILE).unwrap().unwrap()
    }

    #[test]
    fn an_interrupted_install_is_finished_without_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_entries(dir.path(), 5);
        let vote = Vote::new_committed(2, 3);
        let state = RaftStateFile {
            vote: Some(vote),
            last_purged: None,
        };
        write_durable(dir.path(), RAFT_STATE_FILE, &state).unwrap();
        let installing = record(2, 20, 40);
        write_durable(dir.path(), RAFT_INSTALLING_FILE, &installing).unwrap();

        repair_before_start(&log).unwrap();

        assert_eq!(
            log.raft_index_range(),
            (21, 21),
            "empty, after the snapshot"
        );
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (40, 40),
            "the next record gets the snapshot's high watermark"
        );
        let snapshot: SnapshotRecord = read_durable(dir.path(), RAFT_SNAPSHOT_FILE)
            .unwrap()
            .unwrap();
        assert_eq!(snapshot.meta, installing.meta);
        assert_eq!(snapshot.high_watermark, 40);
        let state = raft_state(dir.path());
        assert_eq!(state.last_purged, Some(log_id(2, 20)));
        assert_eq!(state.vote, Some(vote), "the vote is never forgotten");
        assert!(!dir.path().join(RAFT_INSTALLING_FILE).exists());
    }

    #[test]
    fn a_marker_left_after_a_finished_install_is_only_removed() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_entries(dir.path(), 5);
        let finished = record(1, 4, 5);
        write_durable(dir.path(), RAFT_SNAPSHOT_FILE, &finished).unwrap();
        write_durable(dir.path(), RAFT_INSTALLING_FILE, &finished).unwrap();

        repair_before_start(&log).unwrap();

        assert_eq!(log.raft_index_range(), (0, 5), "the log is untouched");
        assert!(!dir.path().join(RAFT_INSTALLING_FILE).exists());
    }

    #[test]
    fn a_purge_persisted_before_its_install_is_taken_back_to_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_entries(dir.path(), 5);
        write_durable(dir.path(), RAFT_SNAPSHOT_FILE, &record(1, 1, 2)).unwrap();
        let state = RaftStateFile {
            vote: None,
            last_purged: Some(log_id(3, 30)),
        };
        write_durable(dir.path(), RAFT_STATE_FILE, &state).unwrap();

        repair_before_start(&log).unwrap();

        assert_eq!(raft_state(dir.path()).last_purged, Some(log_id(1, 1)));
        assert_eq!(log.raft_index_range(), (0, 5));
    }

    #[test]
    fn a_purge_past_both_the_snapshot_and_the_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_entries(dir.path(), 5);
        log.roll().unwrap();
        log.delete_raft_before(5).unwrap();
        let state = RaftStateFile {
            vote: None,
            last_purged: Some(log_id(1, 4)),
        };
        write_durable(dir.path(), RAFT_STATE_FILE, &state).unwrap();

        let refused = repair_before_start(&log);

        assert!(refused.is_err(), "{refused:?}");
    }
}
