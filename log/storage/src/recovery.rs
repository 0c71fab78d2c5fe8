//! Opening a partition directory after a clean shutdown or a crash.
//!
//! The checkpoint's recovery point splits the log in two. Segments that end
//! at or before it were synced with their indexes, so they are opened from
//! their index files (a missing or inconsistent index is rebuilt by a scan).
//! Every later segment may hold a torn or corrupt tail: it is scanned batch by
//! batch, each batch's framing, magic and CRC checked, and the file is cut at
//! the first bad batch. Everything after a cut is dropped, so exactly the
//! valid prefix of the log remains. Leftovers of interrupted operations
//! (`*.cleaned`, `*.tmp`, index files without a log) are deleted first.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::checkpoint::Checkpoint;
use super::file_io::FileIo;
use super::log_state::LogState;
use super::segment::{file_name, parse_file_name, Segment, COMPACTED_MARKER};
use crate::config::LogConfig;
use crate::IoContext;
use crate::{Result, StorageError};

/// What recovery did when the log was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments validated batch by batch (not trusted from their index).
    pub segments_scanned: usize,
    /// Bytes cut from the end of a segment because they were torn or corrupt.
    pub bytes_truncated: u64,
    /// Whole segments deleted because they followed a cut.
    pub segments_dropped: usize,
    /// Why the first cut was made, with the file and position.
    pub reason: Option<String>,
}

impl RecoveryReport {
    /// True when recovery dropped any data.
    pub fn dropped_data(&self) -> bool {
        self.bytes_truncated > 0 || self.segments_dropped > 0
    }
}

pub(crate) fn recover(
    dir: &Path,
    config: &LogConfig,
    io: &Arc<dyn FileIo>,
) -> Result<(LogState, RecoveryReport)> {
    fs::create_dir_all(dir).at(dir)?;
    let bases = list_segments(dir)?;
    let checkpoint = Checkpoint::read(dir).unwrap_or_else(|e| {
        tracing::warn!(dir = %dir.display(), error = %e, "ignoring unreadable checkpoint; validating every segment");
        Checkpoint::default()
    });
    let mut report = RecoveryReport::default();
    let mut segments = BTreeMap::new();
    let interval = config.index_interval_bytes;
    // Segments before the checkpoint's first Raft segment were being deleted
    // when the process stopped: finish the deletion.
    let (leftovers, bases): (Vec<u64>, Vec<u64>) = bases
        .into_iter()
        .partition(|&base| base < checkpoint.first_raft_segment);
    for base in leftovers {
        delete_segment_files(dir, base)?;
    }
    for (i, &base) in bases.iter().enumerate() {
        if report.reason.is_none() {
            report.reason = gap_before(&segments, base);
        }
        if report.reason.is_some() {
            report.segments_dropped += 1;
            report.bytes_truncated += delete_segment_files(dir, base)?;
            continue;
        }
        let ends_before_checkpoint = bases
            .get(i + 1)
            .is_some_and(|&next| next <= checkpoint.recovery_point);
        let mut opened = Segment::open(dir, base, true, interval, io)?;
        let trusted = ends_before_checkpoint || opened.0.next_offset <= checkpoint.recovery_point;
        if opened.1.from_index && (!trusted || opened.1.stopped.is_some()) {
            opened = Segment::open(dir, base, false, interval, io)?;
        }
        let (segment, scan) = opened;
        if !scan.from_index {
            report.segments_scanned += 1;
        }
        if let Some(reason) = scan.stopped {
            report.bytes_truncated += scan.file_size - scan.valid_end;
            segment.cut_to_valid_end()?;
            report.reason = Some(format!(
                "{} at byte {}: {reason}",
                segment.log_path.display(),
                scan.valid_end
            ));
            segment.remove_index_files()?;
        }
        segments.insert(base, segment);
    }
    if report.dropped_data() || report.reason.is_some() {
        tracing::warn!(
            dir = %dir.display(),
            bytes_truncated = report.bytes_truncated,
            segments_dropped = report.segments_dropped,
            reason = report.reason.as_deref().unwrap_or(""),
            "recovery cut the log back to its last valid batch"
        );
    }
    finish(dir, segments, checkpoint, report, io)
}

/// Gives each segment its first Raft index: the checkpoint's for the
/// first segment, and for every later one the index after the segment
/// before it (every batch is one entry).
pub(crate) fn assign_raft_indexes(segments: &mut BTreeMap<u64, Segment>, first: u64) {
    let mut next = first;
    for segment in segments.values_mut() {
        segment.raft_base = next;
        next = segment.next_raft_index();
    }
}

