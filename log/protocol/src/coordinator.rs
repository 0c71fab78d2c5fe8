//! Coordination through internal topics, as in Kafka: a consumer group or
//! a transactional id hashes to one partition of an internal topic, and
//! the broker leading that partition coordinates it. Clients and brokers
//! must agree on the hash, so it lives here.

/// The consumer groups' offsets topic, as in Kafka.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The transaction coordinators' state topic, as in Kafka.
pub const TRANSACTIONS_TOPIC: &str = "__transaction_state";

/// `FindCoordinator`'s key type for a consumer group.
pub const KEY_TYPE_GROUP: u32 = 0;

/// `FindCoordinator`'s key type for a transactional id.
pub const KEY_TYPE_TRANSACTION: u32 = 1;

/// The partition (shard) of `key` among an internal topic's `partitions`:
/// a stable hash of the key, so every broker and every restart agrees.
pub fn shard_of(key: &str, partitions: u32) -> u32 {
    (murmur2(key.as_bytes()) & 0x7fff_ffff) as u32 % partitions.max(1)
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): the
/// hash of Kafka's default partitioner and of spool's coordinator shards.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Kafka's own UtilsTest.
    #[test]
    fn matches_kafka() {
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }
}
