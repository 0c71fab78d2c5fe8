//! Restoring a store from a changelog larger than one poll: every record
//! applied, the last ones included (a restore once took the consumer's
//! fetch position, past records fetched but not yet returned, and lost
//! them).

use std::time::{Duration, Instant};

use bytes::Bytes;
use spool_broker::Node;
use spool_client::proto::IsolationLevel;
use spool_client::{ConsumerConfig, OffsetReset, ProducerRecord, TopicPartition};
use spool_streams::{
    BigEndian, Consumed, Grouped, KafkaStreams, Materialized, ProcessingGuarantee, Produced,
    StreamsBuilder, StreamsConfig, Utf8,
};

const KEYS: u64 = 25_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changelog_of_several_polls_is_restored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path().join("broker")).await.unwrap();
    let client = node.client();
    let admin = client.admin();
    admin.create_topic("words", 1, &[]).await.unwrap();
    admin.create_topic("counts", 1, &[]).await.unwrap();
    let compact = [("cleanup.policy", "compact")];
    admin
        .create_topic("rs-counts-changelog", 1, &compact)
        .await
        .unwrap();
    // Every key counted once already, as a previous instance left it.
    let producer = client.producer(Default::default());
    let one = Bytes::copy_from_slice(&1i64.to_be_bytes());
    let records = (0..KEYS)
        .map(|i| ProducerRecord::new("rs-counts-changelog", one.clone()).key(format!("key-{i}")))
        .collect();
    producer.send_batch(records).await.unwrap().await.unwrap();

    let builder = StreamsBuilder::new();
    builder
        .stream("words", Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .count(Materialized::with(Utf8, BigEndian).named("counts"))
        .to_stream()
        .to(
            "counts",
            Produced::with(Utf8, spool_streams::Nullable(BigEndian)),
        );
    let mut config = StreamsConfig::new("rs");
    config.state_dir = dir.path().join("state");
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    let app = KafkaStreams::start(builder.build().unwrap(), client.clone(), config)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.metrics().records_restored < KEYS {
        assert!(Instant::now() < deadline, "{:?}", app.metrics());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.metrics().records_restored, KEYS);

    // The first key and the last: each counted on from its restored 1.
    let (first, last) = ("key-0".to_string(), format!("key-{}", KEYS - 1));
    let words = [first.clone(), last.clone()]
        .into_iter()
        .map(|w| ProducerRecord::new("words", w.clone()).key(w))
        .collect();
    producer.send_batch(words).await.unwrap().await.unwrap();
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    consumer.assign([TopicPartition::new("counts", 0)]);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        assert!(Instant::now() < deadline, "counts so far: {seen:?}");
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let count: [u8; 8] = r.value.unwrap().as_ref().try_into().unwrap();
            seen.push((key, i64::from_be_bytes(count)));
        }
    }
    assert_eq!(seen, vec![(first, 2), (last, 2)]);
    app.close().await.unwrap();
}
