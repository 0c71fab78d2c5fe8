//! The client API against an embedded broker: topics, produce, consume,
//! seeking, long polling, and clear errors for bad requests.

use std::time::Duration;

use bytes::Bytes;
use spool_broker::Node;
use spool_client::ClientError;
use spool_client::{
    Client, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicPartition,
};
use spool_protocol::proto::{Acks, ErrorCode, ProducePartition, ProduceRequest, ProduceTopic};
use spool_record::{BatchBuilder, Compression};

fn earliest() -> ConsumerConfig {
    ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(100),
        ..Default::default()
    }
}

async fn consume_all(
    client: &Client,
    topic: &str,
    partitions: u32,
    expected: usize,
) -> Vec<(u32, u64, Bytes)> {
    let mut consumer = client.consumer(earliest());
    consumer.assign((0..partitions).map(|p| TopicPartition::new(topic, p)));
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {expected} records arrived",
            out.len()
        );
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            out.push((r.partition, r.offset, r.value.unwrap()));
        }
    }
    out
}

#[tokio::test]
async fn produce_and_consume_keep_order_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("orders", 3, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig {
        acks: Acks::All,
        ..Default::default()
    });
    let mut acks = Vec::new();
    for i in 0..300u32 {
        let record =
            ProducerRecord::new("orders", format!("order-{i}")).key(format!("customer-{}", i % 7));
        acks.push(producer.send(record).await.unwrap());
    }
    let mut metadata = Vec::new();
    for ack in acks {
        metadata.push(ack.await.unwrap());
    }
    // Keyed records: one customer, one partition, in send order.
    let records = consume_all(&client, "orders", 3, 300).await;
    for customer in 0..7 {
        let theirs: Vec<_> = records
            .iter()
            .filter(|(_, _, v)| {
                let i: u32 = std::str::from_utf8(v).unwrap()[6..].parse().unwrap();
                i % 7 == customer
            })
            .collect();
        assert!(theirs
            .windows(2)
            .all(|w| w[0].0 == w[1].0 && w[0].1 < w[1].1));
        assert_eq!(theirs.len(), (0..300).filter(|i| i % 7 == customer).count());
    }
    // Acknowledged offsets are exactly where the records are.
    for (i, m) in metadata.iter().enumerate() {
        let found = records
            .iter()
            .find(|(p, o, _)| *p == m.partition && Some(*o) == m.offset)
            .unwrap();
        assert_eq!(found.2, Bytes::from(format!("order-{i}")));
    }
}

#[tokio::test]
async fn keyless_records_are_sticky_and_compression_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("logs", 4, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig {
        compression: Compression::Zstd,
        batch_size: 1024,
        ..Default::default()
    });
    for i in 0..200 {
        let _ack = producer
            .send(ProducerRecord::new(
                "logs",
                format!("line {i:04} {}", "x".repeat(50)),
            ))
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
    let records = consume_all(&client, "logs", 4, 200).await;
    let mut values: Vec<_> = records.iter().map(|r| r.2.clone()).collect();
    values.sort();
    assert_eq!(
        values[0],
        Bytes::from(format!("line 0000 {}", "x".repeat(50)))
    );
    let used: std::collections::HashSet<u32> = records.iter().map(|r| r.0).collect();
    assert!(used.len() > 1, "keyless records move on when a batch fills");
}

