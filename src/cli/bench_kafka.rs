//! `spool bench produce --kafka ADDR`: the produce benchmark over Kafka's
//! wire protocol, so that spool's Kafka listener can be set beside its
//! gRPC service under the same workload (the same records, batches built
//! by the same code) rather than through another client whose own costs
//! would be measured too.
//!
//! Deliberately small: Produce v7 requests (no flexible fields) encoded
//! by hand, one batch of `--send-batch` records per request, partitions
//! in turn, up to [`MAX_IN_FLIGHT`] requests outstanding on one
//! connection, as Kafka's clients keep them. No producer id: the records
//! are appended as sent (the gRPC run to compare with is
//! `--no-idempotence`). The address must lead every partition of the
//! topic (a single node).

use std::collections::VecDeque;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

use spool_protocol::proto::Acks;
use spool_record::{BatchBuilder, Compression};

use super::stats::{Latencies, Progress};

/// Requests outstanding at once: Kafka's
/// `max.in.flight.requests.per.connection` default.
const MAX_IN_FLIGHT: usize = 5;
const PRODUCE_API: i16 = 0;
const PRODUCE_VERSION: i16 = 7;
const CLIENT_ID: &[u8] = b"spool-bench";

/// What one run sends.
pub struct Workload<'a> {
    pub topic: &'a str,
    pub partitions: u32,
    pub records: u64,
    pub per_request: u64,
    pub value: Bytes,
    pub compression: Compression,
    pub acks: Acks,
}

/// Sends the workload to `address`; the latencies are each request's,
/// from its sending to its answer (none under acks=none, which is not
/// answered).
pub async fn produce(address: &str, work: &Workload<'_>) -> anyhow::Result<Latencies> {
    ensure!(work.per_request > 0, "--send-batch must be at least 1");
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to the Kafka listener at {address}"))?;
    stream.set_nodelay(true)?;
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let acks = match work.acks {
        Acks::None => 0,
        Acks::Leader => 1,
        Acks::All => -1,
    };
    let mut progress = Progress::new("produced", work.records);
    let mut latencies = Latencies::default();
    let mut in_flight: VecDeque<(i32, Instant)> = VecDeque::new();
    let (mut sent, mut correlation_id) = (0u64, 0i32);
    while sent < work.records {
        let n = work.per_request.min(work.records - sent);
        let partition = (correlation_id as u32) % work.partitions.max(1);
        let batch = build_batch(work, n);
        let request = produce_request(correlation_id, acks, work.topic, partition, &batch);
        if in_flight.len() == MAX_IN_FLIGHT {
            answered(&mut reader, &mut in_flight, &mut latencies).await?;
        }
        writer.write_all(&request).await?;
        writer.flush().await?;
        if acks != 0 {
            in_flight.push_back((correlation_id, Instant::now()));
        }
        correlation_id = correlation_id.wrapping_add(1);
        sent += n;
        progress.update(sent - sent % 4096);
    }
    while !in_flight.is_empty() {
        answered(&mut reader, &mut in_flight, &mut latencies).await?;
    }
    Ok(latencies)
}

fn build_batch(work: &Workload<'_>, records: u64) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut builder = BatchBuilder::new(work.compression);
    for _ in 0..records {
        builder.push(now, None, Some(&work.value[..]), &[]);
    }
    builder.build()
}

/// A length-prefixed Produce v7 request (header v1) of one batch.
fn produce_request(
    correlation_id: i32,
    acks: i16,
    topic: &str,
    partition: u32,
    batch: &[u8],
) -> BytesMut {
    let mut frame = BytesMut::with_capacity(64 + topic.len() + batch.len());
    frame.put_i32(0); // the length, set below
    frame.put_i16(PRODUCE_API);
    frame.put_i16(PRODUCE_VERSION);
    frame.put_i32(correlation_id);
    frame.put_i16(CLIENT_ID.len() as i16);
    frame.put_slice(CLIENT_ID);
    frame.put_i16(-1); // transactional id: null
    frame.put_i16(acks);
    frame.put_i32(30_000); // timeout ms
    frame.put_i32(1); // topics
    frame.put_i16(topic.len() as i16);
    frame.put_slice(topic.as_bytes());
    frame.put_i32(1); // partitions
    frame.put_i32(partition as i32);
    frame.put_i32(batch.len() as i32);
    frame.put_slice(batch);
    let length = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    frame
}

/// Reads the answer to the oldest request in flight and checks it.
async fn answered(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    in_flight: &mut VecDeque<(i32, Instant)>,
    latencies: &mut Latencies,
) -> anyhow::Result<()> {
    let Some((expected, sent)) = in_flight.pop_front() else {
        return Ok(());
    };
    let length = reader
        .read_i32()
        .await
        .context("reading a Produce answer")?;
    ensure!(length >= 4, "a Produce answer of {length} bytes");
    let mut body = vec![0u8; length as usize];
    reader.read_exact(&mut body).await?;
    latencies.record(sent.elapsed());
    let error = first_partition_error(Bytes::from(body), expected)?;
    if error != 0 {
        bail!("the broker answered Produce {expected} with Kafka error code {error}");
    }
    Ok(())
}

/// The error code of a Produce v7 answer's first partition, after
/// checking it answers `expected`.
fn first_partition_error(mut body: Bytes, expected: i32) -> anyhow::Result<i16> {
    let truncated = || anyhow::anyhow!("a truncated Produce answer");
    let correlation_id = body.try_get_i32().map_err(|_| truncated())?;
    ensure!(
        correlation_id == expected,
        "answer {correlation_id} came where {expected} was due: out of order"
    );
    let topics = body.try_get_i32().map_err(|_| truncated())?;
    ensure!(topics >= 1, "a Produce answer without topics");
    let name = body.try_get_i16().map_err(|_| truncated())?;
    ensure!(
        name >= 0 && body.remaining() >= name as usize,
        "a truncated Produce answer"
    );
    body.advance(name as usize);
    let partitions = body.try_get_i32().map_err(|_| truncated())?;
    ensure!(partitions >= 1, "a Produce answer without partitions");
    let _index = body.try_get_i32().map_err(|_| truncated())?;
    body.try_get_i16().map_err(|_| truncated())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_frame_holds_its_length_and_the_batch_at_its_end() {
        let frame = produce_request(7, -1, "t", 2, b"batch");
        let length = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(length as usize, frame.len() - 4);
        assert_eq!(&frame[4..6], &PRODUCE_API.to_be_bytes());
        assert_eq!(&frame[8..12], &7i32.to_be_bytes());
        assert!(frame.ends_with(b"batch"));
    }

    #[test]
    fn an_answer_out_of_order_or_truncated_is_refused() {
        let mut answer = BytesMut::new();
        answer.put_i32(3); // correlation id
        answer.put_i32(1);
        answer.put_i16(1);
        answer.put_slice(b"t");
        answer.put_i32(1);
        answer.put_i32(0); // partition
        answer.put_i16(6); // NOT_LEADER_OR_FOLLOWER
        let answer = answer.freeze();
        assert_eq!(first_partition_error(answer.clone(), 3).unwrap(), 6);
        assert!(first_partition_error(answer.clone(), 4).is_err());
        assert!(first_partition_error(answer.slice(..10), 3).is_err());
    }
}
