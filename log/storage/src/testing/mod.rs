//! Helpers for tests of the segment log and of the layers over it:
//! batches of simple records, a log opened with a manual clock, reads of
//! every record, and a file layer that fails on demand. Compiled only with
//! the `test-util` feature.

mod faulty_io;

pub use faulty_io::{FaultyFileIo, FOREVER};

use std::path::Path;
use std::sync::Arc;

use spool_record::{BatchBuilder, BatchIter, Compression};

use crate::config::LogConfig;
use crate::{ManualClock, PartitionLog};

/// A record as the tests see it: offset, key, value, timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub offset: u64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

/// A record to encode: key, value, timestamp.
pub type NewRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// Encodes one batch of (key, value, timestamp).
pub fn batch(records: &[NewRecord<'_>]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    for (key, value, ts) in records {
        builder.push(*ts, *key, *value, &[]);
    }
    builder.build()
}

/// One batch of unkeyed values, all stamped `ts`.
pub fn values_batch(values: &[Vec<u8>], ts: i64) -> Vec<u8> {
    let recs: Vec<_> = values.iter().map(|v| (None, Some(&v[..]), ts)).collect();
    batch(&recs)
}

pub fn open(dir: &Path, config: LogConfig, clock: &ManualClock) -> PartitionLog {
    PartitionLog::open(dir, config, Arc::new(clock.clone())).expect("open log")
}

pub fn small_segments() -> LogConfig {
    LogConfig::from_pairs([("segment.bytes", "1024"), ("index.interval.bytes", "128")]).unwrap()
}

/// Decodes every record of a buffer of whole batches.
pub fn decode(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    for batch in BatchIter::new(bytes) {
        let batch = batch.expect("whole batch");
        batch.validate().expect("valid batch");
        for r in batch.records().unwrap().iter() {
            let r = r.unwrap();
            out.push(Rec {
                offset: r.offset,
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
                timestamp: r.timestamp,
            });
        }
    }
    out
}

/// Reads every record from the log start to the log end, in small reads.
pub fn read_all(log: &PartitionLog, max_bytes: usize) -> Vec<Rec> {
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    let mut offset = start;
    let mut out = Vec::new();
    while offset < end {
        let read = log.read(offset, max_bytes).expect("read");
        if read.bytes.is_empty() {
            break;
        }
        assert!(read.next_offset > offset, "reads make progress");
        out.extend(
            decode(&read.bytes)
                .into_iter()
                .filter(|r| r.offset >= offset),
        );
        offset = read.next_offset;
    }
    out
}
