//! `cooperative-copartitioned`, the assignor spool-streams' threads use.
//!
//! Its unit is a partition number: partition `p` of every subscribed topic
//! goes to one member, so a stream task reading partition `p` of several
//! co-partitioned topics (a join, a multi-topic or pattern source) gets
//! them all. Units are balanced over the members and stay with their
//! owner where the balance allows; a unit that changes owner is only
//! revoked this round and assigned in the follow-up rebalance
//! (cooperative), so the tasks that stay never stop and no partition ever
//! has two owners. It expects every member to subscribe to the same
//! topics (one application's threads); a member is given only the topics
//! of a unit it subscribes to.

use std::collections::BTreeMap;

use crate::TopicPartition;
use spool_protocol::consumer_protocol::Subscription;

pub(super) fn assign(
    members: &BTreeMap<String, Subscription>,
    counts: &BTreeMap<String, u32>,
    result: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    let subscribed: Vec<(&String, u32)> = counts
        .iter()
        .filter(|(topic, _)| members.values().any(|s| s.topics.contains(topic)))
        .map(|(topic, &count)| (topic, count))
        .collect();
    let units = subscribed
        .iter()
        .map(|&(_, count)| count)
        .max()
        .unwrap_or(0);
    let previous = previous_owners(members, &subscribed);
    let owner = balance(members, units, &previous);
    for (unit, member) in owner {
        // A unit someone else still owns is only revoked this round.
        if previous.get(&unit).is_some_and(|p| *p != member) {
            continue;
        }
        let entry = result.get_mut(member).expect("every member has an entry");
        for &(topic, count) in &subscribed {
            if unit < count && members[member].topics.contains(topic) {
                entry.push(TopicPartition::new(topic.clone(), unit));
            }
        }
    }
}

/// Each unit's current owner: the first member (by id) that owns one of
/// its partitions and still subscribes to that partition's topic.
fn previous_owners<'a>(
    members: &'a BTreeMap<String, Subscription>,
    subscribed: &[(&String, u32)],
) -> BTreeMap<u32, &'a String> {
    let mut previous = BTreeMap::new();
    for (member, subscription) in members {
        for tp in &subscription.owned {
            let exists = subscribed
                .iter()
                .any(|&(topic, count)| *topic == tp.topic && tp.partition < count);
            if exists && subscription.topics.contains(&tp.topic) {
                previous.entry(tp.partition).or_insert(member);
            }
        }
    }
    previous
}

/// Every unit's owner: members keep up to their fair share (`units / n`,
/// one more for the first `units % n` that owned that many) of what they
/// owned; the rest go to the least loaded.
fn balance<'a>(
    members: &'a BTreeMap<String, Subscription>,
    units: u32,
    previous: &BTreeMap<u32, &'a String>,
) -> BTreeMap<u32, &'a String> {
    let n = members.len().max(1);
    let (floor, mut ceil_slots) = (units as usize / n, units as usize % n);
    let mut owner: BTreeMap<u32, &String> = BTreeMap::new();
    let mut load: BTreeMap<&String, usize> = members.keys().map(|m| (m, 0)).collect();
    for member in members.keys() {
        let owned: Vec<u32> = previous
            .iter()
            .filter(|(_, m)| **m == member)
            .map(|(&unit, _)| unit)
            .collect();
        let mut limit = floor;
        if owned.len() > floor && ceil_slots > 0 {
            limit += 1;
            ceil_slots -= 1;
        }
        for unit in owned.into_iter().take(limit) {
            owner.insert(unit, member);
            *load.entry(member).or_default() += 1;
        }
    }
    for unit in 0..units {
        if owner.contains_key(&unit) {
            continue;
        }
        let least = load
            .iter()
            .min_by_key(|(member, count)| (**count, **member))
            .map(|(member, _)| *member);
        if let Some(member) = least {
            owner.insert(unit, member);
            *load.entry(member).or_default() += 1;
        }
    }
    owner
}

#[cfg(test)]
mod tests {
    use super::super::Assignor;
    use super::*;

    fn member(topics: &[&str], owned: &[(&str, u32)]) -> Subscription {
        Subscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: owned
                .iter()
                .map(|(t, p)| TopicPartition::new(*t, *p))
                .collect(),
        }
    }

    fn assigned(result: &BTreeMap<String, Vec<TopicPartition>>, m: &str) -> Vec<(String, u32)> {
        result[m]
            .iter()
            .map(|tp| (tp.topic.clone(), tp.partition))
            .collect()
    }

    #[test]
    fn partition_p_of_every_topic_goes_to_one_member() {
        let members = BTreeMap::from([
            ("a".to_string(), member(&["t", "u"], &[])),
            ("b".to_string(), member(&["t", "u"], &[])),
        ]);
        let counts = BTreeMap::from([("t".to_string(), 4), ("u".to_string(), 4)]);
        let r = Assignor::CooperativeCopartitioned.assign(&members, &counts);
        let a = assigned(&r, "a");
        let b = assigned(&r, "b");
        assert_eq!(a.len(), 4, "{a:?}");
        assert_eq!(b.len(), 4, "{b:?}");
        for (topic, p) in &a {
            let other = if topic == "t" { "u" } else { "t" };
            assert!(a.contains(&(other.to_string(), *p)), "{a:?}");
        }
    }

    #[test]
    fn owners_keep_their_units_and_moves_wait_for_the_follow_up() {
        let all: Vec<(&str, u32)> = (0..4).flat_map(|p| [("t", p), ("u", p)]).collect();
        let counts = BTreeMap::from([("t".to_string(), 4), ("u".to_string(), 4)]);
        // a owned everything; b joins: a keeps two units, the other two
        // are only revoked.
        let members = BTreeMap::from([
            ("a".to_string(), member(&["t", "u"], &all)),
            ("b".to_string(), member(&["t", "u"], &[])),
        ]);
        let r = Assignor::CooperativeCopartitioned.assign(&members, &counts);
        let kept = assigned(&r, "a");
        assert_eq!(kept.len(), 4, "{kept:?}");
        assert!(assigned(&r, "b").is_empty());
        // Follow-up: a owns what it kept; b gets the rest, whole units.
        let kept_refs: Vec<(&str, u32)> = kept.iter().map(|(t, p)| (t.as_str(), *p)).collect();
        let members = BTreeMap::from([
            ("a".to_string(), member(&["t", "u"], &kept_refs)),
            ("b".to_string(), member(&["t", "u"], &[])),
        ]);
        let r = Assignor::CooperativeCopartitioned.assign(&members, &counts);
        assert_eq!(assigned(&r, "a"), kept);
        let b = assigned(&r, "b");
        assert_eq!(b.len(), 4, "{b:?}");
        assert!(b.iter().all(|tp| !kept.contains(tp)), "{b:?}");
    }
}
