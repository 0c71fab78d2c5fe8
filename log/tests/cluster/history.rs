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
//!   two offsets of a replica's final log.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub struct History {
    acknowledged: BTreeMap<u64, String>,
    /// Every value the workload sent, acknowledged or not.
    sent: BTreeSet<String>,
    seen: BTreeMap<u64, String>,
    conflicting: Vec<String>,
    backwards: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub acknowledged: usize,
    pub lost: Vec<String>,
    pub conflicting: Vec<String>,
    pub backwards: Vec<String>,
    pub duplicated: Vec<String>,
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
        Report {
            acknowledged: self.acknowledged.len(),
            lost,
            conflicting: self.conflicting,
            backwards: self.backwards,
            duplicated,
        }
    }
}

impl Report {
    /// Fails the test unless nothing was lost, conflicting, backwards or
    /// duplicated.
    pub fn assert_clean(&self) {
        assert!(
            self.acknowledged > 0,
            "the test acknowledged nothing: {self:?}"
        );
        assert!(
            self.lost.is_empty()
                && self.conflicting.is_empty()
                && self.backwards.is_empty()
                && self.duplicated.is_empty(),
            "history check failed: {self:#?}"
        );
    }
}
