//! openraft's storage over the segment log: openraft's own conformance
//! suite, then what the suite cannot build (entries carrying record
//! batches): offsets stamped at append, reads by index after reopening,
//! the vote and purge point surviving restarts, and a snapshot that moves
//! a leader's log onto an empty or diverged replica.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use openraft::storage::{
    RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine,
};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{EntryPayload, Membership, Vote};
use spool_raft::entry::log_id;
use spool_raft::{
    BatchPayload, OpenraftStorageError, PartitionEntry, PartitionLogStore, PartitionRaftConfig,
    PartitionStateMachine,
};
use spool_storage::config::LogConfig;
use spool_storage::testing::{read_all, small_segments, values_batch};
use spool_storage::ManualClock;
use tempfile::TempDir;

struct SegmentLogBuilder;

impl StoreBuilder<PartitionRaftConfig, PartitionLogStore, PartitionStateMachine, TempDir>
    for SegmentLogBuilder
{
    async fn build(
        &self,
    ) -> Result<(TempDir, PartitionLogStore, PartitionStateMachine), OpenraftStorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, machine) = open_raft_storage(&dir, small_segments());
        Ok((dir, store, machine))
    }
}

fn open_raft_storage(
    dir: &TempDir,
    config: LogConfig,
) -> (PartitionLogStore, PartitionStateMachine) {
    let log = Arc::new(spool_storage::testing::open(
        dir.path(),
        config,
        &ManualClock::new(1_000),
    ));
    let store = PartitionLogStore::open(Arc::clone(&log)).expect("open log store");
    let machine = PartitionStateMachine::open(log).expect("open state machine");
    (store, machine)
}

#[test]
fn openraft_conformance_suite_passes_against_the_segment_log() {
    Suite::test_all(SegmentLogBuilder).expect("openraft storage suite");
}

fn data_entry(term: u64, index: u64, value: &str) -> PartitionEntry {
    let batch = values_batch(&[value.as_bytes().to_vec(), b"second".to_vec()], 7);
    PartitionEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(BatchPayload::new(Bytes::from(batch))),
    }
}

fn blank_entry(term: u64, index: u64) -> PartitionEntry {
    PartitionEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}

fn membership_entry(term: u64, index: u64) -> PartitionEntry {
    let voters: BTreeSet<u64> = [1, 2, 3].into();
    PartitionEntry {
        log_id: log_id(term, index),
        payload: EntryPayload::Membership(Membership::new(vec![voters], ())),
    }
}

/// Index 0 membership, 1 blank, then data entries 2.. with two records
/// each, terms rising every four entries.
fn history(count: u64) -> Vec<PartitionEntry> {
    let mut entries = vec![membership_entry(1, 0), blank_entry(1, 1)];
    for index in 2..count {
        entries.push(data_entry(1 + index / 4, index, &format!("value-{index}")));
    }
    entries
}

/// An entry as a test compares it: log id and, for data, the records.
fn describe(entry: &PartitionEntry) -> String {
    match &entry.payload {
        EntryPayload::Normal(batch) => {
            let records = spool_storage::testing::decode(&batch.batch);
            let values: Vec<String> = records
                .iter()
                .map(|r| {
                    format!(
                        "{}={}",
                        r.offset,
                        String::from_utf8_lossy(r.value.as_deref().unwrap())
                    )
                })
                .collect();
            format!("{} {}", entry.log_id, values.join(","))
        }
        EntryPayload::Blank => format!("{} blank", entry.log_id),
        EntryPayload::Membership(m) => format!(
            "{} membership {:?}",
            entry.log_id,
            m.voter_ids().collect::<Vec<_>>()
        ),
    }
}

#[tokio::test]
async fn data_entries_get_consecutive_offsets_and_read_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let written = history(40);
    {
        let (mut store, _) = open_raft_storage(&dir, small_segments());
        store.blocking_append(written.clone()).await.unwrap();
        store.save_vote(&Vote::new(9, 2)).await.unwrap();
        let read = store.try_get_log_entries(0..40).await.unwrap();
        let described: Vec<String> = read.iter().map(describe).collect();
        assert!(
            described[2].starts_with("1-2 0=value-2,1=second"),
            "{}",
            described[2]
        );
        assert!(
            described[39].starts_with("10-39 74=value-39,75=second"),
            "{}",
            described[39]
        );
        assert!(
            store.log().segment_base_offsets().len() > 3,
            "the entries span segments"
        );
    }
    let (mut store, _) = open_raft_storage(&dir, small_segments());
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(9, 2)));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(10, 39)));
    assert_eq!(state.last_purged_log_id, None);
    let mut reader = store.get_log_reader().await;
    let read = reader.try_get_log_entries(..).await.unwrap();
    assert_eq!(read.len(), 40);
    for (index, entry) in read.iter().enumerate() {
        assert_eq!(entry.log_id, written[index].log_id, "entry {index}");
    }
    assert_eq!(describe(&read[1]), "1-1 blank");
    let records = read_all(store.log(), 4096);
    assert_eq!(
        records.len(),
        76,
        "38 data entries of two records; meta entries take no offset"
    );
    assert!(records
        .iter()
        .enumerate()
        .all(|(i, r)| r.offset == i as u64));
}

