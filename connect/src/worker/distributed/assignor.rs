//! The leader's assignment: incremental and cooperative (KIP-415), sticky,
//! and balanced round-robin. Pure: it sees what every member owns and what
//! the config topic asks to run, and answers what each member starts and
//! gives up; nothing here talks to a broker.
//!
//! The rules, for connectors and for tasks separately (as Kafka balances
//! them):
//! - A member keeps what it owns, unless the unit is no longer wanted (its
//!   connector was deleted or stopped, its task number is past the task
//!   count) or another member, earlier in member order, owns it too: then
//!   it is revoked.
//! - Units nobody owns (new, or of a worker that left) are handed out at
//!   once, each to the member with the fewest, the earlier member on a tie,
//!   which spreads a connector's tasks round-robin over the workers.
//! - A member with more than its fair share (the total over the members,
//!   rounded up for as many members as the remainder, down for the others)
//!   gives up the excess: revoked now, handed on in the next round, which
//!   the revoking member starts by rejoining as soon as it stopped them.
//!   So a unit never runs on two workers at once, and what does not move
//!   is never stopped.
//! - With a scheduled delay (`scheduled.rebalance.max.delay.ms`), the
//!   units of a worker that left are held back until the delay ends, in
//!   case it comes back; the leader remembers them between rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::protocol::Units;

/// A member as the leader sees it: its id and what it owns.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) owned: Units,
}

/// One member's part of a round: what it starts and what it gives up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) assigned: Units,
    pub(crate) revoked: Units,
}

/// A round's assignment.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    pub(crate) parts: BTreeMap<String, Part>,
    /// When to rejoin, for units held back; zero for none.
    pub(crate) delay: Duration,
}

/// What the leader remembers between rounds.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    /// Every unit owned or assigned after the last round, but those
    /// revoked in it: a unit of these that nobody owns now was lost with
    /// its worker.
    previous: Units,
    /// Units lost with a worker and held back, and until when.
    held: Option<(Instant, Units)>,
}

impl Memory {
    /// The lost units to hold back this round (see the module's comment).
    fn hold(&mut self, lost: Units, unowned: &Units, now: Instant, max_delay: Duration) -> Units {
        if max_delay.is_zero() {
            self.held = None;
            return Units::default();
        }
        match self.held.take() {
            Some((deadline, mut units)) if now < deadline => {
                units.extend(&lost);
                let units = units.within(unowned);
                self.held = Some((deadline, units.clone()));
                units
            }
            // The delay is over: the units are handed out.
            Some(_) => Units::default(),
            None if !lost.is_empty() => {
                self.held = Some((now + max_delay, lost.clone()));
                lost
            }
            None => Units::default(),
        }
    }

