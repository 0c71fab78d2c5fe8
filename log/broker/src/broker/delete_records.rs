//! DeleteRecords: a partition's log start raised on every replica, as
//! Kafka's admin client (and Kafka Streams, purging its repartition
//! topics) asks for it.
//!
//! The leader proposes a log-start entry through the partition's Raft
//! group (`spool_raft::entry`), so every replica, and any that a snapshot
//! later brings up to date, moves its log start alike; the answer comes
//! once the entry is committed and applied here. Readers lose the records
//! below the new start at once; the segments wholly below it are deleted
//! by the next retention pass.

use std::time::Duration;

use super::Broker;
use crate::{BrokerError, Result};
use spool_protocol::proto::{
    DeleteRecordsPartition, DeleteRecordsPartitionResult, DeleteRecordsRequest,
    DeleteRecordsResponse, DeleteRecordsTopicResult, ErrorCode,
};

/// How long one partition's deletion waits for its entry to commit:
/// Kafka's admin client gives a DeleteRecords request 30 s in all.
const DELETE_TIMEOUT: Duration = Duration::from_secs(15);

impl Broker {
    pub async fn delete_records(&self, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in request.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for wanted in &topic.partitions {
                let partition = wanted.partition;
                partitions.push(match self.delete_records_of(&topic.name, wanted).await {
                    Ok(low_watermark) => DeleteRecordsPartitionResult {
                        partition,
                        low_watermark,
                        ..Default::default()
                    },
                    Err(e) => DeleteRecordsPartitionResult {
                        partition,
                        ..e.response()
                    },
                });
            }
            topics.push(DeleteRecordsTopicResult {
                name: topic.name,
                partitions,
            });
        }
        DeleteRecordsResponse { topics }
    }

    /// Raises one partition's log start; answers the start it left.
    async fn delete_records_of(&self, topic: &str, wanted: &DeleteRecordsPartition) -> Result<u64> {
        let partition = self.partition(topic, wanted.partition)?;
        let replica = partition.replica();
        if replica.leading_term().is_none() {
            return Err(BrokerError::NotLeader {
                leader: replica.leader(),
            });
        }
        if !partition.log.config().cleanup_policy.delete {
            return Err(BrokerError::coded(
                ErrorCode::PolicyViolation,
                format!(
                    "`{topic}` is compacted (cleanup.policy=compact): its records go by key, \
                     not by offset"
                ),
            ));
        }
        let high_watermark = partition.high_watermark();
        let offset = match wanted.offset {
            -1 => high_watermark,
            offset => u64::try_from(offset).unwrap_or(u64::MAX),
        };
        if offset > high_watermark {
            return Err(BrokerError::coded(
                ErrorCode::OffsetOutOfRange,
                format!(
                    "cannot delete records of {topic}-{} before offset {}: its high watermark is {high_watermark}",
                    wanted.partition, wanted.offset
                ),
            ));
        }
        Ok(replica.raise_log_start(offset, DELETE_TIMEOUT).await?)
    }
}
