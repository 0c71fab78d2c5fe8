//! A source task's loop: poll the task, transform, convert, produce; at
//! each offset flush, wait until everything produced is acknowledged, and
//! only then store the source offsets and tell the task (`commit`).
//!
//! The order is what makes a restart lose nothing: an offset reaches the
//! offsets store only after every record up to it is on the broker. What
//! was produced after the last flush is produced again after a crash (at
//! least once), never skipped.
//!
//! Under exactly-once (`exactly_once`) the same loop runs with a
//! transactional producer: a poll's records are sent inside a transaction,
//! and at its boundary (in place of a flush) the offsets they reach are
//! written into the same transaction, which then commits. Any error on the
//! way aborts the open transaction before the task fails, and the task
//! that replaces it starts from the last committed offsets: what a
//! read_committed consumer sees, it sees once.
//!
//! A record a transform drops, or one skipped after an error under
//! `errors.tolerance=all` (see `errors`), still advances its source
//! partition's offset, as in Kafka: the task will not be asked for it
//! again. Its dead letter, if any, is acknowledged before the flush that
//! stores that offset.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use spool_client::{Producer, ProducerConfig, ProducerRecord};
use tokio::task::JoinHandle;

use super::errors::{ErrorHandler, Failure, Original, Stage};
use super::exactly_once::{TaskTransactions, Transactions};
use super::offsets::OffsetBackingStore;
use super::status::State;
use super::task::{Target, TaskSetup};
use crate::api::context::partition_key;
use crate::api::{
    OffsetStorageReader, SourceOffset, SourcePartition, SourceRecord, SourceTask, SourceTaskContext,
};
use crate::transforms::{ConnectRecord, TransformRecord};
use crate::{ConnectError, Result};

/// Runs `task` until its connector stops it; an error fails the task.
/// With `exactly_once`, its records and offsets go in transactions.
pub(crate) async fn run(
    setup: TaskSetup,
    mut task: Box<dyn SourceTask>,
    offsets: Arc<dyn OffsetBackingStore>,
    exactly_once: Option<TaskTransactions>,
) -> Result<()> {
    // Before the task starts, as Kafka sets up its error reporters: a
    // dead-letter topic that cannot be created fails the task at once.
    let errors = ErrorHandler::open(&setup).await?;
    let (producer, transactions, committed) = match exactly_once {
        Some(exactly_once) => {
            let (transactions, committed) = exactly_once.start(&setup).await?;
            (transactions.producer(), Some(transactions), committed)
        }
        None => {
            let committed = offsets.committed(&setup.connector).await?;
            // Kafka's source producers: acks=all and idempotent (the
            // default), so an acknowledged record is on a majority's disk
            // and a retried batch is never written twice.
            let producer = setup.client.producer(ProducerConfig::default());
            (producer, None, committed)
        }
    };
    let reader = OffsetStorageReader::new(committed);
    let context = SourceTaskContext::new(setup.connector.clone(), setup.id, reader);
    if let Err(e) = task.start(setup.config.clone(), context).await {
        stop_quietly(task.as_mut(), &setup).await;
        return Err(e);
    }
    setup.set_state(State::Running);
    let mut source = SourceLoop {
        setup,
        producer,
        offsets,
        transactions,
        errors,
        pending: Vec::new(),
        unflushed: BTreeMap::new(),
        topics: BTreeMap::new(),
        last_flush: Instant::now(),
    };
    let outcome = source.run(task.as_mut()).await;
    if outcome.is_err() {
        if let Some(transactions) = source.transactions.as_mut() {
            transactions.abort(&source.setup).await;
        }
        stop_quietly(task.as_mut(), &source.setup).await;
        return outcome;
    }
    task.stop().await
}

/// Stops a task that already failed: its own error on stopping is
/// logged, the first one is what the status shows.
async fn stop_quietly(task: &mut dyn SourceTask, setup: &TaskSetup) {
    setup.warn_on_error(task.stop().await, "stopping a failed task failed too");
}

/// Records sent and not acknowledged yet.
struct Pending {
    acknowledged: JoinHandle<spool_client::Result<()>>,
    records: usize,
}

impl Pending {
    fn new(
        acknowledged: impl std::future::Future<Output = spool_client::Result<()>> + Send + 'static,
        records: usize,
    ) -> Pending {
        Pending {
            acknowledged: tokio::spawn(acknowledged),
            records,
        }
    }
}

