//! Node liveness: one heartbeat per broker pair instead of one per group,
//! so that idle partition groups go quiet.
//!
//! A Raft group's leader heartbeats each follower every 100 ms, and a
//! follower that hears nothing elects. With hundreds of partitions per
//! broker those heartbeats alone saturate a small machine (a thousand
//! replicated partitions send 20,000 messages a second doing nothing).
//! As CockroachDB's quiescent ranges do, a quiescent group here sends
//! messages only while it has something to say (entries, a commit index,
//! a vote), and failure detection moves up to the node:
//!
//! - every tick ([`LivenessTiming::interval`], 250 ms) each node sends each peer
//!   it shares a group with one [`NodeHeartbeat`]: the groups it leads
//!   (with their terms), and the groups whose leader it does not know;
//! - a follower elects once its leader's node has been silent, or has
//!   stopped claiming the group, for a random patience in the election
//!   timeout's range (`decide::follower_duty`): what openraft's own
//!   election timer would do, judged from node heartbeats;
//! - a leader sends its group a heartbeat only when a member needs one
//!   (`decide::leader_duty`): it came back, it lags, it asks for the
//!   leader, or a peer claims the group in a newer term.
//!
//! Which groups quiesce is the router's choice
//! ([`RaftRouter::register_quiescent`]): openraft's own heartbeats and
//! election timer are switched off for them, and a [`Liveness`] task
//! must run on the node or they never fail over. The controller's group
//! is not quiescent: it is one group, and its linearizable reads lean on
//! openraft's leader lease.

mod decide;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::Raft;
use parking_lot::Mutex;

pub use crate::network::{Heard, NodeHeartbeat};
use crate::network::{RaftReply, RaftRequest, RaftRouter, RaftTransport};
use crate::{NodeId, PartitionRaftConfig};
use decide::{follower_duty, leader_duty, Duty, GroupView, Patience, Suspicion, Tick};

/// The name node heartbeats travel under on the transport, which carries
/// `(group, message)` pairs; no Raft group has it.
pub const LIVENESS_GROUP: &str = "__liveness";

/// How often a node speaks to its peers and how long a follower waits.
#[derive(Clone, Copy, Debug)]
pub struct LivenessTiming {
    /// Between two node heartbeats (and two looks at the groups).
    pub interval: Duration,
    /// A peer not heard from for this long counts as down.
    pub silence: Duration,
    /// A follower whose leader looks gone elects after a wait drawn
    /// between these two.
    pub patience_min: Duration,
    pub patience_max: Duration,
}

impl LivenessTiming {
    /// The timing a group's openraft configuration implies:
    /// - a node heartbeat every 2.5 heartbeat intervals (250 ms): each
    ///   tick looks at every quiescent group of the node, which at a
    ///   thousand groups every 100 ms was most of an idle broker's CPU;
    /// - a peer down after three missed node heartbeats, and no sooner
    ///   than the election timeout's spread (1 s): one late message on a
    ///   loaded machine is not a death, and silence plus the shortest
    ///   patience then reaches the longest election timeout, openraft's
    ///   leader lease: a follower that heard the leader's last write
    ///   refuses votes until then, so an earlier election would fail;
    /// - the election timeout's range as the patience after that, so that
    ///   a leader is replaced 2 to 3 s after its last word.
    pub fn from_raft(config: &openraft::Config) -> LivenessTiming {
        let interval = Duration::from_millis(config.heartbeat_interval * 5 / 2);
        let spread = config.election_timeout_max - config.election_timeout_min;
        LivenessTiming {
            interval,
            silence: Duration::from_millis(spread).max(interval * 3),
            patience_min: Duration::from_millis(config.election_timeout_min),
            patience_max: Duration::from_millis(config.election_timeout_max),
        }
    }

    fn patience(&self) -> Patience {
        Patience {
            silence: self.silence,
            min: self.patience_min,
            max: self.patience_max,
        }
    }
}

