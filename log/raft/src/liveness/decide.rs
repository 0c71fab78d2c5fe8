//! What the liveness tick asks of one quiescent group: nothing, an
//! election, or a heartbeat. Pure: decided from the group's Raft metrics
//! ([`GroupView`]), what the node heard from its peers ([`Heard`]) and a
//! clock passed in, so tests drive it with made-up views and instants.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use openraft::{BasicNode, RaftMetrics, ServerState};

use crate::network::Heard;
use crate::NodeId;

/// What one tick asks of a group's Raft.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Duty {
    Nothing,
    /// Start an election now (`Trigger::elect`).
    Elect,
    /// Send one heartbeat to every member now (`Trigger::heartbeat`).
    Heartbeat,
}

/// The part of a group's Raft metrics the tick decides from.
#[derive(Clone, Debug, Default)]
pub(crate) struct GroupView {
    pub leading: bool,
    pub candidate: bool,
    pub stopped: bool,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// On the leader: the last index each member acknowledged.
    pub matched: Vec<(NodeId, Option<u64>)>,
}

impl GroupView {
    pub fn of(metrics: &RaftMetrics<NodeId, BasicNode>) -> GroupView {
        let membership = metrics.membership_config.membership();
        GroupView {
            leading: metrics.state == ServerState::Leader,
            candidate: metrics.state == ServerState::Candidate,
            stopped: metrics.state == ServerState::Shutdown,
            term: metrics.current_term,
            leader: metrics.current_leader,
            last_log_index: metrics.last_log_index,
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            matched: metrics
                .replication
                .iter()
                .flatten()
                .map(|(&node, matched)| (node, matched.map(|id| id.index)))
                .collect(),
        }
    }

    /// Every member but `node`: whom this group's node talks to.
    pub fn others(&self, node: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.voters
            .iter()
            .chain(&self.learners)
            .copied()
            .filter(move |&n| n != node)
    }

    /// A voter that follows no leader it can name (just restarted, or a
    /// candidate): it asks its peers' leader of the group to speak up.
    pub fn needs_leader(&self, node: NodeId) -> bool {
        !self.leading
            && !self.stopped
            && self.voters.contains(&node)
            && self.leader.is_none_or(|leader| leader == node)
    }
}

/// A follower's election timer, kept from tick to tick: since when its
/// leader has looked gone, and how long it waits before electing (drawn
/// at random in the election timeout's range, so that two followers
/// rarely split the vote).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Suspicion {
    since: Option<Instant>,
    patience: Duration,
}

/// How a follower decides its leader is gone, and how long it waits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Patience {
    /// A peer not heard from for this long counts as down.
    pub silence: Duration,
    /// The range the wait before an election is drawn from.
    pub min: Duration,
    pub max: Duration,
}

impl Patience {
    pub fn draw(&self, random: u64) -> Duration {
        let spread = (self.max.saturating_sub(self.min)).as_millis() as u64;
        self.min + Duration::from_millis(random % spread.max(1))
    }
}

/// What one tick decides with, the same for every group.
pub(crate) struct Tick<'a> {
    pub node: NodeId,
    pub heard: &'a Heard,
    pub now: Instant,
    pub patience: Patience,
}

/// The follower's duty: elect once its leader has looked gone (down,
/// silent, or no longer claiming the group) for its patience; elect at
/// once when it is the group's only voter. `random` draws the patience.
pub(crate) fn follower_duty(
    tick: &Tick<'_>,
    group: &str,
    view: &GroupView,
    suspicion: &mut Suspicion,
    random: u64,
) -> Duty {
    let Tick {
        node,
        heard,
        now,
        ref patience,
    } = *tick;
    if view.leading || view.stopped || !view.voters.contains(&node) {
        *suspicion = Suspicion::default();
        return Duty::Nothing;
    }
    if view.voters.len() == 1 {
        // Not while its election runs: a new one would supersede it, and
        // a slow disk could keep the group electing forever.
        return match view.candidate {
            true => Duty::Nothing,
            false => Duty::Elect,
        };
    }
    let led_well = view.leader.is_some_and(|leader| {
        leader != node && heard.alive(leader, now, patience.silence) && heard.claims(leader, group)
    });
    if led_well {
        *suspicion = Suspicion::default();
        return Duty::Nothing;
    }
    let since = *suspicion.since.get_or_insert_with(|| {
        suspicion.patience = patience.draw(random);
        now
    });
    if now.duration_since(since) < suspicion.patience {
        return Duty::Nothing;
    }
    // Wait a whole patience again before the next try, as a candidate
    // whose election failed would.
    suspicion.since = Some(now);
    suspicion.patience = patience.draw(random);
    Duty::Elect
}

