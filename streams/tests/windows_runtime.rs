//! Session windows with their final results (`suppress`) run by the
//! runtime on an embedded broker, exactly once: each key's sessions,
//! read with read_committed, come out once each, final.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spool_broker::Node;
use spool_client::proto::IsolationLevel;
use spool_client::{ConsumerConfig, OffsetReset, ProducerRecord, TopicPartition};
use spool_streams::{
    BigEndian, Consumed, Grouped, KafkaStreams, Materialized, Nullable, ProcessingGuarantee,
    Produced, SessionWindowed, SessionWindows, StreamsBuilder, StreamsConfig, Suppressed, Utf8,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_session_counts_come_out_once_each_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path().join("broker")).await.unwrap();
    let client = node.client();
    for topic in ["visits", "sessions"] {
        client.admin().create_topic(topic, 2, &[]).await.unwrap();
    }
    let builder = StreamsBuilder::new();
    builder
        .stream("visits", Consumed::with(Utf8, Utf8))
        .group_by_key(Grouped::with(Utf8, Utf8))
        .windowed_by_session(SessionWindows::with_inactivity_gap_and_no_grace(
            Duration::from_millis(100),
        ))
        .count(Materialized::with(Utf8, BigEndian).named("visit-counts"))
        .suppress(Suppressed::until_window_closes(SessionWindowed(Utf8), BigEndian).named("final"))
        .to_stream()
        .to(
            "sessions",
            Produced::with(SessionWindowed(Utf8), Nullable(BigEndian)),
        );
    let mut config = StreamsConfig::new("visits-app");
    config.state_dir = dir.path().join("state");
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    config.commit_interval = Some(Duration::from_millis(100));
    let app = KafkaStreams::start(builder.build().unwrap(), client.clone(), config)
        .await
        .unwrap();

    // Each user: three visits 10 ms apart at 1000 and two at 5000, then
    // a last visit at 9000 that closes the earlier sessions; in time
    // order (stream time is a task's: a user's visits sent after another
    // user's later ones would be late).
    let producer = client.producer(Default::default());
    let mut records = Vec::new();
    for time in [1000, 1010, 1020, 5000, 5010, 9000] {
        for user in ["ann", "bob", "cid", "dan"] {
            records.push(ProducerRecord::new("visits", "v").key(user).timestamp(time));
        }
    }
    producer.send_batch(records).await.unwrap().await.unwrap();

    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..ConsumerConfig::default()
    });
    consumer.assign((0..2).map(|p| TopicPartition::new("sessions", p)));
    let mut seen: BTreeMap<String, Vec<(i64, i64, i64)>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.values().map(Vec::len).sum::<usize>() < 8 {
        assert!(Instant::now() < deadline, "sessions so far: {seen:?}");
        for record in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let key = record.key.unwrap();
            let (user, times) = key.split_at(key.len() - 16);
            let end = i64::from_be_bytes(times[..8].try_into().unwrap());
            let start = i64::from_be_bytes(times[8..].try_into().unwrap());
            let count = i64::from_be_bytes(record.value.unwrap().as_ref().try_into().unwrap());
            // Partitioned by the user alone, as Kafka Streams' windowed
            // partitioner does.
            assert_eq!(
                record.partition,
                spool_client::partition_for_key(user, 2),
                "{}",
                String::from_utf8_lossy(user)
            );
            seen.entry(String::from_utf8(user.to_vec()).unwrap())
                .or_default()
                .push((start, end, count));
        }
    }
    // Nothing more: the last sessions are still open.
    assert!(consumer
        .poll(Duration::from_millis(500))
        .await
        .unwrap()
        .is_empty());
    // A user's sessions share a partition (the sink partitions windowed
    // keys by the key alone), so they come in the order they closed.
    for (user, sessions) in &seen {
        assert_eq!(sessions, &[(1000, 1020, 3), (5000, 5010, 2)], "{user}");
    }
    app.close().await.unwrap();
}
