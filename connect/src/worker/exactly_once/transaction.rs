//! A source task's transactions: the task's transactional producer, set
//! up when the task starts (after its connector's earlier tasks are
//! fenced), and each transaction from its begin to its commit or abort.
//!
//! The source loop (`source`) drives them: it begins a transaction before
//! it sends a poll's records, asks [`Transactions::due`] after each poll,
//! and commits through [`Transactions::commit`], which writes the offsets
//! the records reach into the offsets topic with the same producer before
//! committing, so records and offsets become visible together or not at
//! all. Everything that can fail before the commit (a record the broker
//! refused, a fence) leaves an abort as the only way out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spool_client::{Producer, ProducerConfig};

use super::fence::FenceGate;
use super::transactional_id;
use crate::api::{ParsedConfig, SourceOffset, SourcePartition, TypedValue};
use crate::worker::config::exactly_once::{
    INTERVAL, POLL, TRANSACTION_BOUNDARY, TRANSACTION_BOUNDARY_INTERVAL_MS,
};
use crate::worker::offset_topic::{offset_record, End, TopicOffsetStore};
use crate::worker::task::TaskSetup;
use crate::{ConnectError, Result};

/// Where a task's transactions end (`transaction.boundary`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Boundary {
    /// After every poll that returned records.
    Poll,
    /// Once this long has passed since the last commit.
    Interval(Duration),
}

impl Boundary {
    /// The boundary a source connector's parsed config asks for; an
    /// unset interval is the worker's `offset.flush.interval.ms`.
    pub(crate) fn from_config(parsed: &ParsedConfig, flush_interval: Duration) -> Result<Boundary> {
        match parsed.string(TRANSACTION_BOUNDARY)? {
            POLL => Ok(Boundary::Poll),
            INTERVAL => match parsed.get(TRANSACTION_BOUNDARY_INTERVAL_MS) {
                Some(TypedValue::Long(ms)) => u64::try_from(*ms)
                    .map(|ms| Boundary::Interval(Duration::from_millis(ms)))
                    .map_err(|_| {
                        ConnectError::config(
                            TRANSACTION_BOUNDARY_INTERVAL_MS,
                            "must not be negative",
                        )
                    }),
                _ => Ok(Boundary::Interval(flush_interval)),
            },
            other => Err(ConnectError::config(
                TRANSACTION_BOUNDARY,
                format!("`{other}` is not a supported transaction boundary"),
            )),
        }
    }

    /// The transaction timeout the coordinator gives the task's producer:
    /// the producer's default (60 s, Kafka's), or twice an interval that
    /// comes near it, so an interval transaction is never aborted by the
    /// coordinator while its task is alive. A longer timeout costs little:
    /// a dead task's transaction is aborted when its successor fences it,
    /// not only at the timeout.
    fn transaction_timeout(self) -> Duration {
        let default = ProducerConfig::default().transaction_timeout;
        match self {
            Boundary::Poll => default,
            Boundary::Interval(interval) => default.max(interval.saturating_mul(2)),
        }
    }
}

/// What the tasks of one source connector share under exactly-once.
pub(crate) struct ConnectorTransactions {
    group_id: String,
    gate: FenceGate,
    boundary: Boundary,
    store: Arc<TopicOffsetStore>,
}

impl ConnectorTransactions {
    pub(super) fn new(
        group_id: String,
        gate: FenceGate,
        boundary: Boundary,
        store: Arc<TopicOffsetStore>,
    ) -> ConnectorTransactions {
        ConnectorTransactions {
            group_id,
            gate,
            boundary,
            store,
        }
    }

    /// Task `task`'s part, for its loop.
    pub(crate) fn task(&self, connector: &str, task: u32) -> TaskTransactions {
        TaskTransactions {
            transactional_id: transactional_id(&self.group_id, connector, task),
            gate: self.gate.clone(),
            boundary: self.boundary,
            store: Arc::clone(&self.store),
        }
    }
}

/// A task's transactions before the task starts.
pub(crate) struct TaskTransactions {
    transactional_id: String,
    gate: FenceGate,
    boundary: Boundary,
    store: Arc<TopicOffsetStore>,
}

