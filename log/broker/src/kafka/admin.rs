//! Metadata and the topic administration APIs: CreateTopics, DeleteTopics,
//! CreatePartitions (settings are in `configs`).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::codes::{kafka_code, kafka_message, INVALID_REQUEST, LEADER_NOT_AVAILABLE};
use super::{text_or_empty, Session};
use spool_protocol::proto;

/// Named in Metadata v2+; one id for every spool cluster until clusters
/// carry an id of their own.
const CLUSTER_ID: &str = "spool";

pub(super) async fn metadata(
    session: &Session,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    // v0 asks for every topic with an empty list; v1+ with null, and an
    // empty list asks for none.
    let wanted: Option<Vec<String>> = match &request.topics {
        None => None,
        Some(topics) if version == 0 && topics.is_empty() => None,
        Some(topics) => Some(
            topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect(),
        ),
    };
    // Before v4 a client could not say no: auto-creation was the broker's
    // choice alone.
    let may_create = session.config.auto_create_topics
        && (version < 4 || request.allow_auto_topic_creation)
        && wanted.is_some();
    let topics = match wanted {
        Some(names) if names.is_empty() => Vec::new(),
        names => {
            let mut answered = session.broker.metadata(proto::MetadataRequest {
                topics: names.unwrap_or_default(),
            });
            let mut invalid = Vec::new();
            if may_create {
                let (created, refused) = create_unknown(session, &answered).await;
                invalid = refused;
                if created {
                    let names = answered.topics.iter().map(|t| t.name.clone()).collect();
                    answered = session
                        .broker
                        .metadata(proto::MetadataRequest { topics: names });
                }
            }
            // A name that can never be created is an invalid topic, not
            // an unknown one: Kafka clients fail its records instead of
            // waiting for it to appear.
            for topic in answered
                .topics
                .iter_mut()
                .filter(|t| invalid.contains(&t.name))
            {
                topic.error = proto::ErrorCode::InvalidTopic as i32;
            }
            answered.topics
        }
    };
    let node = session.broker.config().node_id as i32;
    let brokers = session
        .kafka_addresses()
        .into_iter()
        .map(|(id, (host, port))| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id as i32))
                .with_host(host.into())
                .with_port(port)
        })
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(
            topics
                .into_iter()
                .map(|t| topic_metadata(t, version))
                .collect(),
        );
    if version >= 1 {
        response.controller_id = BrokerId(node);
    }
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_static_str(CLUSTER_ID));
    }
    response
}

/// Creates the topics `answered` reports unknown (internal names are
/// left alone); answers whether any was created, and the names refused
/// as invalid topic names.
async fn create_unknown(
    session: &Session,
    answered: &proto::MetadataResponse,
) -> (bool, Vec<String>) {
    let unknown = proto::ErrorCode::UnknownTopicOrPartition as i32;
    let topics: Vec<proto::NewTopic> = answered
        .topics
        .iter()
        .filter(|t| t.error == unknown && !t.name.starts_with("__"))
        .map(|t| proto::NewTopic {
            name: t.name.clone(),
            partitions: session.config.auto_create_partitions,
            ..Default::default()
        })
        .collect();
    if topics.is_empty() {
        return (false, Vec::new());
    }
    let created = session
        .broker
        .create_topics(proto::CreateTopicsRequest {
            topics,
            validate_only: false,
        })
        .await;
    let invalid = proto::ErrorCode::InvalidTopic as i32;
    let refused = created
        .topics
        .iter()
        .filter(|t| t.error == invalid)
        .map(|t| t.name.clone())
        .collect();
    (created.topics.iter().any(|t| t.error == 0), refused)
}

fn topic_metadata(topic: proto::TopicMetadata, version: i16) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let replicas: Vec<BrokerId> = p.replicas.iter().map(|&n| BrokerId(n as i32)).collect();
            // spool names no leader as 0 (node ids start at 1).
            let (leader, code) = match p.leader {
                0 => (-1, LEADER_NOT_AVAILABLE),
                leader => (leader as i32, 0),
            };
            let mut partition = MetadataResponsePartition::default()
                .with_error_code(code)
                .with_partition_index(p.partition as i32)
                .with_leader_id(BrokerId(leader))
                .with_replica_nodes(replicas.clone());
            // Raft has no in-sync set: every voter may become leader.
            partition.isr_nodes = replicas;
            partition
        })
        .collect();
    let mut result = MetadataResponseTopic::default()
        .with_error_code(kafka_code(topic.error))
        .with_name(Some(TopicName(topic.name.clone().into())))
        .with_partitions(partitions);
    if version >= 1 {
        result.is_internal = topic.name.starts_with("__");
    }
    result
}

