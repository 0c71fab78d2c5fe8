//! The producer table of one partition and its admission rules.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::{ReplicationError, Result};
use spool_record::{next_sequence, RecordBatch};

/// How many of a producer's last batches a partition remembers: Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence, so any
/// batch a producer may still retry is among them.
pub const DUPLICATE_WINDOW: usize = 5;

/// The idempotence fields of one batch's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub kind: BatchKind,
}

/// What a producer's batch is to the partition's transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchKind {
    /// Records of an idempotent producer outside any transaction.
    Idempotent,
    /// Records of a transaction; the first opens it on this partition.
    Transactional,
    /// Records a coordinator writes for a transaction (offsets committed
    /// in it): fenced by epoch, but without sequence numbers.
    CoordinatorTransactional,
    /// A commit (`true`) or abort marker, which closes the transaction.
    Marker { commit: bool },
}

/// Who hands a batch to a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOrigin {
    /// A producer: control batches and unsequenced batches of a producer
    /// id are refused.
    Client,
    /// The broker's own coordinators: markers, and transactional offset
    /// commits without sequence numbers.
    Coordinator,
}

impl ProducerBatch {
    /// The idempotence fields of `batch`, or `None` for a batch of no
    /// producer (id -1), which is appended without checks. A producer's
    /// batch that names a producer id must carry a sequence.
    pub fn of(batch: &RecordBatch<'_>) -> Result<Option<ProducerBatch>> {
        ProducerBatch::from_origin(batch, BatchOrigin::Coordinator)
    }

    /// [`ProducerBatch::of`], refusing what `origin` may not write.
    pub fn from_origin(
        batch: &RecordBatch<'_>,
        origin: BatchOrigin,
    ) -> Result<Option<ProducerBatch>> {
        let producer_id = batch.producer_id();
        let attributes = batch.attributes();
        if attributes.is_control() && origin == BatchOrigin::Client {
            return Err(ReplicationError::InvalidBatch(
                "control batches are written only by the transaction coordinator".into(),
            ));
        }
        if producer_id < 0 || batch.is_raft_meta() {
            return Ok(None);
        }
        let epoch = batch.producer_epoch();
        let unsequenced = |kind| {
            Ok(Some(ProducerBatch {
                producer_id,
                epoch,
                first_sequence: -1,
                last_sequence: -1,
                kind,
            }))
        };
        if attributes.is_control() {
            return unsequenced(BatchKind::Marker {
                commit: spool_record::control_marker_is_commit(batch)?,
            });
        }
        if origin == BatchOrigin::Coordinator
            && attributes.is_transactional()
            && batch.base_sequence() < 0
        {
            return unsequenced(BatchKind::CoordinatorTransactional);
        }
        let first_sequence = batch.base_sequence();
        // The last offset delta, not the record count: compaction removes
        // records but keeps the delta, as Kafka's sequences do.
        let delta = batch.last_offset_delta();
        if first_sequence < 0 || delta < 0 {
            return Err(ReplicationError::InvalidBatch(format!(
                "a batch of producer {producer_id} with base sequence {first_sequence} and last \
                 offset delta {delta}: an idempotent batch needs a sequence"
            )));
        }
        Ok(Some(ProducerBatch {
            producer_id,
            epoch,
            first_sequence,
            last_sequence: next_sequence(first_sequence, delta),
            kind: match attributes.is_transactional() {
                true => BatchKind::Transactional,
                false => BatchKind::Idempotent,
            },
        }))
    }

    /// Whether the batch carries sequence numbers to check.
    fn is_sequenced(&self) -> bool {
        matches!(self.kind, BatchKind::Idempotent | BatchKind::Transactional)
    }

    fn is_transactional_data(&self) -> bool {
        matches!(
            self.kind,
            BatchKind::Transactional | BatchKind::CoordinatorTransactional
        )
    }
}

/// Where a batch landed: its first offset and the offset after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOffsets {
    pub base: u64,
    pub next: u64,
}

/// One remembered batch. `offsets` is `None` while a leader has proposed
/// it and it is not applied yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct RememberedBatch {
    first_sequence: i32,
    last_sequence: i32,
    offsets: Option<BatchOffsets>,
}

