//! The kinds of request routing knows: those split by partition leader,
//! those for a group's or a transactional id's coordinator, those for the
//! controller's leader.

use spool_protocol::proto::*;

/// A request for the controller's leader (topic creation and deletion).
pub(crate) trait ControllerRequest: Clone + Send + 'static {
    type Response: Send;
    /// Whether the answer asks the client to try again, here or at
    /// another broker: the broker asked does not lead the controller, the
    /// controller has no leader yet, or its leader did not answer in time.
    fn asks_retry(response: &Self::Response) -> bool;
    fn topic_names(&self) -> Vec<String>;
    /// Whether `metadata` already reflects the request.
    fn visible_in(metadata: &MetadataResponse) -> bool;
}

/// Whether a topic answer asks to be retried: a broker that does not lead
/// the controller, or a controller with no leader yet.
fn retriable(topics: &[TopicResult]) -> bool {
    topics
        .iter()
        .any(|t| ErrorCode::try_from(t.error).is_ok_and(|code| code.is_retriable()))
}

impl ControllerRequest for CreateTopicsRequest {
    type Response = CreateTopicsResponse;
    fn asks_retry(response: &CreateTopicsResponse) -> bool {
        retriable(&response.topics)
    }
    fn topic_names(&self) -> Vec<String> {
        self.topics.iter().map(|t| t.name.clone()).collect()
    }
    fn visible_in(metadata: &MetadataResponse) -> bool {
        metadata
            .topics
            .iter()
            .all(|t| t.error == ErrorCode::None as i32)
    }
}

impl ControllerRequest for DeleteTopicsRequest {
    type Response = DeleteTopicsResponse;
    fn asks_retry(response: &DeleteTopicsResponse) -> bool {
        retriable(&response.topics)
    }
    fn topic_names(&self) -> Vec<String> {
        self.names.clone()
    }
    fn visible_in(metadata: &MetadataResponse) -> bool {
        metadata
            .topics
            .iter()
            .all(|t| t.error != ErrorCode::None as i32)
    }
}

/// A request whose topics and partitions can be split by leader.
pub(crate) trait Partitioned: Sized + Send + 'static {
    type Response: Default + Send;
    fn topic_names(&self) -> Vec<String>;
    /// The request split into one per leader (`None`: leader unknown).
    fn split(self, leader_of: impl Fn(&str, u32) -> Option<u32>) -> Vec<(Option<u32>, Self)>;
    fn merge(into: &mut Self::Response, part: Self::Response);
    /// Partitions whose answer says the leader moved.
    fn stale(response: &Self::Response) -> Vec<(String, u32)>;
    /// An answer giving every partition of this request `code`.
    fn failed(&self, code: ErrorCode, message: &str) -> Self::Response;
}

macro_rules! partitioned {
    ($request:ident, $topic:ident, $response:ident, $topic_result:ident, $partition_result:ident) => {
        impl Partitioned for $request {
            type Response = $response;

            fn topic_names(&self) -> Vec<String> {
                self.topics.iter().map(|t| t.name.clone()).collect()
            }

            fn split(
                mut self,
                leader_of: impl Fn(&str, u32) -> Option<u32>,
            ) -> Vec<(Option<u32>, Self)> {
                let topics = std::mem::take(&mut self.topics);
                let mut parts: Vec<(Option<u32>, Self)> = Vec::new();
                for topic in topics {
                    for partition in topic.partitions {
                        let leader = leader_of(&topic.name, partition.partition);
                        let index = match parts.iter().position(|(l, _)| *l == leader) {
                            Some(index) => index,
                            None => {
                                parts.push((leader, self.clone()));
                                parts.len() - 1
                            }
                        };
                        let part = &mut parts[index].1;
                        match part.topics.iter_mut().find(|t| t.name == topic.name) {
                            Some(t) => t.partitions.push(partition),
                            None => part.topics.push($topic {
                                name: topic.name.clone(),
                                partitions: vec![partition],
                            }),
                        }
                    }
                }
                parts
            }

            fn merge(into: &mut $response, part: $response) {
                for topic in part.topics {
                    match into.topics.iter_mut().find(|t| t.name == topic.name) {
                        Some(t) => t.partitions.extend(topic.partitions),
                        None => into.topics.push(topic),
                    }
                }
            }

            // A broker that does not know the partition (it restarted
            // and has not read the metadata up to it yet) is as stale a
            // route as one that no longer leads it.
            fn stale(response: &$response) -> Vec<(String, u32)> {
                response
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .filter(|p| {
                                p.error == ErrorCode::NotLeader as i32
                                    || p.error == ErrorCode::UnknownTopicOrPartition as i32
                            })
                            .map(|p| (t.name.clone(), p.partition))
                    })
                    .collect()
            }

            // Some partition results have no fields beyond these.
            #[allow(clippy::needless_update)]
            fn failed(&self, code: ErrorCode, message: &str) -> $response {
                $response {
                    topics: self
                        .topics
                        .iter()
                        .map(|t| $topic_result {
                            name: t.name.clone(),
                            partitions: t
                                .partitions
                                .iter()
                                .map(|p| $partition_result {
                                    partition: p.partition,
                                    error: code as i32,
                                    message: message.to_string(),
                                    ..Default::default()
                                })
                                .collect(),
                        })
                        .collect(),
                }
            }
        }
    };
}

