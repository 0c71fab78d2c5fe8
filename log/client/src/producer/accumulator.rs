//! The record accumulator: open batches per partition, appended to under a
//! lock by the caller's own task (as in Kafka's producer), drained by the
//! sender task.
//!
//! An idempotent producer keeps up to five batches per partition in flight,
//! one per request (Kafka's `max.in.flight.requests.per.connection`, and
//! the broker's window of batches it recognizes as duplicates, counted
//! from the oldest batch not yet answered): requests are sent in
//! order on each broker's produce stream, which the broker proposes in
//! that order, and the batches' sequence numbers make the broker refuse
//! any that would land out of order. A request that must be sent again
//! mutes its partitions (no new batches are taken) and waits until it is
//! the oldest in flight of each, so retries too reach the log in order.
//! Without idempotence nothing would catch a reordering, so a partition
//! keeps one request in flight, as before pipelining: it is muted until
//! the answer arrives, and then sends all its ready batches in one
//! request (up to `max_request_bytes`), so a slow round carries more
//! instead of throttling the producer.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHashMap;
use tokio::sync::Semaphore;

use super::ack::{BatchAck, BatchHandle, Outcome};
use super::ProducerConfig;
use crate::partitioner::partition_for_key;
use crate::ProducerRecord;
use crate::{ClientError, Result};
use spool_record::next_sequence;
use spool_record::now_ms;
use spool_record::{BatchBuilder, Header};

/// Open batches of every partition the producer has written to.
#[derive(Default)]
pub(super) struct Accumulator {
    topics: Vec<TopicBatches>,
    /// Where each topic is in `topics`.
    index: FxHashMap<Arc<str>, usize>,
    /// The topic of the last append: a program usually sends many records
    /// to one topic in a row, and comparing a name is cheaper than hashing.
    last: Option<(Arc<str>, usize)>,
    /// `flush` calls in progress: while any runs, every batch is ready.
    pub(super) flushes: usize,
    /// Set when the last producer handle is dropped: send everything, stop.
    pub(super) closed: bool,
    /// Whether batches carry a producer id and sequence numbers; then no
    /// batch is taken while `identity` is unknown.
    pub(super) idempotent: bool,
    pub(super) identity: Option<ProducerIdentity>,
    /// Whether batches belong to transactions: then a partition's batches
    /// are taken only once it is added to the open transaction.
    pub(super) transactional: bool,
    /// Why the open transaction can only be aborted (a batch of it failed).
    pub(super) transaction_failure: Option<String>,
    /// The ticket of the next request taken (see [`InFlight`]).
    next_ticket: u64,
}

/// Batches taken for one request: one group per partition, oldest batch
/// first, and the request's ticket.
pub(super) struct ReadyRequest {
    pub(super) ticket: u64,
    pub(super) groups: Vec<Vec<ReadyBatch>>,
}

/// The producer id and epoch the broker gave this producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ProducerIdentity {
    pub(super) id: i64,
    pub(super) epoch: i16,
}

struct TopicBatches {
    name: Arc<str>,
    partitions: Vec<PartitionBatches>,
    /// The partition keyless records currently go to.
    sticky: u32,
}

#[derive(Default)]
struct PartitionBatches {
    /// Oldest first; only the last one grows.
    open: VecDeque<OpenBatch>,
    /// The requests in flight carrying this partition's batches, oldest
    /// (lowest ticket) first.
    in_flight: VecDeque<InFlight>,
    /// Batches taken so far: the window is counted in them.
    taken: u64,
    /// A batch of the current identity was acknowledged here (see
    /// [`PartitionBatches::has_room`]).
    confirmed: bool,
    /// The sequence number of the next batch's first record (idempotence).
    next_sequence: i32,
    /// Added to the open transaction (transactional producers).
    in_transaction: bool,
}

/// One request's batches of a partition, on their way.
struct InFlight {
    /// The request's place in the order of sending.
    ticket: u64,
    batches: Vec<Arc<BatchAck>>,
    /// Failed and waiting to be sent again: the partition is muted.
    retrying: bool,
    /// The partition's count of batches taken before this request's.
    first: u64,
}

impl PartitionBatches {
    /// Whether the partition may send another request now: not muted by
    /// a retry, and with room in its window (`None`: one request at a
    /// time). The window spans from the oldest batch still unanswered,
    /// answered batches after it included: the broker recognizes a retry
    /// of that batch as a duplicate only while fewer than `depth` batches
    /// were appended after it.
    ///
    /// Until a batch of the current identity is acknowledged here, one
    /// request at a time: a partition takes any first sequence from a
    /// producer it does not know, so only once it knows this one does it
    /// refuse a batch that overtook an earlier one. This also keeps a new
    /// identity's batches behind those of the old one still in flight.
    fn has_room(&self, depth: Option<usize>) -> bool {
        if self.in_flight.iter().any(|r| r.retrying) {
            return false;
        }
        match (depth, self.in_flight.front()) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(_), Some(_)) if !self.confirmed => false,
            (Some(depth), Some(oldest)) => self.taken - oldest.first < depth as u64,
        }
    }
}

