//! Removing data: truncation at the tail (for Raft), deletion before an
//! offset (for Raft snapshots and DeleteRecords), and retention by time and
//! size.
//!
//! Removed segments leave the segment map under the write lock; their files
//! are unlinked after it is released. A read already holding a segment's file
//! handle finishes on the unlinked file.

use super::log::{LogState, PartitionLog};
use super::segment::Segment;
use crate::{Result, StorageError};

/// What one retention pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    /// The log start offset after the pass.
    pub log_start_offset: u64,
}

impl PartitionLog {
    /// Removes every batch whose last offset is after `offset`, keeping the
    /// batches that end at or before it. Batches are never split: if `offset`
    /// falls inside a batch, that whole batch goes. Returns the new log end
    /// offset. Truncating below the log start is an error.
    pub fn truncate_after(&self, offset: u64) -> Result<u64> {
        let interval = self.config.read().index_interval_bytes;
        let mut state = self.state.write();
        self.ensure_live()?;
        let (log_start, log_end) = (state.log_start_offset, state.next_offset());
        if offset.saturating_add(1) < log_start {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        if offset.saturating_add(1) >= log_end {
            return Ok(log_end);
        }
        let doomed_raft_base = self.delete_segments_from(&mut state, offset + 1)?;
        match state.segments.values_mut().next_back() {
            Some(last) => {
                let start = u64::from(
                    last.index
                        .lookup_offset((offset + 1 - last.base_offset) as u32)
                        .position,
                );
                let cut =
                    Segment::position_of(&last.file, &last.log_path, start, last.size, offset + 1)?;
                last.truncate_to_position(cut, interval)?;
            }
            None => {
                let mut fresh = Segment::create(&self.dir, offset + 1, &self.io)?;
                fresh.raft_base = doomed_raft_base.unwrap_or(0);
                state.segments.insert(fresh.base_offset, fresh);
            }
        }
        let new_end = self.after_truncation(&mut state)?;
        Ok(new_end)
    }

    /// Deletes every segment whose base offset is `from` or more, newest
    /// first, and returns the first one's Raft index. Done while holding
    /// the lock: a roll right after could otherwise recreate a file of the
    /// same name that a late unlink would then remove, and a crash between
    /// a cut and the deletion would bring removed records back after a gap.
    pub(super) fn delete_segments_from(
        &self,
        state: &mut LogState,
        from: u64,
    ) -> Result<Option<u64>> {
        let bases: Vec<u64> = state.segments.range(from..).map(|(b, _)| *b).collect();
        let doomed: Vec<Segment> = bases
            .iter()
            .filter_map(|b| state.segments.remove(b))
            .collect();
        let first_raft_index = doomed.first().map(|s| s.raft_base);
        delete_all(doomed.into_iter().rev().collect())?;
        if !bases.is_empty() {
            self.sync_dir()?;
        }
        Ok(first_raft_index)
    }

    /// Bookkeeping after the log's tail was cut: end-dependent positions move
    /// back, and the checkpoint no longer claims what is gone.
    pub(super) fn after_truncation(&self, state: &mut LogState) -> Result<u64> {
        let new_end = state.next_offset();
        // Only possible when the log start sat inside the batch just removed.
        state.log_start_offset = state.log_start_offset.min(new_end);
        state.flushed_offset = state.flushed_offset.min(new_end);
        state.active_since_ms = None;
        let mut checkpoint = state.checkpoint;
        let active_base = state.active().base_offset;
        checkpoint.recovery_point = checkpoint.recovery_point.min(active_base);
        checkpoint.log_start_offset = state.log_start_offset;
        checkpoint.cleaner_offset = checkpoint.cleaner_offset.min(new_end);
        self.write_checkpoint(state, checkpoint)?;
        Ok(new_end)
    }

    /// Moves the log start to `offset` (at most the log end) and deletes every
    /// segment that lies wholly before it. Readers can no longer read below
    /// the new start even where a segment still holds those bytes.
    pub fn delete_before(&self, offset: u64) -> Result<u64> {
        let mut state = self.state.write();
        self.ensure_live()?;
        let log_end = state.next_offset();
        if offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: state.log_start_offset,
                log_end,
            });
        }
        if offset <= state.log_start_offset {
            return Ok(state.log_start_offset);
        }
        if offset == log_end {
            self.roll_locked(&mut state)?;
        }
        let doomed = remove_while(&mut state, |segment, _| segment.next_offset <= offset);
        state.log_start_offset = offset;
        self.persist_start(&mut state)?;
        drop(state);
        delete_all(doomed)?;
        Ok(offset)
    }

    /// Applies `retention.ms` and `retention.bytes` (when the cleanup policy
    /// includes `delete`): deletes the oldest segments whose newest record is
    /// older than the retention time, then the oldest segments while the log
    /// is larger than the retention size. The active segment is rolled first
    /// when it has expired, so a quiet topic still empties.
    pub fn apply_retention(&self) -> Result<RetentionOutcome> {
        let mut state = self.state.write();
        self.ensure_live()?;
        let keep_from = self.retained_from(&mut state)?;
        let doomed = remove_while(&mut state, |segment, _| segment.base_offset < keep_from);
        let first_base = *state
            .segments
            .keys()
            .next()
            .expect("the active segment remains");
        if first_base > state.log_start_offset {
            state.log_start_offset = first_base;
            self.persist_start(&mut state)?;
        }
        let outcome = RetentionOutcome {
            segments_deleted: doomed.len(),
            bytes_deleted: doomed.iter().map(|s| s.size).sum(),
            log_start_offset: state.log_start_offset,
        };
        drop(state);
        if outcome.segments_deleted > 0 {
            tracing::debug!(dir = %self.dir.display(), ?outcome, "retention deleted segments");
        }
        delete_all(doomed)?;
        Ok(outcome)
    }

    /// The first Raft index that retention keeps: a replicated log deletes
    /// nothing itself, its replica purges the Raft log up to the entry
    /// before this one and then deletes the segments (see
    /// `spool_raft::retention`). Rolls an expired active segment, as
    /// [`PartitionLog::apply_retention`] does.
    pub fn retained_raft_index(&self) -> Result<u64> {
        let mut state = self.state.write();
        self.ensure_live()?;
        let keep_from = self.retained_from(&mut state)?;
        let kept = state
            .segments
            .range(keep_from..)
            .next()
            .map(|(_, segment)| segment.raft_base);
        Ok(kept.unwrap_or_else(|| state.raft_range().1))
    }

    /// The base offset of the first segment retention keeps (the first
    /// segment when the policy does not delete): segments before it lie
    /// wholly below the log start (raised by DeleteRecords), or are expired
    /// by `retention.ms`, or over `retention.bytes`. Never past the active
    /// segment, which is rolled first when it expired.
    fn retained_from(&self, state: &mut LogState) -> Result<u64> {
        let config = self.config.read().clone();
        let first = first_visible_segment(state);
        if !config.cleanup_policy.delete {
            return Ok(first);
        }
        let now = self.clock.now_ms() as i64;
        let expired = |segment: &Segment| {
            config.retention_ms.is_some_and(|ms| {
                // A segment of Raft meta batches alone has no record age.
                segment.next_offset > segment.base_offset
                    && segment.max_timestamp < now.saturating_sub(ms as i64)
            })
        };
        if expired(state.active()) {
            self.roll_locked(state)?;
        }
        let active_base = state.active().base_offset;
        let mut size: u64 = state.segments.range(first..).map(|(_, s)| s.size).sum();
        let mut past_expired = false;
        for segment in state.segments.range(first..active_base).map(|(_, s)| s) {
            past_expired = past_expired || !expired(segment);
            let over_size = config
                .retention_bytes
                .is_some_and(|limit| size - segment.size >= limit);
            if past_expired && !over_size {
                return Ok(segment.base_offset);
            }
            size -= segment.size;
        }
        Ok(active_base)
    }

    /// Raises the log start to `offset` (at most the log end) without
    /// deleting anything: a replicated log's DeleteRecords. Readers can no
    /// longer read below it at once; the segments wholly before it go with
    /// the next retention pass, once Raft has purged their entries. Never
    /// lowers the start. Returns the log start after the call.
    pub fn raise_log_start(&self, offset: u64) -> Result<u64> {
        let mut state = self.state.write();
        self.ensure_live()?;
        let offset = offset.min(state.next_offset());
        if offset > state.log_start_offset {
            state.log_start_offset = offset;
            self.persist_start(&mut state)?;
        }
        Ok(state.log_start_offset)
    }

    fn persist_start(&self, state: &mut LogState) -> Result<()> {
        let mut checkpoint = state.checkpoint;
        checkpoint.log_start_offset = state.log_start_offset;
        checkpoint.cleaner_offset = checkpoint.cleaner_offset.max(state.log_start_offset);
        self.write_checkpoint(state, checkpoint)
    }
}

/// The base offset of the first segment holding an offset at or after the
/// log start (the active segment's when none does).
fn first_visible_segment(state: &LogState) -> u64 {
    let start = state.log_start_offset;
    state
        .segments
        .values()
        .find(|segment| segment.next_offset > start)
        .map_or(state.active().base_offset, |segment| segment.base_offset)
}

/// Removes segments from the front of the log while `doomed` says so, never
/// the active (last) segment.
pub(super) fn remove_while(
    state: &mut LogState,
    mut doomed: impl FnMut(&Segment, u64) -> bool,
) -> Vec<Segment> {
    let mut removed = Vec::new();
    while state.segments.len() > 1 {
        let (&base, segment) = state.segments.iter().next().expect("more than one segment");
        if !doomed(segment, base) {
            break;
        }
        removed.extend(state.segments.remove(&base));
    }
    removed
}

pub(super) fn delete_all(segments: Vec<Segment>) -> Result<()> {
    for segment in segments {
        segment.delete_files()?;
    }
    Ok(())
}
