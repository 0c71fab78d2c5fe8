//! A cluster of real `spool broker` processes on loopback sockets, each
//! test producing with acks=all through a fault and then checking that
//! every acknowledged record is on every broker at its offset: the
//! partition leader killed with SIGKILL mid-stream, stopped with SIGSTOP
//! past the election timeout, cut off in the minority by a network cut,
//! every broker killed at once, a topic re-created while a broker was down;
//! and a rolling restart under load (`rolling.rs`).

#[path = "../common/mod.rs"]
mod common;
mod deletion;
mod failover;
mod groups;
mod harness;
mod kafka;
mod links;
mod moves;
mod rolling;
mod scale;
mod transactions;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::*;
use spool_client::{
    Client, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use spool_protocol::proto::Acks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_loses_no_acknowledged_record_and_rejoins() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "before", 40, &mut acknowledged).await;
    let killed = leader(&cluster).await;
    let status = cluster_status(&cluster, killed);
    assert_eq!(status.matches(" up").count(), 3, "{status}");
    let row = status
        .lines()
        .find(|l| l.starts_with(TOPIC))
        .expect("a row for the topic");
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns[2],
        killed.to_string(),
        "the leader column: {status}"
    );
    assert_eq!(
        columns[4], "40",
        "the high watermark after 40 records: {status}"
    );
    assert_eq!(columns.len(), 7, "two followers with their lag: {status}");
    cluster.kill(killed);
    produce_values(&cluster, "after", 20, &mut acknowledged).await;
    let new_leader = leader(&cluster).await;
    assert_ne!(new_leader, killed, "a surviving broker leads");
    let status = cluster_status(&cluster, new_leader);
    assert!(
        status.contains(&format!(
            "{:>4}  {:<24} unreachable",
            killed, cluster.addresses[&killed]
        )),
        "{status}"
    );
    cluster.start_broker(killed);
    for node in [1, 2, 3] {
        let records = wait_for_records(&cluster, node, acknowledged.len()).await;
        assert_eq!(
            records, acknowledged,
            "node {node} holds every acknowledged record, in order"
        );
    }
    let metadata = cluster
        .client(1)
        .await
        .metadata(Default::default())
        .await
        .unwrap();
    assert_eq!(metadata.brokers.len(), 3, "{metadata:?}");
}

