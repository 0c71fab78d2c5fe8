//! One segment: a `.log` file of whole batches named by its base offset, plus
//! its in-memory indexes. Segments know nothing of the partition around them;
//! [`super::PartitionLog`] decides when to roll, truncate or delete them.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::file_io::FileIo;
use super::index::{OffsetEntry, SegmentIndex};
use crate::IoContext;
use crate::{Result, StorageError};
use spool_record::{batch_size, RecordBatch, HEADER_LEN, LOG_OVERHEAD};

/// What the log learned about a batch while validating it for append.
#[derive(Clone, Copy, Debug)]
pub struct BatchInfo {
    pub size: u64,
    pub base_offset: u64,
    /// The offset after the batch; equal to `base_offset` for a Raft meta
    /// batch, which occupies no offset.
    pub next_offset: u64,
    pub max_timestamp: i64,
}

impl BatchInfo {
    /// Whether the batch holds records (a Raft meta batch does not).
    pub fn has_records(&self) -> bool {
        self.next_offset > self.base_offset
    }
}

/// How strictly a scan checks the batches of a segment, and how densely it
/// indexes them.
#[derive(Clone, Copy, Debug)]
pub struct ScanRules {
    pub index_interval: u64,
    /// Each batch must start exactly where the previous one ended. True for
    /// every segment the cleaner never rewrote (the cleaner may drop whole
    /// batches, leaving offset gaps); it catches a flipped bit in a base
    /// offset, which the CRC does not cover.
    pub contiguous: bool,
}

