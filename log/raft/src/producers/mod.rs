//! Producer state: what a partition remembers of each idempotent producer,
//! so that a retried batch is appended once and a lost one is noticed.
//!
//! This module is pure bookkeeping over batch headers; it does no I/O.
//! Its callers own the order of events: a partition's state machine
//! records every applied entry (so every replica holds the same table,
//! persisted and snapshotted with the applied state), and its leader
//! checks each batch against that table plus what it has proposed since
//! (`crate::idempotence`). A single node is a one-voter group and takes
//! the same path.
//!
//! The rules are Kafka's (`ProducerStateManager`, since KIP-360):
//!
//! - a batch of producer id -1 is not idempotent and is never checked;
//! - an older epoch than the partition knows is fenced;
//! - a newer epoch must start at sequence 0;
//! - within an epoch, a batch equal to one of the producer's last
//!   [`DUPLICATE_WINDOW`] batches is a duplicate and gets that batch's
//!   offsets back; otherwise its first sequence must follow the last one;
//! - a producer the partition does not know (new, or forgotten after its
//!   records were deleted or it was idle past `producer.id.expiration.ms`)
//!   may start at any sequence: refusing it would fail every producer whose
//!   state a retention pass removed, and there is nothing to compare to.

mod state;

pub use state::{
    AbortedTxn, Admission, BatchKind, BatchOffsets, BatchOrigin, ProducerBatch, ProducerEntry,
    ProducerStates, DUPLICATE_WINDOW,
};

/// How long a partition remembers a producer that appends nothing (Kafka's
/// `producer.id.expiration.ms` default, one day): long enough for any
/// retry, short enough that the table of a partition written by many
/// short-lived producers stays small. Checked when the table is persisted.
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;
