//! spool's main job: a word count topology, exactly-once, on a broker
//! embedded in the process. Lines go in, the topology splits them into
//! words, repartitions by word, counts each word in a RocksDB store
//! backed by a changelog topic, and writes every new count out; the
//! program then reads the committed counts back.
//!
//! Against a running broker or cluster, replace `node.client()` with
//! `Client::connect("127.0.0.1:9292").await?`; nothing else changes.
//!
//! Run: cargo run --release --example wordcount

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spool::broker::Node;
use spool::client::proto::IsolationLevel;
use spool::client::{ConsumerConfig, OffsetReset, ProducerRecord, TopicPartition};
use spool::streams::{
    BigEndian, Consumed, Grouped, KafkaStreams, Materialized, Nullable, ProcessingGuarantee,
    Produced, StreamsBuilder, StreamsConfig, Unit, Utf8,
};

const TEXT: &str = "the quick brown fox jumps over the lazy dog
the dog barks and the fox runs
a quick brown dog jumps over a lazy fox";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::embedded(dir.path().join("broker")).await?;
    let client = node.client();
    client.admin().create_topic("lines", 2, &[]).await?;
    client.admin().create_topic("word-counts", 2, &[]).await?;

    // The topology: typed from source to sink; codecs only where data
    // crosses a topic or a store.
    let builder = StreamsBuilder::new();
    builder
        .stream("lines", Consumed::with(Unit, Utf8))
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .select_key(|_, word: &String| word.clone())
        .group_by_key(Grouped::with(Utf8, Utf8))
        .count(Materialized::with(Utf8, BigEndian).named("counts"))
        .to_stream()
        .to("word-counts", Produced::with(Utf8, Nullable(BigEndian)));
    let topology = builder.build()?;
    println!("{}", topology.describe());

    let mut config = StreamsConfig::new("wordcount");
    config.state_dir = dir.path().join("state");
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    let app = KafkaStreams::start(topology, client.clone(), config).await?;

    let producer = client.producer(Default::default());
    let records = TEXT
        .lines()
        .map(|line| ProducerRecord::new("lines", line.to_string()));
    producer.send_batch(records.collect()).await?.await?;
    let words = TEXT.split_whitespace().count();
    println!(
        "produced {} lines ({words} words) to `lines`",
        TEXT.lines().count()
    );

    // Read the committed counts: one record per word occurrence, each the
    // word's count so far.
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..Default::default()
    });
    consumer.assign((0..2).map(|p| TopicPartition::new("word-counts", p)));
    let (mut latest, mut updates) = (BTreeMap::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while updates < words && Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(200)).await? {
            let word =
                String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
            let count: [u8; 8] = record.value.as_deref().unwrap_or_default().try_into()?;
            latest.insert(word, i64::from_be_bytes(count));
            updates += 1;
        }
    }
    println!("read {updates} committed count updates from `word-counts`; final counts:");
    for (word, count) in &latest {
        println!("  {word:>6} {count}");
    }
    let metrics = app.metrics();
    println!(
        "processed {} records in {} commits",
        metrics.records_processed, metrics.commits
    );
    app.close().await?;
    node.shutdown().await?;
    anyhow::ensure!(
        updates == words,
        "expected {words} count updates, read {updates}"
    );
    Ok(())
}
