//! The error type of segment storage and topic configuration.

use std::io;
use std::path::{Path, PathBuf};

use spool_record::RecordError;

/// Result alias of spool-storage.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Every failure of the storage layer. Each variant carries enough
/// context for an operator to act on it without reading the code.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
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
    /// A batch uses a compression codec spool cannot decode.
    #[error("unsupported compression codec id {0} (supported: none, gzip, snappy, lz4, zstd)")]
    UnsupportedCompression(u8),
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
    /// An operation the log's state does not allow (a deleted log, a Raft
    /// index outside the log, a file that cannot be encoded).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Another process serves the data directory (its lock file is
    /// held).
    #[error("data directory {} is in use by {holder}: failed to acquire the lock on {}/.lock; stop that process or give this one another directory", dir.display(), dir.display())]
    DirectoryLocked { dir: PathBuf, holder: String },
    /// The file system holding the data directory has less free space
    /// than the broker keeps in reserve: producers are refused until space
    /// returns (see `DiskSpace`).
    #[error("not enough disk space for producers: {free} bytes free on the file system of {}, below the {reserve} bytes (storage_min_free_bytes) the broker keeps for its own writes; free some space (lower retention, delete topics) or give it a bigger disk, and producers are taken again by themselves", dir.display())]
    DiskFull {
        dir: PathBuf,
        free: u64,
        reserve: u64,
    },
    /// An fsync of the log's files failed: the log takes no more writes
    /// until it is opened again from what reached the disk (a replica
    /// leaves its Raft group's writes to the other replicas meanwhile).
    #[error("an fsync in {} failed ({reason}): the log takes no writes until it is recovered from what reached the disk", dir.display())]
    SyncFailed { dir: PathBuf, reason: String },
    /// A file system operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StorageError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
}

/// A malformed batch is the same fault whether the format layer or the
/// log found it, so the variants are the same.
impl From<RecordError> for StorageError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::InvalidBatch(reason) => StorageError::InvalidBatch(reason),
            RecordError::UnsupportedCompression(id) => StorageError::UnsupportedCompression(id),
        }
    }
}

/// Attaches a path to I/O results: `file.sync_data().at(&path)?`.
pub trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| StorageError::io(path, e))
    }
}
