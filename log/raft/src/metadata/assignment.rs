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

#[cfg(test)]
mod tests {
    use super::*;

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
