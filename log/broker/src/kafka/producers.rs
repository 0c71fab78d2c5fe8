//! What Kafka's `kafka-transactions` tool needs of partition leaders:
//! DescribeProducers (each partition's idempotent and transactional
//! producers, with the first offset of any open transaction) and
//! WriteTxnMarkers (a commit or abort marker written by hand, the tool's
//! `abort` of a hanging transaction). Kafka guards the second with the
//! CLUSTER_ACTION permission; spool has no ACLs (docs/kafka-compatibility.md).

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;

use super::codes::{kafka_code, kafka_message};
use super::Session;
use crate::BrokerError;
use spool_protocol::proto;

pub(super) async fn describe_producers(
    session: &Session,
    request: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| describe_partition(session, &topic.name, index))
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// One partition's producers, answered by its leader only.
fn describe_partition(session: &Session, topic: &str, index: i32) -> PartitionResponse {
    let led = u32::try_from(index)
        .map_err(|_| BrokerError::InvalidRequest(format!("partition {index}")))
        .and_then(|index| session.broker.partition(topic, index))
        .and_then(|partition| match partition.replica().leading_term() {
            Some(_) => Ok(partition),
            None => Err(BrokerError::NotLeader {
                leader: partition.replica().leader(),
            }),
        });
    let response = PartitionResponse::default().with_partition_index(index);
    let partition = match led {
        Ok(partition) => partition,
        Err(e) => {
            let code = e.code() as i32;
            return response
                .with_error_code(kafka_code(code))
                .with_error_message(kafka_message(code, e.to_string()));
        }
    };
    let producers = partition
        .describe_producers()
        .into_iter()
        .map(|p| {
            ProducerState::default()
                .with_producer_id(ProducerId(p.producer_id))
                .with_producer_epoch(p.epoch)
                .with_last_sequence(p.last_sequence)
                .with_last_timestamp(p.last_append_ms)
                .with_coordinator_epoch(-1)
                .with_current_txn_start_offset(p.txn_start_offset)
        })
        .collect();
    response.with_active_producers(producers)
}

pub(super) async fn write_txn_markers(
    session: &Session,
    request: WriteTxnMarkersRequest,
    _version: i16,
) -> WriteTxnMarkersResponse {
    let mut markers = Vec::with_capacity(request.markers.len());
    for marker in request.markers {
        let asked = proto::WriteTxnMarkersRequest {
            producer_id: marker.producer_id.0,
            producer_epoch: i32::from(marker.producer_epoch),
            commit: marker.transaction_result,
            topics: marker
                .topics
                .iter()
                .map(|t| proto::WriteTxnMarkersTopic {
                    name: t.name.to_string(),
                    partitions: t
                        .partition_indexes
                        .iter()
                        .map(|&p| proto::WriteTxnMarkersPartition {
                            partition: u32::try_from(p).unwrap_or(u32::MAX),
                        })
                        .collect(),
                })
                .collect(),
        };
        let answered = session.broker.write_txn_markers(asked).await;
        let error_of = |topic: &str, index: i32| {
            answered
                .topics
                .iter()
                .filter(|t| t.name == topic)
                .flat_map(|t| &t.partitions)
                .find(|p| i64::from(p.partition) == i64::from(index))
                .map_or(0, |p| kafka_code(p.error))
        };
        let topics = marker
            .topics
            .iter()
            .map(|asked| {
                let partitions = asked
                    .partition_indexes
                    .iter()
                    .map(|&index| {
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(index)
                            .with_error_code(error_of(&asked.name, index))
                    })
                    .collect();
                WritableTxnMarkerTopicResult::default()
                    .with_name(asked.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
