//! [`GroupCoordinator`]: the request handlers of the group protocol.
//!
//! A broker coordinates the groups whose shard (partition of the offsets
//! topic) it leads; every handler is given the group's loaded shard by
//! the broker (`super::Broker`), which answers `NOT_COORDINATOR` itself
//! when this broker does not lead it.
//!
//! All group state sits behind one mutex that is never held across an
//! `.await`: a JoinGroup or SyncGroup that has to wait parks a oneshot
//! sender in the member and awaits the receiver after unlocking. A ticker
//! task (started with the first group request) expires silent members,
//! ends join phases that ran past their deadline, and lets go of the
//! groups of shards this broker no longer leads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::offsets::{OffsetShard, Shard, OFFSETS_TOPIC};
use super::state::{Group, GroupState, Member};
use crate::broker::checks::validate_group_id;
use crate::broker::shards::Shards;
use crate::broker::Broker;
use crate::Result;
use spool_protocol::errors::ErrorResponse;
use spool_protocol::proto::*;

/// Group timing limits and the offsets topic's shape.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// Shortest session timeout a member may ask for (default 6 s, Kafka's
    /// `group.min.session.timeout.ms`: shorter ones turn GC pauses and
    /// network blips into rebalances). Tests lower it.
    pub min_session_timeout: Duration,
    /// Longest (default 30 minutes, Kafka's).
    pub max_session_timeout: Duration,
    /// How often silent members and overdue join phases are checked
    /// (default 100 ms: a small fraction of any session timeout).
    pub tick: Duration,
    /// Partitions of `__consumer_offsets`, fixed when the cluster first
    /// creates it (default 8: coordinators spread over up to eight
    /// brokers; each partition is a Raft group, so the default stays
    /// well below Kafka's 50, which is sized for large clusters).
    pub offsets_partitions: u32,
    /// Replicas of each (default 3, Kafka's; fewer on smaller clusters).
    pub offsets_replication_factor: u32,
    /// How long the first rebalance of an empty group waits for more
    /// members (Kafka's `group.initial.rebalance.delay.ms`). Default 0,
    /// not Kafka's 3 s: a first consumer starts at once, and consumers
    /// started together rebalance once more instead; set it where many
    /// members start together and each rebalance is costly.
    pub initial_rebalance_delay: Duration,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(1800),
            tick: Duration::from_millis(100),
            offsets_partitions: 8,
            offsets_replication_factor: 3,
            initial_rebalance_delay: Duration::ZERO,
        }
    }
}

/// The protocol type of consumers, Kafka's and spool's alike; a join that
/// names none is one of them.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