/// Creates `topic` through one bootstrap broker, retrying while the
/// cluster is still registering its brokers.
async fn create_through(client: &Client, topic: &str, partitions: u32, factor: u32) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client
            .admin()
            .create_replicated_topic(topic, partitions, factor, &[])
            .await
        {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "topic never created: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `values` with acks=all and returns where each landed.
async fn send_all(producer: &Producer, values: &[String]) -> BTreeMap<(u32, u64), String> {
    let mut waiting = Vec::new();
    for value in values {
        let record = ProducerRecord::new("orders", value.clone().into_bytes())
            .key(value.clone().into_bytes());
        waiting.push((value.clone(), producer.send(record).await.unwrap()));
    }
    let mut landed = BTreeMap::new();
    for (value, ack) in waiting {
        let metadata = ack
            .await
            .unwrap_or_else(|e| panic!("`{value}` was not acknowledged: {e}"));
        landed.insert((metadata.partition, metadata.offset.unwrap()), value);
    }
    landed
}

/// Reads every partition of `orders` from the beginning until `count`
/// records arrived.
async fn consume_all(
    client: &Client,
    partitions: u32,
    count: usize,
) -> BTreeMap<(u32, u64), String> {
    let mut consumer = client.consumer(ConsumerConfig::default());
    consumer.assign((0..partitions).map(|p| TopicPartition::new("orders", p)));
    for p in 0..partitions {
        consumer
            .seek_to_beginning(&TopicPartition::new("orders", p))
            .unwrap();
    }
    let deadline = Instant::now() + PATIENCE;
    let mut seen = BTreeMap::new();
    while seen.len() < count {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {count}",
            seen.len()
        );
        for record in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            seen.insert((record.partition, record.offset), value);
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_and_consumers_follow_partition_leaders_through_one_broker() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    let client = cluster.client(3).await;
    create_through(&client, "orders", 3, 3).await;
    // The default retries (until the 120 s delivery timeout) outlast an
    // election on a loaded 2-core machine.
    let config = ProducerConfig {
        acks: Acks::All,
        ..ProducerConfig::default()
    };
    let producer = client.producer(config);
    let first: Vec<String> = (0..150).map(|i| format!("first-{i}")).collect();
    let mut acknowledged = send_all(&producer, &first).await;
    let partitions: BTreeMap<u32, usize> =
        acknowledged.keys().fold(BTreeMap::new(), |mut m, (p, _)| {
            *m.entry(*p).or_default() += 1;
            m
        });
    assert_eq!(
        partitions.len(),
        3,
        "keys spread over every partition: {partitions:?}"
    );

    // Kill a broker other than the bootstrap one that leads a partition.
    let meta = client.topic_metadata("orders").await.unwrap();
    let victim = meta
        .partitions
        .iter()
        .map(|p| u64::from(p.leader))
        .find(|&leader| leader != 3)
        .expect("brokers 1 and 2 lead a partition between them");
    cluster.kill(victim);
    let second: Vec<String> = (0..150).map(|i| format!("second-{i}")).collect();
    acknowledged.extend(send_all(&producer, &second).await);

    let consumed = consume_all(&client, 3, acknowledged.len()).await;
    assert_eq!(
        consumed, acknowledged,
        "every acknowledged record, at its partition and offset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_past_the_election_timeout_is_replaced_and_rejoins() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "before", 20, &mut acknowledged).await;
    let stopped = leader(&cluster).await;
    cluster.pause(stopped);
    produce_values(&cluster, "during", 20, &mut acknowledged).await;
    let new_leader = leader(&cluster).await;
    assert_ne!(new_leader, stopped, "a broker that answers leads");
    cluster.resume(stopped);
    produce_values(&cluster, "after", 20, &mut acknowledged).await;
    check_every_broker(&cluster, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_recreated_while_a_broker_was_down_is_a_new_log_there_too() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    for i in 0..5 {
        produce(&cluster, &format!("old-{i}")).await;
    }
    wait_for_records(&cluster, 3, 5).await;
    cluster.kill(3);
    // The controller's leader may be the broker just killed: retry while
    // the others elect a new one, as a client retries retriable errors.
    let deadline = Instant::now() + PATIENCE;
    loop {
        match cluster.client(1).await.admin().delete_topic(TOPIC).await {
            Ok(()) => break,
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("deleting the topic failed: {e}"),
        }
    }
    create_topic(&cluster).await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "new", 3, &mut acknowledged).await;
    cluster.start_broker(3);
    // The restarted broker must drop its replica of the old topic and
    // join the new one's group, not revive the old log.
    let records = wait_for_records(&cluster, 3, 3).await;
    assert_eq!(
        records, acknowledged,
        "broker 3 serves the new topic's records only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_killed_at_once_restarts_with_every_acknowledged_record() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "before", 30, &mut acknowledged).await;
    for node in [1, 2, 3] {
        cluster.kill(node);
    }
    for node in [2, 3, 1] {
        cluster.start_broker(node);
    }
    produce_values(&cluster, "after", 10, &mut acknowledged).await;
    check_every_broker(&cluster, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_in_the_minority_acknowledges_nothing_and_rejoins() {
    let mut cluster = Cluster::start_with_links(&[1, 2, 3]);
    create_topic(&cluster).await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "before", 20, &mut acknowledged).await;
    let cut_off = leader(&cluster).await;
    cluster.isolate(cut_off);
    // Without its majority the old leader can take a write into its log
    // but never commit it, so it must never acknowledge it.
    let refused = produce_at(&cluster, cut_off, "minority", Duration::from_secs(3)).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("RequestTimedOut")),
        "a leader without its majority answered {refused:?}"
    );
    produce_values(&cluster, "during", 20, &mut acknowledged).await;
    let new_leader = leader(&cluster).await;
    assert_ne!(new_leader, cut_off, "the majority elected its own leader");
    cluster.heal();
    produce_values(&cluster, "after", 20, &mut acknowledged).await;
    check_every_broker(&cluster, &acknowledged).await;
    for &node in cluster.running.keys() {
        let records = read_all(&cluster, node).await.unwrap();
        assert!(
            records.iter().all(|(_, value)| value != "minority"),
            "node {node} serves the write the cut-off leader never committed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_restarted_after_the_leader_purged_what_it_lacks_catches_up_by_snapshot() {
    let mut cluster = Cluster::start_configured(&[1, 2, 3], "retention_check_interval_ms = 200\n");
    // Small segments and a small size limit: retention deletes segments
    // (and openraft purges their entries) after a few dozen records.
    // (The records carry timestamps from 1970: no time limit.)
    let settings = [
        ("segment.bytes", "1024"),
        ("retention.bytes", "3072"),
        ("retention.ms", "-1"),
    ];
    create_topic_with(&cluster, &settings).await;
    let mut acknowledged = Vec::new();
    produce_values(&cluster, "before", 10, &mut acknowledged).await;
    let first_leader = leader(&cluster).await;
    let stopped = *[1, 2, 3].iter().find(|&&n| n != first_leader).unwrap();
    wait_for_offset(&cluster, stopped, 9).await;
    cluster.kill(stopped);
    produce_values(&cluster, "during", 150, &mut acknowledged).await;
    // The leader deletes the segments the stopped follower lacks.
    let leader_now = leader(&cluster).await;
    let deadline = Instant::now() + PATIENCE;
    while log_start(&cluster, leader_now).await.unwrap() <= 10 {
        assert!(
            Instant::now() < deadline,
            "the leader's retention never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.start_broker(stopped);
    produce_values(&cluster, "after", 10, &mut acknowledged).await;
    let logs = check_retained(&cluster, &acknowledged).await;
    let restarted = &logs[&stopped];
    assert!(
        restarted[0].0 > 10,
        "the restarted follower's log was replaced by the leader's, which starts after \
         what it lacked (it starts at {})",
        restarted[0].0
    );
    assert!(
        restarted.len() >= 10,
        "the restarted follower serves the records after its log start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_topics_settings_and_partition_count_change_on_every_broker() {
    let cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    // Through a broker that may not lead the controller: it forwards.
    let admin = cluster.client(3).await.admin();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match admin
            .alter_configs(TOPIC, &[("retention.ms", "3600000")])
            .await
        {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "settings never changed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    admin.create_partitions(TOPIC, 3).await.unwrap();
    let refused = admin.create_partitions(TOPIC, 2).await;
    assert!(refused.is_err(), "the count only grows: {refused:?}");
    admin
        .alter_configs(TOPIC, &[("cleanup.policy", "compact")])
        .await
        .unwrap();
    for node in [1, 2, 3] {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let info = cluster
                .client(node)
                .await
                .admin()
                .describe_topic(TOPIC)
                .await;
            let seen = info.as_ref().ok().map(|info| {
                let setting = |key: &str| {
                    let found = info.configs.iter().find(|(k, _)| k == key);
                    found.map(|(_, v)| v.clone()).unwrap_or_default()
                };
                let leaders = info.partitions.iter().filter(|p| p.leader != 0).count();
                (setting("retention.ms"), setting("cleanup.policy"), leaders)
            });
            let wanted = ("3600000".to_string(), "compact".to_string(), 3);
            if seen == Some(wanted) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "broker {node} shows {seen:?}, not the new settings and three led partitions"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The new partitions take writes and serve them back.
    let client = cluster.client(1).await;
    let producer = client.producer(ProducerConfig {
        acks: Acks::All,
        ..ProducerConfig::default()
    });
    let record = ProducerRecord::new(TOPIC, b"in the third".to_vec()).partition(2);
    let landed = producer.send(record).await.unwrap().await.unwrap();
    assert_eq!((landed.partition, landed.offset), (2, Some(0)));
}
