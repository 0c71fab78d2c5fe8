//! Encoding record batches. Producers build a batch once; nothing downstream
//! re-encodes it (the compaction cleaner is the one exception: it writes new,
//! smaller batches that keep the original offsets).

use super::batch::{field, Attributes, HEADER_LEN, MAGIC};
use super::compression::Compression;
use super::records::Header;
use super::varint::{put_varint, put_varlong, varlong_len};

/// Accumulates records and encodes them into one v2 batch.
///
/// ```
/// use spool_record::{BatchBuilder, Compression, RecordBatch};
/// let mut builder = BatchBuilder::new(Compression::None);
/// builder.push(1_700_000_000_000, Some(b"key"), Some(b"value"), &[]);
/// let bytes = builder.build();
/// let (batch, _) = RecordBatch::parse(&bytes).unwrap();
/// batch.validate().unwrap();
/// assert_eq!(batch.record_count(), 1);
/// ```
pub struct BatchBuilder {
    compression: Compression,
    attributes: Attributes,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: Vec<u8>,
    count: i32,
    first_timestamp: Option<i64>,
    max_timestamp: i64,
    last_offset_delta: i32,
}

impl BatchBuilder {
    pub fn new(compression: Compression) -> Self {
        BatchBuilder::with_capacity(compression, 0)
    }

    /// A builder whose records buffer holds `bytes` without growing, for
    /// producers that know their batch size.
    pub fn with_capacity(compression: Compression, bytes: usize) -> Self {
        BatchBuilder {
            compression,
            attributes: Attributes::default().with_compression(compression),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: Vec::with_capacity(bytes),
            count: 0,
            first_timestamp: None,
            max_timestamp: -1,
            last_offset_delta: -1,
        }
    }

    /// Marks the batch as written by an idempotent producer.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, on: bool) -> Self {
        self.attributes = self.attributes.with_transactional(on);
        self
    }

    pub fn control(mut self, on: bool) -> Self {
        self.attributes = self.attributes.with_control(on);
        self
    }

    /// A Raft meta batch carrying `entry` (a blank or membership entry): no
    /// records, no offsets (see `RecordBatch::is_raft_meta`).
    pub fn raft_meta(entry: &[u8]) -> Self {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.attributes = builder.attributes.with_raft_meta(true);
        builder.records = entry.to_vec();
        builder
    }

    /// Appends a record at the next offset.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) {
        let delta = self.last_offset_delta + 1;
        self.push_at(delta, timestamp, key, value, headers);
    }

    /// Appends a record at a chosen offset delta, which must exceed every
    /// delta pushed before. The cleaner uses this to keep original offsets.
    pub fn push_at(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) {
        assert!(
            !self.attributes.is_raft_meta(),
            "a Raft meta batch holds no records"
        );
        assert!(
            offset_delta > self.last_offset_delta,
            "offset deltas must increase"
        );
        let first_timestamp = *self.first_timestamp.get_or_insert(timestamp);
        let timestamp_delta = timestamp.wrapping_sub(first_timestamp);
        let body_len = 1
            + varlong_len(timestamp_delta)
            + varlong_len(offset_delta.into())
            + bytes_len(key)
            + bytes_len(value)
            + varlong_len(headers.len() as i64)
            + headers
                .iter()
                .map(|h| bytes_len(Some(h.key)) + bytes_len(h.value))
                .sum::<usize>();
        put_varint(&mut self.records, body_len as i32);
        self.records.push(0);
        put_varlong(&mut self.records, timestamp_delta);
        put_varint(&mut self.records, offset_delta);
        put_bytes(&mut self.records, key);
        put_bytes(&mut self.records, value);
        put_varint(&mut self.records, headers.len() as i32);
        for header in headers {
            put_bytes(&mut self.records, Some(header.key));
            put_bytes(&mut self.records, header.value);
        }
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.last_offset_delta = offset_delta;
    }

    /// Widens the batch's offset range past its last record, so that a
    /// compacted batch still covers the offsets of the batch it replaces.
    pub fn extend_last_offset_delta(&mut self, last_offset_delta: i32) {
        self.last_offset_delta = self.last_offset_delta.max(last_offset_delta);
    }

    pub fn record_count(&self) -> i32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Uncompressed size the batch would have if built now.
    pub fn estimated_size(&self) -> usize {
        HEADER_LEN + self.records.len()
    }

    /// Encodes the batch with base offset 0 and term 0; the log stamps both.
    pub fn build(self) -> Vec<u8> {
        let meta = self.attributes.is_raft_meta();
        let last_offset_delta = if meta {
            -1
        } else {
            self.last_offset_delta.max(0)
        };
        let body = match self.compression {
            Compression::None => self.records,
            other => other.compress(&self.records),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.resize(HEADER_LEN, 0);
        out.extend_from_slice(&body);
        let batch_length = (out.len() - field::TERM) as i32;
        let first_timestamp = self.first_timestamp.unwrap_or(-1);
        out[field::BATCH_LENGTH..field::TERM].copy_from_slice(&batch_length.to_be_bytes());
        out[field::MAGIC] = MAGIC;
        out[field::ATTRIBUTES..field::LAST_OFFSET_DELTA]
            .copy_from_slice(&self.attributes.0.to_be_bytes());
        out[field::LAST_OFFSET_DELTA..field::FIRST_TIMESTAMP]
            .copy_from_slice(&last_offset_delta.to_be_bytes());
        out[field::FIRST_TIMESTAMP..field::MAX_TIMESTAMP]
            .copy_from_slice(&first_timestamp.to_be_bytes());
        out[field::MAX_TIMESTAMP..field::PRODUCER_ID]
            .copy_from_slice(&self.max_timestamp.to_be_bytes());
        out[field::PRODUCER_ID..field::PRODUCER_EPOCH]
            .copy_from_slice(&self.producer_id.to_be_bytes());
        out[field::PRODUCER_EPOCH..field::BASE_SEQUENCE]
            .copy_from_slice(&self.producer_epoch.to_be_bytes());
        out[field::BASE_SEQUENCE..field::RECORD_COUNT]
            .copy_from_slice(&self.base_sequence.to_be_bytes());
        out[field::RECORD_COUNT..HEADER_LEN].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&out[field::ATTRIBUTES..]);
        out[field::CRC..field::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

fn bytes_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => 1,
        Some(b) => varlong_len(b.len() as i64) + b.len(),
    }
}

