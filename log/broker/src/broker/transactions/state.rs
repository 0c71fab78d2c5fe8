//! The state of one transactional id, as the coordinator keeps it in
//! `__transaction_state`, and the rules for moving between states. Pure:
//! the coordinator writes each new state to the log before acting on it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use spool_protocol::proto::ErrorCode;

/// Where a transactional id's current transaction stands (Kafka's
/// `TransactionState`, plus `Prepared` for two-phase commit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    /// No transaction open (after init, or after one completed).
    Empty,
    /// Partitions were added; records may be written.
    Ongoing,
    /// The producer prepared the transaction (two-phase commit): it is
    /// kept open past its timeout until the producer, or the instance that
    /// resumes it, commits or aborts.
    Prepared,
    /// Decided: markers are being written.
    PrepareCommit,
    PrepareAbort,
    /// Every marker is written.
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::Prepared => "Prepared",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Whether a transaction is open (records may be in partitions).
    pub fn is_open(self) -> bool {
        matches!(self, TxnState::Ongoing | TxnState::Prepared)
    }

    /// Whether markers are decided but may not all be written.
    pub fn is_deciding(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// What the coordinator remembers of a transactional id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMetadata {
    pub producer_id: i64,
    /// The epoch the producer writes with; bumped by every completion (the
    /// markers carry the bumped one) and by every init.
    pub epoch: i16,
    pub timeout_ms: u32,
    pub state: TxnState,
    /// The partitions of the open transaction, the groups' offsets
    /// partitions included.
    pub partitions: BTreeSet<(String, u32)>,
    /// Groups whose offsets the open transaction commits.
    pub groups: BTreeSet<String>,
    /// Wall-clock milliseconds when the open transaction began.
    pub start_ms: i64,
}

/// Why a request does not fit the transactional id's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl TxnMetadata {
    /// Checks that `producer_id` at `epoch` is the id's current producer.
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), Refusal> {
        if producer_id != self.producer_id {
            return Err(Refusal::new(
                ErrorCode::InvalidProducerEpoch,
                format!(
                    "producer id {producer_id} is not the transactional id's ({})",
                    self.producer_id
                ),
            ));
        }
        if epoch != self.epoch {
            return Err(Refusal::new(
                ErrorCode::InvalidProducerEpoch,
                format!(
                    "producer {producer_id} is fenced: epoch {epoch}, the current one is {}",
                    self.epoch
                ),
            ));
        }
        Ok(())
    }

    /// Adds partitions to the open transaction, opening one if none is;
    /// returns whether anything changed (and so must be written).
    pub fn add_partitions(
        &mut self,
        partitions: impl IntoIterator<Item = (String, u32)>,
        now_ms: i64,
    ) -> Result<bool, Refusal> {
        let mut changed = false;
        match self.state {
            TxnState::Ongoing => {}
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                self.state = TxnState::Ongoing;
                self.start_ms = now_ms;
                self.partitions.clear();
                self.groups.clear();
                changed = true;
            }
            TxnState::Prepared => {
                return Err(Refusal::new(
                    ErrorCode::InvalidTxnState,
                    "the transaction is prepared: commit or abort it",
                ))
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return Err(Refusal::new(
                    ErrorCode::ConcurrentTransactions,
                    "the previous transaction is completing",
                ))
            }
        }
        for partition in partitions {
            changed |= self.partitions.insert(partition);
        }
        Ok(changed)
    }

    /// The state after `EndTxn` decides (commit or abort) the open
    /// transaction, with the epoch bumped unless `bump_epoch` is false: a
    /// Kafka client older than per-transaction epochs (`EndTxn` before v5)
    /// keeps writing with its epoch, so its markers carry that one.
    pub fn decide(&mut self, commit: bool, bump_epoch: bool) -> Result<(), Refusal> {
        if !self.state.is_open() {
            return Err(Refusal::new(
                ErrorCode::InvalidTxnState,
                format!("no transaction is open (state {})", self.state.name()),
            ));
        }
        self.state = match commit {
            true => TxnState::PrepareCommit,
            false => TxnState::PrepareAbort,
        };
        if bump_epoch {
            self.epoch = self.epoch.saturating_add(1);
        }
        Ok(())
    }

    /// The state once every marker of the decided transaction is written.
    pub fn complete(&mut self) {
        self.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        self.partitions.clear();
        self.groups.clear();
        self.start_ms = 0;
    }

    /// Whether `EndTxn` from `epoch` is a retry of the one that completed
    /// the last transaction (its answer was lost): answered again alike.
    pub fn completed_by(&self, producer_id: i64, epoch: i16, commit: bool) -> bool {
        let done = match commit {
            true => TxnState::CompleteCommit,
            false => TxnState::CompleteAbort,
        };
        producer_id == self.producer_id
            && self.state == done
            && i32::from(epoch) + 1 == i32::from(self.epoch)
    }

    /// Whether the open transaction outlived its timeout at `now_ms`. A
    /// prepared transaction never does: only its owner may end it.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && now_ms.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> TxnMetadata {
        TxnMetadata {
            producer_id: 9,
            epoch: 0,
            timeout_ms: 1000,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            start_ms: 0,
        }
    }

    #[test]
    fn a_transaction_opens_decides_with_a_bumped_epoch_and_completes() {
        let mut txn = fresh();
        assert_eq!(txn.add_partitions([("t".into(), 0)], 100), Ok(true));
        assert_eq!(txn.add_partitions([("t".into(), 0)], 150), Ok(false));
        assert_eq!(txn.state, TxnState::Ongoing);
        assert!(!txn.timed_out(1100) && txn.timed_out(1101));
        txn.decide(true, true).unwrap();
        assert_eq!((txn.state, txn.epoch), (TxnState::PrepareCommit, 1));
        assert_eq!(
            txn.add_partitions([("t".into(), 1)], 200).unwrap_err().code,
            ErrorCode::ConcurrentTransactions
        );
        txn.complete();
        assert_eq!(txn.state, TxnState::CompleteCommit);
        assert!(txn.partitions.is_empty());
        assert!(txn.completed_by(9, 0, true) && !txn.completed_by(9, 0, false));
        assert_eq!(
            txn.decide(true, true).unwrap_err().code,
            ErrorCode::InvalidTxnState
        );
        assert_eq!(
            txn.check_producer(9, 0).unwrap_err().code,
            ErrorCode::InvalidProducerEpoch
        );
        txn.check_producer(9, 1).unwrap();
    }

    #[test]
    fn a_prepared_transaction_never_times_out_and_takes_no_partitions() {
        let mut txn = fresh();
        txn.add_partitions([("t".into(), 0)], 0).unwrap();
        txn.state = TxnState::Prepared;
        assert!(!txn.timed_out(i64::MAX));
        assert_eq!(
            txn.add_partitions([("t".into(), 1)], 0).unwrap_err().code,
            ErrorCode::InvalidTxnState
        );
        txn.decide(false, true).unwrap();
        assert_eq!(txn.state, TxnState::PrepareAbort);
    }
}
