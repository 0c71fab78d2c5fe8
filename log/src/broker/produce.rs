//! Produce: append each partition's batches, then acknowledge per `acks`.

use std::sync::Arc;

use super::{Broker, Partition};
use crate::proto::{
    Acks, ProducePartitionResult, ProduceRequest, ProduceResponse, ProduceTopicResult,
};
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
        let mut to_sync: Vec<Arc<Partition>> = Vec::new();
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in request.topics {
            let mut results = Vec::with_capacity(topic.partitions.len());
            for data in topic.partitions {
                let outcome = self.append(&topic.name, data.partition, &data.records);
                results.push(match outcome {
                    Ok((partition, base_offset)) => {
                        let log_start_offset = partition.log.log_start_offset();
                        if acks == Acks::All && !to_sync.iter().any(|p| Arc::ptr_eq(p, &partition))
                        {
                            to_sync.push(partition);
                        }
                        ProducePartitionResult {
                            partition: data.partition,
                            base_offset,
                            log_start_offset,
                            ..Default::default()
                        }
                    }
                    Err(e) => error_result(data.partition, &e),
                });
            }
            topics.push(ProduceTopicResult {
                name: topic.name,
                partitions: results,
            });
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

    fn append(&self, topic: &str, partition: u32, records: &[u8]) -> Result<(Arc<Partition>, u64)> {
        let partition = self.partition(topic, partition)?;
        let mut batches = records.to_vec();
        let info = partition.log.append(&mut batches, 0)?;
        partition.notify_appended();
        Ok((partition, info.base_offset))
    }
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