struct OpenBatch {
    builder: BatchBuilder,
    handle: BatchHandle,
    deadline: Instant,
}

/// A batch taken for sending (its acknowledgement names its partition).
pub(super) struct ReadyBatch {
    pub(super) bytes: Vec<u8>,
    pub(super) handle: BatchHandle,
    pub(super) records: u32,
    /// The identity its sequence numbers belong to, when idempotent.
    pub(super) producer: Option<ProducerIdentity>,
}

/// Where a record went, and whether the sender must look at the
/// accumulator (a batch was opened, so a new deadline exists, or filled).
pub(super) struct Appended<'a> {
    pub(super) ack: &'a Arc<BatchAck>,
    pub(super) index: u32,
    pub(super) wake_sender: bool,
}

impl Accumulator {
    /// Records a topic's partition count, learned from metadata.
    pub(super) fn add_topic(&mut self, topic: Arc<str>, partitions: u32) {
        let sticky = random_below(partitions);
        if self.index.contains_key(&topic) {
            return;
        }
        self.index.insert(Arc::clone(&topic), self.topics.len());
        self.topics.push(TopicBatches {
            name: topic,
            partitions: (0..partitions).map(|_| Default::default()).collect(),
            sticky,
        });
    }

    /// A known topic's partition count.
    pub(super) fn partition_count(&self, topic: &str) -> Result<u32> {
        self.index
            .get(topic)
            .map(|&i| self.topics[i].partitions.len() as u32)
            .ok_or_else(|| ClientError::UnknownTopic(topic.to_string()))
    }

