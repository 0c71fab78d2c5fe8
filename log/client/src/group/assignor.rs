//! Partition assignors, run by the group's leader: `range` and `roundrobin`
//! (eager: every member gives up everything at a rebalance) and
//! `cooperative-sticky` (members keep what they own where balance allows;
//! a partition that moves is first only revoked, and assigned in the
//! follow-up rebalance, so no partition ever has two owners).

use std::collections::{BTreeMap, BTreeSet};

use crate::TopicPartition;
use spool_protocol::consumer_protocol::Subscription;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignor {
    Range,
    RoundRobin,
    CooperativeSticky,
    /// Partition `p` of every topic to one member, cooperative and sticky
    /// (spool-streams' tasks; see `copartitioned`).
    CooperativeCopartitioned,
}

impl Assignor {
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
            Assignor::CooperativeCopartitioned => "cooperative-copartitioned",
        }
    }

    pub fn from_name(name: &str) -> Option<Assignor> {
        [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
            Assignor::CooperativeCopartitioned,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    pub fn is_cooperative(self) -> bool {
        matches!(
            self,
            Assignor::CooperativeSticky | Assignor::CooperativeCopartitioned
        )
    }

    /// Assigns the partitions of `partition_counts` (topic → count) to the
    /// members (member id → subscription). Every member appears in the
    /// result, possibly with nothing.
    pub fn assign(
        self,
        members: &BTreeMap<String, Subscription>,
        partition_counts: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut result: BTreeMap<String, Vec<TopicPartition>> =
            members.keys().map(|m| (m.clone(), Vec::new())).collect();
        match self {
            Assignor::Range => range(members, partition_counts, &mut result),
            Assignor::RoundRobin => round_robin(members, partition_counts, &mut result),
            Assignor::CooperativeSticky => sticky(members, partition_counts, &mut result),
            Assignor::CooperativeCopartitioned => {
                super::copartitioned::assign(members, partition_counts, &mut result)
            }
        }
        for partitions in result.values_mut() {
            partitions.sort();
        }
        result
    }
}

fn subscribers<'a>(members: &'a BTreeMap<String, Subscription>, topic: &str) -> Vec<&'a String> {
    members
        .iter()
        .filter(|(_, s)| s.topics.iter().any(|t| t == topic))
        .map(|(m, _)| m)
        .collect()
}

/// Per topic, contiguous ranges: the first `count % n` members get one more.
fn range(
    members: &BTreeMap<String, Subscription>,
    counts: &BTreeMap<String, u32>,
    result: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    for (topic, &count) in counts {
        let subs = subscribers(members, topic);
        if subs.is_empty() {
            continue;
        }
        let (each, extra) = (count / subs.len() as u32, count % subs.len() as u32);
        let mut next = 0;
        for (i, member) in subs.into_iter().enumerate() {
            let n = each + u32::from((i as u32) < extra);
            let entry = result.get_mut(member).expect("every member has an entry");
            entry.extend((next..next + n).map(|p| TopicPartition::new(topic.clone(), p)));
            next += n;
        }
    }
}

/// All partitions in order, dealt to the subscribed members in turn.
fn round_robin(
    members: &BTreeMap<String, Subscription>,
    counts: &BTreeMap<String, u32>,
    result: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    let ids: Vec<&String> = members.keys().collect();
    let mut turn = 0usize;
    for (topic, &count) in counts {
        for partition in 0..count {
            for _ in 0..ids.len() {
                let member = ids[turn % ids.len()];
                turn += 1;
                if members[member].topics.iter().any(|t| t == topic) {
                    result
                        .get_mut(member)
                        .expect("entry")
                        .push(TopicPartition::new(topic.clone(), partition));
                    break;
                }
            }
        }
    }
}

