//! `spool bench log`: the storage engine alone, in this process.
//!
//! Appends producer-encoded batches to a partition log (encoding happens
//! before the clock starts: a producer encodes, the log validates, stamps and
//! writes), then reads the whole log back from the page cache. As a baseline
//! it writes the same number of bytes the way `dd bs=N oflag=dsync` does: N
//! is the fsync interval (1 MiB without one), each write synchronous when an
//! interval is set. This machine's disk speed drifts by 2-4x within seconds,
//! so the run is split into rounds and each round of appends is preceded by
//! a baseline round of the same size: both see the same disk. Prints one
//! JSON line.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;
use spool_record::{BatchBuilder, Compression, HEADER_LEN};
use spool_storage::config::{FsyncPolicy, LogConfig};
use spool_storage::{Clock, PartitionLog, SystemClock};

use super::stats::{Latencies, Progress};

#[derive(clap::Args)]
pub struct Args {
    /// Records to append.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per batch, as a producer would batch them.
    #[arg(long, default_value_t = 64)]
    batch_records: usize,
    /// Fsync after every this many appended bytes (the log's flush.bytes);
    /// without it nothing is synced.
    #[arg(long)]
    fsync_every: Option<u64>,
    /// Directory to hold the benchmark's files (a temporary directory inside
    /// it, removed afterwards); the system temporary directory by default.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Skip the plain sequential-write baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Rounds to interleave appends with baseline writes.
    #[arg(long, default_value_t = 10)]
    rounds: u64,
}

#[derive(Serialize)]
struct Summary {
    bench: &'static str,
    records: u64,
    record_size: usize,
    batch_records: usize,
    fsync_every: Option<u64>,
    bytes: u64,
    seconds: f64,
    records_per_sec: f64,
    /// Megabytes (10^6 bytes) of stored batches per second.
    mb_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    read_mb_per_sec: f64,
    /// fsync calls the log made; bytes / fsyncs is the real sync cadence.
    fsyncs: u64,
    baseline_mb_per_sec: Option<f64>,
    ratio_to_baseline: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.records == 0 || args.record_size == 0 || args.batch_records == 0 {
        bail!("--records, --record-size and --batch-records must be at least 1");
    }
    let max_batch = args.batch_records * (args.record_size + 16) + HEADER_LEN;
    if max_batch > i32::MAX as usize {
        bail!(
            "a batch of {} records of {} bytes is larger than the 2 GiB batch limit",
            args.batch_records,
            args.record_size
        );
    }
    let root = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            tempfile::tempdir_in(dir)?
        }
        None => tempfile::tempdir()?,
    };
    let config = LogConfig {
        max_message_bytes: max_batch as u64,
        fsync: FsyncPolicy {
            every_bytes: args.fsync_every,
            every_ms: None,
        },
        ..LogConfig::default()
    };
    let log = Arc::new(PartitionLog::open(
        root.path().join("bench-0"),
        config,
        Arc::new(SystemClock),
    )?);
    log.start_background_flush();

    let run = append_rounds(&log, &args, &root.path().join("baseline"))?;
    let (seconds, mut latencies, bytes) = (run.seconds, run.latencies, log.size_bytes());
    let read_seconds = read_all(&log)?;
    let baseline_mb_per_sec =
        (!args.no_baseline).then(|| bytes as f64 / 1e6 / run.baseline_seconds);
    let mb_per_sec = bytes as f64 / 1e6 / seconds;
    let summary = Summary {
        bench: "log",
        records: args.records,
        record_size: args.record_size,
        batch_records: args.batch_records,
        fsync_every: args.fsync_every,
        bytes,
        seconds,
        records_per_sec: args.records as f64 / seconds,
        mb_per_sec,
        p50_ms: latencies.quantile_ms(0.5),
        p99_ms: latencies.quantile_ms(0.99),
        p999_ms: latencies.quantile_ms(0.999),
        read_mb_per_sec: bytes as f64 / 1e6 / read_seconds,
        fsyncs: log.flush_count(),
        baseline_mb_per_sec,
        ratio_to_baseline: baseline_mb_per_sec.map(|b| mb_per_sec / b),
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// Distinct pre-encoded batches to cycle through; appending re-stamps their
/// offsets in place, so they can be reused without copying.
fn encode_batches(args: &Args, records_per_batch: usize, count: usize) -> Vec<Vec<u8>> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let now = SystemClock.now_ms() as i64;
    (0..count)
        .map(|_| {
            let mut builder = BatchBuilder::new(Compression::None);
            for _ in 0..records_per_batch {
                let value: Vec<u8> = (0..args.record_size)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed as u8
                    })
                    .collect();
                builder.push(now, None, Some(&value), &[]);
            }
            builder.build()
        })
        .collect()
}

