//! The producer: batches records per partition by size and linger time,
//! sends ready batches of many partitions in one request, keeps a bounded
//! number of requests in flight, and retries retriable failures.
//!
//! `send` resolves the partition (key hash, or a sticky partition for keyless
//! records that changes when a batch fills) and hands the record to a
//! background task that owns the batches. Each `send` returns a future for
//! the record's offset; dropping it does not cancel the record.

use std::collections::{HashMap, VecDeque};

// The accumulator hashes a topic-partition for every record; SipHash's
// resistance to hash flooding buys nothing for keys the application chose.
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::partitioner::partition_for_key;
use super::{Client, ProducerRecord, TopicPartition};
use crate::proto::{Acks, MetadataRequest, ProducePartition, ProduceRequest, ProduceTopic};
use crate::record::{BatchBuilder, Compression, Header};
use crate::{LogError, Result};

/// Producer settings; the defaults follow Kafka's where they apply.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// `leader` (default): the leader appended it. `all`: on disk on a
    /// majority. `none`: do not wait for the broker.
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent (default
    /// 5 ms, Kafka 4's `linger.ms`): a few milliseconds of latency buy much
    /// larger batches.
    pub linger: Duration,
    /// Uncompressed bytes at which a batch is sent at once (default 64 KiB:
    /// large enough to amortize a request, small enough to keep latency low).
    pub batch_size: usize,
    pub compression: Compression,
    /// Requests in flight at once (default 5, as in Kafka).
    pub max_in_flight: usize,
    /// Retries of a retriable failure (default 5) with `retry_backoff`
    /// (default 100 ms) between them.
    pub retries: u32,
    pub retry_backoff: Duration,
    /// Records queued in the producer before `send` waits (default 100,000).
    pub buffer_records: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::Leader,
            linger: Duration::from_millis(5),
            batch_size: 64 * 1024,
            compression: Compression::None,
            max_in_flight: 5,
            retries: 5,
            retry_backoff: Duration::from_millis(100),
            buffer_records: 100_000,
        }
    }
}

/// Where a produced record landed. `offset` is `None` with `acks=none`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: u32,
    pub offset: Option<u64>,
}

/// Where a record's acknowledgement goes: its own channel (`send`), or a
/// slot in the shared result of a `send_batch` call.
enum Waiter {
    One(oneshot::Sender<Result<RecordMetadata>>),
    Shared(Arc<SharedAck>, usize),
}

impl Waiter {
    fn complete(self, result: Result<RecordMetadata>) {
        match self {
            Waiter::One(sender) => {
                let _ = sender.send(result);
            }
            Waiter::Shared(ack, slot) => ack.complete(slot, result),
        }
    }
}

/// The acknowledgements of one `send_batch` call, delivered together once
/// the last record is answered: one channel for the whole call instead of
/// one per record.
struct SharedAck {
    results: Mutex<Vec<Option<Result<RecordMetadata>>>>,
    remaining: std::sync::atomic::AtomicUsize,
    done: Mutex<Option<oneshot::Sender<Vec<Result<RecordMetadata>>>>>,
}

impl SharedAck {
    fn complete(&self, slot: usize, result: Result<RecordMetadata>) {
        self.results.lock()[slot] = Some(result);
        if self
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            let results = std::mem::take(&mut *self.results.lock());
            let results = results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(closed())))
                .collect();
            if let Some(done) = self.done.lock().take() {
                let _ = done.send(results);
            }
        }
    }
}

fn closed() -> LogError {
    LogError::Closed("the producer has stopped".into())
}

/// A record with its partition resolved (`None`: the sticky partition),
/// the topic's partition count and its timestamp.
struct Routed {
    partition: Option<u32>,
    partitions: u32,
    record: ProducerRecord,
    timestamp: i64,
}

enum Command {
    /// `partition: None` asks the accumulator for the topic's sticky partition.
    Send {
        routed: Routed,
        done: Waiter,
    },
    SendMany {
        records: Vec<Routed>,
        ack: Arc<SharedAck>,
    },
    Flush(oneshot::Sender<()>),
}

/// A producer. Clone it freely: clones share batches and connections.
#[derive(Clone)]
pub struct Producer {
    client: Client,
    commands: mpsc::Sender<Command>,
    partition_counts: Arc<Mutex<FxHashMap<String, u32>>>,
}

impl Producer {
    pub(super) fn new(client: Client, config: ProducerConfig) -> Producer {
        let (commands, receiver) = mpsc::channel(config.buffer_records.max(1));
        let accumulator = Accumulator {
            client: client.clone(),
            config,
            batches: FxHashMap::default(),
            in_flight: JoinSet::new(),
            request_partitions: FxHashMap::default(),
            muted: FxHashSet::default(),
            sticky: FxHashMap::default(),
        };
        tokio::spawn(accumulator.run(receiver));
        Producer {
            client,
            commands,
            partition_counts: Arc::default(),
        }
    }

