//! The producer: batches records per partition by size and linger time,
//! sends ready batches of many partitions in one request, keeps a bounded
//! number of requests in flight, and retries retriable failures.
//!
//! The layout is Kafka's: `send` resolves the partition (key hash, or a
//! sticky partition for keyless records that changes when a batch fills)
//! and appends the record to its partition's open batch in the caller's own
//! task, under a short lock ([`accumulator`]); a sender task takes ready
//! batches and owns the requests ([`sender`]); a record's future shares its
//! batch's outcome ([`ack`]). Per record there is no channel, no task
//! switch and no allocation. Dropping a record's future does not cancel the
//! record; dropping the last producer handle sends what is queued.

mod accumulator;
mod ack;
mod sender;
mod transaction;

pub use transaction::GroupMetadata;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};

use self::accumulator::Accumulator;
use self::ack::BatchAck;
use super::{Client, ProducerRecord};
use crate::{ClientError, Result};
use spool_protocol::proto::Acks;
use spool_record::{now_ms, Compression};

/// Producer settings; the defaults follow Kafka's where they apply.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// `all` (default, as in Kafka 3+): committed, on disk on a majority,
    /// and so readable once acknowledged. `leader`: in the leader's log,
    /// not yet committed (lost if the leader fails before a majority has
    /// it; a consumer sees it a replication round later). `none`: do not
    /// wait for the broker.
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent (default
    /// 5 ms, Kafka 4's `linger.ms`): a few milliseconds of latency buy much
    /// larger batches.
    pub linger: Duration,
    /// Uncompressed bytes at which a batch is sent at once (default 64 KiB:
    /// large enough to amortize a request, small enough to keep latency low).
    pub batch_size: usize,
    pub compression: Compression,
    /// Requests in flight at once, and with idempotence the batches of one
    /// partition in flight (default 5, as Kafka's
    /// `max.in.flight.requests.per.connection`; at most 5 per partition,
    /// the broker's window of recognized duplicates). Without idempotence
    /// a partition keeps one request in flight, so that a retry never
    /// reorders its records.
    pub max_in_flight: usize,
    /// Retries of a retriable failure (default unlimited, as in Kafka:
    /// `delivery_timeout` is what bounds them).
    pub retries: u32,
    /// The first wait before a retry (default 100 ms, Kafka's
    /// `retry.backoff.ms`); each next one doubles, up to
    /// `retry_backoff_max`.
    pub retry_backoff: Duration,
    /// The longest wait between two retries (default 1 s, Kafka's
    /// `retry.backoff.max.ms`): a leader elected meanwhile is found within
    /// a second, and a broker that is down is not asked many times a
    /// second.
    pub retry_backoff_max: Duration,
    /// How long a record may take from its first send to its answer,
    /// retries included, before it fails (default 120 s, Kafka's
    /// `delivery.timeout.ms`). A failover (a leader's broker killed, its
    /// partitions electing a new leader, the producer finding it) costs
    /// seconds of latency then, never an error; a broker that stays
    /// unreachable fails the records after two minutes.
    pub delivery_timeout: Duration,
    /// Records queued in the producer before `send` waits (default 100,000).
    pub buffer_records: usize,
    /// Bytes of one partition's batches one request carries at most
    /// without idempotence (default 4 MiB; at least one batch is always
    /// sent). Such a partition has one request in flight at a time, so
    /// its batches that pile up meanwhile go together in the next;
    /// Kafka's `max.request.size` is 1 MiB, but a replicated write waits
    /// for a majority's fsync, and a larger request carries more per round
    /// trip. An idempotent producer pipelines instead: one batch of a
    /// partition per request, up to five in flight.
    pub max_request_bytes: usize,
    /// Idempotence (default on, as in Kafka 3+): the producer gets a
    /// producer id from the broker and numbers each partition's records,
    /// so that a retried batch the broker already holds is not appended
    /// twice, and a lost one is reported rather than skipped. Off with
    /// `acks=none`, where nothing is retried.
    pub idempotence: bool,
    /// How long the producer waits for a produce response before it counts
    /// the request as failed and retries it (default 30 s, Kafka's
    /// `request.timeout.ms`); the broker is given the same time. Without
    /// it a response lost on a live connection would stall the partition.
    pub request_timeout: Duration,
    /// `transactional.id` (default none): with one, records are sent in
    /// transactions (`init_transactions`, `begin_transaction`,
    /// `commit_transaction`; docs/exactly-once.md). Implies idempotence.
    pub transactional_id: Option<String>,
    /// How long the coordinator lets a transaction stay open before it
    /// aborts it (default 60 s, Kafka's `transaction.timeout.ms`).
    pub transaction_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 64 * 1024,
            compression: Compression::None,
            max_in_flight: 5,
            retries: u32::MAX,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(120),
            buffer_records: 100_000,
            max_request_bytes: 4 << 20,
            idempotence: true,
            request_timeout: Duration::from_secs(30),
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl ProducerConfig {
    /// Whether batches carry a producer id and sequence numbers.
    pub fn is_idempotent(&self) -> bool {
        (self.idempotence || self.transactional_id.is_some()) && self.acks != Acks::None
    }
}

/// Where a produced record landed. `offset` is `None` with `acks=none`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: Option<u64>,
}

