//! Consumer groups over Kafka's protocol: FindCoordinator, the classic
//! rebalance protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup),
//! committed offsets and the group listings. The subscription and
//! assignment bytes are opaque to the coordinator, as in Kafka, so a
//! Kafka consumer and a spool consumer can share a group (both speak
//! Kafka's consumer protocol, see `consumer_protocol`).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::codes::{
    kafka_code, COORDINATOR_NOT_AVAILABLE, INVALID_REQUEST, UNKNOWN_TOPIC_OR_PARTITION,
};
use super::{none_if_empty, text_or_empty, Caller, Session};
use crate::broker::groups::CONSUMER_PROTOCOL_TYPE;
use spool_protocol::proto;

pub(super) async fn find_coordinator(
    session: &Session,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let (node, host, port, code, message) =
                    locate(session, key.to_string(), request.key_type);
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (node, host, port, code, message) =
        locate(session, request.key.to_string(), request.key_type);
    let mut response = FindCoordinatorResponse::default()
        .with_node_id(BrokerId(node))
        .with_host(host)
        .with_port(port)
        .with_error_code(code);
    if version >= 1 {
        response.error_message = message;
    }
    response
}

/// The Kafka address of the coordinator of `key`: node, host, port, error
/// code and message.
fn locate(
    session: &Session,
    key: String,
    key_type: i8,
) -> (i32, StrBytes, i32, i16, Option<StrBytes>) {
    let found = session
        .broker
        .find_coordinator(proto::FindCoordinatorRequest {
            group_id: key,
            key_type: u32::try_from(key_type).unwrap_or(u32::MAX),
        });
    let failed =
        |code: i16, message: String| (-1, StrBytes::default(), -1, code, none_if_empty(message));
    if found.error != 0 {
        return failed(kafka_code(found.error), found.message);
    }
    match session.kafka_address(found.node_id) {
        Some((host, port)) => (found.node_id as i32, host.into(), port, 0, None),
        None => failed(
            COORDINATOR_NOT_AVAILABLE,
            format!(
                "the coordinator is broker {}, whose Kafka listener is unknown here",
                found.node_id
            ),
        ),
    }
}

pub(super) async fn join_group(
    session: &Session,
    request: JoinGroupRequest,
    version: i16,
    caller: &Caller<'_>,
) -> JoinGroupResponse {
    let rebalance_timeout = match version {
        // v0 has no rebalance timeout: Kafka used the session timeout.
        0 => request.session_timeout_ms,
        _ => request.rebalance_timeout_ms,
    };
    let answered = session
        .broker
        .join_group(proto::JoinGroupRequest {
            group_id: request.group_id.0.to_string(),
            member_id: request.member_id.to_string(),
            group_instance_id: text_or_empty(request.group_instance_id.as_deref()),
            session_timeout_ms: u32::try_from(request.session_timeout_ms).unwrap_or(0),
            rebalance_timeout_ms: u32::try_from(rebalance_timeout).unwrap_or(0),
            protocols: request
                .protocols
                .iter()
                .map(|p| proto::GroupProtocol {
                    name: p.name.to_string(),
                    metadata: p.metadata.clone(),
                })
                .collect(),
            protocol_type: request.protocol_type.to_string(),
            client_id: caller.client_id.to_string(),
            client_host: caller.host.to_string(),
        })
        .await;
    let members = answered
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default()
                .with_member_id(m.member_id.into())
                .with_metadata(m.metadata);
            if version >= 5 {
                member.group_instance_id = none_if_empty(m.group_instance_id);
            }
            member
        })
        .collect();
    let failed = answered.error != 0;
    let mut response = JoinGroupResponse::default()
        .with_error_code(kafka_code(answered.error))
        .with_generation_id(if failed { -1 } else { answered.generation_id })
        .with_protocol_name(Some(answered.protocol_name.into()))
        .with_leader(answered.leader_id.into())
        .with_member_id(answered.member_id.into())
        .with_members(members);
    if version >= 7 {
        response.protocol_type = Some(request.protocol_type.clone());
    }
    if version >= 9 {
        response.skip_assignment = answered.skip_assignment;
    }
    response
}

pub(super) async fn sync_group(
    session: &Session,
    request: SyncGroupRequest,
    _version: i16,
) -> SyncGroupResponse {
    let answered = session
        .broker
        .sync_group(proto::SyncGroupRequest {
            group_id: request.group_id.0.to_string(),
            generation_id: request.generation_id,
            member_id: request.member_id.to_string(),
            group_instance_id: text_or_empty(request.group_instance_id.as_deref()),
            assignments: request
                .assignments
                .iter()
                .map(|a| proto::MemberAssignment {
                    member_id: a.member_id.to_string(),
                    assignment: a.assignment.clone(),
                })
                .collect(),
        })
        .await;
    SyncGroupResponse::default()
        .with_error_code(kafka_code(answered.error))
        .with_assignment(answered.assignment)
}