impl TaskTransactions {
    /// Waits for the connector's earlier tasks to be fenced, initializes
    /// the task's transactional producer (fencing a zombie of this very
    /// task, and aborting what it left open), then reads the offsets
    /// topic to its high watermark: the offsets the task starts from,
    /// with every transaction committed before it started counted.
    pub(crate) async fn start(
        self,
        setup: &TaskSetup,
    ) -> Result<(Transactions, Vec<(SourcePartition, SourceOffset)>)> {
        self.gate.passed().await?;
        let producer = setup.client.producer(ProducerConfig {
            transactional_id: Some(self.transactional_id.clone()),
            transaction_timeout: self.boundary.transaction_timeout(),
            ..ProducerConfig::default()
        });
        producer
            .init_transactions()
            .await
            .map_err(setup.client_error("initializing the task's transactional producer"))?;
        let committed = self
            .store
            .committed_to(&setup.connector, End::Written)
            .await?;
        tracing::info!(
            connector = %setup.connector,
            task = setup.id,
            transactional_id = %self.transactional_id,
            boundary = ?self.boundary,
            "exactly-once source task ready"
        );
        let transactions = Transactions {
            producer,
            offsets_topic: self.store.shared_topic(),
            boundary: self.boundary,
            open: false,
            last_commit: Instant::now(),
        };
        Ok((transactions, committed))
    }
}

/// A running task's transactions.
pub(crate) struct Transactions {
    producer: Producer,
    offsets_topic: Arc<str>,
    boundary: Boundary,
    /// Whether a transaction is open (begun and neither committed nor
    /// aborted).
    open: bool,
    last_commit: Instant,
}

impl Transactions {
    /// The transactional producer, for the task's records.
    pub(crate) fn producer(&self) -> Producer {
        self.producer.clone()
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// Opens a transaction unless one is open.
    pub(crate) fn begin(&mut self, setup: &TaskSetup) -> Result<()> {
        if !self.open {
            self.producer
                .begin_transaction()
                .map_err(setup.client_error("beginning a transaction"))?;
            self.open = true;
        }
        Ok(())
    }

    /// Whether the open transaction has reached its boundary.
    pub(crate) fn due(&self) -> bool {
        self.open
            && match self.boundary {
                Boundary::Poll => true,
                Boundary::Interval(interval) => self.last_commit.elapsed() >= interval,
            }
    }

    /// Writes `offsets` (the latest of each source partition whose records
    /// the transaction holds, every record of it already acknowledged)
    /// into the offsets topic, and commits. On an error the transaction is
    /// still open, for the caller to abort.
    pub(crate) async fn commit(
        &mut self,
        setup: &TaskSetup,
        offsets: Vec<(SourcePartition, SourceOffset)>,
    ) -> Result<()> {
        if !self.open && offsets.is_empty() {
            return Ok(());
        }
        self.begin(setup)?;
        let records = offsets
            .iter()
            .map(|(partition, offset)| {
                offset_record(
                    &self.offsets_topic,
                    &setup.connector,
                    partition,
                    Some(offset),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        if !records.is_empty() {
            const WRITING: &str = "writing source offsets in the transaction";
            let acknowledged = self
                .producer
                .send_batch(records)
                .await
                .map_err(setup.client_error(WRITING))?;
            acknowledged.await.map_err(setup.client_error(WRITING))?;
        }
        self.producer
            .commit_transaction()
            .await
            .map_err(setup.client_error("committing the transaction"))?;
        self.open = false;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Aborts the open transaction, if any: its records and offsets are
    /// never shown to read_committed consumers. Called on the way to
    /// failing the task, so an abort that fails too (the producer was
    /// fenced: the coordinator has aborted it already) is only logged.
    pub(crate) async fn abort(&mut self, setup: &TaskSetup) {
        if !self.open {
            return;
        }
        self.open = false;
        match self.producer.abort_transaction().await {
            Ok(()) => tracing::info!(
                connector = %setup.connector,
                task = setup.id,
                "aborted the task's open transaction"
            ),
            Err(e) => tracing::warn!(
                connector = %setup.connector,
                task = setup.id,
                error = %e,
                "aborting the task's open transaction failed; its coordinator aborts it \
                 when the task's successor starts, or at its timeout"
            ),
        }
    }
}