fn put_bytes(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{batch, RecordBatch};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct TestRecord {
        timestamp: i64,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    }

    fn record_strategy() -> impl Strategy<Value = TestRecord> {
        let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64));
        (
            0i64..4_000_000_000_000,
            bytes(),
            bytes(),
            proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..8), bytes()),
                0..3,
            ),
        )
            .prop_map(|(timestamp, key, value, headers)| TestRecord {
                timestamp,
                key,
                value,
                headers,
            })
    }

    fn compression_strategy() -> impl Strategy<Value = Compression> {
        prop_oneof![
            Just(Compression::None),
            Just(Compression::Gzip),
            Just(Compression::Snappy),
            Just(Compression::Lz4),
            Just(Compression::Zstd)
        ]
    }

    proptest! {
        #[test]
        fn batches_round_trip(
            records in proptest::collection::vec(record_strategy(), 1..20),
            compression in compression_strategy(),
            producer_id in -1i64..1000,
            epoch in -1i16..10,
            sequence in -1i32..1000,
            transactional in any::<bool>(),
            base_offset in 0u64..1 << 40,
            term in any::<u32>(),
        ) {
            let mut builder = BatchBuilder::new(compression)
                .producer(producer_id, epoch, sequence)
                .transactional(transactional);
            for r in &records {
                let headers: Vec<Header> = r.headers.iter()
                    .map(|(k, v)| Header { key: k, value: v.as_deref() }).collect();
                builder.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
            }
            let mut bytes = builder.build();
            batch::stamp(&mut bytes, base_offset, term);
            let (parsed, rest) = RecordBatch::parse(&bytes).unwrap();
            prop_assert!(rest.is_empty());
            parsed.validate().unwrap();
            parsed.validate_records().unwrap();
            prop_assert_eq!(parsed.base_offset(), base_offset);
            prop_assert_eq!(parsed.term(), term);
            prop_assert_eq!(parsed.record_count() as usize, records.len());
            prop_assert_eq!(parsed.last_offset(), base_offset + records.len() as u64 - 1);
            prop_assert_eq!(parsed.producer_id(), producer_id);
            prop_assert_eq!(parsed.producer_epoch(), epoch);
            prop_assert_eq!(parsed.base_sequence(), sequence);
            prop_assert_eq!(parsed.attributes().is_transactional(), transactional);
            prop_assert_eq!(parsed.attributes().compression().unwrap(), compression);
            prop_assert_eq!(parsed.first_timestamp(), records[0].timestamp);
            prop_assert_eq!(parsed.max_timestamp(), records.iter().map(|r| r.timestamp).max().unwrap());
            let decoded = parsed.records().unwrap();
            let decoded: Vec<_> = decoded.iter().collect::<Result<_, _>>().unwrap();
            for (i, (got, want)) in decoded.iter().zip(&records).enumerate() {
                prop_assert_eq!(got.offset, base_offset + i as u64);
                prop_assert_eq!(got.timestamp, want.timestamp);
                prop_assert_eq!(got.key, want.key.as_deref());
                prop_assert_eq!(got.value, want.value.as_deref());
                prop_assert_eq!(got.headers.len(), want.headers.len());
                for (h, (k, v)) in got.headers.iter().zip(&want.headers) {
                    prop_assert_eq!(h.key, &k[..]);
                    prop_assert_eq!(h.value, v.as_deref());
                }
            }
        }

        #[test]
        fn any_flipped_bit_after_the_stamp_fails_validation(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..5),
            bit in any::<proptest::sample::Index>(),
        ) {
            let mut builder = BatchBuilder::new(Compression::None);
            for v in &values {
                builder.push(1, None, Some(v), &[]);
            }
            let mut bytes = builder.build();
            // Bits before the magic byte (offset, length, term) are not covered
            // by the CRC; the length is checked by framing instead.
            let bit = 16 * 8 + bit.index((bytes.len() - 16) * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            let rejected = match RecordBatch::parse(&bytes) {
                Err(_) => true,
                Ok((batch, _)) => batch.validate().is_err(),
            };
            prop_assert!(rejected);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok((batch, _)) = RecordBatch::parse(&bytes) {
                let _ = batch.validate();
                let _ = batch.validate_records();
            }
        }
    }

    #[test]
    fn control_and_empty_batches_encode() {
        let mut builder = BatchBuilder::new(Compression::None).control(true);
        builder.push(5, Some(b"k"), None, &[]);
        let bytes = builder.build();
        let (batch, _) = RecordBatch::parse(&bytes).unwrap();
        batch.validate().unwrap();
        assert!(batch.attributes().is_control());
    }

    #[test]
    fn a_raft_meta_batch_carries_its_entry_and_occupies_no_offset() {
        let mut bytes = BatchBuilder::raft_meta(b"membership {1,2,3}").build();
        batch::stamp(&mut bytes, 42, 7);
        let (parsed, rest) = RecordBatch::parse(&bytes).unwrap();
        assert!(rest.is_empty());
        parsed.validate().unwrap();
        parsed.validate_records().unwrap();
        assert!(parsed.is_raft_meta());
        assert_eq!(parsed.raft_meta_payload(), b"membership {1,2,3}");
        assert_eq!((parsed.base_offset(), parsed.next_offset()), (42, 42));
        assert_eq!(parsed.offset_count(), 0);
        assert_eq!(parsed.term(), 7);
        assert_eq!(parsed.records().unwrap().iter().count(), 0);
    }

    #[test]
    fn a_raft_meta_batch_that_claims_records_is_invalid() {
        let mut bytes = BatchBuilder::raft_meta(b"x").build();
        bytes[batch::field::RECORD_COUNT..batch::HEADER_LEN].copy_from_slice(&1i32.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[batch::field::ATTRIBUTES..]);
        bytes[batch::field::CRC..batch::field::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
        let (parsed, _) = RecordBatch::parse(&bytes).unwrap();
        let error = parsed.validate().unwrap_err().to_string();
        assert!(error.contains("Raft meta batch"), "{error}");
    }

    /// Found by fuzzing (fuzz/, `produce_validation`): a producer batch
    /// whose base offset is -1 overflowed the record offsets, a panic in a
    /// debug build. Producers' base offsets are not the log's (it stamps
    /// its own), so the batch is valid.
    #[test]
    fn a_base_offset_at_the_end_of_the_range_validates_without_a_panic() {
        let mut builder = BatchBuilder::new(Compression::None);
        for value in [b"a", b"b", b"c"] {
            builder.push(1, None, Some(value), &[]);
        }
        let mut bytes = builder.build();
        bytes[batch::field::BASE_OFFSET..batch::field::BATCH_LENGTH]
            .copy_from_slice(&(-1i64).to_be_bytes());
        let (parsed, _) = RecordBatch::parse(&bytes).unwrap();
        parsed.validate().unwrap();
        parsed.validate_records().unwrap();
        let offsets: Vec<u64> = parsed
            .records()
            .unwrap()
            .iter()
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(offsets, vec![u64::MAX, 0, 1]);
        assert_eq!(parsed.next_offset(), u64::MAX);
        assert_eq!(parsed.last_offset(), u64::MAX);
    }

    /// Found by fuzzing (fuzz/, `produce_validation`, second run): a base
    /// offset of i64::MAX made the check of each record's offset delta
    /// overflow (a panic in a debug build).
    #[test]
    fn a_base_offset_at_the_top_of_the_signed_range_validates_without_a_panic() {
        let mut builder = BatchBuilder::new(Compression::None);
        for value in [b"a", b"b", b"c"] {
            builder.push(1, None, Some(value), &[]);
        }
        let mut bytes = builder.build();
        bytes[batch::field::BASE_OFFSET..batch::field::BATCH_LENGTH]
            .copy_from_slice(&i64::MAX.to_be_bytes());
        let (parsed, _) = RecordBatch::parse(&bytes).unwrap();
        parsed.validate().unwrap();
        parsed.validate_records().unwrap();
    }

    #[test]
    #[should_panic(expected = "holds no records")]
    fn records_cannot_be_pushed_into_a_raft_meta_batch() {
        BatchBuilder::raft_meta(b"x").push(0, None, Some(b"v"), &[]);
    }
}