partitioned!(
    ProduceRequest,
    ProduceTopic,
    ProduceResponse,
    ProduceTopicResult,
    ProducePartitionResult
);
partitioned!(
    FetchRequest,
    FetchTopic,
    FetchResponse,
    FetchTopicResult,
    FetchPartitionResult
);
partitioned!(
    WriteTxnMarkersRequest,
    WriteTxnMarkersTopic,
    WriteTxnMarkersResponse,
    WriteTxnMarkersTopicResult,
    WriteTxnMarkersPartitionResult
);
partitioned!(
    DeleteRecordsRequest,
    DeleteRecordsTopic,
    DeleteRecordsResponse,
    DeleteRecordsTopicResult,
    DeleteRecordsPartitionResult
);
partitioned!(
    ListOffsetsRequest,
    ListOffsetsTopic,
    ListOffsetsResponse,
    ListOffsetsTopicResult,
    ListOffsetsPartitionResult
);

/// A request for a group's (or a transactional id's) coordinator.
pub(crate) trait GroupRequest: Clone + Send + 'static {
    type Response: Send;
    /// `FindCoordinator`'s key type: 0 for a group, 1 for a transactional id.
    const KEY_TYPE: u32 = spool_protocol::coordinator::KEY_TYPE_GROUP;
    /// The group id, or the transactional id.
    fn coordinator_key(&self) -> &str;
    /// The answer's error code.
    fn error(response: &Self::Response) -> i32;
}

macro_rules! group_request {
    ($($request:ident => $response:ident),* $(,)?) => {
        $(
            impl GroupRequest for $request {
                type Response = $response;
                fn coordinator_key(&self) -> &str {
                    &self.group_id
                }
                fn error(response: &$response) -> i32 {
                    response.error
                }
            }
        )*
    };
}

group_request!(
    JoinGroupRequest => JoinGroupResponse,
    SyncGroupRequest => SyncGroupResponse,
    HeartbeatRequest => HeartbeatResponse,
    LeaveGroupRequest => LeaveGroupResponse,
    OffsetCommitRequest => OffsetCommitResponse,
    OffsetFetchRequest => OffsetFetchResponse,
    DeleteGroupRequest => DeleteGroupResponse,
    TxnOffsetCommitRequest => TxnResponse,
);

macro_rules! transaction_request {
    ($($request:ident => $response:ident),* $(,)?) => {
        $(
            impl GroupRequest for $request {
                type Response = $response;
                const KEY_TYPE: u32 = spool_protocol::coordinator::KEY_TYPE_TRANSACTION;
                fn coordinator_key(&self) -> &str {
                    &self.transactional_id
                }
                fn error(response: &$response) -> i32 {
                    response.error
                }
            }
        )*
    };
}

transaction_request!(
    InitProducerIdRequest => InitProducerIdResponse,
    AddPartitionsToTxnRequest => TxnResponse,
    AddOffsetsToTxnRequest => TxnResponse,
    EndTxnRequest => EndTxnResponse,
    VerifyTxnPartitionRequest => TxnResponse,
    AbortTransactionRequest => TxnResponse,
);

/// One transactional id of a DescribeTransactions request, sent to its
/// coordinator on its own.
#[derive(Clone)]
pub(crate) struct DescribeOneTransaction(pub String);

impl GroupRequest for DescribeOneTransaction {
    type Response = TransactionDescription;
    const KEY_TYPE: u32 = spool_protocol::coordinator::KEY_TYPE_TRANSACTION;
    fn coordinator_key(&self) -> &str {
        &self.0
    }
    fn error(response: &TransactionDescription) -> i32 {
        response.error
    }
}

/// One group of a DescribeGroups request, which the client sends to each
/// group's coordinator on its own.
#[derive(Clone)]
pub(crate) struct DescribeOneGroup(pub String);

impl GroupRequest for DescribeOneGroup {
    type Response = GroupDescription;
    fn coordinator_key(&self) -> &str {
        &self.0
    }
    fn error(response: &GroupDescription) -> i32 {
        response.error
    }
}
