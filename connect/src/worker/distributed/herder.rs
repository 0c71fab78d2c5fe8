//! The worker's loop (Kafka's `DistributedHerder`): one task that joins
//! the group, assigns when it leads, gives up what the assignment revokes
//! and starts what it assigns, and between rebalances brings what runs
//! here in line with the config topic. Everything that changes what runs
//! on this worker happens in this loop, one thing at a time, so what the
//! worker tells the group it owns is what runs.
//!
//! A round, KIP-415 style: the worker joins with what it runs; the leader
//! reads the config topic to its end and computes the assignment
//! (`assignor`); each worker stops what is revoked, says UNASSIGNED for it
//! in the status topic and rejoins at once, so the next round hands it on;
//! then it reads the config topic up to where the leader did and starts
//! what is assigned. What is neither revoked nor assigned runs on,
//! untouched. A worker the group dropped (its session expired) stops
//! everything without a word, since others own it now, and joins afresh.

use std::sync::Arc;
use std::time::Duration;

use spool_client::proto::ErrorCode;
use spool_client::ClientError;
use tokio::time::Instant;

use super::assignor::{self, Memory};
use super::local::{Local, TaskChange};
use super::member::{GroupMember, Joined};
use super::protocol::{self, Assignment, Units, WorkerState, VERSION};
use super::state::ClusterConfig;
use super::{stopped, Phase, Shared};
use crate::worker::State;
use crate::worker::TaskId;
use crate::{ConnectError, Result};

/// The first pause after a failed round (the coordinator unreachable, say);
/// it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs the worker's loop until the worker stops, then gives up what runs
/// here and leaves the group.
pub(crate) async fn run(shared: Arc<Shared>, member: GroupMember) {
    let restarts_from = shared.configs.snapshot().offset;
    let mut herder = Herder {
        shared,
        member,
        local: Local::default(),
        desired: None,
        restarts_from,
        scheduled: None,
        memory: Memory::default(),
    };
    let outcome = herder.serve().await;
    if let Err(error) = &outcome {
        tracing::error!(error = %error, "the distributed worker cannot go on");
    }
    herder.close(outcome).await;
}

struct Herder {
    shared: Arc<Shared>,
    member: GroupMember,
    local: Local,
    /// What the config asked to run when last looked at: a change asks
    /// for a rebalance.
    desired: Option<Units>,
    /// Restart requests at or past this offset of the config topic are yet
    /// to be carried out (older ones predate this worker, or are done).
    restarts_from: u64,
    /// When to rejoin for a scheduled rebalance (KIP-415's delay).
    scheduled: Option<Instant>,
    /// The leader's memory between rounds.
    memory: Memory,
}