/// Balanced, keeping current owners where the balance allows; partitions
/// that change owner are held back for the follow-up rebalance.
fn sticky(
    members: &BTreeMap<String, Subscription>,
    counts: &BTreeMap<String, u32>,
    result: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    let all: BTreeSet<TopicPartition> = counts
        .iter()
        .filter(|(topic, _)| !subscribers(members, topic).is_empty())
        .flat_map(|(topic, &count)| (0..count).map(move |p| TopicPartition::new(topic.clone(), p)))
        .collect();
    let floor = all.len() / members.len().max(1);
    let mut ceil_slots = all.len() % members.len().max(1);
    // Current owners, where still valid; the first claim wins a conflict.
    let mut previous_owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
    for (member, subscription) in members {
        for tp in &subscription.owned {
            if all.contains(tp) && subscription.topics.contains(&tp.topic) {
                previous_owner
                    .entry(tp.clone())
                    .or_insert_with(|| member.clone());
            }
        }
    }
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    for member in members.keys() {
        let owned: Vec<TopicPartition> = previous_owner
            .iter()
            .filter(|(_, m)| *m == member)
            .map(|(tp, _)| tp.clone())
            .collect();
        let mut limit = floor;
        if owned.len() > floor && ceil_slots > 0 {
            limit += 1;
            ceil_slots -= 1;
        }
        for tp in owned.into_iter().take(limit) {
            taken.insert(tp.clone());
            result.get_mut(member).expect("entry").push(tp);
        }
    }
    for tp in all.iter().filter(|tp| !taken.contains(*tp)) {
        let candidate = members
            .iter()
            .filter(|(_, s)| s.topics.contains(&tp.topic))
            .map(|(m, _)| m)
            .min_by_key(|m| (result[*m].len(), (*m).clone()));
        if let Some(member) = candidate {
            result.get_mut(member).expect("entry").push(tp.clone());
        }
    }
    // A partition someone else still owns is only revoked this round.
    for (member, partitions) in result.iter_mut() {
        partitions.retain(|tp| previous_owner.get(tp).is_none_or(|owner| owner == member));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (member, topics, owned partitions)
    type Spec<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, u32)]);

    fn members(specs: &[Spec<'_>]) -> BTreeMap<String, Subscription> {
        specs
            .iter()
            .map(|(id, topics, owned)| {
                let s = Subscription {
                    topics: topics.iter().map(|t| t.to_string()).collect(),
                    owned: owned
                        .iter()
                        .map(|(t, p)| TopicPartition::new(*t, *p))
                        .collect(),
                };
                (id.to_string(), s)
            })
            .collect()
    }

    fn names(result: &BTreeMap<String, Vec<TopicPartition>>, member: &str) -> Vec<u32> {
        result[member].iter().map(|tp| tp.partition).collect()
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let m = members(&[("a", &["t"], &[]), ("b", &["t"], &[]), ("c", &["t"], &[])]);
        let r = Assignor::Range.assign(&m, &BTreeMap::from([("t".to_string(), 7)]));
        assert_eq!(names(&r, "a"), vec![0, 1, 2]);
        assert_eq!(names(&r, "b"), vec![3, 4]);
        assert_eq!(names(&r, "c"), vec![5, 6]);
    }

    #[test]
    fn round_robin_deals_in_turn() {
        let m = members(&[("a", &["t"], &[]), ("b", &["t"], &[])]);
        let r = Assignor::RoundRobin.assign(&m, &BTreeMap::from([("t".to_string(), 5)]));
        assert_eq!(names(&r, "a"), vec![0, 2, 4]);
        assert_eq!(names(&r, "b"), vec![1, 3]);
    }

    #[test]
    fn sticky_keeps_owners_and_holds_back_moves() {
        // a owned everything; b joins. a keeps 3 of 6, the other 3 are only
        // revoked now (nobody gets them this round).
        let owned: Vec<(&str, u32)> = (0..6).map(|p| ("t", p)).collect();
        let m = members(&[("a", &["t"], &owned), ("b", &["t"], &[])]);
        let counts = BTreeMap::from([("t".to_string(), 6)]);
        let r = Assignor::CooperativeSticky.assign(&m, &counts);
        assert_eq!(names(&r, "a"), vec![0, 1, 2]);
        assert!(names(&r, "b").is_empty());
        // Follow-up round: a owns 0..3, b nothing: b gets the rest.
        let m = members(&[
            ("a", &["t"], &[("t", 0), ("t", 1), ("t", 2)]),
            ("b", &["t"], &[]),
        ]);
        let r = Assignor::CooperativeSticky.assign(&m, &counts);
        assert_eq!(names(&r, "a"), vec![0, 1, 2]);
        assert_eq!(names(&r, "b"), vec![3, 4, 5]);
    }

    #[test]
    fn every_assignor_assigns_each_partition_once() {
        let m = members(&[
            ("a", &["t", "u"], &[("t", 1)]),
            ("b", &["t"], &[("t", 0)]),
            ("c", &["u"], &[]),
        ]);
        let counts = BTreeMap::from([("t".to_string(), 5), ("u".to_string(), 3)]);
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            let r = assignor.assign(&m, &counts);
            let mut seen = BTreeSet::new();
            for (member, partitions) in &r {
                for tp in partitions {
                    assert!(
                        m[member].topics.contains(&tp.topic),
                        "{assignor:?}: {member} got {tp:?}"
                    );
                    assert!(seen.insert(tp.clone()), "{assignor:?}: {tp:?} twice");
                }
            }
            assert_eq!(seen.len(), 8, "{assignor:?}");
        }
    }
}
