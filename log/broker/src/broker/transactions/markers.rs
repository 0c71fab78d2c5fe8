//! Commit and abort markers: the coordinator side, which sends them to
//! every partition of a transaction until each has one, and the partition
//! side, which writes one through the partition's Raft group.
//!
//! A coordinator reaches a partition it does not lead through a gRPC
//! client of its own cluster (`Broker::peer_client`), which routes each
//! partition to its leader as a producer's requests are routed.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;

use crate::broker::Broker;
use crate::{BrokerError, Result};
use spool_protocol::proto::*;
use spool_raft::AnswerWhen;
use spool_record::control_marker;

/// How long a coordinator keeps trying to write a transaction's markers
/// before it gives up for now (the transaction stays decided and the next
/// sweep tries again).
const MARKERS_PATIENCE: Duration = Duration::from_secs(30);

/// The pause between rounds of markers that failed (a leader moving).
const MARKERS_BACKOFF: Duration = Duration::from_millis(100);

impl Broker {
    /// Writes a marker for `producer_id` at `epoch` to every partition in
    /// `partitions`, retrying those that fail while `still_coordinating`
    /// holds. A partition whose topic is gone (from this broker's
    /// metadata) needs none.
    pub(super) async fn write_markers(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        partitions: &BTreeSet<(String, u32)>,
        still_coordinating: impl Fn() -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + MARKERS_PATIENCE;
        let mut left: Vec<(String, u32)> = partitions.iter().cloned().collect();
        loop {
            let request = markers_request(producer_id, epoch, commit, &left);
            let response = self.send_markers(request).await;
            let mut failed = Vec::new();
            for topic in response.topics {
                for p in topic.partitions {
                    match ErrorCode::try_from(p.error) {
                        Ok(ErrorCode::None) => {}
                        // Only a partition whose topic is gone needs no
                        // marker: a broker that restarted and has not read
                        // the metadata up to the topic answers the same.
                        Ok(ErrorCode::UnknownTopicOrPartition)
                            if !self.partition_exists(&topic.name, p.partition) => {}
                        // A newer epoch is already there: a later instance
                        // of the producer owns the partition; nothing to mark.
                        Ok(ErrorCode::InvalidProducerEpoch) => {}
                        _ => {
                            tracing::debug!(topic = %topic.name, partition = p.partition, error = %p.message, "marker not written yet");
                            failed.push((topic.name.clone(), p.partition));
                        }
                    }
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if !still_coordinating() || tokio::time::Instant::now() >= deadline {
                return Err(BrokerError::Timeout(format!(
                    "markers of producer {producer_id} not written to {} partitions",
                    failed.len()
                )));
            }
            left = failed;
            tokio::time::sleep(MARKERS_BACKOFF).await;
        }
    }

    /// Whether the metadata as this broker knows it has `partition` of
    /// `topic`.
    fn partition_exists(&self, topic: &str, partition: u32) -> bool {
        let image = self.cluster.controller.image();
        let topic = image.topics.get(topic);
        topic.is_some_and(|t| (partition as usize) < t.replicas.len())
    }

    /// Sends markers: here for the partitions this broker leads, through
    /// the cluster client for the others.
    async fn send_markers(&self, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
        let (local, remote): (Vec<_>, Vec<_>) = request
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
            .partition(|(topic, partition)| {
                self.partition(topic, *partition)
                    .is_ok_and(|p| p.replica().leading_term().is_some())
            });
        let part = |partitions: &[(String, u32)]| {
            markers_request(
                request.producer_id,
                request.producer_epoch as i16,
                request.commit,
                partitions,
            )
        };
        let mut response = self.write_txn_markers(part(&local)).await;
        if !remote.is_empty() {
            let answered = match self.peer_client().await {
                Ok(client) => client
                    .write_txn_markers(part(&remote))
                    .await
                    .map_err(BrokerError::from),
                Err(e) => Err(e),
            };
            let remote_response = answered.unwrap_or_else(|e| failed_markers(&part(&remote), &e));
            response.topics.extend(remote_response.topics);
        }
        response
    }

    /// Answers WriteTxnMarkers: appends a marker to each named partition
    /// this broker leads, through its Raft group, answered once committed.
    pub async fn write_txn_markers(
        &self,
        request: WriteTxnMarkersRequest,
    ) -> WriteTxnMarkersResponse {
        let epoch = match crate::broker::checks::epoch_of(request.producer_epoch) {
            Ok(epoch) => epoch,
            Err(e) => return failed_markers(&request, &e),
        };
        let marker = Bytes::from(control_marker(
            request.producer_id,
            epoch,
            request.commit,
            self.now_ms(),
        ));
        let writes = request
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.as_str(), p.partition)))
            .map(|(topic, index)| {
                let marker = marker.clone();
                async move {
                    let written: Result<_> = async {
                        let partition = self.partition(topic, index)?;
                        let appended = partition
                            .replica()
                            .append_batches(
                                vec![marker],
                                AnswerWhen::Committed,
                                super::coordinator::WRITE_TIMEOUT,
                            )
                            .await?;
                        Ok(appended)
                    }
                    .await;
                    (topic.to_string(), index, written)
                }
            });
        let mut response = WriteTxnMarkersResponse::default();
        for (topic, index, written) in futures::future::join_all(writes).await {
            let (error, message) = match written {
                Ok(_) => (0, String::new()),
                Err(e) => (e.code() as i32, e.to_string()),
            };
            push_result(
                &mut response,
                topic,
                WriteTxnMarkersPartitionResult {
                    partition: index,
                    error,
                    message,
                },
            );
        }
        response
    }
}

fn markers_request(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    partitions: &[(String, u32)],
) -> WriteTxnMarkersRequest {
    let mut topics: Vec<WriteTxnMarkersTopic> = Vec::new();
    for (topic, partition) in partitions {
        let entry = WriteTxnMarkersPartition {
            partition: *partition,
        };
        match topics.iter_mut().find(|t| &t.name == topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(WriteTxnMarkersTopic {
                name: topic.clone(),
                partitions: vec![entry],
            }),
        }
    }
    WriteTxnMarkersRequest {
        producer_id,
        producer_epoch: i32::from(epoch),
        commit,
        topics,
    }
}

fn push_result(
    response: &mut WriteTxnMarkersResponse,
    topic: String,
    result: WriteTxnMarkersPartitionResult,
) {
    match response.topics.iter_mut().find(|t| t.name == topic) {
        Some(t) => t.partitions.push(result),
        None => response.topics.push(WriteTxnMarkersTopicResult {
            name: topic,
            partitions: vec![result],
        }),
    }
}

fn failed_markers(request: &WriteTxnMarkersRequest, e: &BrokerError) -> WriteTxnMarkersResponse {
    let mut response = WriteTxnMarkersResponse::default();
    for topic in &request.topics {
        for p in &topic.partitions {
            push_result(
                &mut response,
                topic.name.clone(),
                WriteTxnMarkersPartitionResult {
                    partition: p.partition,
                    error: ErrorCode::RequestTimedOut as i32,
                    message: e.to_string(),
                },
            );
        }
    }
    response
}
