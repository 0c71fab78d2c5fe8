//! A store as one task sees it: its writes in layers over its backend,
//! and the commits that move them down.

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::{Restored, StoreBackend, StoreSpec, WriteBatch};
use crate::{Result, StreamsError};

/// When a store's finished commits are written to its backend.
///
/// A finished commit is durable in the changelog (and, under
/// exactly-once, committed with its input offsets); writing it to the
/// backend only spares a restart from reading it back. So finished
/// commits may pile up in memory and reach the backend together: a key
/// written in each of them (a count's hot keys) is written to RocksDB
/// once instead of once per commit. A crash loses nothing: the backend
/// keeps the changelog offset of what it holds, and the restart replays
/// the changelog from there, at most an `interval` of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyPolicy {
    /// Finished commits reach the backend at most this long after the
    /// first of them finished.
    pub interval: Duration,
    /// Or as soon as they hold this many bytes of keys and values.
    pub max_pending_bytes: usize,
}

impl ApplyPolicy {
    /// Every commit written to the backend as soon as it finished.
    pub const EVERY_COMMIT: ApplyPolicy = ApplyPolicy {
        interval: Duration::ZERO,
        max_pending_bytes: 0,
    };
}

/// Finished commits not yet handed to the backend, merged (a later write
/// of a key wins).
#[derive(Default)]
struct Unapplied {
    writes: WriteBatch,
    /// The changelog offset the last of them reached.
    offset: Option<u64>,
    /// Keys and values merged in, overwritten ones counted too.
    bytes: usize,
    /// When the first of them finished.
    since: Option<Instant>,
}

/// Reads look through, in order: `dirty` (written since the last commit
/// began), `committing` (the commit in flight: sent, not yet durable),
/// `unapplied` (finished commits waiting for the backend), `recent` (the
/// commits handed to the backend last), then the backend.
pub struct TaskStore {
    spec: StoreSpec,
    policy: ApplyPolicy,
    dirty: WriteBatch,
    committing: WriteBatch,
    unapplied: Unapplied,
    /// The writes handed to the backend last. They are being written to
    /// the backend, or already are, and stay here until the next hand-over:
    /// a read never needs to know which. Also a read cache: the keys a
    /// task just wrote are the ones it reads next (a count's hot keys),
    /// and a RocksDB read costs a microsecond or more. Bounded by the
    /// policy's bytes (or one commit's writes, when larger).
    recent: Arc<WriteBatch>,
    backend: Arc<dyn StoreBackend>,
    /// The outcome of the backend write of `recent`, when it runs on a
    /// thread of its own (`finish_commit_in_background`).
    applying: Option<mpsc::Receiver<Result<()>>>,
    /// A backend write failed: the backend holds less than the finished
    /// commits after it assume, so none of them may be written over it
    /// (with their later offset, the writes lost would be skipped by the
    /// restore). The thread fails, and its replacement restores.
    write_failed: bool,
}

