//! openraft's `RaftStateMachine` for a partition.
//!
//! The records already are in the log when an entry is applied, so the
//! state is small: the last applied log id, the last applied membership
//! and the high watermark (the offset after the last committed record,
//! below which consumers may read).
//!
//! A snapshot describes the state at its last log id; its data is the log
//! itself, from the log's first entry through the snapshot's last one.
//! Building one therefore copies nothing: it persists the description
//! (`raft-snapshot`) and so bounds what a restart re-applies. The data is
//! read from the segments only when a snapshot is sent to a replica that
//! needs entries this one no longer offers, and installing it restarts the
//! receiver's log with exactly those batches. openraft then replicates the
//! entries after the snapshot as usual.
//!
//! The partition's producer table (see [`crate::producers`]) is part of
//! the applied state: every applied batch of an idempotent producer is
//! recorded in it, it is persisted with `raft-applied`, described by each
//! snapshot and carried in a snapshot's data, so every replica holds the
//! same table and a new leader can check sequences from its first write.
//!
//! An install is made crash-safe by the `raft-installing` marker, written
//! before the log is restarted and removed once `raft-snapshot` names the
//! new snapshot; a replica that finds the marker at its start finishes the
//! install without the data (see [`super::repair`]).

use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{AnyError, BasicNode, EntryPayload, OptionalSend, StorageIOError, StoredMembership};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::entry::{log_start_of, AppliedEntry};
use super::log_store::{append_stored_batches, WriteGate};
use super::snapshot_data::SnapshotData;
use super::{
    LogId, NodeId, OpenraftStorageError, PartitionEntry, PartitionRaftConfig, SharedProducers,
};
use crate::producers::{BatchOffsets, ProducerBatch, ProducerStates, PRODUCER_ID_EXPIRATION_MS};
use crate::{ReplicationError, Result};
use spool_record::{BatchIter, RecordBatch};
use spool_storage::PartitionLog;
use spool_storage::{read_durable, remove_durable, write_durable};

/// The file name of the last snapshot's description.
pub const RAFT_SNAPSHOT_FILE: &str = "raft-snapshot";

/// The file name of an install's marker: the description of the snapshot
/// being installed, present only while the install changes the log.
pub const RAFT_INSTALLING_FILE: &str = "raft-installing";

/// The file name of the applied state, written between snapshots.
pub const RAFT_APPLIED_FILE: &str = "raft-applied";

/// Entries applied between two writes of `raft-applied`. A restart
/// re-applies at most about this many (openraft reads them back from the
/// log in one go), and each write costs a log fsync and a small file's.
const PERSIST_APPLIED_EVERY: u64 = 10_000;

/// How many bytes of entries one read of snapshot data takes.
const SNAPSHOT_READ_BYTES: usize = 4 * 1024 * 1024;

/// What a partition's state machine knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership<NodeId, BasicNode>,
    /// The offset after the last applied (committed) record.
    pub high_watermark: u64,
}

/// What `raft-applied` holds: the applied state and the producer table
/// as of its last applied entry.
#[derive(Serialize, Deserialize)]
struct AppliedFile {
    applied: AppliedState,
    producers: ProducerStates,
}

/// The description of a snapshot, as persisted in `raft-snapshot`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct SnapshotRecord {
    pub meta: SnapshotMeta<NodeId, BasicNode>,
    pub high_watermark: u64,
    /// The producer table as of the snapshot's last entry.
    pub producers: ProducerStates,
}

/// The last durable snapshot's description, shared by the state machine,
/// its snapshot builders and the replica (whose retention deletes segments
/// only up to it).
pub(super) type CurrentSnapshot = Arc<Mutex<Option<SnapshotRecord>>>;

/// The header of a snapshot's data; the stored batches of entries
/// `first_index..=last` follow it.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotHeader {
    high_watermark: u64,
    first_index: u64,
    first_offset: u64,
    producers: ProducerStates,
    /// The sender's log start, which DeleteRecords may have raised past
    /// `first_offset` by an entry the snapshot covers.
    log_start_offset: u64,
}

/// The state machine of one partition group.
pub struct PartitionStateMachine {
    log: Arc<PartitionLog>,
    applied: AppliedState,
    /// Entries applied since `raft-applied` was last written.
    unpersisted: u64,
    current: CurrentSnapshot,
    high_watermark: watch::Sender<u64>,
    gate: WriteGate,
    /// The producer table as of `applied`, shared with the replica, whose
    /// leader checks new batches against it.
    producers: SharedProducers,
}

/// Builds snapshots for openraft's snapshot task.
pub struct PartitionSnapshotBuilder {
    log: Arc<PartitionLog>,
    applied: AppliedState,
    producers: ProducerStates,
    current: CurrentSnapshot,
}

