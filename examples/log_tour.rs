//! A tour of spool's storage engine, the layer everything else stands on:
//! append keyed records to a partition log, read them back, find an offset
//! by time, compact by key, then tear the tail off the file as a crash would
//! and watch recovery keep exactly the valid prefix.
//!
//! Run: cargo run --release --example log_tour

use std::sync::Arc;

use spool::record::{BatchBuilder, BatchIter, Compression};
use spool::storage::config::LogConfig;
use spool::storage::{PartitionLog, SystemClock};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = LogConfig::from_pairs([("cleanup.policy", "compact"), ("segment.bytes", "4096")])?;
    let log = PartitionLog::open(dir.path(), config.clone(), Arc::new(SystemClock))?;
    println!("log directory: {}", dir.path().display());

    // A producer encodes each batch once; the log validates it with one CRC
    // pass, stamps offsets in place and stores the bytes as they are.
    let updates = [
        ("alice", Some("joined")),
        ("bob", Some("joined")),
        ("alice", Some("moved to Lyon")),
        ("carol", Some("joined")),
        ("bob", None), // a tombstone: bob deleted his account
        ("alice", Some("moved to Oslo")),
    ];
    for (i, (key, value)) in updates.iter().enumerate() {
        let mut builder = BatchBuilder::new(Compression::Lz4);
        builder.push(
            1_700_000_000_000 + i as i64 * 1000,
            Some(key.as_bytes()),
            value.map(str::as_bytes),
            &[],
        );
        let info = log.append(&mut builder.build(), 1)?;
        println!(
            "appended {key:>5} = {:<15} at offset {}",
            value.unwrap_or("<tombstone>"),
            info.base_offset
        );
    }

    println!("\nread from offset 0:");
    print_records(&log)?;
    let offset = log.offset_for_timestamp(1_700_000_002_500)?;
    println!("\nfirst record at or after t=1700000002500: offset {offset:?}");

    // Compaction keeps the latest record per key at its original offset.
    log.roll()?;
    let outcome = log.clean()?;
    println!(
        "\ncompacted: {} records removed; the log now holds:",
        outcome.records_removed
    );
    print_records(&log)?;

    // A crash that tears the last write in half.
    let end = log.log_end_offset();
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(1_700_000_009_000, Some(b"dave"), Some(b"joined"), &[]);
    log.append(&mut builder.build(), 1)?;
    drop(log);
    let active = dir.path().join(format!("{end:020}.log"));
    let torn_len = std::fs::metadata(&active)?.len() - 7;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)?
        .set_len(torn_len)?;
    let log = PartitionLog::open(dir.path(), config, Arc::new(SystemClock))?;
    let report = log.recovery_report();
    println!(
        "\nafter a torn write and a restart: {} bytes cut ({}), log end offset {}",
        report.bytes_truncated,
        report.reason.as_deref().unwrap_or("nothing to cut"),
        log.log_end_offset()
    );
    log.close()?;
    Ok(())
}

fn print_records(log: &PartitionLog) -> anyhow::Result<()> {
    let read = log.read(log.log_start_offset(), 1 << 20)?;
    for batch in BatchIter::new(&read.bytes) {
        for record in batch?.records()?.iter() {
            let record = record?;
            let text = |b: Option<&[u8]>| {
                b.map_or("<tombstone>".to_string(), |b| {
                    String::from_utf8_lossy(b).into_owned()
                })
            };
            println!(
                "  offset {}  {:>5} = {}",
                record.offset,
                text(record.key),
                text(record.value)
            );
        }
    }
    Ok(())
}
