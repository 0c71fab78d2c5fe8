//! A full disk for real: the test mounts a small tmpfs (it must run as
//! root; elsewhere it says so and does nothing) and fills it. Producers
//! are refused with a retriable storage error once the free space falls
//! below the broker's reserve, the broker stays up, what was acknowledged
//! reads back, a consumer group still commits, and producers are taken
//! again by themselves once space returns; after a restart every
//! acknowledged record is there, in order, and nothing else.
//!
//! Protection tested: the free-space reserve (`DiskSpace`, checked in
//! `Broker::propose`). Without it the write that met the full disk failed
//! inside the partition's Raft log and stopped the group, and no produce
//! was refused with "not enough disk space" (seen by hand on a 30 MiB
//! tmpfs before the reserve was built: the producer hung until its
//! timeout).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use spool_broker::{Node, NodeConfig};
use spool_client::proto::{Acks, ErrorCode};
use spool_client::{
    Client, ClientError, ConsumerConfig, GroupSettings, OffsetReset, ProducerConfig,
    ProducerRecord, TopicPartition,
};

const MIB: u64 = 1 << 20;

/// A tmpfs of `size_mib` mounted on a fresh directory, unmounted when
/// dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when mounting is not allowed (not root).
    fn mount(size_mib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let size = format!("size={size_mib}m");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(dir.path())
            .status();
        matches!(status, Ok(s) if s.success()).then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn config(data_dir: PathBuf) -> NodeConfig {
    let mut config = NodeConfig::embedded(data_dir);
    config.storage_min_free_bytes = 16 * MIB;
    config
}

/// A value of 64 KiB that says which record it is.
fn value(i: usize) -> String {
    format!("{i:08}-{}", "x".repeat(64 * 1024))
}

/// Sends record `i` to `filling` and waits for its answer.
async fn send(client: &Client, i: usize) -> Result<(), ClientError> {
    let producer = client.producer(ProducerConfig {
        acks: Acks::All,
        retries: 0,
        idempotence: false,
        ..Default::default()
    });
    let ack = producer
        .send(ProducerRecord::new("filling", value(i)))
        .await?;
    ack.await.map(|_| ())
}

/// The first eight characters of each value of `filling`, from the start,
/// once `expected` arrived.
async fn read_back(client: &Client, expected: usize) -> Vec<String> {
    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(50),
        ..Default::default()
    });
    consumer.assign([TopicPartition::new("filling", 0)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while seen.len() < expected && Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            seen.push(String::from_utf8_lossy(&record.value.unwrap()[..8]).into_owned());
        }
    }
    // A little longer, so that a record past the expected ones shows.
    seen.extend(
        consumer
            .poll(Duration::from_millis(300))
            .await
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r.value.unwrap()[..8]).into_owned()),
    );
    seen
}

fn numbered(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{i:08}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_are_refused_before_the_disk_is_full_and_taken_again_once_space_returns() {
    let Some(disk) = Tmpfs::mount(64) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    // Ballast, deleted later to give the space back.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; (20 * MIB) as usize]).unwrap();
    let data_dir = disk.path().join("data");
    let node = Node::start(config(data_dir.clone())).await.unwrap();
    let client = node.client();
    client
        .admin()
        .create_topic("filling", 1, &[])
        .await
        .unwrap();

    let mut acked = 0;
    let refusal = loop {
        assert!(acked < 2000, "64 MiB cannot hold {acked} records of 64 KiB");
        match send(&client, acked).await {
            Ok(()) => acked += 1,
            Err(error) => break error,
        }
    };
    eprintln!("refused after {acked} records of 64 KiB: {refusal}");
    assert!(acked > 100, "refused after only {acked} records: {refusal}");
    assert_eq!(refusal.code(), ErrorCode::StorageError, "{refusal}");
    assert!(refusal.is_retriable(), "{refusal}");
    let text = refusal.to_string();
    assert!(text.contains("not enough disk space"), "{text}");
    assert!(text.contains(&data_dir.display().to_string()), "{text}");

    // Still serving: reads, and a consumer group's commit.
    assert_eq!(read_back(&client, acked).await, numbered(acked));
    let mut member = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        ..Default::default()
    });
    member.subscribe(
        ["filling".to_string()],
        GroupSettings::new("full-disk-readers"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while member.assignment().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the group never assigned the partition"
        );
        member.poll(Duration::from_millis(100)).await.unwrap();
    }
    member.commit_sync().await.unwrap();
    assert!(send(&client, acked).await.is_err(), "still no space");

    // Space returns: producers are taken again by themselves.
    std::fs::remove_file(&ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match send(&client, acked).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.code(), ErrorCode::StorageError, "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("producers were not taken again: {e}"),
        }
    }
    acked += 1;

    // Nothing torn: after a restart every acknowledged record, in order.
    drop(member);
    node.shutdown().await.unwrap();
    let node = Node::start(config(data_dir)).await.unwrap();
    assert_eq!(read_back(&node.client(), acked).await, numbered(acked));
    node.shutdown().await.unwrap();
}
