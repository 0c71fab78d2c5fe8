//! One consumer's membership in a group: joining, computing the assignment
//! when it is the leader, syncing, and a heartbeat task that notices when
//! the group starts a rebalance or forgets the member.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;

use super::assignor::Assignor;
use crate::{Client, TopicPartition};
use crate::{ClientError, Result};
use spool_protocol::consumer_protocol::{Assignment, Subscription};
use spool_protocol::proto::*;

/// Group settings of a subscribed consumer; defaults follow Kafka's.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    pub group_id: String,
    /// Static membership (`group.instance.id`): a consumer restarted with the
    /// same id within the session timeout gets its partitions back without
    /// a rebalance.
    pub instance_id: Option<String>,
    /// Offered in order of preference (default range, then
    /// cooperative-sticky, as in Kafka 3).
    pub assignors: Vec<Assignor>,
    /// The broker drops a member silent for this long (default 45 s).
    pub session_timeout: Duration,
    /// How often the member heartbeats (default 3 s, well under the session
    /// timeout).
    pub heartbeat_interval: Duration,
    /// How long members get to rejoin during a rebalance (default 5 min,
    /// Kafka's `max.poll.interval.ms`).
    pub rebalance_timeout: Duration,
    /// Commit positions automatically from `poll` (default true, every 5 s).
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
}

impl GroupSettings {
    pub fn new(group_id: impl Into<String>) -> Self {
        GroupSettings {
            group_id: group_id.into(),
            instance_id: None,
            assignors: vec![Assignor::Range, Assignor::CooperativeSticky],
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            rebalance_timeout: Duration::from_secs(300),
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
        }
    }
}

/// Called around rebalances, from inside `poll`.
pub trait RebalanceListener: Send {
    /// Before partitions are taken away (commit their progress here).
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {}
    /// After partitions are given, before records of them are returned.
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {}
}

#[derive(Default)]
struct Shared {
    member_id: String,
    generation: i32,
    rejoin_needed: bool,
    /// A join is under way: heartbeat answers about the old generation say
    /// nothing new and must not ask for yet another rejoin.
    joining: bool,
    /// The group dropped this member (its session expired, or its
    /// generation is gone): what it owns now belongs to others.
    lost: bool,
}

/// See [`Membership::rejoin_handle`].
pub struct RejoinHandle(Arc<Mutex<Shared>>);

impl RejoinHandle {
    pub fn request(&self) {
        self.0.lock().rejoin_needed = true;
    }
}

/// The outcome of one completed rebalance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebalanced {
    pub generation: i32,
    pub member_id: String,
    pub assigned: Vec<TopicPartition>,
    /// Whether the group uses the cooperative protocol (keep what you own).
    pub cooperative: bool,
}

pub struct Membership {
    settings: GroupSettings,
    topics: Vec<String>,
    shared: Arc<Mutex<Shared>>,
    heartbeat: Option<JoinHandle<()>>,
    joined: bool,
    cooperative: bool,
}

impl Membership {
    pub fn new(settings: GroupSettings, topics: Vec<String>) -> Membership {
        Membership {
            settings,
            topics,
            shared: Arc::default(),
            heartbeat: None,
            joined: false,
            cooperative: false,
        }
    }

    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// True when the member must (re)join before its next fetch.
    pub fn needs_rejoin(&self) -> bool {
        !self.joined || self.shared.lock().rejoin_needed
    }

    /// Whether the last rebalance used the cooperative protocol.
    pub fn is_cooperative(&self) -> bool {
        self.cooperative
    }

    pub fn generation(&self) -> (i32, String) {
        let shared = self.shared.lock();
        (shared.generation, shared.member_id.clone())
    }

    /// True when the group dropped this member since its last join: its
    /// partitions now belong to others, so they are given up without a
    /// commit.
    pub fn partitions_lost(&self) -> bool {
        self.shared.lock().lost
    }

    /// Reads and clears the lost flag after a rejoin.
    pub fn take_lost(&self) -> bool {
        std::mem::take(&mut self.shared.lock().lost)
    }

