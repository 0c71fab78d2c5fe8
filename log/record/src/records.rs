//! Decoding the records inside a batch.

use std::borrow::Cow;

use super::varint::Reader;
use crate::{RecordError, Result};

/// One record header: a UTF-8 key (not checked here) and an optional value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// One decoded record with absolute offset and timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<Header<'a>>,
}

/// The (decompressed) records section of a batch.
pub struct Records<'a> {
    data: Cow<'a, [u8]>,
    base_offset: u64,
    first_timestamp: i64,
    count: i32,
}

impl<'a> Records<'a> {
    pub(crate) fn new(
        data: Cow<'a, [u8]>,
        base_offset: u64,
        first_timestamp: i64,
        count: i32,
    ) -> Self {
        Records {
            data,
            base_offset,
            first_timestamp,
            count,
        }
    }

    /// Iterates the records. The iterator yields an error (and then stops) on
    /// the first malformed record, and checks that the section holds exactly
    /// the records it should, with no trailing bytes.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            reader: Reader::new(&self.data),
            base_offset: self.base_offset,
            first_timestamp: self.first_timestamp,
            remaining: self.count,
            failed: false,
        }
    }
}

pub struct RecordIter<'a> {
    reader: Reader<'a>,
    base_offset: u64,
    first_timestamp: i64,
    remaining: i32,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    fn decode(&mut self) -> Result<Record<'a>> {
        let length = self.reader.varint()?;
        if length < 0 || length as usize > self.reader.remaining() {
            return Err(RecordError::InvalidBatch(format!(
                "record length {length} does not fit the batch"
            )));
        }
        let start = self.reader.position();
        let _attributes = self.reader.u8()?;
        let timestamp_delta = self.reader.varlong()?;
        let offset_delta = self.reader.varint()?;
        if offset_delta < 0 {
            return Err(RecordError::InvalidBatch(format!(
                "negative offset delta {offset_delta}"
            )));
        }
        let key = self.reader.nullable_bytes()?;
        let value = self.reader.nullable_bytes()?;
        let header_count = self.reader.varint()?;
        if header_count < 0 {
            return Err(RecordError::InvalidBatch(format!(
                "negative header count {header_count}"
            )));
        }
        let mut headers = Vec::with_capacity((header_count as usize).min(64));
        for _ in 0..header_count {
            let key = self
                .reader
                .nullable_bytes()?
                .ok_or_else(|| RecordError::InvalidBatch("null header key".into()))?;
            let value = self.reader.nullable_bytes()?;
            headers.push(Header { key, value });
        }
        if self.reader.position() - start != length as usize {
            return Err(RecordError::InvalidBatch(format!(
                "record declares {length} bytes but its fields use {}",
                self.reader.position() - start
            )));
        }
        Ok(Record {
            // Wrapping: a producer's base offset is any 64 bits until the
            // log stamps its own (Kafka ignores it too), and offset deltas
            // taken from a wrapped offset are still right. Found by
            // fuzzing: a base offset of -1 overflowed a plain sum.
            offset: self.base_offset.wrapping_add(offset_delta as u64),
            timestamp: self.first_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
            headers,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.reader.remaining() != 0 {
                self.failed = true;
                return Some(Err(RecordError::InvalidBatch(format!(
                    "{} bytes follow the last record",
                    self.reader.remaining()
                ))));
            }
            return None;
        }
        self.remaining -= 1;
        let record = self.decode();
        self.failed = record.is_err();
        Some(record)
    }
}
