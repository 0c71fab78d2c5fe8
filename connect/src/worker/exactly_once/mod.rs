//! Exactly-once source connectors, with Kafka's semantics (KIP-618):
//! each source task writes its records and the source offsets they reach
//! in one transaction of its own producer, so a read_committed consumer
//! sees a batch of records exactly when the offsets that say they were
//! produced are committed, never one without the other.
//!
//! With `exactly.once.source.support=enabled` on the worker:
//! - source offsets are in a topic (`offset_topic`; `connect-offsets`
//!   unless `offset.storage.topic` names one), and tasks write them there
//!   inside their transactions;
//! - before a connector's tasks start, every transactional id its earlier
//!   tasks may have used is fenced (`fence`), as Kafka's leader fences
//!   them when tasks are reconfigured: a zombie of a task that is gone (or
//!   now reads other source partitions) can no longer write offsets the
//!   new tasks read;
//! - each task has a transactional producer, id
//!   `<group.id>-<connector>-<task>` as in Kafka, initialized when the
//!   task starts (which fences a zombie of the same task and aborts what
//!   it left open), then reads the offsets topic to its high watermark and
//!   starts from its connector's offsets there;
//! - per transaction (`transaction`): begin, send the records, write their
//!   offsets with the same producer, commit, and only then call the task's
//!   `commit`. A failed send or commit aborts the transaction and fails
//!   the task; the task that replaces it starts from the last committed
//!   offsets, so the aborted records are produced again, once. A
//!   transaction ends after every poll that returned records
//!   (`transaction.boundary=poll`, the default) or every
//!   `transaction.boundary.interval.ms` (`interval`).
//!
//! Not here: `transaction.boundary=connector` (Kafka's connector-defined
//! transactions need a `TransactionContext` the connector API does not
//! have; it is refused, naming the key), per-connector offsets topics,
//! and a check of the connector's own support (Kafka's
//! `exactlyOnceSupport`): spool's source task contract already says a
//! task resumes exactly from its committed offsets, which is all the
//! worker needs from it.

mod fence;
mod transaction;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use spool_client::Client;
use std::time::Duration;

pub(crate) use self::transaction::{ConnectorTransactions, TaskTransactions, Transactions};

use self::fence::FenceGate;
use self::transaction::Boundary;
use super::config::exactly_once::{EXACTLY_ONCE_SUPPORT, REQUIRED, REQUIRED_REFUSAL};
use super::offset_topic::TopicOffsetStore;
use super::status::{State, StatusBoard};
use crate::api::keys::TASKS_MAX;
use crate::api::{ConfigMap, ConfigValue, Connector, ConnectorType, ParsedConfig};
use crate::{ConnectError, Result};

/// A source task's transactional id (Kafka's `${groupId}-${connector}-${taskId}`).
pub fn transactional_id(group_id: &str, connector: &str, task: u32) -> String {
    format!("{group_id}-{connector}-{task}")
}

/// A worker's exactly-once state: the offsets topic the tasks write to,
/// the group that names their transactional ids, and how many tasks each
/// connector ran here, so that reconfigured tasks fence all of them.
pub(super) struct ExactlyOnce {
    store: Arc<TopicOffsetStore>,
    group_id: String,
    /// The most tasks each connector ran on this worker.
    task_counts: Mutex<BTreeMap<String, usize>>,
    /// Through which zombies are fenced.
    client: Client,
    /// The worker's `offset.flush.interval.ms`: an `interval` boundary's
    /// default.
    flush_interval: Duration,
}

impl ExactlyOnce {
    pub(super) fn new(
        store: Arc<TopicOffsetStore>,
        group_id: String,
        client: Client,
        flush_interval: Duration,
    ) -> ExactlyOnce {
        ExactlyOnce {
            store,
            group_id,
            task_counts: Mutex::new(BTreeMap::new()),
            client,
            flush_interval,
        }
    }
}

/// The transactional ids a zombie of `connector` may hold: every task id
/// up to its `tasks.max` and up to the most tasks it ran here before (its
/// task count may have shrunk since). Notes that `started` tasks run now.
fn zombie_ids(
    counts: &mut BTreeMap<String, usize>,
    group_id: &str,
    connector: &str,
    tasks_max: usize,
    started: usize,
) -> Vec<String> {
    let ran = counts.entry(connector.to_string()).or_insert(0);
    let upper = (*ran).max(tasks_max).max(started);
    *ran = (*ran).max(started);
    let upper = u32::try_from(upper).unwrap_or(u32::MAX);
    (0..upper)
        .map(|task| transactional_id(group_id, connector, task))
        .collect()
}

