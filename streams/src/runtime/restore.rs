//! Restoring a task's stores from their changelogs: from the offset each
//! store recorded at its last commit to the changelog's end, read
//! committed, in large fetches applied as write batches.

use std::time::{Duration, Instant};

use spool_client::proto::IsolationLevel;
use spool_client::{Client, Consumer, ConsumerConfig, OffsetReset};

use super::task::Task;
use crate::state::WriteBatch;
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
    let context = || format!("restoring {}/{}", tp.topic, tp.partition);
    consumer.assign([tp.clone()]);
    consumer
        .seek_to_end(&tp)
        .map_err(|e| StreamsError::client(context(), e))?;
    let end = consumer
        .position(&tp)
        .await
        .map_err(|e| StreamsError::client(context(), e))?;
    match start {
        Some(offset) => consumer.seek(&tp, offset),
        None => consumer.seek_to_beginning(&tp),
    }
    .map_err(|e| StreamsError::client(context(), e))?;
    let mut position = consumer
        .position(&tp)
        .await
        .map_err(|e| StreamsError::client(context(), e))?;
    if position >= end {
        if start.is_none() {
            // A new store: it records where its changelog stood, so that
            // a crash before its first commit reaches the disk resumes
            // from here, not from a store that looks wiped.
            task.ctx.stores[store].apply_restored(&WriteBatch::new(), Some(end))?;
        }
        return Ok(0);
    }
    let (began, to_go) = (Instant::now(), end - position);
    // `resumed`: the store had recorded an offset (it was not new, or
    // wiped, and restores only what it misses).
    tracing::info!(task = %task.id, changelog = %tp.topic, from = position, to = end, resumed = start.is_some(), "restoring a store");
    let mut restored = 0u64;
    while position < end {
        let records = consumer
            .poll(Duration::from_millis(500))
            .await
            .map_err(|e| StreamsError::client(context(), e))?;
        let mut batch = WriteBatch::new();
        for record in records.iter().filter(|r| r.offset < end) {
            if let Some(key) = &record.key {
                batch.insert(key.to_vec(), record.value.as_ref().map(|v| v.to_vec()));
            }
            restored += 1;
        }
        // Control records (transaction markers) take offsets too: the
        // consumer's position is how far the changelog has been read.
        position = consumer
            .position(&tp)
            .await
            .map_err(|e| StreamsError::client(context(), e))?;
        task.ctx.stores[store].apply_restored(&batch, Some(position.min(end)))?;
    }
    tracing::info!(task = %task.id, changelog = %tp.topic, records = restored, of = to_go, elapsed_ms = began.elapsed().as_millis() as u64, "store restored");
    Ok(restored)
}