    /// Appends a record whose buffer permit the caller holds; `None` when
    /// the topic's partition count is not known yet (see
    /// [`Accumulator::add_topic`]). `timestamp` stands in for the record's
    /// own when it has none (`None`: read the clock).
    pub(super) fn append(
        &mut self,
        record: &ProducerRecord,
        timestamp: Option<i64>,
        config: &ProducerConfig,
        buffer: &Arc<Semaphore>,
    ) -> Result<Option<Appended<'_>>> {
        let Some(slot) = self.slot_of(&record.topic) else {
            return Ok(None);
        };
        let topic = &mut self.topics[slot];
        let count = topic.partitions.len() as u32;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p < count => p,
            (Some(p), _) => {
                return Err(ClientError::UnknownTopicOrPartition {
                    topic: record.topic.to_string(),
                    partition: p,
                })
            }
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => topic.sticky,
        };
        let queue = &mut topic.partitions[partition as usize].open;
        let opened = queue
            .back()
            .is_none_or(|b| b.builder.estimated_size() >= config.batch_size);
        if opened {
            let ack = BatchAck::new(Arc::clone(&topic.name), partition);
            queue.push_back(OpenBatch {
                // A little room past the limit for the record that fills it.
                builder: BatchBuilder::with_capacity(
                    config.compression,
                    config.batch_size + config.batch_size / 8,
                ),
                handle: BatchHandle::new(ack, Arc::clone(buffer)),
                deadline: Instant::now() + config.linger,
            });
        }
        let batch = queue.back_mut().expect("a batch is open");
        let headers: Vec<Header<'_>> = record
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k.as_bytes(),
                value: v.as_deref(),
            })
            .collect();
        batch.builder.push(
            record.timestamp.or(timestamp).unwrap_or_else(now_ms),
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
        );
        let index = batch.handle.add_record();
        let filled = batch.builder.estimated_size() >= config.batch_size;
        if filled && record.partition.is_none() && record.key.is_none() && count > 1 {
            // The sticky partition's batch is full: move keyless records
            // to another partition.
            topic.sticky = (partition + 1 + random_below(count - 1)) % count;
        }
        Ok(Some(Appended {
            ack: &batch.handle.ack,
            index,
            wake_sender: opened || filled,
        }))
    }

    /// Takes, from every partition with room (see [`PartitionBatches::
    /// has_room`]), its oldest batches that are full, past their linger
    /// time, or followed by another (all of them when `everything`): one
    /// when pipelined, else at most `max_request_bytes` of them (but at
    /// least one); `None` when no partition has any.
    pub(super) fn take_ready(
        &mut self,
        now: Instant,
        everything: bool,
        config: &ProducerConfig,
    ) -> Option<ReadyRequest> {
        if self.idempotent && self.identity.is_none() {
            return None;
        }
        let identity = self.identity;
        let depth = self.pipeline_depth(config);
        let ticket = self.next_ticket;
        let partitions = self.topics.iter_mut().flat_map(|t| t.partitions.iter_mut());
        let transactional = self.transactional;
        let mut groups = Vec::new();
        for batches in partitions {
            if !batches.has_room(depth) || (transactional && !batches.in_transaction) {
                continue;
            }
            // Pipelined, a request carries one batch per partition, as
            // Kafka's do: the window then holds several requests, each
            // answered as soon as it is committed. Until the partition
            // pipelines (see `has_room`), its one request carries up to
            // a window's worth; without idempotence, everything that
            // piled up during the last round trip.
            let room = match depth {
                Some(_) if batches.confirmed => 1,
                Some(depth) => depth,
                None => usize::MAX,
            };
            let mut group = Vec::new();
            let mut taken = Vec::new();
            let mut bytes = 0usize;
            while let Some(oldest) = batches.open.front() {
                let size = oldest.builder.estimated_size();
                let send = everything
                    || batches.open.len() > 1
                    || oldest.deadline <= now
                    || size >= config.batch_size;
                let fits = group.is_empty() || bytes + size <= config.max_request_bytes;
                if !send || !fits || group.len() == room {
                    break;
                }
                let Some(batch) = batches.open.pop_front() else {
                    break;
                };
                bytes += size;
                taken.push(Arc::clone(&batch.handle.ack));
                let records = batch.builder.record_count().max(0);
                let builder = match identity {
                    Some(identity) => {
                        let first = batches.next_sequence;
                        batches.next_sequence = next_sequence(first, records);
                        batch
                            .builder
                            .producer(identity.id, identity.epoch, first)
                            .transactional(transactional)
                    }
                    None => batch.builder,
                };
                group.push(ReadyBatch {
                    records: records as u32,
                    bytes: builder.build(),
                    handle: batch.handle,
                    producer: identity,
                });
            }
            if !group.is_empty() {
                let first = batches.taken;
                batches.taken += taken.len() as u64;
                batches.in_flight.push_back(InFlight {
                    ticket,
                    batches: taken,
                    retrying: false,
                    first,
                });
                groups.push(group);
            }
        }
        if groups.is_empty() {
            return None;
        }
        self.next_ticket += 1;
        Some(ReadyRequest { ticket, groups })
    }

    /// Batches a partition keeps in flight: up to five with idempotence
    /// (the broker recognizes a producer's last five batches of a
    /// partition as duplicates, so any retry is caught), none pipelined
    /// without (`None`).
    fn pipeline_depth(&self, config: &ProducerConfig) -> Option<usize> {
        self.idempotent
            .then(|| config.max_in_flight.clamp(1, MAX_BATCHES_IN_FLIGHT))
    }

    /// Forgets the producer identity `stale` (if it is still the current
    /// one) and every partition's sequence: a batch of it failed for good,
    /// so the broker may or may not hold it, and the next batches must not
    /// be taken for a gap. A new identity starts every sequence at 0.
    pub(super) fn reset_identity(&mut self, stale: ProducerIdentity) {
        if self.identity != Some(stale) {
            return;
        }
        if self.transactional {
            // The identity belongs to the transactional id: the open
            // transaction must be aborted, which starts sequences over.
            self.transaction_failure
                .get_or_insert_with(|| "a batch of the transaction failed".into());
            return;
        }
        self.identity = None;
        for partition in self.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            partition.next_sequence = 0;
            partition.confirmed = false;
        }
    }

    /// Partitions with batches waiting that are not in the open
    /// transaction yet.
    pub(super) fn partitions_to_add(&self) -> Vec<(Arc<str>, u32)> {
        let mut wanted = Vec::new();
        for topic in &self.topics {
            for (index, batches) in topic.partitions.iter().enumerate() {
                if !batches.in_transaction && !batches.open.is_empty() {
                    wanted.push((Arc::clone(&topic.name), index as u32));
                }
            }
        }
        wanted
    }

    /// Marks partitions as added to the open transaction.
    pub(super) fn added_to_transaction(&mut self, added: &[(Arc<str>, u32)]) {
        for (topic, partition) in added {
            if let Some(batches) = self.partition_mut(topic, *partition) {
                batches.in_transaction = true;
            }
        }
    }

    /// Starts a new transaction under `identity`: every partition leaves
    /// the ended one, and sequences start over (a new epoch starts at 0).
    pub(super) fn start_epoch(&mut self, identity: ProducerIdentity) {
        self.identity = Some(identity);
        self.transaction_failure = None;
        for partition in self.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            partition.next_sequence = 0;
            partition.confirmed = false;
            partition.in_transaction = false;
        }
    }

    /// Completes every batch not yet taken with `outcome` (the producer
    /// could not get an identity to send them with).
    pub(super) fn fail_open(&mut self, outcome: impl Fn() -> Outcome) {
        for partition in self.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            for batch in partition.open.drain(..) {
                batch.handle.ack.complete(outcome());
            }
        }
    }

    /// The earliest linger deadline among partitions with room.
    pub(super) fn next_deadline(&self, config: &ProducerConfig) -> Option<Instant> {
        let depth = self.pipeline_depth(config);
        self.partitions()
            .filter(|p| p.has_room(depth))
            .filter_map(|p| p.open.front().map(|b| b.deadline))
            .min()
    }

    /// Forgets request `ticket`'s batches of a partition: answered, or
    /// failed for good.
    pub(super) fn finished(&mut self, topic: &str, partition: u32, ticket: u64) {
        if let Some(batches) = self.partition_mut(topic, partition) {
            batches.in_flight.retain(|r| r.ticket != ticket);
        }
    }

    /// Marks request `ticket`'s batches of a partition as waiting to be
    /// sent again (muting the partition), or as sent again.
    pub(super) fn set_retrying(
        &mut self,
        topic: &str,
        partition: u32,
        ticket: u64,
        retrying: bool,
    ) {
        if let Some(batches) = self.partition_mut(topic, partition) {
            for request in batches.in_flight.iter_mut().filter(|r| r.ticket == ticket) {
                request.retrying = retrying;
            }
        }
    }

    /// Notes that a partition acknowledged a batch of `producer`: if that
    /// is the current identity, the partition knows it, and pipelines.
    pub(super) fn confirmed(&mut self, topic: &str, partition: u32, producer: ProducerIdentity) {
        let current = self.identity == Some(producer);
        if let Some(batches) = self.partition_mut(topic, partition) {
            batches.confirmed |= current;
        }
    }

    /// Whether request `ticket` is the oldest in flight for a partition:
    /// nothing sent before it is still to be answered there.
    pub(super) fn is_oldest(&self, topic: &str, partition: u32, ticket: u64) -> bool {
        self.partition(topic, partition)
            .and_then(|p| p.in_flight.front())
            .is_none_or(|oldest| oldest.ticket == ticket)
    }

    fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionBatches> {
        let slot = self.index.get(topic).copied();
        slot.and_then(|i| self.topics.get(i))
            .and_then(|t| t.partitions.get(partition as usize))
    }

    fn partition_mut(&mut self, topic: &str, partition: u32) -> Option<&mut PartitionBatches> {
        let slot = self.index.get(topic).copied();
        slot.and_then(|i| self.topics.get_mut(i))
            .and_then(|t| t.partitions.get_mut(partition as usize))
    }

    /// The acknowledgements of every batch not yet answered, open or in
    /// flight: what a flush waits for.
    pub(super) fn unanswered(&self) -> Vec<Arc<BatchAck>> {
        self.partitions()
            .flat_map(|p| {
                let open = p.open.iter().map(|b| Arc::clone(&b.handle.ack));
                let sent = p.in_flight.iter().flat_map(|r| r.batches.iter().cloned());
                sent.chain(open)
            })
            .collect()
    }

    /// Whether no batch is open.
    pub(super) fn is_empty(&self) -> bool {
        self.partitions().all(|p| p.open.is_empty())
    }

    fn partitions(&self) -> impl Iterator<Item = &PartitionBatches> {
        self.topics.iter().flat_map(|t| t.partitions.iter())
    }

    fn slot_of(&mut self, topic: &Arc<str>) -> Option<usize> {
        match &self.last {
            Some((name, slot)) if Arc::ptr_eq(name, topic) || **name == **topic => Some(*slot),
            _ => {
                let slot = *self.index.get(topic)?;
                self.last = Some((Arc::clone(topic), slot));
                Some(slot)
            }
        }
    }
}

/// The most batches of one partition an idempotent producer keeps in
/// flight: the broker's window of recent batches per producer, within
/// which a retried batch is recognized as a duplicate (five, as in Kafka).
const MAX_BATCHES_IN_FLIGHT: usize = 5;

/// A cheap pseudo-random number below `n`, for spreading sticky partitions.
fn random_below(n: u32) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos.wrapping_mul(2_654_435_761) % n.max(1)
}