pub(super) async fn heartbeat(
    session: &Session,
    request: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let answered = session
        .broker
        .heartbeat(proto::HeartbeatRequest {
            group_id: request.group_id.0.to_string(),
            generation_id: request.generation_id,
            member_id: request.member_id.to_string(),
            group_instance_id: text_or_empty(request.group_instance_id.as_deref()),
        })
        .await;
    HeartbeatResponse::default().with_error_code(kafka_code(answered.error))
}

pub(super) async fn leave_group(
    session: &Session,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group_id = request.group_id.0.to_string();
    let leaving: Vec<(String, Option<StrBytes>)> = match version {
        0..=2 => vec![(request.member_id.to_string(), None)],
        _ => request
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.clone()))
            .collect(),
    };
    let mut members = Vec::new();
    let mut first_error = 0;
    for (member_id, instance) in leaving {
        let answered = session
            .broker
            .leave_group(proto::LeaveGroupRequest {
                group_id: group_id.clone(),
                member_id: member_id.clone(),
                group_instance_id: text_or_empty(instance.as_deref()),
            })
            .await;
        let code = kafka_code(answered.error);
        if first_error == 0 {
            first_error = code;
        }
        members.push(
            MemberResponse::default()
                .with_member_id(member_id.into())
                .with_group_instance_id(instance)
                .with_error_code(code),
        );
    }
    match version {
        0..=2 => LeaveGroupResponse::default().with_error_code(first_error),
        _ => LeaveGroupResponse::default().with_members(members),
    }
}

pub(super) async fn offset_commit(
    session: &Session,
    request: OffsetCommitRequest,
    _version: i16,
) -> OffsetCommitResponse {
    // Kafka refuses, partition by partition, commits to partitions that
    // do not exist and negative offsets; the rest are committed.
    let mut refused: Vec<(TopicName, i32, i16)> = Vec::new();
    let mut topics: Vec<proto::OffsetCommitTopic> = Vec::new();
    for topic in &request.topics {
        let count = session.broker.partition_count(&topic.name.0);
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            let exists = u32::try_from(p.partition_index)
                .ok()
                .filter(|&index| count.is_some_and(|count| index < count));
            match (exists, u64::try_from(p.committed_offset)) {
                (Some(partition), Ok(offset)) => partitions.push(proto::OffsetCommitPartition {
                    partition,
                    offset,
                    metadata: text_or_empty(p.committed_metadata.as_deref()),
                }),
                (None, _) => refused.push((
                    topic.name.clone(),
                    p.partition_index,
                    UNKNOWN_TOPIC_OR_PARTITION,
                )),
                (Some(_), Err(_)) => {
                    refused.push((topic.name.clone(), p.partition_index, INVALID_REQUEST))
                }
            }
        }
        if !partitions.is_empty() {
            topics.push(proto::OffsetCommitTopic {
                name: topic.name.0.to_string(),
                partitions,
            });
        }
    }
    let answered = session
        .broker
        .offset_commit(proto::OffsetCommitRequest {
            group_id: request.group_id.0.to_string(),
            generation_id: request.generation_id_or_member_epoch,
            member_id: request.member_id.to_string(),
            group_instance_id: text_or_empty(request.group_instance_id.as_deref()),
            topics,
        })
        .await;
    let code = kafka_code(answered.error);
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let refusal = refused
                        .iter()
                        .find(|(name, index, _)| *name == topic.name && *index == p.partition_index)
                        .map(|(_, _, refusal)| *refusal);
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(refusal.unwrap_or(code))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

pub(super) async fn offset_fetch(
    session: &Session,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    // Null (v2+) asks for every partition the group committed.
    let topics: Vec<proto::OffsetCommitTopic> = request
        .topics
        .iter()
        .flatten()
        .map(|topic| proto::OffsetCommitTopic {
            name: topic.name.0.to_string(),
            partitions: topic
                .partition_indexes
                .iter()
                .filter_map(|&p| u32::try_from(p).ok())
                .map(|partition| proto::OffsetCommitPartition {
                    partition,
                    ..Default::default()
                })
                .collect(),
        })
        .collect();
    let answered = session
        .broker
        .offset_fetch(proto::OffsetFetchRequest {
            group_id: request.group_id.0.to_string(),
            topics,
            require_stable: request.require_stable,
        })
        .await;
    let code = kafka_code(answered.error);
    if answered.error == proto::ErrorCode::UnstableOffsetCommit as i32 && request.topics.is_some() {
        return unstable_offsets(&request);
    }
    let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
    for offset in answered.offsets {
        let partition = OffsetFetchResponsePartition::default()
            .with_partition_index(offset.partition as i32)
            .with_committed_offset(if offset.found {
                offset.offset as i64
            } else {
                -1
            })
            .with_metadata(Some(offset.metadata.into()))
            .with_error_code(code);
        match topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == offset.topic)
        {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(offset.topic.into()))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let mut response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.error_code = code;
    }
    response
}

