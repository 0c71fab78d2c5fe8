//! The log as a Raft log: every stored batch is one Raft entry, numbered
//! from the first segment's `raft_base` on (see `docs/replication.md`).
//! These operations address entries by Raft index where the rest of the
//! log addresses records by offset; the replication layer builds
//! openraft's log storage on them.

use super::checkpoint::Checkpoint;
use super::log::PartitionLog;
use super::read::{read_batches, SegmentView};
use super::retention::{delete_all, remove_while};
use super::segment::Segment;
use crate::{Result, StorageError};
use spool_record::BatchIter;

impl PartitionLog {
    /// The Raft indexes the log holds: `[first, next)`. Empty when
    /// `first == next`; `next` is the index the next appended batch gets.
    pub fn raft_index_range(&self) -> (u64, u64) {
        self.state.read().raft_range()
    }

    /// Whole stored batches (Raft meta batches included) from entry `from`
    /// up to, not including, entry `to`, and at most `max_bytes` (at least
    /// one entry when `from < to`). A read never spans two segments, so it
    /// may return fewer entries than asked; each batch is CRC-checked.
    pub fn read_raft_entries(&self, from: u64, to: u64, max_bytes: usize) -> Result<Vec<u8>> {
        let (view, wanted) = {
            let state = self.state.read();
            let (first, next) = state.raft_range();
            if from < first || from > next || to > next {
                return Err(out_of_range(from, first, next));
            }
            if from >= to {
                return Ok(Vec::new());
            }
            let segment = state
                .segments
                .values()
                .rev()
                .find(|s| s.raft_base <= from)
                .ok_or_else(|| out_of_range(from, first, next))?;
            let position = segment.position_of_raft(from)?;
            let in_segment = segment.next_raft_index().min(to) - from;
            (SegmentView::of(segment, position), in_segment)
        };
        let mut bytes = read_batches(&view, view.start_position, max_bytes)?.bytes;
        let mut kept = 0usize;
        for (count, batch) in BatchIter::new(&bytes).enumerate() {
            if count as u64 == wanted {
                break;
            }
            kept += batch?.size();
        }
        bytes.truncate(kept);
        Ok(bytes)
    }

    /// Removes entry `index` and every later one (a new Raft leader
    /// overwrote them). Removing nothing is not an error; an index before
    /// the first held entry is.
    pub fn truncate_raft_from(&self, index: u64) -> Result<()> {
        let interval = self.config.read().index_interval_bytes;
        let mut state = self.state.write();
        self.ensure_live()?;
        let (first, next) = state.raft_range();
        if index >= next {
            return Ok(());
        }
        if index < first {
            return Err(out_of_range(index, first, next));
        }
        let holding = state
            .segments
            .iter()
            .rev()
            .find(|(_, s)| s.raft_base <= index)
            .map(|(base, _)| *base)
            .expect("index is inside the log");
        self.delete_segments_from(&mut state, holding + 1)?;
        let segment = state.segments.get_mut(&holding).expect("found above");
        let cut = segment.position_of_raft(index)?;
        segment.truncate_to_position(cut, interval)?;
        self.after_truncation(&mut state)?;
        Ok(())
    }

    /// Deletes the segments whose entries all come before `index`, never
    /// the active one, and moves the log start past them. Entries of a
    /// segment that also holds later ones stay (Raft's purge may keep more
    /// than asked). Returns the first index the log still holds.
    pub fn delete_raft_before(&self, index: u64) -> Result<u64> {
        let mut state = self.state.write();
        self.ensure_live()?;
        let doomed = remove_while(&mut state, |segment, _| segment.next_raft_index() <= index);
        if !doomed.is_empty() {
            let first_base = *state
                .segments
                .keys()
                .next()
                .expect("the active segment stays");
            state.log_start_offset = state.log_start_offset.max(first_base);
            let mut checkpoint = state.checkpoint;
            checkpoint.log_start_offset = state.log_start_offset;
            self.write_checkpoint(&mut state, checkpoint)?;
        }
        let (first, _) = state.raft_range();
        drop(state);
        delete_all(doomed)?;
        Ok(first)
    }

    /// Makes `index` the Raft index of the next entry of a log that holds
    /// none (a replica's first entry, or a log restarted at a snapshot's
    /// boundary). Fails if the log holds an entry.
    pub fn reset_raft_index(&self, index: u64) -> Result<()> {
        let mut state = self.state.write();
        self.ensure_live()?;
        if state.segments.len() != 1 || state.active().batch_count != 0 {
            let (first, next) = state.raft_range();
            return Err(StorageError::InvalidRequest(format!(
                "cannot restart the Raft index at {index}: the log holds entries [{first}, {next})"
            )));
        }
        state.active_mut().raft_base = index;
        let checkpoint = state.checkpoint;
        self.write_checkpoint(&mut state, checkpoint)
    }
    /// Drops every entry and restarts the log empty, its next record at
    /// `offset` and its next entry at Raft index `raft_index` (a replica
    /// installing a leader's snapshot whose log does not match its own).
    ///
    /// Crash-safe in three steps: segments at or after `offset` go first
    /// (a crash leaves a shorter log); then the fresh segment is created
    /// and the checkpoint names it as the first Raft segment; then older
    /// segments are unlinked (recovery finishes that deletion if a crash
    /// comes first, as it does after `delete_raft_before`).
    pub fn restart_at(&self, offset: u64, raft_index: u64) -> Result<()> {
        let mut state = self.state.write();
        self.ensure_live()?;
        self.delete_segments_from(&mut state, offset)?;
        let mut fresh = Segment::create(&self.dir, offset, &self.io)?;
        fresh.raft_base = raft_index;
        let older = std::mem::take(&mut state.segments);
        state.segments.insert(offset, fresh);
        state.log_start_offset = offset;
        state.flushed_offset = offset;
        state.active_since_ms = None;
        state.oldest_unflushed_ms = None;
        let checkpoint = Checkpoint {
            recovery_point: offset,
            log_start_offset: offset,
            cleaner_offset: offset,
            ..state.checkpoint
        };
        self.sync_dir()?;
        self.write_checkpoint(&mut state, checkpoint)?;
        drop(state);
        delete_all(older.into_values().collect())
    }
}

fn out_of_range(index: u64, first: u64, next: u64) -> StorageError {
    StorageError::InvalidRequest(format!(
        "Raft index {index} is outside the log's entries [{first}, {next})"
    ))
}
