//! [`PartitionLog`]: the segment log of one partition, and its write path.
//!
//! Concurrency: one `RwLock` guards the segment map and offsets. Appends take
//! it for writing only while bytes are copied into the page cache; reads take
//! it for reading only to find a file and a byte range, and do their I/O
//! after releasing it. Fsync happens outside the lock, so a flush never
//! stalls readers or appenders. Segment files are shared as `Arc<File>`: a
//! segment deleted or replaced while a read is in flight stays readable
//! through the handle the read already holds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};

use super::checkpoint::{sync_dir, Checkpoint};
use super::clock::Clock;
use super::file_io::{FileIo, OsFileIo};
use super::flusher::{self, FlushSignal};
pub(crate) use super::log_state::LogState;
use super::recovery::{self, RecoveryReport};
use super::segment::{sync_index_files, BatchInfo, Segment};
use crate::config::LogConfig;
use crate::{Result, StorageError};
use spool_record::{stamp, BatchIter};

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: u64,
    /// The offset after the appended batches (the new log end offset).
    pub next_offset: u64,
    pub max_timestamp: i64,
}

/// A segment file a flush syncs.
struct FlushTarget {
    file: Arc<std::fs::File>,
    path: PathBuf,
    /// The active segment, whose index files are not written yet.
    active: bool,
    base_offset: u64,
    /// The segment's size when the flush was planned: what the sync
    /// covers, if the segment still has this file when it ends.
    size: u64,
}

