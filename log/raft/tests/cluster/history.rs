//! The history checker of the fault tests: what producers were told and
//! what readers saw, checked against each other.
//!
//! - lost: a record acknowledged at an offset that a replica's final log
//!   does not hold there;
//! - conflicting: an offset seen with two different values anywhere (an
//!   acknowledgement, a read during the run, a replica's final log);
//! - backwards: a read that returned a record before the reader's
//!   position, or after a gap;
//! - duplicated: a value the workload sent once (with retries) held at
//!   two offsets of a replica's final log, or returned at two offsets to
//!   one read_committed reader;
//! - aborted reads: a value of a transaction its producer was told had
//!   aborted, returned to a read_committed reader (during the run or from
//!   a replica's final log);
//! - lost, for transactions: a value of a committed transaction missing
//!   from a replica's final read_committed view.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub struct History {
    acknowledged: BTreeMap<u64, String>,
    /// Every value the workload sent, acknowledged or not.
    sent: BTreeSet<String>,
    seen: BTreeMap<u64, String>,
    conflicting: Vec<String>,
    backwards: Vec<String>,
    /// Values of transactions whose producer was told they committed, and
    /// of those told they aborted.
    committed: BTreeSet<String>,
    aborted: BTreeSet<String>,
    /// What each read_committed reader returned: value to offsets.
    stable_reads: BTreeMap<String, BTreeMap<String, BTreeSet<u64>>>,
    lost_committed: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub acknowledged: usize,
    pub lost: Vec<String>,
    pub conflicting: Vec<String>,
    pub backwards: Vec<String>,
    pub duplicated: Vec<String>,
    pub aborted_reads: Vec<String>,
}

impl History {
    /// Records that the workload is about to send `value` (once, however
    /// often it retries).
    pub fn sent(&mut self, value: &str) {
        self.sent.insert(value.to_string());
    }

    pub fn acknowledged(&mut self, offset: u64, value: &str) {
        self.acknowledged.insert(offset, value.to_string());
        self.saw(offset, value);
    }

    /// Records one read by a reader that was at `position`.
    pub fn read(&mut self, position: u64, records: &[(u64, String)]) {
        let mut expected = position;
        for (offset, value) in records {
            if *offset != expected {
                self.backwards.push(format!(
                    "read at {position}: offset {offset} where {expected} was due"
                ));
            }
            expected = offset + 1;
            self.saw(*offset, value);
        }
    }

    /// Records that a transaction holding `values` ended as its producer
    /// was told: committed, or aborted.
    pub fn transaction_ended(&mut self, values: &[String], committed: bool) {
        let outcome = match committed {
            true => &mut self.committed,
            false => &mut self.aborted,
        };
        outcome.extend(values.iter().cloned());
    }

    /// Records one read_committed read by `reader` at `position`: the
    /// records kept after dropping control batches and aborted
    /// transactions, so offsets may skip but never go back.
    pub fn read_stable(&mut self, reader: &str, position: u64, records: &[(u64, String)]) {
        let mut floor = position;
        for (offset, value) in records {
            if *offset < floor {
                self.backwards.push(format!(
                    "{reader} read at {position}: offset {offset} below {floor}"
                ));
            }
            floor = offset + 1;
            self.saw(*offset, value);
            self.stable_reads
                .entry(reader.to_string())
                .or_default()
                .entry(value.clone())
                .or_default()
                .insert(*offset);
        }
    }

    /// Records a replica's whole read_committed view of its final log:
    /// every committed transaction's values must be in it.
    pub fn final_stable_view(&mut self, node: u64, records: &[(u64, String)]) {
        let reader = format!("node {node}'s final view");
        self.read_stable(&reader, 0, records);
        let held: BTreeSet<&String> = records.iter().map(|(_, v)| v).collect();
        for value in self.committed.iter().filter(|v| !held.contains(v)) {
            self.lost_committed
                .push(format!("{reader} lacks committed `{value}`"));
        }
    }

    /// Values read at two offsets by one reader, and aborted values read.
    fn stable_faults(&self) -> (Vec<String>, Vec<String>) {
        let (mut duplicated, mut aborted_reads) = (Vec::new(), Vec::new());
        for (reader, values) in &self.stable_reads {
            for (value, offsets) in values {
                if offsets.len() > 1 {
                    duplicated.push(format!("{reader} returned `{value}` at {offsets:?}"));
                }
                if self.aborted.contains(value) {
                    aborted_reads.push(format!("{reader} returned aborted `{value}`"));
                }
            }
        }
        (duplicated, aborted_reads)
    }

    fn saw(&mut self, offset: u64, value: &str) {
        match self.seen.get(&offset) {
            Some(earlier) if earlier != value => self
                .conflicting
                .push(format!("offset {offset}: `{earlier}` and `{value}`")),
            Some(_) => {}
            None => {
                self.seen.insert(offset, value.to_string());
            }
        }
    }

    /// Checks the final logs of the replicas (node, records from offset 0).
    pub fn check(mut self, final_logs: &[(u64, Vec<(u64, String)>)]) -> Report {
        let mut lost = Vec::new();
        let mut duplicated = Vec::new();
        for (node, records) in final_logs {
            self.read(0, records);
            let mut offsets_of: BTreeMap<&String, Vec<u64>> = BTreeMap::new();
            for (offset, value) in records.iter().filter(|(_, v)| self.sent.contains(v)) {
                offsets_of.entry(value).or_default().push(*offset);
            }
            for (value, offsets) in offsets_of.iter().filter(|(_, o)| o.len() > 1) {
                duplicated.push(format!("node {node} holds `{value}` at {offsets:?}"));
            }
            let held: BTreeMap<u64, &String> = records.iter().map(|(o, v)| (*o, v)).collect();
            for (offset, value) in &self.acknowledged {
                if held.get(offset) != Some(&value) {
                    lost.push(format!("node {node} lacks `{value}` at {offset}"));
                }
            }
        }
        let (stable_duplicated, aborted_reads) = self.stable_faults();
        duplicated.extend(stable_duplicated);
        lost.extend(self.lost_committed);
        Report {
            acknowledged: self.acknowledged.len(),
            lost,
            conflicting: self.conflicting,
            backwards: self.backwards,
            duplicated,
            aborted_reads,
        }
    }
}

impl Report {
    /// Fails the test unless nothing was lost, conflicting, backwards,
    /// duplicated or read from an aborted transaction.
    pub fn assert_clean(&self) {
        assert!(
            self.acknowledged > 0,
            "the test acknowledged nothing: {self:?}"
        );
        assert!(
            self.lost.is_empty()
                && self.conflicting.is_empty()
                && self.backwards.is_empty()
                && self.duplicated.is_empty()
                && self.aborted_reads.is_empty(),
            "history check failed: {self:#?}"
        );
    }
}