impl PartitionStateMachine {
    /// Opens the state machine of `log` at its last snapshot (or at the
    /// log start when it never took one); openraft re-applies what was
    /// committed after it.
    pub fn open(log: Arc<PartitionLog>) -> Result<PartitionStateMachine> {
        PartitionStateMachine::open_gated(log, WriteGate::default())
    }

    /// [`PartitionStateMachine::open`] sharing `gate` with the log store,
    /// so that installing a snapshot excludes the store's writes.
    pub fn open_gated(log: Arc<PartitionLog>, gate: WriteGate) -> Result<PartitionStateMachine> {
        let record: Option<SnapshotRecord> = read_durable(log.dir(), RAFT_SNAPSHOT_FILE)?;
        let from_snapshot = match &record {
            Some(record) => AppliedFile {
                applied: AppliedState {
                    last_applied: record.meta.last_log_id,
                    membership: record.meta.last_membership.clone(),
                    high_watermark: record.high_watermark,
                },
                producers: record.producers.clone(),
            },
            None => AppliedFile {
                applied: AppliedState {
                    high_watermark: log.log_start_offset(),
                    ..AppliedState::default()
                },
                producers: ProducerStates::default(),
            },
        };
        let persisted: Option<AppliedFile> = read_durable(log.dir(), RAFT_APPLIED_FILE)?;
        let start = match persisted {
            Some(p) if p.applied.last_applied > from_snapshot.applied.last_applied => p,
            _ => from_snapshot,
        };
        let (high_watermark, _) = watch::channel(start.applied.high_watermark);
        log.set_cleanable_below(start.applied.high_watermark);
        Ok(PartitionStateMachine {
            log,
            applied: start.applied,
            unpersisted: 0,
            current: Arc::new(Mutex::new(record)),
            high_watermark,
            gate,
            producers: Arc::new(Mutex::new(start.producers)),
        })
    }

    /// The last durable snapshot's description.
    pub(super) fn current_snapshot(&self) -> CurrentSnapshot {
        Arc::clone(&self.current)
    }

    /// The producer table as of the applied state, shared.
    pub(super) fn producers(&self) -> SharedProducers {
        Arc::clone(&self.producers)
    }

    /// Writes the applied state, after syncing the log: the file must never
    /// claim an entry the log could lose in a crash. Producers idle past
    /// their expiration are forgotten here.
    fn persist_applied(&mut self) -> Result<()> {
        self.log.flush()?;
        let producers = {
            let mut producers = self.producers.lock();
            producers.expire_idle(self.log.now_ms() as i64, PRODUCER_ID_EXPIRATION_MS);
            producers.prune_aborted_below(self.log.log_start_offset());
            producers.clone()
        };
        let file = AppliedFile {
            applied: self.applied.clone(),
            producers,
        };
        write_durable(self.log.dir(), RAFT_APPLIED_FILE, &file)?;
        self.unpersisted = 0;
        Ok(())
    }

