//! A Raft entry as a stored record batch, and back.
//!
//! - A data entry's payload is exactly one record batch, as the producer
//!   encoded it. It is stored as it is, with the entry's term in the
//!   header's leader-epoch slot and the base offset the log stamps.
//! - A blank or membership entry is a Raft meta batch (attribute bit 7, no
//!   records, no offset) whose payload is a one-byte kind followed, for a
//!   membership, by the membership in bincode.
//! - A log-start entry (DeleteRecords: readers may no longer read below an
//!   offset) is a data entry of openraft's whose batch is a Raft meta batch
//!   of its own kind, followed by the offset (u64, big-endian): it takes
//!   no offset, and every replica raises its log start when applying it.
//!
//! The log id is not stored separately: the term is in the header and the
//! index is the batch's position in the log.

use std::sync::Arc;

use bytes::Bytes;
use openraft::{CommittedLeaderId, EntryPayload, Membership};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{LogId, NodeId, PartitionEntry};
use crate::producers::BatchOffsets;
use crate::{ReplicationError, Result};
use spool_record::{stamp, BatchBuilder, BatchIter, RecordBatch};

/// The data of a Raft entry that carries records: one Kafka v2 record
/// batch. `Bytes`, so that handing an entry to several followers shares
/// the buffer instead of copying it.
#[derive(Clone, Serialize, Deserialize)]
pub struct BatchPayload {
    pub batch: Bytes,
    /// Told where the batch landed once this node's log holds it (in the
    /// page cache, before any sync): set only on a proposal the leader
    /// makes for an `acks=leader` write. It never travels: followers and
    /// entries read back from the log have none.
    #[serde(skip)]
    appended: Option<AppendNotice>,
}

/// Where a proposed batch's records landed in the leader's log.
pub type AppendNotice = Arc<Mutex<Option<oneshot::Sender<BatchOffsets>>>>;

impl BatchPayload {
    pub fn new(batch: Bytes) -> BatchPayload {
        BatchPayload {
            batch,
            appended: None,
        }
    }

    /// A payload whose append to this node's log is reported on the
    /// returned receiver.
    pub fn noticed(batch: Bytes) -> (BatchPayload, oneshot::Receiver<BatchOffsets>) {
        let (tell, told) = oneshot::channel();
        let payload = BatchPayload {
            batch,
            appended: Some(Arc::new(Mutex::new(Some(tell)))),
        };
        (payload, told)
    }

    /// The notice to send once the batch is in the log, taken (a payload
    /// is appended once).
    pub(super) fn take_notice(&self) -> Option<oneshot::Sender<BatchOffsets>> {
        self.appended
            .as_ref()
            .and_then(|notice| notice.lock().take())
    }
}

/// Payloads are equal when their batches are: the notice is not data.
impl PartialEq for BatchPayload {
    fn eq(&self, other: &BatchPayload) -> bool {
        self.batch == other.batch
    }
}

impl Eq for BatchPayload {}

impl std::fmt::Debug for BatchPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchPayload({} bytes)", self.batch.len())
    }
}

/// What applying an entry answers: a data batch's offsets, nothing for a
/// blank or membership entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedEntry {
    /// `(base offset, next offset)` of the batch's records.
    pub offsets: Option<(u64, u64)>,
}

const META_BLANK: u8 = 0;
const META_MEMBERSHIP: u8 = 1;
const META_LOG_START: u8 = 2;

/// The batch of a log-start entry: every replica applying it raises its
/// log start to `offset`.
pub fn log_start_batch(offset: u64) -> Bytes {
    let mut payload = vec![META_LOG_START];
    payload.extend_from_slice(&offset.to_be_bytes());
    Bytes::from(BatchBuilder::raft_meta(&payload).build())
}

/// The offset a data entry's batch raises the log start to, when it is a
/// log-start entry; `None` for a batch of records.
pub fn log_start_of(batch: &RecordBatch<'_>) -> Result<Option<u64>> {
    if !batch.is_raft_meta() {
        return Ok(None);
    }
    match batch.raft_meta_payload().split_first() {
        Some((&META_LOG_START, offset)) => {
            let offset: [u8; 8] = offset.try_into().map_err(|_| {
                ReplicationError::InvalidBatch("a log-start entry without its offset".into())
            })?;
            Ok(Some(u64::from_be_bytes(offset)))
        }
        _ => Err(ReplicationError::InvalidBatch(
            "a Raft data entry holds a meta batch that is not a log start".into(),
        )),
    }
}

