//! The global thread: keeps every global table's store up to date with
//! all partitions of its topic.
//!
//! As in Kafka Streams, an instance brings its global stores up to their
//! topics' ends (read committed) before any stream thread starts, so the
//! first lookups see the whole table; then one background task per global
//! table reads on. A RocksDB global store records the offset it reached
//! in each partition atomically with the data (`StoreBackend::
//! apply_positions`), so a restart reads only what it has not seen; an
//! in-memory one reads its topic from the beginning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spool_client::{Client, Consumer, ConsumerRecord, TopicPartition};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use super::StreamsConfig;
use crate::state::{
    GlobalStore, MemoryBackend, Positions, RocksBackend, StateMemory, StoreBackend, StoreKind,
    WriteBatch,
};
use crate::topology::{GlobalSpec, GlobalStores, RawRecord, Topology};
use crate::{Result, StreamsError};

/// How long a poll waits for a global topic's new records.
const POLL: Duration = Duration::from_millis(200);

/// One global table being read.
struct GlobalReader {
    spec: GlobalSpec,
    store: Arc<GlobalStore>,
    consumer: Consumer,
    partitions: Vec<TopicPartition>,
    metrics: Arc<Metrics>,
}

/// Opens every global store of `topology` and brings it up to its
/// topic's end; returns the stores and the tasks that keep them up to
/// date until `stop` turns true.
pub(crate) async fn start(
    client: &Client,
    topology: &Topology,
    config: &StreamsConfig,
    memory: &StateMemory,
    metrics: &Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<(GlobalStores, Vec<JoinHandle<Result<()>>>)> {
    let mut stores = GlobalStores::new();
    let mut readers = Vec::new();
    for spec in topology.globals() {
        let store = Arc::new(GlobalStore::new(
            spec.store.clone(),
            open_backend(spec, config, memory)?,
        ));
        let mut reader = GlobalReader::open(client, spec.clone(), Arc::clone(&store)).await?;
        reader.metrics = Arc::clone(metrics);
        reader.catch_up().await?;
        stores.insert(spec.store.name.clone(), store);
        readers.push(reader);
    }
    let tasks = readers
        .into_iter()
        .map(|reader| tokio::spawn(reader.run(stop.clone())))
        .collect();
    Ok((stores, tasks))
}

fn open_backend(
    spec: &GlobalSpec,
    config: &StreamsConfig,
    memory: &StateMemory,
) -> Result<Box<dyn StoreBackend>> {
    Ok(match spec.store.kind {
        StoreKind::RocksDb => {
            let path = config
                .state_dir
                .join(&config.application_id)
                .join("global")
                .join(&spec.store.name);
            std::fs::create_dir_all(&path)
                .map_err(|e| StreamsError::StateDir(format!("creating {}: {e}", path.display())))?;
            Box::new(RocksBackend::open(&path, memory)?)
        }
        StoreKind::InMemory => Box::new(MemoryBackend::default()),
    })
}

impl GlobalReader {
    /// A reader of every partition of `spec`'s topic, placed where the
    /// store left off.
    async fn open(client: &Client, spec: GlobalSpec, store: Arc<GlobalStore>) -> Result<Self> {
        let count = client
            .topic_metadata(&spec.topic)
            .await
            .map_err(|e| {
                StreamsError::client(format!("reading global table topic `{}`", spec.topic), e)
            })?
            .partitions
            .len() as u32;
        let partitions: Vec<TopicPartition> = (0..count)
            .map(|p| TopicPartition::new(spec.topic.clone(), p))
            .collect();
        let mut consumer = super::restore::changelog_reader(client);
        consumer.assign(partitions.iter().cloned());
        let mut reader = GlobalReader {
            spec,
            store,
            consumer,
            partitions,
            metrics: Arc::default(),
        };
        reader.seek_to_store()?;
        Ok(reader)
    }

    /// Places the consumer where the store's state ends.
    fn seek_to_store(&mut self) -> Result<()> {
        let positions = self.store.positions()?;
        for tp in &self.partitions {
            match positions.get(&tp.partition) {
                Some(&offset) => self.consumer.seek(tp, offset),
                None => self.consumer.seek_to_beginning(tp),
            }
            .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// Reads until every partition reaches the end it had when called.
    async fn catch_up(&mut self) -> Result<()> {
        let ends = self.ends().await?;
        let began = Instant::now();
        let mut loaded = 0u64;
        loop {
            let mut behind = false;
            for tp in self.partitions.clone() {
                let position = self.position(&tp).await?;
                behind |= position < ends.get(&tp.partition).copied().unwrap_or(0);
            }
            if !behind {
                break;
            }
            loaded += self.poll_once().await?;
        }
        tracing::info!(topic = %self.spec.topic, store = %self.spec.store.name, records = loaded, elapsed_ms = began.elapsed().as_millis() as u64, "global store up to date");
        Ok(())
    }

    /// Each partition's end offset now.
    async fn ends(&mut self) -> Result<Positions> {
        let mut ends = Positions::new();
        let mut saved = BTreeMap::new();
        for tp in self.partitions.clone() {
            saved.insert(tp.partition, self.position(&tp).await?);
        }
        for tp in self.partitions.clone() {
            self.consumer.seek_to_end(&tp).map_err(|e| self.error(e))?;
            ends.insert(tp.partition, self.position(&tp).await?);
            self.consumer
                .seek(&tp, saved[&tp.partition])
                .map_err(|e| self.error(e))?;
        }
        Ok(ends)
    }

    async fn position(&mut self, tp: &TopicPartition) -> Result<u64> {
        let position = self.consumer.position(tp).await;
        position.map_err(|e| self.error(e))
    }

    fn error(&self, e: spool_client::ClientError) -> StreamsError {
        StreamsError::client(
            format!("reading global table topic `{}`", self.spec.topic),
            e,
        )
    }

    /// One poll applied to the store with the positions it reaches;
    /// returns the records read.
    async fn poll_once(&mut self) -> Result<u64> {
        let records = self.consumer.poll(POLL).await.map_err(|e| self.error(e))?;
        if records.is_empty() {
            return Ok(0);
        }
        let mut batch = WriteBatch::default();
        for record in &records {
            load(&self.spec, &mut batch, record);
        }
        // Control records (transaction markers) take offsets too: the
        // consumer's positions say how far each partition has been read.
        let mut positions = Positions::new();
        for tp in self.partitions.clone() {
            positions.insert(tp.partition, self.position(&tp).await?);
        }
        self.store.apply(&batch, &positions)?;
        self.metrics.global_loaded(records.len() as u64);
        Ok(records.len() as u64)
    }

    /// Reads on until `stop` turns true.
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            tokio::select! {
                outcome = self.poll_once() => {
                    if let Err(error) = outcome {
                        // The stream threads keep serving lookups from what
                        // the store holds; reading resumes after a pause.
                        tracing::warn!(topic = %self.spec.topic, %error, "reading a global table failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        // What was read but not applied is read again.
                        self.seek_to_store()?;
                    }
                }
                _ = stop.changed() => {}
            }
        }
    }
}

fn load(spec: &GlobalSpec, batch: &mut WriteBatch, record: &ConsumerRecord) {
    let headers = Vec::new();
    let raw = RawRecord {
        key: record.key.as_deref(),
        value: record.value.as_deref(),
        timestamp: record.timestamp,
        headers: &headers,
    };
    spec.load_into(batch, raw);
}
