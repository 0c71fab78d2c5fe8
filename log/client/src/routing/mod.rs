//! Routing requests to partition leaders, for a gRPC client of a cluster.
//!
//! A client connects to one bootstrap broker. The first request naming a
//! topic asks for its metadata, which lists the brokers and each
//! partition's leader. Produce, fetch and list-offsets requests are then
//! split by leader, sent to each leader concurrently (one lazily opened
//! connection per broker) and their answers merged, so callers still see
//! one request and one response. A partition answered `NOT_LEADER`, or
//! whose leader could not be reached, is forgotten: the next request asks
//! for fresh metadata, and the producer's and consumer's retries then reach
//! the new leader. A single node (metadata with one broker) is always
//! reached through the bootstrap connection.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use parking_lot::RwLock;
use tonic::transport::{Channel, Endpoint};

use crate::{ClientError, Result};
use spool_protocol::proto::spool_client::SpoolClient;
use spool_protocol::proto::*;
use spool_protocol::transport::{CONNECTION_WINDOW_BYTES, MAX_MESSAGE_BYTES, STREAM_WINDOW_BYTES};

mod ordered;
mod requests;

pub(crate) use requests::*;

/// How long a group request keeps finding its coordinator again: a dead
/// coordinator's shard gets a new leader within a few election timeouts.
const COORDINATOR_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// How long a metadata request may take: a broker that accepts
/// connections but answers nothing (stopped, overloaded) must not stall
/// every request; the next attempt asks another broker.
const METADATA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a client waits for its bootstrap broker to learn of a topic
/// created or deleted through another broker (metadata reaches every
/// broker within a Raft round trip or two).
const METADATA_PROPAGATION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a client knows about where partitions and groups live.
#[derive(Default)]
struct RouteState {
    /// Brokers by node id, with a connection each; empty until the first
    /// metadata answer, and on a single node.
    brokers: HashMap<u32, (String, SpoolClient<Channel>)>,
    leaders: HashMap<(String, u32), u32>,
    /// Topics whose leaders are cached.
    known: HashSet<String>,
    /// Each group's coordinator, once found.
    /// Coordinators by key type and id.
    coordinators: HashMap<(u32, String), u32>,
}

pub(crate) struct Routes {
    bootstrap: SpoolClient<Channel>,
    bootstrap_address: String,
    /// The bootstrap list's other brokers (connected lazily): where to
    /// turn if the bootstrap broker dies before the client learned the
    /// cluster's brokers from metadata.
    other_bootstraps: Vec<SpoolClient<Channel>>,
    /// Shared with the answers of requests sent in order, which forget
    /// stale leaders after the call returned.
    state: Arc<RwLock<RouteState>>,
    produce_streams: ordered::ProduceStreams,
    /// Metadata requests made so far: each asks the next broker in turn.
    metadata_asks: std::sync::atomic::AtomicUsize,
}

