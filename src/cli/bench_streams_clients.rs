//! The client-only cases of `spool bench streams`, Kafka's own streams
//! benchmark baselines (its `consume` and `consumeproduce`): what reading,
//! and reading then writing, cost without a streams runtime, so the
//! streams cases can be read against them.
//!
//! - consume: a consumer reads the whole input (read_committed under
//!   exactly_once_v2);
//! - consume-produce: a consumer reads the input and a producer writes
//!   each record to the output partition of the same number; under
//!   exactly_once_v2 one transaction every 100 ms carries the records and
//!   the consumer's offsets (Kafka's read-process-write loop).

use std::time::{Duration, Instant};

use spool_client::proto::IsolationLevel;
use spool_client::{
    Client, Consumer, ConsumerConfig, GroupMetadata, OffsetReset, ProducerConfig, ProducerRecord,
    TopicPartition,
};

/// How long a case may take to see every record (in every case of
/// `spool bench streams`).
pub(super) const PATIENCE: Duration = Duration::from_secs(600);

/// Kafka Streams' commit interval under exactly_once_v2.
const TRANSACTION_INTERVAL: Duration = Duration::from_millis(100);

/// Writes the records `make(0..records)` (not timed: a case's input), in
/// batches of 10,000, and waits for every acknowledgement.
pub(super) async fn write_all(
    client: &Client,
    records: u64,
    make: impl Fn(u64) -> ProducerRecord,
) -> anyhow::Result<()> {
    let producer = client.producer(Default::default());
    let mut acks = Vec::new();
    let mut next = 0;
    while next < records {
        let chunk = (records - next).min(10_000);
        let batch = (next..next + chunk).map(&make).collect();
        acks.push(producer.send_batch(batch).await?);
        next += chunk;
    }
    for ack in acks {
        ack.await?;
    }
    Ok(())
}

fn input_consumer(client: &Client, input: &str, partitions: u32, eos: bool) -> Consumer {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: match eos {
            true => IsolationLevel::ReadCommitted,
            false => IsolationLevel::ReadUncommitted,
        },
        ..ConsumerConfig::default()
    });
    consumer.assign((0..partitions).map(|p| TopicPartition::new(input, p)));
    consumer
}

/// Reads `records` records of `input`.
pub async fn consume(
    client: &Client,
    input: &str,
    partitions: u32,
    records: u64,
    eos: bool,
) -> anyhow::Result<()> {
    let mut consumer = input_consumer(client, input, partitions, eos);
    let (deadline, mut seen) = (Instant::now() + PATIENCE, 0u64);
    while seen < records {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{seen} of {records} records read in the time allowed"
        );
        seen += consumer.poll(Duration::from_millis(100)).await?.len() as u64;
    }
    Ok(())
}

/// Copies `records` records of `input` to `output`, in transactions of
/// `TRANSACTION_INTERVAL` under exactly-once (offsets committed for group
/// `group` inside them).
pub async fn consume_produce(
    client: Client,
    input: String,
    output: String,
    partitions: u32,
    records: u64,
    group: String,
    eos: bool,
) -> anyhow::Result<()> {
    let producer = client.producer(ProducerConfig {
        transactional_id: eos.then(|| format!("{group}-copy")),
        ..ProducerConfig::default()
    });
    let metadata = GroupMetadata::new(group);
    if eos {
        producer.init_transactions().await?;
        producer.begin_transaction()?;
    }
    let mut consumer = input_consumer(&client, &input, partitions, eos);
    let output: std::sync::Arc<str> = output.into();
    let (mut copied, mut last_commit, mut acks) = (0u64, Instant::now(), Vec::new());
    while copied < records {
        let polled = consumer.poll(Duration::from_millis(100)).await?;
        copied += polled.len() as u64;
        let batch: Vec<ProducerRecord> = polled
            .into_iter()
            .map(|r| ProducerRecord {
                topic: std::sync::Arc::clone(&output),
                partition: Some(r.partition),
                key: r.key,
                value: r.value,
                headers: Vec::new(),
                timestamp: Some(r.timestamp),
            })
            .collect();
        if !batch.is_empty() {
            acks.push(producer.send_batch(batch).await?);
        }
        let due = last_commit.elapsed() >= TRANSACTION_INTERVAL || copied >= records;
        if eos && due {
            let offsets = consumer.positions();
            producer
                .send_offsets_to_transaction(&offsets, &metadata)
                .await?;
            producer.commit_transaction().await?;
            acks.clear();
            if copied < records {
                producer.begin_transaction()?;
            }
            last_commit = Instant::now();
        }
    }
    for ack in acks {
        ack.await?;
    }
    producer.flush().await?;
    Ok(())
}