fn closed() -> ClientError {
    ClientError::Closed("the producer has stopped".into())
}

/// What the producer handles, the sender task and in-flight requests share.
struct Shared {
    client: Client,
    config: ProducerConfig,
    accumulator: Mutex<Accumulator>,
    /// Rung when the sender has something new to look at: a batch opened or
    /// filled, a partition unmuted, a flush, the last handle dropped.
    wake_sender: Notify,
    /// Rung when a request's batches are answered or failed for good: a
    /// retry waiting to be the oldest in flight looks again.
    answered: Notify,
    /// One permit per record the producer may hold; a batch gives its
    /// records' permits back when it is answered.
    buffer: Arc<Semaphore>,
    /// Whether a transaction is open (transactional producers).
    transaction: Mutex<transaction::TxnPhase>,
}

/// A producer. Clone it freely: clones share batches and connections.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    _open: Arc<OpenHandles>,
}

/// Dropped with the last producer handle: the sender then sends what is
/// queued and stops.
struct OpenHandles(Arc<Shared>);

impl Drop for OpenHandles {
    fn drop(&mut self) {
        self.0.accumulator.lock().closed = true;
        self.0.wake_sender.notify_one();
    }
}

impl Producer {
    pub(super) fn new(client: Client, config: ProducerConfig) -> Producer {
        let permits = config.buffer_records.clamp(1, Semaphore::MAX_PERMITS);
        let mut accumulator = Accumulator::default();
        accumulator.idempotent = config.is_idempotent();
        accumulator.transactional = config.transactional_id.is_some();
        let shared = Arc::new(Shared {
            client,
            config,
            accumulator: Mutex::new(accumulator),
            wake_sender: Notify::new(),
            answered: Notify::new(),
            buffer: Arc::new(Semaphore::new(permits)),
            transaction: Mutex::new(transaction::TxnPhase::Uninitialized),
        });
        tokio::spawn(sender::run(Arc::clone(&shared)));
        Producer {
            _open: Arc::new(OpenHandles(Arc::clone(&shared))),
            shared,
        }
    }

