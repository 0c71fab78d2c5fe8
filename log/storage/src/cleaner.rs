//! Key-based compaction (`cleanup.policy` including `compact`).
//!
//! A pass works on the segments before the active one. It builds a map from
//! each key to the offset of its latest record, then rewrites every such
//! segment keeping, for each keyed record, only the latest one. Kept records
//! keep their original offsets (a rewritten batch keeps its base offset and
//! offset range, with gaps where records were removed). A batch whose records
//! all survive is copied byte for byte; control batches and records without a
//! key are always kept. A tombstone (null value) that is the latest record of
//! its key survives until `delete.retention.ms` after the cleaner first saw
//! its segment (kept in the segment's `.compacted` marker file), so a
//! consumer that is reading the log when the delete is compacted still sees
//! it, whatever timestamp the producer gave the tombstone. This is Kafka's
//! rule, measured per segment.
//!
//! The heavy work (reading, rewriting, syncing, indexing) happens without the
//! log lock; a rewritten segment replaces the old one under the write lock by
//! a rename, and only if the old segment is still there, unchanged. Readers
//! that hold the old file keep reading it. A crash leaves either the old
//! segment or the new one; leftover `.cleaned` files are deleted on open.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::file_io::FileIo;
use super::log::PartitionLog;
use super::segment::{scan_file, ScanRules, Segment, COMPACTED_MARKER};
use crate::IoContext;
use crate::{Result, StorageError};
use spool_record::{stamp, BatchBuilder, Header, RecordBatch};

/// What one cleaning pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    pub segments_cleaned: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
}

struct CleanableSegment {
    base_offset: u64,
    next_offset: u64,
    file: Arc<File>,
    path: PathBuf,
    size: u64,
}