/// Name of a segment file: the base offset, zero-padded so that a directory
/// listing sorts segments in log order.
pub fn file_name(base_offset: u64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// Parses a file name produced by [`file_name`].
pub fn parse_file_name(name: &str) -> Option<(u64, &str)> {
    let (stem, extension) = name.split_once('.')?;
    if stem.len() != 20 {
        return None;
    }
    Some((stem.parse().ok()?, extension))
}

pub struct Segment {
    pub base_offset: u64,
    pub log_path: PathBuf,
    pub file: Arc<File>,
    /// Through which the file is written, cut and synced.
    io: Arc<dyn FileIo>,
    /// Bytes of whole, valid batches in the file.
    pub size: u64,
    /// The offset after the last batch (the base offset when empty).
    pub next_offset: u64,
    /// Largest batch max-timestamp, `i64::MIN` when empty.
    pub max_timestamp: i64,
    /// Max timestamp of the first batch, which starts the `segment.ms` clock.
    pub first_batch_timestamp: Option<i64>,
    pub index: SegmentIndex,
    bytes_since_index_entry: u64,
    /// Term of the last batch, for the never-decreasing check.
    last_term: u32,
    /// Raft index of the segment's first batch: every batch is one Raft
    /// entry. Not stored in the segment: the log assigns it from the
    /// checkpoint (first segment) or the segment before.
    pub raft_base: u64,
    /// Batches in the segment, so the next entry's Raft index is
    /// `raft_base + batch_count`.
    pub batch_count: u64,
    /// Bytes at the start of the file that a successful sync covered (all
    /// of a file as found on opening: recovery syncs it). What lies past it
    /// is what a failed fsync may have lost.
    pub synced: u64,
}

/// Extension of the marker file saying the cleaner rewrote a segment (so its
/// batches may have offset gaps).
pub const COMPACTED_MARKER: &str = "compacted";

/// How a scan over a segment file ended.
pub struct ScanEnd {
    /// End of the last valid batch.
    pub valid_end: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped: Option<String>,
    /// Size of the file before any cut.
    pub file_size: u64,
    /// True when the segment was opened from its index files rather than by
    /// scanning the whole file.
    pub from_index: bool,
}

impl Segment {
    /// Creates an empty segment, replacing any stale file of that name.
    pub fn create(dir: &Path, base_offset: u64, io: &Arc<dyn FileIo>) -> Result<Segment> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            // Emptied below through the file layer, like every cut, so
            // that a test's disk knows the name holds a new, empty file.
            .truncate(false)
            .open(&log_path)
            .at(&log_path)?;
        io.set_len(&file, &log_path, 0).at(&log_path)?;
        let segment = Segment::empty(base_offset, log_path, file, Arc::clone(io));
        segment.remove_index_files()?;
        Ok(segment)
    }

    fn empty(base_offset: u64, log_path: PathBuf, file: File, io: Arc<dyn FileIo>) -> Segment {
        Segment {
            base_offset,
            log_path,
            file: Arc::new(file),
            io,
            size: 0,
            next_offset: base_offset,
            max_timestamp: i64::MIN,
            first_batch_timestamp: None,
            index: SegmentIndex::default(),
            bytes_since_index_entry: 0,
            last_term: 0,
            raft_base: 0,
            batch_count: 0,
            synced: 0,
        }
    }

    /// Opens an existing segment. A `trusted` segment (wholly before the
    /// recovery point) uses its index files when they are consistent and only
    /// scans the batches after the last index entry; otherwise the whole file
    /// is scanned and validated, and everything after the first invalid batch
    /// is ignored. The returned [`ScanEnd`] says where the valid prefix ends;
    /// the caller cuts the file there with [`Segment::cut_to_valid_end`].
    pub fn open(
        dir: &Path,
        base_offset: u64,
        trusted: bool,
        index_interval: u64,
        io: &Arc<dyn FileIo>,
    ) -> Result<(Segment, ScanEnd)> {
        let contiguous = !dir.join(file_name(base_offset, COMPACTED_MARKER)).exists();
        let rules = ScanRules {
            index_interval,
            contiguous,
        };
        Segment::open_at(
            dir.join(file_name(base_offset, "log")),
            base_offset,
            trusted,
            rules,
            io,
        )
    }

    /// [`Segment::open`] for a log file under any name (the cleaner opens its
    /// `.cleaned` output before renaming it into place).
    pub fn open_at(
        log_path: PathBuf,
        base_offset: u64,
        trusted: bool,
        rules: ScanRules,
        io: &Arc<dyn FileIo>,
    ) -> Result<(Segment, ScanEnd)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .at(&log_path)?;
        let file_size = file.metadata().at(&log_path)?.len();
        let mut segment = Segment::empty(base_offset, log_path, file, Arc::clone(io));
        let loaded = trusted
            .then(|| {
                SegmentIndex::load(&segment.index_path(), &segment.time_index_path(), file_size)
            })
            .flatten();
        let mut scan = match loaded {
            Some(index) => segment.resume_from_index(index, file_size, rules)?,
            None => segment.rebuild(file_size, rules)?,
        };
        scan.file_size = file_size;
        segment.synced = segment.size;
        Ok((segment, scan))
    }

    fn resume_from_index(
        &mut self,
        index: SegmentIndex,
        file_size: u64,
        rules: ScanRules,
    ) -> Result<ScanEnd> {
        let Some(last) = index.offsets.last().copied() else {
            return self.rebuild(file_size, rules);
        };
        let time_before = index
            .times
            .last()
            .map_or(i64::MIN, |t| t.max_timestamp_before);
        self.first_batch_timestamp =
            Some(read_header(&self.file, &self.log_path, 0)?.max_timestamp());
        self.index = index;
        self.max_timestamp = time_before;
        self.size = u64::from(last.position);
        self.next_offset = self.base_offset + u64::from(last.relative_offset);
        self.batch_count = u64::from(last.relative_raft);
        // Positions up to the last entry were validated before the index was
        // written; the batches after it are scanned like an unclean tail, and
        // the entry itself must point at a batch with the right offset.
        let mut expected_first = Some(self.next_offset);
        let file = Arc::clone(&self.file);
        let path = self.log_path.clone();
        scan_file(&file, &path, self.size, file_size, |position, batch| {
            if let Some(expected) = expected_first.take() {
                if batch.base_offset() != expected {
                    return Err(format!(
                        "index points at offset {expected} but finds {}",
                        batch.base_offset()
                    ));
                }
                self.last_term = batch.term();
                self.track(batch, position, false, rules.index_interval);
                return Ok(());
            }
            self.check_order(&batch, rules)?;
            self.track(batch, position, true, rules.index_interval);
            Ok(())
        })
        .and_then(|end| match end.stopped {
            Some(_) if end.valid_end <= u64::from(last.position) => {
                // The index disagrees with the file: distrust it entirely.
                *self = Segment::empty(
                    self.base_offset,
                    self.log_path.clone(),
                    clone_file(&self.file, &self.log_path)?,
                    Arc::clone(&self.io),
                );
                self.rebuild(file_size, rules)
            }
            _ => Ok(ScanEnd {
                from_index: true,
                ..end
            }),
        })
    }

    /// Scans and validates the whole file, rebuilding the indexes.
    fn rebuild(&mut self, file_size: u64, rules: ScanRules) -> Result<ScanEnd> {
        let file = Arc::clone(&self.file);
        let path = self.log_path.clone();
        scan_file(&file, &path, 0, file_size, |position, batch| {
            self.check_order(&batch, rules)?;
            self.track(batch, position, true, rules.index_interval);
            Ok(())
        })
    }

    /// Batches follow each other in offset order (exactly, in a contiguous
    /// segment) and Raft terms never go down.
    fn check_order(&mut self, batch: &RecordBatch<'_>, rules: ScanRules) -> Result<(), String> {
        let base = batch.base_offset();
        if base < self.next_offset || (rules.contiguous && base != self.next_offset) {
            return Err(format!(
                "batch at offset {base} where offset {} was expected",
                self.next_offset
            ));
        }
        if batch.term() < self.last_term {
            return Err(format!(
                "batch term {} after term {}",
                batch.term(),
                self.last_term
            ));
        }
        self.last_term = batch.term();
        Ok(())
    }

    /// Cuts the file after the last valid batch found by [`Segment::open`].
    pub fn cut_to_valid_end(&self) -> Result<()> {
        self.io
            .set_len(&self.file, &self.log_path, self.size)
            .at(&self.log_path)
    }

    /// Records a batch that is already in the file at `position`.
    fn track(
        &mut self,
        batch: RecordBatch<'_>,
        position: u64,
        may_index: bool,
        index_interval: u64,
    ) {
        let info = BatchInfo {
            size: batch.size() as u64,
            base_offset: batch.base_offset(),
            next_offset: batch.next_offset(),
            max_timestamp: batch.max_timestamp(),
        };
        self.note_batch(&info, position, may_index, index_interval);
    }

    fn note_batch(
        &mut self,
        batch: &BatchInfo,
        position: u64,
        may_index: bool,
        index_interval: u64,
    ) {
        if may_index && (position == 0 || self.bytes_since_index_entry >= index_interval) {
            let entry = OffsetEntry {
                relative_offset: (batch.base_offset - self.base_offset) as u32,
                position: position as u32,
                relative_raft: self.batch_count as u32,
            };
            self.index.push(entry, self.max_timestamp);
            self.bytes_since_index_entry = 0;
        }
        self.batch_count += 1;
        self.bytes_since_index_entry += batch.size;
        // A Raft meta batch has no timestamp of its own to count.
        if batch.has_records() {
            self.first_batch_timestamp
                .get_or_insert(batch.max_timestamp);
            self.max_timestamp = self.max_timestamp.max(batch.max_timestamp);
        }
        self.next_offset = batch.next_offset;
        self.size = position + batch.size;
    }

    /// Appends already-stamped, validated batches described by `batches`.
    pub fn append(
        &mut self,
        bytes: &[u8],
        batches: &[BatchInfo],
        index_interval: u64,
    ) -> Result<()> {
        self.io
            .write_at(&self.file, &self.log_path, bytes, self.size)
            .at(&self.log_path)?;
        let mut position = self.size;
        for batch in batches {
            self.note_batch(batch, position, true, index_interval);
            position += batch.size;
        }
        Ok(())
    }

    /// Cuts the segment at `position`, a batch boundary, and recomputes its
    /// end offset and max timestamp from the remaining batches.
    pub fn truncate_to_position(&mut self, position: u64, index_interval: u64) -> Result<()> {
        let contiguous = !self.compacted_marker_path().exists();
        self.io
            .set_len(&self.file, &self.log_path, position)
            .at(&self.log_path)?;
        self.remove_index_files()?;
        let file = clone_file(&self.file, &self.log_path)?;
        let (base, raft_base) = (self.base_offset, self.raft_base);
        let synced = self.synced.min(position);
        let io = Arc::clone(&self.io);
        *self = Segment::empty(base, self.log_path.clone(), file, io);
        (self.raft_base, self.synced) = (raft_base, synced);
        let end = self.rebuild(
            position,
            ScanRules {
                index_interval,
                contiguous,
            },
        )?;
        match end.stopped {
            None => Ok(()),
            Some(reason) => Err(StorageError::CorruptBatch {
                file: self.log_path.clone(),
                position: end.valid_end,
                reason,
            }),
        }
    }

    /// Position of the first batch that holds an offset ≥ `offset` (so never
    /// a Raft meta batch), or the segment size when there is none. Needs no lock: it reads the file
    /// below `end` only.
    pub fn position_of(file: &File, path: &Path, start: u64, end: u64, offset: u64) -> Result<u64> {
        let mut position = start;
        while position < end {
            let header = read_header(file, path, position)?;
            if header.next_offset() > offset {
                return Ok(position);
            }
            position += header.size() as u64;
        }
        Ok(end)
    }

    /// Raft index the segment's next batch gets.
    pub fn next_raft_index(&self) -> u64 {
        self.raft_base + self.batch_count
    }

    /// Position of the batch that is Raft entry `index` (which the segment
    /// must hold), found from the nearest index entry by stepping over
    /// headers. Needs no lock past reading `self`: it reads the file below
    /// `self.size` only.
    pub fn position_of_raft(&self, index: u64) -> Result<u64> {
        let relative = index - self.raft_base;
        let entry = self.index.lookup_raft(relative as u32);
        let mut position = u64::from(entry.position);
        for _ in u64::from(entry.relative_raft)..relative {
            position += read_header(&self.file, &self.log_path, position)?.size() as u64;
        }
        Ok(position)
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn index_path(&self) -> PathBuf {
        self.log_path.with_extension("index")
    }

    pub fn time_index_path(&self) -> PathBuf {
        self.log_path.with_extension("timeindex")
    }

    pub fn compacted_marker_path(&self) -> PathBuf {
        self.log_path.with_extension(COMPACTED_MARKER)
    }

    pub fn save_index(&self) -> Result<()> {
        self.index.save(&self.index_path(), &self.time_index_path())
    }

    /// Syncs the log file and, when they exist, the index files.
    pub fn sync(&self) -> Result<()> {
        self.io
            .sync(&self.file, &self.log_path)
            .at(&self.log_path)?;
        sync_index_files(self.io.as_ref(), &self.log_path)
    }

    pub fn remove_index_files(&self) -> Result<()> {
        remove_if_present(&[self.index_path(), self.time_index_path()])
    }

    /// Deletes the segment's files. Readers that still hold the file handle
    /// keep reading the unlinked file until they drop it.
    pub fn delete_files(&self) -> Result<()> {
        remove_if_present(&[
            self.index_path(),
            self.time_index_path(),
            self.log_path.clone(),
            self.compacted_marker_path(),
        ])
    }
}

