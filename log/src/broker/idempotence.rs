//! Idempotent appends on a partition that is not replicated.
//!
//! The partition's producer table is checked and updated under one lock
//! together with the append, so that two requests of one producer cannot
//! both pass the check. The table is persisted in `producer-state` beside
//! the segments (every [`PERSIST_EVERY_BATCHES`] batches and at shutdown)
//! with the log end offset it covers; at open it is loaded and the batches
//! after that offset are read again. A file that covers more than the log
//! holds (a crash lost an unsynced tail) or that cannot be read is not
//! trusted: the table is rebuilt from the whole log, which is always
//! correct and only costs a read of the log at open.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::producers::{
    now_ms, Admission, BatchOffsets, ProducerBatch, ProducerEntry, ProducerStates,
    PRODUCER_ID_EXPIRATION_MS,
};
use crate::record::BatchIter;
use crate::storage::{read_durable, write_durable, PartitionLog};
use crate::{LogError, Result};

/// The file name of the persisted producer table.
pub const PRODUCER_STATE_FILE: &str = "producer-state";

/// Batches appended between two writes of `producer-state`: a restart
/// reads at most about this many batches again.
const PERSIST_EVERY_BATCHES: u64 = 10_000;

/// How many bytes one read of the rebuild takes.
const REBUILD_READ_BYTES: usize = 1 << 20;

#[derive(Serialize, Deserialize)]
struct PersistedProducers {
    /// The log end offset the table was written at.
    covers: u64,
    states: ProducerStates,
}

/// The producer table of a partition that is not replicated.
pub struct LocalProducers {
    table: Mutex<Table>,
}

struct Table {
    states: ProducerStates,
    /// Batches appended since `producer-state` was last written.
    unpersisted: u64,
}

/// One batch of a request, once checked.
enum Planned {
    /// To be appended; the offsets it spans.
    Append(Option<ProducerBatch>, u64),
    /// Already in the log.
    Duplicate(ProducerBatch),
}

impl LocalProducers {
    /// Loads the table of `log` (see the module docs).
    pub fn load(log: &PartitionLog) -> Result<LocalProducers> {
        let persisted = match read_durable::<PersistedProducers>(log.dir(), PRODUCER_STATE_FILE) {
            Ok(persisted) => persisted,
            Err(e) => {
                tracing::warn!(dir = %log.dir().display(), error = %e,
                    "cannot read the producer table; rebuilding it from the log");
                None
            }
        };
        let (mut states, from) = match persisted {
            Some(p) if p.covers <= log.log_end_offset() => (p.states, p.covers),
            _ => (ProducerStates::default(), 0),
        };
        rebuild_from(log, from.max(log.log_start_offset()), &mut states)?;
        Ok(LocalProducers {
            table: Mutex::new(Table {
                states,
                unpersisted: 0,
            }),
        })
    }

    /// Appends one request's batches for this partition, leaving out those
    /// already in the log, and returns where each batch is (in request
    /// order). Nothing is appended or recorded if any batch is refused.
    pub fn append(&self, log: &PartitionLog, records: &[u8]) -> Result<Vec<BatchOffsets>> {
        let mut table = self.table.lock();
        let mut saved: Vec<(i64, Option<ProducerEntry>)> = Vec::new();
        let outcome = check_and_append(&mut table.states, &mut saved, log, records);
        match outcome {
            Ok(offsets) => {
                table.unpersisted += offsets.len() as u64;
                if table.unpersisted >= PERSIST_EVERY_BATCHES {
                    // The table can always be rebuilt from the log: a failed
                    // write costs a longer start, not this append.
                    if let Err(e) = persist(&mut table, log) {
                        tracing::warn!(dir = %log.dir().display(), error = %e,
                            "cannot persist the producer table");
                    }
                }
                Ok(offsets)
            }
            Err(e) => {
                for (producer_id, entry) in saved.into_iter().rev() {
                    table.states.restore(producer_id, entry);
                }
                Err(e)
            }
        }
    }

