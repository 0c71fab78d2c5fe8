//! A store as one task sees it: its writes in layers over its backend,
//! and the commits that move them down.

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc};

use super::{Restored, StoreBackend, StoreSpec, WriteBatch};
use crate::{Result, StreamsError};

/// Reads look through, in order: `dirty` (written since the last commit
/// began), `committing` (the commit in flight: sent, not yet durable),
/// `recent` (the last finished commit), then the backend.
pub struct TaskStore {
    spec: StoreSpec,
    dirty: WriteBatch,
    committing: WriteBatch,
    /// The writes of the last finished commit. They are being written to
    /// the backend, or already are, and stay here until the next commit
    /// finishes: a read never needs to know which. Also a read cache: the
    /// keys a task just wrote are the ones it reads next (a count's hot
    /// keys), and a RocksDB read costs a microsecond or more. Bounded by
    /// one commit's writes.
    recent: Arc<WriteBatch>,
    backend: Arc<dyn StoreBackend>,
    /// The outcome of the backend write of `recent`, when it runs on a
    /// thread of its own (`finish_commit_in_background`).
    applying: Option<mpsc::Receiver<Result<()>>>,
}

impl TaskStore {
    pub fn new(spec: StoreSpec, backend: Box<dyn StoreBackend>) -> TaskStore {
        TaskStore {
            spec,
            dirty: WriteBatch::default(),
            committing: WriteBatch::default(),
            recent: Arc::new(WriteBatch::default()),
            backend: Arc::from(backend),
            applying: None,
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
    /// backend, with `offset` the changelog offset they reach, before
    /// this returns.
    pub fn finish_commit(&mut self, offset: Option<u64>) -> Result<()> {
        self.settle()?;
        if let Some(batch) = self.take_committing(offset) {
            self.backend.apply(&batch, offset)?;
        }
        Ok(())
    }

    /// Finishes the commit begun last as `finish_commit` does, but writes
    /// the backend on a blocking thread of the runtime while the task
    /// goes on: the writes are read from memory meanwhile. The write's
    /// outcome is taken by the next `finish_commit*` or `settle`: an
    /// error there fails the thread, whose replacement reopens the store
    /// at its previous commit and catches up from the changelog.
    pub fn finish_commit_in_background(&mut self, offset: Option<u64>) -> Result<()> {
        self.settle()?;
        let Some(batch) = self.take_committing(offset) else {
            return Ok(());
        };
        let (done, outcome) = mpsc::channel();
        let backend = Arc::clone(&self.backend);
        tokio::task::spawn_blocking(move || {
            let applied = backend.apply(&batch, offset);
            // Before telling: once settled, the task's handle is the last
            // one, and dropping it closes the store (a task reopened on
            // the same directory finds it unlocked).
            drop(backend);
            let _ = done.send(applied);
        });
        self.applying = Some(outcome);
        Ok(())
    }

    /// Makes `committing` the recent layer; returns it when the backend
    /// has something to write.
    fn take_committing(&mut self, offset: Option<u64>) -> Option<Arc<WriteBatch>> {
        self.recent = Arc::new(std::mem::take(&mut self.committing));
        (!self.recent.is_empty() || offset.is_some()).then(|| Arc::clone(&self.recent))
    }

    /// Waits until a background write of the backend (if any) is done,
    /// and returns its outcome.
    pub fn settle(&mut self) -> Result<()> {
        let Some(outcome) = self.applying.take() else {
            return Ok(());
        };
        // Almost always done by now: it started a commit interval ago.
        outcome.recv().unwrap_or_else(|_| {
            Err(StreamsError::Store(
                "a state store's write thread ended without an outcome".into(),
            ))
        })
    }

    /// Writes changelog records read back while restoring straight to
    /// the backend, with the changelog offset they reach (see
    /// [`StoreBackend::restore`]); `finish_restore` ends the restore.
    pub fn restore<'a>(
        &mut self,
        entries: &mut dyn Iterator<Item = Restored<'a>>,
        offset: u64,
    ) -> Result<()> {
        self.settle()?;
        self.recent = Arc::new(WriteBatch::default());
        self.backend.restore(entries, offset)
    }

    /// Makes the restore durable, before anything is processed.
    pub fn finish_restore(&mut self) -> Result<()> {
        self.backend.finish_restore()
    }

    /// Records where the store's changelog stands without writing data:
    /// a new store's starting point.
    pub fn record_changelog_offset(&mut self, offset: u64) -> Result<()> {
        self.settle()?;
        self.backend.apply(&WriteBatch::default(), Some(offset))
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
        let layers = self
            .recent
            .iter()
            .chain(&self.committing)
            .chain(&self.dirty);
        Ok(overlaid(self.backend.entries()?, layers))
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
        let layers = self
            .recent
            .iter()
            .chain(&self.committing)
            .chain(&self.dirty);
        Ok(overlaid(committed, layers.filter(within)))
    }
}

impl Drop for TaskStore {
    /// A store closes only once its last write is done: the task may be
    /// reopened on the same directory right after.
    fn drop(&mut self) {
        if let Err(e) = self.settle() {
            tracing::warn!(store = %self.spec.name, error = %e, "writing a commit to a state store failed; it will catch up from its changelog");
        }
    }
}

/// `committed` entries with the writes of `layers` over them (later
/// layers win).
fn overlaid<'a>(
    committed: Vec<(Vec<u8>, Vec<u8>)>,
    layers: impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut all: BTreeMap<Vec<u8>, Option<Vec<u8>>> =
        committed.into_iter().map(|(k, v)| (k, Some(v))).collect();
    all.extend(layers.map(|(k, v)| (k.clone(), v.clone())));
    all.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}
