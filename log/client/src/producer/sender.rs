//! The sender task: takes ready batches from the accumulator, sends them in
//! one request per round (several partitions each: one batch of each
//! partition when pipelined, else all its ready batches), keeps at most
//! `max_in_flight` requests
//! outstanding, and retries retriable failures. Requests are sent in
//! order (`Client::produce_in_order`) from the sender's own loop, and
//! answered in tasks of their own. An idempotent producer first asks the
//! broker for its identity; a retry resends the same bytes (the same
//! sequence numbers), which the broker appends at most once.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rustc_hash::FxHashMap;
use tokio::task::JoinSet;

use super::accumulator::{ProducerIdentity, ReadyBatch, ReadyRequest};
use super::ack::{BatchAck, BatchHandle, Outcome};
use super::{ProducerConfig, Shared};
use crate::{ClientError, PendingProduce};
use spool_protocol::proto::{
    Acks, AddPartitionsToTxnRequest, ErrorCode, InitProducerIdRequest, ProducePartition,
    ProduceRequest, ProduceTopic, TxnTopic,
};

/// Runs until the last producer handle is gone and every batch is answered.
pub(super) async fn run(shared: Arc<Shared>) {
    let max_in_flight = shared.config.max_in_flight.max(1);
    let mut in_flight = JoinSet::new();
    loop {
        if needs_identity(&shared) {
            learn_identity(&shared).await;
        }
        let to_add = shared.accumulator.lock().partitions_to_add();
        if shared.config.transactional_id.is_some() && !to_add.is_empty() {
            add_to_transaction(&shared, to_add).await;
        }
        let (ready, deadline, finished) = {
            let mut accumulator = shared.accumulator.lock();
            let everything = accumulator.flushes > 0 || accumulator.closed;
            let ready = match in_flight.len() < max_in_flight {
                true => accumulator.take_ready(Instant::now(), everything, &shared.config),
                false => None,
            };
            // With every slot taken, only an answer can make progress: no
            // timer, or the loop would spin on a past deadline.
            let slots_left = in_flight.len() + usize::from(ready.is_some()) < max_in_flight;
            let deadline = slots_left
                .then(|| accumulator.next_deadline(&shared.config))
                .flatten();
            let finished = accumulator.closed && accumulator.is_empty() && ready.is_none();
            (ready, deadline, finished)
        };
        if finished && in_flight.is_empty() {
            return;
        }
        if let Some(ready) = ready {
            // Sent here, one request after the other, so that they reach
            // each partition's leader in the order their batches were
            // taken; each is answered in a task of its own.
            let ticket = ready.ticket;
            let pending = sendings(&shared, ready);
            let request = build_request(&pending, &shared.config);
            let sent = send_in_order(&shared, request).await;
            in_flight.spawn(complete_request(Arc::clone(&shared), ticket, pending, sent));
            continue;
        }
        tokio::select! {
            _ = shared.wake_sender.notified() => {}
            _ = sleep_until(deadline) => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
    }
}

/// Whether batches wait for a producer identity (a transactional
/// producer's comes from `init_transactions`).
fn needs_identity(shared: &Shared) -> bool {
    let accumulator = shared.accumulator.lock();
    accumulator.idempotent
        && !accumulator.transactional
        && accumulator.identity.is_none()
        && !accumulator.is_empty()
}

/// Adds partitions to the open transaction before their first batches
/// go out (AddPartitionsToTxn, retried as a produce is). If the
/// coordinator refuses, their batches fail and the transaction can only
/// be aborted.
async fn add_to_transaction(shared: &Shared, partitions: Vec<(Arc<str>, u32)>) {
    let Some(identity) = shared.accumulator.lock().identity else {
        return;
    };
    let mut topics: Vec<TxnTopic> = Vec::new();
    for (topic, partition) in &partitions {
        match topics.iter_mut().find(|t| *t.name == **topic) {
            Some(t) => t.partitions.push(*partition),
            None => topics.push(TxnTopic {
                name: topic.to_string(),
                partitions: vec![*partition],
            }),
        }
    }
    let request = AddPartitionsToTxnRequest {
        transactional_id: shared.config.transactional_id.clone().unwrap_or_default(),
        producer_id: identity.id,
        producer_epoch: i32::from(identity.epoch),
        topics,
    };
    let config = &shared.config;
    let mut retry = RetryBudget::new();
    let failure = loop {
        let asked = shared.client.add_partitions_to_txn(request.clone());
        let answer = tokio::time::timeout(config.request_timeout, asked)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Timeout(format!(
                    "no AddPartitionsToTxn answer within {:?}",
                    config.request_timeout
                )))
            })
            .and_then(|r| ClientError::from_code(r.error, &r.message).map_or(Ok(()), Err));
        match answer {
            Ok(()) => {
                shared.accumulator.lock().added_to_transaction(&partitions);
                return;
            }
            // The coordinator checks each partition against its metadata,
            // which lags after it restarts: an unknown partition there is
            // retried as a produce's is.
            Err(e) if retriable_answer(&e) && retry.allows(config) => retry.wait(config).await,
            Err(e) => break e,
        }
    };
    let reason = format!("partitions not added to the transaction: {failure}");
    let mut accumulator = shared.accumulator.lock();
    accumulator.transaction_failure = Some(reason.clone());
    accumulator.fail_open(|| Outcome::Unreachable {
        reason: reason.clone(),
    });
}