/// The running liveness task of a node; dropping it stops the task (and
/// with it the failover of the node's quiescent groups).
pub struct Liveness {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Liveness {
    /// Starts node `node`'s liveness over the quiescent groups of
    /// `router`, sending its heartbeats through `transport`.
    pub fn spawn(
        node: NodeId,
        router: Arc<RaftRouter>,
        transport: Arc<dyn RaftTransport>,
        timing: LivenessTiming,
    ) -> Liveness {
        let mut driver = Driver {
            node,
            random: router.incarnation() | 1,
            router,
            transport,
            timing,
            reached: Arc::default(),
            suspicions: HashMap::new(),
            ticks: 0,
        };
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(timing.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                driver.tick().await;
            }
        });
        Liveness { task }
    }
}

/// Which peers answered this node's last heartbeat, as which incarnation.
#[derive(Debug, Default)]
struct Reached {
    /// `None` while the peer does not answer.
    answered: HashMap<NodeId, Option<u64>>,
    /// Peers that answered for the first time, after failing, or as a new
    /// incarnation since the last tick looked.
    rejoined: HashSet<NodeId>,
    /// The newest heartbeat (by sequence) whose outcome is counted, per
    /// peer: a late outcome of an older one must not undo it (an old
    /// timeout after a newer answer would make the peer rejoin again).
    newest: HashMap<NodeId, u64>,
}

impl Reached {
    /// True when the outcome of heartbeat `sequence` to `peer` is newer
    /// than every one counted so far.
    fn is_newest(&mut self, peer: NodeId, sequence: u64) -> bool {
        let newest = self.newest.entry(peer).or_default();
        let newer = sequence > *newest;
        *newest = (*newest).max(sequence);
        newer
    }

    fn answered(&mut self, peer: NodeId, sequence: u64, incarnation: u64) {
        if !self.is_newest(peer, sequence) {
            return;
        }
        if self.answered.get(&peer) != Some(&Some(incarnation)) {
            self.rejoined.insert(peer);
        }
        self.answered.insert(peer, Some(incarnation));
    }

    fn failed(&mut self, peer: NodeId, sequence: u64) {
        if self.is_newest(peer, sequence) {
            self.answered.insert(peer, None);
        }
    }

    fn reachable(&self, peer: NodeId) -> bool {
        matches!(self.answered.get(&peer), Some(Some(_)))
    }
}

/// A quiescent group as one tick sees it.
struct Looked {
    group: Arc<str>,
    raft: Raft<PartitionRaftConfig>,
    view: GroupView,
}

struct Driver {
    node: NodeId,
    router: Arc<RaftRouter>,
    transport: Arc<dyn RaftTransport>,
    timing: LivenessTiming,
    reached: Arc<Mutex<Reached>>,
    suspicions: HashMap<Arc<str>, Suspicion>,
    /// xorshift state for the followers' patience.
    random: u64,
    /// Ticks so far: numbers heartbeats and spreads the backstop ones.
    ticks: u64,
}

/// Every this many ticks (30 s) each led group heartbeats anyway; see
/// `decide::leader_duty`. Spread by group, so a broker sends a 120th of
/// its groups' heartbeats each tick rather than all at once. Every 10 s
/// cost a thousand-partition cluster a fifth of its idle CPU (10.6 %
/// of a core against 8.5 %) for a rare loss.
const BACKSTOP_TICKS: u64 = 120;

/// Where `group` falls in the backstop's cycle.
fn backstop_slot(group: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    group.hash(&mut hasher);
    hasher.finish() % BACKSTOP_TICKS
}

impl Driver {
    async fn tick(&mut self) {
        self.ticks += 1;
        let now = Instant::now();
        // Kept for the longest election timeout, not just the silence: a
        // follower refuses votes while its leader's last word is kept
        // (`RaftRouter::lease_refusal`), as long as openraft's lease would.
        let lease = self.timing.patience_max;
        self.router.heard().forget_silent(now, lease);
        let looked: Vec<Looked> = self
            .router
            .quiescent_groups()
            .into_iter()
            .map(|(group, raft)| {
                let view = GroupView::of(&raft.metrics().borrow());
                Looked { group, raft, view }
            })
            .collect();
        self.send_heartbeats(&looked);
        let duties = self.decide(&looked, now);
        for (looked, duty) in looked.iter().zip(duties) {
            perform(looked, duty).await;
        }
    }

