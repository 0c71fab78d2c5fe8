//! `spool bench streams --case restore`: how fast a store is rebuilt from
//! its changelog. The changelog of the count case's store,
//! `<app-id>-counts-changelog`, is filled with `--records` distinct keys
//! (not timed); then the count application starts on an empty state
//! directory, and the clock runs until its tasks restored every record
//! (`records_restored`), before any input is processed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use spool_client::{Client, ProducerRecord};
use spool_streams::{KafkaStreams, StreamsConfig, Topology};

use super::bench_streams_clients::PATIENCE;

/// Fills the changelog, restores it, and returns the seconds it took.
pub async fn restore(
    client: &Client,
    topology: Topology,
    config: StreamsConfig,
    partitions: u32,
    records: u64,
) -> anyhow::Result<f64> {
    let changelog = format!("{}-counts-changelog", config.application_id);
    let compact = [("cleanup.policy", "compact")];
    client
        .admin()
        .create_topic(&changelog, partitions, &compact)
        .await?;
    fill_changelog(client, &changelog, records).await?;
    eprintln!("wrote {records} records to {changelog}");
    let started = Instant::now();
    let app = KafkaStreams::start(topology, client.clone(), config).await?;
    let deadline = started + PATIENCE;
    while app.metrics().records_restored < records {
        if Instant::now() > deadline || app.has_failed_thread() {
            let restored = app.metrics().records_restored;
            app.close().await?;
            anyhow::bail!("{restored} of {records} changelog records restored");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    app.close().await?;
    Ok(seconds)
}

/// `records` distinct keys `key-<i>`, each with a count of 1 (8 bytes,
/// big-endian, as the count store keeps it).
async fn fill_changelog(client: &Client, topic: &str, records: u64) -> anyhow::Result<()> {
    let value = Bytes::copy_from_slice(&1i64.to_be_bytes());
    super::bench_streams_clients::write_all(client, records, |i| {
        ProducerRecord::new(topic, value.clone()).key(format!("key-{i}"))
    })
    .await
}
