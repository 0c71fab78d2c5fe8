//! The record batch parser (spool-record), as every produce request and
//! every replicated entry meets it: whatever the bytes, walking, validating
//! and decoding their batches returns an error or records, never a panic.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use spool_record::BatchIter;

fuzz_target!(|data: &[u8]| {
    let bytes = common::batches(data);
    for batch in BatchIter::new(&bytes) {
        let Ok(batch) = batch else { break };
        if batch.validate().is_err() {
            continue;
        }
        if let Ok(records) = batch.records() {
            for record in records.iter() {
                if record.is_err() {
                    break;
                }
            }
        }
    }
});