/// Marks connector `name` FAILED because its exactly-once settings cannot
/// be used (checked when it was added, so only a change since gets here).
pub(super) fn connector_failed(name: &str, status: &StatusBoard, error: &ConnectError) {
    tracing::error!(
        connector = %name,
        error = %error,
        "the connector's exactly-once settings are invalid"
    );
    status.set_connector(State::Failed, Some(error.trace()));
}

/// Refuses a source connector that requires exactly-once on a worker
/// that does not give it (`enabled`: whether it does), as Kafka refuses
/// it.
pub(super) fn check_support(
    enabled: bool,
    parsed: &ParsedConfig,
    connector_type: ConnectorType,
) -> Result<()> {
    if connector_type != ConnectorType::Source || enabled {
        return Ok(());
    }
    match parsed.string(EXACTLY_ONCE_SUPPORT)? {
        REQUIRED => Err(ConnectError::config(EXACTLY_ONCE_SUPPORT, REQUIRED_REFUSAL)),
        _ => Ok(()),
    }
}

/// [`check_support`] as a validation error of the key.
pub(super) fn report_support(enabled: bool, results: &mut [ConfigValue]) {
    if enabled {
        return;
    }
    for value in results
        .iter_mut()
        .filter(|v| v.name == EXACTLY_ONCE_SUPPORT)
    {
        if value.value.as_deref().map(str::trim) == Some(REQUIRED) {
            value
                .errors
                .push(format!("{EXACTLY_ONCE_SUPPORT} {REQUIRED_REFUSAL}"));
        }
    }
}

impl ExactlyOnce {
    /// The transactions of source connector `name`'s tasks (`None` for a
    /// sink): starts fencing its earlier tasks' ids now, which its tasks
    /// wait for before they start. `started` tasks are about to start, of
    /// at most `tasks_max`.
    pub(super) fn connector_transactions(
        &self,
        name: &str,
        connector: &Connector,
        parsed: &ParsedConfig,
        tasks_max: usize,
        started: usize,
    ) -> Result<Option<ConnectorTransactions>> {
        let Connector::Source(_) = connector else {
            return Ok(None);
        };
        let ids = zombie_ids(
            &mut self.task_counts.lock(),
            &self.group_id,
            name,
            tasks_max,
            started,
        );
        self.transactions_fencing(parsed, ids).map(Some)
    }

    /// The transactions of the tasks of source connector `name` that the
    /// distributed worker starts here (`None` for a sink): each task's own
    /// transactional id is fenced when the task initializes its producer,
    /// so the ids to fence first are those of tasks that no longer exist
    /// (`fenced`: task numbers at and past the connector's task count, up
    /// to the most it ever had).
    pub(super) fn task_transactions(
        &self,
        name: &str,
        connector: &Connector,
        parsed: &ParsedConfig,
        fenced: std::ops::Range<u32>,
    ) -> Result<Option<ConnectorTransactions>> {
        let Connector::Source(_) = connector else {
            return Ok(None);
        };
        let ids = fenced
            .map(|task| transactional_id(&self.group_id, name, task))
            .collect();
        self.transactions_fencing(parsed, ids).map(Some)
    }

    /// Transactions whose tasks wait for `ids` to be fenced (started now,
    /// in a tokio task of its own) before they start.
    fn transactions_fencing(
        &self,
        parsed: &ParsedConfig,
        ids: Vec<String>,
    ) -> Result<ConnectorTransactions> {
        let boundary = Boundary::from_config(parsed, self.flush_interval)?;
        let gate = FenceGate::start(self.client.clone(), ids);
        Ok(ConnectorTransactions::new(
            self.group_id.clone(),
            gate,
            boundary,
            Arc::clone(&self.store),
        ))
    }

