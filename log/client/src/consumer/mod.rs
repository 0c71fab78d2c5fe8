//! The consumer: reads assigned partitions from tracked positions, with
//! seeking by offset or time, pausing, and an offset-reset policy.
//!
//! A consumer either reads partitions it is assigned ([`Consumer::assign`])
//! or joins a group and reads what the group gives it
//! ([`Consumer::subscribe`], in `subscribe.rs`).

mod aborted;
mod subscribe;

pub use aborted::AbortedFilter;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::group::{Membership, RebalanceListener};
use super::{Client, ConsumerRecord, TopicPartition};
use crate::{ClientError, Result};
use spool_protocol::proto::{
    AbortedTransaction, ErrorCode, FetchPartition, FetchRequest, FetchResponse, FetchTopic,
    IsolationLevel, ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic, OffsetSpec,
};
use spool_record::BatchIter;

/// Where a partition without a valid position starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Report an error instead of guessing.
    None,
}

/// Consumer settings; the defaults follow Kafka's.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// `auto.offset.reset` (default `latest`).
    pub offset_reset: OffsetReset,
    /// Longest a fetch waits for `min_bytes` (default 500 ms).
    pub max_wait: Duration,
    pub min_bytes: u32,
    /// Per request (default 50 MiB) and per partition (default 1 MiB).
    pub max_bytes: u32,
    pub max_partition_bytes: u32,
    /// Most records one `poll` returns (default 500); the rest wait in the
    /// consumer for the next poll.
    pub max_poll_records: usize,
    /// `isolation.level` (default read_uncommitted, as in Kafka):
    /// read_committed reads only up to the last stable offset and drops
    /// the records of aborted transactions.
    pub isolation: IsolationLevel,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            offset_reset: OffsetReset::Latest,
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 << 20,
            max_partition_bytes: 1 << 20,
            max_poll_records: 500,
            isolation: IsolationLevel::ReadUncommitted,
        }
    }
}

/// The pause before fetching again after a partition answered with a
/// retriable error (a leader moving): Kafka's `retry.backoff.ms` default.
pub(super) const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// What a call does when the broker answers with a retriable error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retriable {
    /// Return it (a caller that needs the answer now).
    Fail,
    /// Leave the work for the next poll.
    Later,
}

/// Where a partition will be read next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    At(u64),
    Reset(OffsetReset),
    Time(i64),
}

pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    positions: BTreeMap<TopicPartition, Position>,
    paused: BTreeSet<TopicPartition>,
    buffered: VecDeque<ConsumerRecord>,
    group: Option<Membership>,
    listener: Option<Box<dyn RebalanceListener>>,
    last_commit: Instant,
    /// Each partition's end as the last fetch reported it (the last
    /// stable offset under read_committed, else the high watermark).
    ends: BTreeMap<TopicPartition, u64>,
    /// The next fetch, sent while the caller works through the records of
    /// the last one (see `fetch`).
    ahead: Option<FetchAhead>,
}

/// A fetch sent ahead: the partitions and offsets it asked for, and its
/// answer to come. Its answer is taken only if the next fetch would ask
/// for exactly the same (no seek, pause, or assignment change since):
/// then it is the answer that fetch would have had, only earlier.
struct FetchAhead {
    asked: Vec<FetchTopic>,
    answer: tokio::task::JoinHandle<Result<FetchResponse>>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(ahead) = self.ahead.take() {
            ahead.answer.abort();
        }
    }
}

