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
//! [`StoreBackend::apply`]); meanwhile the task goes on processing into
//! a fresh overlay. A crash between the two leaves
//! the backend at the previous commit, and restoring replays the changelog
//! from the offset the backend recorded: no store is ever wiped because a
//! process died (KIP-892's goal; see docs/streams.md).

mod global;
mod inspect;
mod memory;
mod rocks;

pub use global::GlobalStore;
pub use inspect::{stores_on_disk, StoreOnDisk};
pub use memory::MemoryBackend;
pub use rocks::{RocksBackend, StateMemory};

use std::collections::BTreeMap;

use crate::Result;

/// The writes of one commit: key → new value (`None` deletes). A hash
/// map: a task looks a key up in it (and in the commit in flight's) on
/// every read, and only range reads, which are rare, need order.
pub type WriteBatch = std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>;

/// Where a store keeps what was committed.
///
/// Contract for implementations:
/// - `apply` is atomic: after a crash, either all of a batch and its
///   offset are visible on reopening, or none (the previous state).
/// - `changelog_offset` returns the offset given with the last applied
///   batch that had one, also after reopening (durable backends).
/// - Keys and values are opaque bytes (a codec's output); iteration is in
///   byte order of keys.
pub trait StoreBackend: Send {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Applies `batch`, and records `changelog_offset` (the next offset of
    /// the store's changelog partition this state includes) when given.
    fn apply(&mut self, batch: &WriteBatch, changelog_offset: Option<u64>) -> Result<()>;

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
        &mut self,
        entries: &mut dyn Iterator<Item = Restored<'a>>,
        changelog_offset: u64,
    ) -> Result<()>;

    /// Makes every `restore` so far durable. Called when a restore ends,
    /// before the store is written with `apply` again.
    fn finish_restore(&mut self) -> Result<()>;

    /// Every entry in key order (for interactive queries and tests).
    fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// The entries with keys in `from..to`, in key order.
    fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Applies `batch` of a store read from several partitions (a global
    /// table's), recording for each partition in `positions` the next
    /// offset the state includes; atomic as `apply`.
    fn apply_positions(&mut self, batch: &WriteBatch, positions: &Positions) -> Result<()>;

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

/// A store as one task sees it: its uncommitted writes over its backend.
pub struct TaskStore {
    spec: StoreSpec,
    dirty: WriteBatch,
    /// The writes of the commit in flight: sent, not yet durable.
    committing: WriteBatch,
    /// The writes of the last finished commit, also in the backend: kept
    /// as a read cache, since the keys a task just wrote are the ones it
    /// reads next (a count's hot keys), and a backend read (RocksDB) costs
    /// a microsecond or more. Bounded by one commit's writes.
    recent: WriteBatch,
    backend: Box<dyn StoreBackend>,
}

impl TaskStore {
    pub fn new(spec: StoreSpec, backend: Box<dyn StoreBackend>) -> TaskStore {
        TaskStore {
            spec,
            dirty: WriteBatch::new(),
            committing: WriteBatch::new(),
            recent: WriteBatch::new(),
            backend,
        }
    }

    pub fn spec(&self) -> &StoreSpec {
        &self.spec
    }

    /// The value as this task last wrote it, committed or not.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let layered = self
            .dirty
            .get(key)
            .or_else(|| self.committing.get(key))
            .or_else(|| self.recent.get(key));
        match layered {
            Some(value) => Ok(value.clone()),
            None => self.backend.get(key),
        }
    }

    pub fn put(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        self.dirty.insert(key.to_vec(), value);
    }

    /// Whether anything was written since the last commit.
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Starts a commit: the writes since the last one become the commit's
    /// (returned, for the changelog) and the overlay starts empty again.
    /// The previous commit must have finished.
    pub fn begin_commit(&mut self) -> &WriteBatch {
        debug_assert!(self.committing.is_empty(), "a commit is in flight");
        std::mem::swap(&mut self.committing, &mut self.dirty);
        &self.committing
    }

    /// Finishes the commit begun last: its writes become durable in the
    /// backend, with `offset` the changelog offset they reach.
    pub fn finish_commit(&mut self, offset: Option<u64>) -> Result<()> {
        if !self.committing.is_empty() || offset.is_some() {
            self.backend.apply(&self.committing, offset)?;
        }
        self.recent = std::mem::take(&mut self.committing);
        Ok(())
    }

    /// Writes changelog records read back while restoring straight to
    /// the backend, with the changelog offset they reach (see
    /// [`StoreBackend::restore`]); `finish_restore` ends the restore.
    pub fn restore<'a>(
        &mut self,
        entries: &mut dyn Iterator<Item = Restored<'a>>,
        offset: u64,
    ) -> Result<()> {
        self.recent.clear();
        self.backend.restore(entries, offset)
    }

    /// Makes the restore durable, before anything is processed.
    pub fn finish_restore(&mut self) -> Result<()> {
        self.backend.finish_restore()
    }

    /// Records where the store's changelog stands without writing data:
    /// a new store's starting point.
    pub fn record_changelog_offset(&mut self, offset: u64) -> Result<()> {
        self.backend.apply(&WriteBatch::new(), Some(offset))
    }

    /// Drops every write not durable yet (the transaction holding them
    /// aborted).
    pub fn discard_uncommitted(&mut self) {
        self.dirty.clear();
        self.committing.clear();
    }

    pub fn changelog_offset(&self) -> Result<Option<u64>> {
        self.backend.changelog_offset()
    }

    /// Every committed and uncommitted entry, in key order.
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let layers = self.committing.iter().chain(self.dirty.iter());
        Ok(self.overlaid(self.backend.entries()?, layers))
    }

    /// The committed and uncommitted entries with keys in `from..to`, in
    /// key order.
    pub fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let committed = self.backend.range(from, to)?;
        let within =
            |(key, _): &(&Vec<u8>, &Option<Vec<u8>>)| key.as_slice() >= from && key.as_slice() < to;
        let committing = self.committing.iter().filter(within);
        let layers = committing.chain(self.dirty.iter().filter(within));
        Ok(self.overlaid(committed, layers))
    }

    /// `committed` entries with `dirty` writes over them.
    fn overlaid<'a>(
        &self,
        committed: Vec<(Vec<u8>, Vec<u8>)>,
        dirty: impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut all: BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            committed.into_iter().map(|(k, v)| (k, Some(v))).collect();
        all.extend(dirty.map(|(k, v)| (k.clone(), v.clone())));
        all.into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }
}
