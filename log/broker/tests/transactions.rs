//! Transactions against an embedded broker (a one-voter cluster, the same
//! code as three brokers): atomic visibility across partitions and group
//! offsets, aborted records hidden from read_committed consumers, zombie
//! fencing, timeouts, two-phase commit, and a consume-transform-produce
//! loop killed at random moments that still writes every output once.

use std::collections::BTreeMap;
use std::time::Duration;

use spool_broker::{EmbeddedTransport, Node};
use spool_client::ClientError;
use spool_client::{
    Client, ConsumerConfig, GroupMetadata, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use spool_protocol::proto::{
    ErrorCode, IsolationLevel, ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
    OffsetCommitTopic, OffsetFetchRequest, OffsetSpec,
};

fn reader(isolation: IsolationLevel) -> ConsumerConfig {
    ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(50),
        isolation,
        ..Default::default()
    }
}

fn transactional(client: &Client, id: &str) -> Producer {
    client.producer(ProducerConfig {
        transactional_id: Some(id.to_string()),
        linger: Duration::from_millis(1),
        ..Default::default()
    })
}

/// Every value a consumer of `isolation` reads from `topic`'s partitions
/// within `wait`, by partition in offset order.
async fn read_values(
    client: &Client,
    topic: &str,
    partitions: u32,
    isolation: IsolationLevel,
    wait: Duration,
) -> BTreeMap<u32, Vec<String>> {
    let mut consumer = client.consumer(reader(isolation));
    consumer.assign((0..partitions).map(|p| TopicPartition::new(topic, p)));
    let mut values: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(50)).await.unwrap() {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            values.entry(record.partition).or_default().push(value);
        }
    }
    values
}

fn count(values: &BTreeMap<u32, Vec<String>>) -> usize {
    values.values().map(Vec::len).sum()
}

async fn committed_offset(
    client: &Client,
    group: &str,
    topic: &str,
    stable: bool,
) -> Result<Option<u64>, ErrorCode> {
    let response = client
        .offset_fetch(OffsetFetchRequest {
            group_id: group.into(),
            topics: vec![OffsetCommitTopic {
                name: topic.into(),
                partitions: vec![Default::default()],
            }],
            require_stable: stable,
        })
        .await
        .unwrap();
    if response.error != 0 {
        return Err(ErrorCode::try_from(response.error).unwrap());
    }
    Ok(response
        .offsets
        .first()
        .filter(|o| o.found)
        .map(|o| o.offset))
}

/// ListOffsets "latest" of `topic`'s `partition` for `isolation`.
async fn latest_offset(
    client: &Client,
    topic: &str,
    partition: u32,
    isolation: IsolationLevel,
) -> u64 {
    let response = client
        .list_offsets(ListOffsetsRequest {
            topics: vec![ListOffsetsTopic {
                name: topic.into(),
                partitions: vec![ListOffsetsPartition {
                    partition,
                    spec: OffsetSpec::Latest as i32,
                    timestamp: 0,
                }],
            }],
            isolation_level: isolation as i32,
        })
        .await
        .unwrap();
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error, 0, "{}", partition.message);
    partition.offset
}

/// Waits up to 10 s for `check` to hold; panics naming `what` if not.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not there after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn code_of(e: &ClientError) -> ErrorCode {
    e.code()
}

