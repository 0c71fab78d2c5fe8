//! What running connectors takes, whichever worker runs them: the client,
//! the worker config, the source offsets store and the exactly-once state
//! ([`Runtime`]); a connector config checked and turned into its parts
//! ([`Runtime::prepare`]); and one task of a connector started in a tokio
//! task of its own ([`Runtime::spawn_task`]).
//!
//! The standalone worker (`Worker`) and the distributed one
//! (`distributed`) both run connectors and tasks through it, so a task
//! runs the same loops, with the same transforms, converters, error
//! handling and exactly-once transactions, wherever it was started. What
//! differs between them is only which connectors and tasks a worker runs
//! and where their configs come from, which stays in each worker.

use std::sync::Arc;

use futures::future::BoxFuture;
use spool_client::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{connector_config_def, missing_offsets_file, WorkerConfig};
use super::exactly_once::{self, ConnectorTransactions, ExactlyOnce, TaskTransactions};
use super::offset_topic::TopicOffsetStore;
use super::offsets::{FileOffsetStore, OffsetBackingStore};
use super::status::StatusBoard;
use super::task::{self, Pipeline, Target, TaskSetup};
use super::{missing, sink, source};
use crate::api::keys::{CONNECTOR_CLASS, KEY_CONVERTER, TOPICS, VALUE_CONVERTER};
use crate::api::{ConfigMap, ConfigValue, Connector, ConnectorType, ParsedConfig};
use crate::connectors::create_connector;
use crate::convert::{converter_from_config, Converter};
use crate::{ConnectError, Result};

/// What every connector and task a worker runs shares (see the module's
/// comment).
pub(crate) struct Runtime {
    pub(super) client: Client,
    pub(super) config: WorkerConfig,
    pub(super) offsets: Arc<dyn OffsetBackingStore>,
    /// `Some` with `exactly.once.source.support=enabled`.
    pub(super) exactly_once: Option<ExactlyOnce>,
}

/// The converters a connector's tasks share.
pub(super) struct Converters {
    pub(super) key: Arc<dyn Converter>,
    pub(super) value: Arc<dyn Converter>,
}

/// A connector's parts built from its config, checked and ready to start.
pub(super) struct Prepared {
    /// A new instance, not started: it starts the connector, or only
    /// creates tasks (Kafka's `taskClass`) where another worker runs it.
    pub(super) connector: Connector,
    pub(super) parsed: ParsedConfig,
    pub(super) converters: Converters,
}

/// One task to start: which, with what, and how it is steered.
pub(super) struct TaskSpec<'a> {
    pub(super) name: &'a str,
    pub(super) id: u32,
    /// Makes the task (an instance need not be started for that).
    pub(super) connector: &'a Connector,
    /// The connector's config, parsed: a sink's topics and consumer
    /// settings come from it.
    pub(super) parsed: &'a ParsedConfig,
    /// The task's own config, as its connector gave it.
    pub(super) config: ConfigMap,
    pub(super) converters: &'a Converters,
    pub(super) pipeline: Pipeline,
    pub(super) status: Arc<StatusBoard>,
    pub(super) target: watch::Receiver<Target>,
    /// Under exactly-once, a source task's transactions.
    pub(super) transactions: Option<TaskTransactions>,
}

impl Runtime {
    /// The runtime of a worker with `config`: its offsets read from their
    /// topic (`offset.storage.topic`, created if missing; `connect-offsets`
    /// under exactly-once) or from `offset.storage.file.filename`.
    pub(super) async fn open(client: Client, config: WorkerConfig) -> Result<Runtime> {
        let (offsets, topic_store) = open_store(&client, &config).await?;
        let exactly_once = match (config.exactly_once_source_support, topic_store) {
            (true, Some(store)) => Some(ExactlyOnce::new(
                store,
                config.group_id.clone(),
                client.clone(),
                config.offset_flush_interval,
            )),
            _ => None,
        };
        tracing::info!(
            offsets = %offsets.location(),
            exactly_once = exactly_once.is_some(),
            "connect worker started"
        );
        Ok(Runtime {
            client,
            config,
            offsets,
            exactly_once,
        })
    }

    /// Every key of `config` the connector class it names defines, with
    /// its value and errors (Kafka Connect's
    /// `PUT /connector-plugins/{class}/config/validate`).
    pub(super) fn validate(&self, config: &ConfigMap) -> Result<Vec<ConfigValue>> {
        let class = config
            .get(CONNECTOR_CLASS)
            .ok_or_else(|| missing(CONNECTOR_CLASS))?;
        let connector = create_connector(class)?;
        let def = connector_config_def(connector.connector_type()).merge(&connector.config_def());
        let mut results = def.validate(config);
        crate::transforms::report_errors(config, &mut results);
        self.report_exactly_once(&mut results);
        Ok(results)
    }

    /// A new instance of the connector `config` names, with its config
    /// parsed and its converters built. A config that fails a check is
    /// refused, naming the key: transforms, error handling and
    /// exactly-once are checked too, so nothing starts on a config that
    /// would only fail later.
    pub(super) fn prepare(&self, config: &ConfigMap) -> Result<Prepared> {
        let class = config
            .get(CONNECTOR_CLASS)
            .ok_or_else(|| missing(CONNECTOR_CLASS))?;
        let connector = create_connector(class)?;
        let def = connector_config_def(connector.connector_type()).merge(&connector.config_def());
        let parsed = def.parse(config)?;
        Pipeline::from_config(config, &parsed, connector.connector_type())?;
        self.check_exactly_once(&parsed, connector.connector_type())?;
        let converters = Converters {
            key: self.converter(config, KEY_CONVERTER)?,
            value: self.converter(config, VALUE_CONVERTER)?,
        };
        Ok(Prepared {
            connector,
            parsed,
            converters,
        })
    }

