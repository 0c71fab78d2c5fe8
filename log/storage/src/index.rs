//! The sparse offset index and time index of one segment.
//!
//! Both are kept in memory while the segment is open and written to disk
//! (`<base>.index`, `<base>.timeindex`) when the segment is rolled or the log
//! is closed. They are derived data: recovery rebuilds them from the `.log`
//! file whenever they are missing or fail validation, so they are never
//! trusted over the log itself.
//!
//! Entries are taken at the same batches (the first batch of the segment and
//! then one batch per `index.interval.bytes`):
//! - offset index entry: (base offset of the batch − segment base, position,
//!   Raft index of the batch − the segment's first Raft index), 12 bytes
//!   big-endian. Every batch is one Raft entry, so the third column finds
//!   an entry as the first finds an offset;
//! - time index entry: (largest timestamp of every batch *before* this one,
//!   offset of this batch − segment base), 12 bytes. Every record before the
//!   entry's batch has a timestamp ≤ the entry's timestamp, so a search for
//!   timestamp `t` may start at the last entry whose timestamp is below `t`.

use std::fs;
use std::path::Path;

use crate::IoContext;
use crate::Result;

/// Bytes of one offset index entry on disk.
const OFFSET_ENTRY_LEN: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
    /// Batches before this one in the segment.
    pub relative_raft: u32,
}

impl OffsetEntry {
    const START: OffsetEntry = OffsetEntry {
        relative_offset: 0,
        position: 0,
        relative_raft: 0,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub max_timestamp_before: i64,
    pub relative_offset: u32,
}

/// The in-memory indexes of one segment.
#[derive(Clone, Debug, Default)]
pub struct SegmentIndex {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
}

impl SegmentIndex {
    pub fn push(&mut self, entry: OffsetEntry, max_timestamp_before: i64) {
        let relative_offset = entry.relative_offset;
        self.offsets.push(entry);
        self.times.push(TimeEntry {
            max_timestamp_before,
            relative_offset,
        });
    }

    /// The last entry at or before `relative_offset` (the scan for that offset
    /// starts there), or the segment start.
    pub fn lookup_offset(&self, relative_offset: u32) -> OffsetEntry {
        let i = self
            .offsets
            .partition_point(|e| e.relative_offset <= relative_offset);
        match i {
            0 => OffsetEntry::START,
            i => self.offsets[i - 1],
        }
    }

    /// The last entry at or before the batch that is Raft entry
    /// `relative_raft` of the segment (the scan for it starts there).
    pub fn lookup_raft(&self, relative_raft: u32) -> OffsetEntry {
        let i = self
            .offsets
            .partition_point(|e| e.relative_raft <= relative_raft);
        match i {
            0 => OffsetEntry::START,
            i => self.offsets[i - 1],
        }
    }

    /// Where a search for the first record with a timestamp ≥ `timestamp` may
    /// start: the last entry whose preceding batches are all older.
    pub fn lookup_time(&self, timestamp: i64) -> OffsetEntry {
        let i = self
            .times
            .partition_point(|e| e.max_timestamp_before < timestamp);
        match i {
            0 => OffsetEntry::START,
            i => self.offsets[i - 1],
        }
    }

