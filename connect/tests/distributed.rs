//! Distributed workers in one process on an embedded broker: two workers
//! share connectors and either answers for all of them; a worker added to
//! the group takes a share of the tasks while the tasks that stay run on,
//! never restarted, and no task ever runs on both workers; a worker shut
//! down hands its tasks over; a deleted connector stops everywhere; a
//! running connector's offsets change through either worker.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use spool_client::Client;
use spool_connect::api::ConfigMap;
use spool_connect::worker::distributed::RunningHere;
use spool_connect::worker::TaskId;
use spool_connect::{
    ConnectError, ConnectorOffset, ConnectorStatus, DistributedConfig, DistributedWorker, State,
    TargetState, WorkerConfig,
};

use common::{broker, props, read_records, wait_for_status, PATIENCE};

const GROUP: &str = "connect-test";

/// A worker of the test group named `id`, with short timeouts so the
/// group notices changes within seconds (6 s is the broker's shortest
/// session).
fn config(dir: &std::path::Path, id: &str) -> DistributedConfig {
    let mut worker = WorkerConfig::new(dir.join("unused.offsets"));
    worker.worker_id = id.to_string();
    worker.group_id = GROUP.to_string();
    worker.offset_flush_interval = Duration::from_millis(100);
    worker.offset_storage_partitions = 5;
    let mut config = DistributedConfig::new(worker);
    config.session_timeout = Duration::from_secs(6);
    config.heartbeat_interval = Duration::from_millis(500);
    config.rebalance_timeout = Duration::from_secs(20);
    config.status_storage_partitions = 2;
    config
}

async fn start(client: &Client, dir: &std::path::Path, id: &str) -> DistributedWorker {
    DistributedWorker::start(client.clone(), config(dir, id))
        .await
        .unwrap()
}

/// A data generator of `tasks` tasks into `topic`, a record every 20 ms
/// at most per task.
fn datagen(topic: &str, tasks: &str) -> ConfigMap {
    props(&[
        ("connector.class", "Datagen"),
        ("kafka.topic", topic),
        ("tasks.max", tasks),
        ("max.interval", "20"),
        ("key.converter", "string"),
        ("value.converter", "json"),
        ("value.converter.schemas.enable", "false"),
    ])
}

fn task(connector: &str, task: u32) -> TaskId {
    TaskId {
        connector: connector.to_string(),
        task,
    }
}

/// Creates connector `name` through `worker`, trying again while the
/// group rebalances (a 409).
async fn create(worker: &DistributedWorker, name: &str, config: ConfigMap) {
    settled(|| worker.add_connector(name, config.clone())).await
}