    /// Fences every transactional id source connector `name`'s tasks may
    /// hold, before its offsets are changed from outside (as Kafka does
    /// under exactly-once): a zombie's transaction committed after the
    /// change would undo it. `known` is how many tasks the connector is
    /// known to have had elsewhere (a distributed worker's config topic
    /// says; 0 for a standalone worker).
    pub(super) async fn fence_zombies(
        &self,
        name: &str,
        config: &ConfigMap,
        known: usize,
    ) -> Result<()> {
        let tasks_max = config
            .get(TASKS_MAX)
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(1);
        let ids = zombie_ids(
            &mut self.task_counts.lock(),
            &self.group_id,
            name,
            tasks_max.max(known),
            0,
        );
        fence::fence(self.client.clone(), ids)
            .await
            .map_err(|reason| {
                ConnectError::Task(format!(
                    "fencing the tasks of `{name}` before changing its offsets failed: {reason}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::config::exactly_once::*;

    use crate::api::config_map as map;

    #[test]
    fn the_worker_keys_take_kafkas_defaults() {
        let def = worker_config_def();
        let parsed = def.parse(&ConfigMap::new()).unwrap();
        assert_eq!(
            parsed.string(EXACTLY_ONCE_SOURCE_SUPPORT).unwrap(),
            DISABLED
        );
        assert_eq!(parsed.string(GROUP_ID).unwrap(), "connect-cluster");
        let preparing = def
            .parse(&map(&[(EXACTLY_ONCE_SOURCE_SUPPORT, "preparing")]))
            .unwrap_err();
        assert!(
            matches!(&preparing, ConnectError::InvalidConfig { key, .. }
                if key == EXACTLY_ONCE_SOURCE_SUPPORT),
            "{preparing}"
        );
    }

    #[test]
    fn boundaries_read_as_kafkas_and_connector_is_refused_with_why() {
        fn parse(pairs: &[(&str, &str)]) -> Result<ParsedConfig> {
            connector_config_def().parse(&map(pairs))
        }
        let flush = std::time::Duration::from_secs(10);
        let poll = parse(&[]).unwrap();
        assert_eq!(Boundary::from_config(&poll, flush).unwrap(), Boundary::Poll);
        assert_eq!(poll.string(EXACTLY_ONCE_SUPPORT).unwrap(), REQUESTED);
        let interval = parse(&[(TRANSACTION_BOUNDARY, "interval")]).unwrap();
        assert_eq!(
            Boundary::from_config(&interval, flush).unwrap(),
            Boundary::Interval(flush)
        );
        let given = parse(&[
            (TRANSACTION_BOUNDARY, "interval"),
            (TRANSACTION_BOUNDARY_INTERVAL_MS, "250"),
        ])
        .unwrap();
        assert_eq!(
            Boundary::from_config(&given, flush).unwrap(),
            Boundary::Interval(std::time::Duration::from_millis(250))
        );
        let refused = parse(&[(TRANSACTION_BOUNDARY, "connector")]).unwrap_err();
        let text = refused.to_string();
        assert!(
            text.contains(TRANSACTION_BOUNDARY) && text.contains("TransactionContext"),
            "{text}"
        );
        let results = connector_config_def().validate(&map(&[(TRANSACTION_BOUNDARY, "connector")]));
        let boundary = results
            .iter()
            .find(|v| v.name == TRANSACTION_BOUNDARY)
            .unwrap();
        assert_eq!(boundary.recommended_values, [POLL, INTERVAL]);
        assert_eq!(boundary.errors.len(), 1);
        assert!(parse(&[(EXACTLY_ONCE_SUPPORT, "always")]).is_err());
    }

    #[test]
    fn a_worker_config_picks_the_offsets_topic() {
        use crate::worker::WorkerConfig;
        let file = WorkerConfig::from_toml("\"offset.storage.file.filename\" = \"o\"").unwrap();
        assert_eq!(file.offsets_topic(), None);
        assert!(!file.exactly_once_source_support);
        assert_eq!(file.group_id, DEFAULT_GROUP_ID);
        let eos = WorkerConfig::from_toml("\"exactly.once.source.support\" = \"enabled\"").unwrap();
        assert_eq!(eos.offsets_topic(), Some("connect-offsets"));
        assert_eq!(eos.offset_storage_file, None);
        assert_eq!(eos.offset_storage_partitions, 25);
        assert_eq!(eos.offset_storage_replication_factor, None);
        let named = WorkerConfig::from_toml(
            "\"offset.storage.topic\" = \"offsets\"\n\
             \"offset.storage.replication.factor\" = 3\n\
             \"group.id\" = \"g\"",
        )
        .unwrap();
        assert_eq!(named.offsets_topic(), Some("offsets"));
        assert!(!named.exactly_once_source_support);
        assert_eq!(named.offset_storage_replication_factor, Some(3));
        assert_eq!(named.group_id, "g");
    }

    #[test]
    fn zombies_are_every_id_the_connector_may_have_used() {
        let mut counts = BTreeMap::new();
        let ids = zombie_ids(&mut counts, "connect-cluster", "files", 3, 1);
        assert_eq!(
            ids,
            [
                "connect-cluster-files-0",
                "connect-cluster-files-1",
                "connect-cluster-files-2"
            ]
        );
        // Five tasks ran; reconfigured to two, the other three are fenced.
        zombie_ids(&mut counts, "g", "wide", 5, 5);
        let ids = zombie_ids(&mut counts, "g", "wide", 2, 2);
        assert_eq!(ids.len(), 5);
        assert_eq!(transactional_id("g", "wide", 4), "g-wide-4");
    }
}