#[tokio::test]
async fn records_on_two_partitions_and_offsets_become_visible_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("out", 2, &[]).await.unwrap();
    client.admin().create_topic("in", 1, &[]).await.unwrap();
    let producer = transactional(&client, "tx-atomic");
    producer.init_transactions().await.unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..10u32 {
        let record = ProducerRecord::new("out", format!("v{i}")).partition(i % 2);
        let _ack = producer.send(record).await.unwrap();
    }
    producer.flush().await.unwrap();
    producer
        .send_offsets_to_transaction(
            &[(TopicPartition::new("in", 0), 5)],
            &GroupMetadata::new("g"),
        )
        .await
        .unwrap();

    // Open: read_uncommitted sees the records, read_committed nothing, and
    // the offsets are pending.
    let uncommitted = read_values(
        &client,
        "out",
        2,
        IsolationLevel::ReadUncommitted,
        Duration::from_millis(400),
    )
    .await;
    assert_eq!(count(&uncommitted), 10);
    let committed = read_values(
        &client,
        "out",
        2,
        IsolationLevel::ReadCommitted,
        Duration::from_millis(400),
    )
    .await;
    assert_eq!(
        count(&committed),
        0,
        "an open transaction leaked: {committed:?}"
    );
    assert_eq!(
        committed_offset(&client, "g", "in", true).await,
        Err(ErrorCode::UnstableOffsetCommit)
    );
    assert_eq!(committed_offset(&client, "g", "in", false).await, Ok(None));
    assert_eq!(
        latest_offset(&client, "out", 0, IsolationLevel::ReadUncommitted).await,
        5
    );
    assert_eq!(
        latest_offset(&client, "out", 0, IsolationLevel::ReadCommitted).await,
        0
    );

    producer.commit_transaction().await.unwrap();
    // The commit is answered once it is decided, as Kafka answers it, and
    // its markers land just after; each takes an offset of its own.
    let client = &client;
    for partition in [0, 1] {
        eventually("the commit marker", move || async move {
            latest_offset(client, "out", partition, IsolationLevel::ReadCommitted).await == 6
        })
        .await;
    }
    eventually("the committed offsets", || async {
        committed_offset(client, "g", "in", true).await != Err(ErrorCode::UnstableOffsetCommit)
    })
    .await;
    let committed = read_values(
        client,
        "out",
        2,
        IsolationLevel::ReadCommitted,
        Duration::from_millis(400),
    )
    .await;
    assert_eq!(committed[&0], ["v0", "v2", "v4", "v6", "v8"]);
    assert_eq!(committed[&1], ["v1", "v3", "v5", "v7", "v9"]);
    assert_eq!(committed_offset(client, "g", "in", true).await, Ok(Some(5)));
}

#[tokio::test]
async fn aborted_records_never_reach_a_read_committed_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("t", 1, &[]).await.unwrap();
    let producer = transactional(&client, "tx-abort");
    producer.init_transactions().await.unwrap();
    for (values, commit) in [
        (["a", "b"], true),
        (["c", "d"], false),
        (["e", "f"], true),
        (["g", "h"], false),
    ] {
        producer.begin_transaction().unwrap();
        for value in values {
            let _ack = producer
                .send(ProducerRecord::new("t", value))
                .await
                .unwrap();
        }
        match commit {
            true => producer.commit_transaction().await.unwrap(),
            false => producer.abort_transaction().await.unwrap(),
        }
    }
    let committed = read_values(
        &client,
        "t",
        1,
        IsolationLevel::ReadCommitted,
        Duration::from_millis(400),
    )
    .await;
    assert_eq!(committed[&0], ["a", "b", "e", "f"]);
    // read_uncommitted sees every record but never a marker.
    let all = read_values(
        &client,
        "t",
        1,
        IsolationLevel::ReadUncommitted,
        Duration::from_millis(400),
    )
    .await;
    assert_eq!(all[&0], ["a", "b", "c", "d", "e", "f", "g", "h"]);
    // Four markers took offsets too: 8 records + 4 markers.
    let end = client.topic_metadata("t").await.unwrap().partitions[0].high_watermark;
    assert_eq!(end, 12);
}

