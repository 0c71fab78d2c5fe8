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

/// A broker whose metadata log's fsync fails stops serving (as Kafka's
/// does when its metadata log directory fails), and started again on the
/// healed disk it serves with every topic created before. Protection
/// tested: the reconciler's `check_controller`. Without it the broker
/// went on answering from metadata frozen at the failure, and `failed()`
/// below never completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_metadata_log_fsync_failed_stops_and_restarts_from_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyFileIo::new();
    let config = || BrokerConfig {
        file_io: Arc::clone(&disk) as Arc<dyn spool_storage::FileIo>,
        ..BrokerConfig::new(dir.path())
    };
    let broker = Broker::open(config()).await.unwrap();
    let client = EmbeddedTransport::client(Arc::clone(&broker));
    client.admin().create_topic("before", 1, &[]).await.unwrap();
    send(&client, "before", "kept").await.unwrap();

    disk.fail_syncs("__cluster_metadata", FOREVER);
    let admin = client.admin().with_api_timeout(Duration::ZERO);
    let refused = tokio::time::timeout(
        Duration::from_secs(60),
        admin.create_topic("unsynced", 1, &[]),
    )
    .await
    .expect("the creation never answered");
    assert!(
        refused.is_err(),
        "a topic acknowledged though its fsync failed"
    );
    let reason = tokio::time::timeout(Duration::from_secs(20), broker.failed())
        .await
        .expect("the broker never said it cannot serve");
    assert!(reason.contains("metadata log"), "{reason}");

    // Shutting down closes what it can; the failed log's close may fail.
    drop(client);
    if let Err(e) = broker.shutdown().await {
        eprintln!("shutdown: {e}");
    }
    drop(broker);
    // What the failed fsync did not cover is lost too, as after a crash.
    disk.power_cut().unwrap();
    disk.heal();
    let broker = Broker::open(config()).await.unwrap();
    let client = EmbeddedTransport::client(broker);
    let topics = client.admin().list_topics().await.unwrap();
    assert!(topics.contains(&"before".to_string()), "{topics:?}");
    assert_eq!(read_all(&client, "before", 1).await, ["kept"]);
    client.admin().create_topic("after", 1, &[]).await.unwrap();
}