impl Herder {
    async fn serve(&mut self) -> Result<()> {
        let mut configs = self.shared.configs.subscribe();
        let mut stop = self.shared.stop.subscribe();
        let wake = self.member.wake();
        let mut backoff = Duration::ZERO;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            if self.member.needs_rejoin() {
                self.shared.set_phase(Phase::Joining);
                let rebalanced = tokio::select! {
                    rebalanced = self.rebalance() => rebalanced,
                    () = stopped(&mut stop) => return Ok(()),
                };
                match rebalanced {
                    Ok(()) => backoff = Duration::ZERO,
                    Err(error) if fatal(&error) => return Err(error),
                    Err(error) => {
                        backoff = (backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                        tracing::warn!(error = %error, retry_in = ?backoff, "a rebalance failed");
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = stopped(&mut stop) => return Ok(()),
                        }
                    }
                }
                continue;
            }
            let scheduled = self.scheduled;
            tokio::select! {
                () = stopped(&mut stop) => return Ok(()),
                changed = configs.changed() => {
                    if changed.is_err() {
                        return Err(ConnectError::Task("the config topic's reader stopped".into()));
                    }
                    self.reconcile().await;
                }
                () = wake.notified() => {}
                () = until(scheduled) => {
                    self.scheduled = None;
                    self.member.request_rejoin();
                }
            }
        }
    }

    /// One round: join, assign if leading, sync, and apply the assignment.
    async fn rebalance(&mut self) -> Result<()> {
        if self.member.take_lost() {
            self.drop_everything().await;
        }
        // What this worker tells the group it owns is what it runs under
        // the config as it stands.
        self.reconcile().await;
        let state = WorkerState {
            version: VERSION,
            worker_id: self.shared.worker_id().to_string(),
            url: self.shared.url(),
            config_offset: self.shared.configs.offset(),
            owned: self.local.owned(),
        };
        let Some(joined) = self.member.join(protocol::encode(&state)?).await? else {
            return Ok(());
        };
        let assignments = match joined.is_leader() {
            true => match self.lead(&joined).await {
                Ok(assignments) => assignments,
                Err(error) => {
                    self.member.request_rejoin();
                    return Err(error);
                }
            },
            false => Vec::new(),
        };
        let Some(bytes) = self.member.sync(&joined, assignments).await? else {
            return Ok(());
        };
        match protocol::decode::<Assignment>(&bytes) {
            Ok(assignment) => self.apply(assignment, joined.generation).await,
            Err(error) => {
                self.member.request_rejoin();
                Err(error)
            }
        }
    }

    /// The leader's part: every member's assignment, from the config topic
    /// read to its end and what each member says it runs.
    async fn lead(&mut self, joined: &Joined) -> Result<Vec<(String, bytes::Bytes)>> {
        self.shared.configs.read_to_end().await?;
        let cluster = self.shared.configs.snapshot();
        let members: Vec<assignor::Member> = joined
            .members
            .iter()
            .map(|(id, metadata)| {
                let owned = match protocol::decode::<WorkerState>(metadata) {
                    Ok(state) => state.owned,
                    Err(error) => {
                        tracing::warn!(
                            member = %id,
                            error = %error,
                            "a member's metadata is unreadable; it is taken to run nothing"
                        );
                        Units::default()
                    }
                };
                assignor::Member {
                    id: id.clone(),
                    owned,
                }
            })
            .collect();
        let plan = assignor::assign(
            &cluster.desired(),
            &members,
            &mut self.memory,
            std::time::Instant::now(),
            self.shared.settings.scheduled_rebalance_max_delay,
        );
        let delay_ms = u64::try_from(plan.delay.as_millis()).unwrap_or(u64::MAX);
        let mut assignments = Vec::with_capacity(plan.parts.len());
        for (member, part) in plan.parts {
            let assignment = Assignment {
                version: VERSION,
                leader: joined.member_id.clone(),
                leader_url: self.shared.url(),
                config_offset: cluster.offset,
                assigned: part.assigned,
                revoked: part.revoked,
                delay_ms,
            };
            assignments.push((member, protocol::encode(&assignment)?));
        }
        tracing::info!(
            generation = joined.generation,
            members = members.len(),
            "assigned connectors and tasks as the group's leader"
        );
        Ok(assignments)
    }

    /// Gives up what `assignment` revokes, then starts what it assigns.
    async fn apply(&mut self, assignment: Assignment, generation: i32) -> Result<()> {
        self.shared.set_generation(generation);
        let revoked = assignment.revoked.within(&self.local.owned());
        if !assignment.revoked.is_empty() {
            self.give_up(&revoked).await;
            // KIP-415: a worker that gave something up rejoins at once, so
            // the leader can hand it on.
            self.member.request_rejoin();
        }
        if let Err(error) = self.shared.configs.wait_for(assignment.config_offset).await {
            self.member.request_rejoin();
            return Err(error);
        }
        self.reconcile().await;
        let cluster = self.shared.configs.snapshot();
        for name in &assignment.assigned.connectors {
            if !self.local.runs_connector(name) {
                self.local
                    .start_connector(&self.shared, name, &cluster)
                    .await;
            }
        }
        for id in &assignment.assigned.tasks {
            if !self.local.runs_task(id) {
                self.local.start_task(&self.shared, id, &cluster);
            }
        }
        self.scheduled = (assignment.delay_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(assignment.delay_ms));
        if !self.member.needs_rejoin() {
            self.shared.set_phase(Phase::Stable);
        }
        tracing::info!(
            generation,
            leader = %assignment.leader_url,
            assigned = assignment.assigned.len(),
            revoked = revoked.len(),
            running = self.local.owned().len(),
            "rebalanced"
        );
        Ok(())
    }

    /// Brings what runs here in line with the config topic as read now,
    /// carries out restarts asked since the last look, and asks for a
    /// rebalance when the work to share changed.
    async fn reconcile(&mut self) {
        let cluster = self.shared.configs.snapshot();
        for name in self.local.connector_names() {
            let kept = self
                .local
                .reconcile_connector(&self.shared, &name, &cluster)
                .await;
            if !kept {
                let deleted = Units {
                    connectors: [name].into(),
                    ..Units::default()
                };
                self.shared.erase(&deleted).await;
            }
        }
        let (mut dropped, mut restarted) = (Vec::new(), Vec::new());
        for id in self.local.task_ids() {
            match self.local.check_task(&id, &cluster) {
                TaskChange::Keep => {}
                TaskChange::Restart => restarted.push(id),
                TaskChange::Drop => dropped.push(id),
            }
        }
        if !dropped.is_empty() {
            self.local
                .stop_tasks(&dropped, self.shutdown_timeout())
                .await;
            // A deleted connector's task statuses go with it; those of a
            // stopped or shrunk one say UNASSIGNED, which an offsets
            // change of a running connector waits for (they are past its
            // task count, and not shown).
            let (deleted, unwanted): (Vec<TaskId>, Vec<TaskId>) = dropped
                .into_iter()
                .partition(|id| cluster.config(&id.connector).is_none());
            let units = |tasks: Vec<TaskId>| Units {
                tasks: tasks.into_iter().collect(),
                ..Units::default()
            };
            self.shared.erase(&units(deleted)).await;
            self.shared.hand_over(&units(unwanted)).await;
        }
        for id in restarted {
            self.restart_task(&id, &cluster).await;
        }
        self.restart_requested(&cluster).await;
        self.tidy();
        let desired = cluster.desired();
        if self.desired.as_ref() != Some(&desired) {
            if self.desired.is_some() {
                self.member.request_rejoin();
            }
            self.desired = Some(desired);
        }
    }

    /// Carries out the restarts asked of what runs here since the last
    /// look (Kafka's `restart-connector-<name>` records, and spool's
    /// per-task ones).
    async fn restart_requested(&mut self, cluster: &ClusterConfig) {
        for (name, request) in cluster.restarts_from(self.restarts_from) {
            self.local
                .restart_connector(&self.shared, &name, cluster, request.only_failed)
                .await;
            if !request.include_tasks {
                continue;
            }
            let board = self.shared.existing_board(&name);
            let tasks: Vec<TaskId> = self
                .local
                .task_ids()
                .into_iter()
                .filter(|id| id.connector == name)
                .collect();
            for id in tasks {
                let failed = board
                    .as_ref()
                    .and_then(|board| board.task_entry(id.task))
                    .is_some_and(|(state, _)| state == State::Failed);
                if !request.only_failed || failed {
                    self.restart_task(&id, cluster).await;
                }
            }
        }
        for id in cluster.task_restarts_from(self.restarts_from) {
            if self.local.runs_task(&id) {
                self.restart_task(&id, cluster).await;
            }
        }
        self.restarts_from = cluster.offset;
    }

    /// Stops task `id` and starts it again here, from its current config.
    async fn restart_task(&mut self, id: &TaskId, cluster: &ClusterConfig) {
        self.local
            .stop_tasks(std::slice::from_ref(id), self.shutdown_timeout())
            .await;
        if self.local.start_task(&self.shared, id, cluster) {
            tracing::info!(connector = %id.connector, task = id.task, "task restarted");
        } else {
            let gone = Units {
                tasks: [id.clone()].into(),
                ..Units::default()
            };
            self.shared.disown(&gone).await;
        }
    }

    /// Stops `units` and tells the status topic they are unassigned, before
    /// this worker rejoins (see `StatusLog`).
    async fn give_up(&mut self, units: &Units) {
        let tasks: Vec<TaskId> = units.tasks.iter().cloned().collect();
        self.local.stop_tasks(&tasks, self.shutdown_timeout()).await;
        for name in &units.connectors {
            self.local.stop_connector(name);
        }
        self.shared.hand_over(units).await;
        self.tidy();
    }

    /// Stops everything without a word: the group gave it to others.
    async fn drop_everything(&mut self) {
        let owned = self.local.owned();
        if owned.is_empty() {
            return;
        }
        tracing::warn!(
            running = owned.len(),
            "the group dropped this worker; stopping its connectors and tasks, which others own now"
        );
        self.shared.disown(&owned).await;
        let tasks: Vec<TaskId> = owned.tasks.iter().cloned().collect();
        self.local.stop_tasks(&tasks, self.shutdown_timeout()).await;
        for name in &owned.connectors {
            self.local.stop_connector(name);
        }
        self.tidy();
    }

    /// Forgets the status boards of connectors nothing here runs anymore.
    fn tidy(&self) {
        self.shared.keep_boards(|name| self.local.uses(name));
    }

    fn shutdown_timeout(&self) -> Duration {
        self.shared.runtime.config.task_shutdown_timeout
    }

    /// Gives up what runs here and leaves the group, so the others take
    /// it over at once; then says how the worker ended.
    async fn close(&mut self, outcome: Result<()>) {
        if self.member.is_lost() {
            self.drop_everything().await;
        } else {
            let owned = self.local.owned();
            self.give_up(&owned).await;
        }
        if let Err(error) = self.member.leave().await {
            tracing::warn!(
                error = %error,
                "leaving the worker group failed; it forgets this worker after its session"
            );
        }
        self.shared.set_phase(match outcome {
            Ok(()) => Phase::Stopped,
            Err(error) => Phase::Failed(error.to_string()),
        });
        self.shared.finished.send_replace(true);
        tracing::info!("distributed connect worker stopped");
    }
}

/// Whether a failed round can never succeed: the group's settings refuse
/// this worker.
fn fatal(error: &ConnectError) -> bool {
    matches!(
        error,
        ConnectError::Client {
            source: ClientError::Broker {
                code: ErrorCode::InconsistentGroupProtocol
                    | ErrorCode::InvalidGroupId
                    | ErrorCode::InvalidSessionTimeout,
                ..
            },
            ..
        }
    )
}

/// Waits until `at`, or forever.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
