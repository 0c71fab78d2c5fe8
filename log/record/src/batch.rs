//! A borrowed view over one encoded record batch, and its validation.

use super::compression::Compression;
use super::records::Records;
use crate::{RecordError, Result};

/// Bytes before the batch-length field counts: base offset and length.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed batch header, up to the first record.
pub const HEADER_LEN: usize = 61;
/// The only batch format version spool reads and writes.
pub const MAGIC: u8 = 2;

pub(crate) mod field {
    pub const BASE_OFFSET: usize = 0;
    pub const BATCH_LENGTH: usize = 8;
    pub const TERM: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const FIRST_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORD_COUNT: usize = 57;
}

/// The batch attributes word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Attributes(pub u16);

impl Attributes {
    const COMPRESSION_MASK: u16 = 0x07;
    const LOG_APPEND_TIME: u16 = 0x08;
    const TRANSACTIONAL: u16 = 0x10;
    const CONTROL: u16 = 0x20;
    /// spool's own bit (Kafka leaves bits 7-15 unused): a Raft entry that
    /// carries no records (see [`RecordBatch::is_raft_meta`]).
    const RAFT_META: u16 = 0x80;

    pub fn compression_id(self) -> u8 {
        (self.0 & Self::COMPRESSION_MASK) as u8
    }
    pub fn compression(self) -> Result<Compression> {
        Compression::from_id(self.compression_id())
    }
    pub fn is_log_append_time(self) -> bool {
        self.0 & Self::LOG_APPEND_TIME != 0
    }
    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }
    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }
    pub fn is_raft_meta(self) -> bool {
        self.0 & Self::RAFT_META != 0
    }
    pub(crate) fn with_compression(self, c: Compression) -> Self {
        Attributes((self.0 & !Self::COMPRESSION_MASK) | u16::from(c.id()))
    }
    pub(crate) fn with_transactional(self, on: bool) -> Self {
        Attributes(set_bit(self.0, Self::TRANSACTIONAL, on))
    }
    pub(crate) fn with_control(self, on: bool) -> Self {
        Attributes(set_bit(self.0, Self::CONTROL, on))
    }
    pub(crate) fn with_raft_meta(self, on: bool) -> Self {
        Attributes(set_bit(self.0, Self::RAFT_META, on))
    }
}

fn set_bit(word: u16, bit: u16, on: bool) -> u16 {
    if on {
        word | bit
    } else {
        word & !bit
    }
}

/// One encoded batch. Construct with [`RecordBatch::parse`] (framing only) and
/// call [`RecordBatch::validate`] before trusting the contents.
#[derive(Clone, Copy)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
}

impl std::fmt::Debug for RecordBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("last_offset", &self.last_offset())
            .field("size", &self.size())
            .field("record_count", &self.record_count())
            .finish()
    }
}

/// Reads the total size of the batch that starts with `prefix` (at least
/// [`LOG_OVERHEAD`] bytes), or an error when the length field is impossible.
pub fn batch_size(prefix: &[u8]) -> Result<usize> {
    let len = i32::from_be_bytes(
        prefix[field::BATCH_LENGTH..LOG_OVERHEAD]
            .try_into()
            .expect("4 bytes"),
    );
    if len < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(RecordError::InvalidBatch(format!(
            "batch length {len} is below the {} byte minimum",
            HEADER_LEN - LOG_OVERHEAD
        )));
    }
    Ok(LOG_OVERHEAD + len as usize)
}

