//! Consumer groups in a cluster: members that bootstrap from different
//! brokers form one group at its coordinator (the leader of its offsets
//! partition), and when the coordinator's broker is killed the group moves
//! to the partition's new leader with its committed offsets.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spool_client::{
    Client, ConsumerConfig, GroupSettings, OffsetReset, ProducerConfig, ProducerRecord,
};
use spool_protocol::proto::{Acks, FindCoordinatorRequest, OffsetFetchRequest};
use tokio::sync::watch;

use crate::harness::*;

const TOPIC: &str = "orders";
const GROUP: &str = "billing";

/// What the members consumed, and what each owns now.
#[derive(Default)]
struct Seen {
    values: BTreeSet<String>,
    owned: Vec<(String, usize)>,
    /// Poll failures, shown when the test fails.
    errors: Vec<String>,
}

/// A member of [`GROUP`] reached through `client`, polling and committing
/// until `stop` is set.
fn member(
    client: Client,
    name: &str,
    seen: Arc<Mutex<Seen>>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let settings = GroupSettings {
        session_timeout: Duration::from_millis(1500),
        heartbeat_interval: Duration::from_millis(100),
        rebalance_timeout: Duration::from_millis(3000),
        auto_commit: false,
        ..GroupSettings::new(GROUP)
    };
    let config = ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(50),
        ..Default::default()
    };
    let name = name.to_string();
    tokio::spawn(async move {
        let mut consumer = client.consumer(config);
        consumer.subscribe([TOPIC], settings);
        while !*stop.borrow_and_update() {
            // Errors while the coordinator moves are retried by the next
            // poll, as an application's loop would.
            let records = match consumer.poll(Duration::from_millis(100)).await {
                Ok(records) => records,
                Err(e) => {
                    seen.lock().unwrap().errors.push(format!("{name}: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            {
                let mut seen = seen.lock().unwrap();
                seen.values.extend(records.iter().map(|r| {
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
                }));
                let owned = consumer.assignment().len();
                seen.owned.retain(|(n, _)| *n != name);
                seen.owned.push((name.clone(), owned));
            }
            let _ = consumer.commit_sync().await;
        }
        let _ = consumer.close().await;
    })
}

async fn produce_through(client: &Client, prefix: &str, count: usize) {
    // Retries for up to 30 s: partitions led by a killed broker elect
    // new leaders meanwhile.
    let producer = client.producer(ProducerConfig {
        acks: Acks::All,
        retries: 300,
        ..ProducerConfig::default()
    });
    for i in 0..count {
        let record = ProducerRecord::new(TOPIC, format!("{prefix}-{i}")).key(format!("k{i}"));
        producer.send(record).await.unwrap().await.unwrap();
    }
    producer.flush().await.unwrap();
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_spans_brokers_and_survives_its_coordinators_death() {
    let mut cluster = Cluster::start_configured(&[1, 2, 3], "group_min_session_timeout_ms = 500\n");
    let admin = cluster.client(1).await.admin();
    let deadline = Instant::now() + PATIENCE;
    while let Err(e) = admin.create_replicated_topic(TOPIC, 3, 3, &[]).await {
        assert!(
            Instant::now() < deadline,
            "the topic was never created: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    produce_through(&cluster.client(1).await, "before", 150).await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let (stop, stopped) = watch::channel(false);
    let mut members = Vec::new();
    for (node, name) in [(1, "a"), (2, "b")] {
        let client = cluster.client(node).await;
        members.push(member(client, name, Arc::clone(&seen), stopped.clone()));
    }
    wait_until(
        "both members share the partitions and read everything",
        || {
            let seen = seen.lock().unwrap();
            let owned: usize = seen.owned.iter().map(|(_, n)| n).sum();
            seen.owned.len() == 2
                && seen.owned.iter().all(|(_, n)| *n > 0)
                && owned == 3
                && seen.values.len() == 150
        },
    )
    .await;

    let coordinator = cluster
        .client(3)
        .await
        .find_coordinator(FindCoordinatorRequest {
            key_type: 0,
            group_id: GROUP.into(),
        })
        .await
        .unwrap();
    assert_eq!(coordinator.error, 0, "{}", coordinator.message);
    let killed = u64::from(coordinator.node_id);
    cluster.kill(killed);
    let survivor = *[1, 2, 3].iter().find(|&&n| n != killed).unwrap();
    produce_through(&cluster.client(survivor).await, "after", 150).await;
    let read_all = wait_until(
        "the members read what came after the coordinator died",
        || seen.lock().unwrap().values.len() == 300,
    );
    if tokio::time::timeout(PATIENCE - Duration::from_secs(1), read_all)
        .await
        .is_err()
    {
        let seen = seen.lock().unwrap();
        panic!(
            "read {} of 300; owned {:?}; errors {:?}",
            seen.values.len(),
            seen.owned,
            seen.errors.iter().rev().take(10).collect::<Vec<_>>()
        );
    }

    // The committed offsets moved with the group: every record is
    // committed, as the new coordinator tells.
    let client = cluster.client(survivor).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let fetched = client
            .offset_fetch(OffsetFetchRequest {
                require_stable: false,
                group_id: GROUP.into(),
                topics: vec![],
            })
            .await;
        let total: Option<u64> = fetched
            .as_ref()
            .ok()
            .filter(|f| f.error == 0)
            .map(|f| f.offsets.iter().map(|c| c.offset).sum());
        if total == Some(300) {
            break;
        }
        assert!(Instant::now() < deadline, "committed offsets: {fetched:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let moved = client
        .find_coordinator(FindCoordinatorRequest {
            key_type: 0,
            group_id: GROUP.into(),
        })
        .await
        .unwrap();
    assert_ne!(
        u64::from(moved.node_id),
        killed,
        "the group has a new coordinator"
    );
    stop.send(true).unwrap();
    for member in members {
        member.await.unwrap();
    }
}
