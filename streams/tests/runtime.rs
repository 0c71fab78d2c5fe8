//! The runtime on an embedded broker: a word count under exactly-once
//! and at-least-once, stopped cleanly and crashed mid-transaction, then
//! restarted; every word's committed counts must be exactly 1..N, and a
//! restart resumes its RocksDB stores instead of restoring them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spool_broker::Node;
use spool_client::proto::IsolationLevel;
use spool_client::{Client, ConsumerConfig, OffsetReset, ProducerRecord, TopicPartition};
use spool_streams::{
    BigEndian, Consumed, Grouped, KafkaStreams, Materialized, Nullable, ProcessingGuarantee,
    Produced, StreamsBuilder, StreamsConfig, Topology, Unit, Utf8,
};

const WORDS: [&str; 5] = ["alpha", "beta", "gamma", "delta", "epsilon"];

fn word_count(store_in_memory: bool) -> Topology {
    let builder = StreamsBuilder::new();
    let materialized = Materialized::with(Utf8, BigEndian).named("counts");
    let materialized = match store_in_memory {
        true => materialized.in_memory(),
        false => materialized,
    };
    builder
        .stream("lines", Consumed::with(Unit, Utf8))
        .flat_map(|_, line: String| {
            line.split_whitespace()
                .map(|w| (w.to_string(), ()))
                .collect::<Vec<_>>()
        })
        .group_by_key(Grouped::with(Utf8, Unit))
        .count(materialized)
        .to_stream()
        .to("counts", Produced::with(Utf8, Nullable(BigEndian)));
    builder.build().unwrap()
}

/// Produces `lines` lines of two words each, starting at line `first`;
/// returns how often each word was written.
async fn produce_lines(client: &Client, first: usize, lines: usize) -> BTreeMap<String, i64> {
    let producer = client.producer(Default::default());
    let mut written = BTreeMap::new();
    let mut records = Vec::new();
    for i in first..first + lines {
        let (a, b) = (WORDS[i % 5], WORDS[(i * 3 + 1) % 5]);
        *written.entry(a.to_string()).or_insert(0) += 1;
        *written.entry(b.to_string()).or_insert(0) += 1;
        records.push(ProducerRecord::new("lines", format!("{a} {b}")));
    }
    producer.send_batch(records).await.unwrap().await.unwrap();
    written
}

fn config(app: &str, dir: &std::path::Path, guarantee: ProcessingGuarantee) -> StreamsConfig {
    let mut config = StreamsConfig::new(app);
    config.state_dir = dir.to_path_buf();
    config.processing_guarantee = guarantee;
    config.commit_interval = Some(Duration::from_millis(200));
    config.session_timeout = Duration::from_secs(6);
    // Kept: the exactly-once test counts what the repartition topic holds.
    config.repartition_purge_interval = Duration::from_secs(3600);
    config
}

/// Reads `counts` (read_committed) from the beginning until every word
/// reached its expected count; returns each word's counts in order.
async fn committed_counts(
    client: &Client,
    expected: &BTreeMap<String, i64>,
) -> BTreeMap<String, Vec<i64>> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    let partitions = client
        .topic_metadata("counts")
        .await
        .unwrap()
        .partitions
        .len() as u32;
    consumer.assign((0..partitions).map(|p| TopicPartition::new("counts", p)));
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = expected
            .iter()
            .all(|(w, n)| seen.get(w).and_then(|c| c.last()) == Some(n));
        if done {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "counts so far: {seen:?}, expected {expected:?}"
        );
        for record in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let word = String::from_utf8(record.key.unwrap().to_vec()).unwrap();
            let value: [u8; 8] = record.value.unwrap().as_ref().try_into().unwrap();
            seen.entry(word)
                .or_default()
                .push(i64::from_be_bytes(value));
        }
    }
}

async fn wait_until(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many records `topic` holds, aborted ones included.
async fn records_in(client: &Client, topic: &str) -> usize {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    });
    consumer.assign((0..2).map(|p| TopicPartition::new(topic, p)));
    let mut count = 0;
    loop {
        let records = consumer.poll(Duration::from_millis(300)).await.unwrap();
        if records.is_empty() {
            return count;
        }
        count += records.len();
    }
}

fn add(total: &mut BTreeMap<String, i64>, more: BTreeMap<String, i64>) {
    for (w, n) in more {
        *total.entry(w).or_insert(0) += n;
    }
}

