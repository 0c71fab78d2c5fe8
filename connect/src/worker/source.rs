//! A source task's loop: poll the task, convert, produce; at each offset
//! flush, wait until everything produced is acknowledged, and only then
//! store the source offsets and tell the task (`commit`).
//!
//! The order is what makes a restart lose nothing: an offset reaches the
//! offsets file only after every record up to it is on the broker. What
//! was produced after the last flush is produced again after a crash (at
//! least once), never skipped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use spool_client::{Producer, ProducerConfig, ProducerRecord};
use tokio::task::JoinHandle;

use super::offsets::FileOffsetStore;
use super::status::State;
use super::task::{Target, TaskSetup};
use crate::api::context::partition_key;
use crate::api::{SourceOffset, SourcePartition, SourceRecord, SourceTask, SourceTaskContext};
use crate::{ConnectError, Result};

/// Runs `task` until its connector stops it; an error fails the task.
pub(crate) async fn run(
    setup: TaskSetup,
    mut task: Box<dyn SourceTask>,
    offsets: Arc<FileOffsetStore>,
) -> Result<()> {
    let reader = offsets.reader(&setup.connector);
    let context = SourceTaskContext::new(setup.connector.clone(), setup.id, reader);
    if let Err(e) = task.start(setup.config.clone(), context).await {
        stop_quietly(task.as_mut(), &setup).await;
        return Err(e);
    }
    setup.set_state(State::Running);
    // Kafka's source producers: acks=all and idempotent (the default), so
    // an acknowledged record is on a majority's disk and a retried batch
    // is never written twice.
    let producer = setup.client.producer(ProducerConfig::default());
    let mut source = SourceLoop {
        setup,
        producer,
        offsets,
        pending: Vec::new(),
        unflushed: BTreeMap::new(),
        topics: BTreeMap::new(),
        last_flush: Instant::now(),
    };
    let outcome = source.run(task.as_mut()).await;
    if outcome.is_err() {
        stop_quietly(task.as_mut(), &source.setup).await;
        return outcome;
    }
    task.stop().await
}

/// Stops a task that already failed: its own error on stopping is
/// logged, the first one is what the status shows.
async fn stop_quietly(task: &mut dyn SourceTask, setup: &TaskSetup) {
    if let Err(e) = task.stop().await {
        tracing::warn!(
            connector = %setup.connector,
            task = setup.id,
            error = %e,
            "stopping a failed task failed too"
        );
    }
}

struct SourceLoop {
    setup: TaskSetup,
    producer: Producer,
    offsets: Arc<FileOffsetStore>,
    /// Acknowledgements of batches sent since the last flush.
    pending: Vec<JoinHandle<spool_client::Result<()>>>,
    /// The latest offset of each source partition polled since the last
    /// flush, by partition key.
    unflushed: BTreeMap<String, (SourcePartition, SourceOffset)>,
    /// Topic names as the producer shares them, made once per topic.
    topics: BTreeMap<String, Arc<str>>,
    last_flush: Instant,
}

impl SourceLoop {
    async fn run(&mut self, task: &mut dyn SourceTask) -> Result<()> {
        loop {
            match self.setup.target() {
                Target::Stopped => break,
                Target::Paused => {
                    self.pause(task).await?;
                    continue;
                }
                Target::Started => {}
            }
            let records = task.poll().await?;
            if !records.is_empty() {
                self.send(records).await?;
            }
            self.reap_acknowledged().await?;
            if self.last_flush.elapsed() >= self.setup.flush_interval {
                self.flush(task).await?;
            }
        }
        self.flush(task).await
    }

    /// Flushes, then waits until the connector is resumed or stopped.
    async fn pause(&mut self, task: &mut dyn SourceTask) -> Result<()> {
        self.flush(task).await?;
        self.setup.set_state(State::Paused);
        self.setup.wait_while_paused().await;
        if self.setup.target() == Target::Started {
            self.setup.set_state(State::Running);
        }
        Ok(())
    }

    /// Converts and queues `records` in one batch, noting their offsets.
    async fn send(&mut self, records: Vec<SourceRecord>) -> Result<()> {
        let mut batch = Vec::with_capacity(records.len());
        for record in records {
            let SourceRecord {
                source_partition,
                source_offset,
                topic,
                partition,
                key,
                value,
                headers,
                timestamp,
            } = record;
            let converted = ProducerRecord {
                key: self.setup.key_converter.encode(&topic, key.as_ref())?,
                value: self.setup.value_converter.encode(&topic, value.as_ref())?,
                topic: self.topic(topic),
                partition,
                headers,
                timestamp,
            };
            batch.push(converted);
            let by = partition_key(&source_partition);
            self.unflushed.insert(by, (source_partition, source_offset));
        }
        let acknowledged = self
            .producer
            .send_batch(batch)
            .await
            .map_err(self.setup.client_error("producing source records"))?;
        self.pending
            .push(tokio::spawn(async move { acknowledged.await.map(|_| ()) }));
        Ok(())
    }

    fn topic(&mut self, topic: String) -> Arc<str> {
        match self.topics.get(&topic) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared: Arc<str> = Arc::from(topic.as_str());
                self.topics.insert(topic, Arc::clone(&shared));
                shared
            }
        }
    }

    /// Collects the acknowledgements that have arrived, so a refused send
    /// fails the task now rather than at the next flush.
    async fn reap_acknowledged(&mut self) -> Result<()> {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].is_finished() {
                let done = self.pending.swap_remove(i);
                self.settle(done).await?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    async fn settle(&self, acknowledgement: JoinHandle<spool_client::Result<()>>) -> Result<()> {
        let acknowledged = acknowledgement
            .await
            .map_err(|e| ConnectError::Task(format!("waiting for acknowledgements failed: {e}")))?;
        acknowledged.map_err(self.setup.client_error("producing source records"))
    }

    /// Waits for every send, then stores the offsets they cover and tells
    /// the task.
    async fn flush(&mut self, task: &mut dyn SourceTask) -> Result<()> {
        self.last_flush = Instant::now();
        for acknowledgement in std::mem::take(&mut self.pending) {
            self.settle(acknowledgement).await?;
        }
        if self.unflushed.is_empty() {
            return Ok(());
        }
        let offsets: Vec<(SourcePartition, SourceOffset)> =
            std::mem::take(&mut self.unflushed).into_values().collect();
        let (store, connector) = (Arc::clone(&self.offsets), self.setup.connector.clone());
        // The store syncs the disk: off the async threads.
        tokio::task::spawn_blocking(move || store.commit(&connector, offsets))
            .await
            .map_err(|e| ConnectError::Task(format!("storing source offsets failed: {e}")))??;
        if let Err(e) = task.commit().await {
            tracing::warn!(
                connector = %self.setup.connector,
                task = self.setup.id,
                error = %e,
                "the task's commit failed; its offsets are stored"
            );
        }
        Ok(())
    }
}