/// What a partition knows of one producer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// The newest last, at most [`DUPLICATE_WINDOW`].
    batches: VecDeque<RememberedBatch>,
    /// Wall-clock milliseconds of the last batch recorded (append time,
    /// not the batch's own timestamps: replayed history carries old ones).
    pub last_append_ms: i64,
    /// Whether a transaction of the producer is open on this partition:
    /// it wrote transactional records and no marker closed them yet.
    pub in_transaction: bool,
}

impl ProducerEntry {
    /// The last sequence number the partition holds from this producer.
    pub fn last_sequence(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_sequence)
    }

    /// Where the last recorded batch landed, if it is applied.
    pub fn last_offsets(&self) -> Option<BatchOffsets> {
        self.batches.back().and_then(|b| b.offsets)
    }
}

/// What to do with a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Append it.
    Append,
    /// It is already in the log (or proposed, when the offsets are
    /// `None`): answer with where it landed, append nothing.
    Duplicate(Option<BatchOffsets>),
}

/// An aborted transaction's records on one partition: Kafka's
/// aborted-transaction index entry. A read_committed consumer drops the
/// producer's batches from `first_offset` up to the marker at `last_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    /// The offset of the abort marker.
    pub last_offset: u64,
}

/// The producers of one partition, by producer id, and its transactions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStates {
    producers: BTreeMap<i64, ProducerEntry>,
    /// Open transactions that have applied records here: producer id to
    /// the offset of its first record. The smallest bounds the last
    /// stable offset.
    open_transactions: BTreeMap<i64, u64>,
    /// Aborted transactions, in marker order; pruned as the log start
    /// passes their markers.
    aborted: Vec<AbortedTxn>,
}

impl ProducerStates {
    /// Decides whether `batch` may be appended (see the module docs for
    /// the rules). Changes nothing: the caller records the batch once it
    /// is appended (or proposed).
    pub fn check(&self, batch: &ProducerBatch) -> Result<Admission> {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return Ok(Admission::Append);
        };
        if batch.epoch < entry.epoch {
            return Err(ReplicationError::ProducerFenced {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current: entry.epoch,
            });
        }
        if !batch.is_sequenced() {
            return Ok(Admission::Append);
        }
        if batch.epoch > entry.epoch {
            return match batch.first_sequence {
                0 => Ok(Admission::Append),
                got => Err(out_of_order(batch, 0, got)),
            };
        }
        let same = entry.batches.iter().find(|b| {
            b.first_sequence == batch.first_sequence && b.last_sequence == batch.last_sequence
        });
        if let Some(original) = same {
            return Ok(Admission::Duplicate(original.offsets));
        }
        match entry.last_sequence() {
            Some(last) if next_sequence(last, 1) != batch.first_sequence => Err(out_of_order(
                batch,
                next_sequence(last, 1),
                batch.first_sequence,
            )),
            _ => Ok(Admission::Append),
        }
    }

    /// Remembers `batch` as appended at `offsets` (`None`: proposed, not
    /// yet applied) at wall-clock `now_ms`. A newer epoch replaces what
    /// the partition knew of the producer; the same batch recorded again
    /// (applied after it was proposed) only gains its offsets.
    pub fn record(&mut self, batch: &ProducerBatch, offsets: Option<BatchOffsets>, now_ms: i64) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.epoch,
                batches: VecDeque::new(),
                last_append_ms: now_ms,
                in_transaction: false,
            });
        if batch.epoch > entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        entry.last_append_ms = now_ms;
        match batch.kind {
            BatchKind::Marker { commit } => {
                entry.in_transaction = false;
                if let Some(marker) = offsets {
                    let first = self.open_transactions.remove(&batch.producer_id);
                    if let (false, Some(first_offset)) = (commit, first) {
                        self.aborted.push(AbortedTxn {
                            producer_id: batch.producer_id,
                            first_offset,
                            last_offset: marker.base,
                        });
                    }
                }
                return;
            }
            _ if batch.is_transactional_data() => {
                entry.in_transaction = true;
                if let Some(placed) = offsets {
                    self.open_transactions
                        .entry(batch.producer_id)
                        .or_insert(placed.base);
                }
                if !batch.is_sequenced() {
                    return;
                }
            }
            _ => {}
        }
        let remembered = RememberedBatch {
            first_sequence: batch.first_sequence,
            last_sequence: batch.last_sequence,
            offsets,
        };
        if let Some(same) = entry.batches.iter_mut().find(|b| {
            b.first_sequence == batch.first_sequence && b.last_sequence == batch.last_sequence
        }) {
            *same = remembered;
            return;
        }
        entry.batches.push_back(remembered);
        while entry.batches.len() > DUPLICATE_WINDOW {
            entry.batches.pop_front();
        }
    }

    /// Forgets producers that appended nothing for `max_idle_ms` before
    /// `now_ms` (Kafka's `producer.id.expiration.ms`); returns how many.
    pub fn expire_idle(&mut self, now_ms: i64, max_idle_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, entry| {
            entry.in_transaction || now_ms.saturating_sub(entry.last_append_ms) < max_idle_ms
        });
        before - self.producers.len()
    }

    /// The offset of the first record of the oldest open transaction,
    /// below which every transaction is decided.
    pub fn first_unstable_offset(&self) -> Option<u64> {
        self.open_transactions.values().min().copied()
    }

    /// The open transactions with records here: producer id and first offset.
    pub fn open_transactions(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.open_transactions
            .iter()
            .map(|(&id, &first)| (id, first))
    }

    /// Aborted transactions whose records may lie in `[from, to)`.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions whose markers are below `log_start`:
    /// their records are gone with the segments retention deleted.
    pub fn prune_aborted_below(&mut self, log_start: u64) {
        self.aborted.retain(|a| a.last_offset >= log_start);
    }

    /// Puts back what [`ProducerStates::get`] returned before a change
    /// that must be undone (`None`: the producer was unknown).
    pub fn restore(&mut self, producer_id: i64, entry: Option<ProducerEntry>) {
        match entry {
            Some(entry) => self.producers.insert(producer_id, entry),
            None => self.producers.remove(&producer_id),
        };
    }

    /// The producer `producer_id`, if known.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every known producer, by id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(&id, entry)| (id, entry))
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