async fn broker() -> (tempfile::TempDir, Node, Client) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path().join("broker")).await.unwrap();
    let client = node.client();
    client.admin().create_topic("lines", 2, &[]).await.unwrap();
    client.admin().create_topic("counts", 2, &[]).await.unwrap();
    (dir, node, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_counts_survive_a_crash_mid_transaction_and_a_clean_restart() {
    let (dir, _node, client) = broker().await;
    let state = dir.path().join("state");
    let mut expected = produce_lines(&client, 0, 300).await;
    let eos = ProcessingGuarantee::ExactlyOnce;

    let app = KafkaStreams::start(word_count(false), client.clone(), config("wc", &state, eos))
        .await
        .unwrap();
    committed_counts(&client, &expected).await;
    app.close().await.unwrap();

    // More input, processed by an instance that commits only every 30 s
    // and crashes once it has read all of it: the words it sent to the
    // repartition topic are in an open transaction (invisible to the
    // read_committed word counter), which must vanish, and the lines be
    // done again exactly once.
    add(&mut expected, produce_lines(&client, 300, 2_000).await);
    let before = records_in(&client, "wc-counts-repartition").await;
    let mut slow = config("wc", &state, eos);
    slow.commit_interval = Some(Duration::from_secs(30));
    let app = KafkaStreams::start(word_count(false), client.clone(), slow)
        .await
        .unwrap();
    wait_until(|| app.metrics().records_processed >= 2_000).await;
    // Crashed only once every line's two words reached the repartition
    // topic (processing outruns sending, so the counter alone is early).
    let deadline = Instant::now() + Duration::from_secs(60);
    while records_in(&client, "wc-counts-repartition").await < before + 4_000 {
        assert!(
            Instant::now() < deadline,
            "the words never all reached the repartition topic"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.metrics().commits, 0, "{:?}", app.metrics());
    app.halt();

    let app = KafkaStreams::start(word_count(false), client.clone(), config("wc", &state, eos))
        .await
        .unwrap();
    let seen = committed_counts(&client, &expected).await;
    // The crashed transaction's words are in the repartition topic
    // (read_uncommitted sees them), yet every word was counted once.
    let words: i64 = expected.values().sum();
    let repartitioned = records_in(&client, "wc-counts-repartition").await as i64;
    assert!(
        repartitioned >= words + 4_000,
        "{repartitioned} repartitioned, {words} words"
    );
    for (word, counts) in &seen {
        let one_to_n: Vec<i64> = (1..=expected[word]).collect();
        assert_eq!(counts, &one_to_n, "{word}: every count once, in order");
    }
    app.close().await.unwrap();

    // A clean restart resumes the RocksDB store where the commit left it.
    add(&mut expected, produce_lines(&client, 2_300, 100).await);
    let app = KafkaStreams::start(word_count(false), client.clone(), config("wc", &state, eos))
        .await
        .unwrap();
    let seen = committed_counts(&client, &expected).await;
    for (word, counts) in &seen {
        assert_eq!(counts.len() as i64, expected[word], "{word}");
    }
    assert_eq!(app.metrics().records_restored, 0, "{:?}", app.metrics());
    assert!(app.metrics().records_processed >= 100);
    app.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_store_is_restored_from_its_changelog_at_least_once() {
    let (dir, _node, client) = broker().await;
    let state = dir.path().join("state");
    let mut expected = produce_lines(&client, 0, 200).await;
    let alos = ProcessingGuarantee::AtLeastOnce;
    let app = KafkaStreams::start(
        word_count(true),
        client.clone(),
        config("mem", &state, alos),
    )
    .await
    .unwrap();
    committed_counts(&client, &expected).await;
    app.close().await.unwrap();

    add(&mut expected, produce_lines(&client, 200, 50).await);
    let app = KafkaStreams::start(
        word_count(true),
        client.clone(),
        config("mem", &state, alos),
    )
    .await
    .unwrap();
    let seen = committed_counts(&client, &expected).await;
    // The restored store continued the counts rather than starting over.
    for (word, counts) in &seen {
        assert_eq!(counts.last(), Some(&expected[word]), "{word}");
    }
    assert!(
        app.metrics().records_restored >= WORDS.len() as u64,
        "{:?}",
        app.metrics()
    );
    app.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_records_are_purged_from_repartition_topics() {
    let (dir, _node, client) = broker().await;
    let state = dir.path().join("state");
    let mut config = config("purge", &state, ProcessingGuarantee::ExactlyOnce);
    config.repartition_purge_interval = Duration::from_millis(100);
    let app = KafkaStreams::start(word_count(false), client.clone(), config)
        .await
        .unwrap();
    let mut expected = produce_lines(&client, 0, 100).await;
    committed_counts(&client, &expected).await;
    // A later commit purges what the first committed.
    add(&mut expected, produce_lines(&client, 100, 10).await);
    committed_counts(&client, &expected).await;
    let mut consumer = client.consumer(ConsumerConfig::default());
    let partitions: Vec<TopicPartition> = (0..2)
        .map(|p| TopicPartition::new("purge-counts-repartition", p))
        .collect();
    consumer.assign(partitions.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut log_start = 0;
        for tp in &partitions {
            consumer.seek_to_beginning(tp).unwrap();
            log_start += consumer.position(tp).await.unwrap();
        }
        if log_start > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_state_directory_is_refused() {
    let (dir, _node, client) = broker().await;
    let state = dir.path().join("state");
    let alos = ProcessingGuarantee::AtLeastOnce;
    let first = KafkaStreams::start(
        word_count(false),
        client.clone(),
        config("locked", &state, alos),
    )
    .await
    .unwrap();
    let second = KafkaStreams::start(
        word_count(false),
        client.clone(),
        config("locked", &state, alos),
    )
    .await;
    let error = second
        .err()
        .expect("a second instance on one state directory must be refused")
        .to_string();
    assert!(
        error.contains("locked by another running instance"),
        "{error}"
    );
    first.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_move_with_their_state_when_instances_join_and_leave() {
    let (dir, _node, client) = broker().await;
    let eos = ProcessingGuarantee::ExactlyOnce;
    let mut expected = produce_lines(&client, 0, 200).await;
    let first = KafkaStreams::start(
        word_count(false),
        client.clone(),
        config("moving", &dir.path().join("a"), eos),
    )
    .await
    .unwrap();
    committed_counts(&client, &expected).await;
    // A second instance joins: the group splits the four tasks between
    // them, and each keeps counting where the other left off.
    let second = KafkaStreams::start(
        word_count(false),
        client.clone(),
        config("moving", &dir.path().join("b"), eos),
    )
    .await
    .unwrap();
    let (mut next, deadline) = (200, Instant::now() + Duration::from_secs(60));
    while second.metrics().records_processed == 0 {
        assert!(
            Instant::now() < deadline,
            "the joining instance got no task"
        );
        add(&mut expected, produce_lines(&client, next, 20).await);
        next += 20;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    committed_counts(&client, &expected).await;
    // Its count tasks restored the first instance's counts.
    assert!(
        second.metrics().records_restored > 0,
        "{:?}",
        second.metrics()
    );
    // It leaves: its tasks return to the first, with their state.
    second.close().await.unwrap();
    add(&mut expected, produce_lines(&client, next, 100).await);
    let seen = committed_counts(&client, &expected).await;
    for (word, counts) in &seen {
        let one_to_n: Vec<i64> = (1..=expected[word]).collect();
        assert_eq!(counts, &one_to_n, "{word}: every count once, in order");
    }
    first.close().await.unwrap();
}

/// Fails the first time it sees the value 13, then passes it like the
/// others: a transient failure.
struct FailsOnce(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl spool_streams::Processor<(), String> for FailsOnce {
    type KOut = ();
    type VOut = String;
    fn process(
        &mut self,
        ctx: &mut spool_streams::ProcessorContext<'_, (), String>,
        r: spool_streams::Record<(), String>,
    ) -> spool_streams::Result<()> {
        if r.value == "13" && !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(spool_streams::StreamsError::Config(
                "transient failure".into(),
            ));
        }
        ctx.forward(r)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_thread_is_replaced_and_resumes_from_its_last_commit_exactly_once() {
    let (dir, _node, client) = broker().await;
    client.admin().create_topic("copied", 2, &[]).await.unwrap();
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let builder = StreamsBuilder::new();
    let flag = std::sync::Arc::clone(&failed);
    builder
        .stream("lines", Consumed::with(Unit, Utf8))
        .process(
            move |_: &mut spool_streams::ProcessorInit<'_>| FailsOnce(std::sync::Arc::clone(&flag)),
            &[],
        )
        .to("copied", Produced::with(Unit, Utf8));
    let topology = builder.build().unwrap();
    let mut config = config(
        "replaced",
        &dir.path().join("state"),
        ProcessingGuarantee::ExactlyOnce,
    );
    config.num_threads = 2;
    let app = KafkaStreams::start(topology, client.clone(), config)
        .await
        .unwrap();
    let producer = client.producer(Default::default());
    let records = (0..100)
        .map(|i| ProducerRecord::new("lines", i.to_string()).partition(i % 2))
        .collect();
    producer.send_batch(records).await.unwrap().await.unwrap();

    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    consumer.assign((0..2).map(|p| TopicPartition::new("copied", p)));
    let mut copied: Vec<u32> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while copied.len() < 100 {
        assert!(Instant::now() < deadline, "copied so far: {copied:?}");
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            copied.push(
                String::from_utf8(r.value.unwrap().to_vec())
                    .unwrap()
                    .parse()
                    .unwrap(),
            );
        }
    }
    // Nothing more arrives: no record was copied twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    copied.extend(
        consumer
            .poll(Duration::from_millis(200))
            .await
            .unwrap()
            .iter()
            .map(|r| {
                String::from_utf8(r.value.clone().unwrap().to_vec())
                    .unwrap()
                    .parse::<u32>()
                    .unwrap()
            }),
    );
    copied.sort();
    assert_eq!(copied, (0..100).collect::<Vec<u32>>());
    assert!(failed.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(app.metrics().threads_replaced, 1, "{:?}", app.metrics());
    app.close().await.unwrap();
}