impl PartitionLog {
    /// Share of the cleanable bytes (all segments but the active one) not yet
    /// compacted. The cleaner runs when this reaches
    /// `min.cleanable.dirty.ratio`.
    pub fn dirty_ratio(&self) -> f64 {
        let state = self.state.read();
        let cleaned_to = state.checkpoint.cleaner_offset;
        let (mut total, mut dirty) = (0u64, 0u64);
        for segment in self.cleanable_segments(&state) {
            total += segment.size;
            if segment.next_offset > cleaned_to {
                dirty += segment.size;
            }
        }
        if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        }
    }

    /// The segments a pass may compact: those before the active one that
    /// end at or below [`PartitionLog::set_cleanable_below`]'s bound.
    fn cleanable_segments<'a>(
        &self,
        state: &'a super::log::LogState,
    ) -> impl Iterator<Item = &'a Segment> {
        let active_base = state.active().base_offset;
        let bound = self
            .cleanable_below
            .load(std::sync::atomic::Ordering::Acquire);
        state
            .segments
            .values()
            .take_while(move |s| s.base_offset < active_base && s.next_offset <= bound)
    }

    /// Runs a pass when the policy includes `compact` and the dirty ratio
    /// has reached `min.cleanable.dirty.ratio`.
    pub fn clean_if_dirty(&self) -> Result<Option<CleanOutcome>> {
        let config = self.config.read().clone();
        let ratio = self.dirty_ratio();
        if !config.cleanup_policy.compact
            || ratio == 0.0
            || ratio < config.min_cleanable_dirty_ratio
        {
            return Ok(None);
        }
        self.clean().map(Some)
    }

    /// Compacts every segment before the active one. See the module docs.
    pub fn clean(&self) -> Result<CleanOutcome> {
        let _one_pass = self.cleaner_lock.lock();
        self.ensure_live()?;
        let config = self.config.read().clone();
        let (segments, clean_end) = {
            let state = self.state.read();
            let segments: Vec<CleanableSegment> = self
                .cleanable_segments(&state)
                .map(|s| CleanableSegment {
                    base_offset: s.base_offset,
                    next_offset: s.next_offset,
                    file: Arc::clone(&s.file),
                    path: s.log_path.clone(),
                    size: s.size,
                })
                .collect();
            let clean_end = segments
                .last()
                .map_or(state.log_start_offset, |s| s.next_offset);
            (segments, clean_end)
        };
        let latest = latest_offsets(&segments)?;
        let now = self.clock.now_ms();
        let mut outcome = CleanOutcome::default();
        for segment in &segments {
            let first_cleaned = first_cleaned_at(&segment.path, now)?;
            let drop_tombstones = now >= first_cleaned.saturating_add(config.delete_retention_ms);
            let cleaned_path = segment.path.with_extension("log.cleaned");
            let io = self.io.as_ref();
            let removed = rewrite(segment, &cleaned_path, io, &latest, drop_tombstones)?;
            outcome.bytes_before += segment.size;
            if removed == 0 {
                fs::remove_file(&cleaned_path).at(&cleaned_path)?;
                outcome.bytes_after += segment.size;
                continue;
            }
            let rules = ScanRules {
                index_interval: config.index_interval_bytes,
                contiguous: false,
            };
            let (cleaned, _) = Segment::open_at(
                cleaned_path.clone(),
                segment.base_offset,
                false,
                rules,
                &self.io,
            )?;
            outcome.bytes_after += cleaned.size;
            outcome.records_removed += removed;
            if self.swap_in(segment, cleaned, &cleaned_path)? {
                outcome.segments_cleaned += 1;
            }
        }
        let mut state = self.state.write();
        let mut checkpoint = state.checkpoint;
        checkpoint.cleaner_offset = checkpoint
            .cleaner_offset
            .max(clean_end)
            .min(state.next_offset());
        self.write_checkpoint(&mut state, checkpoint)?;
        drop(state);
        tracing::debug!(dir = %self.dir.display(), ?outcome, "cleaner pass done");
        Ok(outcome)
    }

    /// Replaces `old` with its cleaned version if `old` is still in the log
    /// unchanged (retention or truncation may have removed it meanwhile).
    fn swap_in(
        &self,
        old: &CleanableSegment,
        mut cleaned: Segment,
        cleaned_path: &PathBuf,
    ) -> Result<bool> {
        let mut state = self.state.write();
        self.ensure_live()?;
        let unchanged = state
            .segments
            .get(&old.base_offset)
            .is_some_and(|s| s.size == old.size && Arc::ptr_eq(&s.file, &old.file))
            && state.active().base_offset != old.base_offset;
        if !unchanged {
            drop(state);
            fs::remove_file(cleaned_path).at(cleaned_path)?;
            return Ok(false);
        }
        let current = state.segments.get(&old.base_offset).expect("checked above");
        if cleaned.batch_count != current.batch_count {
            // Cleaning empties batches but never drops one; a different
            // count would shift the Raft index of every later entry.
            let error = StorageError::InvalidBatch(format!(
                "cleaning {} produced {} batches from {}",
                old.path.display(),
                cleaned.batch_count,
                current.batch_count
            ));
            drop(state);
            fs::remove_file(cleaned_path).at(cleaned_path)?;
            return Err(error);
        }
        current.remove_index_files()?;
        cleaned.raft_base = current.raft_base;
        fs::rename(cleaned_path, &old.path).at(&old.path)?;
        cleaned.log_path = old.path.clone();
        cleaned.save_index()?;
        // The segment is the cleaned file now: a failed sync of it stops
        // the log like any other.
        if let Err(e) = cleaned.sync() {
            self.record_flush_failure(e.to_string());
            return Err(e);
        }
        state.segments.insert(old.base_offset, cleaned);
        self.sync_dir()?;
        Ok(true)
    }
}

/// When the cleaner first saw the segment at `log_path`, from its marker
/// file; a segment seen for the first time gets a marker saying `now`. The
/// marker also tells recovery that the segment may have offset gaps.
fn first_cleaned_at(log_path: &std::path::Path, now: u64) -> Result<u64> {
    let marker = log_path.with_extension(COMPACTED_MARKER);
    if let Some(seen) = fs::read_to_string(&marker)
        .ok()
        .and_then(|t| t.trim().parse().ok())
    {
        return Ok(seen);
    }
    fs::write(&marker, now.to_string()).at(&marker)?;
    Ok(now)
}

/// The offset of the latest record of each key in `segments`.
///
/// Records of transactions neither count nor are removed (`clean_batch`
/// keeps their batches whole): whether one supersedes the key's earlier
/// record depends on its transaction's outcome, which the cleaner does not
/// track, and an aborted record that replaced a committed one would lose
/// the committed value. Kafka's cleaner decides by the transaction index;
/// spool keeps transactional records until that is built.
fn latest_offsets(segments: &[CleanableSegment]) -> Result<HashMap<Vec<u8>, u64>> {
    let mut latest = HashMap::new();
    for segment in segments {
        let mut failure = None;
        let end = scan_file(&segment.file, &segment.path, 0, segment.size, |_, batch| {
            let attributes = batch.attributes();
            if attributes.is_control() || attributes.is_transactional() {
                return Ok(());
            }
            let result = batch.records().and_then(|records| {
                for record in records.iter() {
                    let record = record?;
                    if let Some(key) = record.key {
                        latest.insert(key.to_vec(), record.offset);
                    }
                }
                Ok(())
            });
            result.map_err(|e| {
                failure = Some(e.to_string());
                "undecodable records".to_string()
            })
        })?;
        check_scan(segment, end.stopped.or(failure))?;
    }
    Ok(latest)
}

