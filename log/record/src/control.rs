//! Control records: the commit and abort markers a transaction coordinator
//! writes to every partition of a transaction, in Kafka's layout.
//!
//! A marker is a batch with the transactional and control attributes set,
//! the producer's id and epoch, no sequence, and one record whose key is
//! `version: i16 = 0, type: i16` (0 abort, 1 commit) and whose value is
//! `version: i16 = 0, coordinator epoch: i32`. Markers take an offset like
//! any record; consumers never see them.

use super::{BatchBuilder, Compression, RecordBatch};
use crate::{RecordError, Result};

const ABORT: i16 = 0;
const COMMIT: i16 = 1;

/// A marker batch ending producer `producer_id`'s transaction.
pub fn control_marker(producer_id: i64, epoch: i16, commit: bool, timestamp: i64) -> Vec<u8> {
    let mut key = 0i16.to_be_bytes().to_vec();
    key.extend_from_slice(&(if commit { COMMIT } else { ABORT }).to_be_bytes());
    let mut value = 0i16.to_be_bytes().to_vec();
    value.extend_from_slice(&0i32.to_be_bytes());
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(producer_id, epoch, -1)
        .transactional(true)
        .control(true);
    builder.push(timestamp, Some(&key), Some(&value), &[]);
    builder.build()
}

/// Whether the control batch `batch` commits (`false`: aborts).
pub fn control_marker_is_commit(batch: &RecordBatch<'_>) -> Result<bool> {
    let records = batch.records()?;
    let record = records
        .iter()
        .next()
        .ok_or_else(|| RecordError::InvalidBatch("a control batch without a record".into()))??;
    let key = record.key.unwrap_or_default();
    let kind = key
        .get(2..4)
        .map(|b| i16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| {
            RecordError::InvalidBatch("a control record key shorter than 4 bytes".into())
        })?;
    match kind {
        COMMIT => Ok(true),
        ABORT => Ok(false),
        other => Err(RecordError::InvalidBatch(format!(
            "unknown control record type {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        for commit in [true, false] {
            let bytes = control_marker(42, 3, commit, 1000);
            let (batch, _) = RecordBatch::parse(&bytes).unwrap();
            batch.validate().unwrap();
            assert!(batch.attributes().is_control() && batch.attributes().is_transactional());
            assert_eq!((batch.producer_id(), batch.producer_epoch()), (42, 3));
            assert_eq!(control_marker_is_commit(&batch).unwrap(), commit);
        }
    }
}