    /// Writes both index files (via a temporary name and a rename, so a crash
    /// leaves either the old file or the new one). Not synced: the caller
    /// syncs them with the segment before advancing the recovery point.
    pub fn save(&self, offset_path: &Path, time_path: &Path) -> Result<()> {
        let mut offsets = Vec::with_capacity(self.offsets.len() * OFFSET_ENTRY_LEN);
        for e in &self.offsets {
            offsets.extend_from_slice(&e.relative_offset.to_be_bytes());
            offsets.extend_from_slice(&e.position.to_be_bytes());
            offsets.extend_from_slice(&e.relative_raft.to_be_bytes());
        }
        let mut times = Vec::with_capacity(self.times.len() * 12);
        for e in &self.times {
            times.extend_from_slice(&e.max_timestamp_before.to_be_bytes());
            times.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        write_replace(offset_path, &offsets)?;
        write_replace(time_path, &times)
    }

    /// Loads both files and checks them against the segment's size. Returns
    /// `None` when either is missing or inconsistent; the caller rebuilds.
    pub fn load(offset_path: &Path, time_path: &Path, segment_size: u64) -> Option<SegmentIndex> {
        let offsets = fs::read(offset_path).ok()?;
        let times = fs::read(time_path).ok()?;
        let entries = offsets.len() / OFFSET_ENTRY_LEN;
        if offsets.len() % OFFSET_ENTRY_LEN != 0
            || times.len() % 12 != 0
            || entries != times.len() / 12
        {
            return None;
        }
        let mut index = SegmentIndex::default();
        let u32_at = |bytes: &[u8], at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
        };
        for (o, t) in offsets
            .chunks_exact(OFFSET_ENTRY_LEN)
            .zip(times.chunks_exact(12))
        {
            let relative_offset = u32_at(o, 0)?;
            let entry = OffsetEntry {
                relative_offset,
                position: u32_at(o, 4)?,
                relative_raft: u32_at(o, 8)?,
            };
            let max_timestamp_before = i64::from_be_bytes(t[0..8].try_into().ok()?);
            let time_offset = u32_at(t, 8)?;
            index.push(entry, max_timestamp_before);
            if time_offset != relative_offset {
                return None;
            }
        }
        index.is_consistent(segment_size).then_some(index)
    }

    /// Entries strictly increase in position and Raft index and never go
    /// down in offset (a Raft meta batch shares its offset with the next
    /// batch), timestamps never go down, the first entry is the segment
    /// start, and every position lies inside the segment.
    fn is_consistent(&self, segment_size: u64) -> bool {
        let first_ok = self
            .offsets
            .first()
            .is_none_or(|e| e.position == 0 && e.relative_raft == 0);
        let ordered = self.offsets.windows(2).all(|w| {
            w[0].relative_offset <= w[1].relative_offset
                && w[0].position < w[1].position
                && w[0].relative_raft < w[1].relative_raft
        }) && self
            .times
            .windows(2)
            .all(|w| w[0].max_timestamp_before <= w[1].max_timestamp_before);
        let inside = self
            .offsets
            .last()
            .is_none_or(|e| u64::from(e.position) < segment_size);
        first_ok && ordered && inside && (segment_size == 0 || !self.offsets.is_empty())
    }
}

fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    fs::write(&tmp, bytes).at(&tmp)?;
    fs::rename(&tmp, path).at(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(relative_offset: u32, position: u32, relative_raft: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset,
            position,
            relative_raft,
        }
    }

    fn sample() -> SegmentIndex {
        let mut index = SegmentIndex::default();
        index.push(entry(0, 0, 0), i64::MIN);
        index.push(entry(10, 4096, 3), 100);
        index.push(entry(20, 8192, 7), 250);
        index
    }

    #[test]
    fn lookups_find_the_floor_entry() {
        let index = sample();
        assert_eq!(index.lookup_offset(0).position, 0);
        assert_eq!(index.lookup_offset(9).position, 0);
        assert_eq!(index.lookup_offset(10).position, 4096);
        assert_eq!(index.lookup_offset(1000).position, 8192);
        assert_eq!(index.lookup_time(50).position, 0);
        assert_eq!(index.lookup_time(101).position, 4096);
        assert_eq!(index.lookup_time(250).position, 4096);
        assert_eq!(index.lookup_time(251).position, 8192);
        assert_eq!(index.lookup_raft(2).position, 0);
        assert_eq!(index.lookup_raft(3).position, 4096);
        assert_eq!(index.lookup_raft(100).position, 8192);
    }

    #[test]
    fn save_load_and_reject_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (o, t) = (dir.path().join("0.index"), dir.path().join("0.timeindex"));
        let index = sample();
        index.save(&o, &t).unwrap();
        let loaded = SegmentIndex::load(&o, &t, 10_000).unwrap();
        assert_eq!(loaded.offsets, index.offsets);
        assert_eq!(loaded.times, index.times);
        assert!(
            SegmentIndex::load(&o, &t, 8000).is_none(),
            "position past the end"
        );
        let mut bytes = fs::read(&o).unwrap();
        bytes.truncate(13);
        fs::write(&o, &bytes).unwrap();
        assert!(SegmentIndex::load(&o, &t, 10_000).is_none(), "torn file");
        fs::remove_file(&o).unwrap();
        assert!(SegmentIndex::load(&o, &t, 10_000).is_none(), "missing file");
    }
}
