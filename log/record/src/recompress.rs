//! A batch compressed again with another codec: Kafka's topic-level
//! `compression.type`, applied by the leader before a batch is appended.

use super::batch::RecordBatch;
use super::builder::BatchBuilder;
use super::compression::Compression;
use super::Result;

/// `batch`'s records compressed with `to`, everything else kept: the
/// producer id, epoch and base sequence (so idempotence and transactions
/// see the same batch), the transactional flag, every record's offset
/// delta, timestamp, key, value and headers, and the last offset delta.
/// The batch's own base offset is kept too; the log stamps it anyway.
pub fn recompress(batch: &RecordBatch<'_>, to: Compression) -> Result<Vec<u8>> {
    let attributes = batch.attributes();
    let mut builder = BatchBuilder::with_capacity(to, batch.size())
        .producer(
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence(),
        )
        .transactional(attributes.is_transactional());
    let base = batch.base_offset();
    for record in batch.records()?.iter() {
        let record = record?;
        let delta = i32::try_from(record.offset.saturating_sub(base)).unwrap_or(i32::MAX);
        builder.push_at(
            delta,
            record.timestamp,
            record.key,
            record.value,
            &record.headers,
        );
    }
    builder.extend_last_offset_delta(batch.last_offset_delta());
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Header;

    #[test]
    fn a_recompressed_batch_holds_the_same_records_and_producer() {
        let mut builder = BatchBuilder::new(Compression::None)
            .producer(7, 2, 40)
            .transactional(true);
        let header = Header {
            key: b"h",
            value: Some(b"v"),
        };
        builder.push_at(0, 1_000, Some(b"k1"), Some(b"one"), &[header]);
        builder.push_at(2, 1_005, None, Some(b"three"), &[]);
        builder.extend_last_offset_delta(3);
        let original = builder.build();
        let (batch, _) = RecordBatch::parse(&original).unwrap();
        for to in [Compression::Lz4, Compression::Zstd, Compression::Gzip] {
            let again = recompress(&batch, to).unwrap();
            let (copy, rest) = RecordBatch::parse(&again).unwrap();
            assert!(rest.is_empty());
            copy.validate().unwrap();
            assert_eq!(copy.attributes().compression().unwrap(), to);
            assert_eq!(
                (
                    copy.producer_id(),
                    copy.producer_epoch(),
                    copy.base_sequence()
                ),
                (7, 2, 40)
            );
            assert!(copy.attributes().is_transactional());
            assert_eq!(copy.last_offset_delta(), 3);
            assert_eq!(copy.max_timestamp(), batch.max_timestamp());
            let records = |b: &RecordBatch<'_>| {
                b.records()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        let r = r.unwrap();
                        (
                            r.offset,
                            r.timestamp,
                            r.key.map(<[u8]>::to_vec),
                            r.value.map(<[u8]>::to_vec),
                            r.headers.len(),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(records(&copy), records(&batch));
        }
    }
}
