//! What workers tell each other through the group: the metadata each
//! member joins with ([`WorkerState`]: who it is, how far it read the
//! config topic, what runs on it now) and the assignment the leader hands
//! each member ([`Assignment`]: what to start, what to give up), both JSON.
//!
//! The group's protocol type is Kafka Connect's, `connect`, so no consumer
//! can join a worker group by mistake (the coordinator refuses a member of
//! another type). The protocol's name is spool's own: its metadata is not
//! Kafka Connect's binary format, and a Kafka Connect worker offering only
//! Kafka's protocols (`sessioned`, `compatible`, `eager`) is refused by the
//! coordinator rather than misread.

use std::collections::BTreeSet;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::worker::TaskId;
use crate::{ConnectError, Result};

/// The group protocol type of connect workers (Kafka's).
pub(crate) const PROTOCOL_TYPE: &str = "connect";
/// The one protocol spool's workers offer: incremental cooperative
/// assignment (KIP-415) with JSON metadata.
pub(crate) const PROTOCOL_NAME: &str = "spool-incremental-cooperative";
/// The version of the metadata and assignments below.
pub(crate) const VERSION: u32 = 1;

/// Connectors and tasks: what a worker owns, or is given or asked to give
/// up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Units {
    #[serde(default)]
    pub connectors: BTreeSet<String>,
    #[serde(default)]
    pub tasks: BTreeSet<TaskId>,
}

impl Units {
    pub fn is_empty(&self) -> bool {
        self.connectors.is_empty() && self.tasks.is_empty()
    }

    /// How many connectors and tasks.
    pub fn len(&self) -> usize {
        self.connectors.len() + self.tasks.len()
    }

    /// These and `other`'s.
    pub(crate) fn extend(&mut self, other: &Units) {
        self.connectors.extend(other.connectors.iter().cloned());
        self.tasks.extend(other.tasks.iter().cloned());
    }

    /// These without `other`'s.
    pub(crate) fn without(&self, other: &Units) -> Units {
        Units {
            connectors: self
                .connectors
                .difference(&other.connectors)
                .cloned()
                .collect(),
            tasks: self.tasks.difference(&other.tasks).cloned().collect(),
        }
    }

    /// Those of these that `other` has too.
    pub(crate) fn within(&self, other: &Units) -> Units {
        Units {
            connectors: self
                .connectors
                .intersection(&other.connectors)
                .cloned()
                .collect(),
            tasks: self.tasks.intersection(&other.tasks).cloned().collect(),
        }
    }
}

/// A member's metadata when it joins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WorkerState {
    pub(crate) version: u32,
    /// The worker's id, as statuses show it.
    pub(crate) worker_id: String,
    /// Where its REST API is.
    pub(crate) url: String,
    /// The config topic's offset it has read up to.
    pub(crate) config_offset: u64,
    /// What runs on it now: under the cooperative protocol a member keeps
    /// it through the rebalance, unless the assignment revokes it.
    pub(crate) owned: Units,
}

/// The leader's answer to one member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Assignment {
    pub(crate) version: u32,
    /// The leader's member id and REST URL, for logs and operators.
    pub(crate) leader: String,
    pub(crate) leader_url: String,
    /// The config topic's offset the leader assigned from: a member reads
    /// up to it before it starts anything, so it knows every config the
    /// assignment counts on.
    pub(crate) config_offset: u64,
    /// To start: nobody runs them now.
    pub(crate) assigned: Units,
    /// To stop and give up; the member then rejoins at once, so the next
    /// round hands them on.
    pub(crate) revoked: Units,
    /// Rejoin after this long (KIP-415's scheduled rebalance: the work of
    /// a worker that left waits for it until then); 0 for no rejoin.
    pub(crate) delay_ms: u64,
}

/// `value` as the JSON bytes the group carries.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ConnectError::Task(format!("cannot encode group metadata: {e}")))
}

/// JSON bytes from the group as a `T`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        ConnectError::Task(format!(
            "group metadata or assignment spool cannot read (a worker of another version?): {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_assignments_read_back_and_unit_sets_combine() {
        let task = |task| TaskId {
            connector: "c".into(),
            task,
        };
        let owned = Units {
            connectors: ["c".to_string()].into(),
            tasks: [task(0), task(1)].into(),
        };
        let state = WorkerState {
            version: VERSION,
            worker_id: "w".into(),
            url: "http://w".into(),
            config_offset: 7,
            owned: owned.clone(),
        };
        let back: WorkerState = decode(&encode(&state).unwrap()).unwrap();
        assert_eq!(back, state);
        let empty: Assignment = decode(br#"{"version":1,"leader":"l","leader_url":"u","config_offset":0,"assigned":{},"revoked":{"tasks":[{"connector":"c","task":1}]},"delay_ms":0}"#).unwrap();
        assert!(empty.assigned.is_empty());
        assert_eq!(empty.revoked.tasks.len(), 1);
        let one = Units {
            connectors: BTreeSet::new(),
            tasks: [task(1)].into(),
        };
        assert_eq!(owned.without(&one).len(), 2);
        assert_eq!(owned.within(&one), one);
        let mut all = one.clone();
        all.extend(&owned);
        assert_eq!(all, owned);
        assert!(decode::<Assignment>(b"[1]").is_err());
    }
}