fn out_of_order(batch: &ProducerBatch, expected: i32, got: i32) -> ReplicationError {
    ReplicationError::OutOfOrderSequence {
        producer_id: batch.producer_id,
        expected,
        got,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first: i32, count: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            epoch,
            first_sequence: first,
            last_sequence: next_sequence(first, count - 1),
            kind: BatchKind::Idempotent,
        }
    }

    fn marker(epoch: i16, commit: bool) -> ProducerBatch {
        ProducerBatch {
            first_sequence: -1,
            last_sequence: -1,
            kind: BatchKind::Marker { commit },
            ..batch(epoch, 0, 1)
        }
    }

    #[test]
    fn transactions_open_with_their_first_record_and_close_with_a_marker() {
        let mut states = ProducerStates::default();
        let data = ProducerBatch {
            kind: BatchKind::Transactional,
            ..batch(0, 0, 3)
        };
        states.record(&data, offsets(10, 13), 0);
        let more = ProducerBatch {
            kind: BatchKind::Transactional,
            ..batch(0, 3, 2)
        };
        states.record(&more, offsets(20, 22), 0);
        assert_eq!(states.first_unstable_offset(), Some(10));
        assert!(states.get(7).is_some_and(|e| e.in_transaction));
        // The marker carries the bumped epoch: a late batch of the ended
        // transaction is fenced, and the next one starts at sequence 0.
        assert_eq!(states.check(&marker(1, false)).unwrap(), Admission::Append);
        states.record(&marker(1, false), offsets(22, 23), 0);
        assert_eq!(states.first_unstable_offset(), None);
        assert_eq!(
            states.aborted_between(0, 100),
            vec![AbortedTxn {
                producer_id: 7,
                first_offset: 10,
                last_offset: 22
            }]
        );
        assert!(states.aborted_between(23, 100).is_empty());
        assert!(matches!(
            states.check(&more),
            Err(ReplicationError::ProducerFenced { .. })
        ));
        assert_eq!(states.check(&batch(1, 0, 1)).unwrap(), Admission::Append);
        states.prune_aborted_below(23);
        assert!(states.aborted_between(0, 100).is_empty());
    }

    #[test]
    fn a_committed_transaction_leaves_no_aborted_entry_and_an_old_marker_is_fenced() {
        let mut states = ProducerStates::default();
        let data = ProducerBatch {
            kind: BatchKind::Transactional,
            ..batch(2, 0, 1)
        };
        states.record(&data, offsets(0, 1), 0);
        states.record(&marker(3, true), offsets(1, 2), 0);
        assert!(states.aborted_between(0, 10).is_empty());
        assert_eq!(states.first_unstable_offset(), None);
        assert!(matches!(
            states.check(&marker(2, true)),
            Err(ReplicationError::ProducerFenced { .. })
        ));
    }

    fn offsets(base: u64, next: u64) -> Option<BatchOffsets> {
        Some(BatchOffsets { base, next })
    }

    #[test]
    fn an_unknown_producer_may_start_at_any_sequence() {
        let states = ProducerStates::default();
        assert_eq!(states.check(&batch(0, 0, 3)).unwrap(), Admission::Append);
        assert_eq!(states.check(&batch(4, 1234, 3)).unwrap(), Admission::Append);
    }

    #[test]
    fn the_next_sequence_is_appended_and_a_gap_is_refused() {
        let mut states = ProducerStates::default();
        states.record(&batch(0, 0, 3), offsets(10, 13), 0);
        assert_eq!(states.check(&batch(0, 3, 2)).unwrap(), Admission::Append);
        match states.check(&batch(0, 4, 2)) {
            Err(ReplicationError::OutOfOrderSequence { expected, got, .. }) => {
                assert_eq!((expected, got), (3, 4))
            }
            other => panic!("a gap must be out of order, got {other:?}"),
        }
    }

    #[test]
    fn a_retried_batch_gets_its_original_offsets_while_in_the_window() {
        let mut states = ProducerStates::default();
        for i in 0..7u64 {
            let first = (i * 2) as i32;
            states.record(&batch(0, first, 2), offsets(100 + i * 2, 102 + i * 2), 0);
        }
        // Batches 2..=6 are the last five; 0 and 1 left the window.
        assert_eq!(
            states.check(&batch(0, 4, 2)).unwrap(),
            Admission::Duplicate(offsets(104, 106))
        );
        assert_eq!(
            states.check(&batch(0, 12, 2)).unwrap(),
            Admission::Duplicate(offsets(112, 114))
        );
        assert!(matches!(
            states.check(&batch(0, 2, 2)),
            Err(ReplicationError::OutOfOrderSequence { .. })
        ));
    }

    #[test]
    fn a_proposed_batch_is_a_duplicate_without_offsets_until_applied() {
        let mut states = ProducerStates::default();
        states.record(&batch(0, 0, 2), None, 0);
        assert_eq!(
            states.check(&batch(0, 0, 2)).unwrap(),
            Admission::Duplicate(None)
        );
        states.record(&batch(0, 0, 2), offsets(5, 7), 0);
        assert_eq!(
            states.check(&batch(0, 0, 2)).unwrap(),
            Admission::Duplicate(offsets(5, 7))
        );
        assert_eq!(states.get(7).map(|e| e.batches.len()), Some(1));
    }

    #[test]
    fn an_older_epoch_is_fenced_and_a_newer_one_starts_at_zero() {
        let mut states = ProducerStates::default();
        states.record(&batch(3, 0, 5), offsets(0, 5), 0);
        assert!(matches!(
            states.check(&batch(2, 5, 1)),
            Err(ReplicationError::ProducerFenced {
                epoch: 2,
                current: 3,
                ..
            })
        ));
        assert!(matches!(
            states.check(&batch(4, 5, 1)),
            Err(ReplicationError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(states.check(&batch(4, 0, 1)).unwrap(), Admission::Append);
        states.record(&batch(4, 0, 1), offsets(5, 6), 0);
        assert_eq!(states.get(7).map(|e| e.epoch), Some(4));
        assert_eq!(
            states.get(7).and_then(ProducerEntry::last_sequence),
            Some(0)
        );
    }

    #[test]
    fn sequences_wrap_after_the_largest_i32() {
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
        let mut states = ProducerStates::default();
        states.record(&batch(0, i32::MAX - 1, 2), offsets(0, 2), 0);
        assert_eq!(states.check(&batch(0, 0, 4)).unwrap(), Admission::Append);
    }

    #[test]
    fn idle_producers_expire() {
        let mut states = ProducerStates::default();
        states.record(&batch(0, 0, 1), offsets(0, 1), 1_000);
        let mut other = batch(0, 0, 1);
        other.producer_id = 8;
        states.record(&other, offsets(1, 2), 5_000);
        assert_eq!(states.expire_idle(6_000, 2_000), 1);
        assert!(states.get(7).is_none() && states.get(8).is_some());
    }
}
