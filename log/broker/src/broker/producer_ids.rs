//! Producer ids: each broker hands out ids from its own range, so that no
//! two producers of a cluster share one and no metadata write is needed
//! per producer (Kafka has brokers take blocks of ids from the
//! controller for the same reason).
//!
//! An id is the broker's node id in bits 48..63 and a counter below. The
//! counter is reserved [`BLOCK`] ids at a time in `producer-ids` in the
//! data directory, durably before any id of the block is handed out, so a
//! restart never hands out an id twice: it starts at the next block.

use parking_lot::Mutex;
use std::path::PathBuf;

use crate::{BrokerError, Result};
use spool_protocol::proto::{InitProducerIdRequest, InitProducerIdResponse};
use spool_storage::{read_durable, write_durable};

/// The file name of the reservation.
pub const PRODUCER_IDS_FILE: &str = "producer-ids";

/// Ids reserved per write of `producer-ids`: one small fsync per thousand
/// producers.
const BLOCK: u64 = 1000;

/// Bits of an id below the node id.
const COUNTER_BITS: u32 = 48;

/// The producer id allocator of one broker.
pub struct ProducerIds {
    dir: PathBuf,
    node: u64,
    /// The next id to hand out and the end of the reserved block.
    next: Mutex<(u64, u64)>,
}

impl ProducerIds {
    /// Opens the allocator of broker `node` over `dir`.
    pub fn open(dir: impl Into<PathBuf>, node: u64) -> Result<ProducerIds> {
        let dir = dir.into();
        if node >= 1 << (63 - COUNTER_BITS) {
            return Err(BrokerError::InvalidConfig {
                key: "node_id".into(),
                value: node.to_string(),
                reason: format!(
                    "node ids must be below {} (they are part of producer ids)",
                    1u64 << (63 - COUNTER_BITS)
                ),
            });
        }
        let reserved: u64 = read_durable(&dir, PRODUCER_IDS_FILE)?.unwrap_or(0);
        Ok(ProducerIds {
            dir,
            node,
            next: Mutex::new((reserved, reserved)),
        })
    }

    /// A producer id no producer of the cluster had before.
    pub fn allocate(&self) -> Result<i64> {
        let mut next = self.next.lock();
        let (counter, reserved) = *next;
        if counter >= reserved {
            let end = reserved + BLOCK;
            if end > 1 << COUNTER_BITS {
                return Err(BrokerError::InvalidRequest(format!(
                    "broker {} has handed out all of its producer ids",
                    self.node
                )));
            }
            write_durable(&self.dir, PRODUCER_IDS_FILE, &end)?;
            next.1 = end;
        }
        next.0 = counter + 1;
        Ok(((self.node << COUNTER_BITS) | counter) as i64)
    }

    /// Answers `InitProducerId` for a producer without a transactional id:
    /// a new id at epoch 0.
    pub fn init_producer_id(&self, request: &InitProducerIdRequest) -> InitProducerIdResponse {
        if !request.transactional_id.is_empty() {
            let e = BrokerError::InvalidRequest(
                "transactional ids are not supported yet; leave transactional_id empty".into(),
            );
            return e.response();
        }
        match self.allocate() {
            Ok(producer_id) => InitProducerIdResponse {
                producer_id,
                producer_epoch: 0,
                ..Default::default()
            },
            Err(e) => e.response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts_and_carry_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProducerIds::open(dir.path(), 3).unwrap();
        let a = first.allocate().unwrap();
        let b = first.allocate().unwrap();
        assert_eq!(b, a + 1);
        assert_eq!(a >> COUNTER_BITS, 3);
        drop(first);
        let again = ProducerIds::open(dir.path(), 3).unwrap();
        let c = again.allocate().unwrap();
        assert!(
            c > b,
            "a restart starts past every id handed out: {c} <= {b}"
        );
        let other_dir = tempfile::tempdir().unwrap();
        let other = ProducerIds::open(other_dir.path(), 4).unwrap();
        assert_ne!(other.allocate().unwrap(), a);
    }

    #[test]
    fn a_node_id_too_large_for_producer_ids_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ProducerIds::open(dir.path(), 1 << 15).is_err());
    }
}