/// The segment log of one partition. See the [module docs](super).
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: RwLock<LogConfig>,
    pub(crate) state: RwLock<LogState>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Through which segment files are written and synced.
    pub(crate) io: Arc<dyn FileIo>,
    /// Serializes flushes, so the flushed offset only moves forward.
    flush_lock: Mutex<()>,
    /// Serializes cleaner passes over this log.
    pub(crate) cleaner_lock: Mutex<()>,
    recovery: RecoveryReport,
    /// Set once a background flusher runs; due flushes are handed to it.
    flusher: OnceLock<Arc<FlushSignal>>,
    /// A failed fsync: the log refuses appends and flushes from then on, as
    /// it can no longer promise that what it wrote reaches the disk (see
    /// [`FileIo::sync`] for why a failed sync is never retried).
    pub(crate) flush_failure: Mutex<Option<String>>,
    /// Flushes that synced at least one file, for metrics and benchmarks.
    flush_count: AtomicU64,
    /// Set when the partition is deleted: from then on nothing writes to
    /// its directory, which a re-created topic of the same name may reuse.
    deleted: std::sync::atomic::AtomicBool,
    /// The cleaner compacts only segments that end at or below this offset
    /// (all of them by default). A replicated log sets it to its high
    /// watermark: compacting records not yet committed would let a later
    /// record of a key remove an earlier one, and truncating that later
    /// record (a new leader overwrote it) would leave the key with neither.
    pub(crate) cleanable_below: AtomicU64,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering it first: segments
    /// after the recovery checkpoint are validated batch by batch, a torn or
    /// corrupt tail is cut off at the last valid batch (and everything after
    /// it dropped), and missing or damaged indexes are rebuilt. What recovery
    /// dropped is logged and kept in [`PartitionLog::recovery_report`].
    pub fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<PartitionLog> {
        PartitionLog::open_with_io(dir, config, clock, Arc::new(OsFileIo))
    }

    /// [`PartitionLog::open`] writing its segment files through `io` (a
    /// test's fault-injecting layer; brokers use [`OsFileIo`]).
    pub fn open_with_io(
        dir: impl AsRef<Path>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        io: Arc<dyn FileIo>,
    ) -> Result<PartitionLog> {
        let dir = dir.as_ref().to_path_buf();
        let (state, recovery) = recovery::recover(&dir, &config, &io)?;
        Ok(PartitionLog {
            dir,
            config: RwLock::new(config),
            state: RwLock::new(state),
            clock,
            io,
            flush_lock: Mutex::new(()),
            cleaner_lock: Mutex::new(()),
            recovery,
            flusher: OnceLock::new(),
            flush_failure: Mutex::new(None),
            flush_count: AtomicU64::new(0),
            deleted: std::sync::atomic::AtomicBool::new(false),
            cleanable_below: AtomicU64::new(u64::MAX),
        })
    }

    /// Appends one or more producer-encoded batches, in order, at the end of
    /// the log. Each batch is validated first (framing, CRC, record layout,
    /// `max.message.bytes`); if any is invalid nothing is appended. The log
    /// stamps base offsets and `term` into the headers in place and stores
    /// the bytes as they are. Syncs when the fsync policy says so.
    pub fn append(&self, batches: &mut [u8], term: u32) -> Result<AppendInfo> {
        self.append_checked(batches, term, MetaBatches::Refused)
    }

    /// [`PartitionLog::append`] that also takes Raft meta batches (blank and
    /// membership entries, which occupy no offset), for the Raft log
    /// storage. Producers must never write those, so the public path
    /// refuses them. Data batches are checked (framing, CRC, size, record
    /// count) but their records are not parsed again: the leader validated
    /// them before proposing.
    pub fn append_raft_entries(&self, batches: &mut [u8], term: u32) -> Result<AppendInfo> {
        self.append_checked(batches, term, MetaBatches::Allowed)
    }

    /// Checks producer batches as [`PartitionLog::append`] would, without
    /// appending: a replicated partition validates before proposing, since
    /// a Raft entry its log storage refused would stop the group.
    pub fn validate_producer_batches(&self, batches: &[u8]) -> Result<()> {
        let config = self.config.read().clone();
        validate_for_append(batches, &config, MetaBatches::Refused).map(|_| ())
    }

    fn append_checked(
        &self,
        batches: &mut [u8],
        term: u32,
        meta: MetaBatches,
    ) -> Result<AppendInfo> {
        self.ensure_live()?;
        let config = self.config.read().clone();
        let mut infos = validate_for_append(batches, &config, meta)?;
        let total: u64 = infos.iter().map(|b| b.size).sum();
        // Offsets each batch occupies; validation left them relative.
        let records: u64 = infos.iter().map(|b| b.next_offset).sum();
        let now = self.clock.now_ms();
        let mut state = self.state.write();
        if needs_roll(&state, &config, total, records, now) {
            self.roll_locked(&mut state)?;
        }
        let mut offset = state.next_offset();
        let mut position = 0usize;
        for info in &mut infos {
            let count = info.next_offset;
            stamp(&mut batches[position..], offset, term);
            *info = BatchInfo {
                base_offset: offset,
                next_offset: offset + count,
                ..*info
            };
            offset += count;
            position += info.size as usize;
        }
        state
            .active_mut()
            .append(batches, &infos, config.index_interval_bytes)?;
        state.active_since_ms.get_or_insert(now);
        state.appended_bytes += total;
        state.oldest_unflushed_ms.get_or_insert(now);
        let due = flush_due(&state, &config, now);
        let background = self
            .flusher
            .get()
            .filter(|signal| due && !signal.is_stopped());
        if background.is_some() {
            // The flush about to be requested covers everything so far.
            state.flush_requested_bytes = state.appended_bytes;
            state.oldest_unflushed_ms = None;
        }
        drop(state);
        match background {
            Some(signal) => signal.request_when_idle(),
            None if due => {
                self.flush()?;
            }
            None => {}
        }
        Ok(AppendInfo {
            base_offset: infos[0].base_offset,
            next_offset: offset,
            max_timestamp: infos.iter().map(|b| b.max_timestamp).max().unwrap_or(-1),
        })
    }

    /// Hands flushes that the fsync policy makes due to a background thread,
    /// so appends do not wait for the disk. [`PartitionLog::flushed_offset`]
    /// still says what is durable; an explicit [`PartitionLog::flush`] still
    /// waits. Idempotent.
    pub fn start_background_flush(self: &Arc<Self>) {
        let mut started = false;
        let signal = self.flusher.get_or_init(|| {
            started = true;
            Arc::new(FlushSignal::default())
        });
        if started {
            let name = self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let log = Arc::downgrade(self);
            let flush = move || {
                let Some(log) = log.upgrade() else {
                    return false;
                };
                // A failure stops the log's writes inside `flush` itself.
                if let Err(e) = log.flush() {
                    tracing::error!(dir = %log.dir().display(), error = %e, "background flush failed");
                }
                true
            };
            flusher::spawn(
                format!("flush-{}", name.unwrap_or_default()),
                Arc::clone(signal),
                flush,
            );
        }
    }

    /// Syncs every appended byte to disk and returns the flushed offset
    /// (everything before it is durable). Advances the recovery checkpoint
    /// over segments that are now complete on disk.
    pub fn flush(&self) -> Result<u64> {
        let _serial = self.flush_lock.lock();
        self.ensure_no_failed_sync()?;
        let (targets, target_offset, target_bytes, active_base) = {
            let state = self.state.read();
            let targets: Vec<FlushTarget> = state
                .segments
                .values()
                .filter(|s| {
                    s.next_offset > state.flushed_offset
                        || s.base_offset >= state.checkpoint.recovery_point
                        // Raft meta batches add bytes but no offsets.
                        || (s.base_offset == state.active().base_offset
                            && state.appended_bytes > state.flushed_bytes)
                })
                .map(|s| FlushTarget {
                    file: Arc::clone(&s.file),
                    path: s.log_path.clone(),
                    active: s.base_offset == state.active().base_offset,
                    base_offset: s.base_offset,
                    size: s.size,
                })
                .collect();
            (
                targets,
                state.next_offset(),
                state.appended_bytes,
                state.active().base_offset,
            )
        };
        if !targets.is_empty() {
            self.flush_count.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = self.sync_targets(&targets) {
            tracing::error!(dir = %self.dir.display(), error = %e, "fsync failed: the log takes no more writes");
            self.record_flush_failure(e.to_string());
            return Err(e);
        }
        let mut state = self.state.write();
        for target in &targets {
            // A segment cut meanwhile has a new handle (`truncate_to_position`
            // reopens it), and one deleted and created again at the same
            // base another file: the sync covered neither.
            if let Some(segment) = state.segments.get_mut(&target.base_offset) {
                if Arc::ptr_eq(&segment.file, &target.file) {
                    segment.synced = segment.synced.max(target.size);
                }
            }
        }
        state.flushed_offset = state.flushed_offset.max(target_offset);
        state.flushed_bytes = state.flushed_bytes.max(target_bytes);
        if state.flushed_bytes == state.appended_bytes {
            state.oldest_unflushed_ms = None;
        }
        if active_base > state.checkpoint.recovery_point
            && state.segments.contains_key(&active_base)
        {
            let mut checkpoint = state.checkpoint;
            checkpoint.recovery_point = active_base;
            self.write_checkpoint(&mut state, checkpoint)?;
        }
        Ok(state.flushed_offset)
    }

    /// Syncs each target's log file and, for a complete segment, its index
    /// files (the active segment's are written only when it rolls).
    fn sync_targets(&self, targets: &[FlushTarget]) -> Result<()> {
        for target in targets {
            self.io
                .sync(&target.file, &target.path)
                .map_err(|e| StorageError::io(&target.path, e))?;
            if !target.active {
                sync_index_files(self.io.as_ref(), &target.path)?;
            }
        }
        Ok(())
    }

    /// Starts a new active segment (if the current one holds any batch).
    pub fn roll(&self) -> Result<()> {
        let mut state = self.state.write();
        self.roll_locked(&mut state)
    }

    pub(crate) fn roll_locked(&self, state: &mut LogState) -> Result<()> {
        self.ensure_live()?;
        let active = state.active();
        // Segments are named by base offset, and one holding only Raft meta
        // batches ends at its own base: the next segment would take its
        // name (and truncate its file). It keeps growing instead.
        if active.is_empty() || active.next_offset == active.base_offset {
            return Ok(());
        }
        active.save_index()?;
        let mut next = Segment::create(&self.dir, active.next_offset, &self.io)?;
        next.raft_base = active.next_raft_index();
        state.segments.insert(next.base_offset, next);
        state.active_since_ms = None;
        Ok(())
    }

    /// Flushes everything, writes the active segment's indexes and a
    /// checkpoint covering the whole log, so the next open scans nothing.
    pub fn close(&self) -> Result<()> {
        self.flush()?;
        let mut state = self.state.write();
        let active = state.active();
        active.save_index()?;
        active.sync()?;
        let mut checkpoint = state.checkpoint;
        checkpoint.recovery_point = state.next_offset();
        self.write_checkpoint(&mut state, checkpoint)
    }

    /// Stops every later write to this log's files (taken under the state
    /// lock, so an operation already holding it finishes first).
    /// Limits compaction to segments ending at or below `offset` (see
    /// the field's docs); a replicated log calls this as it commits.
    pub fn set_cleanable_below(&self, offset: u64) {
        self.cleanable_below.store(offset, Ordering::Release);
    }

    pub fn mark_deleted(&self) {
        let _state = self.state.write();
        self.deleted.store(true, Ordering::SeqCst);
    }

    /// Fails writes to a deleted log, and to one whose fsync failed: every
    /// path that changes its files (appends, rolls, checkpoints, Raft
    /// truncation, retention, the cleaner) asks this first.
    pub(crate) fn ensure_live(&self) -> Result<()> {
        if self.deleted.load(Ordering::SeqCst) {
            return Err(StorageError::InvalidRequest(format!(
                "{} was deleted",
                self.dir.display()
            )));
        }
        self.ensure_no_failed_sync()
    }

    pub(crate) fn write_checkpoint(
        &self,
        state: &mut LogState,
        mut checkpoint: Checkpoint,
    ) -> Result<()> {
        self.ensure_live()?;
        recovery::anchor_raft_indexes(&mut checkpoint, &state.segments);
        checkpoint.write(&self.dir)?;
        state.checkpoint = checkpoint;
        Ok(())
    }

    pub(crate) fn sync_dir(&self) -> Result<()> {
        sync_dir(&self.dir)
    }

    /// How many flushes have synced data since the log was opened.
    pub fn flush_count(&self) -> u64 {
        self.flush_count.load(Ordering::Relaxed)
    }

    /// The first offset a reader may ask for.
    pub fn log_start_offset(&self) -> u64 {
        self.state.read().log_start_offset
    }

    /// The offset the next append will get (Kafka's log end offset).
    pub fn log_end_offset(&self) -> u64 {
        self.state.read().next_offset()
    }

    /// The log's clock (milliseconds since the Unix epoch): what its rolls
    /// and retention go by, and what the layers over it should measure
    /// their own timeouts with, so that one clock decides them all.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Everything before this offset has been synced to disk.
    pub fn flushed_offset(&self) -> u64 {
        self.state.read().flushed_offset
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state.read().size_bytes()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.state.read().segments.keys().copied().collect()
    }

    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    /// Replaces the configuration; it applies from the next operation on.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    /// What recovery found and dropped when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Checks every batch of an append before any byte is written.
/// Whether an append may carry Raft meta batches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MetaBatches {
    Allowed,
    Refused,
}

