//! Idempotent producers on a single node (a one-voter cluster): a retried
//! request is appended once and answered with the original offsets, a gap
//! in sequences or an old epoch is refused without appending anything,
//! and the partition's producer table survives a restart. (Crashes and
//! snapshot installs are in `replication_idempotence.rs`, which runs the
//! same replica code with three voters.)

use std::sync::Arc;

use spool_broker::broker::{Broker, BrokerConfig};
use spool_broker::EmbeddedTransport;
use spool_protocol::proto::{
    Acks, ErrorCode, InitProducerIdRequest, ProducePartition, ProducePartitionResult,
    ProduceRequest, ProduceTopic,
};
use spool_record::{BatchBuilder, Compression};

const TOPIC: &str = "payments";

async fn open(dir: &std::path::Path) -> Arc<Broker> {
    Broker::open(BrokerConfig::new(dir)).await.unwrap()
}

async fn open_with_topic(dir: &std::path::Path) -> Arc<Broker> {
    let broker = open(dir).await;
    EmbeddedTransport::client(Arc::clone(&broker))
        .admin()
        .create_topic(TOPIC, 1, &[])
        .await
        .unwrap();
    broker
}

/// A batch of `count` records of producer `id` at `epoch`, numbered from
/// `sequence`.
fn batch(id: i64, epoch: i16, sequence: i32, count: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None).producer(id, epoch, sequence);
    for i in 0..count {
        let value = format!("{id}-{epoch}-{}", i64::from(sequence) + i as i64);
        builder.push(1_000, None, Some(value.as_bytes()), &[]);
    }
    builder.build()
}

async fn produce(broker: &Broker, batches: &[Vec<u8>]) -> ProducePartitionResult {
    let request = ProduceRequest {
        acks: Acks::All as i32,
        timeout_ms: 5_000,
        transactional_id: String::new(),
        topics: vec![ProduceTopic {
            name: TOPIC.into(),
            partitions: vec![ProducePartition {
                partition: 0,
                records: batches.concat().into(),
            }],
        }],
    };
    let mut response = broker.produce(request).await;
    response.topics.remove(0).partitions.remove(0)
}

fn log_end(broker: &Broker) -> u64 {
    broker.partition(TOPIC, 0).unwrap().high_watermark()
}

fn ok(result: &ProducePartitionResult) -> u64 {
    assert_eq!(result.error, 0, "refused: {}", result.message);
    result.base_offset
}

#[tokio::test]
async fn a_retried_request_is_appended_once_and_gets_its_offsets_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_with_topic(dir.path()).await;
    let id = broker
        .init_producer_id(InitProducerIdRequest::default())
        .await
        .producer_id;
    let first = batch(id, 0, 0, 3);
    assert_eq!(ok(&produce(&broker, std::slice::from_ref(&first)).await), 0);
    // The response was lost; the producer sends the same batch again.
    assert_eq!(ok(&produce(&broker, std::slice::from_ref(&first)).await), 0);
    assert_eq!(log_end(&broker), 3, "the retry appended nothing");
    // A retried request of two batches, the first of which had landed:
    // each batch is answered with its own offset.
    let second = batch(id, 0, 3, 2);
    let answer = produce(&broker, &[first, second]).await;
    ok(&answer);
    assert_eq!(answer.batch_base_offsets, vec![0, 3]);
    assert_eq!(log_end(&broker), 5);
}

#[tokio::test]
async fn a_gap_or_an_old_epoch_is_refused_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_with_topic(dir.path()).await;
    ok(&produce(&broker, &[batch(7, 1, 0, 3)]).await);
    let gap = produce(&broker, &[batch(7, 1, 5, 1)]).await;
    assert_eq!(gap.error, ErrorCode::OutOfOrderSequence as i32);
    assert!(gap.message.contains("expected 3, got 5"), "{}", gap.message);
    let zombie = produce(&broker, &[batch(7, 0, 3, 1)]).await;
    assert_eq!(zombie.error, ErrorCode::InvalidProducerEpoch as i32);
    // A request whose second batch is refused appends neither.
    let mixed = produce(&broker, &[batch(7, 1, 3, 1), batch(7, 1, 9, 1)]).await;
    assert_eq!(mixed.error, ErrorCode::OutOfOrderSequence as i32);
    assert_eq!(log_end(&broker), 3);
    // The refused batches left no trace: the next in sequence is taken.
    assert_eq!(ok(&produce(&broker, &[batch(7, 1, 3, 1)]).await), 3);
    // A newer epoch starts over at sequence 0.
    assert_eq!(ok(&produce(&broker, &[batch(7, 2, 0, 1)]).await), 4);

    // The partition's description shows the producer as it now stands.
    let info = EmbeddedTransport::client(Arc::clone(&broker))
        .admin()
        .describe_topic(TOPIC)
        .await
        .unwrap();
    let producers = &info.partitions[0].producers;
    assert_eq!(producers.len(), 1, "{producers:?}");
    let p = &producers[0];
    assert_eq!(
        (p.producer_id, p.epoch, p.last_sequence, p.last_offset),
        (7, 2, 0, 4)
    );
}

#[tokio::test]
async fn the_producer_table_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_with_topic(dir.path()).await;
    let first = batch(11, 0, 0, 4);
    ok(&produce(&broker, std::slice::from_ref(&first)).await);
    broker.shutdown().await.unwrap();
    drop(broker);

    let broker = open(dir.path()).await;
    assert_eq!(ok(&produce(&broker, std::slice::from_ref(&first)).await), 0);
    let second = batch(11, 0, 4, 2);
    ok(&produce(&broker, std::slice::from_ref(&second)).await);
    assert_eq!(ok(&produce(&broker, &[second]).await), 4);
    let gap = produce(&broker, &[batch(11, 0, 7, 1)]).await;
    assert_eq!(gap.error, ErrorCode::OutOfOrderSequence as i32);
    assert_eq!(log_end(&broker), 6);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn producer_ids_are_unique_and_batches_without_one_are_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open_with_topic(dir.path()).await;
    let a = broker
        .init_producer_id(InitProducerIdRequest::default())
        .await;
    let b = broker
        .init_producer_id(InitProducerIdRequest::default())
        .await;
    assert_eq!((a.error, b.error), (0, 0));
    assert_ne!(a.producer_id, b.producer_id);
    let plain = batch(-1, -1, -1, 2);
    ok(&produce(&broker, std::slice::from_ref(&plain)).await);
    ok(&produce(&broker, &[plain]).await);
    assert_eq!(
        log_end(&broker),
        4,
        "a batch of no producer is never a duplicate"
    );
}
