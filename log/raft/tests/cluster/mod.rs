//! An in-process cluster of partition replicas for fault tests: every node
//! has its own directory and segment log, Raft messages cross an
//! [`InProcessNetwork`] whose links the tests cut, slow and make lossy,
//! and a node can crash (vanish from the network, its Raft stopped) and
//! restart from its directory. Each node's segment files are written
//! through its own [`FaultyFileIo`]: its "disk", which tests make fail
//! fsyncs and writes, slow down, or lose power.

#![allow(dead_code)]

pub mod history;
pub mod transactional;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use spool_raft::in_process::InProcessNetwork;
use spool_raft::liveness::{Liveness, LivenessTiming};
use spool_raft::network::RaftRouter;
use spool_raft::ReplicationError;
use spool_raft::{CommittedBatch, LogId, NodeId, PartitionReplica};
use spool_record::{BatchBuilder, BatchIter, Compression};
use spool_storage::config::LogConfig;
use spool_storage::testing::FaultyFileIo;
use spool_storage::{FileIo, PartitionLog, SystemClock};
use tempfile::TempDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use history::History;

pub const GROUP: &str = "events-0";

/// Faster elections than production's, so fault tests take seconds; still
/// well above a loaded two-core machine's scheduling delays.
fn test_raft_config() -> Arc<openraft::Config> {
    raft_config(50, 400, 800)
}

/// A broker's own timings (`partition_raft_config`): a node's heartbeats
/// must go unheard for 2 s before a follower grants a vote, longer than
/// a loaded machine starves a leader (see [`Cluster::start_patient`]).
fn patient_raft_config() -> Arc<openraft::Config> {
    raft_config(100, 1000, 2000)
}

fn raft_config(heartbeat: u64, election_min: u64, election_max: u64) -> Arc<openraft::Config> {
    let config = openraft::Config {
        cluster_name: "test".into(),
        heartbeat_interval: heartbeat,
        election_timeout_min: election_min,
        election_timeout_max: election_max,
        max_in_snapshot_log_to_keep: u64::MAX,
        snapshot_policy: openraft::SnapshotPolicy::Never,
        ..openraft::Config::default()
    };
    Arc::new(config.validate().unwrap())
}

pub struct Cluster {
    pub network: Arc<InProcessNetwork>,
    config: Arc<openraft::Config>,
    voters: Vec<NodeId>,
    dirs: BTreeMap<NodeId, TempDir>,
    disks: BTreeMap<NodeId, Arc<FaultyFileIo>>,
    /// Each running node's liveness task: the group is quiescent, as a
    /// broker's partitions are, so failover runs through node heartbeats.
    liveness: BTreeMap<NodeId, Liveness>,
    running: Running,
}

/// The running replicas, shared with workload tasks.
pub type Running = Arc<RwLock<BTreeMap<NodeId, Arc<PartitionReplica>>>>;

impl Cluster {
    /// Starts one replica per voter and waits for a leader.
    pub async fn start(voters: &[NodeId], seed: u64) -> Cluster {
        Cluster::start_with(voters, seed, test_raft_config()).await
    }

    /// [`Cluster::start`] with a broker's own election timings, for tests
    /// that assert that no fair election happens: with the fast timings,
    /// ten clusters' tests in parallel on two cores can starve a leader
    /// long enough for one.
    pub async fn start_patient(voters: &[NodeId], seed: u64) -> Cluster {
        Cluster::start_with(voters, seed, patient_raft_config()).await
    }

    async fn start_with(voters: &[NodeId], seed: u64, config: Arc<openraft::Config>) -> Cluster {
        let mut cluster = Cluster {
            network: InProcessNetwork::new(seed),
            config,
            voters: voters.to_vec(),
            dirs: voters
                .iter()
                .map(|&n| (n, tempfile::tempdir().unwrap()))
                .collect(),
            disks: voters.iter().map(|&n| (n, FaultyFileIo::new())).collect(),
            liveness: BTreeMap::new(),
            running: Running::default(),
        };
        for &node in voters {
            cluster.start_node(node).await;
        }
        cluster.wait_for_leader(Duration::from_secs(20)).await;
        cluster
    }

