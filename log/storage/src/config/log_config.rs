//! Per-topic log configuration: segments, durability, retention, compaction.

use crate::{Result, StorageError};
use spool_record::{Compression, HEADER_LEN};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// What happens to old data: deleted by retention, compacted by key, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };

    fn parse(value: &str) -> Option<Self> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for part in value.split(',').map(str::trim) {
            match part {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                _ => return None,
            }
        }
        Some(policy)
    }

    fn name(self) -> &'static str {
        match (self.delete, self.compact) {
            (true, true) => "compact,delete",
            (false, true) => "compact",
            _ => "delete",
        }
    }
}

/// When appended bytes are forced to disk with fsync. Bytes not yet synced
/// live in the page cache: they survive a process crash but not a power loss.
/// Either trigger may be off; with both off only an explicit `flush` syncs
/// (the replication layer does this before it acknowledges `acks=all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsyncPolicy {
    /// Sync once this many bytes are unsynced; `Some(0)` syncs every append.
    pub every_bytes: Option<u64>,
    /// Sync once the oldest unsynced append is this many milliseconds old.
    pub every_ms: Option<u64>,
}

impl FsyncPolicy {
    pub const EVERY_APPEND: FsyncPolicy = FsyncPolicy {
        every_bytes: Some(0),
        every_ms: None,
    };
    pub const EXPLICIT: FsyncPolicy = FsyncPolicy {
        every_bytes: None,
        every_ms: None,
    };
}

/// The configuration of one partition log. Build it with
/// [`LogConfig::default`] and [`LogConfig::set`], or all at once with
/// [`LogConfig::from_pairs`]; both validate every value.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `cleanup.policy` (default `delete`): Kafka's default. Compaction is
    /// opt-in because it changes what consumers see.
    pub cleanup_policy: CleanupPolicy,
    /// `retention.ms` (default 7 days, -1 = forever): Kafka's default, long
    /// enough to ride out a week-long consumer outage.
    pub retention_ms: Option<u64>,
    /// `retention.bytes` (default -1 = unlimited): size limits depend on the
    /// disk, which only the operator knows.
    pub retention_bytes: Option<u64>,
    /// `segment.bytes` (default 1 GiB): large enough that a partition holds few
    /// files, small enough that retention frees space in useful steps.
    pub segment_bytes: u64,
    /// `segment.ms` (default 7 days): rolls quiet segments so time retention
    /// and compaction can reach their data.
    pub segment_ms: u64,
    /// `index.interval.bytes` (default 4096): one index entry per page of log
    /// keeps the index at ~0.2% of the log while a lookup scans at most a page.
    pub index_interval_bytes: u64,
    /// `delete.retention.ms` (default 1 day): how long a tombstone outlives the
    /// records it deletes, so a consumer reading from the start sees it.
    pub delete_retention_ms: u64,
    /// `min.cleanable.dirty.ratio` (default 0.5): compact once half the
    /// cleanable bytes are uncompacted, trading cleaner I/O for space.
    pub min_cleanable_dirty_ratio: f64,
    /// `max.message.bytes` (default 1048588): Kafka's default largest batch,
    /// 1 MiB of records plus the batch overhead.
    pub max_message_bytes: u64,
    /// `flush.bytes` and `flush.ms` (default -1 and -1: explicit flushes
    /// only): durability comes from replication and the `acks=all` flush, as
    /// in Kafka, rather than from syncing every append.
    pub fsync: FsyncPolicy,
    /// `compression.type` (default `producer`, `None` here: each batch is
    /// stored as its producer compressed it, which costs the broker
    /// nothing). A codec (`uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`)
    /// makes the leader recompress every batch written otherwise, as
    /// Kafka does, trading broker CPU for disk and network.
    pub compression: Option<Compression>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            cleanup_policy: CleanupPolicy::DELETE,
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            index_interval_bytes: 4096,
            delete_retention_ms: DAY_MS,
            min_cleanable_dirty_ratio: 0.5,
            max_message_bytes: 1_048_588,
            fsync: FsyncPolicy::EXPLICIT,
            compression: None,
        }
    }
}

