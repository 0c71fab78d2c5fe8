//! Fetch (with long polling) and ListOffsets.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Broker, Partition};
use crate::{BrokerError, Result};
use spool_protocol::proto::{
    AbortedTransaction, ErrorCode, FetchPartitionResult, FetchRequest, FetchResponse,
    FetchTopicResult, IsolationLevel, ListOffsetsPartition, ListOffsetsPartitionResult,
    ListOffsetsRequest, ListOffsetsResponse, ListOffsetsTopicResult, OffsetSpec,
};

/// Longest a fetch may wait for data, whatever the client asks: keeps a
/// forgotten request from pinning broker resources.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

/// Default per-partition byte limit when a request leaves it at 0.
const DEFAULT_PARTITION_MAX_BYTES: u32 = 1 << 20;

/// Most bytes one fetch returns, whatever it asks for: well under the gRPC
/// message limit, so a response can always be sent (at least one batch is
/// still returned even if it is larger).
const MAX_FETCH_BYTES: u32 = 64 << 20;

struct Wanted {
    topic: String,
    partition: u32,
    offset: u64,
    max_bytes: u32,
    /// read_committed: stop at the last stable offset.
    committed_only: bool,
    resolved: Result<Arc<Partition>>,
}

impl Broker {
    /// Reads from every requested partition. Returns at once when the reads
    /// hold at least `min_bytes` (or any partition has an error), otherwise
    /// waits until new data arrives or `max_wait_ms` passes, then reads again.
    pub async fn fetch(&self, request: FetchRequest) -> FetchResponse {
        let committed_only = request.isolation_level == IsolationLevel::ReadCommitted as i32;
        let wanted: Vec<Wanted> = request
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| Wanted {
                    topic: t.name.clone(),
                    partition: p.partition,
                    offset: p.offset,
                    max_bytes: if p.max_bytes == 0 {
                        DEFAULT_PARTITION_MAX_BYTES
                    } else {
                        p.max_bytes.min(MAX_FETCH_BYTES)
                    },
                    committed_only,
                    resolved: self.partition(&t.name, p.partition),
                })
            })
            .collect();
        let mut watches: Vec<watch::Receiver<u64>> = wanted
            .iter()
            .filter_map(|w| w.resolved.as_ref().ok().map(|p| p.watch_end()))
            .collect();
        let deadline =
            Instant::now() + Duration::from_millis(request.max_wait_ms.into()).min(MAX_WAIT_CAP);
        let request_max = if request.max_bytes == 0 {
            MAX_FETCH_BYTES
        } else {
            request.max_bytes.min(MAX_FETCH_BYTES)
        } as usize;
        loop {
            // Mark the current ends as seen before reading: an append that
            // lands during the read then wakes the wait below instead of
            // being swallowed.
            for w in &mut watches {
                w.mark_unchanged();
            }
            let (results, bytes, failed) = read_all(&wanted, request_max);
            let satisfied = bytes >= request.min_bytes.max(1) as usize;
            if satisfied || failed || watches.is_empty() || Instant::now() >= deadline {
                return group(results);
            }
            let changed =
                futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            match tokio::time::timeout_at(deadline, changed).await {
                Ok((Ok(()), _, _)) => continue,
                // Timed out, or a partition went away (topic deleted).
                _ => return group(read_all(&wanted, request_max).0),
            }
        }
    }

    /// Resolves offsets: earliest, latest, or the first at or after a time.
    pub fn list_offsets(&self, request: ListOffsetsRequest) -> ListOffsetsResponse {
        let read_committed = request.isolation_level == IsolationLevel::ReadCommitted as i32;
        let topics = request
            .topics
            .into_iter()
            .map(|topic| ListOffsetsTopicResult {
                partitions: topic
                    .partitions
                    .iter()
                    .map(
                        |p| match self.resolve_offset(&topic.name, p, read_committed) {
                            Ok((offset, found)) => ListOffsetsPartitionResult {
                                partition: p.partition,
                                offset,
                                found,
                                ..Default::default()
                            },
                            Err(e) => ListOffsetsPartitionResult {
                                partition: p.partition,
                                ..e.response()
                            },
                        },
                    )
                    .collect(),
                name: topic.name,
            })
            .collect();
        ListOffsetsResponse { topics }
    }

    /// Resolves one partition's offset; a read_committed lookup ends at
    /// the last stable offset instead of the high watermark.
    fn resolve_offset(
        &self,
        topic: &str,
        wanted: &ListOffsetsPartition,
        read_committed: bool,
    ) -> Result<(u64, bool)> {
        let (spec, timestamp) = (wanted.spec, wanted.timestamp);
        let partition = self.partition(topic, wanted.partition)?;
        let log = &partition.log;
        let end = match read_committed {
            true => partition.replica().last_stable_offset(),
            false => partition.high_watermark(),
        };
        match OffsetSpec::try_from(spec) {
            Ok(OffsetSpec::Earliest) => Ok((log.log_start_offset(), true)),
            Ok(OffsetSpec::Latest) => Ok((end, true)),
            Ok(OffsetSpec::Timestamp) => Ok(match log.offset_for_timestamp(timestamp)? {
                Some(offset) if offset < end => (offset, true),
                _ => (end, false),
            }),
            Err(_) => Err(BrokerError::InvalidRequest(format!(
                "unknown offset spec {spec}"
            ))),
        }
    }
}