    /// How long until the held units are handed out.
    fn delay(&self, now: Instant) -> Duration {
        match &self.held {
            Some((deadline, _)) => deadline.saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }
}

/// The assignment of `desired` over `members` (see the module's comment).
/// `members` must not be empty: the leader is one of them.
pub(crate) fn assign(
    desired: &Units,
    members: &[Member],
    memory: &mut Memory,
    now: Instant,
    max_delay: Duration,
) -> Plan {
    let mut owned_anywhere = Units::default();
    for member in members {
        owned_anywhere.extend(&member.owned);
    }
    let unowned = desired.without(&owned_anywhere);
    let lost = unowned.within(&memory.previous);
    let held = memory.hold(lost, &unowned, now, max_delay);
    let connectors = split(
        &desired.connectors,
        &members
            .iter()
            .map(|m| &m.owned.connectors)
            .collect::<Vec<_>>(),
        &held.connectors,
    );
    let tasks = split(
        &desired.tasks,
        &members.iter().map(|m| &m.owned.tasks).collect::<Vec<_>>(),
        &held.tasks,
    );
    let mut plan = Plan {
        parts: BTreeMap::new(),
        delay: memory.delay(now),
    };
    let mut previous = Units::default();
    for (i, member) in members.iter().enumerate() {
        let part = Part {
            assigned: Units {
                connectors: connectors.assigned[i].clone(),
                tasks: tasks.assigned[i].clone(),
            },
            revoked: Units {
                connectors: connectors.revoked[i].clone(),
                tasks: tasks.revoked[i].clone(),
            },
        };
        previous.extend(&member.owned.without(&part.revoked));
        previous.extend(&part.assigned);
        plan.parts.insert(member.id.clone(), part);
    }
    memory.previous = previous;
    plan
}

/// One kind of unit's assignment, by member index.
struct Split<T> {
    assigned: Vec<BTreeSet<T>>,
    revoked: Vec<BTreeSet<T>>,
}

fn split<T: Ord + Clone>(
    desired: &BTreeSet<T>,
    owned: &[&BTreeSet<T>],
    held: &BTreeSet<T>,
) -> Split<T> {
    let n = owned.len();
    let mut kept: Vec<BTreeSet<T>> = vec![BTreeSet::new(); n];
    let mut revoked: Vec<BTreeSet<T>> = vec![BTreeSet::new(); n];
    let mut claimed = BTreeSet::new();
    for (i, units) in owned.iter().enumerate() {
        for unit in units.iter() {
            if desired.contains(unit) && claimed.insert(unit.clone()) {
                kept[i].insert(unit.clone());
            } else {
                revoked[i].insert(unit.clone());
            }
        }
    }
    let mut assigned: Vec<BTreeSet<T>> = vec![BTreeSet::new(); n];
    if n == 0 {
        return Split { assigned, revoked };
    }
    // Fair shares count the held units too, so that handing them out
    // later does not unbalance what is decided now.
    let floor = desired.len() / n;
    let mut extra = desired.len() % n;
    let mut by_load: Vec<usize> = (0..n).collect();
    by_load.sort_by(|a, b| kept[*b].len().cmp(&kept[*a].len()).then(a.cmp(b)));
    for i in by_load {
        let allowed = match extra > 0 && kept[i].len() > floor {
            true => {
                extra -= 1;
                floor + 1
            }
            false => floor,
        };
        while kept[i].len() > allowed {
            let Some(last) = kept[i].iter().next_back().cloned() else {
                break;
            };
            kept[i].remove(&last);
            revoked[i].insert(last);
        }
    }
    let free = desired
        .iter()
        .filter(|unit| !claimed.contains(*unit) && !held.contains(*unit));
    for unit in free {
        let least = (0..n).min_by_key(|i| (kept[*i].len() + assigned[*i].len(), *i));
        if let Some(i) = least {
            assigned[i].insert(unit.clone());
        }
    }
    Split { assigned, revoked }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::TaskId;

    fn tasks(connector: &str, count: u32) -> BTreeSet<TaskId> {
        (0..count)
            .map(|task| TaskId {
                connector: connector.to_string(),
                task,
            })
            .collect()
    }

    fn units(connectors: &[&str], tasks: BTreeSet<TaskId>) -> Units {
        Units {
            connectors: connectors.iter().map(|c| c.to_string()).collect(),
            tasks,
        }
    }

    fn member(id: &str, owned: Units) -> Member {
        Member {
            id: id.to_string(),
            owned,
        }
    }

    /// What each member owns after applying `plan` (revoked gone,
    /// assigned added).
    fn after(members: &[Member], plan: &Plan) -> Vec<Member> {
        members
            .iter()
            .map(|m| {
                let part = &plan.parts[&m.id];
                let mut owned = m.owned.without(&part.revoked);
                owned.extend(&part.assigned);
                member(&m.id, owned)
            })
            .collect()
    }

    /// Runs rounds until nothing is revoked; the members then.
    fn settle(desired: &Units, mut members: Vec<Member>, memory: &mut Memory) -> Vec<Member> {
        for _ in 0..5 {
            let plan = assign(desired, &members, memory, Instant::now(), Duration::ZERO);
            let revoked = plan.parts.values().any(|p| !p.revoked.is_empty());
            members = after(&members, &plan);
            if !revoked {
                return members;
            }
        }
        panic!("no stable assignment after five rounds: {members:?}");
    }

    #[test]
    fn new_work_is_spread_round_robin_at_once() {
        let desired = units(&["a", "b"], tasks("a", 4));
        let members = vec![
            member("m1", Units::default()),
            member("m2", Units::default()),
        ];
        let mut memory = Memory::default();
        let plan = assign(
            &desired,
            &members,
            &mut memory,
            Instant::now(),
            Duration::ZERO,
        );
        assert!(plan.parts.values().all(|p| p.revoked.is_empty()));
        for part in plan.parts.values() {
            assert_eq!(part.assigned.connectors.len(), 1);
            assert_eq!(part.assigned.tasks.len(), 2);
        }
        assert_eq!(plan.delay, Duration::ZERO);
    }

    #[test]
    fn a_new_worker_gets_a_share_and_nothing_else_moves() {
        let desired = units(&["a"], tasks("a", 4));
        let first = vec![member("m1", desired.clone())];
        let mut memory = Memory::default();
        let first = settle(&desired, first, &mut memory);
        let before = first[0].owned.clone();
        let mut members = first;
        members.push(member("m2", Units::default()));
        // Round one only revokes; round two hands on.
        let plan = assign(
            &desired,
            &members,
            &mut memory,
            Instant::now(),
            Duration::ZERO,
        );
        assert_eq!(plan.parts["m1"].revoked.tasks.len(), 2);
        assert!(plan.parts["m2"].assigned.is_empty());
        let members = settle(&desired, after(&members, &plan), &mut memory);
        assert_eq!(members[0].owned.tasks.len(), 2);
        assert_eq!(members[1].owned.tasks.len(), 2);
        // What m1 kept is what it had: nothing of it was stopped.
        assert!(members[0].owned.tasks.is_subset(&before.tasks));
        assert_eq!(members[0].owned.connectors.len(), 1);
    }

    #[test]
    fn the_work_of_a_worker_that_left_moves_or_waits_for_the_delay() {
        let desired = units(&["a", "b"], tasks("a", 3));
        let two = vec![
            member("m1", Units::default()),
            member("m2", Units::default()),
        ];
        let mut memory = Memory::default();
        let two = settle(&desired, two, &mut memory);
        let survivor = vec![two[0].clone()];
        let plan = assign(
            &desired,
            &survivor,
            &mut memory,
            Instant::now(),
            Duration::ZERO,
        );
        let members = after(&survivor, &plan);
        assert_eq!(members[0].owned, desired, "everything moves at once");

        let mut memory = Memory::default();
        let two = settle(&desired, two, &mut memory);
        let survivor = vec![two[0].clone()];
        let now = Instant::now();
        let delay = Duration::from_secs(60);
        let plan = assign(&desired, &survivor, &mut memory, now, delay);
        assert!(plan.parts["m1"].assigned.is_empty(), "{plan:?}");
        assert_eq!(plan.delay, delay);
        let later = now + delay;
        let plan = assign(&desired, &survivor, &mut memory, later, delay);
        let members = after(&survivor, &plan);
        assert_eq!(members[0].owned, desired, "handed out when the delay ends");
    }

    #[test]
    fn unwanted_and_doubly_owned_units_are_revoked() {
        let desired = units(&["a"], tasks("a", 1));
        let stale = units(&["a", "gone"], tasks("a", 2));
        let members = vec![member("m1", stale.clone()), member("m2", stale)];
        let mut memory = Memory::default();
        let plan = assign(
            &desired,
            &members,
            &mut memory,
            Instant::now(),
            Duration::ZERO,
        );
        let m1 = &plan.parts["m1"];
        assert_eq!(m1.revoked.connectors, ["gone".to_string()].into());
        assert_eq!(m1.revoked.tasks.len(), 1);
        let m2 = &plan.parts["m2"];
        assert_eq!(m2.revoked.connectors.len(), 2);
        assert_eq!(m2.revoked.tasks.len(), 2);
    }
}