/// A gRPC client for `channel` with spool's message limits.
pub(crate) fn spool_client(channel: Channel) -> SpoolClient<Channel> {
    SpoolClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

fn lazy_client(address: &str) -> Option<SpoolClient<Channel>> {
    let uri = match address.contains("://") {
        true => address.to_string(),
        false => format!("http://{address}"),
    };
    let endpoint = Endpoint::from_shared(uri).ok()?;
    Some(spool_client(tuned(endpoint).connect_lazy()))
}

/// How often a connection with requests open pings its broker, and how
/// long it waits for the answer before it is taken for dead. A produce
/// stream stays open, so without pings a broker that hangs or whose
/// host vanishes (no FIN, no RST) would hold its requests until the
/// kernel gives up, many minutes later.
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `endpoint` with the settings of every connection to a broker.
pub(crate) fn tuned(endpoint: Endpoint) -> Endpoint {
    endpoint
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        // A broker whose host drops packets must not hold a request for
        // the kernel's minutes-long connect timeout.
        .connect_timeout(std::time::Duration::from_secs(10))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
}

impl Routes {
    /// Routes through `bootstrap`, reached at `bootstrap_address`; `others`
    /// are the other addresses of the bootstrap list.
    pub fn new(
        bootstrap: SpoolClient<Channel>,
        bootstrap_address: &str,
        others: &[&str],
    ) -> Routes {
        Routes {
            bootstrap,
            bootstrap_address: bootstrap_address.to_string(),
            other_bootstraps: others.iter().filter_map(|a| lazy_client(a)).collect(),
            state: Arc::default(),
            produce_streams: Default::default(),
            metadata_asks: Default::default(),
        }
    }

    pub fn bootstrap(&self) -> SpoolClient<Channel> {
        self.bootstrap.clone()
    }

    /// Sends `request` split by leader with `send`, and merges the answers.
    pub async fn call<R, F, Fut>(&self, request: R, send: F) -> Result<R::Response>
    where
        R: Partitioned,
        F: Fn(SpoolClient<Channel>, R) -> Fut,
        Fut: Future<Output = Result<R::Response>>,
    {
        self.learn(&request.topic_names()).await;
        let single_node = self.state.read().brokers.len() <= 1;
        if single_node {
            let answer = send(self.bootstrap(), request).await?;
            self.forget(R::stale(&answer));
            return Ok(answer);
        }
        let parts = {
            let state = self.state.read();
            request.split(|topic, partition| {
                state.leaders.get(&(topic.to_string(), partition)).copied()
            })
        };
        let sends = parts.into_iter().map(|(leader, part)| {
            // A partition whose leader is unknown goes to the brokers in
            // turn (its answer names the leader): the bootstrap broker
            // may be the one that died.
            let client = leader
                .and_then(|node| self.state.read().brokers.get(&node).map(|(_, c)| c.clone()))
                .unwrap_or_else(|| self.metadata_source());
            // An unreachable leader answers for its partitions with
            // NOT_LEADER: they are forgotten and retried after a refresh.
            let unreachable = part.failed(
                ErrorCode::NotLeader,
                "the partition's leader is unreachable",
            );
            let sent = send(client, part);
            async move {
                sent.await.unwrap_or_else(|e: ClientError| {
                    tracing::debug!(error = %e, "a partition leader did not answer");
                    unreachable
                })
            }
        });
        let answers = futures::future::join_all(sends).await;
        let mut merged = R::Response::default();
        for answer in answers {
            self.forget(R::stale(&answer));
            R::merge(&mut merged, answer);
        }
        Ok(merged)
    }

    /// Sends a request only the controller's leader can carry out: to the
    /// bootstrap broker, then, while the broker asked cannot be reached or
    /// answers that the request should be retried (it does not lead the
    /// controller, or the controller has no leader), to each other broker
    /// in turn. The last answer or error is the outcome; the caller
    /// (`Admin`) retries it while it is retriable.
    pub async fn call_controller<R, F, Fut>(&self, request: R, send: F) -> Result<R::Response>
    where
        R: ControllerRequest,
        F: Fn(SpoolClient<Channel>, R) -> Fut,
        Fut: Future<Output = Result<R::Response>>,
    {
        let first = send(self.bootstrap(), request.clone()).await;
        if matches!(&first, Ok(answer) if !R::asks_retry(answer)) {
            return first;
        }
        self.learn_brokers().await;
        let mut last = first;
        for client in self.known_brokers() {
            match send(client, request.clone()).await {
                Ok(answer) if !R::asks_retry(&answer) => {
                    self.await_bootstrap_sees(&request).await;
                    return Ok(answer);
                }
                outcome => last = outcome,
            }
        }
        last
    }

    /// Sends a group request to the group's coordinator, finding it first
    /// (`FindCoordinator`, asking the brokers in turn). An answer of
    /// `NOT_COORDINATOR` or `COORDINATOR_NOT_AVAILABLE`, or a coordinator
    /// that cannot be reached, makes the client find the coordinator again
    /// and retry, for up to [`COORDINATOR_PATIENCE`]: a coordinator's
    /// broker may have died, and its shard's new leader takes a few
    /// election timeouts to take over.
    pub async fn call_group<R, F, Fut>(&self, request: R, send: F) -> Result<R::Response>
    where
        R: GroupRequest,
        F: Fn(SpoolClient<Channel>, R) -> Fut,
        Fut: Future<Output = Result<R::Response>>,
    {
        let deadline = tokio::time::Instant::now() + COORDINATOR_PATIENCE;
        loop {
            let outcome = match self
                .coordinator(R::KEY_TYPE, request.coordinator_key())
                .await
            {
                Ok(client) => send(client, request.clone()).await,
                Err(e) => Err(e),
            };
            let moved = match &outcome {
                Ok(answer) => matches!(
                    ErrorCode::try_from(R::error(answer)),
                    Ok(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable)
                ),
                Err(e) => e.is_retriable(),
            };
            if !moved || tokio::time::Instant::now() >= deadline {
                return outcome;
            }
            self.state
                .write()
                .coordinators
                .remove(&(R::KEY_TYPE, request.coordinator_key().to_string()));
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// A connection to `group`'s coordinator (the bootstrap connection on
    /// a single node).
    async fn coordinator(&self, key_type: u32, group: &str) -> Result<SpoolClient<Channel>> {
        if self.state.read().brokers.is_empty() {
            self.learn_brokers().await;
        }
        {
            let state = self.state.read();
            if state.brokers.is_empty() {
                return Ok(self.bootstrap());
            }
            if let Some(node) = state.coordinators.get(&(key_type, group.to_string())) {
                if let Some((_, client)) = state.brokers.get(node) {
                    return Ok(client.clone());
                }
            }
        }
        let mut source = self.metadata_source();
        let asked = source.find_coordinator(FindCoordinatorRequest {
            group_id: group.to_string(),
            key_type,
        });
        let found = match tokio::time::timeout(METADATA_TIMEOUT, asked).await {
            Ok(Ok(found)) => found.into_inner(),
            Ok(Err(status)) => return Err(self.unreachable(status.to_string())),
            Err(_) => return Err(self.unreachable("no answer to FindCoordinator".into())),
        };
        if let Some(e) = ClientError::from_code(found.error, &found.message) {
            return Err(e);
        }
        let mut state = self.state.write();
        let client = match state.brokers.entry(found.node_id) {
            std::collections::hash_map::Entry::Occupied(known) => known.get().1.clone(),
            std::collections::hash_map::Entry::Vacant(new) => {
                let client = lazy_client(&found.address).ok_or_else(|| {
                    self.unreachable(format!("unusable coordinator address {}", found.address))
                })?;
                new.insert((found.address.clone(), client)).1.clone()
            }
        };
        state
            .coordinators
            .insert((key_type, group.to_string()), found.node_id);
        Ok(client)
    }

    /// Sends `request` to every broker (the bootstrap one on a single
    /// node) and merges the answers; brokers that do not answer are left
    /// out.
    pub async fn call_all<R, A, F, Fut>(
        &self,
        request: R,
        send: F,
        merge: impl Fn(&mut A, A),
    ) -> Result<A>
    where
        R: Clone,
        A: Default,
        F: Fn(SpoolClient<Channel>, R) -> Fut,
        Fut: Future<Output = Result<A>>,
    {
        self.learn_brokers().await;
        let clients: Vec<SpoolClient<Channel>> = {
            let state = self.state.read();
            match state.brokers.is_empty() {
                true => vec![self.bootstrap()],
                false => state.brokers.values().map(|(_, c)| c.clone()).collect(),
            }
        };
        let answers = futures::future::join_all(
            clients
                .into_iter()
                .map(|client| send(client, request.clone())),
        )
        .await;
        let mut merged = A::default();
        let mut last_error = None;
        let mut answered = false;
        for answer in answers {
            match answer {
                Ok(answer) => {
                    merge(&mut merged, answer);
                    answered = true;
                }
                Err(e) => last_error = Some(e),
            }
        }
        match (answered, last_error) {
            (false, Some(e)) => Err(e),
            _ => Ok(merged),
        }
    }

    /// Sends a request any broker answers alike (metadata, configs,
    /// producer ids) to the bootstrap broker, then, while the broker that
    /// was asked cannot be reached, to each other known broker: a client
    /// outlives the death of the broker it bootstrapped from.
    pub async fn call_any<R, A, F, Fut>(&self, request: R, send: F) -> Result<A>
    where
        R: Clone,
        F: Fn(SpoolClient<Channel>, R) -> Fut,
        Fut: Future<Output = Result<A>>,
    {
        let first = send(self.bootstrap(), request.clone()).await;
        if !matches!(first, Err(ClientError::Transport { .. })) {
            return first;
        }
        let others = self.known_brokers();
        let mut last = first;
        for client in others {
            last = send(client, request.clone()).await;
            if !matches!(last, Err(ClientError::Transport { .. })) {
                return last;
            }
        }
        last
    }

    /// A connection to every broker the client knows of: those its
    /// metadata named, or, before any metadata, the rest of its bootstrap
    /// list.
    fn known_brokers(&self) -> Vec<SpoolClient<Channel>> {
        let state = self.state.read();
        if state.brokers.is_empty() {
            return self.other_bootstraps.clone();
        }
        state.brokers.values().map(|(_, c)| c.clone()).collect()
    }

    fn unreachable(&self, reason: String) -> ClientError {
        ClientError::Transport {
            address: self.bootstrap_address.clone(),
            reason,
        }
    }

    /// Waits (a bounded time) until the bootstrap broker's metadata shows
    /// what another broker's controller just did, so that a program that
    /// created a topic can use it at once through its own broker. A
    /// bootstrap broker that does not answer is not waited for: it may be
    /// the broker that died.
    async fn await_bootstrap_sees<R: ControllerRequest>(&self, request: &R) {
        let deadline = tokio::time::Instant::now() + METADATA_PROPAGATION_WAIT;
        while tokio::time::Instant::now() < deadline {
            let asked = MetadataRequest {
                topics: request.topic_names(),
            };
            match self.bootstrap().metadata(asked).await {
                Ok(response) if R::visible_in(response.get_ref()) => return,
                Ok(_) => {}
                Err(_) => return,
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Where to ask for metadata: the brokers in turn. A broker holding no
    /// replica of a partition can only name its preferred leader, which
    /// may be down; asking the next broker each time reaches one that holds
    /// a replica and knows the real leader.
    fn metadata_source(&self) -> SpoolClient<Channel> {
        let state = self.state.read();
        let brokers = state.brokers.len();
        if brokers == 0 && !self.other_bootstraps.is_empty() {
            // No metadata yet: the bootstrap list in turn, since the
            // bootstrap broker may be the one that died.
            let turn = self
                .metadata_asks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return match turn % (self.other_bootstraps.len() + 1) {
                0 => self.bootstrap(),
                other => self.other_bootstraps[other - 1].clone(),
            };
        }
        if brokers <= 1 {
            return self.bootstrap();
        }
        let turn = self
            .metadata_asks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match state.brokers.values().nth(turn % (brokers + 1)) {
            Some((_, client)) => client.clone(),
            None => self.bootstrap(),
        }
    }

    /// Learns the cluster's brokers (metadata of no topic in particular),
    /// asking the brokers in turn.
    async fn learn_brokers(&self) {
        let mut source = self.metadata_source();
        let asked = source.metadata(MetadataRequest { topics: vec![] });
        if let Ok(Ok(response)) = tokio::time::timeout(METADATA_TIMEOUT, asked).await {
            let metadata = response.into_inner();
            let mut state = self.state.write();
            for broker in &metadata.brokers {
                if metadata.brokers.len() > 1 && !state.brokers.contains_key(&broker.node_id) {
                    if let Some(client) = lazy_client(&broker.address) {
                        state
                            .brokers
                            .insert(broker.node_id, (broker.address.clone(), client));
                    }
                }
            }
        }
    }

    fn forget(&self, stale: Vec<(String, u32)>) {
        forget(&self.state, stale);
    }

    /// Asks for the metadata of the topics whose leaders are not cached.
    async fn learn(&self, topics: &[String]) {
        let unknown: Vec<String> = {
            let state = self.state.read();
            topics
                .iter()
                .filter(|t| !state.known.contains(*t))
                .cloned()
                .collect()
        };
        if unknown.is_empty() {
            return;
        }
        let request = MetadataRequest { topics: unknown };
        let mut source = self.metadata_source();
        let asked = source.metadata(request);
        let Ok(Ok(response)) = tokio::time::timeout(METADATA_TIMEOUT, asked).await else {
            return; // the request itself will report the broker unreachable
        };
        let metadata = response.into_inner();
        let mut state = self.state.write();
        for broker in &metadata.brokers {
            let current = state.brokers.get(&broker.node_id).map(|(a, _)| a.as_str());
            if current != Some(broker.address.as_str()) {
                let client = match metadata.brokers.len() {
                    // A single node may advertise an unroutable address.
                    1 => Some(self.bootstrap()),
                    _ => lazy_client(&broker.address),
                };
                if let Some(client) = client {
                    state
                        .brokers
                        .insert(broker.node_id, (broker.address.clone(), client));
                }
            }
        }
        for topic in metadata
            .topics
            .iter()
            .filter(|t| t.error == ErrorCode::None as i32)
        {
            for partition in &topic.partitions {
                if partition.leader != 0 {
                    state
                        .leaders
                        .insert((topic.name.clone(), partition.partition), partition.leader);
                }
            }
            state.known.insert(topic.name.clone());
        }
        tracing::debug!(bootstrap = %self.bootstrap_address, brokers = state.brokers.len(), "learned partition leaders");
    }
}

/// Forgets the leaders of `stale` partitions, so that the next request
/// naming their topics asks for fresh metadata.
fn forget(state: &RwLock<RouteState>, stale: Vec<(String, u32)>) {
    if stale.is_empty() {
        return;
    }
    let mut state = state.write();
    for (topic, partition) in stale {
        state.leaders.remove(&(topic.clone(), partition));
        state.known.remove(&topic);
    }
}