pub(super) async fn create_topics(
    session: &Session,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::new();
    let mut topics = Vec::new();
    for topic in &request.topics {
        let explicit = !topic.assignments.is_empty();
        if explicit && (topic.num_partitions != -1 || topic.replication_factor != -1) {
            let result = CreatableTopicResult::default()
                .with_name(topic.name.clone())
                .with_error_code(INVALID_REQUEST)
                .with_error_message(Some(
                    "give either replica assignments or a partition count and replication factor"
                        .into(),
                ));
            results.push(result);
            continue;
        }
        let assignments: Vec<proto::ReplicaAssignment> = topic
            .assignments
            .iter()
            .map(|a| proto::ReplicaAssignment {
                partition: u32::try_from(a.partition_index).unwrap_or(u32::MAX),
                brokers: a
                    .broker_ids
                    .iter()
                    .map(|b| u32::try_from(b.0).unwrap_or(u32::MAX))
                    .collect(),
            })
            .collect();
        let (partitions, factor) = match assignments.first() {
            Some(first) => (assignments.len() as i32, first.brokers.len() as i16),
            None => (topic.num_partitions, topic.replication_factor),
        };
        topics.push(proto::NewTopic {
            name: topic.name.0.to_string(),
            assignments,
            partitions: u32::try_from(partitions).unwrap_or(session.config.auto_create_partitions),
            // 0: the broker's default.
            replication_factor: u32::try_from(factor).unwrap_or(0),
            configs: topic
                .configs
                .iter()
                .map(|c| proto::ConfigEntry {
                    key: c.name.to_string(),
                    value: text_or_empty(c.value.as_deref()),
                    ..Default::default()
                })
                .collect(),
        });
    }
    let asked: Vec<(u32, u32)> = topics
        .iter()
        .map(|t| (t.partitions, t.replication_factor))
        .collect();
    let answered = session
        .broker
        .create_topics(proto::CreateTopicsRequest {
            topics,
            validate_only: request.validate_only,
        })
        .await;
    for (t, (partitions, factor)) in answered.topics.into_iter().zip(asked) {
        let mut result = CreatableTopicResult::default()
            .with_name(TopicName(t.name.into()))
            .with_error_code(kafka_code(t.error))
            .with_error_message(kafka_message(t.error, t.message));
        if version >= 5 && result.error_code == 0 {
            result.num_partitions = partitions as i32;
            result.replication_factor = if factor == 0 { -1 } else { factor as i16 };
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub(super) async fn delete_topics(
    session: &Session,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let names: Vec<String> = match version {
        0..=5 => request
            .topic_names
            .iter()
            .map(|n| n.0.to_string())
            .collect(),
        _ => request
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect(),
    };
    let answered = session
        .broker
        .delete_topics(proto::DeleteTopicsRequest { names })
        .await;
    let responses = answered
        .topics
        .into_iter()
        .map(|t| {
            let mut result = DeletableTopicResult::default()
                .with_name(Some(TopicName(t.name.into())))
                .with_error_code(kafka_code(t.error));
            if version >= 5 {
                result.error_message = kafka_message(t.error, t.message);
            }
            result
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub(super) async fn create_partitions(
    session: &Session,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let refuse = |name: &TopicName, why: &'static str| {
        CreatePartitionsTopicResult::default()
            .with_name(name.clone())
            .with_error_code(INVALID_REQUEST)
            .with_error_message(Some(why.into()))
    };
    let mut results = Vec::new();
    let mut changes = Vec::new();
    for topic in &request.topics {
        if request.validate_only {
            results.push(refuse(&topic.name, "validate_only is not supported"));
        } else {
            let assignments = topic.assignments.iter().flatten().enumerate();
            changes.push(proto::PartitionCount {
                name: topic.name.0.to_string(),
                count: u32::try_from(topic.count).unwrap_or(0),
                assignments: assignments
                    .map(|(i, a)| proto::ReplicaAssignment {
                        partition: i as u32,
                        brokers: a
                            .broker_ids
                            .iter()
                            .map(|b| u32::try_from(b.0).unwrap_or(u32::MAX))
                            .collect(),
                    })
                    .collect(),
            });
        }
    }
    let answered = session
        .broker
        .create_partitions(proto::CreatePartitionsRequest { topics: changes })
        .await;
    results.extend(answered.topics.into_iter().map(|t| {
        CreatePartitionsTopicResult::default()
            .with_name(TopicName(t.name.into()))
            .with_error_code(kafka_code(t.error))
            .with_error_message(kafka_message(t.error, t.message))
    }));
    CreatePartitionsResponse::default().with_results(results)
}
