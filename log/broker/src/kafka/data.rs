//! Produce, Fetch and ListOffsets: record batches in and out, untouched.

use std::future::Future;

use futures::future::Either;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction as KafkaAborted, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;

use super::codes::{kafka_code, kafka_message, INVALID_REQUIRED_ACKS, UNKNOWN_TOPIC_OR_PARTITION};
use super::{text_or_empty, Session};
use spool_protocol::proto;

/// Kafka's ListOffsets timestamps that are not times.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub(super) async fn produce(
    session: &Session,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    propose_produce(session, request, version).await.await
}

/// The first phase of a Produce: its batches proposed to their
/// partitions, in order. What is left is its answer (none for acks=0),
/// which owns all it needs and can be awaited while the connection's next
/// Produce is proposed (`connection`).
pub(super) async fn propose_produce(
    session: &Session,
    request: ProduceRequest,
    version: i16,
) -> impl Future<Output = Option<ProduceResponse>> + Send + 'static {
    let acks = match request.acks {
        0 => Some(proto::Acks::None),
        1 => Some(proto::Acks::Leader),
        -1 => Some(proto::Acks::All),
        _ => None,
    };
    let Some(acks) = acks else {
        let refusal = refuse_produce(&request, INVALID_REQUIRED_ACKS);
        return Either::Left(std::future::ready(Some(refusal)));
    };
    let mut refused = Vec::new();
    let mut topics = Vec::new();
    for topic in &request.topic_data {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::new();
        for data in &topic.partition_data {
            match u32::try_from(data.index) {
                Ok(partition) => partitions.push(proto::ProducePartition {
                    partition,
                    records: data.records.clone().unwrap_or_default(),
                }),
                Err(_) => refused.push((name.clone(), data.index)),
            }
        }
        topics.push(proto::ProduceTopic { name, partitions });
    }
    let proposed = session
        .broker
        .propose(proto::ProduceRequest {
            acks: acks as i32,
            timeout_ms: u32::try_from(request.timeout_ms).unwrap_or(0),
            topics,
            transactional_id: text_or_empty(
                request.transactional_id.as_ref().map(|id| id.as_str()),
            ),
        })
        .await;
    Either::Right(async move {
        let answered = proposed.answered().await;
        (acks != proto::Acks::None).then(|| produce_response(answered, refused, version))
    })
}

/// A Produce's answer in Kafka's terms, partitions refused before
/// proposing included.
fn produce_response(
    answered: proto::ProduceResponse,
    refused: Vec<(String, i32)>,
    version: i16,
) -> ProduceResponse {
    let mut responses: Vec<TopicProduceResponse> = answered
        .topics
        .into_iter()
        .map(|topic| {
            TopicProduceResponse::default()
                .with_name(TopicName(topic.name.into()))
                .with_partition_responses(
                    topic
                        .partitions
                        .into_iter()
                        .map(|p| produce_result(p, version))
                        .collect(),
                )
        })
        .collect();
    for (name, index) in refused {
        let result = PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(UNKNOWN_TOPIC_OR_PARTITION)
            .with_base_offset(-1);
        match responses.iter_mut().find(|t| t.name.0.as_str() == name) {
            Some(topic) => topic.partition_responses.push(result),
            None => responses.push(
                TopicProduceResponse::default()
                    .with_name(TopicName(name.into()))
                    .with_partition_responses(vec![result]),
            ),
        }
    }
    ProduceResponse::default().with_responses(responses)
}

/// One partition's Produce answer; fields a version lacks stay at their
/// defaults (the encoder refuses them otherwise).
fn produce_result(p: proto::ProducePartitionResult, version: i16) -> PartitionProduceResponse {
    let mut result = PartitionProduceResponse::default()
        .with_index(p.partition as i32)
        .with_error_code(kafka_code(p.error))
        .with_log_append_time_ms(-1);
    if p.error != 0 {
        if version >= 8 {
            result.error_message = kafka_message(p.error, p.message);
        }
        return result.with_base_offset(-1);
    }
    result.base_offset = p.base_offset as i64;
    if version >= 5 {
        result.log_start_offset = p.log_start_offset as i64;
    }
    result
}

