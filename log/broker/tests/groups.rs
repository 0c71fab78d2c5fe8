//! Consumer groups end to end: members join, one is killed, one leaves, a
//! static member restarts; every record is consumed, committed offsets never
//! go backwards, and no partition has two owners in one generation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use spool_broker::broker::{Broker, BrokerConfig, GroupConfig};
use spool_broker::EmbeddedTransport;
use spool_client::{
    Assignor, Client, ConsumerConfig, GroupSettings, OffsetReset, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use spool_protocol::proto::OffsetFetchRequest;
use tokio::sync::watch;

const TOPIC: &str = "events";
const PARTITIONS: u32 = 6;
const GROUP: &str = "workers";

#[derive(Default)]
struct History {
    /// (consumer, partition, offset) of every record a consumer returned.
    consumed: Vec<(String, u32, u64)>,
    /// (generation, consumer, partitions) after each poll.
    ownership: Vec<(i32, String, BTreeSet<TopicPartition>)>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    Running,
    Kill,
    Close,
}

async fn broker(dir: &std::path::Path) -> Client {
    let mut config = BrokerConfig::new(dir);
    config.groups = GroupConfig {
        min_session_timeout: Duration::from_millis(100),
        tick: Duration::from_millis(20),
        ..Default::default()
    };
    EmbeddedTransport::client(Broker::open(config).await.unwrap())
}

fn settings(assignor: Assignor, instance: Option<&str>) -> GroupSettings {
    GroupSettings {
        instance_id: instance.map(str::to_string),
        assignors: vec![assignor],
        session_timeout: Duration::from_millis(600),
        heartbeat_interval: Duration::from_millis(50),
        rebalance_timeout: Duration::from_millis(1500),
        auto_commit: false,
        ..GroupSettings::new(GROUP)
    }
}

/// Runs a consumer until told to stop; returns its task.
fn run_consumer(
    client: &Client,
    name: &str,
    settings: GroupSettings,
    history: Arc<Mutex<History>>,
) -> (watch::Sender<Stop>, tokio::task::JoinHandle<()>) {
    let (stop, mut stopped) = watch::channel(Stop::Running);
    let config = ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(50),
        ..Default::default()
    };
    let mut consumer = client.consumer(config);
    consumer.subscribe([TOPIC], settings);
    let name = name.to_string();
    let task = tokio::spawn(async move {
        loop {
            let mode = *stopped.borrow_and_update();
            match mode {
                Stop::Kill => {
                    drop(consumer); // no commit, no leave: like kill -9
                    return;
                }
                Stop::Close => {
                    consumer.close().await.unwrap();
                    return;
                }
                Stop::Running => {}
            }
            let records = consumer.poll(Duration::from_millis(50)).await.unwrap();
            let (generation, _) = consumer.group_generation().unwrap();
            {
                let mut h = history.lock();
                h.ownership.push((
                    generation,
                    name.clone(),
                    consumer.assignment().into_iter().collect(),
                ));
                h.consumed.extend(
                    records
                        .iter()
                        .map(|r| (name.clone(), r.partition, r.offset)),
                );
            }
            // A failed commit means a rebalance moved on; the next poll rejoins.
            let _ = consumer.commit_sync().await;
        }
    });
    (stop, task)
}