/// Asks the broker for a producer id (retrying retriable failures as a
/// produce would); if none comes, fails the waiting batches with the
/// reason rather than sending them without idempotence.
async fn learn_identity(shared: &Shared) {
    let config = &shared.config;
    let mut retry = RetryBudget::new();
    let failure = loop {
        let answer = shared
            .client
            .init_producer_id(InitProducerIdRequest::default())
            .await
            .and_then(|r| match ClientError::from_code(r.error, &r.message) {
                Some(e) => Err(e),
                None => Ok(r),
            });
        match answer {
            Ok(r) => match i16::try_from(r.producer_epoch) {
                Ok(epoch) => {
                    shared.accumulator.lock().identity = Some(ProducerIdentity {
                        id: r.producer_id,
                        epoch,
                    });
                    return;
                }
                Err(_) => break format!("the broker gave epoch {}", r.producer_epoch),
            },
            Err(e) if e.is_retriable() && retry.allows(config) => retry.wait(config).await,
            Err(e) => break e.to_string(),
        }
    };
    let reason = format!("no producer id for idempotence: {failure}");
    shared
        .accumulator
        .lock()
        .fail_open(|| Outcome::Unreachable {
            reason: reason.clone(),
        });
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// One partition's batches on their way, in order (their topic and
/// partition are their acknowledgements'), with what forgets them in the
/// accumulator once they are answered. They succeed, fail or are retried
/// together: the broker appends a partition's part of a request as a
/// whole.
struct Sending {
    bytes: Bytes,
    /// Each batch's handle and record count, oldest first.
    batches: Vec<(BatchHandle, u32)>,
    /// The identity the batches' sequence numbers belong to.
    producer: Option<ProducerIdentity>,
    _done: Done,
}

/// A request's batches, one [`Sending`] per partition.
fn sendings(shared: &Arc<Shared>, ready: ReadyRequest) -> Vec<Sending> {
    let ticket = ready.ticket;
    ready
        .groups
        .into_iter()
        .filter_map(|group| Sending::new(shared, ticket, group))
        .collect()
}

impl Sending {
    fn new(shared: &Arc<Shared>, ticket: u64, group: Vec<ReadyBatch>) -> Option<Sending> {
        let first = group.first()?;
        let producer = first.producer;
        let done = Done {
            shared: Arc::clone(shared),
            batch: Arc::clone(&first.handle.ack),
            ticket,
        };
        let mut bytes = Vec::new();
        let mut batches = Vec::with_capacity(group.len());
        for batch in group {
            match bytes.is_empty() {
                true => bytes = batch.bytes,
                false => bytes.extend_from_slice(&batch.bytes),
            }
            batches.push((batch.handle, batch.records));
        }
        Some(Sending {
            bytes: Bytes::from(bytes),
            batches,
            producer,
            _done: done,
        })
    }

    fn topic(&self) -> &str {
        self.batches[0].0.ack.topic()
    }

    fn partition(&self) -> u32 {
        self.batches[0].0.ack.partition()
    }

    /// Whether request `ticket`, carrying these batches, is the oldest in
    /// flight for their partition.
    fn is_oldest(&self, shared: &Shared, ticket: u64) -> bool {
        let accumulator = shared.accumulator.lock();
        accumulator.is_oldest(self.topic(), self.partition(), ticket)
    }

    /// Completes every batch as appended: at `each` (the broker's base
    /// offset of every batch) when it names them all, else the first at
    /// `base` and each next one right after the previous one's records
    /// (the broker appends a partition's batches of one request together,
    /// in order).
    fn appended(&self, base: Option<u64>, each: &[u64]) {
        if each.len() == self.batches.len() {
            for ((handle, _), offset) in self.batches.iter().zip(each) {
                handle.ack.complete(Outcome::Appended(Some(*offset)));
            }
            return;
        }
        let mut next = base;
        for (handle, records) in &self.batches {
            handle.ack.complete(Outcome::Appended(next));
            next = next.map(|offset| offset + u64::from(*records));
        }
    }

    /// Completes every batch with the same failure. The broker may hold
    /// them or not, so an idempotent producer's sequence numbers restart
    /// under a new identity.
    fn failed(&self, shared: &Shared, outcome: impl Fn() -> Outcome) {
        if let Some(producer) = self.producer {
            shared.accumulator.lock().reset_identity(producer);
        }
        for (handle, _) in &self.batches {
            handle.ack.complete(outcome());
        }
    }
}

/// Forgets a partition's batches of a request in the accumulator when
/// they are over, however that ended (a panicking task included): the
/// partition's next batches and retries must go on.
struct Done {
    shared: Arc<Shared>,
    batch: Arc<BatchAck>,
    ticket: u64,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.shared.accumulator.lock().finished(
            self.batch.topic(),
            self.batch.partition(),
            self.ticket,
        );
        self.shared.answered.notify_waiters();
        self.shared.wake_sender.notify_one();
    }
}

