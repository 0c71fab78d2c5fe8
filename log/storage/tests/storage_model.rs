//! The partition log against a simple in-memory model: random appends,
//! reads, rolls, truncations, deletions, flushes and reopenings (clean and
//! after a simulated crash) must leave the log and the model agreeing on the
//! log start, the log end, and every record.

use proptest::prelude::*;
use spool_storage::testing::{decode, open, read_all, small_segments, values_batch, Rec};
use spool_storage::ManualClock;

#[derive(Clone, Debug)]
enum Op {
    Append { records: usize, value_len: usize },
    Read { at: f64, max_bytes: usize },
    Roll,
    Flush,
    TruncateAfter { at: f64 },
    DeleteBefore { at: f64 },
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..80).prop_map(|(records, value_len)| Op::Append { records, value_len }),
        3 => (0.0..1.0f64, 1usize..600).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::Roll),
        1 => Just(Op::Flush),
        1 => (0.0..1.0f64).prop_map(|at| Op::TruncateAfter { at }),
        1 => (0.0..1.0f64).prop_map(|at| Op::DeleteBefore { at }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// The model: batches as (base offset, values), the log start and end.
#[derive(Default)]
struct Model {
    batches: Vec<(u64, Vec<Vec<u8>>)>,
    start: u64,
    end: u64,
}

impl Model {
    fn records(&self) -> Vec<(u64, Vec<u8>)> {
        self.batches
            .iter()
            .flat_map(|(base, values)| {
                values
                    .iter()
                    .enumerate()
                    .map(move |(i, v)| (base + i as u64, v.clone()))
            })
            .filter(|(offset, _)| *offset >= self.start)
            .collect()
    }

    fn pick(&self, at: f64) -> u64 {
        self.start + ((self.end - self.start) as f64 * at) as u64
    }
}

fn check(log: &spool_storage::PartitionLog, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_start_offset(), model.start);
    prop_assert_eq!(log.log_end_offset(), model.end);
    let got: Vec<(u64, Vec<u8>)> = read_all(log, 300)
        .into_iter()
        .map(|Rec { offset, value, .. }| (offset, value.unwrap()))
        .collect();
    prop_assert_eq!(got, model.records());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000_000);
        let mut log = open(dir.path(), small_segments(), &clock);
        let mut model = Model::default();
        let mut counter = 0u32;
        for op in ops {
            match op {
                Op::Append { records, value_len } => {
                    let values: Vec<Vec<u8>> = (0..records)
                        .map(|_| { counter += 1; let mut v = counter.to_be_bytes().to_vec(); v.resize(4 + value_len, 7); v })
                        .collect();
                    let mut bytes = values_batch(&values, 1_000);
                    let info = log.append(&mut bytes, 3).unwrap();
                    prop_assert_eq!(info.base_offset, model.end);
                    prop_assert_eq!(info.next_offset, model.end + records as u64);
                    model.batches.push((model.end, values));
                    model.end += records as u64;
                }
                Op::Read { at, max_bytes } => {
                    let offset = model.pick(at);
                    let read = log.read(offset, max_bytes).unwrap();
                    let records = decode(&read.bytes);
                    if offset == model.end {
                        prop_assert!(records.is_empty());
                    } else {
                        let expected: Vec<_> = model.records().into_iter().filter(|(o, _)| *o >= offset).collect();
                        let got: Vec<_> = records.into_iter().filter(|r| r.offset >= offset).collect();
                        prop_assert!(!got.is_empty(), "a read below the end returns data");
                        for (g, e) in got.iter().zip(&expected) {
                            prop_assert_eq!(g.offset, e.0);
                            prop_assert_eq!(g.value.as_ref().unwrap(), &e.1);
                        }
                    }
                }
                Op::Roll => log.roll().unwrap(),
                Op::Flush => { prop_assert_eq!(log.flush().unwrap(), model.end); }
                Op::TruncateAfter { at } => {
                    if model.end == model.start { continue; }
                    let offset = model.pick(at);
                    let new_end = log.truncate_after(offset).unwrap();
                    let first_removed = model.batches.iter().position(|(base, v)| base + v.len() as u64 - 1 > offset);
                    if let Some(i) = first_removed {
                        model.end = model.batches[i].0;
                        model.batches.truncate(i);
                        model.start = model.start.min(model.end);
                    }
                    prop_assert_eq!(new_end, model.end);
                }
                Op::DeleteBefore { at } => {
                    let offset = model.pick(at);
                    log.delete_before(offset).unwrap();
                    model.start = model.start.max(offset);
                }
                Op::Reopen { clean } => {
                    if clean { log.close().unwrap(); }
                    drop(log);
                    log = open(dir.path(), small_segments(), &clock);
                    prop_assert!(!log.recovery_report().dropped_data(), "{:?}", log.recovery_report());
                }
            }
            check(&log, &model)?;
        }
    }
}

#[test]
fn out_of_range_reads_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = open(dir.path(), small_segments(), &clock);
    log.append(&mut values_batch(&[b"a".to_vec(), b"b".to_vec()], 5), 1)
        .unwrap();
    assert!(log.read(0, 100).is_ok());
    assert!(log.read(2, 100).unwrap().bytes.is_empty());
    let err = log.read(3, 100).unwrap_err().to_string();
    assert!(err.contains("offset 3 is out of range"), "{err}");
    log.delete_before(1).unwrap();
    assert!(log.read(0, 100).is_err());
}
