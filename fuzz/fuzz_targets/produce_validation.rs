//! What a produce request's batches go through before they are proposed to
//! a partition's Raft group (the gRPC and Kafka handlers both call
//! `validate_producer_batches`, then the log appends what Raft commits).
//! Whatever the bytes, validation answers; and what it accepts, the log
//! appends and reads back as valid batches: a batch that passed
//! validation but that the log refused would stop the Raft group.

#![no_main]

use std::sync::{Arc, OnceLock};

mod common;

use libfuzzer_sys::fuzz_target;
use spool_record::BatchIter;
use spool_storage::config::LogConfig;
use spool_storage::{ManualClock, PartitionLog};

fn log() -> &'static PartitionLog {
    static LOG: OnceLock<(tempfile::TempDir, PartitionLog)> = OnceLock::new();
    let (_, log) = LOG.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let clock = Arc::new(ManualClock::new(0));
        let log = PartitionLog::open(dir.path(), LogConfig::default(), clock).expect("a log");
        (dir, log)
    });
    log
}

fuzz_target!(|data: &[u8]| {
    let log = log();
    let mut batches = common::batches(data);
    if log.validate_producer_batches(&batches).is_err() {
        return;
    }
    let appended = log
        .append(&mut batches, 1)
        .expect("the log appends what validation accepted");
    let read = log
        .read(appended.base_offset, usize::MAX)
        .expect("the appended batches read back");
    for batch in BatchIter::new(&read.bytes) {
        let batch = batch.expect("whole batches");
        batch.validate().expect("valid batches");
    }
});
