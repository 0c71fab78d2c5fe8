//! Producer ids and transactions over Kafka's protocol: InitProducerId,
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and TxnOffsetCommit, all
//! answered by spool's transaction coordinator.
//!
//! EndTxn is served up to v3, the versions whose clients keep their epoch
//! across transactions; the coordinator then leaves the epoch as it is
//! (`EndTxnRequest::keep_epoch`) instead of bumping it per transaction as
//! spool's own producer expects.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

use super::codes::{kafka_code, INVALID_REQUEST};
use super::{text_or_empty, Session};
use spool_protocol::proto;

pub(super) async fn init_producer_id(
    session: &Session,
    request: InitProducerIdRequest,
    _version: i16,
) -> InitProducerIdResponse {
    let answered = session
        .broker
        .init_producer_id(proto::InitProducerIdRequest {
            transactional_id: text_or_empty(
                request.transactional_id.as_ref().map(|id| id.as_str()),
            ),
            transaction_timeout_ms: u32::try_from(request.transaction_timeout_ms).unwrap_or(0),
            keep_prepared_txn: false,
        })
        .await;
    if answered.error != 0 {
        return InitProducerIdResponse::default()
            .with_error_code(kafka_code(answered.error))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(answered.producer_id))
        .with_producer_epoch(answered.producer_epoch as i16)
}

pub(super) async fn add_partitions(
    session: &Session,
    request: AddPartitionsToTxnRequest,
    _version: i16,
) -> AddPartitionsToTxnResponse {
    let topics = &request.v3_and_below_topics;
    let answered = session
        .broker
        .add_partitions_to_txn(proto::AddPartitionsToTxnRequest {
            transactional_id: request.v3_and_below_transactional_id.0.to_string(),
            producer_id: request.v3_and_below_producer_id.0,
            producer_epoch: i32::from(request.v3_and_below_producer_epoch),
            topics: topics
                .iter()
                .map(|t| proto::TxnTopic {
                    name: t.name.0.to_string(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|&p| u32::try_from(p).unwrap_or(u32::MAX))
                        .collect(),
                })
                .collect(),
        })
        .await;
    // One answer for the whole request: the coordinator adds all of the
    // partitions or none.
    let code = kafka_code(answered.error);
    let results = topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

pub(super) async fn add_offsets(
    session: &Session,
    request: AddOffsetsToTxnRequest,
    _version: i16,
) -> AddOffsetsToTxnResponse {
    let answered = session
        .broker
        .add_offsets_to_txn(proto::AddOffsetsToTxnRequest {
            transactional_id: request.transactional_id.0.to_string(),
            producer_id: request.producer_id.0,
            producer_epoch: i32::from(request.producer_epoch),
            group_id: request.group_id.0.to_string(),
        })
        .await;
    AddOffsetsToTxnResponse::default().with_error_code(kafka_code(answered.error))
}

pub(super) async fn end_txn(
    session: &Session,
    request: EndTxnRequest,
    _version: i16,
) -> EndTxnResponse {
    let answered = session
        .broker
        .end_txn(proto::EndTxnRequest {
            transactional_id: request.transactional_id.0.to_string(),
            producer_id: request.producer_id.0,
            producer_epoch: i32::from(request.producer_epoch),
            commit: request.committed,
            prepare: false,
            keep_epoch: true,
        })
        .await;
    EndTxnResponse::default().with_error_code(kafka_code(answered.error))
}

pub(super) async fn txn_offset_commit(
    session: &Session,
    request: TxnOffsetCommitRequest,
    _version: i16,
) -> TxnOffsetCommitResponse {
    let valid = |p: &txn_offset_commit_request::TxnOffsetCommitRequestPartition| {
        p.partition_index >= 0 && p.committed_offset >= 0
    };
    let topics = request
        .topics
        .iter()
        .map(|t| proto::OffsetCommitTopic {
            name: t.name.0.to_string(),
            partitions: t
                .partitions
                .iter()
                .filter(|p| valid(p))
                .map(|p| proto::OffsetCommitPartition {
                    partition: p.partition_index as u32,
                    offset: p.committed_offset as u64,
                    metadata: text_or_empty(p.committed_metadata.as_deref()),
                })
                .collect(),
        })
        .collect();
    let answered = session
        .broker
        .txn_offset_commit(proto::TxnOffsetCommitRequest {
            transactional_id: request.transactional_id.0.to_string(),
            group_id: request.group_id.0.to_string(),
            producer_id: request.producer_id.0,
            producer_epoch: i32::from(request.producer_epoch),
            generation_id: request.generation_id,
            member_id: request.member_id.to_string(),
            group_instance_id: text_or_empty(request.group_instance_id.as_deref()),
            topics,
        })
        .await;
    let code = kafka_code(answered.error);
    let topics = request
        .topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(if valid(p) { code } else { INVALID_REQUEST })
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// ListTransactions (v0): the transactions this broker coordinates, as
/// Kafka's brokers answer it (the admin client asks every broker),
/// filtered by state and producer id.
pub(super) async fn list_transactions(
    session: &Session,
    request: ListTransactionsRequest,
    _version: i16,
) -> ListTransactionsResponse {
    let answered = session
        .broker
        .list_transactions(proto::ListTransactionsRequest {})
        .await;
    let wanted = |listing: &proto::TransactionListing| {
        let state_ok = request.state_filters.is_empty()
            || request.state_filters.iter().any(|s| **s == *listing.state);
        let producer_ok = request.producer_id_filters.is_empty()
            || request
                .producer_id_filters
                .iter()
                .any(|p| p.0 == listing.producer_id);
        state_ok && producer_ok
    };
    let states = answered
        .transactions
        .into_iter()
        .filter(wanted)
        .map(|t| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(t.transactional_id.into()))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(t.state.into())
        })
        .collect();
    ListTransactionsResponse::default().with_transaction_states(states)
}

/// DescribeTransactions: each transactional id as its coordinator (this
/// broker, where the client found it) knows it.
pub(super) async fn describe_transactions(
    session: &Session,
    request: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let answered = session
        .broker
        .describe_transactions(proto::DescribeTransactionsRequest {
            transactional_ids: request
                .transactional_ids
                .iter()
                .map(|id| id.0.to_string())
                .collect(),
        })
        .await;
    let states = answered
        .transactions
        .into_iter()
        .map(|t| {
            let topics = t
                .topics
                .into_iter()
                .map(|topic| {
                    describe_transactions_response::TopicData::default()
                        .with_topic(TopicName(topic.name.into()))
                        .with_partitions(topic.partitions.iter().map(|&p| p as i32).collect())
                })
                .collect();
            describe_transactions_response::TransactionState::default()
                .with_error_code(kafka_code(t.error))
                .with_transactional_id(TransactionalId(t.transactional_id.into()))
                .with_transaction_state(t.state.into())
                .with_transaction_timeout_ms(i32::try_from(t.timeout_ms).unwrap_or(i32::MAX))
                .with_transaction_start_time_ms(if t.start_ms > 0 { t.start_ms } else { -1 })
                .with_producer_id(ProducerId(t.producer_id))
                .with_producer_epoch(t.producer_epoch as i16)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