    /// The converter under `prefix`: the connector's own if its config
    /// names one (with its settings), else the worker's (Kafka's rule).
    fn converter(&self, config: &ConfigMap, prefix: &str) -> Result<Arc<dyn Converter>> {
        let settings = match config.contains_key(prefix) {
            true => config,
            false => &self.config.converters,
        };
        converter_from_config(settings, prefix)
    }

    /// Starts a task in a tokio task of its own, supervised: its error or
    /// panic marks it FAILED on its status board, and touches nothing
    /// else. It runs until its target says Stopped.
    pub(super) fn spawn_task(&self, spec: TaskSpec<'_>) -> JoinHandle<()> {
        let TaskSpec {
            name,
            id,
            connector,
            parsed,
            mut config,
            converters,
            pipeline,
            status,
            target,
            transactions,
        } = spec;
        let topics = parsed
            .list(TOPICS)
            .map(<[String]>::to_vec)
            .unwrap_or_default();
        if let Connector::Sink(_) = connector {
            // Kafka's worker adds the connector's topics to every sink
            // task's config.
            config.insert(TOPICS.to_string(), topics.join(","));
        }
        let setup = TaskSetup {
            connector: name.to_string(),
            id,
            config,
            client: self.client.clone(),
            key_converter: Arc::clone(&converters.key),
            value_converter: Arc::clone(&converters.value),
            status: Arc::clone(&status),
            target,
            flush_interval: self.config.offset_flush_interval,
            pipeline,
        };
        let run: BoxFuture<'static, Result<()>> = match connector {
            Connector::Source(c) => Box::pin(source::run(
                setup,
                c.create_task(),
                Arc::clone(&self.offsets),
                transactions,
            )),
            Connector::Sink(c) => Box::pin(sink::run(
                setup,
                c.create_task(),
                topics,
                sink::isolation(parsed),
            )),
        };
        tokio::spawn(task::supervise(run, status, name.to_string(), id))
    }
}

/// The store the worker config picks (`WorkerConfig::offsets_topic`): a
/// topic when `offset.storage.topic` is set or exactly-once sources are
/// enabled, as in Kafka's distributed worker; else the file, as in its
/// standalone worker. The topic store comes back a second time as itself:
/// exactly-once tasks write offsets to its topic in their own
/// transactions, which needs more than the trait.
async fn open_store(
    client: &Client,
    config: &WorkerConfig,
) -> Result<(Arc<dyn OffsetBackingStore>, Option<Arc<TopicOffsetStore>>)> {
    if let Some(topic) = config.offsets_topic() {
        let store = TopicOffsetStore::open(
            client.clone(),
            topic,
            config.offset_storage_partitions,
            config.offset_storage_replication_factor,
        )
        .await?;
        let store = Arc::new(store);
        // A method call, so `clone` is `Arc<TopicOffsetStore>`'s and the
        // result coerces; `Arc::clone(&store)` would be inferred as the
        // trait object's and refused.
        let shared: Arc<dyn OffsetBackingStore> = store.clone();
        return Ok((shared, Some(store)));
    }
    let path = config
        .offset_storage_file
        .clone()
        .ok_or_else(missing_offsets_file)?;
    // Read once at start; a small file, but a blocking read.
    let store = tokio::task::spawn_blocking(move || FileOffsetStore::open(path))
        .await
        .map_err(|e| ConnectError::Task(format!("reading the offsets file failed: {e}")))??;
    let shared: Arc<dyn OffsetBackingStore> = Arc::new(store);
    Ok((shared, None))
}

/// Exactly-once sources (`exactly_once`), or nothing without them.
impl Runtime {
    /// Refuses a source connector that requires exactly-once on a worker
    /// that does not give it, as Kafka refuses it.
    pub(super) fn check_exactly_once(
        &self,
        parsed: &ParsedConfig,
        connector_type: ConnectorType,
    ) -> Result<()> {
        exactly_once::check_support(self.exactly_once.is_some(), parsed, connector_type)
    }

    /// [`Runtime::check_exactly_once`] as a validation error of the key.
    pub(super) fn report_exactly_once(&self, results: &mut [ConfigValue]) {
        exactly_once::report_support(self.exactly_once.is_some(), results)
    }

    /// See `ExactlyOnce::connector_transactions`; `None` without
    /// exactly-once.
    pub(super) fn connector_transactions(
        &self,
        name: &str,
        connector: &Connector,
        parsed: &ParsedConfig,
        tasks_max: usize,
        started: usize,
    ) -> Result<Option<ConnectorTransactions>> {
        match &self.exactly_once {
            Some(eos) => eos.connector_transactions(name, connector, parsed, tasks_max, started),
            None => Ok(None),
        }
    }

    /// See `ExactlyOnce::task_transactions`; `None` without exactly-once.
    pub(super) fn task_transactions(
        &self,
        name: &str,
        connector: &Connector,
        parsed: &ParsedConfig,
        fenced: std::ops::Range<u32>,
    ) -> Result<Option<ConnectorTransactions>> {
        match &self.exactly_once {
            Some(eos) => eos.task_transactions(name, connector, parsed, fenced),
            None => Ok(None),
        }
    }

    /// See `ExactlyOnce::fence_zombies`; nothing to do without
    /// exactly-once.
    pub(super) async fn fence_zombies(
        &self,
        name: &str,
        config: &ConfigMap,
        known: usize,
    ) -> Result<()> {
        match &self.exactly_once {
            Some(eos) => eos.fence_zombies(name, config, known).await,
            None => Ok(()),
        }
    }
}