/// What each worker runs, once `done` holds for it. Read last worker
/// first, so a task seen on a later worker was there before it left an
/// earlier one: a task moving from the first to the last can then never
/// show on both, and one that does ran on both at once.
async fn wait_running(
    workers: &[&DistributedWorker],
    done: impl Fn(&[RunningHere]) -> bool,
) -> Vec<RunningHere> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut running: Vec<RunningHere> = workers.iter().rev().map(|w| w.running()).collect();
        running.reverse();
        let mut seen = BTreeSet::new();
        for here in &running {
            for id in here.tasks.keys() {
                assert!(
                    seen.insert(id.clone()),
                    "{id:?} runs on two workers: {running:?}"
                );
            }
        }
        if done(running.as_slice()) {
            return running;
        }
        assert!(Instant::now() < deadline, "{running:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the status shows the connector and all `tasks` tasks RUNNING,
/// each on the worker `running` says runs it.
fn runs_as(status: &ConnectorStatus, tasks: usize, running: &[(&str, &RunningHere)]) -> bool {
    let runner = |id: &TaskId| {
        running
            .iter()
            .find(|(_, here)| here.tasks.contains_key(id))
            .map(|(name, _)| *name)
    };
    let owner = running
        .iter()
        .find(|(_, here)| here.connectors.contains(&status.name))
        .map(|(name, _)| *name);
    status.connector.state == State::Running
        && Some(status.connector.worker_id.as_str()) == owner
        && status.tasks.len() == tasks
        && status.tasks.iter().all(|t| {
            t.info.state == State::Running
                && Some(t.info.worker_id.as_str()) == runner(&task(&status.name, t.id))
        })
}

fn tasks_of<'a>(here: &'a RunningHere, connector: &'a str) -> impl Iterator<Item = &'a TaskId> {
    here.tasks
        .keys()
        .filter(move |id| id.connector == connector)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_share_the_connectors_and_either_answers_for_all() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["gen", "gen2"]).await;
    let a = start(&client, dir.path(), "worker-a").await;
    let b = start(&client, dir.path(), "worker-b").await;
    create(&a, "gen", datagen("gen", "4")).await;
    create(&b, "gen2", datagen("gen2", "2")).await;

    let running = wait_running(&[&a, &b], |running| {
        running
            .iter()
            .all(|here| here.connectors.len() == 1 && here.tasks.len() == 3)
    })
    .await;
    let named = [("worker-a", &running[0]), ("worker-b", &running[1])];
    for (connector, tasks) in [("gen", 4), ("gen2", 2)] {
        for worker in [&a, &b] {
            let status = wait_for_status(worker, connector, |s| runs_as(s, tasks, &named)).await;
            assert_eq!(status.tasks.len(), tasks);
        }
    }
    // Each worker runs some of the larger connector's tasks.
    assert!(
        running.iter().all(|here| tasks_of(here, "gen").count() > 0),
        "{running:?}"
    );
    assert_eq!(a.connectors().await.unwrap(), ["gen", "gen2"]);
    assert_eq!(b.connector_info("gen").await.unwrap().tasks.len(), 4);
    read_records(&client, "gen", 20).await;
    read_records(&client, "gen2", 20).await;

    // Deleted through one worker, a connector stops on both.
    let deadline = Instant::now() + PATIENCE;
    loop {
        match b.delete_connector("gen2").await {
            Ok(()) => break,
            Err(ConnectError::Rebalancing) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("deleting gen2: {e}"),
        }
    }
    wait_running(&[&a, &b], |running| {
        running
            .iter()
            .all(|here| tasks_of(here, "gen2").count() == 0 && !here.connectors.contains("gen2"))
    })
    .await;
    assert!(matches!(
        a.connector_status("gen2").await,
        Err(ConnectError::UnknownConnector(_))
    ));
    assert_eq!(a.connectors().await.unwrap(), ["gen"]);

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_added_takes_a_share_and_the_tasks_that_stay_are_not_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["gen"]).await;
    let a = start(&client, dir.path(), "worker-a").await;
    create(&a, "gen", datagen("gen", "4")).await;
    let alone = wait_running(&[&a], |running| running[0].tasks.len() == 4).await;
    let named = [("worker-a", &alone[0])];
    wait_for_status(&a, "gen", |s| runs_as(s, 4, &named)).await;

    let b = start(&client, dir.path(), "worker-b").await;
    let shared = wait_running(&[&a, &b], |running| {
        running[0].tasks.len() == 2 && running[1].tasks.len() == 2
    })
    .await;
    // The tasks that stayed on worker-a run with the start number they
    // had: stopped and started again, they would have a new one.
    for (id, start) in &shared[0].tasks {
        assert_eq!(alone[0].tasks.get(id), Some(start), "{id:?} was restarted");
    }
    // The connector stays where it ran.
    assert!(shared[0].connectors.contains("gen"), "{shared:?}");
    assert!(shared[1].connectors.is_empty(), "{shared:?}");
    let named = [("worker-a", &shared[0]), ("worker-b", &shared[1])];
    for worker in [&a, &b] {
        wait_for_status(worker, "gen", |s| runs_as(s, 4, &named)).await;
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_shut_down_hands_its_tasks_over() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["gen"]).await;
    let a = start(&client, dir.path(), "worker-a").await;
    let b = start(&client, dir.path(), "worker-b").await;
    create(&b, "gen", datagen("gen", "4")).await;
    let shared = wait_running(&[&a, &b], |running| {
        running[0].tasks.len() == 2 && running[1].tasks.len() == 2
    })
    .await;
    let owner = match shared[0].connectors.contains("gen") {
        true => "worker-a",
        false => "worker-b",
    };

    b.shutdown().await.unwrap();
    assert!(matches!(
        b.connectors().await,
        Err(ConnectError::WorkerStopped)
    ));
    let alone = wait_running(&[&a], |running| {
        running[0].tasks.len() == 4 && running[0].connectors.contains("gen")
    })
    .await;
    for (id, start) in &shared[0].tasks {
        assert_eq!(alone[0].tasks.get(id), Some(start), "{id:?} was restarted");
    }
    let named = [("worker-a", &alone[0])];
    let status = wait_for_status(&a, "gen", |s| runs_as(s, 4, &named)).await;
    assert_eq!(status.connector.worker_id, "worker-a", "before: {owner}");
    // The records go on: the tasks moved over keep producing.
    let before = read_records(&client, "gen", 1).await.len();
    read_records(&client, "gen", before + 40).await;
    a.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