fn validate_for_append(
    bytes: &[u8],
    config: &LogConfig,
    meta: MetaBatches,
) -> Result<Vec<BatchInfo>> {
    let mut infos = Vec::new();
    for batch in BatchIter::new(bytes) {
        let batch = batch?;
        if batch.size() as u64 > config.max_message_bytes {
            return Err(StorageError::BatchTooLarge {
                size: batch.size(),
                max: config.max_message_bytes as usize,
            });
        }
        batch.validate()?;
        match (batch.is_raft_meta(), meta) {
            (true, MetaBatches::Refused) => {
                return Err(StorageError::InvalidBatch(
                    "attribute bit 7 (a Raft meta batch) is reserved for the replication layer"
                        .into(),
                ))
            }
            // `validate` checked its shape: no records, no offsets.
            (true, MetaBatches::Allowed) => {}
            // A Raft entry's records were validated by the leader before it
            // proposed them (`validate_producer_batches`); the CRC above
            // shows they arrived as the leader checked them. Parsing every
            // record again on each replica would only cost time. The entry
            // may come from a compacted segment (replication or a snapshot
            // reads what the leader's log holds now), so it may hold fewer
            // records than offsets, never more.
            (false, MetaBatches::Allowed) => check_compacted_record_count(&batch)?,
            (false, MetaBatches::Refused) => {
                check_record_count(&batch)?;
                batch.validate_records()?;
            }
        }
        infos.push(BatchInfo {
            size: batch.size() as u64,
            base_offset: 0,
            // Relative to the batch until the log assigns offsets.
            next_offset: batch.offset_count(),
            max_timestamp: batch.max_timestamp(),
        });
    }
    if infos.is_empty() {
        return Err(StorageError::InvalidBatch(
            "the append holds no batch".into(),
        ));
    }
    Ok(infos)
}