impl<'a> RecordBatch<'a> {
    /// A view over just a batch header, for reading header fields of a
    /// batch whose records were not read (the log's index rebuild reads
    /// headers alone from its files).
    pub fn header_view(header: &'a [u8; HEADER_LEN]) -> RecordBatch<'a> {
        RecordBatch { bytes: header }
    }

    /// Splits the first batch off `bytes`, checking only that its declared
    /// length fits. Returns the batch and the bytes after it.
    pub fn parse(bytes: &'a [u8]) -> Result<(RecordBatch<'a>, &'a [u8])> {
        if bytes.len() < HEADER_LEN {
            return Err(RecordError::InvalidBatch(format!(
                "{} bytes cannot hold a {HEADER_LEN} byte batch header",
                bytes.len()
            )));
        }
        let size = batch_size(bytes)?;
        if size > bytes.len() {
            return Err(RecordError::InvalidBatch(format!(
                "batch declares {size} bytes but only {} are present",
                bytes.len()
            )));
        }
        let (batch, rest) = bytes.split_at(size);
        Ok((RecordBatch { bytes: batch }, rest))
    }

    /// Checks magic, CRC and header consistency. It does not decode records;
    /// [`RecordBatch::validate_records`] does that.
    pub fn validate(&self) -> Result<()> {
        if self.bytes[field::MAGIC] != MAGIC {
            return Err(RecordError::InvalidBatch(format!(
                "magic byte {} (only v2 batches, magic 2, are supported)",
                self.bytes[field::MAGIC]
            )));
        }
        let computed = crc32c::crc32c(&self.bytes[field::ATTRIBUTES..]);
        if computed != self.crc() {
            return Err(RecordError::InvalidBatch(format!(
                "CRC mismatch: header says {:#010x}, content has {computed:#010x}",
                self.crc()
            )));
        }
        if self.is_raft_meta() {
            return self.validate_raft_meta();
        }
        if self.last_offset_delta() < 0 || self.record_count() < 0 {
            return Err(RecordError::InvalidBatch(
                "negative record count or offset delta".into(),
            ));
        }
        if i64::from(self.record_count()) > i64::from(self.last_offset_delta()) + 1 {
            return Err(RecordError::InvalidBatch(format!(
                "{} records cannot fit in an offset delta of {}",
                self.record_count(),
                self.last_offset_delta()
            )));
        }
        self.attributes().compression()?;
        Ok(())
    }

    /// Decodes every record and checks that the count and offset deltas agree
    /// with the header. Producers' batches must pass this before they are
    /// appended, so consumers never meet a batch they cannot decode.
    pub fn validate_records(&self) -> Result<()> {
        let records = self.records()?;
        let mut seen = 0i32;
        let mut previous_delta = -1i64;
        for record in records.iter() {
            let record = record?;
            // Wrapping, as record offsets are: found by fuzzing, a base
            // offset near i64::MAX overflowed a plain difference.
            let delta = record.offset.wrapping_sub(self.base_offset()) as i64;
            if delta <= previous_delta || delta > i64::from(self.last_offset_delta()) {
                return Err(RecordError::InvalidBatch(format!(
                    "record offset delta {delta} is out of order or beyond the last offset delta {}",
                    self.last_offset_delta()
                )));
            }
            previous_delta = delta;
            seen += 1;
        }
        if seen != self.record_count() {
            return Err(RecordError::InvalidBatch(format!(
                "header counts {} records but the batch holds {seen}",
                self.record_count()
            )));
        }
        Ok(())
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> u64 {
        self.i64_at(field::BASE_OFFSET) as u64
    }
    /// Offset of the last record slot: base offset + last offset delta. A
    /// Raft meta batch has no slot; use [`RecordBatch::next_offset`].
    pub fn last_offset(&self) -> u64 {
        // Saturating: a producer's base offset is any 64 bits until the log
        // stamps it.
        self.base_offset()
            .saturating_add(self.last_offset_delta().max(0) as u64)
    }
    /// The offset after this batch: the base offset itself for a Raft meta
    /// batch, which occupies no offset.
    pub fn next_offset(&self) -> u64 {
        self.base_offset().saturating_add(self.offset_count())
    }
    /// How many offsets the batch occupies (0 for a Raft meta batch).
    pub fn offset_count(&self) -> u64 {
        if self.is_raft_meta() {
            0
        } else {
            self.last_offset_delta().max(0) as u64 + 1
        }
    }
    /// Whether this batch is a Raft entry without records (a blank or a
    /// membership entry). It occupies no offset and is never returned to
    /// consumers.
    pub fn is_raft_meta(&self) -> bool {
        self.attributes().is_raft_meta()
    }
    /// The entry a Raft meta batch carries, where records would be.
    pub fn raft_meta_payload(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }

    fn validate_raft_meta(&self) -> Result<()> {
        let attributes = self.attributes();
        if self.record_count() != 0
            || self.last_offset_delta() != -1
            || attributes.compression_id() != 0
            || attributes.is_control()
            || attributes.is_transactional()
        {
            return Err(RecordError::InvalidBatch(
                "a Raft meta batch must be uncompressed, hold no records, have a last offset \
                 delta of -1 and be neither control nor transactional"
                    .into(),
            ));
        }
        Ok(())
    }
    /// The Raft term of the leader that appended this batch.
    pub fn term(&self) -> u32 {
        self.i32_at(field::TERM) as u32
    }
    pub fn crc(&self) -> u32 {
        self.i32_at(field::CRC) as u32
    }
    pub fn attributes(&self) -> Attributes {
        Attributes(u16::from_be_bytes([
            self.bytes[field::ATTRIBUTES],
            self.bytes[field::ATTRIBUTES + 1],
        ]))
    }
    pub fn last_offset_delta(&self) -> i32 {
        self.i32_at(field::LAST_OFFSET_DELTA)
    }
    pub fn first_timestamp(&self) -> i64 {
        self.i64_at(field::FIRST_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        self.i64_at(field::MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        self.i64_at(field::PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        i16::from_be_bytes([
            self.bytes[field::PRODUCER_EPOCH],
            self.bytes[field::PRODUCER_EPOCH + 1],
        ])
    }
    pub fn base_sequence(&self) -> i32 {
        self.i32_at(field::BASE_SEQUENCE)
    }
    pub fn record_count(&self) -> i32 {
        self.i32_at(field::RECORD_COUNT)
    }

    /// The records, decompressed if needed (none for a Raft meta batch,
    /// whose body is its entry, not records).
    pub fn records(&self) -> Result<Records<'a>> {
        let compression = self.attributes().compression()?;
        let body = if self.is_raft_meta() {
            &[]
        } else {
            &self.bytes[HEADER_LEN..]
        };
        let data = compression.decompress(body)?;
        Ok(Records::new(
            data,
            self.base_offset(),
            self.first_timestamp(),
            self.record_count(),
        ))
    }

    fn i64_at(&self, at: usize) -> i64 {
        i64::from_be_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
    }
    fn i32_at(&self, at: usize) -> i32 {
        i32::from_be_bytes(self.bytes[at..at + 4].try_into().expect("4 bytes"))
    }
}

/// Writes the leader-assigned base offset and Raft term into a batch header.
/// Both lie before the CRC range, so the CRC stays valid.
pub fn stamp(header: &mut [u8], base_offset: u64, term: u32) {
    header[field::BASE_OFFSET..field::BATCH_LENGTH].copy_from_slice(&base_offset.to_be_bytes());
    header[field::TERM..field::MAGIC].copy_from_slice(&term.to_be_bytes());
}

/// Iterates over the batches of a buffer holding zero or more whole batches.
/// Stops with an error at the first batch whose framing does not fit.
pub struct BatchIter<'a> {
    rest: &'a [u8],
}

impl<'a> BatchIter<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BatchIter { rest: bytes }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<RecordBatch<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RecordBatch::parse(self.rest) {
            Ok((batch, rest)) => {
                self.rest = rest;
                Some(Ok(batch))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}