/// The other half of [`assign_raft_indexes`]: records in the checkpoint
/// where numbering starts (the first segment and its first Raft index).
pub(crate) fn anchor_raft_indexes(checkpoint: &mut Checkpoint, segments: &BTreeMap<u64, Segment>) {
    let first = segments.values().next();
    checkpoint.first_raft_index = first.map_or(0, |s| s.raft_base);
    checkpoint.first_raft_segment = first.map_or(0, |s| s.base_offset);
}

fn finish(
    dir: &Path,
    mut segments: BTreeMap<u64, Segment>,
    mut checkpoint: Checkpoint,
    report: RecoveryReport,
    io: &Arc<dyn FileIo>,
) -> Result<(LogState, RecoveryReport)> {
    if segments.is_empty() {
        let segment = Segment::create(dir, checkpoint.log_start_offset, io)?;
        segments.insert(segment.base_offset, segment);
    }
    assign_raft_indexes(&mut segments, checkpoint.first_raft_index);
    let first_base = *segments.keys().next().expect("at least one segment");
    let next_offset = segments
        .values()
        .next_back()
        .expect("at least one segment")
        .next_offset;
    let log_start_offset = checkpoint.log_start_offset.max(first_base).min(next_offset);
    // Everything recovered is made durable and indexed, so the recovery
    // point can move to the active segment and the next open is quick.
    for segment in segments.values() {
        segment.sync()?;
    }
    let active_base = *segments.keys().next_back().expect("at least one segment");
    for segment in segments.values().filter(|s| s.base_offset != active_base) {
        segment.save_index()?;
        segment.sync()?;
    }
    checkpoint.log_start_offset = log_start_offset;
    checkpoint.recovery_point = checkpoint
        .recovery_point
        .min(next_offset)
        .max(active_base.min(next_offset));
    checkpoint.cleaner_offset = checkpoint
        .cleaner_offset
        .clamp(log_start_offset, next_offset);
    anchor_raft_indexes(&mut checkpoint, &segments);
    checkpoint.write(dir)?;
    let state = LogState {
        segments,
        log_start_offset,
        checkpoint,
        flushed_offset: next_offset,
        appended_bytes: 0,
        flushed_bytes: 0,
        flush_requested_bytes: 0,
        oldest_unflushed_ms: None,
        active_since_ms: None,
    };
    Ok((state, report))
}

/// Why the segment starting at `base` cannot follow the ones before it, if
/// it cannot. Segments are contiguous (a roll starts the next one at the
/// active one's end, and cleaning empties batches but never drops them),
/// so a gap means the end of the segment before never reached the disk: a
/// power cut after a roll can leave the new segment's file while the old
/// one loses its unsynced tail. Counting on from `base` would give the next
/// append an offset past a hole, and a replica would number its records
/// differently from its group's other replicas.
fn gap_before(segments: &BTreeMap<u64, Segment>, base: u64) -> Option<String> {
    let previous = segments.values().next_back()?;
    (previous.next_offset != base).then(|| {
        format!(
            "{} ends at offset {} but the next segment starts at {base}: its end never reached the disk",
            previous.log_path.display(),
            previous.next_offset
        )
    })
}

/// Deletes a segment's files without reading them; returns the log's size.
fn delete_segment_files(dir: &Path, base: u64) -> Result<u64> {
    let log_path = dir.join(file_name(base, "log"));
    let size = fs::metadata(&log_path).at(&log_path)?.len();
    for extension in ["index", "timeindex", "log", COMPACTED_MARKER] {
        let path = dir.join(file_name(base, extension));
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StorageError::io(&path, e))
            }
            _ => {}
        }
    }
    Ok(size)
}

/// Base offsets of the `.log` files in `dir`, after deleting leftovers of
/// interrupted writes.
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.ends_with(".cleaned") || name.ends_with(".tmp") {
            fs::remove_file(&path).at(&path)?;
            continue;
        }
        match parse_file_name(&name) {
            Some((base, "log")) => logs.push(base),
            Some((base, "index" | "timeindex" | COMPACTED_MARKER)) => indexes.push((base, path)),
            _ => {}
        }
    }
    for (base, path) in indexes {
        if !logs.contains(&base) {
            fs::remove_file(&path).at(&path)?;
        }
    }
    logs.sort_unstable();
    Ok(logs)
}
