//! `spool bench streams`: a spool-streams topology against a broker,
//! timed from its start until its output shows every input record
//! processed and committed. The same cases, inputs and end condition as
//! scripts/bench/StreamsBench.java runs with Kafka Streams, so
//! scripts/bench-streams.sh can put the two side by side.
//!
//! Kafka's streams benchmark cases (its SimpleBenchmark), each ending
//! when the output shows the whole input processed:
//! - consume, consume-produce: the client baselines, no streams runtime
//!   (see `bench_streams_clients`);
//! - passthrough: each value upper-cased and written out (stateless
//!   processing to a sink);
//! - store: a processor puts each record into a key-value store (RocksDB
//!   with a changelog) and forwards it (processing with a state store);
//! - count: records counted per key (RocksDB store with a changelog),
//!   every new count written out;
//! - restore: the count case's store rebuilt from a changelog of
//!   `--records` distinct keys (see `bench_streams_restore`; spool only).
//!
//! `--embedded` runs the broker inside the benchmark's process (a
//! temporary directory), as the streams library runs beside an embedded
//! broker; otherwise `--bootstrap` names a broker process.
//!
//! The input, `<app-id>-in` (`--records` records, keys `key-<i % keys>`,
//! 100-byte values), is written before the clock starts. Prints a JSON
//! line (`records_per_sec`, like the other benches), then the line
//! scripts/bench-streams.sh reads: `RESULT impl=spool-streams case=..
//! guarantee=.. records=.. seconds=.. records_per_s=..`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use spool_client::proto::IsolationLevel;
use spool_client::{Client, ConsumerConfig, OffsetReset, ProducerRecord, TopicPartition};
use spool_streams::{
    BigEndian, Consumed, Grouped, KafkaStreams, KeyValueStore, Materialized, ProcessingGuarantee,
    Processor, ProcessorContext, ProcessorInit, Produced, Record, StreamsBuilder, StreamsConfig,
    Topology, Utf8,
};

use super::bench_streams_clients::{self as clients, PATIENCE};
use super::bench_streams_restore as restore;
use super::Connection;

#[derive(clap::Args)]
pub struct StreamsArgs {
    /// consume, consume-produce, passthrough, store, count, or restore
    /// (the count store rebuilt from `--records` changelog records).
    #[arg(long, default_value = "count")]
    case: String,
    /// Run a broker inside this process instead of connecting to one.
    #[arg(long)]
    embedded: bool,
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// at_least_once or exactly_once_v2 (Kafka Streams' names).
    #[arg(long, default_value = "exactly_once_v2")]
    guarantee: String,
    /// The application id; topics `<id>-in` and `<id>-out`.
    #[arg(long, default_value = "bench-streams")]
    app_id: String,
    /// Where the application keeps its stores (default: a temporary
    /// directory, removed after).
    #[arg(long)]
    state_dir: Option<std::path::PathBuf>,
    /// Partitions of the input and output topics (and so tasks).
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// Distinct keys in the input.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: StreamsArgs) -> anyhow::Result<()> {
    let guarantee = match args.guarantee.as_str() {
        "at_least_once" => ProcessingGuarantee::AtLeastOnce,
        "exactly_once_v2" | "exactly_once" => ProcessingGuarantee::ExactlyOnce,
        other => bail!("unknown --guarantee {other}: at_least_once or exactly_once_v2"),
    };
    let (input, output) = (
        format!("{}-in", args.app_id),
        format!("{}-out", args.app_id),
    );
    let topology = match args.case.as_str() {
        "consume" | "consume-produce" => None,
        "passthrough" => Some(passthrough(&input, &output)?),
        "store" => Some(store(&input, &output)?),
        "count" | "restore" => Some(count(&input, &output)?),
        other => {
            bail!("unknown --case {other}: consume, consume-produce, passthrough, store, count or restore")
        }
    };
    let broker_dir = tempfile::tempdir()?;
    let (client, _node) = match args.embedded {
        true => {
            let node = spool_broker::Node::embedded(broker_dir.path()).await?;
            (node.client(), Some(node))
        }
        false => (args.connection.client().await?, None),
    };
    let admin = client.admin();
    for topic in [&input, &output] {
        if client.topic_metadata(topic).await.is_err() {
            admin.create_topic(topic, args.partitions, &[]).await?;
        }
    }
    if args.case != "restore" {
        fill(&client, &input, args.records, args.keys).await?;
        eprintln!("wrote {} records to {input}", args.records);
    }

