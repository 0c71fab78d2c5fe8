//! The client side of consumer groups: the consumer protocol encoding,
//! the assignors the leader runs, and the membership loop (join, sync,
//! heartbeats) a subscribed consumer drives from `poll`.

mod assignor;
mod copartitioned;
mod membership;

pub use assignor::Assignor;
pub use membership::{GroupSettings, Membership, RebalanceListener, Rebalanced, RejoinHandle};
pub use spool_protocol::consumer_protocol::{Assignment, Subscription};

use std::sync::Arc;

use parking_lot::Mutex;
use spool_protocol::proto::{OffsetCommitPartition, OffsetCommitTopic};

use crate::TopicPartition;

/// `offsets` as the topics of an offset commit (or of an offset
/// deletion, where the offsets are ignored): one entry per topic.
pub(crate) fn commit_topics(
    offsets: impl IntoIterator<Item = (TopicPartition, u64)>,
) -> Vec<OffsetCommitTopic> {
    let mut topics: Vec<OffsetCommitTopic> = Vec::new();
    for (tp, offset) in offsets {
        let partition = OffsetCommitPartition {
            partition: tp.partition,
            offset,
            metadata: String::new(),
        };
        match topics.iter_mut().find(|t| t.name == tp.topic) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(OffsetCommitTopic {
                name: tp.topic,
                partitions: vec![partition],
            }),
        }
    }
    topics
}

/// Partitions a rebalance took away or gave.
#[derive(Debug, Default)]
pub struct PartitionMoves {
    pub revoked: Vec<TopicPartition>,
    pub assigned: Vec<TopicPartition>,
}

/// A listener that only records the moves, for a program that applies
/// them in its own loop after `poll` (a stream thread, a sink task)
/// rather than inside the callbacks. Clones share the record.
#[derive(Clone, Default)]
pub struct MoveRecorder(Arc<Mutex<PartitionMoves>>);

impl MoveRecorder {
    /// The moves recorded since the last call.
    pub fn take(&self) -> PartitionMoves {
        std::mem::take(&mut *self.0.lock())
    }
}

impl RebalanceListener for MoveRecorder {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().revoked.extend_from_slice(partitions);
    }

    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().assigned.extend_from_slice(partitions);
    }
}
