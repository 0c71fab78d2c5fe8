//! Clients through a failover, tried as a user would: right after the
//! partition leader's broker is killed, `seq 1 50000 | spool produce
//! events --acks all` against the survivors succeeds. Its producer
//! retries retriable failures (not the leader, a leader unreachable)
//! against fresh metadata until its delivery timeout (120 s), so the
//! election costs latency, not an error. With the old bound (30 retries
//! 100 ms apart, about 3 s) this failed with "not the leader; node N
//! leads", naming the dead broker: that bound is the protection tested.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use spool_client::{ConsumerConfig, TopicPartition};

const RECORDS: u64 = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_producer_rides_through_its_leaders_death() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    let killed = leader(&cluster).await;
    cluster.kill(killed);
    let survivors: Vec<&str> = cluster
        .addresses
        .iter()
        .filter(|(node, _)| **node != killed)
        .map(|(_, address)| address.as_str())
        .collect();

    let mut produce = Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(["produce", TOPIC, "--acks", "all", "--bootstrap"])
        .arg(survivors.join(","))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: String = (1..=RECORDS).map(|n| format!("{n}\n")).collect();
    let mut stdin = produce.stdin.take().unwrap();
    // A producer that fails closes its input early: the error to report
    // is its own, so a broken pipe here is not one.
    let feeder = std::thread::spawn(move || stdin.write_all(lines.as_bytes()).is_ok());
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || produce.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let _ = feeder.join();
    assert!(
        output.status.success(),
        "the producer failed {:?} after the kill: {}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr)
    );

    let client = cluster.client(cluster.answering()[0]).await;
    let mut consumer = client.consumer(ConsumerConfig::default());
    let partition = TopicPartition::new(TOPIC, 0);
    consumer.assign([partition.clone()]);
    consumer.seek_to_beginning(&partition).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while (values.len() as u64) < RECORDS && Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    let expected: Vec<String> = (1..=RECORDS).map(|n| n.to_string()).collect();
    assert!(
        values == expected,
        "{} records read back; every line once, in order, expected",
        values.len()
    );
}