/// Syncs the index files of the segment whose log file is `log_path`, those
/// that exist (an active segment's are written only when it rolls).
pub fn sync_index_files(io: &dyn FileIo, log_path: &Path) -> Result<()> {
    for path in [
        log_path.with_extension("index"),
        log_path.with_extension("timeindex"),
    ] {
        if let Ok(f) = File::open(&path) {
            io.sync(&f, &path).at(&path)?;
        }
    }
    Ok(())
}

fn remove_if_present(paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StorageError::io(path, e))
            }
            _ => {}
        }
    }
    Ok(())
}

fn clone_file(file: &File, path: &Path) -> Result<File> {
    file.try_clone().at(path)
}

/// A batch header read from a file. Holds the first [`HEADER_LEN`] bytes.
pub struct HeaderBytes([u8; HEADER_LEN]);

impl HeaderBytes {
    fn view(&self) -> RecordBatch<'_> {
        RecordBatch::header_view(&self.0)
    }
    pub fn size(&self) -> usize {
        batch_size(&self.0[..LOG_OVERHEAD]).unwrap_or(HEADER_LEN)
    }
    pub fn next_offset(&self) -> u64 {
        self.view().next_offset()
    }
    pub fn max_timestamp(&self) -> i64 {
        self.view().max_timestamp()
    }
}

