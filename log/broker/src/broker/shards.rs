//! Coordination through the partitions (shards) of an internal topic,
//! shared by the group coordinator (`__consumer_offsets`) and the
//! transaction coordinator (`__transaction_state`).
//!
//! A key (a group id, a transactional id) hashes to one shard, and the
//! broker leading that shard's partition coordinates the key, as in Kafka:
//! clients ask any broker which one (`FindCoordinator`), and a broker that
//! does not lead the shard answers `NOT_COORDINATOR`.
//!
//! A shard's state is loaded once per term of leadership: the replica must
//! first have applied its whole log in that term (so everything committed
//! before the term is in the state), then the state is folded from the
//! log. A shard loaded in an earlier term, or over a replica restarted
//! since, is stale and is loaded again; one shard loads at a time, so a
//! term never loads twice.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use spool_protocol::coordinator::shard_of;
use spool_raft::ReplicationError;

use crate::broker::{Broker, Partition};
use crate::{BrokerError, Result};

/// How long loading a shard may wait for its replica to apply its log.
const LOAD_PATIENCE: Duration = Duration::from_secs(10);

/// What a coordinator keeps of one shard while this broker leads it.
pub(crate) trait ShardState: Sized + Send + Sync + 'static {
    /// Folds the state from the shard's committed log. Called once per
    /// term, after the replica applied its whole log.
    fn load(partition: &Arc<Partition>) -> Result<Self>;
}

/// A shard loaded for one term of this broker's leadership. Derefs to its
/// state.
pub(crate) struct Shard<S> {
    pub index: u32,
    state: S,
    partition: Arc<Partition>,
    /// The term of leadership the shard was loaded for.
    term: u64,
}

impl<S> Shard<S> {
    /// Whether this broker still leads the shard in the term it loaded it
    /// for.
    pub fn is_current(&self) -> bool {
        self.partition.replica().leading_term() == Some(self.term)
    }

    /// Whether it is still current through `partition` (a replica
    /// restarted since is a new one).
    fn is_current_for(&self, partition: &Arc<Partition>) -> bool {
        Arc::ptr_eq(&self.partition, partition) && self.is_current()
    }
}

impl<S> Deref for Shard<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.state
    }
}

/// The shards of one internal topic that this broker loaded.
pub(crate) struct Shards<S> {
    topic: &'static str,
    loaded: Mutex<HashMap<u32, Arc<Shard<S>>>>,
    /// Loads one shard at a time, so a shard is loaded once per term.
    loading: tokio::sync::Mutex<()>,
}

impl<S: ShardState> Shards<S> {
    pub fn new(topic: &'static str) -> Shards<S> {
        Shards {
            topic,
            loaded: Mutex::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// The loaded shard that coordinates `key`: `NotCoordinator` when
    /// another broker leads it, `CoordinatorNotAvailable` when nobody can
    /// yet. `on_load` runs for a shard loaded anew, before any request
    /// sees it.
    pub async fn for_key(
        &self,
        broker: &Broker,
        key: &str,
        on_load: impl FnOnce(u32),
    ) -> Result<Arc<Shard<S>>> {
        let partitions = broker
            .cluster
            .controller
            .image()
            .topics
            .get(self.topic)
            .map(|t| t.replicas.len() as u32)
            .ok_or_else(|| BrokerError::CoordinatorNotAvailable {
                key: key.to_string(),
                reason: format!("the internal topic {} does not exist yet", self.topic),
            })?;
        let index = shard_of(key, partitions);
        let partition = broker
            .partition(self.topic, index)
            .map_err(|e| not_coordinator(key, e))?;
        self.load(index, partition, on_load)
            .await
            .map_err(|e| not_coordinator(key, e))
    }

    /// Shard `index` over `partition`, this broker's replica of it, loaded
    /// for the current term.
    pub async fn load(
        &self,
        index: u32,
        partition: Arc<Partition>,
        on_load: impl FnOnce(u32),
    ) -> Result<Arc<Shard<S>>> {
        let current = |loaded: &HashMap<u32, Arc<Shard<S>>>| {
            loaded
                .get(&index)
                .filter(|s| s.is_current_for(&partition))
                .cloned()
        };
        if let Some(shard) = current(&self.loaded.lock()) {
            return Ok(shard);
        }
        let _loading = self.loading.lock().await;
        if let Some(shard) = current(&self.loaded.lock()) {
            return Ok(shard);
        }
        let term = partition.replica().caught_up_term(LOAD_PATIENCE).await?;
        let state = S::load(&partition)?;
        tracing::info!(
            topic = self.topic,
            shard = index,
            term,
            "coordinating a shard"
        );
        on_load(index);
        let shard = Arc::new(Shard {
            index,
            state,
            partition,
            term,
        });
        self.loaded.lock().insert(index, Arc::clone(&shard));
        Ok(shard)
    }

    /// Loads every shard this broker leads, so that listings and sweeps
    /// see them before any request did; `on_load` as for
    /// [`Shards::for_key`].
    pub async fn load_led(&self, broker: &Broker, on_load: impl Fn(u32)) {
        let Some(topic) = broker.topic(self.topic) else {
            return;
        };
        for partition in topic.partitions() {
            if partition.replica().leading_term().is_some() {
                let index = partition.index;
                if let Err(e) = self.load(index, partition, &on_load).await {
                    tracing::debug!(topic = self.topic, shard = index, error = %e, "shard not loaded");
                }
            }
        }
    }

    /// The loaded shards this broker still leads.
    pub fn current(&self) -> Vec<Arc<Shard<S>>> {
        self.loaded
            .lock()
            .values()
            .filter(|s| s.is_current())
            .cloned()
            .collect()
    }

    /// Forgets the shards this broker no longer leads; returns their
    /// indexes.
    pub fn forget_lost(&self) -> Vec<u32> {
        let mut loaded = self.loaded.lock();
        let lost: Vec<u32> = loaded
            .iter()
            .filter(|(_, shard)| !shard.is_current())
            .map(|(&index, _)| index)
            .collect();
        loaded.retain(|index, _| !lost.contains(index));
        lost
    }
}

/// A replica's leadership error, as a request for a coordinated key sees
/// it: not leading the key's partition is not coordinating the key, and a
/// partition not ready in time has no coordinator yet.
pub(crate) fn not_coordinator(key: &str, e: BrokerError) -> BrokerError {
    match e {
        BrokerError::NotLeader { leader }
        | BrokerError::Replication(ReplicationError::NotLeader { leader }) => {
            BrokerError::NotCoordinator {
                key: key.to_string(),
                leader,
            }
        }
        BrokerError::Timeout(reason)
        | BrokerError::Replication(ReplicationError::Timeout(reason)) => {
            BrokerError::CoordinatorNotAvailable {
                key: key.to_string(),
                reason,
            }
        }
        other => other,
    }
}