    /// Starts (or restarts) `node` from its directory.
    pub async fn start_node(&mut self, node: NodeId) {
        let config = LogConfig::from_pairs([("segment.bytes", "4096")]).unwrap();
        let disk = Arc::clone(&self.disks[&node]) as Arc<dyn FileIo>;
        let dir = self.dirs[&node].path();
        let log = PartitionLog::open_with_io(dir, config, Arc::new(SystemClock), disk).unwrap();
        let transport = self.network.transport(node);
        let replica = PartitionReplica::start(
            node,
            GROUP,
            Arc::new(log),
            Arc::clone(&transport),
            Arc::clone(&self.config),
        )
        .await
        .unwrap();
        let router = Arc::new(RaftRouter::default());
        router.register_quiescent(GROUP, replica.raft().clone());
        let timing = LivenessTiming::from_raft(&self.config);
        let liveness = Liveness::spawn(node, Arc::clone(&router), transport, timing);
        self.liveness.insert(node, liveness);
        self.network.add_node(node, router);
        replica.initialize(&self.voters).await.unwrap();
        self.running.write().insert(node, Arc::new(replica));
    }

    /// Stops `node` abruptly: it vanishes from the network at once and its
    /// Raft stops; what it wrote stays in its directory.
    pub async fn crash(&mut self, node: NodeId) {
        self.network.remove_node(node);
        self.liveness.remove(&node);
        let replica = self.running.write().remove(&node).expect("node is running");
        replica.shutdown().await.unwrap();
    }

    /// Cuts the power of `nodes` at once: they leave the network together,
    /// their Raft stops, and each disk keeps only what was synced (see
    /// [`FaultyFileIo::power_cut`]). Returns the bytes the cut dropped.
    pub async fn power_cut(&mut self, nodes: &[NodeId]) -> u64 {
        for &node in nodes {
            self.network.remove_node(node);
        }
        for &node in nodes {
            self.crash(node).await;
        }
        let mut dropped = 0;
        for node in nodes {
            dropped += self.disks[node].power_cut().unwrap();
        }
        dropped
    }

    /// The disk `node`'s segment files are written through.
    pub fn disk(&self, node: NodeId) -> Arc<FaultyFileIo> {
        Arc::clone(&self.disks[&node])
    }

    pub fn replica(&self, node: NodeId) -> Arc<PartitionReplica> {
        Arc::clone(&self.running.read()[&node])
    }

    pub fn running(&self) -> Vec<NodeId> {
        self.running.read().keys().copied().collect()
    }

    /// A client of the running nodes, for workload tasks.
    pub fn client(&self) -> ClusterClient {
        ClusterClient {
            running: Arc::clone(&self.running),
            last_leader: Arc::default(),
        }
    }

    /// A running node that believes it leads, once one does.
    pub async fn wait_for_leader(&self, timeout: Duration) -> NodeId {
        self.wait_for_leader_among(&self.running(), timeout).await
    }

