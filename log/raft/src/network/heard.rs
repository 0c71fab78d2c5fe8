//! What a node heard from its peers' node heartbeats (see
//! [`crate::liveness`]): when each spoke last, which groups it leads, and
//! which groups' leader it asks for. The router keeps it, as it receives
//! them; the liveness task reads it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::NodeId;

/// One node's heartbeat to a peer: a single message per broker pair and
/// tick, standing for the heartbeats of every group the two share.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeHeartbeat {
    pub from: NodeId,
    /// Drawn when the node's router was made: a new value means the node
    /// restarted, and its groups must hear from their leaders.
    pub incarnation: u64,
    /// Counts up with each heartbeat of an incarnation: heartbeats travel
    /// concurrently, and a late one must not undo a newer one.
    pub sequence: u64,
    /// The quiescent groups `from` leads, with the term it leads in.
    pub leads: Vec<(String, u64)>,
    /// The quiescent groups in which `from` is a voter following no
    /// leader it knows.
    pub needs_leader: Vec<String>,
}

/// What the last heartbeat of one peer said, and when it came.
#[derive(Debug)]
struct PeerReport {
    at: Instant,
    incarnation: u64,
    sequence: u64,
    leads: HashMap<String, u64>,
    needs_leader: HashSet<String>,
}

/// The latest heartbeat of each peer, as the router received them.
#[derive(Debug, Default)]
pub struct Heard {
    peers: Mutex<HashMap<NodeId, PeerReport>>,
}

impl Heard {
    /// Keeps `heartbeat` as what its sender says now, received at `at`,
    /// unless a newer heartbeat of the same incarnation came first.
    pub fn record(&self, heartbeat: NodeHeartbeat, at: Instant) {
        let mut peers = self.peers.lock();
        if let Some(known) = peers.get(&heartbeat.from) {
            if known.incarnation == heartbeat.incarnation && known.sequence >= heartbeat.sequence {
                return;
            }
        }
        let report = PeerReport {
            at,
            incarnation: heartbeat.incarnation,
            sequence: heartbeat.sequence,
            leads: heartbeat.leads.into_iter().collect(),
            needs_leader: heartbeat.needs_leader.into_iter().collect(),
        };
        peers.insert(heartbeat.from, report);
    }

    /// Forgets the peers silent for `silence` before `now`: a dead peer's
    /// last word (a group it led, a leader it asked for) no longer counts.
    pub fn forget_silent(&self, now: Instant, silence: Duration) {
        self.peers
            .lock()
            .retain(|_, report| now.saturating_duration_since(report.at) < silence);
    }

    /// True when `peer` spoke less than `silence` before `now`.
    pub fn alive(&self, peer: NodeId, now: Instant, silence: Duration) -> bool {
        self.peers
            .lock()
            .get(&peer)
            .is_some_and(|report| now.saturating_duration_since(report.at) < silence)
    }

    /// True when `peer`'s last heartbeat says it leads `group` (and the
    /// driver has not forgotten it as silent).
    pub fn claims(&self, peer: NodeId, group: &str) -> bool {
        self.peers
            .lock()
            .get(&peer)
            .is_some_and(|report| report.leads.contains_key(group))
    }

    /// The peer claiming `group` in the newest term, with that term.
    pub fn newest_claim(&self, group: &str) -> Option<(NodeId, u64)> {
        self.peers
            .lock()
            .iter()
            .filter_map(|(&peer, report)| report.leads.get(group).map(|&term| (peer, term)))
            .max_by_key(|&(_, term)| term)
    }

    /// True when some peer's voter of `group` follows no leader it knows.
    pub fn asks_for_leader(&self, group: &str) -> bool {
        self.peers
            .lock()
            .values()
            .any(|report| report.needs_leader.contains(group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(incarnation: u64, sequence: u64, leads: &str) -> NodeHeartbeat {
        NodeHeartbeat {
            from: 2,
            incarnation,
            sequence,
            leads: vec![(leads.to_string(), 1)],
            needs_leader: Vec::new(),
        }
    }

    #[test]
    fn a_late_heartbeat_does_not_undo_a_newer_one_but_a_restart_does() {
        let heard = Heard::default();
        let now = Instant::now();
        heard.record(heartbeat(7, 5, "new"), now);
        heard.record(heartbeat(7, 4, "old"), now);
        assert!(heard.claims(2, "new") && !heard.claims(2, "old"));
        heard.record(heartbeat(8, 1, "restarted"), now);
        assert!(heard.claims(2, "restarted") && !heard.claims(2, "new"));
    }

    #[test]
    fn a_silent_peer_is_forgotten_with_what_it_said() {
        let heard = Heard::default();
        let then = Instant::now();
        heard.record(heartbeat(7, 1, "g"), then);
        let silence = Duration::from_secs(1);
        heard.forget_silent(then + Duration::from_millis(900), silence);
        assert!(heard.claims(2, "g"));
        heard.forget_silent(then + Duration::from_millis(1000), silence);
        assert!(!heard.claims(2, "g") && !heard.alive(2, then, silence));
        assert_eq!(heard.newest_claim("g"), None);
    }
}