fn check_scan(segment: &CleanableSegment, stopped: Option<String>) -> Result<()> {
    match stopped {
        None => Ok(()),
        Some(reason) => Err(StorageError::CorruptBatch {
            file: segment.path.clone(),
            position: 0,
            reason: format!("cleaner stopped: {reason}"),
        }),
    }
}

/// Writes the cleaned copy of `segment` to `out_path` and syncs it through `io`. Returns
/// how many records were removed.
fn rewrite(
    segment: &CleanableSegment,
    out_path: &std::path::Path,
    io: &dyn FileIo,
    latest: &HashMap<Vec<u8>, u64>,
    drop_tombstones: bool,
) -> Result<u64> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(out_path)
        .at(out_path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut removed = 0u64;
    let mut write_error = None;
    let end = scan_file(&segment.file, &segment.path, 0, segment.size, |_, batch| {
        let result = clean_batch(batch, latest, drop_tombstones).and_then(|(kept, dropped)| {
            removed += dropped;
            match kept {
                Kept::All => out.write_all(batch.as_bytes()),
                Kept::Rewritten(bytes) => out.write_all(&bytes),
            }
            .map_err(|e| StorageError::io(out_path, e))
        });
        result.map_err(|e| {
            write_error = Some(e);
            "cleaner failed".to_string()
        })
    })?;
    if let Some(e) = write_error {
        return Err(e);
    }
    check_scan(segment, end.stopped)?;
    let file = out
        .into_inner()
        .map_err(|e| StorageError::io(out_path, e.into_error()))?;
    io.sync(&file, out_path).at(out_path)?;
    Ok(removed)
}

/// What cleaning left of a batch. A batch is never dropped, only emptied:
/// every batch is a Raft entry, and removing one would shift the Raft
/// index of every later batch (Kafka keeps empty batches too, for producer
/// state).
enum Kept {
    All,
    Rewritten(Vec<u8>),
}

fn clean_batch(
    batch: RecordBatch<'_>,
    latest: &HashMap<Vec<u8>, u64>,
    drop_tombstones: bool,
) -> Result<(Kept, u64)> {
    // Control batches and Raft entries without records are not keyed
    // data; transactions' records are kept (see `latest_offsets`).
    let attributes = batch.attributes();
    if attributes.is_control() || attributes.is_transactional() || batch.is_raft_meta() {
        return Ok((Kept::All, 0));
    }
    let records = batch.records()?;
    let records: Vec<_> = records.iter().collect::<spool_record::Result<_>>()?;
    let keep = |r: &spool_record::Record<'_>| match r.key {
        None => true,
        Some(key) => {
            latest.get(key).is_none_or(|&offset| offset <= r.offset)
                && (r.value.is_some() || !drop_tombstones)
        }
    };
    let kept: Vec<_> = records.iter().filter(|r| keep(r)).collect();
    let dropped = (records.len() - kept.len()) as u64;
    if kept.len() == records.len() {
        return Ok((Kept::All, 0));
    }
    let mut builder = BatchBuilder::new(attributes.compression()?)
        .producer(
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence(),
        )
        .transactional(attributes.is_transactional());
    let mut previous_delta = -1i64;
    for record in kept {
        let delta = record.offset as i64 - batch.base_offset() as i64;
        if delta <= previous_delta || delta > i64::from(batch.last_offset_delta()) {
            return Err(StorageError::InvalidBatch(format!(
                "record offsets out of order in the batch at offset {}",
                batch.base_offset()
            )));
        }
        previous_delta = delta;
        let headers: Vec<Header<'_>> = record.headers.clone();
        builder.push_at(
            delta as i32,
            record.timestamp,
            record.key,
            record.value,
            &headers,
        );
    }
    builder.extend_last_offset_delta(batch.last_offset_delta());
    let mut bytes = builder.build();
    stamp(&mut bytes, batch.base_offset(), batch.term());
    Ok((Kept::Rewritten(bytes), dropped))
}