pub struct GroupCoordinator {
    config: GroupConfig,
    pub(super) groups: Mutex<HashMap<String, Group>>,
    /// The shards of the offsets topic this broker loaded.
    pub(super) shards: Shards<OffsetShard>,
    next_member: AtomicU64,
    ticker: OnceLock<()>,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            groups: Mutex::new(HashMap::new()),
            shards: Shards::new(OFFSETS_TOPIC),
            next_member: AtomicU64::new(1),
            ticker: OnceLock::new(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The shard of `group`, loaded for the current term of this broker's
    /// leadership; `NotCoordinator` when another broker leads it.
    pub(super) async fn shard_for(&self, broker: &Broker, group: &str) -> Result<Arc<Shard>> {
        // Groups of an earlier term are stale: their members may have
        // moved on to another coordinator meanwhile.
        let abandon = |index| self.abandon_groups(|g| g.shard == index);
        self.shards.for_key(broker, group, abandon).await
    }

    /// Drops the groups `which` picks, answering their waiting members
    /// `NOT_COORDINATOR`.
    fn abandon_groups(&self, which: impl Fn(&Group) -> bool) {
        self.groups.lock().retain(|_, group| {
            if !which(group) {
                return true;
            }
            group.abandon(ErrorCode::NotCoordinator);
            tracing::info!(group = %group.id, "no longer coordinating the group");
            false
        });
    }

    fn start_ticker(self: &Arc<Self>) {
        self.ticker.get_or_init(|| {
            let weak: Weak<GroupCoordinator> = Arc::downgrade(self);
            let tick = self.config.tick;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(tick).await;
                    let Some(coordinator) = weak.upgrade() else {
                        return;
                    };
                    coordinator.tick(Instant::now());
                }
            });
        });
    }

    fn new_member_id(&self, instance: Option<&str>) -> String {
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!(
            "{}-{n}-{:x}",
            instance.unwrap_or("member"),
            nanos & 0xffff_ffff
        )
    }

    /// JoinGroup: waits until the rebalance's join phase ends.
    pub(crate) async fn join(
        self: &Arc<Self>,
        shard: &Shard,
        request: JoinGroupRequest,
    ) -> JoinGroupResponse {
        self.start_ticker();
        let reply = match self.register_join(shard, request) {
            Ok(JoinOutcome::Wait(reply)) => reply,
            Ok(JoinOutcome::Done(response)) => return response,
            Err(response) => return *response,
        };
        reply.await.unwrap_or_else(|_| {
            JoinGroupResponse::failed(
                ErrorCode::UnknownMemberId,
                "the member left the group".into(),
            )
        })
    }

    fn register_join(
        &self,
        shard: &Shard,
        request: JoinGroupRequest,
    ) -> std::result::Result<JoinOutcome, Box<JoinGroupResponse>> {
        validate_group_id(&request.group_id)
            .map_err(|e| JoinGroupResponse::failed(ErrorCode::InvalidGroupId, e.to_string()))?;
        let session = Duration::from_millis(request.session_timeout_ms.into());
        if session < self.config.min_session_timeout || session > self.config.max_session_timeout {
            return Err(Box::new(JoinGroupResponse::failed(
                ErrorCode::InvalidSessionTimeout,
                format!(
                    "session timeout {session:?} is outside [{:?}, {:?}]",
                    self.config.min_session_timeout, self.config.max_session_timeout
                ),
            )));
        }
        let protocols: Vec<(String, Bytes)> = request
            .protocols
            .iter()
            .map(|p| (p.name.clone(), p.metadata.clone()))
            .collect();
        if protocols.is_empty() {
            return Err(Box::new(JoinGroupResponse::failed(
                ErrorCode::InconsistentGroupProtocol,
                "no assignor offered".into(),
            )));
        }
        let now = Instant::now();
        let instance = Some(request.group_instance_id.clone()).filter(|i| !i.is_empty());
        let mut groups = self.groups.lock();
        let group = groups
            .entry(request.group_id.clone())
            .or_insert_with(|| Group::new(&request.group_id, shard.index));
        let protocol_type = match request.protocol_type.as_str() {
            "" => CONSUMER_PROTOCOL_TYPE,
            other => other,
        };
        if group.members.is_empty() {
            group.protocol_type = protocol_type.to_string();
        }
        if group.protocol_type != protocol_type {
            return Err(Box::new(JoinGroupResponse::failed(
                ErrorCode::InconsistentGroupProtocol,
                format!(
                    "the group's members are of protocol type `{}`, not `{protocol_type}`",
                    group.protocol_type
                ),
            )));
        }
        if !group.supports(&protocols) {
            return Err(Box::new(JoinGroupResponse::failed(
                ErrorCode::InconsistentGroupProtocol,
                "no assignor in common with the group".into(),
            )));
        }
        let mut member_id = request.member_id.clone();
        let mut kept_assignment = Bytes::new();
        if member_id.is_empty() {
            member_id = self.new_member_id(instance.as_deref());
            if let Some(old) = instance
                .as_deref()
                .and_then(|i| group.member_by_instance(i))
                .map(|m| m.id.clone())
            {
                // A static member came back: it takes over its old identity.
                let previous = group.members.remove(&old).expect("found above");
                if group.leader.as_deref() == Some(old.as_str()) {
                    group.leader = Some(member_id.clone());
                }
                kept_assignment = previous.assignment.clone();
                if group.state == GroupState::Stable
                    && same_subscription(&previous.protocols, &protocols)
                {
                    group.members.insert(
                        member_id.clone(),
                        member(
                            &member_id,
                            &instance,
                            protocols,
                            &request,
                            now,
                            kept_assignment,
                        ),
                    );
                    tracing::info!(group = %group.id, member = %member_id, "static member rejoined without a rebalance");
                    return Ok(JoinOutcome::Done(join_response(group, &member_id, true)));
                }
            }
        } else if !group.members.contains_key(&member_id) {
            return Err(Box::new(JoinGroupResponse::failed(
                ErrorCode::UnknownMemberId,
                format!("unknown member {member_id}"),
            )));
        } else if let Some(i) = instance.as_deref() {
            if group
                .member_by_instance(i)
                .is_some_and(|m| m.id != member_id)
            {
                return Err(Box::new(JoinGroupResponse::failed(
                    ErrorCode::FencedInstanceId,
                    format!("instance {i} has a newer member"),
                )));
            }
        }
        let (reply, waiting) = oneshot::channel();
        let mut entry = member(
            &member_id,
            &instance,
            protocols,
            &request,
            now,
            kept_assignment,
        );
        entry.pending_join = Some(reply);
        group.members.insert(member_id.clone(), entry);
        group.prepare_rebalance(now, self.config.initial_rebalance_delay);
        complete_join_if_ready(group, now);
        Ok(JoinOutcome::Wait(waiting))
    }

    /// SyncGroup: the leader hands in the assignment; every member gets its
    /// own once the leader has.
    pub async fn sync(&self, request: SyncGroupRequest) -> SyncGroupResponse {
        let waiting = {
            let mut groups = self.groups.lock();
            let Some(group) = groups.get_mut(&request.group_id) else {
                return SyncGroupResponse::refused(ErrorCode::UnknownMemberId);
            };
            if let Err(code) = check_member(
                group,
                &request.member_id,
                &request.group_instance_id,
                request.generation_id,
            ) {
                return SyncGroupResponse::refused(code);
            }
            match group.state {
                GroupState::PreparingRebalance => {
                    return SyncGroupResponse::refused(ErrorCode::RebalanceInProgress)
                }
                GroupState::Empty => return SyncGroupResponse::refused(ErrorCode::UnknownMemberId),
                GroupState::Stable => {
                    let assignment = group.members[&request.member_id].assignment.clone();
                    return SyncGroupResponse {
                        assignment,
                        ..Default::default()
                    };
                }
                GroupState::CompletingRebalance => {}
            }
            let (reply, waiting) = oneshot::channel();
            group
                .members
                .get_mut(&request.member_id)
                .expect("checked")
                .pending_sync = Some(reply);
            if group.leader.as_deref() == Some(request.member_id.as_str()) {
                for assignment in &request.assignments {
                    if let Some(m) = group.members.get_mut(&assignment.member_id) {
                        m.assignment = assignment.assignment.clone();
                    }
                }
                group.state = GroupState::Stable;
                group.sync_deadline = None;
                tracing::info!(group = %group.id, generation = group.generation, members = group.members.len(), "group stable");
                for m in group.members.values_mut() {
                    if let Some(sync) = m.pending_sync.take() {
                        let _ = sync.send(SyncGroupResponse {
                            assignment: m.assignment.clone(),
                            ..Default::default()
                        });
                    }
                }
            }
            waiting
        };
        waiting
            .await
            .unwrap_or_else(|_| SyncGroupResponse::refused(ErrorCode::RebalanceInProgress))
    }

    pub fn heartbeat(&self, request: HeartbeatRequest) -> HeartbeatResponse {
        let mut groups = self.groups.lock();
        let code = match groups.get_mut(&request.group_id) {
            None => ErrorCode::UnknownMemberId,
            Some(group) => match check_member(
                group,
                &request.member_id,
                &request.group_instance_id,
                request.generation_id,
            ) {
                Err(code) => code,
                Ok(()) => {
                    group
                        .members
                        .get_mut(&request.member_id)
                        .expect("checked")
                        .last_heartbeat = Instant::now();
                    if group.state == GroupState::PreparingRebalance {
                        ErrorCode::RebalanceInProgress
                    } else {
                        ErrorCode::None
                    }
                }
            },
        };
        HeartbeatResponse {
            error: code as i32,
            message: if code == ErrorCode::None {
                String::new()
            } else {
                format!("{code:?}")
            },
        }
    }

    pub fn leave(&self, request: LeaveGroupRequest) -> LeaveGroupResponse {
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(&request.group_id) else {
            return LeaveGroupResponse {
                error: ErrorCode::UnknownMemberId as i32,
                message: "unknown group".into(),
            };
        };
        let id = if request.member_id.is_empty() {
            group
                .member_by_instance(&request.group_instance_id)
                .map(|m| m.id.clone())
        } else {
            Some(request.member_id.clone()).filter(|id| group.members.contains_key(id))
        };
        let Some(id) = id else {
            return LeaveGroupResponse {
                error: ErrorCode::UnknownMemberId as i32,
                message: "unknown member".into(),
            };
        };
        group.members.remove(&id);
        tracing::info!(group = %group.id, member = %id, "member left");
        rebalance_after_departure(group, Instant::now());
        LeaveGroupResponse::default()
    }

    /// Lets go of shards this broker no longer leads (and their groups),
    /// expires members whose session ran out and ends overdue join phases.
    pub fn tick(&self, now: Instant) {
        let lost = self.shards.forget_lost();
        if !lost.is_empty() {
            self.abandon_groups(|g| lost.contains(&g.shard));
        }
        let mut groups = self.groups.lock();
        for group in groups.values_mut() {
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    m.pending_join.is_none()
                        && now.duration_since(m.last_heartbeat) > m.session_timeout
                })
                .map(|m| m.id.clone())
                .collect();
            for id in &expired {
                tracing::info!(group = %group.id, member = %id, "member session expired");
                group.members.remove(id);
            }
            if !expired.is_empty() {
                rebalance_after_departure(group, now);
            }
            drop_members_that_never_synced(group, now);
            complete_join_if_ready(group, now);
        }
    }
}