#[tokio::test]
async fn a_zombie_with_an_older_epoch_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("t", 1, &[]).await.unwrap();
    let zombie = transactional(&client, "tx-zombie");
    zombie.init_transactions().await.unwrap();
    zombie.begin_transaction().unwrap();
    zombie
        .send_and_wait(ProducerRecord::new("t", "zombie-1"))
        .await
        .unwrap();

    // A new instance takes over: the zombie's open transaction is aborted.
    let successor = transactional(&client, "tx-zombie");
    successor.init_transactions().await.unwrap();
    let late = zombie
        .send_and_wait(ProducerRecord::new("t", "zombie-2"))
        .await;
    assert!(late.is_err(), "a fenced producer's write was acknowledged");
    let commit = zombie.commit_transaction().await.unwrap_err();
    assert!(
        matches!(
            code_of(&commit),
            ErrorCode::InvalidProducerEpoch | ErrorCode::InvalidTxnState
        ),
        "{commit}"
    );
    successor.begin_transaction().unwrap();
    let _ack = successor
        .send(ProducerRecord::new("t", "successor"))
        .await
        .unwrap();
    successor.commit_transaction().await.unwrap();
    let committed = read_values(
        &client,
        "t",
        1,
        IsolationLevel::ReadCommitted,
        Duration::from_millis(400),
    )
    .await;
    assert_eq!(committed[&0], ["successor"]);
}

