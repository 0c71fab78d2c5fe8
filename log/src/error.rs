//! The one error type of spool-log.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout spool-log.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Every failure spool-log reports. Each variant carries enough context for an
/// operator to act on it without reading the code.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A batch read back from disk failed validation (bad CRC, bad framing).
    /// Reads never return such bytes; recovery truncates them away.
    #[error("corrupt record batch in {file} at byte {position}: {reason}")]
    CorruptBatch {
        file: PathBuf,
        position: u64,
        reason: String,
    },
    /// A batch handed to the log (by a producer or a follower) is malformed.
    #[error("invalid record batch: {0}")]
    InvalidBatch(String),
    /// A batch is larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes = {max}")]
    BatchTooLarge { size: usize, max: usize },
    /// A configuration value is out of range or unparsable.
    #[error("invalid value `{value}` for config `{key}`: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    /// A configuration key spool does not know.
    #[error("unknown config `{key}`; known keys are: {known}")]
    UnknownConfig { key: String, known: String },
    /// A topic name that breaks the naming rules.
    #[error("invalid topic name `{name}`: {reason}")]
    InvalidTopicName { name: String, reason: String },
    /// A read, truncation or deletion named an offset outside the log.
    #[error("offset {offset} is out of range: the log holds [{log_start}, {log_end})")]
    OffsetOutOfRange {
        offset: u64,
        log_start: u64,
        log_end: u64,
    },
    /// A batch uses a compression codec spool cannot decode.
    #[error("unsupported compression codec id {0} (supported: none, lz4, zstd)")]
    UnsupportedCompression(u8),
    /// A request named a topic or partition the broker does not have.
    #[error("unknown topic or partition: {topic}/{partition}")]
    UnknownTopicOrPartition { topic: String, partition: u32 },
    /// A request named a topic the broker does not have.
    #[error("unknown topic `{0}`")]
    UnknownTopic(String),
    /// A topic of that name exists already.
    #[error("topic `{0}` already exists")]
    TopicAlreadyExists(String),
    /// A request is malformed in a way no other variant names.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The broker could not be reached or the RPC failed in transport.
    #[error("transport error talking to {address}: {reason}")]
    Transport { address: String, reason: String },
    /// The broker answered a request with an error code.
    #[error("{code:?}: {message}")]
    Broker {
        code: crate::proto::ErrorCode,
        message: String,
    },
    /// A client operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The producer or consumer was closed.
    #[error("closed: {0}")]
    Closed(String),
    /// This node does not lead the partition's Raft group. `leader` is the
    /// node that does, when known; clients refresh metadata and retry there.
    #[error("not the leader{}", leader.map(|l| format!("; node {l} leads")).unwrap_or_default())]
    NotLeader { leader: Option<u64> },
    /// This broker does not coordinate the group: it does not lead the
    /// group's partition of `__consumer_offsets` (`leader` does, when
    /// known). Clients find the coordinator again and retry there.
    #[error("this broker does not coordinate group `{group}`{}", leader.map(|l| format!("; node {l} leads its offsets partition")).unwrap_or_default())]
    NotCoordinator { group: String, leader: Option<u64> },
    /// No broker can coordinate the group yet: its offsets partition has
    /// no leader, or the internal topic does not exist yet.
    #[error("the coordinator of group `{group}` is not available: {reason}")]
    CoordinatorNotAvailable { group: String, reason: String },
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
    /// Raft could not carry out a write or a membership change (the group
    /// shut down, or lost its leader while the request was under way, so
    /// its outcome is unknown).
    #[error("replication failed: {0}")]
    Replication(String),
    /// A file system operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LogError {
    /// The stable protocol code of this error.
    pub fn code(&self) -> crate::proto::ErrorCode {
        use crate::proto::ErrorCode as C;
        match self {
            LogError::CorruptBatch { .. } => C::CorruptRecord,
            LogError::InvalidBatch(_) => C::InvalidRecord,
            LogError::BatchTooLarge { .. } => C::RecordTooLarge,
            LogError::InvalidConfig { key, .. } if key == "partitions" => C::InvalidPartitions,
            LogError::InvalidConfig { .. } | LogError::UnknownConfig { .. } => C::InvalidConfig,
            LogError::InvalidTopicName { .. } => C::InvalidTopic,
            LogError::OffsetOutOfRange { .. } => C::OffsetOutOfRange,
            LogError::UnsupportedCompression(_) => C::UnsupportedCompression,
            LogError::UnknownTopicOrPartition { .. } | LogError::UnknownTopic(_) => {
                C::UnknownTopicOrPartition
            }
            LogError::TopicAlreadyExists(_) => C::TopicAlreadyExists,
            LogError::InvalidRequest(_) => C::InvalidRequest,
            LogError::Io { .. } => C::StorageError,
            LogError::Broker { code, .. } => *code,
            LogError::Timeout(_) => C::RequestTimedOut,
            LogError::NotLeader { .. } => C::NotLeader,
            LogError::NotCoordinator { .. } => C::NotCoordinator,
            LogError::CoordinatorNotAvailable { .. } => C::CoordinatorNotAvailable,
            LogError::OutOfOrderSequence { .. } => C::OutOfOrderSequence,
            LogError::ProducerFenced { .. } => C::InvalidProducerEpoch,
            LogError::Replication(_) => C::RequestTimedOut,
            LogError::Transport { .. } | LogError::Closed(_) => C::Unknown,
        }
    }

    /// The error a broker's per-partition or per-topic result carries, if any.
    pub fn from_code(code: i32, message: &str) -> Option<LogError> {
        let code =
            crate::proto::ErrorCode::try_from(code).unwrap_or(crate::proto::ErrorCode::Unknown);
        (code != crate::proto::ErrorCode::None).then(|| LogError::Broker {
            code,
            message: message.to_string(),
        })
    }

    /// Whether retrying the same request may succeed.
    pub fn is_retriable(&self) -> bool {
        use crate::proto::ErrorCode as C;
        match self {
            LogError::Transport { .. }
            | LogError::Timeout(_)
            | LogError::NotLeader { .. }
            | LogError::NotCoordinator { .. }
            | LogError::CoordinatorNotAvailable { .. }
            | LogError::Replication(_) => true,
            LogError::Broker { code, .. } => matches!(
                code,
                C::RequestTimedOut
                    | C::StorageError
                    | C::NotLeader
                    | C::NotCoordinator
                    | C::CoordinatorNotAvailable
                    | C::UnstableOffsetCommit
                    | C::ConcurrentTransactions
            ),
            _ => false,
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Attaches a path to I/O results: `file.sync_data().at(&path)?`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| LogError::io(path, e))
    }
}