    /// Follows the high watermark: consumers may read below it.
    pub fn subscribe_high_watermark(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    fn apply_entry(&mut self, entry: &PartitionEntry) -> Result<AppliedEntry> {
        self.applied.last_applied = Some(entry.log_id);
        match &entry.payload {
            EntryPayload::Blank => Ok(AppliedEntry::default()),
            EntryPayload::Membership(membership) => {
                self.applied.membership =
                    StoredMembership::new(Some(entry.log_id), membership.clone());
                Ok(AppliedEntry::default())
            }
            EntryPayload::Normal(batch) => {
                let (batch, _) = RecordBatch::parse(&batch.batch)?;
                if let Some(offset) = log_start_of(&batch)? {
                    // Raised to a committed offset: nothing above the high
                    // watermark, which a log-start entry leaves where it is.
                    let start = self
                        .log
                        .raise_log_start(offset.min(self.applied.high_watermark))?;
                    return Ok(AppliedEntry {
                        offsets: Some((start, start)),
                    });
                }
                self.applied.high_watermark = batch.next_offset();
                let offsets = BatchOffsets {
                    base: batch.base_offset(),
                    next: batch.next_offset(),
                };
                // The leader checked it; every replica records it alike.
                if let Ok(Some(producer)) = ProducerBatch::of(&batch) {
                    self.producers.lock().record(
                        &producer,
                        Some(offsets),
                        self.log.now_ms() as i64,
                    );
                }
                Ok(AppliedEntry {
                    offsets: Some((offsets.base, offsets.next)),
                })
            }
        }
    }

    fn install(&mut self, meta: &SnapshotMeta<NodeId, BasicNode>, data: &[u8]) -> Result<()> {
        let (header, batches) = decode_snapshot(data)?;
        let last = meta.last_log_id.ok_or_else(|| {
            ReplicationError::InvalidRequest("a snapshot without a last log id".into())
        })?;
        let record = SnapshotRecord {
            meta: meta.clone(),
            high_watermark: header.high_watermark,
            producers: header.producers.clone(),
        };
        let restarts_log = !holds_entry(&self.log, last)?;
        if restarts_log {
            write_durable(self.log.dir(), RAFT_INSTALLING_FILE, &record)?;
            self.log
                .restart_at(header.first_offset, header.first_index)?;
            let mut batches = batches.to_vec();
            append_stored_batches(&self.log, &mut batches)?;
            self.log.flush()?;
            let (_, next) = self.log.raft_index_range();
            if next != last.index + 1 || self.log.log_end_offset() != header.high_watermark {
                return Err(ReplicationError::InvalidRequest(format!(
                    "snapshot up to entry {} (offset {}) left the log at entry {next} (offset {})",
                    last.index,
                    header.high_watermark,
                    self.log.log_end_offset()
                )));
            }
        }
        {
            // Under the lock a concurrent build takes, so that it cannot
            // write its older description after this one.
            let mut current = self.current.lock();
            write_durable(self.log.dir(), RAFT_SNAPSHOT_FILE, &record)?;
            *current = Some(record);
        }
        if restarts_log {
            remove_durable(self.log.dir(), RAFT_INSTALLING_FILE)?;
        }
        self.log.raise_log_start(header.log_start_offset)?;
        self.applied = AppliedState {
            last_applied: Some(last),
            membership: meta.last_membership.clone(),
            high_watermark: header.high_watermark,
        };
        *self.producers.lock() = header.producers;
        self.high_watermark.send_replace(header.high_watermark);
        self.log.set_cleanable_below(header.high_watermark);
        Ok(())
    }
}

/// True if the log holds the entry `id` (same index and term), in which
/// case it holds every entry before it that the snapshot covers too.
fn holds_entry(log: &PartitionLog, id: LogId) -> Result<bool> {
    let (first, next) = log.raft_index_range();
    if id.index < first || id.index >= next {
        return Ok(false);
    }
    let bytes = log.read_raft_entries(id.index, id.index + 1, 0)?;
    let (batch, _) = RecordBatch::parse(&bytes)?;
    Ok(u64::from(batch.term()) == id.leader_id.term)
}

/// The snapshot data of `record`: the header, then the log's entries from
/// its first through the snapshot's last. A log that does not reach the
/// last entry (a state machine fed entries its log never stored, as in
/// openraft's conformance suite) gives a snapshot that restarts the
/// receiver at the boundary.
fn snapshot_data(log: &PartitionLog, record: &SnapshotRecord) -> Result<Vec<u8>> {
    let (first, next) = log.raft_index_range();
    let end = record.meta.last_log_id.map_or(0, |id| id.index + 1);
    let mut header = boundary_header(record);
    let mut batches = Vec::new();
    if end <= next && first < end {
        header.first_index = first;
        let mut from = first;
        while from < end {
            let bytes = log.read_raft_entries(from, end, SNAPSHOT_READ_BYTES)?;
            if from == first {
                header.first_offset = RecordBatch::parse(&bytes)?.0.base_offset();
            }
            from += BatchIter::new(&bytes).count() as u64;
            batches.extend_from_slice(&bytes);
        }
        header.log_start_offset = log
            .log_start_offset()
            .clamp(header.first_offset, record.high_watermark);
    }
    encode_snapshot(&header, &batches)
}

/// The header of a snapshot that carries no batches: the receiver
/// restarts its log right after the snapshot's last entry.
fn boundary_header(record: &SnapshotRecord) -> SnapshotHeader {
    SnapshotHeader {
        high_watermark: record.high_watermark,
        first_index: record.meta.last_log_id.map_or(0, |id| id.index + 1),
        first_offset: record.high_watermark,
        producers: record.producers.clone(),
        log_start_offset: record.high_watermark,
    }
}

fn encode_snapshot(header: &SnapshotHeader, batches: &[u8]) -> Result<Vec<u8>> {
    let mut data = bincode::serialize(header).map_err(|e| {
        ReplicationError::InvalidRequest(format!("cannot encode a snapshot header: {e}"))
    })?;
    let header_len = data.len() as u32;
    data.splice(0..0, header_len.to_be_bytes());
    data.extend_from_slice(batches);
    Ok(data)
}

fn decode_snapshot(data: &[u8]) -> Result<(SnapshotHeader, &[u8])> {
    let bad = |reason: String| {
        ReplicationError::InvalidRequest(format!("malformed snapshot data: {reason}"))
    };
    let (len, rest) = data
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("shorter than its header length".into()))?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(bad("shorter than its header".into()));
    }
    let (header, batches) = rest.split_at(len);
    let header = bincode::deserialize(header).map_err(|e| bad(e.to_string()))?;
    Ok((header, batches))
}