    /// Writes the table now (at shutdown).
    pub fn persist(&self, log: &PartitionLog) -> Result<()> {
        persist(&mut self.table.lock(), log)
    }

    /// A copy of the table, for descriptions.
    pub fn states(&self) -> ProducerStates {
        self.table.lock().states.clone()
    }
}

fn check_and_append(
    states: &mut ProducerStates,
    saved: &mut Vec<(i64, Option<ProducerEntry>)>,
    log: &PartitionLog,
    records: &[u8],
) -> Result<Vec<BatchOffsets>> {
    let now = now_ms();
    let mut plan = Vec::new();
    let mut appended = Vec::with_capacity(records.len());
    for batch in BatchIter::new(records) {
        let batch = batch?;
        let producer = ProducerBatch::of(&batch)?;
        if let Some(producer) = &producer {
            if let Admission::Duplicate(_) = states.check(producer)? {
                plan.push(Planned::Duplicate(*producer));
                continue;
            }
            saved.push((
                producer.producer_id,
                states.get(producer.producer_id).cloned(),
            ));
            states.record(producer, None, now);
        }
        let span = u64::try_from(i64::from(batch.last_offset_delta()) + 1)
            .map_err(|_| LogError::InvalidBatch("a negative last offset delta".into()))?;
        plan.push(Planned::Append(producer, span));
        appended.extend_from_slice(batch.as_bytes());
    }
    let mut next = match appended.is_empty() {
        true => 0,
        false => log.append(&mut appended, 0)?.base_offset,
    };
    let mut placed = Vec::with_capacity(plan.len());
    for planned in plan {
        match planned {
            Planned::Append(producer, span) => {
                let offsets = BatchOffsets {
                    base: next,
                    next: next + span,
                };
                next = offsets.next;
                if let Some(producer) = producer {
                    states.record(&producer, Some(offsets), now);
                }
                placed.push(Ok(offsets));
            }
            Planned::Duplicate(producer) => placed.push(Err(producer)),
        }
    }
    // Duplicates are looked up last: one may repeat a batch of this very
    // request, whose offsets are known only now.
    placed
        .into_iter()
        .map(|placed| match placed {
            Ok(offsets) => Ok(offsets),
            Err(producer) => match states.check(&producer)? {
                Admission::Duplicate(Some(original)) => Ok(original),
                _ => Err(LogError::InvalidRequest(format!(
                    "producer {} repeated a batch whose offsets are unknown",
                    producer.producer_id
                ))),
            },
        })
        .collect()
}

fn persist(table: &mut Table, log: &PartitionLog) -> Result<()> {
    table
        .states
        .expire_idle(now_ms(), PRODUCER_ID_EXPIRATION_MS);
    let persisted = PersistedProducers {
        covers: log.log_end_offset(),
        states: table.states.clone(),
    };
    write_durable(log.dir(), PRODUCER_STATE_FILE, &persisted)?;
    table.unpersisted = 0;
    Ok(())
}

/// Records every idempotent batch of `log` from `offset` to its end.
fn rebuild_from(log: &PartitionLog, mut offset: u64, states: &mut ProducerStates) -> Result<()> {
    let now = now_ms();
    while offset < log.log_end_offset() {
        let read = log.read(offset, REBUILD_READ_BYTES)?;
        if read.bytes.is_empty() || read.next_offset <= offset {
            break;
        }
        for batch in BatchIter::new(&read.bytes) {
            let batch = batch?;
            // A stored batch passed these checks when it was appended.
            if let Ok(Some(producer)) = ProducerBatch::of(&batch) {
                let placed = BatchOffsets {
                    base: batch.base_offset(),
                    next: batch.next_offset(),
                };
                states.record(&producer, Some(placed), now);
            }
        }
        offset = read.next_offset;
    }
    Ok(())
}
