//! The state of one consumer group: members, generation, and the rebalance
//! in progress. Pure data and transitions; the coordinator owns locking,
//! timing and replies.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use spool_protocol::errors::ErrorResponse;
use spool_protocol::proto::{ErrorCode, JoinGroupResponse, SyncGroupResponse};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// No members (committed offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    /// The client id and host it joined with, for describing the group.
    pub client_id: String,
    pub client_host: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub last_heartbeat: Instant,
    pub assignment: Bytes,
    /// Set while the member waits in JoinGroup for the rebalance to finish.
    pub pending_join: Option<oneshot::Sender<JoinGroupResponse>>,
    pub pending_sync: Option<oneshot::Sender<SyncGroupResponse>>,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

pub struct Group {
    pub id: String,
    /// The partition of the offsets topic the group id hashes to.
    pub shard: u32,
    pub state: GroupState,
    pub generation: i32,
    /// What its members are ("consumer", "connect", ...), set by the
    /// first member to join an empty group.
    pub protocol_type: String,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// When the join phase of the current rebalance ends at the latest.
    pub join_deadline: Option<Instant>,
    /// During the first rebalance of an empty group, with an initial
    /// delay: the join phase waits for its deadline even when everyone
    /// known has joined, so members starting together share one
    /// generation. Holds the latest the delay may be extended to.
    pub initial_delay_cap: Option<Instant>,
    /// When the leader must have sent the assignment: past it, members
    /// that did not sync are dropped and the group rebalances.
    pub sync_deadline: Option<Instant>,
}

impl Group {
    pub fn new(id: &str, shard: u32) -> Group {
        Group {
            id: id.to_string(),
            shard,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            join_deadline: None,
            initial_delay_cap: None,
            sync_deadline: None,
        }
    }

    pub fn member_by_instance(&self, instance_id: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// Starts (or continues) a rebalance: members must rejoin before the
    /// longest rebalance timeout passes. The first rebalance of an empty
    /// group waits `initial_delay` for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`), extended by each member that
    /// joins meanwhile, up to the rebalance timeout.
    pub fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        let timeout = self.longest_rebalance_timeout();
        if self.state == GroupState::Empty && !initial_delay.is_zero() {
            self.initial_delay_cap = Some(now + timeout);
        }
        if let Some(cap) = self.initial_delay_cap {
            self.join_deadline = Some((now + initial_delay).min(cap));
        }
        if self.state != GroupState::PreparingRebalance {
            if self.initial_delay_cap.is_none() {
                self.join_deadline = Some(now + timeout);
            }
            self.sync_deadline = None;
            // Members waiting for an assignment of the old generation must rejoin.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(sync) = member.pending_sync.take() {
                    let _ = sync.send(SyncGroupResponse::refused(
                        spool_protocol::proto::ErrorCode::RebalanceInProgress,
                    ));
                }
            }
        }
        self.state = GroupState::PreparingRebalance;
    }

    /// The longest rebalance timeout of the members: how long each phase
    /// of a rebalance may take.
    pub fn longest_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Answers every member waiting in JoinGroup or SyncGroup with `code`:
    /// the group is going away from this coordinator.
    pub fn abandon(&mut self, code: ErrorCode) {
        for member in self.members.values_mut() {
            if let Some(join) = member.pending_join.take() {
                let _ = join.send(JoinGroupResponse {
                    error: code as i32,
                    message: format!("{code:?}"),
                    ..Default::default()
                });
            }
            if let Some(sync) = member.pending_sync.take() {
                let _ = sync.send(SyncGroupResponse::refused(code));
            }
        }
    }

    /// True once every member has rejoined (and no initial delay holds
    /// the join phase open).
    pub fn all_joined(&self) -> bool {
        self.initial_delay_cap.is_none() && self.members.values().all(|m| m.pending_join.is_some())
    }

    /// The first protocol (in the leader's order of preference) that every
    /// member supports.
    pub fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .cloned()
    }

    /// Whether a joining member's protocols share one with the group's.
    pub fn supports(&self, protocols: &[(String, Bytes)]) -> bool {
        self.members.is_empty()
            || protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }
}
