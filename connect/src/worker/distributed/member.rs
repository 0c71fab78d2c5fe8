//! [`GroupMember`]: a worker's membership in its group over the client's
//! raw group calls (join, sync, heartbeat, leave), with Kafka Connect's
//! protocol type. Unlike a consumer's membership it assigns nothing
//! itself: the caller joins, computes the assignment when it is the
//! leader, and syncs, so the assignment can use what the caller knows
//! (the config topic).
//!
//! A heartbeat task keeps the session alive between rebalances and wakes
//! the caller when the group starts a rebalance or has forgotten this
//! member. A member that could not reach its coordinator for a whole
//! session takes itself as forgotten too: the coordinator has given its
//! work to others by then, so it must stop that work rather than run it
//! beside its new owner.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use spool_client::proto::{
    ErrorCode, GroupProtocol, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    MemberAssignment, SyncGroupRequest,
};
use spool_client::{Client, ClientError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::protocol::{PROTOCOL_NAME, PROTOCOL_TYPE};
use crate::{ConnectError, Result};

/// How a worker takes part in its group.
#[derive(Clone, Debug)]
pub(crate) struct MemberSettings {
    pub(crate) group_id: String,
    /// The member's client id in the group's description: its worker id.
    pub(crate) client_id: String,
    pub(crate) session_timeout: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) rebalance_timeout: Duration,
}

#[derive(Default)]
struct Shared {
    member_id: String,
    generation: i32,
    rejoin_needed: bool,
    /// A join or sync is under way: heartbeat answers say nothing new.
    joining: bool,
    /// The group dropped this member: what it runs belongs to others now.
    lost: bool,
    /// When the coordinator last answered this member.
    last_answer: Option<Instant>,
}

/// A member's part of a completed join.
#[derive(Clone, Debug)]
pub(crate) struct Joined {
    pub(crate) generation: i32,
    pub(crate) member_id: String,
    pub(crate) leader_id: String,
    /// Every member's id and metadata: given to the leader only.
    pub(crate) members: Vec<(String, Bytes)>,
}

impl Joined {
    pub(crate) fn is_leader(&self) -> bool {
        self.leader_id == self.member_id
    }
}

/// A worker's membership (see the module's comment).
pub(crate) struct GroupMember {
    client: Client,
    settings: MemberSettings,
    shared: Arc<Mutex<Shared>>,
    /// Woken when a rejoin is needed.
    wake: Arc<Notify>,
    /// Whether the last join and sync completed.
    joined: bool,
    heartbeat: Option<JoinHandle<()>>,
}

impl GroupMember {
    pub(crate) fn new(client: Client, settings: MemberSettings) -> GroupMember {
        GroupMember {
            client,
            settings,
            shared: Arc::default(),
            wake: Arc::new(Notify::new()),
            joined: false,
            heartbeat: None,
        }
    }

    /// Woken whenever [`GroupMember::needs_rejoin`] may have become true.
    pub(crate) fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    pub(crate) fn needs_rejoin(&self) -> bool {
        !self.joined || self.shared.lock().rejoin_needed
    }

    /// Asks for a rejoin at the next chance (a change of the work to
    /// share, a revocation done, a failed round).
    pub(crate) fn request_rejoin(&self) {
        {
            let mut shared = self.shared.lock();
            shared.rejoin_needed = true;
            shared.joining = false;
        }
        self.wake.notify_one();
    }

    /// Whether the group dropped this member since this was last asked.
    pub(crate) fn take_lost(&self) -> bool {
        std::mem::take(&mut self.shared.lock().lost)
    }

    /// Whether the group dropped this member (and it has not rejoined).
    pub(crate) fn is_lost(&self) -> bool {
        self.shared.lock().lost
    }

    /// Joins (or rejoins) with `metadata`; `None` when the round must be
    /// tried again (the group moved on meanwhile, or forgot this member:
    /// then [`GroupMember::take_lost`] says so).
    pub(crate) async fn join(&mut self, metadata: Bytes) -> Result<Option<Joined>> {
        self.start_heartbeat();
        self.joined = false;
        let request = {
            let mut shared = self.shared.lock();
            shared.rejoin_needed = false;
            shared.joining = true;
            JoinGroupRequest {
                group_id: self.settings.group_id.clone(),
                member_id: shared.member_id.clone(),
                group_instance_id: String::new(),
                session_timeout_ms: millis(self.settings.session_timeout),
                rebalance_timeout_ms: millis(self.settings.rebalance_timeout),
                protocols: vec![GroupProtocol {
                    name: PROTOCOL_NAME.to_string(),
                    metadata,
                }],
                protocol_type: PROTOCOL_TYPE.to_string(),
                client_id: self.settings.client_id.clone(),
                client_host: String::new(),
            }
        };
        let answer = self.client.join_group(request).await;
        let response = match answer {
            Ok(response) => response,
            Err(e) => return Err(self.failed(e, "joining the worker group")),
        };
        match ErrorCode::from_raw(response.error) {
            ErrorCode::None => {}
            code => return self.refused(code, &response.message, "joining the worker group"),
        }
        let mut shared = self.shared.lock();
        shared.member_id = response.member_id.clone();
        shared.generation = response.generation_id;
        shared.last_answer = Some(Instant::now());
        Ok(Some(Joined {
            generation: response.generation_id,
            member_id: response.member_id,
            leader_id: response.leader_id,
            members: response
                .members
                .into_iter()
                .map(|m| (m.member_id, m.metadata))
                .collect(),
        }))
    }

