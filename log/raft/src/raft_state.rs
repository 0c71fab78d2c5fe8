//! Small durable files beside a partition's segments: `raft-state` (the
//! vote and the purge point, owned by the log store) and `raft-snapshot`
//! (the last snapshot's description, owned by the state machine) and its
//! companions `raft-applied` and `raft-installing`.
//!
//! Each is written with [`spool_storage::write_durable`] (bincode, a
//! CRC32C trailer, replaced atomically). A missing file means a replica
//! that never voted or snapshotted; a damaged one is an error, not a
//! silent reset, since forgetting a vote could elect two leaders in a
//! term.

use serde::{Deserialize, Serialize};

use super::{LogId, NodeId};

/// The file name of the log store's state.
pub const RAFT_STATE_FILE: &str = "raft-state";

/// What the log store keeps outside the segments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftStateFile {
    /// The last vote this replica granted or cast; persisted before it is
    /// acted on.
    pub vote: Option<openraft::Vote<NodeId>>,
    /// Entries up to this id are gone for openraft (purged). The segments
    /// may still hold them for consumers: retention, not Raft, deletes data.
    pub last_purged: Option<LogId>,
}
