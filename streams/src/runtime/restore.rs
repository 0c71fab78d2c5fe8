//! Restoring a task's stores from their changelogs: from the offset each
//! store recorded at its last commit to the changelog's end, read
//! committed, in large fetches applied as write batches.

use std::time::{Duration, Instant};

use spool_client::proto::IsolationLevel;
use spool_client::{Client, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, TopicPartition};
use tokio::sync::mpsc;

use super::task::Task;
use crate::{Result, StreamsError};

/// Restores every logged store of `task`; returns the records applied.
pub(crate) async fn restore(client: &Client, task: &mut Task) -> Result<u64> {
    let mut total = 0;
    for index in 0..task.changelogs.len() {
        total += restore_store(client, task, index).await?;
    }
    Ok(total)
}

/// A consumer for reading a changelog (or a global table's topic) into a
/// store: committed records only, in large polls.
pub(crate) fn changelog_reader(client: &Client) -> Consumer {
    client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        max_poll_records: 10_000,
        max_partition_bytes: 8 << 20,
        ..ConsumerConfig::default()
    })
}

async fn restore_store(client: &Client, task: &mut Task, changelog: usize) -> Result<u64> {
    let tp = task.changelogs[changelog].partition.clone();
    let store = task.changelogs[changelog].store;
    let start = task.ctx.stores[store].changelog_offset()?;
    let mut consumer = changelog_reader(client);
    let context = |e| StreamsError::client(format!("restoring {}/{}", tp.topic, tp.partition), e);
    consumer.assign([tp.clone()]);
    consumer.seek_to_end(&tp).map_err(context)?;
    let end = consumer.position(&tp).await.map_err(context)?;
    match start {
        Some(offset) => consumer.seek(&tp, offset),
        None => consumer.seek_to_beginning(&tp),
    }
    .map_err(context)?;
    let position = consumer.position(&tp).await.map_err(context)?;
    if position >= end {
        if start.is_none() {
            // A new store: it records where its changelog stood, so that
            // a crash before its first commit reaches the disk resumes
            // from here, not from a store that looks wiped.
            task.ctx.stores[store].record_changelog_offset(end)?;
        }
        return Ok(0);
    }
    let (began, to_go) = (Instant::now(), end - position);
    // `resumed`: the store had recorded an offset (it was not new, or
    // wiped, and restores only what it misses).
    tracing::info!(task = %task.id, changelog = %tp.topic, from = position, to = end, resumed = start.is_some(), "restoring a store");
    let mut fetched = fetch_ahead(consumer, tp.clone(), end);
    let mut restored = 0u64;
    while let Some(batch) = fetched.recv().await {
        let (records, position) = batch.map_err(context)?;
        // In offset order; records past `end` were written after the
        // restore began, and are not its to apply.
        let records = &records[..records.partition_point(|r| r.offset < end)];
        let mut entries = records
            .iter()
            .filter_map(|r| Some((r.key.as_deref()?, r.value.as_deref())));
        task.ctx.stores[store].restore(&mut entries, position.min(end))?;
        restored += records.len() as u64;
    }
    task.ctx.stores[store].finish_restore()?;
    tracing::info!(task = %task.id, changelog = %tp.topic, records = restored, of = to_go, elapsed_ms = began.elapsed().as_millis() as u64, "store restored");
    Ok(restored)
}

/// Fetched changelog records and the position reached after them.
type Fetched = spool_client::Result<(Vec<ConsumerRecord>, u64)>;

/// Reads `tp` up to `end` in a task of its own, a few polls ahead of the
/// store writing them: the next fetch (its network round and decoding)
/// runs on another core while RocksDB applies the last one. The channel
/// closes at `end`, or after the first error.
fn fetch_ahead(mut consumer: Consumer, tp: TopicPartition, end: u64) -> mpsc::Receiver<Fetched> {
    // Polls of at most `max_poll_records`: a few of them keep the writer
    // busy through one fetch without holding much memory.
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let polled = match consumer.poll(Duration::from_millis(500)).await {
                // Control records (transaction markers) take offsets too:
                // the position is how far the changelog has been read.
                Ok(records) => consumer.position(&tp).await.map(|p| (records, p)),
                Err(e) => Err(e),
            };
            let done = polled
                .as_ref()
                .map_or(true, |(_, position)| *position >= end);
            if sender.send(polled).await.is_err() || done {
                return;
            }
        }
    });
    receiver
}