/// Every partition of `request` refused with `code`.
fn refuse_produce(request: &ProduceRequest, code: i16) -> ProduceResponse {
    let responses = request
        .topic_data
        .iter()
        .map(|topic| {
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(
                    topic
                        .partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(code)
                                .with_base_offset(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

pub(super) async fn fetch(session: &Session, request: FetchRequest, version: i16) -> FetchResponse {
    let read_committed = request.isolation_level == 1;
    let mut refused: Vec<(String, i32, i16)> = Vec::new();
    let mut topics = Vec::new();
    for topic in &request.topics {
        let name = topic.topic.0.to_string();
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            match (u32::try_from(p.partition), u64::try_from(p.fetch_offset)) {
                (Ok(partition), Ok(offset)) => partitions.push(proto::FetchPartition {
                    partition,
                    offset,
                    max_bytes: u32::try_from(p.partition_max_bytes).unwrap_or(0),
                }),
                (Err(_), _) => {
                    refused.push((name.clone(), p.partition, UNKNOWN_TOPIC_OR_PARTITION))
                }
                (_, Err(_)) => {
                    refused.push((name.clone(), p.partition, super::codes::OFFSET_OUT_OF_RANGE))
                }
            }
        }
        topics.push(proto::FetchTopic { name, partitions });
    }
    let answered = session
        .broker
        .fetch(proto::FetchRequest {
            max_wait_ms: u32::try_from(request.max_wait_ms).unwrap_or(0),
            min_bytes: u32::try_from(request.min_bytes).unwrap_or(0),
            max_bytes: u32::try_from(request.max_bytes).unwrap_or(u32::MAX),
            topics,
            isolation_level: match read_committed {
                true => proto::IsolationLevel::ReadCommitted as i32,
                false => proto::IsolationLevel::ReadUncommitted as i32,
            },
        })
        .await;
    let mut responses: Vec<FetchableTopicResponse> = answered
        .topics
        .into_iter()
        .map(|topic| {
            FetchableTopicResponse::default()
                .with_topic(TopicName(topic.name.into()))
                .with_partitions(
                    topic
                        .partitions
                        .into_iter()
                        .map(|p| fetch_result(p, read_committed, version))
                        .collect(),
                )
        })
        .collect();
    for (name, index, code) in refused {
        let result = PartitionData::default()
            .with_partition_index(index)
            .with_error_code(code)
            .with_high_watermark(-1);
        match responses.iter_mut().find(|t| t.topic.0.as_str() == name) {
            Some(topic) => topic.partitions.push(result),
            None => responses.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(name.into()))
                    .with_partitions(vec![result]),
            ),
        }
    }
    FetchResponse::default().with_responses(responses)
}

fn fetch_result(
    p: proto::FetchPartitionResult,
    read_committed: bool,
    version: i16,
) -> PartitionData {
    let result = PartitionData::default()
        .with_partition_index(p.partition as i32)
        .with_error_code(kafka_code(p.error));
    if p.error != 0 {
        return result.with_high_watermark(-1);
    }
    // Kafka names no aborted transactions (null) for read_uncommitted.
    let aborted = read_committed.then(|| {
        p.aborted_transactions
            .iter()
            .map(|a| {
                KafkaAborted::default()
                    .with_producer_id(ProducerId(a.producer_id))
                    .with_first_offset(a.first_offset as i64)
            })
            .collect()
    });
    let mut result = result
        .with_high_watermark(p.high_watermark as i64)
        .with_last_stable_offset(p.last_stable_offset as i64)
        .with_aborted_transactions(aborted)
        .with_records(Some(p.records));
    if version >= 5 {
        result.log_start_offset = p.log_start_offset as i64;
    }
    result
}

pub(super) async fn list_offsets(
    session: &Session,
    request: ListOffsetsRequest,
    _version: i16,
) -> ListOffsetsResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| proto::ListOffsetsTopic {
            name: topic.name.0.to_string(),
            partitions: topic
                .partitions
                .iter()
                .map(|p| {
                    let (spec, timestamp) = match p.timestamp {
                        LATEST => (proto::OffsetSpec::Latest, 0),
                        EARLIEST => (proto::OffsetSpec::Earliest, 0),
                        time => (proto::OffsetSpec::Timestamp, time),
                    };
                    proto::ListOffsetsPartition {
                        // A negative index matches no partition and is
                        // answered as unknown.
                        partition: u32::try_from(p.partition_index).unwrap_or(u32::MAX),
                        spec: spec as i32,
                        timestamp,
                    }
                })
                .collect(),
        })
        .collect();
    let answered = session.broker.list_offsets(proto::ListOffsetsRequest {
        topics,
        isolation_level: i32::from(request.isolation_level),
    });
    let topics = answered
        .topics
        .into_iter()
        .zip(&request.topics)
        .map(|(topic, asked)| {
            ListOffsetsTopicResponse::default()
                .with_name(asked.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .into_iter()
                        .zip(&asked.partitions)
                        .map(|(p, asked)| offset_result(p, asked.partition_index, asked.timestamp))
                        .collect(),
                )
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// One partition's ListOffsets answer. A time lookup past the last record
/// answers offset -1, as Kafka does; a found one gives back the time asked
/// for (spool's time index answers the offset, not the record's time).
fn offset_result(
    p: proto::ListOffsetsPartitionResult,
    index: i32,
    asked: i64,
) -> ListOffsetsPartitionResponse {
    let result = ListOffsetsPartitionResponse::default()
        .with_partition_index(index)
        .with_error_code(kafka_code(p.error))
        .with_leader_epoch(-1);
    let by_time = asked >= 0;
    match (p.error, by_time, p.found) {
        (0, false, _) => result.with_offset(p.offset as i64).with_timestamp(-1),
        (0, true, true) => result.with_offset(p.offset as i64).with_timestamp(asked),
        _ => result.with_offset(-1).with_timestamp(-1),
    }
}

/// DeleteRecords: each partition's log start raised (the partitions this
/// broker does not lead are answered NOT_LEADER_OR_FOLLOWER, and the
/// client asks their leaders).
pub(super) async fn delete_records(
    session: &Session,
    request: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| proto::DeleteRecordsTopic {
            name: topic.name.0.to_string(),
            partitions: topic
                .partitions
                .iter()
                .map(|p| proto::DeleteRecordsPartition {
                    partition: u32::try_from(p.partition_index).unwrap_or(u32::MAX),
                    offset: p.offset,
                })
                .collect(),
        })
        .collect();
    let answered = session
        .broker
        .delete_records(proto::DeleteRecordsRequest { topics })
        .await;
    let topics = answered
        .topics
        .into_iter()
        .zip(&request.topics)
        .map(|(topic, asked)| {
            let partitions = topic
                .partitions
                .into_iter()
                .zip(&asked.partitions)
                .map(|(p, asked)| {
                    let low_watermark = match p.error {
                        0 => i64::try_from(p.low_watermark).unwrap_or(i64::MAX),
                        _ => -1,
                    };
                    delete_records_response::DeleteRecordsPartitionResult::default()
                        .with_partition_index(asked.partition_index)
                        .with_low_watermark(low_watermark)
                        .with_error_code(kafka_code(p.error))
                })
                .collect();
            delete_records_response::DeleteRecordsTopicResult::default()
                .with_name(asked.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