    let temporary = tempfile::tempdir()?;
    let mut config = StreamsConfig::new(&args.app_id);
    config.state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    config.processing_guarantee = guarantee;
    let eos = guarantee == ProcessingGuarantee::ExactlyOnce;
    // Ready before the clock starts, as the Java program's.
    let consumer = output_consumer(&client, &output, args.partitions);
    // The clock stops when the output is complete; closing the
    // application or joining the copier is not timed (as in the Java half).
    let started = Instant::now();
    let mut metrics = None;
    let seconds = match topology {
        Some(topology) if args.case == "restore" => {
            restore::restore(&client, topology, config, args.partitions, args.records).await?
        }
        Some(topology) => {
            let app = KafkaStreams::start(topology, client.clone(), config).await?;
            let counted = match args.case.as_str() {
                "count" => wait_for_counts(consumer, args.records).await,
                _ => wait_for_records(consumer, args.records).await,
            };
            let seconds = started.elapsed().as_secs_f64();
            metrics = Some(app.metrics());
            app.close().await?;
            counted?;
            seconds
        }
        None if args.case == "consume" => {
            clients::consume(&client, &input, args.partitions, args.records, eos).await?;
            started.elapsed().as_secs_f64()
        }
        None => {
            let copy = tokio::spawn(clients::consume_produce(
                client.clone(),
                input.clone(),
                output.clone(),
                args.partitions,
                args.records,
                args.app_id.clone(),
                eos,
            ));
            let copied = wait_for_records(consumer, args.records).await;
            let seconds = started.elapsed().as_secs_f64();
            copy.await??;
            copied?;
            seconds
        }
    };
    let per_second = (args.records as f64 / seconds) as u64;
    println!(
        "{}",
        serde_json::json!({
            "bench": "streams", "case": args.case, "guarantee": args.guarantee,
            "records": args.records, "seconds": seconds, "records_per_sec": per_second,
            "commits": metrics.map(|m| m.commits),
            "commit_ms_avg": metrics.map(|m| m.commit_micros as f64 / 1000.0 / m.commits.max(1) as f64),
        })
    );
    println!(
        "RESULT impl=spool-streams case={} guarantee={} records={} seconds={seconds:.3} records_per_s={per_second}",
        args.case, args.guarantee, args.records
    );
    Ok(())
}

fn passthrough(input: &str, output: &str) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream(input, Consumed::with(Utf8, Utf8))
        .map_values(|v: String| v.to_uppercase())
        .to(output, Produced::with(Utf8, Utf8));
    Ok(builder.build()?)
}

/// Puts each record into a store, then forwards it (Kafka's
/// `streamprocesswithstatestore`, with a sink so the end shows).
struct PutEach {
    store: KeyValueStore<String, String>,
}

impl Processor<String, String> for PutEach {
    type KOut = String;
    type VOut = String;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> spool_streams::Result<()> {
        self.store.put(ctx, &record.key, &record.value)?;
        ctx.forward(record)
    }
}

fn store(input: &str, output: &str) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    let store = builder.add_state_store(Materialized::with(Utf8, Utf8).named("latest"));
    builder
        .stream(input, Consumed::with(Utf8, Utf8))
        .process(
            move |init: &mut ProcessorInit<'_>| PutEach {
                store: init.store(&store),
            },
            &["latest"],
        )
        .to(output, Produced::with(Utf8, Utf8));
    Ok(builder.build()?)
}

fn count(input: &str, output: &str) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream(input, Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .count(Materialized::with(Utf8, BigEndian).named("counts"))
        .to(output, Produced::with(Utf8, BigEndian));
    Ok(builder.build()?)
}

/// Writes `records` records of 100 bytes, keys `key-<i % keys>`.
async fn fill(client: &Client, topic: &str, records: u64, keys: u64) -> anyhow::Result<()> {
    let value = Bytes::from(vec![b'x'; 100]);
    clients::write_all(client, records, |i| {
        ProducerRecord::new(topic, value.clone()).key(format!("key-{}", i % keys.max(1)))
    })
    .await
}

fn output_consumer(client: &Client, topic: &str, partitions: u32) -> spool_client::Consumer {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    consumer.assign((0..partitions).map(|p| TopicPartition::new(topic, p)));
    consumer
}

/// Reads `topic` until `records` records arrived.
async fn wait_for_records(
    mut consumer: spool_client::Consumer,
    records: u64,
) -> anyhow::Result<()> {
    let (deadline, mut seen) = (Instant::now() + PATIENCE, 0u64);
    while seen < records {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{seen} of {records} records after {PATIENCE:?}"
        );
        seen += consumer.poll(Duration::from_millis(100)).await?.len() as u64;
    }
    Ok(())
}

/// Reads `topic` until the latest counts of all keys add up to `records`.
async fn wait_for_counts(mut consumer: spool_client::Consumer, records: u64) -> anyhow::Result<()> {
    let mut latest: HashMap<Bytes, u64> = HashMap::new();
    let (deadline, mut total) = (Instant::now() + PATIENCE, 0u64);
    while total < records {
        anyhow::ensure!(
            Instant::now() < deadline,
            "counts add up to {total} of {records} after {PATIENCE:?}"
        );
        for record in consumer.poll(Duration::from_millis(100)).await? {
            let value: [u8; 8] = record
                .value
                .as_deref()
                .unwrap_or_default()
                .try_into()
                .context("a count that is not 8 bytes")?;
            let count = u64::from_be_bytes(value);
            let previous = latest
                .insert(record.key.unwrap_or_default(), count)
                .unwrap_or(0);
            // A key's count only grows; the total is the sum of the latest.
            total = (total + count).saturating_sub(previous);
        }
    }
    Ok(())
}
