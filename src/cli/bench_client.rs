//! `spool bench produce|consume|e2e`: a real client against a broker (start
//! one with `spool broker`), printing one JSON line each.
//!
//! - produce: sends `--records` records of `--record-size` bytes as fast as
//!   the producer accepts them; latency is send-to-acknowledgement per record.
//! - consume: reads `--records` records from the start of the topic;
//!   latency is per poll.
//! - e2e: produces at `--rate` records/s for `--seconds` while a consumer in
//!   the same process reads them; latency is from send to receipt.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure};
use bytes::Bytes;
use serde::Serialize;
use spool_client::{
    Client, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use spool_protocol::proto::Acks;
use spool_record::Compression;

use super::stats::{Latencies, Progress};
use super::Connection;

#[derive(clap::Args, Clone)]
pub struct Common {
    /// The topic (created with --partitions if missing).
    #[arg(long)]
    topic: String,
    /// Partitions when the topic has to be created.
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    #[command(flatten)]
    connection: Connection,
}

#[derive(clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// none, leader or all.
    #[arg(long, default_value = "leader", value_parser = super::produce::parse_acks)]
    acks: Acks,
    /// Producer batch size in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    batch_size: usize,
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Hand records to the producer this many at a time
    /// (`Producer::send_batch`); 1 uses `send` for each record.
    #[arg(long, default_value_t = 1)]
    send_batch: u64,
    /// Send without producer ids and sequence numbers (idempotence is on
    /// by default), to measure what it costs.
    #[arg(long)]
    no_idempotence: bool,
    /// Send in transactions of `--records-per-txn` records each, committed
    /// one after the other; the latency is then each transaction's, from
    /// its first send to its commit.
    #[arg(long)]
    transactional: bool,
    #[arg(long, default_value_t = 100_000)]
    records_per_txn: u64,
    /// Produce over the Kafka protocol to this address instead (a Kafka
    /// listener leading every partition of the topic): one batch of
    /// --send-batch records per request, up to five in flight, no
    /// producer id (--batch-size, --linger-ms and --no-idempotence do not
    /// apply); compare with a gRPC run given --no-idempotence.
    #[arg(long, value_name = "HOST:PORT")]
    kafka: Option<String>,
}

#[derive(clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
}

#[derive(clap::Args)]
pub struct E2eArgs {
    #[command(flatten)]
    common: Common,
    /// Records per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 100)]
    record_size: usize,
}

#[derive(Serialize)]
struct Summary {
    bench: &'static str,
    records: u64,
    bytes: u64,
    seconds: f64,
    records_per_sec: f64,
    mb_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

impl Summary {
    fn print(
        bench: &'static str,
        records: u64,
        bytes: u64,
        seconds: f64,
        mut latencies: Latencies,
    ) -> anyhow::Result<()> {
        let summary = Summary {
            bench,
            records,
            bytes,
            seconds,
            records_per_sec: records as f64 / seconds,
            mb_per_sec: bytes as f64 / 1e6 / seconds,
            p50_ms: latencies.quantile_ms(0.5),
            p99_ms: latencies.quantile_ms(0.99),
            p999_ms: latencies.quantile_ms(0.999),
        };
        println!("{}", serde_json::to_string(&summary)?);
        Ok(())
    }
}

async fn ensure_topic(client: &Client, common: &Common) -> anyhow::Result<u32> {
    let admin = client.admin();
    if let Ok(info) = admin.describe_topic(&common.topic).await {
        return Ok(info.partitions.len() as u32);
    }
    admin
        .create_topic(&common.topic, common.partitions, &[])
        .await?;
    Ok(common.partitions)
}

pub async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    ensure!(
        args.records > 0 && args.record_size > 0,
        "--records and --record-size must be at least 1"
    );
    let compression = Compression::from_name(&args.compression).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown compression `{}`: use none, gzip, snappy, lz4 or zstd",
            args.compression
        )
    })?;
    let client = args.common.connection.client().await?;
    let partitions = ensure_topic(&client, &args.common).await?;
    if let Some(address) = &args.kafka {
        return produce_over_kafka(&args, address, partitions, compression).await;
    }
    let producer = client.producer(ProducerConfig {
        acks: args.acks,
        batch_size: args.batch_size,
        linger: Duration::from_millis(args.linger_ms),
        compression,
        idempotence: !args.no_idempotence,
        transactional_id: args
            .transactional
            .then(|| format!("spool-bench-{}", std::process::id())),
        ..Default::default()
    });
    let value = bench_value(args.record_size);
    let topic: std::sync::Arc<str> = args.common.topic.as_str().into();
    let start = Instant::now();
    let latencies = if args.transactional {
        ensure!(
            args.records_per_txn > 0,
            "--records-per-txn must be at least 1"
        );
        produce_transactional(&producer, &args, topic, value).await?
    } else if args.send_batch > 1 {
        produce_batched(&producer, &args, topic, value).await?
    } else {
        produce_each(&producer, &args, topic, value).await?
    };
    let bytes = args.records * args.record_size as u64;
    Summary::print(
        "produce",
        args.records,
        bytes,
        start.elapsed().as_secs_f64(),
        latencies,
    )
}