fn snapshot_error<E: std::error::Error + 'static>(e: E) -> OpenraftStorageError {
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}

impl RaftSnapshotBuilder<PartitionRaftConfig> for PartitionSnapshotBuilder {
    /// Persists the description of the applied state and returns it with
    /// the header only: openraft keeps the meta, and the data is read from
    /// the log when a snapshot is sent (`get_current_snapshot`).
    async fn build_snapshot(
        &mut self,
    ) -> std::result::Result<Snapshot<PartitionRaftConfig>, OpenraftStorageError> {
        let last = self.applied.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: self.applied.membership.clone(),
            snapshot_id: match last {
                Some(id) => format!(
                    "{}-{}-{}",
                    id.leader_id.term, id.index, self.applied.high_watermark
                ),
                None => format!("none-{}", self.applied.high_watermark),
            },
        };
        let record = SnapshotRecord {
            meta: meta.clone(),
            high_watermark: self.applied.high_watermark,
            producers: std::mem::take(&mut self.producers),
        };
        {
            // An install may have stored a newer snapshot while this one was
            // being built: never replace it with an older description.
            let mut current = self.current.lock();
            let newer = current
                .as_ref()
                .is_none_or(|c| c.meta.last_log_id < record.meta.last_log_id);
            if newer {
                write_durable(self.log.dir(), RAFT_SNAPSHOT_FILE, &record)
                    .map_err(snapshot_error)?;
                *current = Some(record.clone());
            }
        }
        // openraft keeps only the meta of a built snapshot (its snapshot
        // task drops the data), so the log is not read here.
        let data = encode_snapshot(&boundary_header(&record), &[]).map_err(snapshot_error)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotData::from_bytes(data)),
        })
    }
}

impl RaftStateMachine<PartitionRaftConfig> for PartitionStateMachine {
    type SnapshotBuilder = PartitionSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<
        (Option<LogId>, StoredMembership<NodeId, BasicNode>),
        OpenraftStorageError,
    > {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> std::result::Result<Vec<AppliedEntry>, OpenraftStorageError>
    where
        I: IntoIterator<Item = PartitionEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        for entry in entries {
            let reply = self
                .apply_entry(&entry)
                .map_err(|e| StorageIOError::apply(entry.log_id, AnyError::new(&e)))?;
            replies.push(reply);
        }
        self.unpersisted += replies.len() as u64;
        if self.unpersisted >= PERSIST_APPLIED_EVERY {
            self.persist_applied()
                .map_err(|e| StorageIOError::write_state_machine(AnyError::new(&e)))?;
        }
        self.log.set_cleanable_below(self.applied.high_watermark);
        self.high_watermark.send_if_modified(|hw| {
            let moved = *hw != self.applied.high_watermark;
            *hw = self.applied.high_watermark;
            moved
        });
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> PartitionSnapshotBuilder {
        PartitionSnapshotBuilder {
            log: Arc::clone(&self.log),
            applied: self.applied.clone(),
            producers: self.producers.lock().clone(),
            current: Arc::clone(&self.current),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> std::result::Result<Box<SnapshotData>, OpenraftStorageError> {
        Ok(Box::new(SnapshotData::from_bytes(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<SnapshotData>,
    ) -> std::result::Result<(), OpenraftStorageError> {
        let failed = |e: AnyError| -> OpenraftStorageError {
            StorageIOError::write_snapshot(Some(meta.signature()), e).into()
        };
        let data = snapshot
            .into_bytes()
            .map_err(|e| failed(AnyError::new(&e)))?;
        // The log store appends, truncates and purges only after this.
        let gate = Arc::clone(&self.gate);
        let _gate = gate.lock().await;
        self.install(meta, &data)
            .map_err(|e| failed(AnyError::new(&e)))
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> std::result::Result<Option<Snapshot<PartitionRaftConfig>>, OpenraftStorageError> {
        let Some(record) = self.current.lock().clone() else {
            return Ok(None);
        };
        // openraft asks at every start for the description only: the log is
        // read when the data is (to send it to a replica).
        let meta = record.meta.clone();
        let log = Arc::clone(&self.log);
        let data = SnapshotData::read_later(move || {
            snapshot_data(&log, &record).map_err(std::io::Error::other)
        });
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(data),
        }))
    }
}
