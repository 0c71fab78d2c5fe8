//! spool-storage: the on-disk log of one partition, and topic configuration.
//!
//! A partition directory holds segments named by base offset
//! (`00000000000000000000.log` with `.index` and `.timeindex` beside it) and
//! a `checkpoint` file. [`PartitionLog`] owns one directory: it appends
//! validated batches, serves reads as whole stored batches, finds offsets by
//! time, truncates (for Raft), deletes before an offset, recovers after a
//! crash, and applies retention and compaction. [`LogManager`] owns many logs
//! and the background work on them (time-based flushes, retention, cleaning).
//!
//! [`config`] holds the topic and partition settings a log runs with, parsed
//! and validated with clear errors.
//!
//! This crate reads and writes files only; it knows nothing of topics'
//! placement, replication or the network. It depends on spool-record alone.

mod checkpoint;
mod cleaner;
mod clock;
pub mod config;
mod dir_lock;
mod disk_space;
mod durable_file;
mod error;
mod file_io;
mod flusher;
mod index;
mod log;
mod log_state;
mod manager;
mod raft_entries;
mod read;
mod recovery;
mod retention;
mod segment;
mod sync_failure;

pub use checkpoint::{sync_dir, write_atomically};
pub use cleaner::CleanOutcome;
pub use clock::{Clock, ManualClock, SteadyClock, SystemClock};
pub use dir_lock::{DataDirLock, LOCK_FILE};
pub use disk_space::{available_bytes, DiskSpace};
pub use durable_file::{read_durable, remove_durable, write_durable};
pub use error::{IoContext, Result, StorageError};
pub use file_io::{FileIo, OsFileIo};
pub use log::{AppendInfo, PartitionLog};
pub use manager::{LogManager, ManagerConfig};
pub use read::LogRead;
pub use recovery::RecoveryReport;
pub use retention::RetentionOutcome;

#[cfg(feature = "test-util")]
pub mod testing;
