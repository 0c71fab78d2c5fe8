//! Source patterns that pick up topics created after the start, as Kafka
//! Streams' pattern subscriptions do. Every `metadata_max_age` (Kafka's
//! `metadata.max.age.ms`, 5 minutes) the instance lists the topics; when
//! its patterns match a different set, it stops its stream threads
//! (each commits and leaves the group, as on `close`), resolves the
//! patterns again, prepares the topics (internal ones for the new
//! partition counts, co-partitioning checked) and starts new threads,
//! whose group assignment then covers the new topics' partitions. Stores
//! stay on disk, so tasks that existed before resume where they were.
//!
//! A change that cannot be taken (a matched topic whose partition count
//! breaks co-partitioning, a listing that fails) is logged and the
//! threads go on with the topics they had; the next look tries again.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;
use spool_client::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::StreamsConfig;
use super::metrics::Metrics;
use super::task::Shared;
use super::{supervise, thread, topics};
use crate::topology::{TopicName, Topology};
use crate::{Result, StreamsError};

/// What starting a generation of stream threads needs.
pub(super) struct Threads {
    pub client: Client,
    pub config: Arc<StreamsConfig>,
    pub shared: Shared,
    pub metrics: Arc<Metrics>,
    pub instance: String,
    /// The instance's stop: a failed thread may set it.
    pub stop: Arc<watch::Sender<bool>>,
    /// The running generation's threads, and its own stop.
    pub running: Arc<Mutex<Generation>>,
}

/// One generation of stream threads.
#[derive(Default)]
pub(super) struct Generation {
    pub handles: Vec<JoinHandle<Result<()>>>,
    pub stop: Option<Arc<watch::Sender<bool>>>,
    /// Passes the instance's stop on to this generation.
    forwarder: Option<JoinHandle<()>>,
    /// The previous generation's threads while they stop: `halt` aborts
    /// them too.
    pub stopping: Vec<tokio::task::AbortHandle>,
}

impl Threads {
    /// Starts `config.num_threads` threads over `topology`, stopped by
    /// the instance's stop or by the generation's own.
    pub fn start(&self, topology: Arc<Topology>, shared: Shared) {
        let (stop, stopped) = watch::channel(false);
        let stop = Arc::new(stop);
        // The instance's stop stops the generation too.
        let (generation, mut instance) = (Arc::clone(&stop), self.stop.subscribe());
        let forwarder = tokio::spawn(async move {
            let _ = instance.wait_for(|s| *s).await;
            let _ = generation.send(true);
        });
        let handles = (0..self.config.num_threads)
            .map(|index| {
                let thread = thread::StreamThread {
                    index,
                    client: self.client.clone(),
                    config: Arc::clone(&self.config),
                    topology: Arc::clone(&topology),
                    shared: shared.clone(),
                    metrics: Arc::clone(&self.metrics),
                    instance: self.instance.clone(),
                };
                tokio::spawn(supervise(thread, Arc::clone(&self.stop), stopped.clone()))
            })
            .collect();
        *self.running.lock() = Generation {
            handles,
            stop: Some(stop),
            forwarder: Some(forwarder),
            stopping: Vec::new(),
        };
    }

    /// Stops the running generation and waits for its threads (each
    /// commits and leaves the group); the first error of one.
    async fn stop_generation(&self) -> Result<()> {
        let generation = std::mem::take(&mut *self.running.lock());
        if let Some(forwarder) = generation.forwarder {
            forwarder.abort();
        }
        if let Some(stop) = generation.stop {
            let _ = stop.send(true);
        }
        self.running.lock().stopping = generation
            .handles
            .iter()
            .map(JoinHandle::abort_handle)
            .collect();
        let mut outcome = Ok(());
        for handle in generation.handles {
            let result = handle
                .await
                .map_err(|e| StreamsError::Stopped(format!("a stream thread panicked: {e}")))
                .and_then(|r| r);
            if let Err(e) = result {
                tracing::warn!(error = %e, "a stream thread stopped with an error");
                if outcome.is_ok() {
                    outcome = Err(e);
                }
            }
        }
        self.running.lock().stopping.clear();
        outcome
    }
}

/// The topics the patterns of a resolved topology matched.
pub(super) fn matched(topology: &Topology) -> BTreeSet<String> {
    topology
        .source_topics()
        .filter(|t| !topology.sources.contains_key(*t))
        .filter_map(|t| match t {
            TopicName::User(name) => Some(name.clone()),
            TopicName::Internal(_) => None,
        })
        .collect()
}

/// Looks for new matching topics until the instance stops (see the
/// module's comment). `unresolved` is the topology as built.
pub(super) async fn watch(
    unresolved: Topology,
    mut current: BTreeSet<String>,
    threads: Threads,
    mut stopped: watch::Receiver<bool>,
) -> Result<()> {
    let interval = threads.config.metadata_max_age;
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
        let found = tokio::select! {
            _ = stopped.wait_for(|s| *s) => return Ok(()),
            found = look(&unresolved, &threads, &current) => found,
        };
        let Some((topology, shared)) = found else {
            continue;
        };
        let now = matched(&topology);
        tracing::info!(before = ?current, now = ?now, "source patterns match other topics; restarting the stream threads");
        let stopped_generation = threads.stop_generation().await;
        if *stopped.borrow() {
            // `close` came meanwhile: it hears of the threads' last
            // commits from here.
            return stopped_generation;
        }
        threads.start(Arc::new(topology), shared);
        current = now;
    }
}

/// The topology resolved against the topics now, prepared, if its
/// patterns match other topics than `current`.
async fn look(
    unresolved: &Topology,
    threads: &Threads,
    current: &BTreeSet<String>,
) -> Option<(Topology, Shared)> {
    let (client, config) = (&threads.client, &threads.config);
    let existing = match client.admin().list_topics().await {
        Ok(existing) => existing,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list topics for source patterns; trying again later");
            return None;
        }
    };
    let mut topology = unresolved.clone();
    if let Err(e) = topology.resolve_patterns(&existing, &config.application_id) {
        tracing::warn!(error = %e, "source patterns cannot be resolved now; the threads go on with the topics they have");
        return None;
    }
    if matched(&topology) == *current {
        return None;
    }
    let prepared = async {
        topics::prepare(client, &topology, config).await?;
        topics::sink_partitions(client, &topology).await
    };
    match prepared.await {
        Ok(counts) => {
            let shared = Shared {
                partition_counts: Arc::new(counts),
                ..threads.shared.clone()
            };
            Some((topology, shared))
        }
        Err(e) => {
            tracing::error!(error = %e, "source patterns match new topics that cannot be read; going on without them");
            None
        }
    }
}