async fn committed(client: &Client) -> BTreeMap<u32, u64> {
    let response = client
        .offset_fetch(OffsetFetchRequest {
            require_stable: false,
            group_id: GROUP.into(),
            topics: vec![],
        })
        .await
        .unwrap();
    response
        .offsets
        .into_iter()
        .filter(|c| c.topic == TOPIC)
        .map(|c| (c.partition, c.offset))
        .collect()
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scenario(assignor: Assignor) {
    let dir = tempfile::tempdir().unwrap();
    let client = broker(dir.path()).await;
    client
        .admin()
        .create_topic(TOPIC, PARTITIONS, &[])
        .await
        .unwrap();
    let history = Arc::new(Mutex::new(History::default()));

    // A producer writes throughout.
    let producer = client.producer(ProducerConfig::default());
    let produced = Arc::new(Mutex::new(0u64));
    let (stop_producing, producing) = watch::channel(false);
    let producer_task = {
        let produced = Arc::clone(&produced);
        tokio::spawn(async move {
            let mut i = 0u64;
            while !*producing.borrow() {
                for _ in 0..50 {
                    producer
                        .send(
                            ProducerRecord::new(TOPIC, format!("r{i}")).key(format!("k{}", i % 97)),
                        )
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                    i += 1;
                }
                *produced.lock() = i;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // Watch committed offsets: they must never go backwards.
    let commits_seen = Arc::new(Mutex::new(Vec::<BTreeMap<u32, u64>>::new()));
    let watcher = {
        let (client, commits_seen) = (client.clone(), Arc::clone(&commits_seen));
        tokio::spawn(async move {
            loop {
                let now = committed(&client).await;
                commits_seen.lock().push(now);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    let (stop_a, a) = run_consumer(&client, "a", settings(assignor, None), Arc::clone(&history));
    let (stop_b, b) = run_consumer(&client, "b", settings(assignor, None), Arc::clone(&history));
    let (stop_c, c) = run_consumer(
        &client,
        "c",
        settings(assignor, Some("c-instance")),
        Arc::clone(&history),
    );
    let owners = |h: &History| {
        h.ownership
            .iter()
            .rev()
            .take(30)
            .map(|(_, n, p)| (n.clone(), p.len()))
            .collect::<BTreeMap<_, _>>()
    };
    wait_until("all three consumers own partitions", || {
        owners(&history.lock()).values().filter(|n| **n > 0).count() == 3
    })
    .await;

    stop_a.send(Stop::Kill).unwrap();
    a.await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await; // past a's session timeout
    stop_b.send(Stop::Close).unwrap();
    b.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The static member restarts within its session timeout: same
    // generation, same partitions, no rebalance.
    let before = history
        .lock()
        .ownership
        .iter()
        .rev()
        .find(|(_, n, _)| n == "c")
        .cloned()
        .unwrap();
    stop_c.send(Stop::Close).unwrap();
    c.await.unwrap();
    let (stop_c2, c2) = run_consumer(
        &client,
        "c2",
        settings(assignor, Some("c-instance")),
        Arc::clone(&history),
    );
    wait_until("the static member is back", || {
        history.lock().ownership.iter().any(|(_, n, _)| n == "c2")
    })
    .await;
    let after = history
        .lock()
        .ownership
        .iter()
        .find(|(_, n, _)| n == "c2")
        .cloned()
        .unwrap();
    assert_eq!(
        (before.0, &before.2),
        (after.0, &after.2),
        "static rejoin kept generation and partitions"
    );
    assert_eq!(
        after.2.len(),
        PARTITIONS as usize,
        "the last member owns everything"
    );

    stop_producing.send(true).unwrap();
    producer_task.await.unwrap();
    let total = *produced.lock();
    let end_offsets: BTreeMap<u32, u64> = client
        .admin()
        .describe_topic(TOPIC)
        .await
        .unwrap()
        .partitions
        .iter()
        .map(|p| (p.partition, p.high_watermark))
        .collect();
    assert_eq!(end_offsets.values().sum::<u64>(), total);
    wait_until("everything is committed", || {
        let seen = commits_seen.lock();
        seen.last().is_some_and(|c| *c == end_offsets)
    })
    .await;
    stop_c2.send(Stop::Close).unwrap();
    c2.await.unwrap();
    watcher.abort();

    let history = history.lock();
    // Every record was consumed (at least once).
    let consumed: BTreeSet<(u32, u64)> =
        history.consumed.iter().map(|(_, p, o)| (*p, *o)).collect();
    for (partition, end) in &end_offsets {
        for offset in 0..*end {
            assert!(
                consumed.contains(&(*partition, offset)),
                "{partition}/{offset} was never consumed"
            );
        }
    }
    // Committed offsets never went backwards.
    let seen = commits_seen.lock();
    for pair in seen.windows(2) {
        for (partition, offset) in &pair[0] {
            assert!(
                pair[1].get(partition).is_some_and(|later| later >= offset),
                "commit of {partition} went back: {pair:?}"
            );
        }
    }
    // No partition had two owners in one generation.
    let mut by_generation: BTreeMap<i32, BTreeMap<TopicPartition, BTreeSet<String>>> =
        BTreeMap::new();
    for (generation, name, partitions) in &history.ownership {
        for tp in partitions {
            by_generation
                .entry(*generation)
                .or_default()
                .entry(tp.clone())
                .or_default()
                .insert(name.clone());
        }
    }
    for (generation, owners) in &by_generation {
        for (tp, names) in owners {
            // c and c2 are the same static member.
            let distinct: BTreeSet<&str> = names
                .iter()
                .map(|n| if n == "c2" { "c" } else { n.as_str() })
                .collect();
            assert_eq!(
                distinct.len(),
                1,
                "generation {generation}: {tp:?} owned by {names:?}"
            );
        }
    }
    assert!(
        by_generation.len() >= 3,
        "the scenario went through several generations: {:?}",
        by_generation.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_range_group_survives_kill_leave_and_static_restart() {
    scenario(Assignor::Range).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_group_survives_kill_leave_and_static_restart() {
    scenario(Assignor::CooperativeSticky).await;
}

#[tokio::test]
async fn cooperative_members_keep_what_they_still_own() {
    let dir = tempfile::tempdir().unwrap();
    let client = broker(dir.path()).await;
    client
        .admin()
        .create_topic(TOPIC, PARTITIONS, &[])
        .await
        .unwrap();
    let config = ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(20),
        ..Default::default()
    };
    let mut first = client.consumer(config.clone());
    first.subscribe([TOPIC], settings(Assignor::CooperativeSticky, None));
    first.poll(Duration::from_millis(10)).await.unwrap();
    assert_eq!(first.assignment().len(), PARTITIONS as usize);
    let mut second = client.consumer(config);
    second.subscribe([TOPIC], settings(Assignor::CooperativeSticky, None));
    let join = tokio::spawn(async move {
        for _ in 0..100 {
            second.poll(Duration::from_millis(20)).await.unwrap();
            if second.assignment().len() == 3 {
                return second;
            }
        }
        panic!("the second member never got its share");
    });
    let mut kept = BTreeSet::new();
    for _ in 0..100 {
        first.poll(Duration::from_millis(20)).await.unwrap();
        if first.assignment().len() == 3 {
            kept = first.assignment().into_iter().collect();
            break;
        }
    }
    let second = join.await.unwrap();
    assert_eq!(kept.len(), 3);
    let theirs: BTreeSet<TopicPartition> = second.assignment().into_iter().collect();
    assert!(kept.is_disjoint(&theirs));
}

#[tokio::test]
async fn async_commits_land_and_stale_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let client = broker(dir.path()).await;
    client.admin().create_topic(TOPIC, 1, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig::default());
    for i in 0..10 {
        producer
            .send_and_wait(ProducerRecord::new(TOPIC, format!("{i}")))
            .await
            .unwrap();
    }
    let config = ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(20),
        ..Default::default()
    };
    let mut consumer = client.consumer(config);
    consumer.subscribe([TOPIC], settings(Assignor::Range, None));
    let mut got = 0;
    while got < 10 {
        got += consumer
            .poll(Duration::from_millis(50))
            .await
            .unwrap()
            .len();
    }
    consumer.commit_async().unwrap().await.unwrap().unwrap();
    assert_eq!(committed(&client).await.get(&0), Some(&10));
    // A commit with a generation the group has left behind is refused.
    let stale = client
        .offset_commit(spool_protocol::proto::OffsetCommitRequest {
            group_id: GROUP.into(),
            generation_id: 999,
            member_id: consumer.group_generation().unwrap().1,
            topics: vec![],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        stale.error,
        spool_protocol::proto::ErrorCode::IllegalGeneration as i32
    );
    consumer.close().await.unwrap();
}

/// Commits are checked as Kafka's classic coordinator checks them: a
/// member that knows the new generation but not yet its assignment is told
/// the rebalance is in progress; a commit naming no member waits for an
/// empty group; an unknown group takes only such commits.
#[tokio::test]
async fn commits_are_refused_as_kafka_refuses_them() {
    use spool_protocol::proto::{
        ErrorCode, GroupProtocol, JoinGroupRequest, OffsetCommitRequest, SyncGroupRequest,
    };
    let dir = tempfile::tempdir().unwrap();
    let client = broker(dir.path()).await;
    let commit = |generation: i32, member: &str, group: &str| OffsetCommitRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        ..Default::default()
    };
    let code = |e: i32| ErrorCode::try_from(e).unwrap();
    let joined = client
        .join_group(JoinGroupRequest {
            group_id: "checked".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocols: vec![GroupProtocol {
                name: "range".into(),
                metadata: Default::default(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(code(joined.error), ErrorCode::None);
    let (member, generation) = (joined.member_id.clone(), joined.generation_id);
    // Joined, not yet synced: the group completes its rebalance.
    let early = client
        .offset_commit(commit(generation, &member, "checked"))
        .await
        .unwrap();
    assert_eq!(code(early.error), ErrorCode::RebalanceInProgress);
    let synced = client
        .sync_group(SyncGroupRequest {
            group_id: "checked".into(),
            generation_id: generation,
            member_id: member.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(code(synced.error), ErrorCode::None);
    let stable = client
        .offset_commit(commit(generation, &member, "checked"))
        .await
        .unwrap();
    assert_eq!(code(stable.error), ErrorCode::None);
    let stale = client
        .offset_commit(commit(generation - 1, &member, "checked"))
        .await
        .unwrap();
    assert_eq!(code(stale.error), ErrorCode::IllegalGeneration);
    let anonymous = client
        .offset_commit(commit(-1, "", "checked"))
        .await
        .unwrap();
    assert_eq!(code(anonymous.error), ErrorCode::UnknownMemberId);
    let stranger = client
        .offset_commit(commit(-1, "nobody", "checked"))
        .await
        .unwrap();
    assert_eq!(code(stranger.error), ErrorCode::UnknownMemberId);
    let unknown = client
        .offset_commit(commit(3, "m", "never-joined"))
        .await
        .unwrap();
    assert_eq!(code(unknown.error), ErrorCode::IllegalGeneration);
    let simple = client
        .offset_commit(commit(-1, "", "never-joined"))
        .await
        .unwrap();
    assert_eq!(code(simple.error), ErrorCode::None);
}

#[tokio::test]
async fn a_leader_that_never_syncs_does_not_stall_the_group() {
    use spool_protocol::proto::{ErrorCode, GroupProtocol, JoinGroupRequest, SyncGroupRequest};
    let dir = tempfile::tempdir().unwrap();
    let client = broker(dir.path()).await;
    let join = |member: &str| JoinGroupRequest {
        group_id: "stalled".into(),
        member_id: member.into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 300,
        protocols: vec![GroupProtocol {
            name: "range".into(),
            metadata: Default::default(),
        }],
        ..Default::default()
    };
    // The first member forms the group alone and leads it; then a second
    // joins and the leader rejoins, so both are in the next generation.
    let first = client.join_group(join("")).await.unwrap();
    let (a, b) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client.join_group(join(&first.member_id)).await
        },
        client.join_group(join(""))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.generation_id, b.generation_id);
    let (leader, follower) = if a.leader_id == a.member_id {
        (a, b)
    } else {
        (b, a)
    };
    // The follower syncs and waits; the leader never sends the assignment.
    let sync = client
        .sync_group(SyncGroupRequest {
            group_id: "stalled".into(),
            generation_id: follower.generation_id,
            member_id: follower.member_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        sync.error,
        ErrorCode::RebalanceInProgress as i32,
        "the wait ends with a rebalance"
    );
    // The follower rejoins alone and leads the next generation.
    let again = client.join_group(join(&follower.member_id)).await.unwrap();
    assert_eq!(again.error, ErrorCode::None as i32);
    assert!(again.generation_id > leader.generation_id);
    assert_eq!(again.leader_id, follower.member_id);
}

/// Kafka's `group.initial.rebalance.delay.ms`: members that start
/// together share the first generation; and a static member replaced by a
/// newer instance is fenced, not told to rejoin.
#[tokio::test]
async fn a_new_group_waits_for_its_first_members_and_a_replaced_static_member_is_fenced() {
    use spool_protocol::proto::{ErrorCode, GroupProtocol, HeartbeatRequest, JoinGroupRequest};
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(dir.path());
    config.groups = GroupConfig {
        min_session_timeout: Duration::from_millis(100),
        tick: Duration::from_millis(20),
        initial_rebalance_delay: Duration::from_millis(500),
        ..Default::default()
    };
    let client = EmbeddedTransport::client(Broker::open(config).await.unwrap());
    let join = |instance: &str| JoinGroupRequest {
        group_id: "starting".into(),
        group_instance_id: instance.into(),
        session_timeout_ms: 5_000,
        rebalance_timeout_ms: 5_000,
        protocols: vec![GroupProtocol {
            name: "range".into(),
            metadata: Default::default(),
        }],
        ..Default::default()
    };
    let early = tokio::spawn({
        let (client, request) = (client.clone(), join("a"));
        async move { client.join_group(request).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = client.join_group(join("b")).await.unwrap();
    let early = early.await.unwrap();
    assert_eq!((early.error, late.error), (0, 0));
    assert_eq!((early.generation_id, late.generation_id), (1, 1));
    assert_eq!(
        early.members.len() + late.members.len(),
        2,
        "the leader sees both"
    );

    let newer = tokio::spawn({
        let (client, request) = (client.clone(), join("a"));
        async move { client.join_group(request).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let beat = client
        .heartbeat(HeartbeatRequest {
            group_id: "starting".into(),
            generation_id: 1,
            member_id: early.member_id.clone(),
            group_instance_id: "a".into(),
        })
        .await
        .unwrap();
    assert_eq!(beat.error, ErrorCode::FencedInstanceId as i32);
    newer.abort();
}