    pub async fn wait_for_leader_among(&self, nodes: &[NodeId], timeout: Duration) -> NodeId {
        let deadline = Instant::now() + timeout;
        loop {
            for &node in nodes {
                if self.replica(node).leader() == Some(node) {
                    return node;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader among {nodes:?} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn produce(
        &self,
        value: &str,
        timeout: Duration,
    ) -> Result<CommittedBatch, ReplicationError> {
        self.client().produce(value, timeout).await
    }

    /// Waits until every running node's high watermark is `offset`.
    pub async fn wait_for_convergence(&self, offset: u64, timeout: Duration) {
        let replicas: Vec<_> = self.running.read().values().cloned().collect();
        for replica in replicas {
            replica
                .wait_for_high_watermark(offset, timeout)
                .await
                .unwrap();
        }
    }

    /// Acknowledges one more record, waits until every running replica has
    /// committed everything up to it, and returns each one's committed log.
    pub async fn converged_logs(&self, timeout: Duration) -> Vec<(NodeId, Vec<(u64, String)>)> {
        let last = self
            .produce("sentinel", timeout)
            .await
            .expect("a final write");
        self.wait_for_convergence(last.next_offset, timeout).await;
        self.running()
            .into_iter()
            .map(|node| (node, self.committed_records(node)))
            .collect()
    }

    /// [`Cluster::converged_logs`], then: the logs are identical, and the
    /// history is clean, each replica's final read_committed view included.
    pub async fn converge_and_check(&self, mut history: History) {
        let finals = self.converged_logs(Duration::from_secs(30)).await;
        let (first_node, first) = &finals[0];
        for (node, records) in &finals {
            assert_eq!(
                records, first,
                "node {node} and node {first_node} hold different logs"
            );
            let (stable, _) = transactional::read_stable(&self.replica(*node), 0);
            history.final_stable_view(*node, &stable);
        }
        history.check(&finals).assert_clean();
    }

    /// Every committed record `node` holds, as (offset, value).
    pub fn committed_records(&self, node: NodeId) -> Vec<(u64, String)> {
        read_committed(&self.replica(node), 0)
    }

    pub async fn shutdown(mut self) {
        for node in self.running() {
            self.crash(node).await;
        }
    }
}

/// Produces and reads through whichever nodes are running.
#[derive(Clone)]
pub struct ClusterClient {
    running: Running,
    /// Where the last write succeeded: a client keeps writing there until
    /// told otherwise, rather than asking a node that may be cut off.
    last_leader: Arc<Mutex<Option<NodeId>>>,
}

impl ClusterClient {
    fn running_nodes(&self) -> Vec<NodeId> {
        self.running.read().keys().copied().collect()
    }

    fn replica(&self, node: NodeId) -> Option<Arc<PartitionReplica>> {
        self.running.read().get(&node).cloned()
    }

    /// Produces `value` through the leader the nodes name, following
    /// not-leader answers, until it is acknowledged or `timeout` passes.
    pub async fn produce(
        &self,
        value: &str,
        timeout: Duration,
    ) -> Result<CommittedBatch, ReplicationError> {
        self.produce_batch(value_batch(value), timeout).await
    }

    /// Appends `batch` through the leader the nodes name, following
    /// not-leader answers and retrying the same bytes after any failure,
    /// until it is acknowledged or `timeout` passes.
    pub async fn produce_batch(
        &self,
        batch: Vec<u8>,
        timeout: Duration,
    ) -> Result<CommittedBatch, ReplicationError> {
        let deadline = Instant::now() + timeout;
        let mut target = self.last_leader.lock().or_else(|| {
            self.running_nodes()
                .into_iter()
                .find_map(|n| self.replica(n)?.leader())
        });
        loop {
            let running = target
                .filter(|n| self.running.read().contains_key(n))
                .or_else(|| self.running.read().keys().next().copied());
            let Some(node) = running else {
                // Every node is down (a power cut): wait for one to return.
                if Instant::now() >= deadline {
                    return Err(ReplicationError::Timeout("no node is running".into()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(replica) = self.replica(node) else {
                target = None;
                continue;
            };
            let result = replica
                .append(batch.clone(), left.min(Duration::from_secs(2)))
                .await;
            match result {
                Ok(batch) => {
                    *self.last_leader.lock() = Some(node);
                    return Ok(batch);
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(ReplicationError::NotLeader {
                    leader: Some(leader),
                }) => {
                    target = Some(leader);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                // A leader cut off from its majority times out and may still
                // believe it leads, and a replica whose Raft stopped names
                // no leader: try the next node, as a client would.
                Err(_) => {
                    let nodes = self.running_nodes();
                    target = nodes
                        .iter()
                        .copied()
                        .find(|&n| n > node)
                        .or(nodes.first().copied());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// The replica of a running node that believes it leads.
    pub fn leader_replica(&self) -> Option<Arc<PartitionReplica>> {
        let running = self.running.read();
        running
            .values()
            .find(|r| r.leader() == Some(r.node()))
            .cloned()
    }
}

/// Writer and reader tasks recording what they were told in a
/// [`History`] until stopped, with a count of their progress: by
/// [`Workload::start`], a producer writing unique values one after
/// another and a reader following the leader's committed records.
pub struct Workload {
    pub history: Arc<Mutex<History>>,
    progress: watch::Receiver<usize>,
    /// What `progress` counts, for failure messages.
    counts: &'static str,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workload {
    /// A workload of `tasks`, which stop once `stop` says so and report
    /// their progress (`counts`) to `progress`.
    pub fn from_tasks(
        history: Arc<Mutex<History>>,
        progress: watch::Receiver<usize>,
        counts: &'static str,
        stop: watch::Sender<bool>,
        tasks: Vec<JoinHandle<()>>,
    ) -> Workload {
        Workload {
            history,
            progress,
            counts,
            stop,
            tasks,
        }
    }

    pub fn start(client: ClusterClient, prefix: &str) -> Workload {
        let history = Arc::new(Mutex::new(History::default()));
        let (stop, stopped) = watch::channel(false);
        let (acked, acknowledged) = watch::channel(0usize);
        let producer = {
            let (client, history, stopped, prefix) = (
                client.clone(),
                Arc::clone(&history),
                stopped.clone(),
                prefix.to_string(),
            );
            tokio::spawn(async move {
                // An idempotent producer: a retry after a lost answer is
                // appended once. A value that fails for good may be in the
                // log or not, so the next one starts a new producer id, as
                // the real producer does.
                let (mut producer_id, mut sequence) = (1i64, 0i32);
                let mut count = 0u64;
                while !*stopped.borrow() {
                    let value = format!("{prefix}-{count}");
                    count += 1;
                    history.lock().sent(&value);
                    let batch = idempotent_batch(&value, producer_id, sequence);
                    match client.produce_batch(batch, Duration::from_secs(5)).await {
                        Ok(batch) => {
                            sequence += 1;
                            history.lock().acknowledged(batch.base_offset, &value);
                            acked.send_modify(|count| *count += 1);
                        }
                        Err(_) => (producer_id, sequence) = (producer_id + 1, 0),
                    }
                }
            })
        };
        let reader = {
            let history = Arc::clone(&history);
            tokio::spawn(async move {
                let mut position = 0u64;
                while !*stopped.borrow() {
                    if let Some(replica) = client.leader_replica() {
                        let records = read_committed(&replica, position);
                        history.lock().read(position, &records);
                        if let Some((last, _)) = records.last() {
                            position = last + 1;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        let tasks = vec![producer, reader];
        Workload::from_tasks(history, acknowledged, "records acknowledged", stop, tasks)
    }

    /// Waits until the tasks' progress reaches `count`.
    pub async fn wait_for(&mut self, count: usize, timeout: Duration) {
        let waited = tokio::time::timeout(timeout, self.progress.wait_for(|n| *n >= count))
            .await
            .is_ok();
        assert!(
            waited,
            "only {} of {count} {} within {timeout:?}",
            *self.progress.borrow(),
            self.counts
        );
    }

    /// Stops the tasks and returns what they recorded.
    pub async fn stop(self) -> History {
        self.stop.send_replace(true);
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.history)
            .ok()
            .expect("tasks ended")
            .into_inner()
    }
}

/// Makes `replica` snapshot everything it applied and purge its Raft log
/// up to there, so that a replica lacking those entries must install the
/// snapshot; returns the snapshot's last log id.
pub async fn snapshot_and_purge(replica: &PartitionReplica, timeout: Duration) -> LogId {
    let raft = replica.raft().clone();
    raft.trigger().snapshot().await.unwrap();
    let applied = raft
        .wait(Some(timeout))
        .metrics(|m| m.snapshot.is_some(), "snapshot built")
        .await
        .unwrap()
        .snapshot
        .unwrap();
    // The leader purges once no replication uses those entries, and looks
    // again only when a member answers; an idle quiescent group's members
    // answer only heartbeats, so the leader heartbeats while it purges.
    raft.runtime_config().heartbeat(true);
    raft.trigger().purge_log(applied.index).await.unwrap();
    let purged = raft
        .wait(Some(timeout))
        .metrics(|m| m.purged == Some(applied), "log purged")
        .await;
    raft.runtime_config().heartbeat(false);
    purged.unwrap();
    applied
}

/// One batch holding one record with `value`.
pub fn value_batch(value: &str) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(1_000, None, Some(value.as_bytes()), &[]);
    builder.build()
}

/// One batch of producer `producer_id` (epoch 0) holding one record with
/// `value` at `sequence`.
pub fn idempotent_batch(value: &str, producer_id: i64, sequence: i32) -> Vec<u8> {
    let mut builder = BatchBuilder::new(Compression::None).producer(producer_id, 0, sequence);
    builder.push(1_000, None, Some(value.as_bytes()), &[]);
    builder.build()
}

/// The committed records of `replica` from `offset` on.
pub fn read_committed(replica: &PartitionReplica, offset: u64) -> Vec<(u64, String)> {
    read_committed_keyed(replica, offset)
        .into_iter()
        .map(|(offset, _, value)| (offset, value))
        .collect()
}

/// The committed records of `replica` from `offset` on, with their keys
/// (empty for none).
pub fn read_committed_keyed(
    replica: &PartitionReplica,
    mut offset: u64,
) -> Vec<(u64, String, String)> {
    let text =
        |bytes: Option<&[u8]>| String::from_utf8(bytes.unwrap_or_default().to_vec()).unwrap();
    let mut records = Vec::new();
    loop {
        let read = replica.read_committed(offset, 64 * 1024).unwrap();
        if read.bytes.is_empty() {
            return records;
        }
        for batch in BatchIter::new(&read.bytes) {
            for record in batch.unwrap().records().unwrap().iter() {
                let record = record.unwrap();
                if record.offset >= offset {
                    records.push((record.offset, text(record.key), text(record.value)));
                }
            }
        }
        offset = read.next_offset;
    }
}
