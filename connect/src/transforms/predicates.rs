//! Kafka's predicates, which choose the records a transform applies to:
//! `TopicNameMatches`, `HasHeaderKey` and `RecordIsTombstone`.

use regex::Regex;

use super::routers::whole_match;
use super::settings::{Read, Settings};
use super::{Predicate, TransformRecord};

/// Kafka's `TopicNameMatches`: true for records whose whole topic matches
/// `pattern` (see `routers` for the regular expression dialect).
pub(crate) struct TopicNameMatches {
    pattern: Regex,
}

impl TopicNameMatches {
    pub(crate) fn configure(settings: &Settings<'_>) -> Read<TopicNameMatches> {
        let pattern = whole_match(settings.non_empty("pattern")?)
            .map_err(|reason| settings.invalid("pattern", reason))?;
        Ok(TopicNameMatches { pattern })
    }
}

impl Predicate for TopicNameMatches {
    fn test(&self, record: &TransformRecord) -> bool {
        self.pattern.is_match(&record.topic)
    }
}

/// Kafka's `HasHeaderKey`: true for records with at least one header
/// named `name` (whatever its value, null included).
pub(crate) struct HasHeaderKey {
    name: String,
}

impl HasHeaderKey {
    pub(crate) fn configure(settings: &Settings<'_>) -> Read<HasHeaderKey> {
        Ok(HasHeaderKey {
            name: settings.non_empty("name")?.to_string(),
        })
    }
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &TransformRecord) -> bool {
        record.headers.iter().any(|(name, _)| *name == self.name)
    }
}

/// Kafka's `RecordIsTombstone`: true for records without a value.
pub(crate) struct RecordIsTombstone;

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &TransformRecord) -> bool {
        record.is_tombstone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConfigMap;
    use serde_json::json;

    fn settings_of(key: &str, value: &str) -> ConfigMap {
        [(format!("predicates.p.{key}"), value.to_string())].into()
    }

    #[test]
    fn topic_name_matches_the_whole_topic() {
        let config = settings_of("pattern", "orders-.*");
        let matches =
            TopicNameMatches::configure(&Settings::new("predicates.p.".into(), &config)).unwrap();
        assert!(matches.test(&TransformRecord::new("orders-eu", None)));
        assert!(!matches.test(&TransformRecord::new("old-orders-eu", None)));
        let bad = settings_of("pattern", "[");
        let error = TopicNameMatches::configure(&Settings::new("predicates.p.".into(), &bad))
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("predicates.p.pattern"),
            "{error}"
        );
    }

    #[test]
    fn has_header_key_and_record_is_tombstone() {
        let config = settings_of("name", "trace");
        let has = HasHeaderKey::configure(&Settings::new("predicates.p.".into(), &config)).unwrap();
        let mut record = TransformRecord::new("t", Some(json!(1)));
        assert!(!has.test(&record));
        assert!(!RecordIsTombstone.test(&record));
        record.headers.push(("trace".into(), None));
        record.value = None;
        assert!(has.test(&record));
        assert!(RecordIsTombstone.test(&record));
        let empty = settings_of("name", " ");
        let error = HasHeaderKey::configure(&Settings::new("predicates.p.".into(), &empty))
            .err()
            .unwrap();
        assert!(error.to_string().contains("must not be empty"), "{error}");
    }
}