/// The largest term a batch header holds (Kafka's leader epoch is an i32).
pub const MAX_TERM: u64 = i32::MAX as u64;

/// Appends `entry` to `out` as one stored batch, with its term stamped in
/// the header. A data payload must be exactly one record batch that is not
/// a Raft meta batch.
pub fn encode_entry(entry: &PartitionEntry, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    match &entry.payload {
        EntryPayload::Blank => out.extend(BatchBuilder::raft_meta(&[META_BLANK]).build()),
        EntryPayload::Membership(membership) => {
            let mut payload = vec![META_MEMBERSHIP];
            bincode::serialize_into(&mut payload, membership).map_err(|e| {
                ReplicationError::InvalidBatch(format!("unencodable membership: {e}"))
            })?;
            out.extend(BatchBuilder::raft_meta(&payload).build());
        }
        EntryPayload::Normal(BatchPayload { batch: bytes, .. }) => {
            let (batch, rest) = RecordBatch::parse(bytes)?;
            if !rest.is_empty() {
                return Err(ReplicationError::InvalidBatch(
                    "a Raft data entry must hold exactly one record batch".into(),
                ));
            }
            log_start_of(&batch)?;
            out.extend_from_slice(bytes);
        }
    }
    let term = term_of(&entry.log_id)?;
    let base_offset = RecordBatch::parse(&out[start..])?.0.base_offset();
    stamp(&mut out[start..], base_offset, term);
    Ok(())
}

/// The entries stored in `bytes` (whole batches as the log returns them),
/// the first one being entry `first_index`. Data payloads share `bytes`.
pub fn decode_entries(bytes: Bytes, first_index: u64) -> Result<Vec<PartitionEntry>> {
    let mut entries = Vec::new();
    let mut position = 0usize;
    for (count, batch) in BatchIter::new(&bytes).enumerate() {
        let batch = batch?;
        let size = batch.size();
        let log_id = log_id(u64::from(batch.term()), first_index + count as u64);
        // A log-start entry is openraft's data, though stored as a meta batch.
        let raft_meta =
            batch.is_raft_meta() && batch.raft_meta_payload().first() != Some(&META_LOG_START);
        let payload = if raft_meta {
            decode_meta(batch.raft_meta_payload(), log_id.index)?
        } else {
            EntryPayload::Normal(BatchPayload::new(bytes.slice(position..position + size)))
        };
        entries.push(PartitionEntry { log_id, payload });
        position += size;
    }
    Ok(entries)
}

/// The log id of a stored entry. With one leader per term, the committed
/// leader id is the term alone; the node id openraft's constructor takes
/// is ignored.
pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, NodeId::default()), index)
}

fn term_of(log_id: &LogId) -> Result<u32> {
    let term = log_id.leader_id.term;
    if term > MAX_TERM {
        return Err(ReplicationError::InvalidBatch(format!(
            "Raft term {term} does not fit a batch header (at most {MAX_TERM})"
        )));
    }
    Ok(term as u32)
}

fn decode_meta(
    payload: &[u8],
    index: u64,
) -> Result<openraft::EntryPayload<super::PartitionRaftConfig>> {
    let corrupt = |reason: String| {
        ReplicationError::InvalidBatch(format!("Raft meta entry {index} is unreadable: {reason}"))
    };
    match payload.split_first() {
        Some((&META_BLANK, [])) => Ok(EntryPayload::Blank),
        Some((&META_MEMBERSHIP, rest)) => {
            let membership: Membership<NodeId, openraft::BasicNode> =
                bincode::deserialize(rest).map_err(|e| corrupt(e.to_string()))?;
            Ok(EntryPayload::Membership(membership))
        }
        other => Err(corrupt(format!("unknown kind {:?}", other.map(|(k, _)| k)))),
    }
}