enum JoinOutcome {
    Wait(oneshot::Receiver<JoinGroupResponse>),
    Done(JoinGroupResponse),
}

fn member(
    id: &str,
    instance: &Option<String>,
    protocols: Vec<(String, Bytes)>,
    request: &JoinGroupRequest,
    now: Instant,
    assignment: Bytes,
) -> Member {
    let session_timeout = Duration::from_millis(request.session_timeout_ms.into());
    let rebalance_timeout = match request.rebalance_timeout_ms {
        0 => session_timeout,
        ms => Duration::from_millis(ms.into()),
    };
    Member {
        id: id.to_string(),
        instance_id: instance.clone(),
        client_id: request.client_id.clone(),
        client_host: request.client_host.clone(),
        protocols,
        session_timeout,
        rebalance_timeout,
        last_heartbeat: now,
        assignment,
        pending_join: None,
        pending_sync: None,
    }
}

/// Whether a restarted static member asks for what it had: the same
/// assignors and, where the metadata is a consumer-protocol subscription,
/// the same topics (the partitions it owned before the restart naturally
/// differ: a new process owns nothing yet).
fn same_subscription(before: &[(String, Bytes)], now: &[(String, Bytes)]) -> bool {
    use spool_protocol::consumer_protocol::Subscription;
    before.len() == now.len()
        && before
            .iter()
            .zip(now)
            .all(|((name_a, meta_a), (name_b, meta_b))| {
                name_a == name_b
                    && match (Subscription::decode(meta_a), Subscription::decode(meta_b)) {
                        (Ok(a), Ok(b)) => a.topics == b.topics,
                        _ => meta_a == meta_b,
                    }
            })
}