impl TaskStore {
    pub fn new(spec: StoreSpec, backend: Box<dyn StoreBackend>, policy: ApplyPolicy) -> TaskStore {
        TaskStore {
            spec,
            policy,
            dirty: WriteBatch::default(),
            committing: WriteBatch::default(),
            unapplied: Unapplied::default(),
            recent: Arc::new(WriteBatch::default()),
            backend: Arc::from(backend),
            applying: None,
            write_failed: false,
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
            .or_else(|| self.unapplied.writes.get(key))
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

    /// Finishes the commit begun last: its writes, and those of every
    /// finished commit before it, become durable in the backend, with
    /// `offset` the changelog offset they reach, before this returns.
    pub fn finish_commit(&mut self, offset: Option<u64>) -> Result<()> {
        self.settle()?;
        self.merge_committing(offset);
        if let Some((batch, offset)) = self.take_unapplied() {
            self.backend
                .apply(&batch, offset)
                .inspect_err(|_| self.write_failed = true)?;
        }
        Ok(())
    }

    /// Finishes the commit begun last as `finish_commit` does, but writes
    /// the backend only when the policy says it is due, and then on a
    /// blocking thread of the runtime while the task goes on: the writes
    /// are read from memory meanwhile. The write's outcome is taken by
    /// the next write or `settle`: an error there fails the thread, whose
    /// replacement reopens the store at what the backend holds and
    /// catches up from the changelog.
    pub fn finish_commit_in_background(&mut self, offset: Option<u64>) -> Result<()> {
        self.merge_committing(offset);
        if !self.apply_due() {
            return Ok(());
        }
        self.settle()?;
        let Some((batch, offset)) = self.take_unapplied() else {
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

    /// Moves the finished commit's writes under the finished commits not
    /// applied yet.
    fn merge_committing(&mut self, offset: Option<u64>) {
        let unapplied = &mut self.unapplied;
        if self.committing.is_empty() && offset.is_none() {
            return;
        }
        unapplied.since.get_or_insert_with(Instant::now);
        unapplied.offset = offset.or(unapplied.offset);
        unapplied.bytes += batch_bytes(&self.committing);
        if unapplied.writes.is_empty() {
            // The first commit since a hand-over: taken whole, not rehashed.
            unapplied.writes = std::mem::take(&mut self.committing);
        } else {
            unapplied.writes.extend(self.committing.drain());
        }
    }

    /// Whether the finished commits not applied yet should go to the
    /// backend now.
    fn apply_due(&self) -> bool {
        let unapplied = &self.unapplied;
        unapplied.bytes >= self.policy.max_pending_bytes
            || unapplied
                .since
                .is_some_and(|since| since.elapsed() >= self.policy.interval)
    }

    /// Makes the finished commits not applied yet the recent layer;
    /// returns them and their offset when the backend has something to
    /// write.
    fn take_unapplied(&mut self) -> Option<(Arc<WriteBatch>, Option<u64>)> {
        let Unapplied { writes, offset, .. } = std::mem::take(&mut self.unapplied);
        self.recent = Arc::new(writes);
        (!self.recent.is_empty() || offset.is_some()).then(|| (Arc::clone(&self.recent), offset))
    }

    /// Waits until a background write of the backend (if any) is done,
    /// and returns its outcome.
    pub fn settle(&mut self) -> Result<()> {
        let Some(outcome) = self.applying.take() else {
            return Ok(());
        };
        // Almost always done by now: it started a commit interval ago.
        let written = outcome.recv().unwrap_or_else(|_| {
            Err(StreamsError::Store(
                "a state store's write thread ended without an outcome".into(),
            ))
        });
        self.write_failed |= written.is_err();
        written
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
        self.unapplied = Unapplied::default();
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
        debug_assert!(
            self.unapplied.writes.is_empty(),
            "a new store has no commits"
        );
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
            .chain(&self.unapplied.writes)
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
            .chain(&self.unapplied.writes)
            .chain(&self.committing)
            .chain(&self.dirty);
        Ok(overlaid(committed, layers.filter(within)))
    }
}

impl Drop for TaskStore {
    /// A store closes only once its finished commits are written: the
    /// task may be reopened on the same directory right after, and should
    /// find them there rather than in the changelog.
    fn drop(&mut self) {
        let written = self.settle().and_then(|()| match self.take_unapplied() {
            Some(_) if self.write_failed => Ok(()),
            Some((batch, offset)) => self.backend.apply(&batch, offset),
            None => Ok(()),
        });
        if let Err(e) = written {
            tracing::warn!(store = %self.spec.name, error = %e, "writing a commit to a state store failed; it will catch up from its changelog");
        }
    }
}

/// The bytes of keys and values in `batch`.
fn batch_bytes(batch: &WriteBatch) -> usize {
    batch
        .iter()
        .map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len))
        .sum()
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::state::{MemoryBackend, Positions, StoreKind};

    /// A memory backend that counts its writes, readable after the store
    /// that owns it is gone.
    #[derive(Default)]
    struct Counting {
        inner: MemoryBackend,
        applies: AtomicUsize,
        /// The next `apply` fails.
        fail_next: std::sync::atomic::AtomicBool,
    }

    struct Shared(Arc<Counting>);

    impl StoreBackend for Shared {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.0.inner.get(key)
        }
        fn apply(&self, batch: &WriteBatch, offset: Option<u64>) -> Result<()> {
            if self.0.fail_next.swap(false, Ordering::SeqCst) {
                return Err(StreamsError::Store("the disk is gone".into()));
            }
            self.0.applies.fetch_add(1, Ordering::SeqCst);
            self.0.inner.apply(batch, offset)
        }
        fn changelog_offset(&self) -> Result<Option<u64>> {
            self.0.inner.changelog_offset()
        }
        fn restore<'a>(
            &self,
            entries: &mut dyn Iterator<Item = Restored<'a>>,
            offset: u64,
        ) -> Result<()> {
            self.0.inner.restore(entries, offset)
        }
        fn finish_restore(&self) -> Result<()> {
            self.0.inner.finish_restore()
        }
        fn entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.0.inner.entries()
        }
        fn range(&self, from: &[u8], to: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.0.inner.range(from, to)
        }
        fn apply_positions(&self, batch: &WriteBatch, positions: &Positions) -> Result<()> {
            self.0.inner.apply_positions(batch, positions)
        }
        fn positions(&self) -> Result<Positions> {
            self.0.inner.positions()
        }
    }

    fn store(policy: ApplyPolicy) -> (TaskStore, Arc<Counting>) {
        let counting = Arc::new(Counting::default());
        let spec = StoreSpec {
            name: "counts".into(),
            kind: StoreKind::InMemory,
            logged: true,
        };
        let store = TaskStore::new(spec, Box::new(Shared(Arc::clone(&counting))), policy);
        (store, counting)
    }

    fn commit(store: &mut TaskStore, writes: &[(&str, Option<&str>)], offset: u64) {
        for (key, value) in writes {
            store.put(key.as_bytes(), value.map(|v| v.as_bytes().to_vec()));
        }
        store.begin_commit();
        store.finish_commit_in_background(Some(offset)).unwrap();
    }

    fn value(store: &TaskStore, key: &str) -> Option<String> {
        let bytes = store.get(key.as_bytes()).unwrap();
        bytes.map(|v| String::from_utf8(v).unwrap())
    }

    #[tokio::test]
    async fn finished_commits_wait_for_the_interval_and_are_written_once_merged() {
        let (mut store, backend) = store(ApplyPolicy {
            interval: Duration::from_secs(3600),
            max_pending_bytes: 1 << 20,
        });
        commit(&mut store, &[("a", Some("1")), ("b", Some("1"))], 2);
        commit(&mut store, &[("a", Some("2")), ("c", Some("1"))], 4);
        commit(&mut store, &[("a", Some("3")), ("b", None)], 6);
        store.settle().unwrap();
        assert_eq!(backend.applies.load(Ordering::SeqCst), 0);
        assert_eq!(backend.inner.changelog_offset().unwrap(), None);
        // Reads see every finished commit although the backend has none.
        assert_eq!(value(&store, "a").as_deref(), Some("3"));
        assert_eq!(value(&store, "b"), None);
        assert_eq!(value(&store, "c").as_deref(), Some("1"));
        assert_eq!(store.entries().unwrap().len(), 2);

        // Closing the store writes them, as one batch, with the last offset.
        drop(store);
        assert_eq!(backend.applies.load(Ordering::SeqCst), 1);
        assert_eq!(backend.inner.changelog_offset().unwrap(), Some(6));
        let entries = backend.inner.entries().unwrap();
        let expected = vec![
            (b"a".to_vec(), b"3".to_vec()),
            (b"c".to_vec(), b"1".to_vec()),
        ];
        assert_eq!(entries, expected);
    }

    #[tokio::test]
    async fn commits_past_the_byte_budget_are_written_at_once() {
        let (mut store, backend) = store(ApplyPolicy {
            interval: Duration::from_secs(3600),
            max_pending_bytes: 4,
        });
        commit(&mut store, &[("a", Some("1"))], 1);
        store.settle().unwrap();
        assert_eq!(backend.applies.load(Ordering::SeqCst), 0, "2 bytes wait");
        commit(&mut store, &[("bb", Some("22"))], 2);
        store.settle().unwrap();
        assert_eq!(backend.applies.load(Ordering::SeqCst), 1);
        assert_eq!(backend.inner.changelog_offset().unwrap(), Some(2));
        assert_eq!(backend.inner.entries().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_commit_without_a_policy_wait_is_written_every_time() {
        let (mut store, backend) = store(ApplyPolicy::EVERY_COMMIT);
        commit(&mut store, &[("a", Some("1"))], 1);
        commit(&mut store, &[("a", Some("2"))], 2);
        store.settle().unwrap();
        assert_eq!(backend.applies.load(Ordering::SeqCst), 2);
        assert_eq!(backend.inner.changelog_offset().unwrap(), Some(2));
    }

    #[tokio::test]
    async fn discarding_uncommitted_writes_keeps_the_finished_commits() {
        let (mut store, backend) = store(ApplyPolicy {
            interval: Duration::from_secs(3600),
            max_pending_bytes: 1 << 20,
        });
        commit(&mut store, &[("a", Some("1"))], 1);
        store.put(b"a", Some(b"aborted".to_vec()));
        store.begin_commit();
        store.put(b"b", Some(b"aborted".to_vec()));
        store.discard_uncommitted();
        assert_eq!(value(&store, "a").as_deref(), Some("1"));
        assert_eq!(value(&store, "b"), None);
        drop(store);
        assert_eq!(backend.inner.changelog_offset().unwrap(), Some(1));
        assert_eq!(
            backend.inner.entries().unwrap(),
            vec![(b"a".to_vec(), b"1".to_vec())]
        );
    }

    #[tokio::test]
    async fn after_a_failed_write_no_later_commit_is_written_over_it() {
        let (mut store, backend) = store(ApplyPolicy::EVERY_COMMIT);
        commit(&mut store, &[("a", Some("1"))], 1);
        store.settle().unwrap();
        backend.fail_next.store(true, Ordering::SeqCst);
        commit(&mut store, &[("a", Some("2"))], 2);
        store.put(b"b", Some(b"1".to_vec()));
        store.begin_commit();
        // The failed write of the commit at offset 2 surfaces here.
        assert!(store.finish_commit_in_background(Some(3)).is_err());
        drop(store);
        // Offset 3 over a store without offset 2's write would make the
        // restore skip it: the backend stays at offset 1.
        assert_eq!(backend.inner.changelog_offset().unwrap(), Some(1));
        assert_eq!(
            backend.inner.entries().unwrap(),
            vec![(b"a".to_vec(), b"1".to_vec())]
        );
    }
}
