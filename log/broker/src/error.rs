//! The error type of the broker, and the edge where every failure becomes
//! a stable wire code.

use spool_client::ClientError;
use spool_protocol::errors::ErrorResponse;
use spool_protocol::proto::ErrorCode;
use spool_raft::{NodeId, ReplicationError};
use spool_record::RecordError;
use spool_storage::StorageError;

/// Result alias of spool-broker.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// Every failure of the broker; what the layers below report arrives
/// wrapped ([`BrokerError::Replication`], [`BrokerError::Storage`],
/// [`BrokerError::Peer`]). [`BrokerError::code`] is the one place any of
/// them becomes a protocol code.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The partition's replica, the producer table or the metadata refused
    /// or failed.
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    /// A log or a broker file failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A call to another broker failed.
    #[error(transparent)]
    Peer(#[from] ClientError),
    /// A request is malformed in a way no other variant names.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A configuration value is out of range or unparsable.
    #[error("invalid value `{value}` for config `{key}`: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    /// A request named a topic the cluster does not have.
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    /// A request named a topic or partition the cluster does not have.
    #[error("unknown topic or partition: {topic}/{partition}")]
    UnknownTopicOrPartition { topic: String, partition: u32 },
    /// A topic of that name exists already.
    #[error("topic `{0}` already exists")]
    TopicAlreadyExists(String),
    /// This broker does not hold the partition's leader. `leader` is the
    /// node that does, when known; clients refresh metadata and retry there.
    #[error("not the leader{}", leader.map(|l| format!("; node {l} leads")).unwrap_or_default())]
    NotLeader { leader: Option<NodeId> },
    /// This broker does not coordinate the group or transactional id: it
    /// does not lead the key's partition of the internal topic (`leader`
    /// does, when known). Clients find the coordinator again and retry.
    #[error("this broker does not coordinate `{key}`{}", leader.map(|l| format!("; node {l} leads its partition")).unwrap_or_default())]
    NotCoordinator { key: String, leader: Option<NodeId> },
    /// No broker can coordinate the key yet: its partition has no leader,
    /// or the internal topic does not exist yet.
    #[error("the coordinator of `{key}` is not available: {reason}")]
    CoordinatorNotAvailable { key: String, reason: String },
    /// An operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A refusal with a protocol code of its own (transaction states,
    /// timeouts out of range, and answers relayed from another broker).
    #[error("{code:?}: {message}")]
    Coded { code: ErrorCode, message: String },
    /// Another broker could not be reached (a request forwarded to the
    /// controller's leader).
    #[error("cannot reach broker at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    /// A broker configuration file that does not parse (bad TOML, an
    /// unknown key, a value of the wrong type).
    #[error("invalid broker config {path}: {reason}")]
    ConfigFile { path: String, reason: String },
    /// A listener could not be served.
    #[error("{what} failed: {source}")]
    Serve {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The broker can no longer serve and its process must start again
    /// (see `Broker::failed`).
    #[error("the broker stopped serving: {0}")]
    Failed(String),
}

impl From<RecordError> for BrokerError {
    fn from(e: RecordError) -> Self {
        BrokerError::Storage(e.into())
    }
}

impl BrokerError {
    /// The stable protocol code of this error: the one place where any
    /// layer's failure becomes what a client reads.
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            BrokerError::Replication(e) => replication_code(e),
            BrokerError::Storage(e) => storage_code(e),
            BrokerError::Peer(e) => e.code(),
            BrokerError::InvalidRequest(_) => C::InvalidRequest,
            BrokerError::InvalidConfig { key, .. } => config_code(key),
            BrokerError::ConfigFile { .. } => C::InvalidConfig,
            BrokerError::UnknownTopic(_) | BrokerError::UnknownTopicOrPartition { .. } => {
                C::UnknownTopicOrPartition
            }
            BrokerError::TopicAlreadyExists(_) => C::TopicAlreadyExists,
            BrokerError::NotLeader { .. } => C::NotLeader,
            BrokerError::NotCoordinator { .. } => C::NotCoordinator,
            BrokerError::CoordinatorNotAvailable { .. } => C::CoordinatorNotAvailable,
            BrokerError::Timeout(_) => C::RequestTimedOut,
            BrokerError::Coded { code, .. } => *code,
            BrokerError::Unreachable { .. } | BrokerError::Serve { .. } => C::Unknown,
            BrokerError::Failed(_) => C::StorageError,
        }
    }

    /// A refusal named by its protocol code.
    pub fn coded(code: ErrorCode, message: impl Into<String>) -> BrokerError {
        BrokerError::Coded {
            code,
            message: message.into(),
        }
    }

    /// The error a response relayed from another broker carries, if any.
    pub fn from_code(code: i32, message: &str) -> Option<BrokerError> {
        let code = ErrorCode::from_raw(code);
        (code != ErrorCode::None).then(|| BrokerError::Coded {
            code,
            message: message.to_string(),
        })
    }

    /// A response (or per-item result) carrying this error.
    pub fn response<R: ErrorResponse>(&self) -> R {
        R::failed(self.code(), self.to_string())
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        BrokerError::Storage(StorageError::io(path, source))
    }
}