    /// Sends this tick's heartbeat to every peer sharing a group, each on
    /// a task of its own so that a slow peer delays no other; the answers
    /// land in `reached` for the next ticks.
    fn send_heartbeats(&self, looked: &[Looked]) {
        let node = self.node;
        let peers: HashSet<NodeId> = looked.iter().flat_map(|l| l.view.others(node)).collect();
        let heartbeat = NodeHeartbeat {
            from: node,
            incarnation: self.router.incarnation(),
            sequence: self.ticks,
            leads: looked
                .iter()
                .filter(|l| l.view.leading)
                .map(|l| (l.group.to_string(), l.view.term))
                .collect(),
            needs_leader: looked
                .iter()
                .filter(|l| l.view.needs_leader(node))
                .map(|l| l.group.to_string())
                .collect(),
        };
        let deadline = self.timing.silence;
        let sequence = self.ticks;
        for peer in peers {
            let send = self.transport.send(
                peer,
                Arc::from(LIVENESS_GROUP),
                RaftRequest::NodeHeartbeat(heartbeat.clone()),
            );
            let reached = Arc::clone(&self.reached);
            tokio::spawn(async move {
                match tokio::time::timeout(deadline, send).await {
                    Ok(Ok(RaftReply::NodeHeartbeat { incarnation })) => {
                        reached.lock().answered(peer, sequence, incarnation)
                    }
                    _ => reached.lock().failed(peer, sequence),
                }
            });
        }
    }

    /// Each group's duty this tick. Suspicions are kept for the groups
    /// this node follows in now, and forgotten for the others.
    fn decide(&mut self, looked: &[Looked], now: Instant) -> Vec<Duty> {
        let tick = Tick {
            node: self.node,
            heard: self.router.heard(),
            now,
            patience: self.timing.patience(),
        };
        let reached = Arc::clone(&self.reached);
        let mut reached = reached.lock();
        let rejoined = std::mem::take(&mut reached.rejoined);
        let mut kept = std::mem::take(&mut self.suspicions);
        let mut duties = Vec::with_capacity(looked.len());
        for l in looked {
            let duty = match l.view.leading {
                true => {
                    let backstop = (self.ticks + backstop_slot(&l.group)) % BACKSTOP_TICKS == 0;
                    let reachable = |peer| reached.reachable(peer);
                    leader_duty(&tick, &l.group, &l.view, &rejoined, reachable, backstop)
                }
                false => {
                    let random = next_random(&mut self.random);
                    let mut suspicion = kept.remove(&l.group).unwrap_or_default();
                    let duty = follower_duty(&tick, &l.group, &l.view, &mut suspicion, random);
                    self.suspicions.insert(Arc::clone(&l.group), suspicion);
                    duty
                }
            };
            duties.push(duty);
        }
        duties
    }
}

/// Asks the group's Raft to do its duty. A Raft that stopped refuses;
/// the broker notices stopped replicas by itself.
async fn perform(looked: &Looked, duty: Duty) {
    let result = match duty {
        Duty::Nothing => return,
        Duty::Elect => {
            tracing::info!(group = %looked.group, term = looked.view.term, leader = ?looked.view.leader, "the group's leader looks gone; electing");
            looked.raft.trigger().elect().await
        }
        Duty::Heartbeat => looked.raft.trigger().heartbeat().await,
    };
    if let Err(e) = result {
        tracing::debug!(group = %looked.group, error = %e, "a stopped group refused its liveness duty");
    }
}

fn next_random(state: &mut u64) -> u64 {
    let mut x = (*state).max(1);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_rejoins_when_it_answers_again_or_anew_but_not_on_a_late_outcome() {
        let mut reached = Reached::default();
        reached.answered(2, 1, 7);
        assert!(std::mem::take(&mut reached.rejoined).contains(&2));
        reached.answered(2, 3, 7);
        // The heartbeat sent before the answered one timed out late.
        reached.failed(2, 2);
        assert!(reached.reachable(2) && reached.rejoined.is_empty());
        reached.failed(2, 4);
        assert!(!reached.reachable(2));
        reached.answered(2, 5, 7);
        assert!(std::mem::take(&mut reached.rejoined).contains(&2));
        reached.answered(2, 6, 8);
        assert!(reached.rejoined.contains(&2), "a restarted peer rejoins");
    }
}