impl Consumer {
    pub(super) fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            config,
            positions: BTreeMap::new(),
            paused: BTreeSet::new(),
            buffered: VecDeque::new(),
            group: None,
            listener: None,
            last_commit: Instant::now(),
            ends: BTreeMap::new(),
            ahead: None,
        }
    }

    /// How many records of `tp` lie past what this consumer has fetched,
    /// as of its last fetch of it (Kafka's `currentLag`); `None` before
    /// one, or for a partition not assigned.
    pub fn lag(&self, tp: &TopicPartition) -> Option<u64> {
        let Some(Position::At(position)) = self.positions.get(tp) else {
            return None;
        };
        Some(self.ends.get(tp)?.saturating_sub(*position))
    }

    /// Reads exactly these partitions from now on. Partitions kept from the
    /// previous assignment keep their positions; new ones start per the
    /// offset-reset policy until sought.
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let wanted: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        self.positions.retain(|tp, _| wanted.contains(tp));
        self.paused.retain(|tp| wanted.contains(tp));
        self.ends.retain(|tp, _| wanted.contains(tp));
        self.buffered
            .retain(|r| wanted.contains(&TopicPartition::new(&*r.topic, r.partition)));
        for tp in wanted {
            self.positions
                .entry(tp)
                .or_insert(Position::Reset(self.config.offset_reset));
        }
    }

    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    /// Reads `tp` from `offset` next.
    pub fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<()> {
        self.set_position(tp, Position::At(offset))
    }

    pub fn seek_to_beginning(&mut self, tp: &TopicPartition) -> Result<()> {
        self.set_position(tp, Position::Reset(OffsetReset::Earliest))
    }

    pub fn seek_to_end(&mut self, tp: &TopicPartition) -> Result<()> {
        self.set_position(tp, Position::Reset(OffsetReset::Latest))
    }

    /// Reads `tp` from the first record at or after `timestamp` (ms).
    pub fn seek_to_time(&mut self, tp: &TopicPartition, timestamp: i64) -> Result<()> {
        self.set_position(tp, Position::Time(timestamp))
    }

    fn set_position(&mut self, tp: &TopicPartition, position: Position) -> Result<()> {
        let slot = self.positions.get_mut(tp).ok_or_else(|| {
            ClientError::InvalidRequest(format!("{}/{} is not assigned", tp.topic, tp.partition))
        })?;
        *slot = position;
        self.buffered
            .retain(|r| *r.topic != *tp.topic || r.partition != tp.partition);
        Ok(())
    }

    /// The offset of the next record `poll` will return from `tp` (as
    /// Kafka's `position`): the first record fetched but not returned yet,
    /// else where the next fetch starts (past any transaction markers).
    /// Resolves a pending reset first.
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<u64> {
        self.resolve_positions(Retriable::Fail).await?;
        self.consumed_position(tp).ok_or_else(|| {
            ClientError::InvalidRequest(format!("{}/{} is not assigned", tp.topic, tp.partition))
        })
    }

    pub fn pause(&mut self, tp: &TopicPartition) {
        if self.positions.contains_key(tp) {
            self.paused.insert(tp.clone());
        }
    }

    pub fn resume(&mut self, tp: &TopicPartition) {
        self.paused.remove(tp);
    }

    /// Returns the next records of the unpaused assigned partitions, waiting
    /// up to `timeout` for some to arrive. Records of one partition come in
    /// offset order; an empty result means nothing arrived in time.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if self.group.as_ref().is_some_and(Membership::needs_rejoin) {
            self.rebalance().await?;
        }
        self.maybe_auto_commit().await?;
        if self.buffered.is_empty() {
            self.resolve_positions(Retriable::Later).await?;
            self.fetch(timeout).await?;
        }
        let n = self.buffered.len().min(self.config.max_poll_records);
        Ok(self.buffered.drain(..n).collect())
    }

    /// Turns resets and time seeks into offsets with one ListOffsets request.
    async fn resolve_positions(&mut self, retriable: Retriable) -> Result<()> {
        let unresolved: Vec<(TopicPartition, Position)> = self
            .positions
            .iter()
            .filter(|(_, p)| !matches!(p, Position::At(_)))
            .map(|(tp, p)| (tp.clone(), *p))
            .collect();
        if unresolved.is_empty() {
            return Ok(());
        }
        let mut topics: Vec<ListOffsetsTopic> = Vec::new();
        for (tp, position) in &unresolved {
            let (spec, timestamp) = match position {
                Position::Reset(OffsetReset::Earliest) => (OffsetSpec::Earliest, 0),
                Position::Reset(OffsetReset::Latest) => (OffsetSpec::Latest, 0),
                Position::Reset(OffsetReset::None) => {
                    return Err(ClientError::InvalidRequest(format!(
                        "{}/{} has no position and the offset-reset policy is none",
                        tp.topic, tp.partition
                    )))
                }
                Position::Time(ts) => (OffsetSpec::Timestamp, *ts),
                Position::At(_) => unreachable!("filtered above"),
            };
            let entry = ListOffsetsPartition {
                partition: tp.partition,
                spec: spec as i32,
                timestamp,
            };
            match topics.iter_mut().find(|t| t.name == tp.topic) {
                Some(topic) => topic.partitions.push(entry),
                None => topics.push(ListOffsetsTopic {
                    name: tp.topic.clone(),
                    partitions: vec![entry],
                }),
            }
        }
        let request = ListOffsetsRequest {
            topics,
            isolation_level: self.config.isolation as i32,
        };
        let response = match self.client.list_offsets(request).await {
            Ok(response) => response,
            // As in `fetch`: the positions stay unresolved until a later
            // poll reaches the new leader.
            Err(e) if e.is_retriable() && retriable == Retriable::Later => {
                tracing::debug!(error = %e, "resolving positions will retry");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for topic in response.topics {
            for p in topic.partitions {
                if let Some(e) = ClientError::from_code(p.error, &p.message) {
                    // A leader moving: the position stays unresolved and the
                    // next poll asks the new leader.
                    if e.is_retriable() {
                        continue;
                    }
                    return Err(e);
                }
                self.positions.insert(
                    TopicPartition::new(topic.name.clone(), p.partition),
                    Position::At(p.offset),
                );
            }
        }
        Ok(())
    }

    async fn fetch(&mut self, timeout: Duration) -> Result<()> {
        let Some(request) = self.fetch_request(timeout) else {
            tokio::time::sleep(timeout).await;
            return Ok(());
        };
        let answer = match &mut self.ahead {
            // Awaited where it is kept: a poll cancelled meanwhile (callers
            // poll inside `select!`) leaves it for the next.
            Some(ahead) if ahead.asked == request.topics => {
                match tokio::time::timeout(timeout, &mut ahead.answer).await {
                    Ok(joined) => {
                        self.ahead = None;
                        match joined {
                            Ok(answer) => answer,
                            // The task was cancelled or panicked: ask again.
                            Err(_) => self.client.fetch(request).await,
                        }
                    }
                    // Still on its way: it is kept for the next poll.
                    Err(_) => return Ok(()),
                }
            }
            _ => {
                if let Some(stale) = self.ahead.take() {
                    stale.answer.abort();
                }
                self.client.fetch(request).await
            }
        };
        let response = match answer {
            Ok(response) => response,
            // A leader's broker gone or slow (the client forgot its route
            // and asks the metadata again): as Kafka's consumer, poll
            // again after a pause rather than fail the poll, so a failover
            // costs latency, not an error.
            Err(e) if e.is_retriable() => {
                tracing::debug!(error = %e, "fetch will retry");
                tokio::time::sleep(RETRY_BACKOFF.min(timeout)).await;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let buffered_before = self.buffered.len();
        self.take_response(response, timeout).await?;
        if self.buffered.len() > buffered_before {
            self.send_ahead(timeout);
        }
        Ok(())
    }

    /// The fetch of every unpaused partition with a position; `None` when
    /// there is nothing to fetch.
    fn fetch_request(&self, timeout: Duration) -> Option<FetchRequest> {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (tp, position) in &self.positions {
            let (Position::At(offset), false) = (position, self.paused.contains(tp)) else {
                continue;
            };
            let entry = FetchPartition {
                partition: tp.partition,
                offset: *offset,
                max_bytes: self.config.max_partition_bytes,
            };
            match topics.iter_mut().find(|t| t.name == tp.topic) {
                Some(topic) => topic.partitions.push(entry),
                None => topics.push(FetchTopic {
                    name: tp.topic.clone(),
                    partitions: vec![entry],
                }),
            }
        }
        if topics.is_empty() {
            return None;
        }
        let request = FetchRequest {
            max_wait_ms: timeout.min(self.config.max_wait).as_millis() as u32,
            min_bytes: self.config.min_bytes,
            max_bytes: self.config.max_bytes,
            topics,
            isolation_level: self.config.isolation as i32,
        };
        Some(request)
    }

    /// Sends the next fetch now, from the positions the last one moved
    /// to, as Kafka's consumer does: the broker reads and sends while the
    /// caller works through what it has. Only after a fetch that brought
    /// records: an idle consumer keeps one long poll at a time.
    fn send_ahead(&mut self, timeout: Duration) {
        let Some(request) = self.fetch_request(timeout) else {
            return;
        };
        let asked = request.topics.clone();
        let client = self.client.clone();
        let answer = tokio::spawn(async move { client.fetch(request).await });
        self.ahead = Some(FetchAhead { asked, answer });
    }

    /// Takes a fetch's answer: each partition's records into the buffer
    /// and its position past them, or its error handled.
    async fn take_response(&mut self, response: FetchResponse, timeout: Duration) -> Result<()> {
        let mut retry = false;
        for topic in response.topics {
            for p in topic.partitions {
                let tp = TopicPartition::new(topic.name.clone(), p.partition);
                if p.error == ErrorCode::OffsetOutOfRange as i32
                    && self.config.offset_reset != OffsetReset::None
                {
                    tracing::info!(topic = %tp.topic, partition = tp.partition, "offset out of range; resetting");
                    self.positions
                        .insert(tp, Position::Reset(self.config.offset_reset));
                    continue;
                }
                if let Some(e) = ClientError::from_code(p.error, &p.message) {
                    // A broker that does not know the partition is behind
                    // on the metadata (it restarted), as Kafka's consumer
                    // takes it: like a leader moving, it is retried.
                    if !e.is_retriable() && e.code() != ErrorCode::UnknownTopicOrPartition {
                        return Err(e);
                    }
                    // A leader moving (the client refreshes its metadata):
                    // read the partition again next round.
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, error = %e, "fetch will retry");
                    retry = true;
                    continue;
                }
                let end = match self.config.isolation {
                    IsolationLevel::ReadCommitted => p.last_stable_offset,
                    IsolationLevel::ReadUncommitted => p.high_watermark,
                };
                self.ends.insert(tp.clone(), end);
                self.take_records(tp, &p.records, p.aborted_transactions)?;
            }
        }
        if retry {
            tokio::time::sleep(RETRY_BACKOFF.min(timeout)).await;
        }
        Ok(())
    }

    /// Decodes fetched batches, skipping records before the position,
    /// control batches and the batches of `aborted` transactions, and
    /// advances the position past the last batch.
    fn take_records(
        &mut self,
        tp: TopicPartition,
        bytes: &bytes::Bytes,
        aborted: Vec<AbortedTransaction>,
    ) -> Result<()> {
        let Some(Position::At(mut position)) = self.positions.get(&tp).copied() else {
            return Ok(());
        };
        let mut aborted = AbortedFilter::new(aborted);
        let topic: std::sync::Arc<str> = tp.topic.as_str().into();
        for batch in BatchIter::new(bytes) {
            let batch = batch?;
            batch.validate()?;
            if aborted.keeps(&batch) {
                for record in batch.records()?.iter() {
                    let record = record?;
                    if record.offset < position {
                        continue;
                    }
                    self.buffered.push_back(ConsumerRecord {
                        topic: std::sync::Arc::clone(&topic),
                        partition: tp.partition,
                        offset: record.offset,
                        timestamp: record.timestamp,
                        key: record.key.map(|k| slice_or_copy(bytes, k)),
                        value: record.value.map(|v| slice_or_copy(bytes, v)),
                        headers: record
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    String::from_utf8_lossy(h.key).into_owned(),
                                    h.value.map(|v| slice_or_copy(bytes, v)),
                                )
                            })
                            .collect(),
                    });
                }
            }
            position = position.max(batch.next_offset());
        }
        self.positions.insert(tp, Position::At(position));
        Ok(())
    }
}

/// A zero-copy slice when `part` lies inside `whole` (uncompressed batches),
/// a copy otherwise (records decompressed into a temporary buffer).
fn slice_or_copy(whole: &bytes::Bytes, part: &[u8]) -> bytes::Bytes {
    let start = whole.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    if at >= start && at + part.len() <= start + whole.len() {
        whole.slice_ref(part)
    } else {
        bytes::Bytes::copy_from_slice(part)
    }
}