/// `--kafka`: the same records over the Kafka protocol (see
/// `bench_kafka`).
async fn produce_over_kafka(
    args: &ProduceArgs,
    address: &str,
    partitions: u32,
    compression: Compression,
) -> anyhow::Result<()> {
    ensure!(
        !args.transactional,
        "--kafka sends without transactions: drop --transactional"
    );
    let work = super::bench_kafka::Workload {
        topic: &args.common.topic,
        partitions,
        records: args.records,
        per_request: args.send_batch,
        value: bench_value(args.record_size),
        compression,
        acks: args.acks,
    };
    let start = Instant::now();
    let latencies = super::bench_kafka::produce(address, &work).await?;
    let bytes = args.records * args.record_size as u64;
    let seconds = start.elapsed().as_secs_f64();
    Summary::print("produce", args.records, bytes, seconds, latencies)
}

/// A record value of `size` bytes.
fn bench_value(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

/// One `send` per record; the latency is send-to-acknowledgement.
async fn produce_each(
    producer: &Producer,
    args: &ProduceArgs,
    topic: std::sync::Arc<str>,
    value: Bytes,
) -> anyhow::Result<Latencies> {
    let mut progress = Progress::new("produced", args.records);
    let mut window = AckWindow::new(50_000);
    for i in 0..args.records {
        // Every 8th record is timed: reading the clock for each one costs
        // more than the producer's own work at these rates.
        let sent = (i % 8 == 0).then(Instant::now);
        let record = ProducerRecord::new(topic.clone(), value.clone());
        window.push(sent, 1, producer.send(record).await?).await?;
        progress.update(i + 1);
    }
    Ok(window.finish().await?)
}

/// `--send-batch N`: records handed to the producer N at a time with
/// `Producer::send_batch`, as Iggy's benchmark sends batches of 1000; the
/// latency is from handing a batch over to its last acknowledgement.
async fn produce_batched(
    producer: &Producer,
    args: &ProduceArgs,
    topic: std::sync::Arc<str>,
    value: Bytes,
) -> anyhow::Result<Latencies> {
    let mut progress = Progress::new("produced", args.records);
    let mut window = AckWindow::new(50_000);
    let mut sent = 0u64;
    while sent < args.records {
        let n = args.send_batch.min(args.records - sent);
        let records = (0..n)
            .map(|_| ProducerRecord::new(topic.clone(), value.clone()))
            .collect();
        let began = Instant::now();
        window
            .push(Some(began), n, producer.send_batch(records).await?)
            .await?;
        sent += n;
        progress.update(sent - sent % 4096);
    }
    Ok(window.finish().await?)
}

/// `--transactional`: transactions of `--records-per-txn` records, handed
/// over `--send-batch` at a time, each committed before the next begins.
async fn produce_transactional(
    producer: &Producer,
    args: &ProduceArgs,
    topic: std::sync::Arc<str>,
    value: Bytes,
) -> anyhow::Result<Latencies> {
    producer.init_transactions().await?;
    let mut progress = Progress::new("produced", args.records);
    let mut latencies = Latencies::default();
    let mut sent = 0u64;
    while sent < args.records {
        let began = Instant::now();
        producer.begin_transaction()?;
        let in_txn = args.records_per_txn.min(args.records - sent);
        let mut acks = Vec::new();
        let mut queued = 0u64;
        while queued < in_txn {
            let n = args.send_batch.max(1).min(in_txn - queued);
            let records = (0..n)
                .map(|_| ProducerRecord::new(topic.clone(), value.clone()))
                .collect();
            acks.push(producer.send_batch(records).await?);
            queued += n;
        }
        producer.commit_transaction().await?;
        for ack in acks {
            ack.await?;
        }
        latencies.record(began.elapsed());
        sent += in_txn;
        progress.update(sent);
    }
    Ok(latencies)
}

/// Outstanding acknowledgements, awaited oldest first (they complete in
/// order per partition, so nothing waits needlessly), holding at most
/// `limit` records so memory stays bounded.
struct AckWindow<F> {
    pending: std::collections::VecDeque<(Option<Instant>, u64, F)>,
    records: u64,
    limit: u64,
    latencies: Latencies,
}

impl<T, F: std::future::Future<Output = spool_client::Result<T>>> AckWindow<F> {
    fn new(limit: u64) -> Self {
        AckWindow {
            pending: Default::default(),
            records: 0,
            limit,
            latencies: Latencies::default(),
        }
    }

    /// Adds an acknowledgement covering `records`, timed from `sent` when
    /// given; waits for the oldest ones while the window is full.
    async fn push(
        &mut self,
        sent: Option<Instant>,
        records: u64,
        ack: F,
    ) -> spool_client::Result<()> {
        self.pending.push_back((sent, records, ack));
        self.records += records;
        while self.records > self.limit {
            self.await_oldest().await?;
        }
        Ok(())
    }

    async fn await_oldest(&mut self) -> spool_client::Result<()> {
        if let Some((sent, records, ack)) = self.pending.pop_front() {
            ack.await?;
            self.records -= records;
            if let Some(sent) = sent {
                self.latencies.record(sent.elapsed());
            }
        }
        Ok(())
    }

    async fn finish(mut self) -> spool_client::Result<Latencies> {
        while !self.pending.is_empty() {
            self.await_oldest().await?;
        }
        Ok(self.latencies)
    }
}

pub async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = args.common.connection.client().await?;
    let info = client.admin().describe_topic(&args.common.topic).await?;
    let available: u64 = info
        .partitions
        .iter()
        .map(|p| p.high_watermark - p.log_start_offset)
        .sum();
    if available < args.records {
        bail!(
            "topic {} holds {available} records; produce at least {} first (spool bench produce)",
            args.common.topic,
            args.records
        );
    }
    let config = ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_poll_records: 1_000_000,
        ..Default::default()
    };
    let mut consumer = client.consumer(config);
    consumer.assign(
        info.partitions
            .iter()
            .map(|p| TopicPartition::new(&args.common.topic, p.partition)),
    );
    let mut latencies = Latencies::default();
    let mut progress = Progress::new("consumed", args.records);
    let (mut records, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    while records < args.records {
        let began = Instant::now();
        let batch = consumer.poll(Duration::from_secs(1)).await?;
        latencies.record(began.elapsed());
        records += batch.len() as u64;
        bytes += batch
            .iter()
            .map(|r| r.value.as_ref().map_or(0, |v| v.len()) as u64)
            .sum::<u64>();
        progress.update(records);
    }
    Summary::print(
        "consume",
        records,
        bytes,
        start.elapsed().as_secs_f64(),
        latencies,
    )
}