/// The answer to a request that either succeeded or failed as a whole.
pub fn respond<R: ErrorResponse>(outcome: Result<R>) -> R {
    outcome.unwrap_or_else(|e| e.response())
}

fn config_code(key: &str) -> ErrorCode {
    match key {
        "partitions" => ErrorCode::InvalidPartitions,
        "replica.assignment" => ErrorCode::InvalidReplicaAssignment,
        _ => ErrorCode::InvalidConfig,
    }
}

fn storage_code(e: &StorageError) -> ErrorCode {
    use ErrorCode as C;
    match e {
        StorageError::CorruptBatch { .. } => C::CorruptRecord,
        StorageError::InvalidBatch(_) => C::InvalidRecord,
        StorageError::UnsupportedCompression(_) => C::UnsupportedCompression,
        StorageError::BatchTooLarge { .. } => C::RecordTooLarge,
        StorageError::InvalidConfig { key, .. } => config_code(key),
        StorageError::UnknownConfig { .. } => C::InvalidConfig,
        StorageError::InvalidTopicName { .. } => C::InvalidTopic,
        StorageError::OffsetOutOfRange { .. } => C::OffsetOutOfRange,
        StorageError::InvalidRequest(_) => C::InvalidRequest,
        StorageError::Io { .. }
        | StorageError::DirectoryLocked { .. }
        | StorageError::DiskFull { .. }
        | StorageError::SyncFailed { .. } => C::StorageError,
    }
}

fn replication_code(e: &ReplicationError) -> ErrorCode {
    use ErrorCode as C;
    match e {
        ReplicationError::Storage(e) => storage_code(e),
        ReplicationError::NotLeader { .. } => C::NotLeader,
        // A write whose outcome is unknown: the client retries, and the
        // idempotent producer makes the retry safe.
        ReplicationError::Replication(_) | ReplicationError::Timeout(_) => C::RequestTimedOut,
        ReplicationError::Closed(_) | ReplicationError::PeerServer(_) => C::Unknown,
        ReplicationError::InvalidRequest(_) => C::InvalidRequest,
        ReplicationError::InvalidConfig { key, .. } => config_code(key),
        ReplicationError::InvalidBatch(_) => C::InvalidRecord,
        ReplicationError::OffsetOutOfRange { .. } => C::OffsetOutOfRange,
        ReplicationError::OutOfOrderSequence { .. } => C::OutOfOrderSequence,
        ReplicationError::ProducerFenced { .. } => C::InvalidProducerEpoch,
        ReplicationError::UnknownTopic(_) => C::UnknownTopicOrPartition,
        ReplicationError::TopicAlreadyExists(_) => C::TopicAlreadyExists,
    }
}
