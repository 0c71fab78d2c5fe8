//! Zombie fencing (Kafka's `fenceZombieSourceTasks`, done there through
//! the admin client's `fenceProducers`): every transactional id a
//! connector's earlier tasks may hold is initialized once with a
//! throwaway producer. Initializing bumps the id's epoch, so a zombie of
//! an earlier task (one abandoned after the shutdown timeout, or one of a
//! worker that lost contact) can no longer write or commit; and the
//! coordinator aborts the transaction such a zombie left open, which also
//! releases the last stable offset it held back on the offsets topic and
//! the data topics.

use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use spool_client::{Client, ProducerConfig};

use crate::{ConnectError, Result};

/// How many ids are fenced at once: each is a round trip to its
/// coordinator and a write to `__transaction_state`, independent of the
/// others, so a connector with many tasks is fenced in a few rounds.
const CONCURRENT_FENCES: usize = 8;

/// The fencing of a connector's earlier tasks, started when its new tasks
/// are, and awaited by each of them before it does anything else.
#[derive(Clone)]
pub(crate) struct FenceGate(Shared<BoxFuture<'static, std::result::Result<(), String>>>);

impl FenceGate {
    /// Starts fencing `ids` in a tokio task of its own, so it goes on
    /// whether or not a connector task is waiting for it yet.
    pub(crate) fn start(client: Client, ids: Vec<String>) -> FenceGate {
        let fencing = tokio::spawn(fence(client, ids));
        let outcome: BoxFuture<'static, std::result::Result<(), String>> = Box::pin(async move {
            match fencing.await {
                Ok(outcome) => outcome,
                Err(e) => Err(format!("the fencing task ended: {e}")),
            }
        });
        FenceGate(outcome.shared())
    }

    /// Waits until the earlier tasks are fenced; an error fails the task
    /// that waits, which must not start beside a zombie.
    pub(crate) async fn passed(&self) -> Result<()> {
        self.0.clone().await.map_err(|reason| {
            ConnectError::Task(format!(
                "fencing the connector's earlier tasks failed: {reason}"
            ))
        })
    }
}

/// Fences every id of `ids`; the first failure, naming its id.
pub(super) async fn fence(client: Client, ids: Vec<String>) -> std::result::Result<(), String> {
    let outcomes: Vec<std::result::Result<(), String>> = futures::stream::iter(ids)
        .map(|id| fence_one(client.clone(), id))
        .buffer_unordered(CONCURRENT_FENCES)
        .collect()
        .await;
    outcomes.into_iter().collect()
}

async fn fence_one(client: Client, id: String) -> std::result::Result<(), String> {
    let producer = client.producer(ProducerConfig {
        transactional_id: Some(id.clone()),
        ..ProducerConfig::default()
    });
    match producer.init_transactions().await {
        Ok(()) => {
            tracing::debug!(transactional_id = %id, "fenced the transactional id's earlier producers");
            Ok(())
        }
        Err(e) => Err(format!("`{id}`: {e}")),
    }
}
