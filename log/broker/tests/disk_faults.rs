//! A failing disk under a broker (issue 22, item 2): its partition logs
//! write through a fault-injecting file layer. A partition whose fsync
//! fails acknowledges nothing more, its replica is restarted from what
//! its syncs covered once the disk answers again, and producers are taken
//! again by themselves; the broker's other partitions go on meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spool_broker::{Broker, BrokerConfig, EmbeddedTransport};
use spool_client::proto::Acks;
use spool_client::{
    Client, ClientError, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use spool_storage::testing::{FaultyFileIo, FOREVER};

async fn send(client: &Client, topic: &str, value: &str) -> Result<(), ClientError> {
    let producer = client.producer(ProducerConfig {
        acks: Acks::All,
        retries: 0,
        idempotence: false,
        ..Default::default()
    });
    let record = ProducerRecord::new(topic.to_string(), value.to_string());
    let ack = producer.send(record).await?;
    ack.await.map(|_| ())
}

/// Every value of partition 0 of `topic`, once `expected` arrived, and any
/// that follow within a short wait.
async fn read_all(client: &Client, topic: &str, expected: usize) -> Vec<String> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(50),
        ..Default::default()
    });
    consumer.assign([TopicPartition::new(topic, 0)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while seen.len() < expected && Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            seen.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    for record in consumer.poll(Duration::from_millis(300)).await.unwrap() {
        seen.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
    }
    seen
}

/// Protection tested: the reconciler restarting a replica whose Raft
/// stopped (`close_stopped_replicas`). Without it the partition answered
/// nothing until the broker restarted, and the last loop below timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_fsync_failed_comes_back_from_what_reached_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyFileIo::new();
    let config = BrokerConfig {
        file_io: Arc::clone(&disk) as Arc<dyn spool_storage::FileIo>,
        ..BrokerConfig::new(dir.path())
    };
    let client = EmbeddedTransport::client(Broker::open(config).await.unwrap());
    for topic in ["fragile", "sturdy"] {
        client.admin().create_topic(topic, 1, &[]).await.unwrap();
    }
    let mut acknowledged: Vec<String> = Vec::new();
    for i in 0..20 {
        let value = format!("before-{i}");
        send(&client, "fragile", &value).await.unwrap();
        acknowledged.push(value);
    }

    disk.fail_syncs("fragile.", FOREVER);
    let refused = send(&client, "fragile", "unsynced").await;
    assert!(refused.is_err(), "acknowledged though its fsync failed");
    eprintln!("refused: {}", refused.unwrap_err());
    // The broker's other partitions are not touched.
    send(&client, "sturdy", "still taken").await.unwrap();
    // While the disk fails, the replica cannot even be cut back: still
    // nothing is acknowledged.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(send(&client, "fragile", "unsynced too").await.is_err());

    disk.heal();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match send(&client, "fragile", "after").await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the partition never came back: {e}"),
        }
    }
    eprintln!("taken again after {attempts} attempts");
    acknowledged.push("after".into());
    let read = read_all(&client, "fragile", acknowledged.len()).await;
    assert_eq!(
        read, acknowledged,
        "every acknowledged record once, nothing unsynced"
    );
    assert!(disk.syncs_failed() >= 1);
}
