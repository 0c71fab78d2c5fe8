//! State stores: what a stateful node reads and writes, per task.
//!
//! A node sees a [`TaskStore`]: the task's uncommitted writes (an ordered
//! overlay, which is also its read-your-writes view) over the writes of
//! the commit in flight, if any, over a durable [`StoreBackend`] that
//! holds what the last finished commit made durable. A commit moves the
//! overlay aside ([`TaskStore::begin_commit`]), sends it to the changelog
//! (inside the transaction under exactly-once), and only after the commit
//! succeeded applies it to the backend with the changelog offset it
//! reaches, in one atomic write ([`TaskStore::finish_commit`],
//! [`StoreBackend::apply`], on a thread of its own in the runtime), once
//! the [`ApplyPolicy`] says so: finished commits may wait in memory,
//! merged, and reach the backend together. Meanwhile the task goes on
//! processing into a fresh overlay, and reads the finished writes from
//! memory until the backend has them. A
//! crash between the two leaves
//! the backend at the previous commit, and restoring replays the changelog
//! from the offset the backend recorded: no store is ever wiped because a
//! process died (KIP-892's goal; see docs/streams.md).

mod global;
mod inspect;
mod memory;
mod rocks;
mod task_store;

pub use global::GlobalStore;
pub use inspect::{stores_on_disk, StoreOnDisk};
pub use memory::MemoryBackend;
pub use rocks::{RocksBackend, StateMemory};
pub use task_store::{ApplyPolicy, TaskStore};

use std::collections::BTreeMap;

use crate::Result;

/// The writes of one commit: key → new value (`None` deletes). A hash
/// map: a task looks a key up in it (and in the commit in flight's) on
/// every read, and only range reads, which are rare, need order.
pub type WriteBatch =
    std::collections::HashMap<Vec<u8>, Option<Vec<u8>>, foldhash::fast::RandomState>;

/// Where a store keeps what was committed.
///
/// Contract for implementations:
/// - `apply` is atomic: after a crash, either all of a batch and its
///   offset are visible on reopening, or none (the previous state).
/// - `changelog_offset` returns the offset given with the last applied
///   batch that had one, also after reopening (durable backends).
/// - Keys and values are opaque bytes (a codec's output); iteration is in
///   byte order of keys.
///
/// Shared (`Sync`, writes through `&self`): a task's reads go on while
/// the last commit's writes are applied on another thread, and a global
/// store is read by every stream thread while its reader writes.
pub trait StoreBackend: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Applies `batch`, and records `changelog_offset` (the next offset of
    /// the store's changelog partition this state includes) when given.
    fn apply(&self, batch: &WriteBatch, changelog_offset: Option<u64>) -> Result<()>;

    /// The next changelog offset the store's state does not include yet:
    /// where a restore resumes; `None` for a store never written.
    fn changelog_offset(&self) -> Result<Option<u64>>;

    /// Writes changelog records read back while restoring, in changelog
    /// order (a later write of a key wins; `None` deletes), and records
    /// `changelog_offset`, the next offset they reach. Atomic as `apply`,
    /// but durable only once `finish_restore` returned: a crash before
    /// may lose them, and the store then reopens at an earlier state with
    /// its own offset (the restore replays from there).
    fn restore<'a>(
        &self,
        entries: &mut dyn Iterator<Item = Restored<'a>>,
        changelog_offset: u64,
    ) -> Result<()>;

    /// Makes every `restore` so far durable. Called when a restore ends,
    /// before the store is written with `apply` again.
    fn finish_restore(&self) -> Result<()>;

    /// Every entry in key order (for interactive queries and tests).
    fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// The entries with keys in `from..to`, in key order.
    fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Applies `batch` of a store read from several partitions (a global
    /// table's), recording for each partition in `positions` the next
    /// offset the state includes; atomic as `apply`.
    fn apply_positions(&self, batch: &WriteBatch, positions: &Positions) -> Result<()>;

    /// The positions recorded by `apply_positions` (empty when never
    /// written): where reading each partition resumes.
    fn positions(&self) -> Result<Positions>;
}

/// A changelog record being restored: its key and value (`None`, a
/// tombstone).
pub type Restored<'a> = (&'a [u8], Option<&'a [u8]>);

/// Next offsets by partition.
pub type Positions = BTreeMap<u32, u64>;

/// How a store is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// RocksDB on disk under the state directory (the default, as in Kafka
    /// Streams: state larger than memory, and a restart that resumes from
    /// the disk instead of the changelog's beginning).
    RocksDb,
    /// An ordered map in memory, restored from the changelog on every
    /// start.
    InMemory,
}

/// A store as the topology declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSpec {
    pub name: String,
    pub kind: StoreKind,
    /// Backed by `<application.id>-<name>-changelog` (default true): without
    /// it a lost or moved task starts its store empty.
    pub logged: bool,
}