/// Every key `LogConfig` accepts.
pub const KNOWN_KEYS: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "flush.bytes",
    "flush.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "min.cleanable.dirty.ratio",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "compression.type",
    "message.timestamp.type",
];

/// Kafka topic settings whose one accepted value is what spool does:
/// programs written for Kafka set them (Kafka Streams on its internal
/// topics, Kafka Connect, `kafka-configs`) and get that value accepted,
/// and any other value refused with the reason, instead of a setting
/// that silently does nothing. (key, the value, why no other.)
pub const FIXED_SETTINGS: &[(&str, &str, &str)] = &[(
    "message.timestamp.type",
    "CreateTime",
    "spool keeps the timestamps producers give their records",
)];

/// Segment positions are 32-bit in the index, and Kafka caps sizes at i32.
const MAX_SIZE: u64 = i32::MAX as u64;

/// Times and byte counts are compared with signed 64-bit clock readings;
/// anything larger would wrap (as Kafka's longs cap them too).
const MAX_LONG: u64 = i64::MAX as u64;

impl LogConfig {
    /// Builds a config from defaults plus `pairs`, rejecting unknown keys and
    /// invalid values.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut config = LogConfig::default();
        for (key, value) in pairs {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Sets one key from its string form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let value = value.trim();
        match key {
            "cleanup.policy" => {
                self.cleanup_policy = CleanupPolicy::parse(value).ok_or_else(|| {
                    invalid(key, value, "expected delete, compact, or compact,delete")
                })?
            }
            "retention.ms" => self.retention_ms = optional(key, value, 0, MAX_LONG)?,
            "retention.bytes" => self.retention_bytes = optional(key, value, 0, MAX_LONG)?,
            "segment.bytes" => {
                self.segment_bytes = number(key, value, HEADER_LEN as u64, MAX_SIZE)?
            }
            "segment.ms" => self.segment_ms = number(key, value, 1, MAX_LONG)?,
            "index.interval.bytes" => self.index_interval_bytes = number(key, value, 0, MAX_SIZE)?,
            "delete.retention.ms" => self.delete_retention_ms = number(key, value, 0, MAX_LONG)?,
            "max.message.bytes" => {
                self.max_message_bytes = number(key, value, HEADER_LEN as u64, MAX_SIZE)?
            }
            "flush.bytes" => self.fsync.every_bytes = optional(key, value, 0, MAX_LONG)?,
            "flush.ms" => self.fsync.every_ms = optional(key, value, 0, MAX_LONG)?,
            "compression.type" => {
                self.compression = match value {
                    "producer" => None,
                    name => Some(Compression::from_name(name).ok_or_else(|| {
                        invalid(
                            key,
                            value,
                            "expected producer, uncompressed, gzip, snappy, lz4 or zstd",
                        )
                    })?),
                }
            }
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio = value
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| invalid(key, value, "expected a number between 0 and 1"))?
            }
            _ => match fixed_setting(key) {
                Some((_, only, why)) if !value.eq_ignore_ascii_case(only) => {
                    return Err(invalid(
                        key,
                        value,
                        &format!("{why}; the only value is {only}"),
                    ))
                }
                Some(_) => {}
                None => {
                    return Err(StorageError::UnknownConfig {
                        key: key.to_string(),
                        known: KNOWN_KEYS.join(", "),
                    })
                }
            },
        }
        Ok(())
    }

    /// The config as `key=value` pairs, the inverse of [`LogConfig::from_pairs`].
    /// [`LogConfig::to_pairs`] with owned keys, as cluster metadata stores
    /// a topic's settings.
    pub fn to_owned_pairs(&self) -> Vec<(String, String)> {
        self.to_pairs()
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect()
    }

    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
        vec![
            ("cleanup.policy", self.cleanup_policy.name().to_string()),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
            ("flush.bytes", opt(self.fsync.every_bytes)),
            ("flush.ms", opt(self.fsync.every_ms)),
            (
                "index.interval.bytes",
                self.index_interval_bytes.to_string(),
            ),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            (
                "min.cleanable.dirty.ratio",
                self.min_cleanable_dirty_ratio.to_string(),
            ),
            ("retention.bytes", opt(self.retention_bytes)),
            ("retention.ms", opt(self.retention_ms)),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            (
                "compression.type",
                self.compression
                    .map_or("producer", |c| match c {
                        Compression::None => "uncompressed",
                        codec => codec.name(),
                    })
                    .to_string(),
            ),
            ("message.timestamp.type", "CreateTime".to_string()),
        ]
    }
}