struct SourceLoop {
    setup: TaskSetup,
    /// The task's transactional producer under exactly-once, else an
    /// idempotent one.
    producer: Producer,
    offsets: Arc<dyn OffsetBackingStore>,
    /// Under exactly-once: the task's transactions, which then take the
    /// place of offset flushes.
    transactions: Option<Transactions>,
    errors: ErrorHandler,
    /// Acknowledgements of sends since the last flush.
    pending: Vec<Pending>,
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
            if self.flush_due() {
                self.flush(task).await?;
            }
        }
        self.flush(task).await
    }

    /// Whether to flush now: at the transaction's boundary under
    /// exactly-once, else once `offset.flush.interval.ms` has passed.
    fn flush_due(&self) -> bool {
        match &self.transactions {
            Some(transactions) => transactions.due(),
            None => self.last_flush.elapsed() >= self.setup.flush_interval,
        }
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

    /// Transforms, converts and sends `records` in one batch, noting their
    /// offsets (those of dropped and skipped records too).
    async fn send(&mut self, records: Vec<SourceRecord>) -> Result<()> {
        if let Some(transactions) = self.transactions.as_mut() {
            // Begun even if every record is dropped: their offsets are
            // committed in it.
            transactions.begin(&self.setup)?;
        }
        let mut batch = Vec::with_capacity(records.len());
        for record in records {
            let (record, (source_partition, source_offset)) = record.split();
            let by = partition_key(&source_partition);
            if let Some(produced) = self
                .process(record, &source_partition, &source_offset)
                .await?
            {
                batch.push(produced);
            }
            self.unflushed.insert(by, (source_partition, source_offset));
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.produce(batch).await
    }

    /// `record` transformed and converted for the producer; `None` when a
    /// transform dropped it or it failed and was skipped.
    async fn process(
        &mut self,
        record: TransformRecord,
        source_partition: &SourcePartition,
        source_offset: &SourceOffset,
    ) -> Result<Option<ProducerRecord>> {
        let transforms = &self.setup.pipeline.transforms;
        // A report needs the record as polled; kept only when one will.
        let original = (self.errors.policy().keeps_originals() && !transforms.is_empty())
            .then(|| record.clone());
        let transformed = match transforms.apply(record) {
            Ok(Some(transformed)) => transformed,
            Ok(None) => return Ok(None),
            Err(error) => {
                let failure = Failure::transform(error);
                let kept = original.as_ref();
                self.report(failure, kept, source_partition, source_offset)
                    .await?;
                return Ok(None);
            }
        };
        let key = self
            .setup
            .key_converter
            .encode(&transformed.topic, transformed.key.as_ref())
            .map_err(|e| Failure::converter(Stage::KeyConverter, &*self.setup.key_converter, e));
        let value = self
            .setup
            .value_converter
            .encode(&transformed.topic, transformed.value.as_ref())
            .map_err(|e| {
                Failure::converter(Stage::ValueConverter, &*self.setup.value_converter, e)
            });
        let (key, value) = match (key, value) {
            (Ok(key), Ok(value)) => (key, value),
            (Err(failure), _) | (_, Err(failure)) => {
                let kept = original.as_ref().unwrap_or(&transformed);
                self.report(failure, Some(kept), source_partition, source_offset)
                    .await?;
                return Ok(None);
            }
        };
        let TransformRecord {
            topic,
            partition,
            headers,
            timestamp,
            ..
        } = transformed;
        Ok(Some(ProducerRecord {
            topic: self.topic(topic),
            partition,
            key,
            value,
            headers,
            timestamp,
        }))
    }

    /// Reports a record's failure; `Ok` when the record is skipped.
    async fn report(
        &self,
        failure: Failure,
        original: Option<&TransformRecord>,
        source_partition: &SourcePartition,
        source_offset: &SourceOffset,
    ) -> Result<()> {
        let original = match original {
            Some(record) => Original::Polled {
                record,
                source_partition,
                source_offset,
                key: &*self.setup.key_converter,
                value: &*self.setup.value_converter,
            },
            None => Original::Omitted,
        };
        self.errors.failed(failure, original).await
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

    /// Queues `batch` with the producer. A refused send fails the task,
    /// unless the error handling says otherwise (`send_again`).
    async fn produce(&mut self, batch: Vec<ProducerRecord>) -> Result<()> {
        let records = batch.len();
        // A copy to send again, made only where it may be sent again.
        let spare = self
            .errors
            .policy()
            .handles_send_failures()
            .then(|| batch.clone());
        match self.producer.send_batch(batch).await {
            Ok(acknowledged) => {
                self.pending.push(Pending::new(
                    async move { acknowledged.await.map(|_| ()) },
                    records,
                ));
                Ok(())
            }
            Err(e) => {
                let error = (self.setup.client_error("producing source records"))(e);
                match spare {
                    Some(batch) => self.send_again(batch, error).await,
                    None => Err(error),
                }
            }
        }
    }

    /// After `batch` could not be queued: retries it while the error is
    /// retriable (`errors.retry.timeout`); if it still cannot be sent,
    /// fails the task, or under `errors.tolerance=all` sends its records
    /// one by one, so that only those that fail (a record routed to a
    /// topic that does not exist, say) are reported and skipped.
    async fn send_again(&mut self, batch: Vec<ProducerRecord>, error: ConnectError) -> Result<()> {
        let mut retry = self.errors.retry();
        let mut error = error;
        loop {
            if let Err(given_up) = retry.after(error).await {
                error = given_up;
                break;
            }
            let records = batch.len();
            match self.producer.send_batch(batch.clone()).await {
                Ok(acknowledged) => {
                    let acknowledged = async move { acknowledged.await.map(|_| ()) };
                    self.pending.push(Pending::new(acknowledged, records));
                    return Ok(());
                }
                Err(e) => error = (self.setup.client_error("producing source records"))(e),
            }
        }
        if self.errors.policy().tolerance != super::errors::Tolerance::All {
            return Err(error);
        }
        for record in batch {
            self.send_one(record).await?;
        }
        Ok(())
    }

    /// Sends `record` alone; a refusal is reported, and the record skipped.
    async fn send_one(&mut self, record: ProducerRecord) -> Result<()> {
        match self.producer.send(record.clone()).await {
            Ok(acknowledged) => {
                let acknowledged = async move { acknowledged.await.map(|_| ()) };
                self.pending.push(Pending::new(acknowledged, 1));
                Ok(())
            }
            Err(e) => {
                let error = (self.setup.client_error("producing a source record"))(e);
                let failure = Failure::produce(error);
                self.errors
                    .failed(failure, Original::Produced(&record))
                    .await
            }
        }
    }

    /// Collects the acknowledgements that have arrived, so a refused send
    /// fails the task now rather than at the next flush.
    async fn reap_acknowledged(&mut self) -> Result<()> {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].acknowledged.is_finished() {
                let done = self.pending.swap_remove(i);
                self.settle(done).await?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Waits for `pending`'s acknowledgement; records the broker refused
    /// fail the task, or are skipped under `errors.tolerance=all`, except
    /// in a transaction, which a refused record leaves only to abort.
    async fn settle(&self, pending: Pending) -> Result<()> {
        let acknowledged = pending
            .acknowledged
            .await
            .map_err(|e| ConnectError::Task(format!("waiting for acknowledgements failed: {e}")))?;
        match acknowledged {
            Ok(()) => Ok(()),
            Err(e) => {
                let error = (self.setup.client_error("producing source records"))(e);
                match self.transactions {
                    Some(_) => Err(error),
                    None => self.errors.undelivered(error, pending.records),
                }
            }
        }
    }

    /// Waits for every send, then stores the offsets they cover (under
    /// exactly-once: writes them into the transaction and commits it) and
    /// tells the task.
    async fn flush(&mut self, task: &mut dyn SourceTask) -> Result<()> {
        self.last_flush = Instant::now();
        for pending in std::mem::take(&mut self.pending) {
            self.settle(pending).await?;
        }
        let in_transaction = self
            .transactions
            .as_ref()
            .is_some_and(Transactions::is_open);
        if self.unflushed.is_empty() && !in_transaction {
            return Ok(());
        }
        let offsets: Vec<(SourcePartition, SourceOffset)> =
            std::mem::take(&mut self.unflushed).into_values().collect();
        match self.transactions.as_mut() {
            Some(transactions) => transactions.commit(&self.setup, offsets).await?,
            None => {
                self.offsets
                    .commit_offsets(&self.setup.connector, offsets)
                    .await?
            }
        }
        self.setup.warn_on_error(
            task.commit().await,
            "the task's commit failed; its offsets are stored",
        );
        Ok(())
    }
}