#[tokio::test]
async fn a_topic_with_a_codec_stores_every_batch_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    let admin = client.admin();
    admin
        .create_topic("packed", 1, &[("compression.type", "zstd")])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig {
        compression: Compression::None,
        ..Default::default()
    });
    for i in 0..50 {
        let record = ProducerRecord::new("packed", format!("value {i:02} {}", "y".repeat(40)))
            .key(format!("k{i}"));
        let _ack = producer.send(record).await.unwrap();
    }
    producer.flush().await.unwrap();
    let request = spool_protocol::proto::FetchRequest {
        max_bytes: 1 << 20,
        topics: vec![spool_protocol::proto::FetchTopic {
            name: "packed".into(),
            partitions: vec![spool_protocol::proto::FetchPartition {
                partition: 0,
                offset: 0,
                max_bytes: 1 << 20,
            }],
        }],
        ..Default::default()
    };
    let fetched = client.fetch(request).await.unwrap();
    let bytes = &fetched.topics[0].partitions[0].records;
    let mut values = Vec::new();
    for batch in spool_record::BatchIter::new(bytes) {
        let batch = batch.unwrap();
        assert_eq!(batch.attributes().compression().unwrap(), Compression::Zstd);
        for record in batch.records().unwrap().iter() {
            let record = record.unwrap();
            assert_eq!(record.key, Some(format!("k{}", values.len()).as_bytes()));
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(values.len(), 50);
    assert!(values[49].starts_with("value 49 "));
    // Back to the producer's codec: batches stay as written.
    admin
        .alter_configs("packed", &[("compression.type", "producer")])
        .await
        .unwrap();
    let info = admin.describe_topic("packed").await.unwrap();
    assert!(info
        .configs
        .contains(&("compression.type".to_string(), "producer".to_string())));
}

#[tokio::test]
async fn seeking_by_offset_time_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("t", 1, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig::default());
    for i in 0..10i64 {
        producer
            .send_and_wait(ProducerRecord::new("t", format!("v{i}")).timestamp(1000 + i * 10))
            .await
            .unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let mut consumer = client.consumer(earliest());
    consumer.assign([tp.clone()]);
    consumer.seek(&tp, 7).unwrap();
    let got = consumer.poll(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    consumer.seek_to_time(&tp, 1031).unwrap();
    assert_eq!(consumer.position(&tp).await.unwrap(), 4);
    consumer.seek_to_end(&tp).unwrap();
    assert_eq!(consumer.position(&tp).await.unwrap(), 10);
    consumer.seek_to_beginning(&tp).unwrap();
    assert_eq!(consumer.position(&tp).await.unwrap(), 0);
    consumer.pause(&tp);
    assert!(consumer
        .poll(Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());
    consumer.resume(&tp);
    assert_eq!(
        consumer.poll(Duration::from_secs(1)).await.unwrap().len(),
        10
    );
}

/// A consumer sends its next fetch while its caller works (Kafka's
/// pre-fetching); a seek back in the meantime must not get that fetch's
/// records.
#[tokio::test]
async fn a_seek_back_drops_the_fetch_sent_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("ahead", 1, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig::default());
    for i in 0..10 {
        // One batch each: a fetch of one byte per partition brings one.
        producer
            .send_and_wait(ProducerRecord::new("ahead", format!("v{i}")))
            .await
            .unwrap();
    }
    let tp = TopicPartition::new("ahead", 0);
    let mut consumer = client.consumer(ConsumerConfig {
        max_partition_bytes: 1,
        ..earliest()
    });
    consumer.assign([tp.clone()]);
    let offsets = |records: Vec<spool_client::ConsumerRecord>| {
        records.iter().map(|r| r.offset).collect::<Vec<_>>()
    };
    let first = consumer.poll(Duration::from_secs(1)).await.unwrap();
    assert_eq!(offsets(first), [0]);
    // The fetch sent ahead (from 1) has time to arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = consumer.poll(Duration::from_secs(1)).await.unwrap();
    assert_eq!(offsets(second), [1]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    consumer.seek(&tp, 0).unwrap();
    let again = consumer.poll(Duration::from_secs(1)).await.unwrap();
    assert_eq!(offsets(again), [0], "the records of the fetch sent ahead");
    consumer.pause(&tp);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(consumer
        .poll(Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());
    consumer.resume(&tp);
    let resumed = consumer.poll(Duration::from_secs(1)).await.unwrap();
    assert_eq!(offsets(resumed), [1]);
}

#[tokio::test]
async fn a_waiting_fetch_returns_as_soon_as_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("wake", 1, &[]).await.unwrap();
    let mut consumer = client.consumer(ConsumerConfig {
        max_wait: Duration::from_secs(10),
        ..earliest()
    });
    consumer.assign([TopicPartition::new("wake", 0)]);
    let started = std::time::Instant::now();
    let poll = tokio::spawn(async move { consumer.poll(Duration::from_secs(10)).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .producer(ProducerConfig::default())
        .send_and_wait(ProducerRecord::new("wake", "hello"))
        .await
        .unwrap();
    let got = poll.await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the fetch waited for its timeout"
    );
}

#[tokio::test]
async fn admin_describes_alters_grows_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path()).await.unwrap();
    let client = node.client();
    let admin = client.admin();
    admin
        .create_topic("a", 2, &[("cleanup.policy", "compact")])
        .await
        .unwrap();
    admin.create_topic("b", 1, &[]).await.unwrap();
    assert_eq!(admin.list_topics().await.unwrap(), vec!["a", "b"]);
    admin
        .alter_configs("a", &[("retention.ms", "1000")])
        .await
        .unwrap();
    admin.create_partitions("a", 5).await.unwrap();
    let info = admin.describe_topic("a").await.unwrap();
    assert_eq!(info.partitions.len(), 5);
    let config = |k: &str| {
        info.configs
            .iter()
            .find(|(key, _)| key == k)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(config("cleanup.policy"), "compact");
    assert_eq!(config("retention.ms"), "1000");
    admin.delete_topic("b").await.unwrap();
    assert_eq!(admin.list_topics().await.unwrap(), vec!["a"]);

    // Everything survives a restart of the embedded broker.
    node.shutdown().await.unwrap();
    drop(admin);
    drop(client);
    let client = Node::embedded(dir.path()).await.unwrap().client();
    let info = client.admin().describe_topic("a").await.unwrap();
    assert_eq!(info.partitions.len(), 5);
    assert!(info
        .configs
        .contains(&("retention.ms".into(), "1000".into())));
    assert!(!dir.path().join("b-0").exists());
}

fn code_of(e: ClientError) -> ErrorCode {
    e.code()
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    let admin = client.admin();
    admin
        .create_topic("ok", 1, &[("max.message.bytes", "1000")])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig {
        retries: 0,
        ..Default::default()
    });
    producer
        .send_and_wait(ProducerRecord::new("ok", "first"))
        .await
        .unwrap();

    let e = admin.create_topic("bad/name", 1, &[]).await.unwrap_err();
    assert_eq!(code_of(e), ErrorCode::InvalidTopic);
    let e = admin
        .create_topic("x", 1, &[("retention.msec", "1")])
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("unknown config `retention.msec`"),
        "{e}"
    );
    let e = admin.create_topic("x", 0, &[]).await.unwrap_err();
    assert_eq!(code_of(e), ErrorCode::InvalidPartitions);
    let e = admin.create_topic("ok", 1, &[]).await.unwrap_err();
    assert_eq!(code_of(e), ErrorCode::TopicAlreadyExists);
    let e = producer
        .send_and_wait(ProducerRecord::new("missing", "v"))
        .await
        .unwrap_err();
    assert_eq!(code_of(e), ErrorCode::UnknownTopicOrPartition);
    let e = producer
        .send_and_wait(ProducerRecord::new("ok", vec![0u8; 5000]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::RecordTooLarge, "{e}");

    // A batch whose CRC is wrong, sent as raw bytes.
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(1, None, Some(b"tampered"), &[]);
    let mut bytes = builder.build();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    let request = ProduceRequest {
        transactional_id: String::new(),
        acks: Acks::Leader as i32,
        timeout_ms: 1000,
        topics: vec![ProduceTopic {
            name: "ok".into(),
            partitions: vec![
                ProducePartition {
                    partition: 0,
                    records: bytes.into(),
                },
                ProducePartition {
                    partition: 9,
                    records: Bytes::new(),
                },
            ],
        }],
    };
    let response = client.produce(request).await.unwrap();
    let results = &response.topics[0].partitions;
    assert_eq!(results[0].error, ErrorCode::InvalidRecord as i32);
    assert!(results[0].message.contains("CRC"), "{}", results[0].message);
    assert_eq!(results[1].error, ErrorCode::UnknownTopicOrPartition as i32);

    // Nothing was lost and nothing bad was stored.
    producer
        .send_and_wait(ProducerRecord::new("ok", "second"))
        .await
        .unwrap();
    let records = consume_all(&client, "ok", 1, 2).await;
    assert_eq!(
        records,
        vec![(0, 0, Bytes::from("first")), (0, 1, Bytes::from("second"))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_in_flight_keep_partition_order() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client
        .admin()
        .create_topic("ordered", 2, &[])
        .await
        .unwrap();
    // Small batches and fsync on every request: many requests overlap.
    let producer = client.producer(ProducerConfig {
        acks: Acks::All,
        batch_size: 512,
        max_in_flight: 5,
        linger: Duration::ZERO,
        ..Default::default()
    });
    let mut acks = Vec::new();
    for i in 0..4000u32 {
        let record = ProducerRecord::new("ordered", format!("{i}")).partition(i % 2);
        acks.push(producer.send(record).await.unwrap());
    }
    let mut acknowledged = std::collections::BTreeMap::new();
    for (i, ack) in acks.into_iter().enumerate() {
        let metadata = ack.await.unwrap();
        acknowledged.insert(
            (metadata.partition, metadata.offset.unwrap()),
            i.to_string(),
        );
    }
    let records = consume_all(&client, "ordered", 2, 4000).await;
    // Batches that piled up while a partition's request was in flight go
    // together in its next request; each still reports its own offsets.
    let consumed: std::collections::BTreeMap<(u32, u64), String> = records
        .iter()
        .map(|(p, o, v)| ((*p, *o), String::from_utf8(v.to_vec()).unwrap()))
        .collect();
    assert_eq!(
        acknowledged, consumed,
        "every record acknowledged at its offset"
    );
    for partition in 0..2 {
        let values: Vec<u32> = records
            .iter()
            .filter(|r| r.0 == partition)
            .map(|r| std::str::from_utf8(&r.2).unwrap().parse().unwrap())
            .collect();
        let expected: Vec<u32> = (0..4000).filter(|i| i % 2 == partition).collect();
        assert_eq!(values, expected, "partition {partition} kept send order");
    }
}

#[tokio::test]
async fn send_batch_acknowledges_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("bulk", 2, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig {
        batch_size: 1024,
        ..Default::default()
    });
    let records: Vec<ProducerRecord> = (0..300)
        .map(|i| ProducerRecord::new("bulk", format!("v{i}")).partition(i % 2))
        .collect();
    let acks = producer.send_batch(records).await.unwrap().await.unwrap();
    assert_eq!(acks.len(), 300);
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(ack.partition, i as u32 % 2);
        assert_eq!(ack.offset, Some(i as u64 / 2), "record {i}");
    }
    assert!(producer
        .send_batch(Vec::new())
        .await
        .unwrap()
        .await
        .unwrap()
        .is_empty());
    let bad = vec![ProducerRecord::new("bulk", "x").partition(7)];
    assert!(
        producer.send_batch(bad).await.is_err(),
        "an unknown partition fails the whole call up front"
    );
    assert_eq!(consume_all(&client, "bulk", 2, 300).await.len(), 300);
}

#[tokio::test]
async fn a_re_created_topic_starts_empty_and_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::embedded(dir.path()).await.unwrap();
    let client = node.client();
    let admin = client.admin();
    let producer = client.producer(ProducerConfig {
        acks: Acks::All,
        ..Default::default()
    });
    admin.create_topic("again", 1, &[]).await.unwrap();
    producer
        .send_and_wait(ProducerRecord::new("again", "old"))
        .await
        .unwrap();
    let old_partition = node.broker().partition("again", 0).unwrap();
    admin.delete_topic("again").await.unwrap();
    // Whoever still holds the deleted partition can no longer write to it.
    assert!(old_partition
        .log
        .append(
            &mut spool_record::BatchBuilder::new(Compression::None).build(),
            0
        )
        .is_err());
    admin.create_topic("again", 1, &[]).await.unwrap();
    producer
        .send_and_wait(ProducerRecord::new("again", "new"))
        .await
        .unwrap();
    let records = consume_all(&client, "again", 1, 1).await;
    assert_eq!(records, vec![(0, 0, Bytes::from("new"))]);
    // The old handle's background work cannot touch the new files.
    assert!(old_partition.log.apply_retention().is_err());
    assert!(old_partition.log.clean().is_err());
    drop(old_partition);
    node.shutdown().await.unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    assert_eq!(
        consume_all(&client, "again", 1, 1).await,
        vec![(0, 0, Bytes::from("new"))]
    );
}