fn fixed_setting(key: &str) -> Option<(&'static str, &'static str, &'static str)> {
    FIXED_SETTINGS.iter().copied().find(|(k, _, _)| *k == key)
}

fn invalid(key: &str, value: &str, reason: &str) -> StorageError {
    StorageError::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn number(key: &str, value: &str, min: u64, max: u64) -> Result<u64> {
    value
        .parse::<u64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            invalid(
                key,
                value,
                &format!("expected a whole number from {min} to {max}"),
            )
        })
}

/// A number where -1 means "no limit".
fn optional(key: &str, value: &str, min: u64, max: u64) -> Result<Option<u64>> {
    if value == "-1" {
        return Ok(None);
    }
    number(key, value, min, max).map(Some).map_err(|_| {
        invalid(
            key,
            value,
            &format!("expected -1 (no limit) or a whole number from {min} to {max}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let config = LogConfig::from_pairs([
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "-1"),
            ("retention.bytes", "1000000"),
            ("segment.bytes", "4096"),
            ("flush.bytes", "0"),
            ("min.cleanable.dirty.ratio", "0.25"),
        ])
        .unwrap();
        assert_eq!(
            config.cleanup_policy,
            CleanupPolicy {
                delete: true,
                compact: true
            }
        );
        assert_eq!(config.retention_ms, None);
        assert_eq!(config.fsync, FsyncPolicy::EVERY_APPEND);
        let pairs = config.to_pairs();
        let again = LogConfig::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(config, again);
        assert_eq!(pairs.len(), KNOWN_KEYS.len());
    }

    #[test]
    fn kafka_settings_with_one_value_take_it_and_refuse_others() {
        let mut config = LogConfig::default();
        config.set("message.timestamp.type", "CreateTime").unwrap();
        assert_eq!(config, LogConfig::default());
        let err = config
            .set("message.timestamp.type", "LogAppendTime")
            .unwrap_err()
            .to_string();
        assert!(err.contains("the only value is CreateTime"), "{err}");
    }

    #[test]
    fn compression_is_the_producers_or_a_codec() {
        let mut config = LogConfig::default();
        config.set("compression.type", "producer").unwrap();
        assert_eq!(config, LogConfig::default());
        for (name, codec) in [
            ("uncompressed", Compression::None),
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
        ] {
            config.set("compression.type", name).unwrap();
            assert_eq!(config.compression, Some(codec));
            let pairs = config.to_pairs();
            assert!(pairs.contains(&("compression.type", name.to_string())));
        }
        assert!(config.set("compression.type", "brotli").is_err());
    }

    #[test]
    fn unknown_keys_list_the_known_ones() {
        let err = LogConfig::from_pairs([("retention.msec", "5")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown config `retention.msec`"), "{err}");
        assert!(err.contains("retention.ms"), "{err}");
    }

    #[test]
    fn invalid_values_say_what_is_expected() {
        for (key, value, expect) in [
            ("cleanup.policy", "shred", "expected delete, compact"),
            ("segment.bytes", "10", "from 61 to"),
            ("segment.bytes", "99999999999", "from 61 to"),
            ("retention.ms", "-5", "-1 (no limit)"),
            ("retention.ms", "soon", "-1 (no limit)"),
            ("min.cleanable.dirty.ratio", "1.5", "between 0 and 1"),
            ("max.message.bytes", "", "whole number"),
        ] {
            let err = LogConfig::from_pairs([(key, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{key}={value}: {err}");
            assert!(err.contains(key), "{err}");
        }
    }
}