struct AppendRun {
    seconds: f64,
    baseline_seconds: f64,
    latencies: Latencies,
}

/// Appends every record in `args.rounds` rounds, each after a baseline write
/// of the bytes that round will append. A round ends with a flush when fsync
/// is on, as every baseline write ends synced.
fn append_rounds(
    log: &PartitionLog,
    args: &Args,
    baseline_path: &Path,
) -> anyhow::Result<AppendRun> {
    let mut full = encode_batches(args, args.batch_records, 8);
    let batch_bytes = full[0].len() as u64;
    let remainder = (args.records % args.batch_records as u64) as usize;
    let mut last = encode_batches(args, remainder.max(1), 1).swap_remove(0);
    let batches = args.records / args.batch_records as u64;
    let rounds = args.rounds.clamp(1, batches.max(1));
    let mut run = AppendRun {
        seconds: 0.0,
        baseline_seconds: 0.0,
        latencies: Latencies::with_capacity(batches as usize + 1),
    };
    let mut progress = Progress::new("appended", args.records);
    let mut baseline = (!args.no_baseline)
        .then(|| Baseline::create(baseline_path, args.fsync_every))
        .transpose()?;
    for round in 0..rounds {
        let (first, end) = (batches * round / rounds, batches * (round + 1) / rounds);
        let tail = if round + 1 == rounds && remainder > 0 {
            last.len() as u64
        } else {
            0
        };
        if let Some(baseline) = baseline.as_mut() {
            run.baseline_seconds += baseline.write((end - first) * batch_bytes + tail)?;
        }
        let start = Instant::now();
        for i in first..end {
            let began = Instant::now();
            log.append(&mut full[i as usize % 8], 1)?;
            run.latencies.record(began.elapsed());
            progress.update((i + 1) * args.batch_records as u64);
        }
        if tail > 0 {
            let began = Instant::now();
            log.append(&mut last, 1)?;
            run.latencies.record(began.elapsed());
        }
        if args.fsync_every.is_some() {
            log.flush()?;
        }
        run.seconds += start.elapsed().as_secs_f64();
    }
    if baseline.is_some() {
        std::fs::remove_file(baseline_path)?;
    }
    Ok(run)
}

/// Reads the whole log in 1 MiB reads; returns the seconds taken.
fn read_all(log: &PartitionLog) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = log.read(offset, 1 << 20)?;
        if read.bytes.is_empty() {
            bail!("read at offset {offset} returned nothing before the log end {end}");
        }
        offset = read.next_offset;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// A file written like `dd bs=N oflag=dsync`: N-byte sequential writes,
/// each synchronous when `fsync_every` (= N) is set; plain 1 MiB writes
/// otherwise. It only grows, like the log, so both see the same file system
/// work (no truncation and the discards it would cause).
struct Baseline {
    file: std::fs::File,
    chunk: Vec<u8>,
}

impl Baseline {
    fn create(path: &Path, fsync_every: Option<u64>) -> anyhow::Result<Baseline> {
        let block = fsync_every.unwrap_or(1 << 20).clamp(4096, 64 << 20) as usize;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        if fsync_every.is_some() {
            options.custom_flags(libc::O_DSYNC);
        }
        let chunk = (0..block).map(|i| (i * 31 % 251) as u8).collect();
        Ok(Baseline {
            file: options.open(path)?,
            chunk,
        })
    }

    /// Appends `bytes`; returns the seconds taken.
    fn write(&mut self, bytes: u64) -> anyhow::Result<f64> {
        let start = Instant::now();
        let mut written = 0u64;
        while written < bytes {
            let n = self.chunk.len().min((bytes - written) as usize);
            self.file.write_all(&self.chunk[..n])?;
            written += n as u64;
        }
        Ok(start.elapsed().as_secs_f64())
    }
}
