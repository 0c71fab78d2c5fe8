//! Replica placement. Partition `p` of a topic gets the brokers
//! `start + p, start + p + 1, ...` (modulo the broker count) in the
//! broker list, the first being its preferred leader: every broker is
//! preferred leader of `partitions / brokers` partitions (plus one for
//! some), and holds as many replicas as any other, give or take one.
//! `start` rotates with each topic so that small topics do not all lead on
//! the first broker.

use crate::NodeId;
use crate::{ReplicationError, Result};

/// The replica lists of `partitions` new partitions over `brokers` (kept
/// sorted), `replication_factor` each, the first replica of each list its
/// preferred leader.
pub fn assign_replicas(
    brokers: &[NodeId],
    partitions: u32,
    replication_factor: u32,
    start: usize,
) -> Result<Vec<Vec<NodeId>>> {
    let count = brokers.len();
    if replication_factor == 0 || replication_factor as usize > count {
        return Err(ReplicationError::InvalidConfig {
            key: "replication.factor".into(),
            value: replication_factor.to_string(),
            reason: format!("must be between 1 and the number of brokers ({count})"),
        });
    }
    let mut sorted = brokers.to_vec();
    sorted.sort_unstable();
    Ok((0..partitions as usize)
        .map(|p| {
            (0..replication_factor as usize)
                .map(|r| sorted[(start + p + r) % count])
                .collect()
        })
        .collect())
}

/// Where a new topic's replicas go.
#[derive(Clone, Debug)]
pub enum Placement {
    /// Spread over the registered brokers by [`assign_replicas`].
    Spread {
        partitions: u32,
        replication_factor: u32,
    },
    /// Given per partition, first replica first (Kafka's replica
    /// assignments, as `kafka-topics --replica-assignment` sends them).
    Explicit(Vec<Vec<NodeId>>),
}

impl Placement {
    /// The replicas of each partition over `brokers` (the registered ones),
    /// `start` rotating where a spread begins.
    pub fn replicas(&self, brokers: &[NodeId], start: usize) -> Result<Vec<Vec<NodeId>>> {
        match self {
            Placement::Spread {
                partitions,
                replication_factor,
            } => assign_replicas(brokers, *partitions, *replication_factor, start),
            Placement::Explicit(replicas) => {
                check_explicit(brokers, replicas)?;
                Ok(replicas.clone())
            }
        }
    }
}

/// An explicit assignment names registered brokers, each at most once per
/// partition, with as many replicas for every partition.
fn check_explicit(brokers: &[NodeId], replicas: &[Vec<NodeId>]) -> Result<()> {
    let invalid = |reason: String| ReplicationError::InvalidConfig {
        key: "replica.assignment".into(),
        value: format!("{replicas:?}"),
        reason,
    };
    let factor = replicas.first().map_or(0, Vec::len);
    if factor == 0 {
        return Err(invalid("every partition needs at least one replica".into()));
    }
    for (partition, set) in replicas.iter().enumerate() {
        if set.len() != factor {
            return Err(invalid(format!(
                "partition {partition} has {} replicas, partition 0 has {factor}",
                set.len()
            )));
        }
        if let Some(unknown) = set.iter().find(|b| !brokers.contains(b)) {
            return Err(invalid(format!(
                "broker {unknown} is not registered (brokers: {brokers:?})"
            )));
        }
        let mut distinct = set.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != set.len() {
            return Err(invalid(format!(
                "partition {partition} names a broker twice"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_replicas_are_taken_as_given_when_they_fit_the_cluster() {
        let brokers = [1, 2, 3];
        let given = vec![vec![3, 1], vec![2, 3]];
        let placement = Placement::Explicit(given.clone());
        assert_eq!(placement.replicas(&brokers, 7).unwrap(), given);
        for wrong in [
            vec![vec![1, 4]],          // an unknown broker
            vec![vec![1, 1]],          // a broker twice
            vec![vec![1, 2], vec![3]], // uneven
            vec![vec![]],              // no replica
        ] {
            let refused = Placement::Explicit(wrong.clone()).replicas(&brokers, 0);
            assert!(
                matches!(refused, Err(ReplicationError::InvalidConfig { ref key, .. }) if key == "replica.assignment"),
                "{wrong:?} was not refused: {refused:?}"
            );
        }
    }

    #[test]
    fn leaders_and_replicas_spread_evenly() {
        let brokers = [3, 1, 2];
        let lists = assign_replicas(&brokers, 6, 2, 0).unwrap();
        let mut leads = [0; 4];
        let mut holds = [0; 4];
        for list in &lists {
            leads[list[0] as usize] += 1;
            for &b in list {
                holds[b as usize] += 1;
            }
            let mut distinct = list.clone();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                2,
                "replicas of a partition are distinct brokers"
            );
        }
        assert_eq!(&leads[1..], &[2, 2, 2]);
        assert_eq!(&holds[1..], &[4, 4, 4]);
        assert_eq!(
            assign_replicas(&brokers, 1, 3, 1).unwrap(),
            vec![vec![2, 3, 1]]
        );
    }

    #[test]
    fn a_replication_factor_beyond_the_brokers_is_refused() {
        assert!(assign_replicas(&[1, 2], 3, 3, 0).is_err());
        assert!(assign_replicas(&[1, 2], 3, 0, 0).is_err());
    }
}