    /// Queues a record; the returned future resolves once the broker has
    /// acknowledged it per `acks`. Waits while the producer's buffer is full.
    pub async fn send(
        &self,
        record: ProducerRecord,
    ) -> Result<impl std::future::Future<Output = Result<RecordMetadata>>> {
        self.check_transaction_open()?;
        // Held, not forgotten, until the record is in a batch: a send
        // cancelled while it learns the topic gives its permit back.
        let permit = self.reserve(1).await?;
        loop {
            let appended = {
                let mut accumulator = self.shared.accumulator.lock();
                let shared = &self.shared;
                match accumulator.append(&record, None, &shared.config, &shared.buffer) {
                    Ok(Some(a)) => Ok(Some((Arc::clone(a.ack), a.index, a.wake_sender))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                }
            };
            let learned = match appended {
                Ok(Some((ack, index, wake_sender))) => {
                    permit.forget(); // the batch gives it back when answered
                    if wake_sender {
                        self.shared.wake_sender.notify_one();
                    }
                    return Ok(ack.record(index));
                }
                Ok(None) => self.learn_topic(&record.topic).await,
                Err(e) => Err(e),
            };
            learned?;
        }
    }

    /// Queues many records at once; the returned future resolves with every
    /// record's acknowledgement, in order, once the last one is answered.
    /// Cheaper per record than `send` (one lock, one clock reading and one
    /// wait per batch the records land in). A record naming a partition its
    /// topic does not have fails the call before anything is queued.
    pub async fn send_batch(
        &self,
        records: Vec<ProducerRecord>,
    ) -> Result<impl std::future::Future<Output = Result<Vec<RecordMetadata>>>> {
        self.check_transaction_open()?;
        let mut previous: Option<&Arc<str>> = None;
        for record in &records {
            if previous.is_none_or(|p| *p != record.topic) {
                self.learn_topic(&record.topic).await?;
                previous = Some(&record.topic);
            }
        }
        self.check_partitions(&records)?;
        let timestamp = Some(now_ms());
        // Reserved a chunk at a time: more than the whole buffer at once
        // would wait forever.
        let chunk = (self.shared.config.buffer_records / 2).max(1);
        let mut runs: Vec<AckRun> = Vec::new();
        for records in records.chunks(chunk) {
            // Appended right after, with no await between: never cancelled
            // in the gap.
            self.reserve(records.len()).await?.forget();
            let wake_sender = self.append_all(records, timestamp, &mut runs);
            if wake_sender {
                self.shared.wake_sender.notify_one();
            }
        }
        Ok(async move {
            let mut results = Vec::with_capacity(records.len());
            for run in runs {
                run.ack.records(run.first, run.count, &mut results).await?;
            }
            Ok(results)
        })
    }

    /// Appends records whose permits are reserved and whose topics are
    /// known, extending `runs`; whether the sender needs waking.
    fn append_all(
        &self,
        records: &[ProducerRecord],
        timestamp: Option<i64>,
        runs: &mut Vec<AckRun>,
    ) -> bool {
        let shared = &self.shared;
        let mut accumulator = shared.accumulator.lock();
        let mut wake_sender = false;
        for record in records {
            let appended = accumulator.append(record, timestamp, &shared.config, &shared.buffer);
            let Ok(Some(appended)) = appended else {
                // Checked before reserving: unreachable, but a record must
                // never be lost silently, so it is answered as refused.
                shared.buffer.add_permits(1);
                runs.push(AckRun::refused(record));
                continue;
            };
            wake_sender |= appended.wake_sender;
            match runs.last_mut() {
                Some(run) if run.extends(appended.ack, appended.index) => run.count += 1,
                _ => runs.push(AckRun {
                    ack: Arc::clone(appended.ack),
                    first: appended.index,
                    count: 1,
                }),
            }
        }
        wake_sender
    }

    /// Sends a record and waits for its acknowledgement.
    pub async fn send_and_wait(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.send(record).await?.await
    }

    /// Sends every queued batch now and waits until every record sent
    /// before the call has been answered (successfully or not: each
    /// record's own future says which).
    pub async fn flush(&self) -> Result<()> {
        let unanswered = {
            let mut accumulator = self.shared.accumulator.lock();
            accumulator.flushes += 1;
            accumulator.unanswered()
        };
        let _flushing = Flushing(&self.shared);
        self.shared.wake_sender.notify_one();
        for ack in unanswered {
            ack.wait().await;
        }
        Ok(())
    }

    /// Takes `records` permits of the producer's buffer, waiting while it
    /// is full. The permits return when the records' batches are answered.
    async fn reserve(&self, records: usize) -> Result<tokio::sync::SemaphorePermit<'_>> {
        let permits = u32::try_from(records).unwrap_or(u32::MAX);
        let permit = match self.shared.buffer.try_acquire_many(permits) {
            Ok(permit) => permit,
            Err(_) => self
                .shared
                .buffer
                .acquire_many(permits)
                .await
                .map_err(|_| closed())?,
        };
        Ok(permit)
    }

    /// Fails if a record names a partition its topic does not have.
    fn check_partitions(&self, records: &[ProducerRecord]) -> Result<()> {
        let accumulator = self.shared.accumulator.lock();
        for record in records.iter().filter(|r| r.partition.is_some()) {
            let count = accumulator.partition_count(&record.topic)?;
            match record.partition {
                Some(p) if p >= count => {
                    return Err(ClientError::UnknownTopicOrPartition {
                        topic: record.topic.to_string(),
                        partition: p,
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Learns a topic's partition count from the broker, once.
    async fn learn_topic(&self, topic: &Arc<str>) -> Result<()> {
        if self
            .shared
            .accumulator
            .lock()
            .partition_count(topic)
            .is_ok()
        {
            return Ok(());
        }
        let topic_meta = self.shared.client.topic_metadata(topic).await?;
        let count = topic_meta.partitions.len() as u32;
        self.shared
            .accumulator
            .lock()
            .add_topic(Arc::clone(topic), count);
        Ok(())
    }
}

/// Consecutive records of one `send_batch` call that landed in one batch:
/// awaited once for all of them.
struct AckRun {
    ack: Arc<BatchAck>,
    first: u32,
    count: u32,
}

impl AckRun {
    fn extends(&self, ack: &Arc<BatchAck>, index: u32) -> bool {
        Arc::ptr_eq(&self.ack, ack) && index == self.first + self.count
    }

    /// A run of one record that could not be queued.
    fn refused(record: &ProducerRecord) -> AckRun {
        let ack = BatchAck::new(Arc::clone(&record.topic), record.partition.unwrap_or(0));
        ack.complete(ack::Outcome::Refused {
            code: spool_protocol::proto::ErrorCode::UnknownTopicOrPartition,
            message: format!("topic `{}` is unknown to the producer", record.topic),
        });
        AckRun {
            ack,
            first: 0,
            count: 1,
        }
    }
}

/// Ends a flush's "everything is ready" window, however the flush ends.
struct Flushing<'a>(&'a Shared);

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        self.0.accumulator.lock().flushes -= 1;
    }
}