#[tokio::test]
async fn purge_hides_entries_from_raft_but_keeps_records_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut store, _) = open_raft_storage(&dir, small_segments());
        store.blocking_append(history(20)).await.unwrap();
        store.purge(log_id(3, 12)).await.unwrap();
        let first = store.try_get_log_entries(..).await.unwrap()[0].log_id;
        assert_eq!(first, log_id(4, 13));
    }
    let (mut store, _) = open_raft_storage(&dir, small_segments());
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(3, 12)));
    assert_eq!(state.last_log_id, Some(log_id(5, 19)));
    assert_eq!(
        read_all(store.log(), 4096).len(),
        36,
        "consumers still read purged entries"
    );
    store.truncate(log_id(4, 15)).await.unwrap();
    store
        .blocking_append([data_entry(6, 15, "rewritten")])
        .await
        .unwrap();
    let tail = store.try_get_log_entries(13..).await.unwrap();
    let described: Vec<String> = tail.iter().map(describe).collect();
    assert_eq!(described.len(), 3);
    assert_eq!(described[2], "6-15 26=rewritten,27=second");
}

#[tokio::test]
async fn appending_after_a_gap_that_is_not_purged_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = open_raft_storage(&dir, small_segments());
    store.blocking_append(history(5)).await.unwrap();
    let refused = store.blocking_append([data_entry(2, 7, "hole")]).await;
    assert!(refused.is_err(), "a hole in the log must be refused");
    assert_eq!(store.log().raft_index_range(), (0, 5));
}

/// Applies every entry the store holds, as openraft does once they commit.
async fn apply_all(store: &mut PartitionLogStore, machine: &mut PartitionStateMachine) {
    let entries = store.try_get_log_entries(..).await.unwrap();
    machine.apply(entries).await.unwrap();
}

#[tokio::test]
async fn a_snapshot_moves_the_leaders_log_onto_an_empty_or_diverged_replica() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (mut leader, mut leader_sm) = open_raft_storage(&leader_dir, small_segments());
    leader.blocking_append(history(30)).await.unwrap();
    apply_all(&mut leader, &mut leader_sm).await;
    let built = leader_sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(built.meta.last_log_id, Some(log_id(8, 29)));
    let hw = leader_sm.subscribe_high_watermark();
    assert_eq!(*hw.borrow(), 56);

    // One replica starts empty; the other holds a diverged tail of its own.
    let empty_dir = tempfile::tempdir().unwrap();
    let diverged_dir = tempfile::tempdir().unwrap();
    let (mut diverged, _) = open_raft_storage(&diverged_dir, small_segments());
    let mut own = history(10);
    own.extend((10..14).map(|i| data_entry(2, i, "diverged")));
    diverged.blocking_append(own).await.unwrap();
    drop(diverged);

    let expected = read_all(leader.log(), 4096);
    for dir in [&empty_dir, &diverged_dir] {
        let (mut store, mut machine) = open_raft_storage(dir, small_segments());
        let snapshot = leader_sm
            .get_current_snapshot()
            .await
            .unwrap()
            .expect("a snapshot");
        let mut receiving = machine.begin_receiving_snapshot().await.unwrap();
        *receiving = *snapshot.snapshot;
        machine
            .install_snapshot(&snapshot.meta, receiving)
            .await
            .unwrap();
        store.purge(log_id(8, 29)).await.unwrap();
        assert_eq!(
            read_all(store.log(), 4096),
            expected,
            "records and offsets match the leader's"
        );
        assert_eq!(*machine.subscribe_high_watermark().borrow(), 56);
        drop((store, machine));

        // The replica goes on from the snapshot after a restart.
        let (mut store, mut machine) = open_raft_storage(dir, small_segments());
        let (applied, membership) = machine.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(8, 29)));
        assert_eq!(membership.log_id(), &Some(log_id(1, 0)));
        store
            .blocking_append([data_entry(9, 30, "next")])
            .await
            .unwrap();
        let last = store.try_get_log_entries(30..).await.unwrap();
        assert_eq!(describe(&last[0]), "9-30 56=next,57=second");
    }
}

#[tokio::test]
async fn a_restarted_state_machine_resumes_near_its_last_applied_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, mut machine) = open_raft_storage(&dir, small_segments());
    let mut entries = vec![membership_entry(1, 0)];
    entries.extend((1..12_000).map(|i| blank_entry(1, i)));
    store.blocking_append(entries.clone()).await.unwrap();
    machine.apply(entries).await.unwrap();
    drop((store, machine));

    // Applied state is written every 10,000 entries: a restart resumes at
    // the last write, not at the log start, and never past what was
    // applied.
    let (_, mut machine) = open_raft_storage(&dir, small_segments());
    let (applied, membership) = machine.applied_state().await.unwrap();
    let index = applied.expect("an applied state survives").index;
    assert!((10_000..12_000).contains(&index), "resumed at {index}");
    assert_eq!(membership.log_id(), &Some(log_id(1, 0)));
}