/// `change` once the group lets it through: tried again while the group
/// rebalances (a 409), as a REST client would.
async fn settled<T, F: std::future::Future<Output = Result<T, ConnectError>>>(
    mut change: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match change().await {
            Err(ConnectError::Rebalancing) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answer => return answer.unwrap(),
        }
    }
}

/// A file source's offsets: `file` read up to byte `position`.
fn file_offset(file: &std::path::Path, position: u64) -> ConnectorOffset {
    let partition = [("filename".to_string(), file.display().to_string().into())];
    let offset = [("position".to_string(), position.into())];
    ConnectorOffset {
        partition: partition.into_iter().collect(),
        offset: Some(offset.into_iter().collect()),
    }
}

/// The committed offsets of connector `name`, once they are `expected`.
async fn wait_offsets(worker: &DistributedWorker, name: &str, expected: &[ConnectorOffset]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let offsets = worker.connector_offsets(name).await.unwrap().offsets;
        if offsets == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{offsets:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offsets_change_on_a_running_connector_through_any_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["off"]).await;
    let a = start(&client, dir.path(), "worker-a").await;
    let b = start(&client, dir.path(), "worker-b").await;
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one\ntwo\nthree\n").unwrap();
    let file = input.display().to_string();
    let source = props(&[
        ("connector.class", "FileStreamSource"),
        ("file", file.as_str()),
        ("topic", "off"),
        ("value.converter", "string"),
    ]);
    create(&a, "tail", source).await;
    let values = |records: Vec<spool_client::ConsumerRecord>| -> Vec<String> {
        let text =
            |r: &spool_client::ConsumerRecord| r.value.as_deref().unwrap_or_default().to_vec();
        records
            .iter()
            .map(|r| String::from_utf8(text(r)).unwrap())
            .collect()
    };
    assert_eq!(
        values(read_records(&client, "off", 3).await),
        ["one", "two", "three"]
    );
    wait_offsets(&b, "tail", &[file_offset(&input, 14)]).await;

    // Through each worker in turn, whichever runs the task: from byte 4,
    // `two` and `three` again; then from the start.
    let altered = settled(|| b.alter_connector_offsets("tail", vec![file_offset(&input, 4)])).await;
    assert!(altered, "the file source's offsets are all the runtime's");
    let mut expected = vec!["one", "two", "three", "two", "three"];
    assert_eq!(values(read_records(&client, "off", 5).await), expected);
    wait_offsets(&a, "tail", &[file_offset(&input, 14)]).await;
    assert!(settled(|| a.reset_connector_offsets("tail")).await);
    expected.extend(["one", "two", "three"]);
    assert_eq!(values(read_records(&client, "off", 8).await), expected);
    let status = wait_for_status(&a, "tail", common::all_running).await;
    assert_eq!(status.tasks.len(), 1, "started again as it was: {status:?}");

    // A paused connector is put back paused.
    wait_offsets(&a, "tail", &[file_offset(&input, 14)]).await;
    settled(|| a.set_target_state("tail", TargetState::Paused)).await;
    assert!(settled(|| b.alter_connector_offsets("tail", vec![file_offset(&input, 8)])).await);
    wait_for_status(&b, "tail", |s| {
        s.connector.state == State::Paused && s.tasks.iter().all(|t| t.info.state == State::Paused)
    })
    .await;
    assert_eq!(
        values(read_records(&client, "off", 8).await).len(),
        8,
        "nothing while paused"
    );
    settled(|| a.set_target_state("tail", TargetState::Started)).await;
    expected.push("three");
    assert_eq!(values(read_records(&client, "off", 9).await), expected);

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}