/// Waits for the answer to request `ticket` (already `sent`), retrying
/// retriable failures in order, and sets every batch's outcome.
async fn complete_request(
    shared: Arc<Shared>,
    ticket: u64,
    mut pending: Vec<Sending>,
    sent: crate::Result<PendingProduce>,
) {
    let config = &shared.config;
    let mut budget = RetryBudget::new();
    let mut sent = Some(sent);
    while !pending.is_empty() {
        let answer = match sent.take() {
            Some(sent) => sent,
            None => resend(&shared, ticket, &pending).await,
        };
        if config.acks == Acks::None {
            // No offset and no error is reported, but the records resolve
            // only once the request is over: `flush`, which waits for them,
            // then means "delivered", and dropping the producer after it
            // loses nothing.
            if let Ok(answer) = answer {
                let _ = answer.await;
            }
            for sending in &pending {
                sending.appended(None, &[]);
            }
            return;
        }
        let answer = match answer {
            Ok(answer) => tokio::time::timeout(config.request_timeout, answer)
                .await
                .unwrap_or_else(|_| {
                    Err(ClientError::Timeout(format!(
                        "no produce response within {:?}",
                        config.request_timeout
                    )))
                }),
            Err(e) => Err(e),
        };
        let retry = match answer {
            Ok(response) => settle(&shared, ticket, &mut budget, pending, &response),
            Err(e) if e.is_retriable() && budget.allows(config) => std::mem::take(&mut pending),
            Err(e) => {
                let reason = e.to_string();
                for sending in pending.drain(..) {
                    sending.failed(&shared, || Outcome::Unreachable {
                        reason: reason.clone(),
                    });
                }
                Vec::new()
            }
        };
        if retry.is_empty() {
            return;
        }
        tracing::debug!(
            attempt = budget.attempts + 1,
            partitions = retry.len(),
            "retrying produce"
        );
        {
            let mut accumulator = shared.accumulator.lock();
            for sending in &retry {
                accumulator.set_retrying(sending.topic(), sending.partition(), ticket, true);
            }
        }
        budget.wait(config).await;
        pending = retry;
    }
}

/// Sets the outcome of each partition's batches from `response`; returns
/// those to send again.
fn settle(
    shared: &Shared,
    ticket: u64,
    budget: &mut RetryBudget,
    pending: Vec<Sending>,
    response: &spool_protocol::proto::ProduceResponse,
) -> Vec<Sending> {
    let config = &shared.config;
    let mut results: FxHashMap<(&str, u32), PartitionAnswer<'_>> = FxHashMap::default();
    for topic in &response.topics {
        for p in &topic.partitions {
            let result = (
                p.error,
                p.message.as_str(),
                p.base_offset,
                p.batch_base_offsets.as_slice(),
            );
            results.insert((topic.name.as_str(), p.partition), result);
        }
    }
    let mut retry = Vec::new();
    for sending in pending {
        let (code, message, base, each) = results
            .get(&(sending.topic(), sending.partition()))
            .copied()
            .unwrap_or((
                ErrorCode::Unknown as i32,
                "no result for the partition",
                0,
                &[],
            ));
        match ClientError::from_code(code, message) {
            None => {
                sending.appended(Some(base), each);
                if let Some(producer) = sending.producer {
                    let mut accumulator = shared.accumulator.lock();
                    accumulator.confirmed(sending.topic(), sending.partition(), producer);
                }
            }
            Some(e) if retriable_answer(&e) && budget.allows(config) => retry.push(sending),
            // An earlier request of the partition failed or is being
            // retried, so this one's sequence came too early: it goes
            // again after it.
            Some(e)
                if e.code() == ErrorCode::OutOfOrderSequence
                    && !sending.is_oldest(shared, ticket)
                    && budget.allows(config) =>
            {
                retry.push(sending)
            }
            Some(e) => sending.failed(shared, || Outcome::Refused {
                code: e.code(),
                message: message.to_string(),
            }),
        }
    }
    retry
}

