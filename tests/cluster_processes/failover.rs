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

/// An admin client rides through the death of the controller's leader
/// when that broker is also the one it bootstrapped from: each call
/// right after the kill (create, describe, alter, grow, list, delete)
/// reaches the new controller leader through the rest of its bootstrap
/// list, whose brokers wait out the election. Checked to fail when the
/// client forgets the rest of its bootstrap list once connected (as it
/// did): the first call then fails after `Admin`'s 60 s of retries with
/// "tcp connect error" to the dead broker, the only one it knows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_ride_through_the_controllers_death() {
    let mut cluster = Cluster::start(&[1, 2, 3]);
    create_topic(&cluster).await;
    let controller = controller_leader(&cluster);
    let mut bootstrap = vec![cluster.addresses[&controller].clone()];
    bootstrap.extend(
        cluster
            .addresses
            .iter()
            .filter(|(node, _)| **node != controller)
            .map(|(_, address)| address.clone()),
    );
    let admin = spool_client::Client::connect(&bootstrap.join(","))
        .await
        .unwrap()
        .admin();
    cluster.kill(controller);

    let started = Instant::now();
    admin
        .create_replicated_topic("after-kill", 1, 3, &[])
        .await
        .expect("created through the new controller leader");
    let created = started.elapsed();
    admin
        .alter_configs("after-kill", &[("retention.ms", "3600000")])
        .await
        .expect("configs altered");
    admin
        .create_partitions("after-kill", 2)
        .await
        .expect("partitions added");
    let described = admin.describe_topic("after-kill").await.unwrap();
    assert_eq!(described.partitions.len(), 2);
    assert!(
        described
            .configs
            .contains(&("retention.ms".to_string(), "3600000".to_string())),
        "{:?}",
        described.configs
    );
    assert!(admin
        .list_topics()
        .await
        .unwrap()
        .contains(&"after-kill".to_string()));
    admin.delete_topic("after-kill").await.expect("deleted");
    eprintln!("the first admin call after the kill took {created:?}");
}

/// The controller's leader as `spool cluster status` reports it.
fn controller_leader(cluster: &Cluster) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = cluster_status(cluster, cluster.answering()[0]);
        let leader = status
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("brokers (controller leader: "))
            .and_then(|rest| rest.trim_end_matches(')').parse().ok());
        match leader {
            Some(leader) if cluster.answering().contains(&leader) => return leader,
            _ => assert!(Instant::now() < deadline, "no controller leader: {status}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
