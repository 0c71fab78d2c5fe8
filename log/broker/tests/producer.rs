//! The producer's own contract against an embedded broker: a bounded buffer
//! never deadlocks, queued records survive the last handle being dropped,
//! and flush waits for every record sent before it.

use std::time::Duration;

use spool_broker::Node;
use spool_client::{
    Client, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicPartition,
};

async fn read_values(client: &Client, topic: &str, expected: usize) -> Vec<String> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(50),
        ..Default::default()
    });
    consumer.assign([TopicPartition::new(topic, 0)]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut values = Vec::new();
    while values.len() < expected && tokio::time::Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    values
}

#[tokio::test]
async fn a_buffer_smaller_than_the_work_applies_backpressure_without_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("small", 1, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig {
        buffer_records: 8,
        batch_size: 256,
        linger: Duration::from_millis(1),
        ..Default::default()
    });
    let mut acks = Vec::new();
    for i in 0..200 {
        acks.push(
            producer
                .send(ProducerRecord::new("small", format!("s{i}")))
                .await
                .unwrap(),
        );
    }
    // A call larger than the whole buffer is reserved a chunk at a time.
    let batch: Vec<_> = (0..100)
        .map(|i| ProducerRecord::new("small", format!("b{i}")))
        .collect();
    let batch_acks = tokio::time::timeout(Duration::from_secs(20), async {
        producer.send_batch(batch).await.unwrap().await.unwrap()
    })
    .await
    .expect("send_batch larger than the buffer must not deadlock");
    for (i, ack) in acks.into_iter().enumerate() {
        assert_eq!(ack.await.unwrap().offset, Some(i as u64));
    }
    let offsets: Vec<_> = batch_acks.iter().map(|m| m.offset.unwrap()).collect();
    assert_eq!(offsets, (200..300).collect::<Vec<u64>>());
}

#[tokio::test]
async fn records_queued_when_the_last_handle_drops_are_still_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client
        .admin()
        .create_topic("dropped", 1, &[])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig {
        // Far longer than the test: only the drop can send these batches.
        linger: Duration::from_secs(3600),
        ..Default::default()
    });
    let clone = producer.clone();
    let mut acks = Vec::new();
    for i in 0..50 {
        acks.push(
            clone
                .send(ProducerRecord::new("dropped", format!("{i}")))
                .await
                .unwrap(),
        );
    }
    drop(clone);
    drop(producer);
    for (i, ack) in acks.into_iter().enumerate() {
        let metadata = tokio::time::timeout(Duration::from_secs(10), ack)
            .await
            .expect("dropping the producer sends what it queued")
            .unwrap();
        assert_eq!(metadata.offset, Some(i as u64));
    }
    let expected: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    assert_eq!(read_values(&client, "dropped", 50).await, expected);
}

#[tokio::test]
async fn flush_sends_lingering_batches_and_waits_for_their_answers() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client
        .admin()
        .create_topic("flushed", 1, &[])
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig {
        linger: Duration::from_secs(3600),
        ..Default::default()
    });
    let mut acks = Vec::new();
    for i in 0..10 {
        acks.push(
            producer
                .send(ProducerRecord::new("flushed", format!("{i}")))
                .await
                .unwrap(),
        );
    }
    tokio::time::timeout(Duration::from_secs(10), producer.flush())
        .await
        .expect("flush must not wait for the linger time")
        .unwrap();
    // Every record sent before the flush is answered once it returns.
    for ack in acks {
        let answered = futures::FutureExt::now_or_never(ack);
        assert!(answered.is_some_and(|r| r.is_ok()), "answered by flush");
    }
    assert_eq!(read_values(&client, "flushed", 10).await.len(), 10);
}
