//! The consumer-side filter of aborted transactions, public so that
//! anything reading raw read_committed fetches (the fault tests' history
//! checker among them) drops exactly what the consumer drops.

use std::collections::BTreeSet;

use spool_protocol::proto::AbortedTransaction;
use spool_record::RecordBatch;

/// Kafka's consumer-side filter of aborted transactions: the fetch names
/// each aborted transaction by producer id and first offset; from that
/// offset on, the producer's transactional batches are dropped until its
/// abort marker.
pub struct AbortedFilter {
    /// Not reached yet, by first offset (largest first, popped from the end).
    upcoming: Vec<AbortedTransaction>,
    /// Producers whose aborted transaction the batches are inside.
    active: BTreeSet<i64>,
}

impl AbortedFilter {
    pub fn new(mut aborted: Vec<AbortedTransaction>) -> AbortedFilter {
        aborted.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
        AbortedFilter {
            upcoming: aborted,
            active: BTreeSet::new(),
        }
    }

    /// Whether the consumer returns `batch`'s records.
    pub fn keeps(&mut self, batch: &RecordBatch<'_>) -> bool {
        while self
            .upcoming
            .last()
            .is_some_and(|a| a.first_offset <= batch.last_offset())
        {
            if let Some(a) = self.upcoming.pop() {
                self.active.insert(a.producer_id);
            }
        }
        let attributes = batch.attributes();
        if attributes.is_control() {
            // An abort (or commit) marker ends the producer's transaction.
            self.active.remove(&batch.producer_id());
            return false;
        }
        !(attributes.is_transactional() && self.active.contains(&batch.producer_id()))
    }
}
