//! The read path: whole batches from an offset, and offset lookup by time.
//!
//! A read holds the log lock only long enough to pick segments and copy
//! their file handles and sizes; all file I/O happens after. Every batch a
//! read returns has passed its CRC check, so a read never hands out bad
//! bytes, even from a segment corrupted after it was recovered.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::log::PartitionLog;
use super::segment::{corrupt, read_header, Segment};
use crate::{Result, StorageError};
use spool_record::{RecordBatch, HEADER_LEN};

/// The result of [`PartitionLog::read`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRead {
    /// Whole stored batches, exactly as written. Empty at the log end.
    pub bytes: Vec<u8>,
    /// The offset to read next: after the last returned batch, or the
    /// requested offset when nothing was returned.
    pub next_offset: u64,
    pub log_start_offset: u64,
    pub log_end_offset: u64,
}

/// A segment as a read sees it: immutable handle and a size snapshot.
pub(super) struct SegmentView {
    file: Arc<File>,
    path: PathBuf,
    size: u64,
    pub(super) start_position: u64,
    max_timestamp: i64,
}

impl SegmentView {
    pub(super) fn of(segment: &Segment, start_position: u64) -> SegmentView {
        SegmentView {
            file: Arc::clone(&segment.file),
            path: segment.log_path.clone(),
            size: segment.size,
            start_position,
            max_timestamp: segment.max_timestamp,
        }
    }
}

impl PartitionLog {
    /// Reads whole batches starting with the batch that holds `offset`, up to
    /// `max_bytes` (at least one batch is returned even if it is larger, so a
    /// reader always makes progress). A read never spans two segments.
    /// Offsets below the log start or beyond the log end are out of range;
    /// reading at the log end returns nothing.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<LogRead> {
        // The holding segment, and the next one for an offset that compaction
        // left in a gap at the holding segment's end.
        let (views, log_start_offset, log_end_offset) = self.views_from(offset, 2, |segment| {
            let relative = offset
                .saturating_sub(segment.base_offset)
                .min(u64::from(u32::MAX)) as u32;
            u64::from(segment.index.lookup_offset(relative).position)
        })?;
        let mut result = LogRead {
            next_offset: offset,
            log_start_offset,
            log_end_offset,
            ..LogRead::default()
        };
        for view in views {
            let position = Segment::position_of(
                &view.file,
                &view.path,
                view.start_position,
                view.size,
                offset,
            )?;
            if position < view.size {
                let read = read_batches(&view, position, max_bytes)?;
                result.next_offset = read.next_offset.unwrap_or(offset);
                result.bytes = if read.has_raft_meta {
                    without_raft_meta(&read.bytes)
                } else {
                    read.bytes
                };
                break;
            }
        }
        Ok(result)
    }

    /// The offset of the first record whose timestamp is ≥ `timestamp`, or
    /// `None` when every record is older (Kafka's ListOffsets by time).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<u64>> {
        let (views, log_start_offset, _) =
            self.views_from(self.log_start_offset(), usize::MAX, |segment| {
                u64::from(segment.index.lookup_time(timestamp).position)
            })?;
        for view in views.iter().filter(|v| v.max_timestamp >= timestamp) {
            let mut position = view.start_position;
            while position < view.size {
                let header = read_header(&view.file, &view.path, position)?;
                let size = header.size();
                if header.max_timestamp() >= timestamp && header.next_offset() > log_start_offset {
                    let bytes = read_batches(view, position, size)?.bytes;
                    let (batch, _) = RecordBatch::parse(&bytes)?;
                    for record in batch.records()?.iter() {
                        let record = record?;
                        if record.timestamp >= timestamp && record.offset >= log_start_offset {
                            return Ok(Some(record.offset));
                        }
                    }
                }
                position += size as u64;
            }
        }
        Ok(None)
    }

    /// Snapshots the segment holding `offset` and up to `limit - 1` later
    /// ones, with a start position chosen by `start` for the first of them.
    fn views_from(
        &self,
        offset: u64,
        limit: usize,
        start: impl Fn(&Segment) -> u64,
    ) -> Result<(Vec<SegmentView>, u64, u64)> {
        let state = self.state.read();
        let (log_start, log_end) = (state.log_start_offset, state.next_offset());
        if offset < log_start || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let first_base = state
            .segments
            .range(..=offset)
            .next_back()
            .map_or(0, |(base, _)| *base);
        let views = state
            .segments
            .range(first_base..)
            .take(limit)
            .enumerate()
            .map(|(i, (_, segment))| {
                SegmentView::of(segment, if i == 0 { start(segment) } else { 0 })
            })
            .collect();
        Ok((views, log_start, log_end))
    }
}

/// Whole, CRC-checked batches read from a segment, with what the check
/// learned on the way.
pub(super) struct ReadBatches {
    pub(super) bytes: Vec<u8>,
    /// The offset after the last batch, if there is one.
    pub(super) next_offset: Option<u64>,
    pub(super) has_raft_meta: bool,
}

/// Reads whole batches from `position` up to `max_bytes` (at least one) and
/// checks each one's CRC. A bad first batch is an error; a bad later batch
/// ends the read before it.
pub(super) fn read_batches(
    view: &SegmentView,
    position: u64,
    max_bytes: usize,
) -> Result<ReadBatches> {
    let first_size = read_header(&view.file, &view.path, position)?.size() as u64;
    let available = view.size - position;
    let length = first_size
        .max((max_bytes as u64).min(available))
        .min(available);
    if first_size > available {
        return Err(corrupt(
            &view.path,
            position,
            "batch runs past the end of the segment",
        ));
    }
    let mut bytes = vec![0u8; length as usize];
    view.file
        .read_exact_at(&mut bytes, position)
        .map_err(|e| StorageError::io(&view.path, e))?;
    let mut valid = 0usize;
    let (mut next_offset, mut has_raft_meta) = (None, false);
    while bytes.len() - valid >= HEADER_LEN {
        let batch = match RecordBatch::parse(&bytes[valid..]) {
            Ok((batch, _)) => batch,
            Err(_) => break, // a partial batch at the byte limit
        };
        if let Err(e) = batch.validate() {
            if valid == 0 {
                return Err(corrupt(&view.path, position, &e.to_string()));
            }
            break;
        }
        valid += batch.size();
        next_offset = Some(batch.next_offset());
        has_raft_meta |= batch.is_raft_meta();
    }
    bytes.truncate(valid);
    Ok(ReadBatches {
        bytes,
        next_offset,
        has_raft_meta,
    })
}

/// `bytes` (whole, CRC-checked batches) without Raft meta batches, which
/// are not records and never reach a reader.
fn without_raft_meta(bytes: &[u8]) -> Vec<u8> {
    let mut kept = Vec::with_capacity(bytes.len());
    for batch in spool_record::BatchIter::new(bytes).flatten() {
        if !batch.is_raft_meta() {
            kept.extend_from_slice(batch.as_bytes());
        }
    }
    kept
}
