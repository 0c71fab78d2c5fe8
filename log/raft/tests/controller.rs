//! The controller group on an in-process cluster: brokers registered and
//! topics placed through the group's leader, every broker folding the same
//! image from the metadata log, and the metadata surviving a leader crash
//! and a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spool_raft::in_process::InProcessNetwork;
use spool_raft::metadata::{Controller, MetadataCommand, METADATA_GROUP};
use spool_raft::network::RaftRouter;
use spool_raft::NodeId;
use spool_raft::ReplicationError;
use spool_storage::config::LogConfig;
use spool_storage::{PartitionLog, SystemClock};
use tempfile::TempDir;

const PATIENCE: Duration = Duration::from_secs(30);
const VOTERS: [NodeId; 3] = [1, 2, 3];

struct Nodes {
    network: Arc<InProcessNetwork>,
    dirs: BTreeMap<NodeId, TempDir>,
    running: BTreeMap<NodeId, Controller>,
}

impl Nodes {
    async fn start() -> Nodes {
        let mut nodes = Nodes {
            network: InProcessNetwork::new(5),
            dirs: VOTERS
                .iter()
                .map(|&n| (n, tempfile::tempdir().unwrap()))
                .collect(),
            running: BTreeMap::new(),
        };
        for node in VOTERS {
            nodes.start_node(node).await;
        }
        nodes
    }

    async fn start_node(&mut self, node: NodeId) {
        let log = PartitionLog::open(
            self.dirs[&node].path(),
            LogConfig::default(),
            Arc::new(SystemClock),
        )
        .unwrap();
        let config = openraft::Config {
            heartbeat_interval: 50,
            election_timeout_min: 400,
            election_timeout_max: 800,
            max_in_snapshot_log_to_keep: u64::MAX,
            ..openraft::Config::default()
        };
        let controller = Controller::start(
            node,
            Arc::new(log),
            self.network.transport(node),
            Arc::new(config.validate().unwrap()),
            &VOTERS,
        )
        .await
        .unwrap();
        let router = Arc::new(RaftRouter::default());
        router.register(METADATA_GROUP, controller.replica().raft().clone());
        self.network.add_node(node, router);
        self.running.insert(node, controller);
    }

    async fn crash(&mut self, node: NodeId) {
        self.network.remove_node(node);
        self.running
            .remove(&node)
            .unwrap()
            .shutdown()
            .await
            .unwrap();
    }

    /// The running node that leads the controller group.
    async fn leader(&self) -> NodeId {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some((&node, _)) = self.running.iter().find(|(&n, c)| c.leader() == Some(n)) {
                return node;
            }
            assert!(Instant::now() < deadline, "no controller leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running node's image equals `node`'s.
    async fn converge_on(&self, node: NodeId) {
        let deadline = Instant::now() + PATIENCE;
        let target = self.running[&node].image();
        while self.running.values().any(|c| *c.image() != *target) {
            assert!(Instant::now() < deadline, "images did not converge");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn register_brokers(controller: &Controller) {
    for node in VOTERS {
        let command = MetadataCommand::RegisterBroker {
            node,
            address: format!("127.0.0.1:{}", 9000 + node),
        };
        controller.propose(command, PATIENCE).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_placed_evenly_and_every_broker_folds_the_same_image() {
    let nodes = Nodes::start().await;
    let leader = nodes.leader().await;
    let controller = &nodes.running[&leader];
    register_brokers(controller).await;
    controller
        .create_topic("a", 6, 3, vec![], PATIENCE)
        .await
        .unwrap();
    let b = controller
        .create_topic(
            "b",
            3,
            2,
            vec![("retention.ms".into(), "1000".into())],
            PATIENCE,
        )
        .await
        .unwrap();
    assert_eq!(
        b.config,
        vec![("retention.ms".to_string(), "1000".to_string())]
    );

    let again = controller.create_topic("a", 1, 1, vec![], PATIENCE).await;
    assert!(
        matches!(again, Err(ReplicationError::TopicAlreadyExists(_))),
        "{again:?}"
    );
    let too_wide = controller
        .create_topic("wide", 1, 4, vec![], PATIENCE)
        .await;
    assert!(
        matches!(too_wide, Err(ReplicationError::InvalidConfig { .. })),
        "{too_wide:?}"
    );
    let follower = VOTERS.into_iter().find(|&n| n != leader).unwrap();
    let refused = nodes.running[&follower]
        .create_topic("c", 1, 1, vec![], PATIENCE)
        .await;
    assert!(
        matches!(refused, Err(ReplicationError::NotLeader { leader: Some(l) }) if l == leader),
        "a follower names the leader: {refused:?}"
    );

    nodes.converge_on(leader).await;
    let image = nodes.running[&follower].image();
    assert_eq!(image.brokers.len(), 3);
    assert_eq!(image.topics.keys().collect::<Vec<_>>(), ["a", "b"]);
    let mut leads = BTreeMap::new();
    let mut holds = BTreeMap::new();
    for topic in image.topics.values() {
        for replicas in &topic.replicas {
            *leads.entry(replicas[0]).or_insert(0) += 1;
            for &r in replicas {
                *holds.entry(r).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(
        leads.values().collect::<Vec<_>>(),
        [&3, &3, &3],
        "preferred leaders: {leads:?}"
    );
    assert_eq!(
        holds.values().collect::<Vec<_>>(),
        [&8, &8, &8],
        "replicas: {holds:?}"
    );
    for node in VOTERS {
        nodes.running[&node].shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_survives_a_controller_crash_and_a_restart_rebuilds_the_image() {
    let mut nodes = Nodes::start().await;
    let leader = nodes.leader().await;
    register_brokers(&nodes.running[&leader]).await;
    nodes.running[&leader]
        .create_topic("before", 2, 3, vec![], PATIENCE)
        .await
        .unwrap();
    nodes.crash(leader).await;

    let new_leader = nodes.leader().await;
    assert_ne!(new_leader, leader);
    let controller = &nodes.running[&new_leader];
    controller
        .create_topic("after", 2, 2, vec![], PATIENCE)
        .await
        .unwrap();
    controller
        .propose(
            MetadataCommand::DeleteTopic {
                name: "before".into(),
            },
            PATIENCE,
        )
        .await
        .unwrap();

    nodes.start_node(leader).await;
    nodes.converge_on(new_leader).await;
    let rebuilt = nodes.running[&leader].image();
    assert_eq!(rebuilt.topics.keys().collect::<Vec<_>>(), ["after"]);
    assert_eq!(rebuilt.topics_created, 2);
    for node in VOTERS {
        nodes.running[&node].shutdown().await.unwrap();
    }
}