    /// Syncs the round `joined` completed, handing in `assignments` (the
    /// leader's; none from the others); answers this member's assignment,
    /// or `None` when the round must be tried again.
    pub(crate) async fn sync(
        &mut self,
        joined: &Joined,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Option<Bytes>> {
        let request = SyncGroupRequest {
            group_id: self.settings.group_id.clone(),
            generation_id: joined.generation,
            member_id: joined.member_id.clone(),
            group_instance_id: String::new(),
            assignments: assignments
                .into_iter()
                .map(|(member_id, assignment)| MemberAssignment {
                    member_id,
                    assignment,
                })
                .collect(),
        };
        let response = match self.client.sync_group(request).await {
            Ok(response) => response,
            Err(e) => return Err(self.failed(e, "syncing with the worker group")),
        };
        match ErrorCode::from_raw(response.error) {
            ErrorCode::None => {}
            code => return self.refused(code, &response.message, "syncing with the worker group"),
        }
        {
            let mut shared = self.shared.lock();
            shared.joining = false;
            shared.last_answer = Some(Instant::now());
        }
        self.joined = true;
        Ok(Some(response.assignment))
    }

    /// A join or sync that got no answer: tried again later.
    fn failed(&self, error: ClientError, doing: &str) -> ConnectError {
        self.request_rejoin();
        ConnectError::client(doing, error)
    }

    /// A join or sync the coordinator refused: `None` for a round to try
    /// again, an error for the rest.
    fn refused<T>(&self, code: ErrorCode, message: &str, doing: &str) -> Result<Option<T>> {
        {
            let mut shared = self.shared.lock();
            shared.joining = false;
            shared.rejoin_needed = true;
            match code {
                ErrorCode::UnknownMemberId => {
                    shared.member_id.clear();
                    shared.lost = true;
                }
                ErrorCode::IllegalGeneration => shared.lost = true,
                _ => {}
            }
        }
        match code {
            ErrorCode::RebalanceInProgress
            | ErrorCode::UnknownMemberId
            | ErrorCode::IllegalGeneration => Ok(None),
            code => Err(ConnectError::client(
                doing,
                ClientError::Broker {
                    code,
                    message: message.to_string(),
                },
            )),
        }
    }

    fn start_heartbeat(&mut self) {
        if self.heartbeat.is_some() {
            return;
        }
        let beat = Heartbeat {
            client: self.client.clone(),
            settings: self.settings.clone(),
            shared: Arc::clone(&self.shared),
            wake: Arc::clone(&self.wake),
        };
        self.heartbeat = Some(tokio::spawn(beat.run()));
    }

    /// Stops heartbeating and leaves the group, so the others rebalance at
    /// once rather than after this member's session.
    pub(crate) async fn leave(&mut self) -> Result<()> {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        self.joined = false;
        let member_id = std::mem::take(&mut self.shared.lock().member_id);
        if member_id.is_empty() {
            return Ok(());
        }
        let request = LeaveGroupRequest {
            group_id: self.settings.group_id.clone(),
            member_id,
            group_instance_id: String::new(),
        };
        let response = self
            .client
            .leave_group(request)
            .await
            .map_err(|e| ConnectError::client("leaving the worker group", e))?;
        match ClientError::from_code(response.error, &response.message) {
            None => Ok(()),
            Some(e) => Err(ConnectError::client("leaving the worker group", e)),
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

/// The heartbeat task's part of a member.
struct Heartbeat {
    client: Client,
    settings: MemberSettings,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
}

impl Heartbeat {
    async fn run(self) {
        loop {
            tokio::time::sleep(self.settings.heartbeat_interval).await;
            // Sent during a sync too: a member waiting for the leader's
            // assignment must not let its session run out meanwhile.
            let (member_id, generation) = {
                let shared = self.shared.lock();
                if shared.member_id.is_empty() {
                    continue;
                }
                (shared.member_id.clone(), shared.generation)
            };
            let request = HeartbeatRequest {
                group_id: self.settings.group_id.clone(),
                generation_id: generation,
                member_id: member_id.clone(),
                group_instance_id: String::new(),
            };
            let answer = self.client.heartbeat(request).await;
            if self.heard(answer, &member_id, generation) {
                self.wake.notify_one();
            }
        }
    }

    /// Takes in a heartbeat's answer; whether the caller must be woken.
    fn heard(
        &self,
        answer: spool_client::Result<spool_client::proto::HeartbeatResponse>,
        member_id: &str,
        generation: i32,
    ) -> bool {
        let mut shared = self.shared.lock();
        // An answer about a generation this member has left, or that
        // arrives during a join, is stale.
        if shared.joining || shared.member_id != member_id || shared.generation != generation {
            return false;
        }
        let code = match answer {
            Ok(response) => ErrorCode::from_raw(response.error),
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat failed; retrying");
                let silent = shared
                    .last_answer
                    .is_some_and(|at| at.elapsed() > self.settings.session_timeout);
                if silent {
                    tracing::warn!(
                        "no answer from the group coordinator for a whole session; this \
                         worker's connectors and tasks belong to others now"
                    );
                    shared.member_id.clear();
                    shared.lost = true;
                    shared.rejoin_needed = true;
                }
                return silent;
            }
        };
        match code {
            ErrorCode::None => {
                shared.last_answer = Some(Instant::now());
                false
            }
            ErrorCode::RebalanceInProgress => {
                shared.last_answer = Some(Instant::now());
                shared.rejoin_needed = true;
                true
            }
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
                if code == ErrorCode::UnknownMemberId {
                    shared.member_id.clear();
                }
                shared.lost = true;
                shared.rejoin_needed = true;
                true
            }
            other => {
                tracing::debug!(code = ?other, "heartbeat refused; retrying");
                false
            }
        }
    }
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}
