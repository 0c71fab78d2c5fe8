//! What a user deletes on a single node: records before an offset (Kafka's
//! DeleteRecords) and what a group left behind (DeleteGroups,
//! OffsetDelete), each refused where Kafka refuses it.

use std::time::Duration;

use spool_broker::broker::{Broker, BrokerConfig};
use spool_broker::EmbeddedTransport;
use spool_client::{Client, ProducerConfig, ProducerRecord};
use spool_protocol::consumer_protocol::Subscription;
use spool_protocol::proto::{
    ErrorCode, FetchPartition, FetchRequest, FetchTopic, GroupProtocol, JoinGroupRequest,
    OffsetCommitPartition, OffsetCommitRequest, OffsetCommitTopic,
};

async fn open(dir: &std::path::Path) -> Client {
    let mut config = BrokerConfig::new(dir);
    config.manager.retention_check_interval = Duration::from_millis(100);
    EmbeddedTransport::client(Broker::open(config).await.unwrap())
}

async fn produce(client: &Client, topic: &str, count: usize) {
    let producer = client.producer(ProducerConfig::default());
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("value-{i:04}")).partition(0);
        producer.send_and_wait(record).await.unwrap();
    }
}

/// The error a fetch of `events` from `offset` is answered with.
async fn fetch_error(client: &Client, offset: u64) -> ErrorCode {
    let request = FetchRequest {
        max_bytes: 1 << 20,
        topics: vec![FetchTopic {
            name: "events".into(),
            partitions: vec![FetchPartition {
                partition: 0,
                offset,
                max_bytes: 1 << 20,
            }],
        }],
        ..Default::default()
    };
    let response = client.fetch(request).await.unwrap();
    ErrorCode::from_raw(response.topics[0].partitions[0].error)
}

#[tokio::test]
async fn deleted_records_are_gone_for_readers_after_a_restart_and_their_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let client = open(dir.path()).await;
    let admin = client.admin();
    admin
        .create_topic("events", 1, &[("segment.bytes", "1024")])
        .await
        .unwrap();
    produce(&client, "events", 100).await;
    let before = admin.describe_topic("events").await.unwrap().partitions[0].clone();

    assert_eq!(
        admin.delete_records("events", 0, Some(60)).await.unwrap(),
        60
    );
    let past_end = admin
        .delete_records("events", 0, Some(101))
        .await
        .unwrap_err();
    assert_eq!(past_end.code(), ErrorCode::OffsetOutOfRange, "{past_end}");
    let unknown = admin
        .delete_records("nothing", 0, Some(1))
        .await
        .unwrap_err();
    assert_eq!(
        unknown.code(),
        ErrorCode::UnknownTopicOrPartition,
        "{unknown}"
    );

    // Below the new log start is out of range; from it, records are there.
    assert_eq!(fetch_error(&client, 10).await, ErrorCode::OffsetOutOfRange);
    assert_eq!(fetch_error(&client, 60).await, ErrorCode::None);

    // The segments wholly below the start go with the next retention pass.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = admin.describe_topic("events").await.unwrap().partitions[0].clone();
        assert_eq!(now.log_start_offset, 60);
        if now.size_bytes < before.size_bytes {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no segment was deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Everything committed, then a restart: the start stays.
    assert_eq!(admin.delete_records("events", 0, None).await.unwrap(), 100);
    drop((admin, client));
    let client = open(dir.path()).await;
    let info = client.admin().describe_topic("events").await.unwrap();
    assert_eq!(info.partitions[0].log_start_offset, 100);
    assert_eq!(info.partitions[0].high_watermark, 100);
}

#[tokio::test]
async fn records_of_a_compacted_topic_are_not_deleted_by_offset() {
    let dir = tempfile::tempdir().unwrap();
    let client = open(dir.path()).await;
    let admin = client.admin();
    admin
        .create_topic("table", 1, &[("cleanup.policy", "compact")])
        .await
        .unwrap();
    produce(&client, "table", 5).await;
    let refused = admin.delete_records("table", 0, Some(3)).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::PolicyViolation, "{refused}");
    let info = admin.describe_topic("table").await.unwrap();
    assert_eq!(info.partitions[0].log_start_offset, 0);
}

async fn commit(client: &Client, group: &str, topic: &str, offset: u64) {
    let request = OffsetCommitRequest {
        group_id: group.into(),
        generation_id: -1,
        topics: vec![OffsetCommitTopic {
            name: topic.into(),
            partitions: vec![OffsetCommitPartition {
                partition: 0,
                offset,
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    let response = client.offset_commit(request).await.unwrap();
    assert_eq!(response.error, 0, "{}", response.message);
}

async fn committed(client: &Client, group: &str) -> Vec<(String, u64)> {
    let request = spool_protocol::proto::OffsetFetchRequest {
        group_id: group.into(),
        ..Default::default()
    };
    let response = client.offset_fetch(request).await.unwrap();
    let mut offsets: Vec<(String, u64)> = response
        .offsets
        .into_iter()
        .map(|o| (o.topic, o.offset))
        .collect();
    offsets.sort();
    offsets
}

#[tokio::test]
async fn groups_and_their_offsets_are_deleted_only_when_nobody_uses_them() {
    let dir = tempfile::tempdir().unwrap();
    let client = open(dir.path()).await;
    let admin = client.admin();
    for topic in ["a", "b"] {
        admin.create_topic(topic, 1, &[]).await.unwrap();
    }
    commit(&client, "idle", "a", 5).await;
    commit(&client, "idle", "b", 7).await;

    // Some offsets, then the whole group.
    admin
        .delete_group_offsets("idle", &[("a", 0)])
        .await
        .unwrap();
    assert_eq!(committed(&client, "idle").await, vec![("b".to_string(), 7)]);
    admin.delete_group("idle").await.unwrap();
    assert_eq!(committed(&client, "idle").await, vec![]);
    let gone = admin.delete_group("idle").await.unwrap_err();
    assert_eq!(gone.code(), ErrorCode::GroupIdNotFound, "{gone}");

    // A group with a member subscribed to `a`.
    commit(&client, "busy", "a", 3).await;
    commit(&client, "busy", "b", 4).await;
    let subscription = Subscription {
        topics: vec!["a".into()],
        owned: vec![],
    };
    let joined = client
        .join_group(JoinGroupRequest {
            group_id: "busy".into(),
            session_timeout_ms: 30_000,
            rebalance_timeout_ms: 30_000,
            protocols: vec![GroupProtocol {
                name: "range".into(),
                metadata: subscription.encode(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(joined.error, 0, "{}", joined.message);
    let in_use = admin.delete_group("busy").await.unwrap_err();
    assert_eq!(in_use.code(), ErrorCode::NonEmptyGroup, "{in_use}");
    let refused = admin
        .delete_group_offsets("busy", &[("a", 0), ("b", 0)])
        .await
        .unwrap();
    assert_eq!(refused, vec![("a".to_string(), 0)]);
    assert_eq!(committed(&client, "busy").await, vec![("a".to_string(), 3)]);
}