#[tokio::test]
async fn a_transaction_past_its_timeout_is_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("t", 1, &[]).await.unwrap();
    let producer = client.producer(ProducerConfig {
        transactional_id: Some("tx-timeout".into()),
        transaction_timeout: Duration::from_millis(300),
        ..Default::default()
    });
    producer.init_transactions().await.unwrap();
    producer.begin_transaction().unwrap();
    producer
        .send_and_wait(ProducerRecord::new("t", "forgotten"))
        .await
        .unwrap();
    // The sweep (every second) aborts it; the partition's last stable
    // offset then passes the abort marker.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let fetched = client
            .fetch(spool_protocol::proto::FetchRequest {
                isolation_level: IsolationLevel::ReadCommitted as i32,
                topics: vec![spool_protocol::proto::FetchTopic {
                    name: "t".into(),
                    partitions: vec![Default::default()],
                }],
                ..Default::default()
            })
            .await
            .unwrap();
        let partition = &fetched.topics[0].partitions[0];
        if partition.last_stable_offset == 2 {
            assert_eq!(partition.aborted_transactions.len(), 1);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the timed-out transaction was not aborted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let commit = producer.commit_transaction().await.unwrap_err();
    assert_eq!(
        code_of(&commit),
        ErrorCode::InvalidProducerEpoch,
        "{commit}"
    );
    let committed = read_values(
        &client,
        "t",
        1,
        IsolationLevel::ReadCommitted,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(count(&committed), 0);
}

#[tokio::test]
async fn a_prepared_transaction_is_resumed_and_committed_by_a_new_instance() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("t", 1, &[]).await.unwrap();
    let first = client.producer(ProducerConfig {
        transactional_id: Some("tx-2pc".into()),
        transaction_timeout: Duration::from_millis(300),
        ..Default::default()
    });
    first.init_transactions().await.unwrap();
    first.begin_transaction().unwrap();
    let _ack = first
        .send(ProducerRecord::new("t", "prepared"))
        .await
        .unwrap();
    first.prepare_transaction().await.unwrap();
    drop(first);
    // Past the timeout: a prepared transaction is not aborted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resumed = transactional(&client, "tx-2pc");
    assert!(resumed.init_transactions_keep_prepared().await.unwrap());
    let before = read_values(
        &client,
        "t",
        1,
        IsolationLevel::ReadCommitted,
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(count(&before), 0);
    resumed.commit_transaction().await.unwrap();
    let after = read_values(
        &client,
        "t",
        1,
        IsolationLevel::ReadCommitted,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(after[&0], ["prepared"]);
    // Without keep-prepared, a new instance aborts what is prepared.
    resumed.begin_transaction().unwrap();
    let _ack = resumed
        .send(ProducerRecord::new("t", "dropped"))
        .await
        .unwrap();
    resumed.prepare_transaction().await.unwrap();
    let third = transactional(&client, "tx-2pc");
    third.init_transactions().await.unwrap();
    let after = read_values(
        &client,
        "t",
        1,
        IsolationLevel::ReadCommitted,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(after[&0], ["prepared"]);
}

/// Where a loop instance stops: after sending part of a batch's output,
/// after sending its offsets, or not at all (it commits).
#[derive(Clone, Copy, Debug)]
enum Crash {
    MidOutput,
    BeforeCommit,
    Never,
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[tokio::test]
async fn a_consume_transform_produce_loop_killed_at_random_writes_every_output_once() {
    let dir = tempfile::tempdir().unwrap();
    let client = Node::embedded(dir.path()).await.unwrap().client();
    client.admin().create_topic("input", 2, &[]).await.unwrap();
    client.admin().create_topic("output", 2, &[]).await.unwrap();
    let feeder = client.producer(ProducerConfig::default());
    const INPUTS: usize = 300;
    for i in 0..INPUTS {
        let _ack = feeder
            .send(ProducerRecord::new("input", format!("{i}")).partition((i % 2) as u32))
            .await
            .unwrap();
    }
    feeder.flush().await.unwrap();
    let group = GroupMetadata::new("ctp");
    let mut random = Lcg(0x5eed);
    let mut crashes = 0;
    let mut done = false;
    for _instance in 0..200 {
        if done {
            break;
        }
        // A new instance: fences the last one, aborting what it left open,
        // and starts from the offsets committed with its transactions.
        let producer = client.producer(ProducerConfig {
            transactional_id: Some("ctp-loop".into()),
            linger: Duration::from_millis(1),
            ..Default::default()
        });
        producer.init_transactions().await.unwrap();
        let mut consumer = client.consumer(ConsumerConfig {
            max_poll_records: 1 + (random.next() % 20) as usize,
            ..reader(IsolationLevel::ReadCommitted)
        });
        consumer.assign([
            TopicPartition::new("input", 0),
            TopicPartition::new("input", 1),
        ]);
        for p in 0..2 {
            let topic = OffsetCommitTopic {
                name: "input".into(),
                partitions: vec![spool_protocol::proto::OffsetCommitPartition {
                    partition: p,
                    ..Default::default()
                }],
            };
            let fetched = client
                .offset_fetch(OffsetFetchRequest {
                    group_id: "ctp".into(),
                    topics: vec![topic],
                    require_stable: true,
                })
                .await
                .unwrap();
            assert_eq!(fetched.error, 0, "{}", fetched.message);
            if let Some(o) = fetched.offsets.iter().find(|o| o.found) {
                consumer
                    .seek(&TopicPartition::new("input", p), o.offset)
                    .unwrap();
            }
        }
        loop {
            let records = consumer.poll(Duration::from_millis(100)).await.unwrap();
            let positions = consumer.positions();
            let consumed: u64 = positions.iter().map(|(_, o)| *o).sum();
            if records.is_empty() {
                if consumed as usize >= INPUTS {
                    done = true;
                }
                break;
            }
            let crash = match random.next() % 4 {
                0 => Crash::MidOutput,
                1 => Crash::BeforeCommit,
                _ => Crash::Never,
            };
            producer.begin_transaction().unwrap();
            let cut = (random.next() as usize) % records.len();
            for (n, record) in records.iter().enumerate() {
                if matches!(crash, Crash::MidOutput) && n == cut {
                    break;
                }
                let value = format!(
                    "out-{}",
                    String::from_utf8_lossy(record.value.as_ref().unwrap())
                );
                let _ack = producer
                    .send(ProducerRecord::new("output", value).partition(record.partition))
                    .await
                    .unwrap();
            }
            if matches!(crash, Crash::MidOutput) {
                crashes += 1;
                break;
            }
            producer
                .send_offsets_to_transaction(&positions, &group)
                .await
                .unwrap();
            if matches!(crash, Crash::BeforeCommit) {
                producer.flush().await.unwrap();
                crashes += 1;
                break;
            }
            producer.commit_transaction().await.unwrap();
        }
        drop(producer);
    }
    assert!(done, "the loop did not finish");
    assert!(crashes >= 5, "only {crashes} crashes were injected");
    let outputs = read_values(
        &client,
        "output",
        2,
        IsolationLevel::ReadCommitted,
        Duration::from_secs(1),
    )
    .await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for value in outputs.values().flatten() {
        *seen.entry(value.clone()).or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "outputs written twice: {duplicates:?}"
    );
    let missing: Vec<usize> = (0..INPUTS)
        .filter(|i| !seen.contains_key(&format!("out-{i}")))
        .collect();
    assert!(missing.is_empty(), "outputs missing: {missing:?}");
    // The aborted attempts are in the log, hidden: read_uncommitted sees more.
    let everything = read_values(
        &client,
        "output",
        2,
        IsolationLevel::ReadUncommitted,
        Duration::from_secs(1),
    )
    .await;
    assert!(
        count(&everything) > INPUTS,
        "no aborted output was written; the crashes tested nothing"
    );
}

#[tokio::test]
async fn a_coordinator_that_stops_between_its_decision_and_the_markers_is_completed_after_restart()
{
    use spool_broker::broker::{Broker, BrokerConfig};
    use spool_protocol::proto::EndTxnRequest;
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(dir.path());
    config.transactions.crash_after_decision = true;
    // No sweep on this instance: only the restarted coordinator may finish.
    config.transactions.sweep_interval = Duration::from_secs(3600);
    let broker = Broker::open(config).await.unwrap();
    let client = EmbeddedTransport::client(broker.clone());
    client.admin().create_topic("t", 2, &[]).await.unwrap();
    let producer = transactional(&client, "tx-crash");
    producer.init_transactions().await.unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..6u32 {
        let _ack = producer
            .send(ProducerRecord::new("t", format!("v{i}")).partition(i % 2))
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
    let described = client
        .describe_transactions(spool_protocol::proto::DescribeTransactionsRequest {
            transactional_ids: vec!["tx-crash".into()],
        })
        .await
        .unwrap();
    let (producer_id, epoch) = (
        described.transactions[0].producer_id,
        described.transactions[0].producer_epoch,
    );
    let end = EndTxnRequest {
        transactional_id: "tx-crash".into(),
        producer_id,
        producer_epoch: epoch,
        commit: true,
        prepare: false,
        keep_epoch: false,
    };
    let failed = client.end_txn(end.clone()).await.unwrap();
    assert_ne!(failed.error, 0, "the injected fault did not happen");
    drop(producer);
    let pending = read_values(
        &client,
        "t",
        2,
        IsolationLevel::ReadCommitted,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(
        count(&pending),
        0,
        "records of an unmarked transaction leaked"
    );
    drop(client);
    broker.shutdown().await.unwrap();
    drop(broker);

    // The restarted coordinator finds the decision and writes the markers.
    let client = Node::embedded(dir.path()).await.unwrap().client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let values = read_values(
            &client,
            "t",
            2,
            IsolationLevel::ReadCommitted,
            Duration::from_millis(200),
        )
        .await;
        if count(&values) == 6 {
            assert_eq!(values[&0], ["v0", "v2", "v4"]);
            assert_eq!(values[&1], ["v1", "v3", "v5"]);
            break;
        }
        assert_eq!(
            count(&values),
            0,
            "a transaction became visible in part: {values:?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the decided transaction was never completed"
        );
    }
    // The producer's retry of the lost EndTxn is answered as a success.
    let retried = client.end_txn(end).await.unwrap();
    assert_eq!(retried.error, 0, "{}", retried.message);
    assert_eq!(retried.producer_epoch, epoch + 1);
}
