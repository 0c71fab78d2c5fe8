//! The system clock stepped under a running broker (issue 22, item 5): the
//! test hands the broker a wall clock it steps 30 days forward and then 30
//! days back. Retention deletes nothing early, an open transaction is not
//! aborted, a consumer group's member keeps its place, and the broker
//! takes writes throughout.
//!
//! Protection tested: the broker keeping its own time from the wall clock
//! read once at start plus the monotonic clock (`SteadyClock`), for logs
//! and transaction timeouts alike. Reading the wall clock directly instead
//! (`SteadyClock::now_ms` returning the wall clock), the forward step made
//! retention delete every record of the topic, and, that check moved
//! after it, the transaction sweep abort the open transaction. The step
//! back and the group member's place are regression checks only: a step
//! back deletes nothing early, and group sessions run on the monotonic
//! clock, so neither failed with the wall clock read directly.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use spool_broker::{Broker, BrokerConfig, EmbeddedTransport};
use spool_client::{
    Client, ConsumerConfig, GroupSettings, OffsetReset, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use spool_protocol::proto::IsolationLevel;
use spool_storage::{ManagerConfig, ManualClock};

const DAY_MS: u64 = 24 * 3600 * 1000;

fn real_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn produce(client: &Client, topic: &str, values: impl Iterator<Item = String>) {
    let producer = client.producer(ProducerConfig::default());
    let mut acks = Vec::new();
    for value in values {
        acks.push(
            producer
                .send(ProducerRecord::new(topic.to_string(), value))
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

/// Every value of partition 0 of `topic` from its log start, read with
/// `isolation` until `expected` arrived (or 20 s passed).
async fn read_all(
    client: &Client,
    topic: &str,
    expected: usize,
    isolation: IsolationLevel,
) -> Vec<String> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(50),
        isolation,
        ..Default::default()
    });
    consumer.assign([TopicPartition::new(topic, 0)]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while seen.len() < expected && tokio::time::Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            seen.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    seen
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!("{prefix}-{i:04}-{}", "x".repeat(200)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stepped_wall_clock_deletes_nothing_early_and_expires_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wall = ManualClock::new(real_now_ms());
    let config = BrokerConfig {
        wall_clock: Arc::new(wall.clone()),
        manager: ManagerConfig {
            retention_check_interval: Duration::from_millis(200),
            ..ManagerConfig::default()
        },
        ..BrokerConfig::new(dir.path())
    };
    let client = EmbeddedTransport::client(Broker::open(config).await.unwrap());
    let admin = client.admin();
    let aging = [("retention.ms", "3600000"), ("segment.bytes", "4096")];
    admin.create_topic("aging", 1, &aging).await.unwrap();
    admin.create_topic("ledger", 1, &[]).await.unwrap();
    let before = numbered("before", 0..100);
    produce(&client, "aging", before.iter().cloned()).await;

    let mut member = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..Default::default()
    });
    member.subscribe(["aging".to_string()], GroupSettings::new("watchers"));
    while member.assignment().is_empty() {
        member.poll(Duration::from_millis(100)).await.unwrap();
    }
    member.commit_sync().await.unwrap();

    let ledger = client.producer(ProducerConfig {
        transactional_id: Some("clock-steps".into()),
        transaction_timeout: Duration::from_secs(10),
        ..Default::default()
    });
    ledger.init_transactions().await.unwrap();
    ledger.begin_transaction().unwrap();
    let sent = ledger
        .send(ProducerRecord::new(
            "ledger".to_string(),
            "open".to_string(),
        ))
        .await
        .unwrap();
    sent.await.unwrap();

    // Thirty days forward: a retention of one hour, a transaction timeout
    // of ten seconds, several retention passes and transaction sweeps.
    wall.advance(30 * DAY_MS);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let kept = read_all(
        &client,
        "aging",
        before.len(),
        IsolationLevel::ReadUncommitted,
    );
    assert_eq!(
        kept.await,
        before,
        "retention deleted records an hour's retention keeps"
    );
    ledger.commit_transaction().await.unwrap();
    member.poll(Duration::from_millis(100)).await.unwrap();
    member.commit_sync().await.unwrap();
    let committed = read_all(&client, "ledger", 1, IsolationLevel::ReadCommitted).await;
    assert_eq!(committed, vec!["open".to_string()]);

    // Thirty days back from the real time: writes and transactions go on.
    wall.set(real_now_ms() - 30 * DAY_MS);
    let after = numbered("after", 0..50);
    produce(&client, "aging", after.iter().cloned()).await;
    ledger.begin_transaction().unwrap();
    let sent = ledger
        .send(ProducerRecord::new(
            "ledger".to_string(),
            "again".to_string(),
        ))
        .await
        .unwrap();
    sent.await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ledger.commit_transaction().await.unwrap();
    member.poll(Duration::from_millis(100)).await.unwrap();
    member.commit_sync().await.unwrap();
    let all: Vec<String> = before.into_iter().chain(after).collect();
    assert_eq!(
        read_all(&client, "aging", all.len(), IsolationLevel::ReadUncommitted).await,
        all
    );
}
