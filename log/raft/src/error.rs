//! The error type of replication: the Raft groups over segment logs, the
//! producer table, and the cluster metadata.

use spool_record::RecordError;
use spool_storage::StorageError;

use crate::NodeId;

/// Result alias of spool-raft.
pub type Result<T, E = ReplicationError> = std::result::Result<T, E>;

/// Every failure of the replication layer; what the storage below it
/// reports arrives as [`ReplicationError::Storage`].
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The segment log failed or refused the operation.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// This node does not lead the group. `leader` is the node that does,
    /// when known; clients refresh metadata and retry there.
    #[error("not the leader{}", leader.map(|l| format!("; node {l} leads")).unwrap_or_default())]
    NotLeader { leader: Option<NodeId> },
    /// Raft could not carry out a write or a membership change (the group
    /// shut down, or lost its leader while the request was under way, so
    /// its outcome is unknown).
    #[error("replication failed: {0}")]
    Replication(String),
    /// An operation did not finish in time (a write's commit, a leader's
    /// catch-up, a metadata change).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The group or replica was shut down.
    #[error("closed: {0}")]
    Closed(String),
    /// A request the group's state does not allow.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A configuration value out of range (peers, replication factor,
    /// partition count, Raft timing).
    #[error("invalid value `{value}` for config `{key}`: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    /// A batch or Raft entry this layer refuses: a control batch from a
    /// client, an idempotent batch without a sequence, an entry that does
    /// not decode.
    #[error("invalid record batch: {0}")]
    InvalidBatch(String),
    /// A read named an offset outside the replica's log.
    #[error("offset {offset} is out of range: the log holds [{log_start}, {log_end})")]
    OffsetOutOfRange {
        offset: u64,
        log_start: u64,
        log_end: u64,
    },
    /// An idempotent producer's batch does not follow the last one the
    /// partition holds from it: a batch in between is missing.
    #[error("out-of-order sequence from producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// A producer wrote with an older epoch than the partition knows: a
    /// newer instance of it exists, and this one is a zombie.
    #[error("producer {producer_id} is fenced: epoch {epoch} is older than {current}")]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// The cluster metadata has no topic of that name.
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    /// The cluster metadata has a topic of that name already.
    #[error("topic `{0}` already exists")]
    TopicAlreadyExists(String),
    /// The Raft peer service could not be served.
    #[error("the Raft peer server failed: {0}")]
    PeerServer(String),
}

/// A malformed batch found while decoding is the storage layer's fault
/// kind, whichever layer decoded it.
impl From<RecordError> for ReplicationError {
    fn from(e: RecordError) -> Self {
        ReplicationError::Storage(e.into())
    }
}
