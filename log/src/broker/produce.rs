//! Produce: append each partition's batches, then acknowledge per `acks`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Broker, Partition};
use crate::producers::BatchOffsets;
use crate::proto::{
    Acks, ProducePartitionResult, ProduceRequest, ProduceResponse, ProduceTopicResult,
};
use crate::record::BatchIter;
use crate::replication::AnswerWhen;
use crate::{LogError, Result};

impl Broker {
    /// Appends every partition's batches. Each partition succeeds or fails on
    /// its own; a failed partition appends nothing. With `acks=all` the
    /// response waits until every appended partition is synced to disk.
    pub async fn produce(&self, request: ProduceRequest) -> ProduceResponse {
        let Ok(acks) = Acks::try_from(request.acks) else {
            // An unknown acks value must not silently become a weaker one.
            let e = LogError::InvalidRequest(format!("unknown acks value {}", request.acks));
            let topics = request
                .topics
                .into_iter()
                .map(|t| ProduceTopicResult {
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| error_result(p.partition, &e))
                        .collect(),
                    name: t.name,
                })
                .collect();
            return ProduceResponse { topics };
        };
        // Appends touch files and may wait for a background fsync (with a
        // flush.bytes policy), so they run on the blocking pool, one hop
        // per request, in request order.
        let resolved: Vec<(String, u32, Bytes, Result<Arc<Partition>>)> = request
            .topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name;
                t.partitions
                    .into_iter()
                    .map(move |p| (name.clone(), p.partition, p.records))
            })
            .map(|(topic, index, records)| {
                let partition = self.partition(&topic, index);
                (topic, index, records, partition)
            })
            .collect();
        // Replicated partitions go through Raft (async, answered once
        // committed); the others are appended locally.
        let (replicated, local): (Vec<_>, Vec<_>) = resolved
            .into_iter()
            .partition(|(_, _, _, p)| matches!(p, Ok(p) if p.replica().is_some()));
        let timeout = produce_timeout(request.timeout_ms);
        let committed = futures::future::join_all(replicated.into_iter().map(
            |(topic, index, records, partition)| async move {
                let outcome = match partition {
                    Ok(p) => append_replicated(&p, records, acks, timeout)
                        .await
                        .map(|placed| (p, placed)),
                    Err(e) => Err(e),
                };
                (topic, index, outcome)
            },
        ));
        let appended_locally = tokio::task::spawn_blocking(move || {
            local
                .into_iter()
                .map(|(topic, index, records, partition)| {
                    let outcome =
                        partition.and_then(|p| append(&p, &records).map(|placed| (p, placed)));
                    (topic, index, outcome)
                })
                .collect::<Vec<_>>()
        });
        let (committed, appended_locally) = futures::join!(committed, appended_locally);
        let mut appended = appended_locally.unwrap_or_default();
        appended.extend(committed);
        let mut to_sync: Vec<Arc<Partition>> = Vec::new();
        let mut topics: Vec<ProduceTopicResult> = Vec::new();
        for (topic, index, outcome) in appended {
            let result = match outcome {
                Ok((partition, placed)) => {
                    let log_start_offset = partition.log.log_start_offset();
                    let needs_sync = acks == Acks::All && partition.replica().is_none();
                    if needs_sync && !to_sync.iter().any(|p| Arc::ptr_eq(p, &partition)) {
                        to_sync.push(partition);
                    }
                    ProducePartitionResult {
                        partition: index,
                        base_offset: placed.first().map_or(0, |p| p.base),
                        log_start_offset,
                        batch_base_offsets: match placed.len() {
                            1 => Vec::new(),
                            _ => placed.iter().map(|p| p.base).collect(),
                        },
                        ..Default::default()
                    }
                }
                Err(e) => error_result(index, &e),
            };
            match topics.iter_mut().find(|t| t.name == topic) {
                Some(t) => t.partitions.push(result),
                None => topics.push(ProduceTopicResult {
                    name: topic,
                    partitions: vec![result],
                }),
            }
        }
        if let Err(failures) = sync_all(to_sync).await {
            for topic in &mut topics {
                for result in &mut topic.partitions {
                    if let Some((_, e)) = failures
                        .iter()
                        .find(|(p, _)| p.topic == topic.name && p.index == result.partition)
                    {
                        *result = error_result(result.partition, e);
                    }
                }
            }
        }
        ProduceResponse { topics }
    }
}

/// Appends one partition's batches (but those of idempotent producers it
/// holds already), wakes the fetches waiting on it and says where each
/// batch is.
fn append(partition: &Partition, records: &[u8]) -> Result<Vec<BatchOffsets>> {
    let producers = partition.local_producers().ok_or_else(|| {
        LogError::InvalidRequest("a local append on a replicated partition".into())
    })?;
    let placed = producers.append(&partition.log, records)?;
    partition.notify_appended();
    Ok(placed)
}

/// How long a replicated produce waits for its commit when the request
/// names no timeout: Kafka's `request.timeout.ms` default.
const DEFAULT_PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);

fn produce_timeout(timeout_ms: u32) -> Duration {
    match timeout_ms {
        0 => DEFAULT_PRODUCE_TIMEOUT,
        ms => Duration::from_millis(ms.into()),
    }
}

/// Proposes each batch of a replicated partition as one Raft entry and
/// waits until all are committed (`acks=all`: on disk on a majority) or
/// in the leader's log (`acks=leader`, and `acks=none`, whose producer
/// does not wait for the answer anyway).
async fn append_replicated(
    partition: &Partition,
    records: Bytes,
    acks: Acks,
    timeout: Duration,
) -> Result<Vec<BatchOffsets>> {
    let replica = partition
        .replica()
        .expect("only replicated partitions come here");
    let mut batches = Vec::new();
    let mut position = 0usize;
    for batch in BatchIter::new(&records) {
        let size = batch?.size();
        batches.push(records.slice(position..position + size));
        position += size;
    }
    let answer = match acks {
        Acks::All => AnswerWhen::Committed,
        Acks::Leader | Acks::None => AnswerWhen::LeaderAppended,
    };
    replica.append_batches(batches, answer, timeout).await
}

/// Syncs each partition on the blocking pool; returns the ones that failed.
async fn sync_all(
    partitions: Vec<Arc<Partition>>,
) -> std::result::Result<(), Vec<(Arc<Partition>, LogError)>> {
    let syncs = partitions.into_iter().map(|partition| async move {
        let log = Arc::clone(&partition.log);
        let outcome = tokio::task::spawn_blocking(move || log.flush())
            .await
            .unwrap_or_else(|e| Err(LogError::InvalidRequest(format!("flush task failed: {e}"))));
        (partition, outcome)
    });
    let failures: Vec<_> = futures::future::join_all(syncs)
        .await
        .into_iter()
        .filter_map(|(partition, outcome)| outcome.err().map(|e| (partition, e)))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

pub(super) fn error_result(partition: u32, error: &LogError) -> ProducePartitionResult {
    ProducePartitionResult {
        partition,
        error: error.code() as i32,
        message: error.to_string(),
        ..Default::default()
    }
}
