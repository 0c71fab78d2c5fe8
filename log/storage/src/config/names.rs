//! Naming and sizing rules for topics and partitions.

use crate::{Result, StorageError};

/// Longest topic name. Kafka's limit, kept so that names move freely between
/// the two systems and a partition directory name (`<topic>-<partition>`)
/// stays under the 255-byte file name limit of common file systems.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Most partitions one topic may have. Each partition is a directory, open
/// files and (with replication) a Raft group; beyond a few thousand per topic
/// an operator almost certainly made a typo.
pub const MAX_PARTITIONS: u32 = 10_000;

/// Checks a topic name: 1 to 249 characters from `[a-zA-Z0-9._-]`, and not
/// `.` or `..` (which would be directory names with a meaning).
pub fn validate_topic_name(name: &str) -> Result<()> {
    let fail = |reason: &str| {
        Err(StorageError::InvalidTopicName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return fail("the name is empty");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return fail("the name is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return fail("`.` and `..` are reserved");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return fail(&format!(
            "character {bad:?} is not allowed; use ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Checks a partition count: at least 1, at most [`MAX_PARTITIONS`].
pub fn validate_partition_count(count: u32) -> Result<()> {
    if count == 0 || count > MAX_PARTITIONS {
        return Err(StorageError::InvalidConfig {
            key: "partitions".into(),
            value: count.to_string(),
            reason: format!("must be between 1 and {MAX_PARTITIONS}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_style_names() {
        for name in [
            "orders",
            "a",
            "orders.v2",
            "__consumer_offsets",
            "A-b_c.9",
            &"x".repeat(249),
        ] {
            validate_topic_name(name).unwrap();
        }
    }

    #[test]
    fn rejects_bad_names_with_the_reason() {
        for (name, reason) in [
            ("", "empty"),
            (".", "reserved"),
            ("..", "reserved"),
            ("a/b", "'/'"),
            ("a b", "' '"),
            ("ünï", "'ü'"),
            (&"x".repeat(250), "longer"),
        ] {
            let err = validate_topic_name(name).unwrap_err().to_string();
            assert!(err.contains(reason), "{name:?}: {err}");
        }
    }

    #[test]
    fn partition_counts() {
        validate_partition_count(1).unwrap();
        validate_partition_count(MAX_PARTITIONS).unwrap();
        assert!(validate_partition_count(0).is_err());
        assert!(validate_partition_count(MAX_PARTITIONS + 1).is_err());
    }
}