/// The answer to an OffsetFetch with `require_stable` while a committed
/// transaction's marker has yet to reach the group's offsets: Kafka puts
/// UNSTABLE_OFFSET_COMMIT on each partition concerned, not on the whole
/// response, and clients retry the request for it (librdkafka only
/// then). spool's broker answers for the request as a whole, so every
/// partition asked for carries the error.
fn unstable_offsets(request: &OffsetFetchRequest) -> OffsetFetchResponse {
    let code = kafka_code(proto::ErrorCode::UnstableOffsetCommit as i32);
    let topics = request
        .topics
        .iter()
        .flatten()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&partition| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(-1)
                        .with_error_code(code)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub(super) async fn list_groups(
    session: &Session,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let answered = session.broker.list_groups(proto::ListGroupsRequest {});
    let wanted = |state: &str| {
        request.states_filter.is_empty()
            || request
                .states_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state))
    };
    let groups = answered
        .groups
        .into_iter()
        .filter(|g| wanted(&g.state))
        .map(|g| {
            let protocol_type = match g.protocol_type.as_str() {
                "" => StrBytes::from_static_str(CONSUMER_PROTOCOL_TYPE),
                other => other.to_string().into(),
            };
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(g.group_id.into()))
                .with_protocol_type(protocol_type);
            if version >= 4 {
                listed.group_state = g.state.into();
            }
            listed
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(super) async fn describe_groups(
    session: &Session,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let answered = session
        .broker
        .describe_groups(proto::DescribeGroupsRequest {
            group_ids: request.groups.iter().map(|g| g.0.to_string()).collect(),
        })
        .await;
    let groups = answered
        .groups
        .into_iter()
        .map(|g| {
            let members: Vec<DescribedGroupMember> = g
                .members
                .into_iter()
                .map(|m| {
                    let mut member = DescribedGroupMember::default()
                        .with_member_id(m.member_id.into())
                        .with_client_id(m.client_id.into())
                        .with_client_host(m.client_host.into())
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment);
                    if version >= 4 {
                        member.group_instance_id = none_if_empty(m.group_instance_id);
                    }
                    member
                })
                .collect();
            let protocol_type: StrBytes = g.protocol_type.into();
            DescribedGroup::default()
                .with_error_code(kafka_code(g.error))
                .with_group_id(GroupId(g.group_id.into()))
                .with_group_state(g.state.into())
                .with_protocol_type(protocol_type)
                .with_protocol_data(g.protocol_name.into())
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups: each group deleted at its coordinator (a client sends
/// each group to its own, as it found it).
pub(super) async fn delete_groups(
    session: &Session,
    request: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group in request.groups_names {
        let answered = session
            .broker
            .delete_group(proto::DeleteGroupRequest {
                group_id: group.0.to_string(),
                topics: Vec::new(),
            })
            .await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(kafka_code(answered.error)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// OffsetDelete: a group's offsets of some partitions, each refused while
/// a member subscribes to its topic.
pub(super) async fn offset_delete(
    session: &Session,
    request: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let asked: Vec<proto::OffsetCommitTopic> = request
        .topics
        .iter()
        .map(|t| proto::OffsetCommitTopic {
            name: t.name.to_string(),
            partitions: t
                .partitions
                .iter()
                .map(|p| proto::OffsetCommitPartition {
                    partition: u32::try_from(p.partition_index).unwrap_or(u32::MAX),
                    ..Default::default()
                })
                .collect(),
        })
        .collect();
    let answered = session
        .broker
        .delete_group(proto::DeleteGroupRequest {
            group_id: request.group_id.to_string(),
            topics: asked,
        })
        .await;
    if answered.error != 0 {
        return OffsetDeleteResponse::default().with_error_code(kafka_code(answered.error));
    }
    let refusal = |topic: &str, partition: i32| {
        answered
            .refused
            .iter()
            .find(|r| r.topic == topic && i64::from(r.partition) == i64::from(partition))
            .map_or(0, |r| kafka_code(r.error))
    };
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(refusal(&t.name, p.partition_index))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
