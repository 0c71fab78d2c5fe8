//! Choosing a partition for a record: Kafka's murmur2 hash of the key, so a
//! key lands on the same partition as with Kafka's own clients.

use spool_protocol::coordinator::murmur2;

/// The partition of a keyed record among `partitions`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_and_stay_put() {
        let p = partition_for_key(b"user-42", 12);
        assert_eq!(p, partition_for_key(b"user-42", 12));
        let used: std::collections::HashSet<u32> = (0..1000)
            .map(|i| partition_for_key(format!("k{i}").as_bytes(), 12))
            .collect();
        assert_eq!(used.len(), 12);
    }
}
