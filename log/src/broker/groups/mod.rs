//! Consumer groups: Kafka's classic group protocol (join, sync, heartbeat,
//! leave) with generations, session timeouts, rebalances and static
//! membership, plus committed offsets in the compacted `__consumer_offsets`
//! topic.
//!
//! The broker coordinates; it never looks inside subscriptions or
//! assignments. The group's leader (a client) computes the assignment with
//! the assignor all members agreed on, as in Kafka.

mod coordinator;
mod offsets;
mod queries;
mod state;

pub use coordinator::{GroupConfig, GroupCoordinator};
pub use offsets::OFFSETS_TOPIC;

use crate::proto::*;

use super::Broker;

/// The group RPCs as broker methods, so both transports reach them the same
/// way as every other request.
impl Broker {
    pub async fn join_group(&self, request: JoinGroupRequest) -> JoinGroupResponse {
        self.groups().join(request).await
    }
    pub async fn sync_group(&self, request: SyncGroupRequest) -> SyncGroupResponse {
        self.groups().sync(request).await
    }
    pub fn heartbeat(&self, request: HeartbeatRequest) -> HeartbeatResponse {
        self.groups().heartbeat(request)
    }
    pub fn leave_group(&self, request: LeaveGroupRequest) -> LeaveGroupResponse {
        self.groups().leave(request)
    }
    pub async fn offset_commit(&self, request: OffsetCommitRequest) -> OffsetCommitResponse {
        self.groups().commit_offsets(request).await
    }
    pub fn offset_fetch(&self, request: OffsetFetchRequest) -> OffsetFetchResponse {
        self.groups().fetch_offsets(request)
    }
    pub fn list_groups(&self, _request: ListGroupsRequest) -> ListGroupsResponse {
        self.groups().list_groups()
    }
    pub fn describe_groups(&self, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
        self.groups().describe_groups(request)
    }
}