    /// Queues a record; the returned future resolves once the broker has
    /// acknowledged it per `acks`. Waits while the producer's buffer is full.
    pub async fn send(
        &self,
        record: ProducerRecord,
    ) -> Result<impl std::future::Future<Output = Result<RecordMetadata>>> {
        let routed = self.route(record).await?;
        let (done, result) = oneshot::channel();
        let command = Command::Send {
            routed,
            done: Waiter::One(done),
        };
        self.commands.send(command).await.map_err(|_| closed())?;
        Ok(async move { result.await.unwrap_or_else(|_| Err(closed())) })
    }

    /// Queues many records at once; the returned future resolves with every
    /// record's acknowledgement, in order, once the last one is answered.
    /// Cheaper per record than `send` (one hand-off and one completion for
    /// the whole call), for producers that already hold records in bulk.
    pub async fn send_batch(
        &self,
        records: Vec<ProducerRecord>,
    ) -> Result<impl std::future::Future<Output = Result<Vec<RecordMetadata>>>> {
        let mut routed = Vec::with_capacity(records.len());
        for record in records {
            routed.push(self.route(record).await?);
        }
        let (done, result) = oneshot::channel();
        let ack = Arc::new(SharedAck {
            results: Mutex::new((0..routed.len()).map(|_| None).collect()),
            remaining: std::sync::atomic::AtomicUsize::new(routed.len()),
            done: Mutex::new(Some(done)),
        });
        if routed.is_empty() {
            ack.done.lock().take().map(|d| d.send(Vec::new()));
        } else {
            let command = Command::SendMany {
                records: routed,
                ack,
            };
            self.commands.send(command).await.map_err(|_| closed())?;
        }
        Ok(async move { result.await.map_err(|_| closed())?.into_iter().collect() })
    }

    /// Resolves a record's partition: explicit, by key hash, or (`None`)
    /// the sticky partition the accumulator picks.
    async fn route(&self, record: ProducerRecord) -> Result<Routed> {
        let partitions = self.partition_count(&record.topic).await?;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p < partitions => Some(p),
            (Some(p), _) => {
                return Err(LogError::UnknownTopicOrPartition {
                    topic: record.topic,
                    partition: p,
                })
            }
            (None, Some(key)) => Some(partition_for_key(key, partitions)),
            (None, None) => None,
        };
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        Ok(Routed {
            partition,
            partitions,
            record,
            timestamp,
        })
    }

    /// Sends a record and waits for its acknowledgement.
    pub async fn send_and_wait(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.send(record).await?.await
    }

    /// Sends every queued batch now and waits until all requests sent so far
    /// have been answered.
    pub async fn flush(&self) -> Result<()> {
        let (done, flushed) = oneshot::channel();
        self.commands
            .send(Command::Flush(done))
            .await
            .map_err(|_| closed())?;
        flushed.await.map_err(|_| closed())
    }

    async fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(count) = self.partition_counts.lock().get(topic) {
            return Ok(*count);
        }
        let metadata = self
            .client
            .metadata(MetadataRequest {
                topics: vec![topic.to_string()],
            })
            .await?;
        let topic_meta = metadata
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| LogError::UnknownTopic(topic.to_string()))?;
        if let Some(e) = LogError::from_code(topic_meta.error, &topic_meta.message) {
            return Err(e);
        }
        let count = topic_meta.partitions.len() as u32;
        self.partition_counts
            .lock()
            .insert(topic.to_string(), count);
        Ok(count)
    }
}

struct PendingBatch {
    builder: BatchBuilder,
    waiters: Vec<Waiter>,
    deadline: Instant,
}

/// The background task that owns open batches and in-flight requests.
///
/// Order per partition is kept by never having two requests in flight for
/// the same partition: a partition with a request outstanding is muted, and
/// its next batches wait (and keep filling) until the answer arrives. Other
/// partitions use the remaining in-flight slots. Without this, two requests
/// multiplexed on one connection could be appended in either order.
struct Accumulator {
    client: Client,
    config: ProducerConfig,
    /// Open batches per partition, oldest first; only the last one grows.
    batches: FxHashMap<TopicPartition, VecDeque<PendingBatch>>,
    in_flight: JoinSet<()>,
    /// The partitions of each request in flight, by task.
    request_partitions: FxHashMap<tokio::task::Id, Vec<TopicPartition>>,
    muted: FxHashSet<TopicPartition>,
    /// The partition keyless records of each topic currently go to.
    sticky: FxHashMap<String, u32>,
}

