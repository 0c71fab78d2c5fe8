//! What a partition log holds under its lock: its segments, where it
//! starts, what is synced and checkpointed. Built by recovery, kept by
//! the log.

use std::collections::BTreeMap;

use super::checkpoint::Checkpoint;
use super::segment::Segment;

/// A log's state (see the module's comment).
pub(crate) struct LogState {
    /// Segments by base offset; the last one is the active segment.
    pub segments: BTreeMap<u64, Segment>,
    pub log_start_offset: u64,
    /// The checkpoint as last written to disk.
    pub checkpoint: Checkpoint,
    /// Every batch before this offset is synced to disk.
    pub flushed_offset: u64,
    pub appended_bytes: u64,
    pub flushed_bytes: u64,
    /// `appended_bytes` when the background flusher was last asked to flush.
    pub flush_requested_bytes: u64,
    /// Clock reading at the first append not yet synced.
    pub oldest_unflushed_ms: Option<u64>,
    /// Clock reading when the active segment got its first batch.
    pub active_since_ms: Option<u64>,
}

impl LogState {
    pub fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }
    pub fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }
    pub fn next_offset(&self) -> u64 {
        self.active().next_offset
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }
    /// The Raft indexes the segments hold: `[first, next)`.
    pub fn raft_range(&self) -> (u64, u64) {
        let first = self.segments.values().next().map_or(0, |s| s.raft_base);
        (first, self.active().next_raft_index())
    }
}