/// A new data batch holds exactly one record per offset, at least one.
/// Counted in 64 bits (`offset_count`, after `validate` refused negative
/// deltas): a last offset delta of `i32::MAX` overflowed a 32-bit sum
/// (found by fuzzing: a panic in a debug build).
fn check_record_count(batch: &spool_record::RecordBatch<'_>) -> Result<()> {
    let count = i64::from(batch.record_count());
    if count < 1 || count as u64 != batch.offset_count() {
        return Err(StorageError::InvalidBatch(format!(
            "a new batch must hold last offset delta + 1 records, with at least one; it holds {} for delta {}",
            batch.record_count(),
            batch.last_offset_delta()
        )));
    }
    Ok(())
}

/// A stored batch holds at most one record per offset; compaction may
/// have removed some, or all.
fn check_compacted_record_count(batch: &spool_record::RecordBatch<'_>) -> Result<()> {
    let count = i64::from(batch.record_count());
    if count < 0 || count as u64 > batch.offset_count() {
        return Err(StorageError::InvalidBatch(format!(
            "a stored batch holds at most last offset delta + 1 records; it holds {} for delta {}",
            batch.record_count(),
            batch.last_offset_delta()
        )));
    }
    Ok(())
}

fn needs_roll(state: &LogState, config: &LogConfig, bytes: u64, records: u64, now: u64) -> bool {
    let active = state.active();
    if active.is_empty() {
        return false;
    }
    let too_big = active.size + bytes > config.segment_bytes;
    let too_old = state
        .active_since_ms
        .is_some_and(|since| now.saturating_sub(since) >= config.segment_ms);
    // Index entries hold 32-bit relative offsets and positions.
    let overflow = active.next_offset + records - active.base_offset > u64::from(u32::MAX)
        || active.size + bytes > u64::from(u32::MAX);
    too_big || too_old || overflow
}

fn flush_due(state: &LogState, config: &LogConfig, now: u64) -> bool {
    let unflushed = state.appended_bytes - state.flushed_bytes.max(state.flush_requested_bytes);
    let by_bytes = config
        .fsync
        .every_bytes
        .is_some_and(|limit| unflushed >= limit.max(1));
    let by_time = match (config.fsync.every_ms, state.oldest_unflushed_ms) {
        (Some(limit), Some(since)) => now.saturating_sub(since) >= limit,
        _ => false,
    };
    by_bytes || by_time
}

impl PartitionLog {
    /// Flushes when the `flush.ms` policy says the oldest unsynced append is
    /// due; called periodically by the [`super::LogManager`].
    pub fn flush_if_due(&self) -> Result<bool> {
        let config = self.config.read().clone();
        let due = flush_due(&self.state.read(), &config, self.clock.now_ms());
        if due {
            self.flush()?;
        }
        Ok(due)
    }
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        if let Some(signal) = self.flusher.get() {
            signal.stop();
        }
    }
}