/// The leader's duty: a heartbeat when a member needs one, since an idle
/// group's leader sends nothing by itself:
/// - a member came back (restarted, or reachable again) and must learn
///   who leads and what is committed;
/// - a reachable member lags (it missed entries while away, or a move
///   is catching it up) and only a message makes it ask for them;
/// - the group has learners (a move is under way, or left one to remove);
/// - a peer's voter asks for the group's leader;
/// - a peer claims the group in a newer term: the heartbeat's refusal
///   makes this stale leader step down;
/// - `backstop` (every 30 s per group): openraft sends a new
///   commit index once, and a member that missed it (or that restarted
///   before the leader heard it was back) would hold a stale one until
///   the next write.
pub(crate) fn leader_duty(
    tick: &Tick<'_>,
    group: &str,
    view: &GroupView,
    rejoined: &HashSet<NodeId>,
    reachable: impl Fn(NodeId) -> bool,
    backstop: bool,
) -> Duty {
    let Tick { node, heard, .. } = *tick;
    if !view.leading {
        return Duty::Nothing;
    }
    let last = view.last_log_index;
    let lagging = view
        .matched
        .iter()
        .any(|&(member, matched)| member != node && matched < last && reachable(member));
    let wanted = backstop
        || view.others(node).any(|member| rejoined.contains(&member))
        || lagging
        || !view.learners.is_empty()
        || heard.asks_for_leader(group)
        || heard
            .newest_claim(group)
            .is_some_and(|(_, term)| term > view.term);
    match wanted {
        true => Duty::Heartbeat,
        false => Duty::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::NodeHeartbeat;

    const PATIENCE: Patience = Patience {
        silence: Duration::from_millis(500),
        min: Duration::from_millis(1000),
        max: Duration::from_millis(2000),
    };

    fn tick(node: NodeId, heard: &Heard, now: Instant) -> Tick<'_> {
        Tick {
            node,
            heard,
            now,
            patience: PATIENCE,
        }
    }

    fn follower_of(leader: NodeId) -> GroupView {
        GroupView {
            term: 3,
            leader: Some(leader),
            last_log_index: Some(10),
            voters: vec![1, 2, 3],
            ..GroupView::default()
        }
    }

    fn heartbeat(from: NodeId, leads: &[(&str, u64)], needs: &[&str]) -> NodeHeartbeat {
        NodeHeartbeat {
            from,
            incarnation: 7,
            sequence: 1,
            leads: leads.iter().map(|&(g, t)| (g.to_string(), t)).collect(),
            needs_leader: needs.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// The ticks (100 ms apart) at which node 2, following node 1 in
    /// group `g`, elects, while node 1's heartbeats say `says` until
    /// `heard_until`.
    fn elections(says: &[(&str, u64)], heard_until: u64, ticks: u64) -> Vec<u64> {
        let heard = Heard::default();
        let start = Instant::now();
        let mut suspicion = Suspicion::default();
        let mut elected = Vec::new();
        for i in 0..ticks {
            let now = start + Duration::from_millis(100 * i);
            if i <= heard_until {
                let sequence = i + 1;
                heard.record(
                    NodeHeartbeat {
                        sequence,
                        ..heartbeat(1, says, &[])
                    },
                    now,
                );
            }
            // A random draw of 0 waits the shortest patience, 1000 ms.
            let duty = follower_duty(
                &tick(2, &heard, now),
                "g",
                &follower_of(1),
                &mut suspicion,
                0,
            );
            if duty == Duty::Elect {
                elected.push(i);
            }
        }
        elected
    }

    #[test]
    fn a_follower_whose_leader_is_heard_and_claims_the_group_never_elects() {
        assert_eq!(elections(&[("g", 3)], 100, 100), Vec::<u64>::new());
    }

    #[test]
    fn a_follower_elects_once_its_leader_falls_silent_for_its_patience_and_again_later() {
        // Heard last at tick 0, silent from 500 ms (tick 5) on, then the
        // patience before each try.
        assert_eq!(elections(&[("g", 3)], 0, 60), vec![15, 25, 35, 45, 55]);
    }

    #[test]
    fn a_leader_heard_but_no_longer_claiming_the_group_is_replaced() {
        assert_eq!(elections(&[("other", 3)], 100, 25), vec![10, 20]);
    }

    #[test]
    fn the_only_voter_elects_at_once_and_learners_never_do() {
        let heard = Heard::default();
        let now = Instant::now();
        let mut suspicion = Suspicion::default();
        let alone = GroupView {
            voters: vec![1],
            ..GroupView::default()
        };
        let duty = follower_duty(&tick(1, &heard, now), "g", &alone, &mut suspicion, 0);
        assert_eq!(duty, Duty::Elect);
        let electing = GroupView {
            candidate: true,
            ..alone.clone()
        };
        let duty = follower_duty(&tick(1, &heard, now), "g", &electing, &mut suspicion, 0);
        assert_eq!(duty, Duty::Nothing);
        let learner = GroupView {
            voters: vec![1, 2],
            learners: vec![3],
            ..GroupView::default()
        };
        for at in [now, now + Duration::from_secs(60)] {
            let duty = follower_duty(&tick(3, &heard, at), "g", &learner, &mut suspicion, 0);
            assert_eq!(duty, Duty::Nothing);
        }
    }

    fn leader_view() -> GroupView {
        GroupView {
            leading: true,
            term: 3,
            leader: Some(1),
            last_log_index: Some(10),
            voters: vec![1, 2, 3],
            matched: vec![(1, Some(10)), (2, Some(10)), (3, Some(10))],
            ..GroupView::default()
        }
    }

    fn leader_duty_of(view: &GroupView, heard: &Heard, rejoined: &[NodeId], up: bool) -> Duty {
        let rejoined = rejoined.iter().copied().collect();
        leader_duty(
            &tick(1, heard, Instant::now()),
            "g",
            view,
            &rejoined,
            |_| up,
            false,
        )
    }

    #[test]
    fn an_idle_leader_whose_members_hold_everything_stays_quiet() {
        let heard = Heard::default();
        heard.record(heartbeat(2, &[("other", 5)], &[]), Instant::now());
        assert_eq!(
            leader_duty_of(&leader_view(), &heard, &[], true),
            Duty::Nothing
        );
    }

    #[test]
    fn a_leader_speaks_up_for_members_that_need_it() {
        let quiet = Heard::default();
        assert_eq!(
            leader_duty_of(&leader_view(), &quiet, &[3], true),
            Duty::Heartbeat
        );

        let mut lagging = leader_view();
        lagging.matched[2] = (3, Some(4));
        assert_eq!(leader_duty_of(&lagging, &quiet, &[], true), Duty::Heartbeat);
        // A member that cannot be reached is not sent to in vain.
        assert_eq!(leader_duty_of(&lagging, &quiet, &[], false), Duty::Nothing);

        let mut moving = leader_view();
        moving.learners = vec![4];
        assert_eq!(leader_duty_of(&moving, &quiet, &[], true), Duty::Heartbeat);

        let asking = Heard::default();
        asking.record(heartbeat(2, &[], &["g"]), Instant::now());
        assert_eq!(
            leader_duty_of(&leader_view(), &asking, &[], true),
            Duty::Heartbeat
        );

        let newer = Heard::default();
        newer.record(heartbeat(2, &[("g", 4)], &[]), Instant::now());
        assert_eq!(
            leader_duty_of(&leader_view(), &newer, &[], true),
            Duty::Heartbeat
        );
        let older = Heard::default();
        older.record(heartbeat(2, &[("g", 2)], &[]), Instant::now());
        assert_eq!(
            leader_duty_of(&leader_view(), &older, &[], true),
            Duty::Nothing
        );
    }
}