/// One pass over the wanted partitions: results, total bytes, any error.
fn read_all(
    wanted: &[Wanted],
    request_max: usize,
) -> (Vec<(String, FetchPartitionResult)>, usize, bool) {
    let mut total = 0usize;
    let mut failed = false;
    let results = wanted
        .iter()
        .map(|w| {
            let budget = (w.max_bytes as usize).min(request_max.saturating_sub(total));
            let result = match &w.resolved {
                Ok(partition) if budget > 0 || total == 0 => {
                    read_one(partition, w.offset, budget.max(1), w.committed_only)
                        .unwrap_or_else(|e| e.response())
                }
                Ok(partition) => empty_result(partition),
                Err(e) => e.response(),
            };
            failed |= result.error != ErrorCode::None as i32;
            total += result.records.len();
            (
                w.topic.clone(),
                FetchPartitionResult {
                    partition: w.partition,
                    ..result
                },
            )
        })
        .collect();
    (results, total, failed)
}

fn read_one(
    partition: &Partition,
    offset: u64,
    max_bytes: usize,
    committed_only: bool,
) -> Result<FetchPartitionResult> {
    if committed_only {
        let (read, stable, aborted) = partition.replica().read_stable(offset, max_bytes)?;
        return Ok(FetchPartitionResult {
            high_watermark: read.log_end_offset,
            log_start_offset: read.log_start_offset,
            records: read.bytes.into(),
            last_stable_offset: stable,
            aborted_transactions: aborted
                .into_iter()
                .map(|a| AbortedTransaction {
                    producer_id: a.producer_id,
                    first_offset: a.first_offset,
                })
                .collect(),
            ..Default::default()
        });
    }
    let read = partition.read(offset, max_bytes)?;
    Ok(FetchPartitionResult {
        high_watermark: read.log_end_offset,
        log_start_offset: read.log_start_offset,
        records: read.bytes.into(),
        last_stable_offset: partition.replica().last_stable_offset(),
        ..Default::default()
    })
}

fn empty_result(partition: &Partition) -> FetchPartitionResult {
    FetchPartitionResult {
        high_watermark: partition.high_watermark(),
        log_start_offset: partition.log.log_start_offset(),
        last_stable_offset: partition.replica().last_stable_offset(),
        ..Default::default()
    }
}

fn group(results: Vec<(String, FetchPartitionResult)>) -> FetchResponse {
    let mut topics: Vec<FetchTopicResult> = Vec::new();
    for (name, result) in results {
        match topics.iter_mut().find(|t| t.name == name) {
            Some(topic) => topic.partitions.push(result),
            None => topics.push(FetchTopicResult {
                name,
                partitions: vec![result],
            }),
        }
    }
    FetchResponse { topics }
}
