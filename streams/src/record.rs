//! A record as a topology sees it: typed key and value, with the
//! timestamp and headers it carried in its topic.

/// One record flowing through a topology.
#[derive(Clone, Debug, PartialEq)]
pub struct Record<K, V> {
    pub key: K,
    pub value: V,
    /// Milliseconds since the epoch: the input record's timestamp, kept by
    /// every stateless operator (as Kafka Streams keeps it).
    pub timestamp: i64,
    pub headers: Vec<Header>,
}

impl<K, V> Record<K, V> {
    pub fn new(key: K, value: V, timestamp: i64) -> Record<K, V> {
        Record {
            key,
            value,
            timestamp,
            headers: Vec::new(),
        }
    }
}

/// A record header: a name and bytes, or a null.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Vec<u8>>,
}