    /// A handle that marks this membership as needing a rejoin (after a
    /// commit was refused because the generation moved on), usable from
    /// another task.
    pub fn rejoin_handle(&self) -> RejoinHandle {
        RejoinHandle(Arc::clone(&self.shared))
    }

    /// Joins (or rejoins) and syncs, retrying while the group is still
    /// rebalancing. `owned` are the partitions the consumer holds now.
    pub async fn rejoin(
        &mut self,
        client: &Client,
        owned: &[TopicPartition],
    ) -> Result<Rebalanced> {
        self.start_heartbeat(client);
        self.shared.lock().joining = true;
        let outcome = self.join_and_sync(client, owned).await;
        let mut shared = self.shared.lock();
        shared.joining = false;
        if outcome.is_err() {
            // Whatever failed (the leader's metadata lookup, the sync, a
            // malformed assignment), the next poll must try again rather
            // than carry on with a generation it never completed.
            self.joined = false;
            shared.rejoin_needed = true;
        }
        outcome
    }

    async fn join_and_sync(
        &mut self,
        client: &Client,
        owned: &[TopicPartition],
    ) -> Result<Rebalanced> {
        let mut owned = owned.to_vec();
        loop {
            self.shared.lock().rejoin_needed = false;
            let join = client.join_group(self.join_request(&owned)).await?;
            match code(join.error) {
                ErrorCode::None => {}
                ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
                    // The group dropped us: what we owned is others' now,
                    // so claim nothing when joining afresh.
                    self.forget_membership(&mut owned);
                    continue;
                }
                ErrorCode::RebalanceInProgress => continue,
                _ => return Err(group_error(join.error, &join.message)),
            }
            {
                let mut shared = self.shared.lock();
                shared.member_id = join.member_id.clone();
                shared.generation = join.generation_id;
            }
            let assignor = Assignor::from_name(&join.protocol_name).ok_or_else(|| {
                ClientError::InvalidRequest(format!(
                    "the group chose unknown assignor {}",
                    join.protocol_name
                ))
            })?;
            let assignments = if join.leader_id == join.member_id && !join.skip_assignment {
                leader_assignments(client, assignor, &join.members).await?
            } else {
                Vec::new()
            };
            let sync = client
                .sync_group(SyncGroupRequest {
                    group_id: self.settings.group_id.clone(),
                    generation_id: join.generation_id,
                    member_id: join.member_id.clone(),
                    group_instance_id: self.settings.instance_id.clone().unwrap_or_default(),
                    assignments,
                })
                .await?;
            match code(sync.error) {
                ErrorCode::None => {}
                ErrorCode::RebalanceInProgress => continue,
                ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
                    // The group dropped us: what we owned is others' now,
                    // so claim nothing when joining afresh.
                    self.forget_membership(&mut owned);
                    continue;
                }
                _ => return Err(group_error(sync.error, &sync.message)),
            }
            let assigned = Assignment::decode(&sync.assignment)?.partitions;
            self.joined = true;
            self.cooperative = assignor.is_cooperative();
            tracing::debug!(group = %self.settings.group_id, generation = join.generation_id, ?assigned, "joined group");
            return Ok(Rebalanced {
                generation: join.generation_id,
                member_id: join.member_id,
                assigned,
                cooperative: self.cooperative,
            });
        }
    }

    fn forget_membership(&self, owned: &mut Vec<TopicPartition>) {
        let mut shared = self.shared.lock();
        shared.member_id.clear();
        shared.lost = true;
        owned.clear();
    }

    fn join_request(&self, owned: &[TopicPartition]) -> JoinGroupRequest {
        let shared = self.shared.lock();
        let protocols = self
            .settings
            .assignors
            .iter()
            .map(|a| {
                let owned = if a.is_cooperative() {
                    owned.to_vec()
                } else {
                    Vec::new()
                };
                GroupProtocol {
                    name: a.name().into(),
                    metadata: Subscription {
                        topics: self.topics.clone(),
                        owned,
                    }
                    .encode(),
                }
            })
            .collect();
        JoinGroupRequest {
            group_id: self.settings.group_id.clone(),
            member_id: shared.member_id.clone(),
            group_instance_id: self.settings.instance_id.clone().unwrap_or_default(),
            session_timeout_ms: self.settings.session_timeout.as_millis() as u32,
            rebalance_timeout_ms: self.settings.rebalance_timeout.as_millis() as u32,
            protocols,
            ..Default::default()
        }
    }

    fn start_heartbeat(&mut self, client: &Client) {
        if self.heartbeat.is_some() {
            return;
        }
        let (client, shared, settings) = (
            client.clone(),
            Arc::clone(&self.shared),
            self.settings.clone(),
        );
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(settings.heartbeat_interval).await;
                let (member_id, generation) = {
                    let s = shared.lock();
                    (s.member_id.clone(), s.generation)
                };
                if member_id.is_empty() {
                    continue;
                }
                let request = HeartbeatRequest {
                    group_id: settings.group_id.clone(),
                    generation_id: generation,
                    member_id,
                    group_instance_id: settings.instance_id.clone().unwrap_or_default(),
                };
                let (asked_member, asked_generation) =
                    (request.member_id.clone(), request.generation_id);
                let answer = match client.heartbeat(request).await {
                    Ok(response) => code(response.error),
                    Err(e) => {
                        tracing::debug!(error = %e, "heartbeat failed; retrying");
                        continue;
                    }
                };
                let mut s = shared.lock();
                // Answers about a generation we have already left, or that
                // arrive while a join is under way, are stale.
                if answer == ErrorCode::None
                    || s.joining
                    || s.member_id != asked_member
                    || s.generation != asked_generation
                {
                    continue;
                }
                s.rejoin_needed = true;
                if matches!(
                    answer,
                    ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration
                ) {
                    s.lost = true;
                    if answer == ErrorCode::UnknownMemberId {
                        s.member_id.clear();
                    }
                }
            }
        }));
    }

    /// Stops heartbeating and, for a dynamic member, leaves the group so
    /// the others rebalance at once. A static member stays registered until
    /// its session times out, so a restart within it gets its partitions back.
    pub async fn leave(&mut self, client: &Client) -> Result<()> {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        let member_id = self.shared.lock().member_id.clone();
        if self.settings.instance_id.is_none() && !member_id.is_empty() {
            client
                .leave_group(LeaveGroupRequest {
                    group_id: self.settings.group_id.clone(),
                    member_id,
                    ..Default::default()
                })
                .await?;
        }
        self.joined = false;
        Ok(())
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

/// The leader's work: decode every member's subscription, look up partition
/// counts, run the assignor.
async fn leader_assignments(
    client: &Client,
    assignor: Assignor,
    members: &[JoinGroupMember],
) -> Result<Vec<MemberAssignment>> {
    let subscriptions: BTreeMap<String, Subscription> = members
        .iter()
        .map(|m| Ok((m.member_id.clone(), Subscription::decode(&m.metadata)?)))
        .collect::<Result<_>>()?;
    let topics: BTreeSet<String> = subscriptions
        .values()
        .flat_map(|s| s.topics.iter().cloned())
        .collect();
    let metadata = client
        .metadata(MetadataRequest {
            topics: topics.into_iter().collect(),
        })
        .await?;
    let counts: BTreeMap<String, u32> = metadata
        .topics
        .into_iter()
        .filter(|t| t.error == ErrorCode::None as i32)
        .map(|t| (t.name, t.partitions.len() as u32))
        .collect();
    Ok(assignor
        .assign(&subscriptions, &counts)
        .into_iter()
        .map(|(member_id, partitions)| MemberAssignment {
            member_id,
            assignment: Assignment { partitions }.encode(),
        })
        .collect())
}

fn code(raw: i32) -> ErrorCode {
    ErrorCode::try_from(raw).unwrap_or(ErrorCode::Unknown)
}

fn group_error(raw: i32, message: &str) -> ClientError {
    ClientError::from_code(raw, message)
        .unwrap_or_else(|| ClientError::InvalidRequest(message.to_string()))
}
