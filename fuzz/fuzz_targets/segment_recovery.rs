//! Recovery of a partition directory holding a damaged segment: the input
//! is cut into an offset index, a time index and a log file (and whether a
//! checkpoint trusts them), the log is opened, and everything it then
//! serves must be whole, valid batches. Whatever the files hold, opening
//! returns a log or a clear error, never a panic, and never serves a
//! corrupt batch.
//!
//! Input: byte 0 bit 0 writes a checkpoint whose recovery point trusts
//! every segment (so the index files are used, not rebuilt); bytes 1-2 and
//! 3-4 are the index and time index lengths (big-endian); then the index,
//! the time index and the log bytes (sealed as batches or not, see
//! `common::batches`).

#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

mod common;

use libfuzzer_sys::fuzz_target;
use spool_record::BatchIter;
use spool_storage::config::LogConfig;
use spool_storage::{ManualClock, PartitionLog};

/// One directory for every run, on a memory file system when there is one
/// (recovery syncs what it repaired).
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = ROOT.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = match shm.is_dir() {
            true => tempfile::tempdir_in(shm),
            false => tempfile::tempdir(),
        }
        .expect("a temporary directory");
        let path = dir.path().join("partition");
        (dir, path)
    });
    path
}

fn split(data: &[u8]) -> Option<(bool, &[u8], &[u8], &[u8])> {
    let (head, rest) = data.split_at_checked(5)?;
    let index_len = usize::from(u16::from_be_bytes([head[1], head[2]]));
    let time_len = usize::from(u16::from_be_bytes([head[3], head[4]]));
    let (index, rest) = rest.split_at_checked(index_len)?;
    let (time, log) = rest.split_at_checked(time_len)?;
    Some((head[0] & 1 == 1, index, time, log))
}

fuzz_target!(|data: &[u8]| {
    let Some((trusted, index, time, log_bytes)) = split(data) else {
        return;
    };
    let dir = root();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("the partition directory");
    let name = "00000000000000000000";
    let log_bytes = common::batches(log_bytes);
    std::fs::write(dir.join(format!("{name}.log")), log_bytes).expect("log file");
    std::fs::write(dir.join(format!("{name}.index")), index).expect("index file");
    std::fs::write(dir.join(format!("{name}.timeindex")), time).expect("time index file");
    if trusted {
        let checkpoint = format!(
            "spool-log-checkpoint v1\nrecovery_point={}\nlog_start_offset=0\ncleaner_offset=0\nfirst_raft_index=0\nfirst_raft_segment=0\n",
            u64::MAX
        );
        std::fs::write(dir.join("checkpoint"), checkpoint).expect("checkpoint");
    }
    let clock = Arc::new(ManualClock::new(0));
    let Ok(log) = PartitionLog::open(dir, LogConfig::default(), clock) else {
        return;
    };
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let Ok(read) = log.read(offset, 1 << 20) else {
            return;
        };
        if read.bytes.is_empty() {
            break;
        }
        for batch in BatchIter::new(&read.bytes) {
            let batch = batch.expect("recovery serves whole batches");
            batch.validate().expect("recovery serves valid batches");
        }
        assert!(read.next_offset > offset, "reads make progress");
        offset = read.next_offset;
    }
    // Time lookups go through the (maybe fuzzed) time index.
    for timestamp in [i64::MIN, -1, 0, 1, 1 << 40, i64::MAX] {
        let _ = log.offset_for_timestamp(timestamp);
    }
});