/// Checks that `member_id` of `generation` belongs to the group. A static
/// member (`instance_id` set) replaced by a newer instance is fenced, as
/// in Kafka, rather than told it is unknown: it must stop, not rejoin.
pub(super) fn check_member(
    group: &Group,
    member_id: &str,
    instance_id: &str,
    generation: i32,
) -> std::result::Result<(), ErrorCode> {
    if !instance_id.is_empty()
        && group
            .member_by_instance(instance_id)
            .is_some_and(|m| m.id != member_id)
    {
        return Err(ErrorCode::FencedInstanceId);
    }
    if !group.members.contains_key(member_id) {
        return Err(ErrorCode::UnknownMemberId);
    }
    if generation != group.generation {
        return Err(ErrorCode::IllegalGeneration);
    }
    Ok(())
}

/// A group whose leader never sent the assignment would wait forever (the
/// followers' heartbeats keep them alive): past the sync deadline, members
/// that have not synced are dropped and the group rebalances.
fn drop_members_that_never_synced(group: &mut Group, now: Instant) {
    let overdue = group.state == GroupState::CompletingRebalance
        && group.sync_deadline.is_some_and(|d| now >= d);
    if !overdue {
        return;
    }
    let silent: Vec<String> = group
        .members
        .values()
        .filter(|m| m.pending_sync.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in &silent {
        tracing::info!(group = %group.id, member = %id, "member never synced; dropping it");
        group.members.remove(id);
    }
    group.sync_deadline = None;
    rebalance_after_departure(group, now);
}

fn rebalance_after_departure(group: &mut Group, now: Instant) {
    if group.members.is_empty() {
        group.state = GroupState::Empty;
        group.leader = None;
        group.join_deadline = None;
    } else {
        // Not the first rebalance of a new group: no initial delay.
        group.prepare_rebalance(now, Duration::ZERO);
        complete_join_if_ready(group, now);
    }
}

/// Ends the join phase once every member rejoined or the deadline passed:
/// members that did not rejoin are dropped, the generation moves on, and
/// every waiting JoinGroup is answered (the leader gets the members).
fn complete_join_if_ready(group: &mut Group, now: Instant) {
    if group.state != GroupState::PreparingRebalance {
        return;
    }
    let overdue = group.join_deadline.is_some_and(|d| now >= d);
    if !group.all_joined() && !overdue {
        return;
    }
    group.members.retain(|_, m| m.pending_join.is_some());
    group.generation += 1;
    group.join_deadline = None;
    group.initial_delay_cap = None;
    if group.members.is_empty() {
        group.state = GroupState::Empty;
        group.leader = None;
        return;
    }
    group.protocol = group.choose_protocol();
    if !group
        .leader
        .as_ref()
        .is_some_and(|l| group.members.contains_key(l))
    {
        group.leader = group.members.keys().next().cloned();
    }
    group.state = GroupState::CompletingRebalance;
    group.sync_deadline = Some(now + group.longest_rebalance_timeout());
    tracing::info!(group = %group.id, generation = group.generation, members = group.members.len(), "join phase complete");
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in ids {
        let response = join_response(group, &id, false);
        let member = group.members.get_mut(&id).expect("listed above");
        member.last_heartbeat = now;
        if let Some(reply) = member.pending_join.take() {
            let _ = reply.send(response);
        }
    }
}

fn join_response(group: &Group, member_id: &str, skip_assignment: bool) -> JoinGroupResponse {
    let protocol = group.protocol.clone().unwrap_or_default();
    let leader = group.leader.clone().unwrap_or_default();
    let members = if leader == member_id {
        group
            .members
            .values()
            .map(|m| JoinGroupMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone().unwrap_or_default(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinGroupResponse {
        generation_id: group.generation,
        protocol_name: protocol,
        leader_id: leader,
        member_id: member_id.to_string(),
        members,
        skip_assignment,
        ..Default::default()
    }
}