impl Accumulator {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            // With every in-flight slot taken, only an answer can make
            // progress: no timer, or the loop would spin on a past deadline.
            let slots_full = self.in_flight.len() >= self.config.max_in_flight.max(1);
            let next_deadline = self
                .batches
                .iter()
                .filter(|_| !slots_full)
                .filter(|(tp, _)| !self.muted.contains(*tp))
                .filter_map(|(_, queue)| queue.front().map(|b| b.deadline))
                .min();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command @ (Command::Send { .. } | Command::SendMany { .. })) => {
                        match command {
                            Command::Send { routed, done } => self.add(routed, done).await,
                            Command::SendMany { records, ack } => {
                                for (slot, routed) in records.into_iter().enumerate() {
                                    self.add(routed, Waiter::Shared(Arc::clone(&ack), slot)).await;
                                }
                            }
                            Command::Flush(_) => unreachable!("matched above"),
                        }
                        // With no linger, send as soon as nothing else is
                        // queued: batches still form while requests are in
                        // flight, but a lone record never waits for a timer.
                        if self.config.linger.is_zero() && commands.is_empty() {
                            self.send_ready(true).await;
                        }
                    }
                    Some(Command::Flush(done)) => {
                        self.drain().await;
                        let _ = done.send(());
                    }
                    None => break,
                },
                _ = sleep_until(next_deadline) => self.send_ready(false).await,
                Some(done) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    self.unmute(done);
                    self.send_ready(false).await;
                }
            }
        }
        self.drain().await;
    }

    /// Sends everything and waits for every answer.
    async fn drain(&mut self) {
        loop {
            self.send_ready(true).await;
            match self.in_flight.join_next_with_id().await {
                Some(done) => self.unmute(done),
                None if self.batches.is_empty() => return,
                None => {}
            }
        }
    }

    /// Unmutes the partitions of a finished request (also when its task
    /// panicked: its waiters are gone, but the partitions must go on).
    fn unmute(&mut self, done: std::result::Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        for tp in self.request_partitions.remove(&id).unwrap_or_default() {
            self.muted.remove(&tp);
        }
    }

    async fn add(&mut self, routed: Routed, done: Waiter) {
        let Routed {
            partition,
            partitions,
            mut record,
            timestamp,
        } = routed;
        let sticky = partition.is_none();
        let topic = std::mem::take(&mut record.topic);
        let partition = match partition {
            Some(p) => p,
            None => match self.sticky.get(&topic) {
                Some(p) => *p % partitions.max(1),
                None => {
                    let p = random_below(partitions);
                    self.sticky.insert(topic.clone(), p);
                    p
                }
            },
        };
        let partition = TopicPartition { topic, partition };
        let (linger, compression, batch_size) = (
            self.config.linger,
            self.config.compression,
            self.config.batch_size,
        );
        // Look up before inserting: the common case needs no key clone.
        if !self.batches.contains_key(&partition) {
            self.batches.insert(partition.clone(), VecDeque::new());
        }
        let queue = self.batches.get_mut(&partition).expect("inserted above");
        if queue
            .back()
            .is_none_or(|b| b.builder.estimated_size() >= batch_size)
        {
            queue.push_back(PendingBatch {
                // A little room past the limit for the record that fills it.
                builder: BatchBuilder::with_capacity(compression, batch_size + batch_size / 8),
                waiters: Vec::new(),
                deadline: Instant::now() + linger,
            });
        }
        let batch = queue.back_mut().expect("pushed above");
        let headers: Vec<Header<'_>> = record
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k.as_bytes(),
                value: v.as_deref(),
            })
            .collect();
        batch.builder.push(
            timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
        );
        batch.waiters.push(done);
        if batch.builder.estimated_size() >= batch_size {
            if sticky && partitions > 1 {
                // The sticky partition's batch is full: move keyless records
                // to another partition.
                let next = (partition.partition + 1 + random_below(partitions - 1)) % partitions;
                self.sticky.insert(partition.topic.clone(), next);
            }
            self.send_ready(false).await;
        }
    }

    /// Sends, in one request, the oldest batch of every unmuted partition
    /// that is full or past its linger time (or of every unmuted partition
    /// when `everything`), once an in-flight slot is free.
    async fn send_ready(&mut self, everything: bool) {
        if self.in_flight.len() >= self.config.max_in_flight.max(1) {
            return; // the next answer calls us again
        }
        let now = Instant::now();
        let ready: Vec<TopicPartition> = self
            .batches
            .iter()
            .filter(|(tp, _)| !self.muted.contains(*tp))
            .filter(|(_, queue)| {
                queue.len() > 1
                    || queue.front().is_some_and(|b| {
                        everything
                            || b.deadline <= now
                            || b.builder.estimated_size() >= self.config.batch_size
                    })
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        if ready.is_empty() {
            return;
        }
        let mut batches = Vec::with_capacity(ready.len());
        for tp in ready {
            let queue = self.batches.get_mut(&tp).expect("listed above");
            let batch = queue.pop_front().expect("not empty");
            if queue.is_empty() {
                self.batches.remove(&tp);
            }
            self.muted.insert(tp.clone());
            batches.push((tp, batch));
        }
        let client = self.client.clone();
        let config = self.config.clone();
        let partitions: Vec<TopicPartition> = batches.iter().map(|(tp, _)| tp.clone()).collect();
        let task = self.in_flight.spawn(send_batches(client, config, batches));
        self.request_partitions.insert(task.id(), partitions);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Sends one request for `batches`, retrying retriable failures, and
/// resolves every record's waiter.
async fn send_batches(
    client: Client,
    config: ProducerConfig,
    batches: Vec<(TopicPartition, PendingBatch)>,
) {
    let mut pending: Vec<(TopicPartition, Bytes, Vec<Waiter>)> = batches
        .into_iter()
        .map(|(tp, b)| (tp, Bytes::from(b.builder.build()), b.waiters))
        .collect();
    let mut attempt = 0;
    loop {
        let request = build_request(&pending, config.acks);
        let outcome = if config.acks == Acks::None {
            // Nobody waits for the answer, but the partition stays muted
            // until it comes, or the next request could overtake this one.
            let answer = tokio::spawn({
                let client = client.clone();
                async move { client.produce(request).await }
            });
            for (tp, _, waiters) in pending.drain(..) {
                resolve(waiters, |_| {
                    Ok(RecordMetadata {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset: None,
                    })
                });
            }
            let _ = answer.await;
            return;
        } else {
            client.produce(request).await
        };
        let mut retry = Vec::new();
        match outcome {
            Ok(response) => {
                let results: HashMap<(String, u32), (i32, String, u64)> = response
                    .topics
                    .into_iter()
                    .flat_map(|t| {
                        t.partitions.into_iter().map(move |p| {
                            (
                                (t.name.clone(), p.partition),
                                (p.error, p.message, p.base_offset),
                            )
                        })
                    })
                    .collect();
                for (tp, bytes, waiters) in pending.drain(..) {
                    let (code, message, base) = results
                        .get(&(tp.topic.clone(), tp.partition))
                        .cloned()
                        .unwrap_or((
                            crate::proto::ErrorCode::Unknown as i32,
                            "no result for the partition".into(),
                            0,
                        ));
                    match LogError::from_code(code, &message) {
                        None => resolve(waiters, |i| {
                            Ok(RecordMetadata {
                                topic: tp.topic.clone(),
                                partition: tp.partition,
                                offset: Some(base.saturating_add(i as u64)),
                            })
                        }),
                        Some(e) if e.is_retriable() && attempt < config.retries => {
                            retry.push((tp, bytes, waiters))
                        }
                        Some(_) => {
                            let code = e_code(code);
                            resolve(waiters, |_| {
                                Err(LogError::Broker {
                                    code,
                                    message: message.clone(),
                                })
                            })
                        }
                    }
                }
            }
            Err(e) if e.is_retriable() && attempt < config.retries => {
                retry = std::mem::take(&mut pending)
            }
            Err(e) => {
                let reason = e.to_string();
                for (_, _, waiters) in pending.drain(..) {
                    resolve(waiters, |_| {
                        Err(LogError::Transport {
                            address: String::new(),
                            reason: reason.clone(),
                        })
                    });
                }
            }
        }
        if retry.is_empty() {
            return;
        }
        attempt += 1;
        tracing::debug!(attempt, partitions = retry.len(), "retrying produce");
        tokio::time::sleep(config.retry_backoff).await;
        pending = retry;
    }
}

fn build_request(pending: &[(TopicPartition, Bytes, Vec<Waiter>)], acks: Acks) -> ProduceRequest {
    let mut topics: Vec<ProduceTopic> = Vec::new();
    for (tp, bytes, _) in pending {
        let partition = ProducePartition {
            partition: tp.partition,
            records: bytes.clone(),
        };
        match topics.iter_mut().find(|t| t.name == tp.topic) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(ProduceTopic {
                name: tp.topic.clone(),
                partitions: vec![partition],
            }),
        }
    }
    ProduceRequest {
        acks: acks as i32,
        timeout_ms: 30_000,
        topics,
    }
}

fn e_code(code: i32) -> crate::proto::ErrorCode {
    crate::proto::ErrorCode::try_from(code).unwrap_or(crate::proto::ErrorCode::Unknown)
}

fn resolve(waiters: Vec<Waiter>, result: impl Fn(usize) -> Result<RecordMetadata>) {
    for (i, waiter) in waiters.into_iter().enumerate() {
        waiter.complete(result(i));
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A cheap pseudo-random number below `n`, for spreading sticky partitions.
fn random_below(n: u32) -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos.wrapping_mul(2_654_435_761) % n.max(1)
}