/// Sends `pending` again once it is the oldest request in flight of each
/// of its partitions (so that it reaches their logs before any later
/// request's batches), then unmutes them.
async fn resend(
    shared: &Shared,
    ticket: u64,
    pending: &[Sending],
) -> crate::Result<PendingProduce> {
    loop {
        let answered = shared.answered.notified();
        let oldest = pending.iter().all(|s| s.is_oldest(shared, ticket));
        if oldest {
            break;
        }
        answered.await;
    }
    let sent = send_in_order(shared, build_request(pending, &shared.config)).await;
    {
        let mut accumulator = shared.accumulator.lock();
        for sending in pending {
            accumulator.set_retrying(sending.topic(), sending.partition(), ticket, false);
        }
    }
    shared.wake_sender.notify_one();
    sent
}

/// Sends `request` in order, for at most the request timeout: a
/// transport that sends by waiting for the answer (the trait's default)
/// must not hold the sender, and with it every partition, for good.
///
/// Without idempotence a request goes as a unary `Produce` of its own:
/// such a partition has one request in flight anyway, and on a stream a
/// request failed with the stream (a slow one ahead of it timed out)
/// could still be appended, then appended again by its retry.
async fn send_in_order(shared: &Shared, request: ProduceRequest) -> crate::Result<PendingProduce> {
    if !shared.config.is_idempotent() {
        let client = shared.client.clone();
        return Ok(Box::pin(async move { client.produce(request).await }));
    }
    let timeout = shared.config.request_timeout;
    let sending = shared.client.produce_in_order(request);
    tokio::time::timeout(timeout, sending)
        .await
        .unwrap_or_else(|_| {
            Err(ClientError::Timeout(format!(
                "the produce request was not sent in order within {timeout:?}"
            )))
        })
}

/// Whether a partition's refusal is worth sending again. Besides the
/// retriable codes, `UNKNOWN_TOPIC_OR_PARTITION`: the producer only sends
/// to partitions the metadata showed it, so the broker that answers so is
/// behind (restarted, and still reading the metadata), as Kafka's client
/// takes it (an invalid-metadata error: refresh, and retry). A topic
/// deleted meanwhile fails once the delivery timeout runs out.
fn retriable_answer(error: &ClientError) -> bool {
    error.is_retriable() || error.code() == ErrorCode::UnknownTopicOrPartition
}

/// A partition's answer: error code, message, base offset, and each
/// batch's base offset when the broker names them.
type PartitionAnswer<'a> = (i32, &'a str, u64, &'a [u64]);

fn build_request(pending: &[Sending], config: &ProducerConfig) -> ProduceRequest {
    let mut topics: Vec<ProduceTopic> = Vec::new();
    for sending in pending {
        let partition = ProducePartition {
            partition: sending.partition(),
            records: sending.bytes.clone(),
        };
        match topics.iter_mut().find(|t| t.name == sending.topic()) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(ProduceTopic {
                name: sending.topic().to_string(),
                partitions: vec![partition],
            }),
        }
    }
    ProduceRequest {
        transactional_id: config.transactional_id.clone().unwrap_or_default(),
        acks: config.acks as i32,
        timeout_ms: u32::try_from(config.request_timeout.as_millis()).unwrap_or(u32::MAX),
        topics,
    }
}

/// The retries left to one operation: until `delivery_timeout` from its
/// first try (or `retries` of them), each after a backoff that doubles
/// from `retry_backoff` up to `retry_backoff_max`, as Kafka's producer
/// retries.
struct RetryBudget {
    started: Instant,
    attempts: u32,
}

impl RetryBudget {
    fn new() -> RetryBudget {
        RetryBudget {
            started: Instant::now(),
            attempts: 0,
        }
    }

    /// Whether another retry may start.
    fn allows(&self, config: &ProducerConfig) -> bool {
        self.attempts < config.retries && self.started.elapsed() < config.delivery_timeout
    }

    /// Waits the next backoff, never past the delivery timeout.
    async fn wait(&mut self, config: &ProducerConfig) {
        let doubled = config
            .retry_backoff
            .saturating_mul(1 << self.attempts.min(16));
        let left = config
            .delivery_timeout
            .saturating_sub(self.started.elapsed());
        self.attempts += 1;
        tokio::time::sleep(doubled.min(config.retry_backoff_max).min(left)).await;
    }
}