/// Reads the header of the batch at `position`, checking its framing.
pub fn read_header(file: &File, path: &Path, position: u64) -> Result<HeaderBytes> {
    let mut header = [0u8; HEADER_LEN];
    file.read_exact_at(&mut header, position)
        .map_err(|e| corrupt(path, position, &format!("short header: {e}")))?;
    batch_size(&header[..LOG_OVERHEAD]).map_err(|e| corrupt(path, position, &e.to_string()))?;
    Ok(HeaderBytes(header))
}

pub fn corrupt(path: &Path, position: u64, reason: &str) -> StorageError {
    StorageError::CorruptBatch {
        file: path.to_path_buf(),
        position,
        reason: reason.to_string(),
    }
}

/// Reads `[start, end)` of a segment file in large chunks, validates every
/// batch (framing, magic, CRC) and calls `visit` for each valid one. Stops at
/// the first invalid or torn batch, or when `visit` rejects one, and reports
/// where the valid prefix ends.
pub fn scan_file(
    file: &File,
    path: &Path,
    start: u64,
    end: u64,
    mut visit: impl FnMut(u64, RecordBatch<'_>) -> Result<(), String>,
) -> Result<ScanEnd> {
    const CHUNK: usize = 4 << 20;
    let mut buffer: Vec<u8> = Vec::new();
    let mut buffer_start = start;
    let mut position = start;
    while position < end {
        let in_buffer = (position - buffer_start) as usize;
        let available = buffer.len() - in_buffer;
        let needed = if available >= LOG_OVERHEAD {
            match batch_size(&buffer[in_buffer..in_buffer + LOG_OVERHEAD]) {
                Ok(size) => size,
                Err(e) => return Ok(stopped(position, e.to_string())),
            }
        } else {
            LOG_OVERHEAD
        };
        if position + needed as u64 > end {
            return Ok(stopped(
                position,
                format!(
                    "torn batch: {needed} bytes declared, {} on disk",
                    end - position
                ),
            ));
        }
        if available < needed {
            let length = (end - position).min(CHUNK.max(needed) as u64) as usize;
            buffer.resize(length, 0);
            file.read_exact_at(&mut buffer, position).at(path)?;
            buffer_start = position;
            continue;
        }
        let batch = match RecordBatch::parse(&buffer[in_buffer..]) {
            Ok((batch, _)) => batch,
            Err(e) => return Ok(stopped(position, e.to_string())),
        };
        if let Err(e) = batch.validate() {
            return Ok(stopped(position, e.to_string()));
        }
        if let Err(reason) = visit(position, batch) {
            return Ok(stopped(position, reason));
        }
        position += needed as u64;
    }
    Ok(ScanEnd {
        valid_end: position,
        stopped: None,
        file_size: end,
        from_index: false,
    })
}

fn stopped(position: u64, reason: String) -> ScanEnd {
    ScanEnd {
        valid_end: position,
        stopped: Some(reason),
        file_size: 0,
        from_index: false,
    }
}