pub async fn e2e(args: E2eArgs) -> anyhow::Result<()> {
    ensure!(
        args.rate > 0 && args.seconds > 0,
        "--rate and --seconds must be at least 1"
    );
    let client = args.common.connection.client().await?;
    ensure_topic(&client, &args.common).await?;
    let info = client.admin().describe_topic(&args.common.topic).await?;
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Latest,
        ..Default::default()
    });
    let partitions: Vec<TopicPartition> = info
        .partitions
        .iter()
        .map(|p| TopicPartition::new(&args.common.topic, p.partition))
        .collect();
    consumer.assign(partitions.clone());
    for tp in &partitions {
        consumer.position(tp).await?; // pin the start before producing
    }
    let total = args.rate * args.seconds;
    let reader = tokio::spawn(async move {
        let mut latencies = Latencies::with_capacity(total as usize);
        let mut received = 0u64;
        while received < total {
            for record in consumer.poll(Duration::from_secs(1)).await? {
                let sent_ns =
                    u64::from_be_bytes(record.value.as_deref().unwrap_or(&[0; 8])[..8].try_into()?);
                latencies.record(Duration::from_nanos(now_ns().saturating_sub(sent_ns)));
                received += 1;
            }
        }
        anyhow::Ok(latencies)
    });
    let producer = client.producer(ProducerConfig {
        linger: Duration::ZERO,
        ..Default::default()
    });
    let padding = vec![0u8; args.record_size.saturating_sub(8)];
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let mut value = now_ns().to_be_bytes().to_vec();
        value.extend_from_slice(&padding);
        let _ack = producer
            .send(ProducerRecord::new(args.common.topic.as_str(), value))
            .await?;
    }
    producer.flush().await?;
    let latencies = reader.await??;
    let seconds = start.elapsed().as_secs_f64();
    Summary::print(
        "e2e",
        total,
        total * args.record_size.max(8) as u64,
        seconds,
        latencies,
    )
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
