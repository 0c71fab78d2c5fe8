//! Transforms that change a record's topic: Kafka's `RegexRouter` and
//! `TimestampRouter`.
//!
//! Regular expressions are Rust's `regex` dialect, which reads the
//! patterns topic routing uses (classes, groups, named groups,
//! alternation, repetition) as Java does; Java-only constructs
//! (look-around, back-references) are refused when the connector is
//! added. A pattern must match the whole topic, as Java's
//! `Matcher.matches()` does. Replacements are read with Java's
//! `Matcher.replaceFirst` syntax: `$1` or `${name}` for a group (`$12`
//! is group 12 only if the pattern has 12 groups, else group 1 and a
//! `2`), `\` escaping the next character.

use regex::{Captures, Regex};

use super::date_format::DateFormat;
use super::settings::{Read, Settings};
use super::{Outcome, Transform, TransformRecord};

/// `pattern` compiled to match a whole text (Java's `matches()`).
pub(crate) fn whole_match(pattern: &str) -> std::result::Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("is not a valid regular expression: {e}"))
}

/// One part of a parsed replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
    Named(String),
}

/// A replacement in Java's syntax, checked against the groups of
/// `regex` (Java would fail at the first record instead).
fn parse_replacement(replacement: &str, regex: &Regex) -> std::result::Result<Vec<Piece>, String> {
    let groups = regex.captures_len().saturating_sub(1);
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => text.push(escaped),
                None => return Err("character to be escaped is missing".into()),
            },
            '$' => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(group_reference(&mut chars, groups, regex)?);
            }
            other => text.push(other),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The group reference after a `$`, read as Java reads it.
fn group_reference(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    groups: usize,
    regex: &Regex,
) -> std::result::Result<Piece, String> {
    if chars.peek() == Some(&'{') {
        chars.next();
        let mut name = String::new();
        loop {
            match chars.next() {
                Some('}') => break,
                Some(c) if c.is_ascii_alphanumeric() => name.push(c),
                _ => return Err("named capturing group is missing trailing '}'".into()),
            }
        }
        if !regex.capture_names().flatten().any(|n| n == name) {
            return Err(format!("No group with name {{{name}}}"));
        }
        return Ok(Piece::Named(name));
    }
    let Some(first) = chars.peek().and_then(|c| c.to_digit(10)) else {
        return Err("Illegal group reference".into());
    };
    chars.next();
    let mut number = first as usize;
    if number > groups {
        return Err(format!("No group {number}"));
    }
    // Further digits belong to the number only while such a group exists.
    while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
        let longer = number * 10 + digit as usize;
        if longer > groups {
            break;
        }
        number = longer;
        chars.next();
    }
    Ok(Piece::Group(number))
}

fn expand(pieces: &[Piece], captures: &Captures<'_>) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Group(n) => out.push_str(captures.get(*n).map_or("", |m| m.as_str())),
            Piece::Named(name) => out.push_str(captures.name(name).map_or("", |m| m.as_str())),
        }
    }
    out
}

/// Kafka's `RegexRouter`: a record whose topic matches `regex` (the whole
/// topic) is routed to `replacement`, with the regex's groups in it; any
/// other record keeps its topic.
pub(crate) struct RegexRouter {
    regex: Regex,
    replacement: Vec<Piece>,
}

impl RegexRouter {
    pub(crate) fn configure(settings: &Settings<'_>) -> Read<RegexRouter> {
        let regex = whole_match(settings.required("regex")?)
            .map_err(|reason| settings.invalid("regex", reason))?;
        let replacement = parse_replacement(settings.required("replacement")?, &regex)
            .map_err(|reason| settings.invalid("replacement", reason))?;
        Ok(RegexRouter { regex, replacement })
    }
}

impl Transform for RegexRouter {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        let routed = self
            .regex
            .captures(&record.topic)
            .map(|captures| expand(&self.replacement, &captures));
        if let Some(topic) = routed {
            record.topic = topic;
        }
        Ok(Some(record))
    }
}

/// Kafka's `TimestampRouter`: routes each record to `topic.format`
/// (default `${topic}-${timestamp}`, Kafka's) with `${topic}` replaced by
/// its topic and `${timestamp}` by its timestamp in `timestamp.format`
/// (default `yyyyMMdd`, Kafka's; see `date_format` for the letters). A
/// record without a timestamp (a source record that leaves it to the
/// producer) fails, as in Kafka.
pub(crate) struct TimestampRouter {
    topic_format: String,
    timestamp_format: DateFormat,
}

impl TimestampRouter {
    pub(crate) fn configure(settings: &Settings<'_>) -> Read<TimestampRouter> {
        let pattern = settings.string("timestamp.format").unwrap_or("yyyyMMdd");
        let timestamp_format = DateFormat::parse(pattern)
            .map_err(|reason| settings.invalid("timestamp.format", reason))?;
        Ok(TimestampRouter {
            topic_format: settings
                .string("topic.format")
                .unwrap_or("${topic}-${timestamp}")
                .to_string(),
            timestamp_format,
        })
    }
}

impl Transform for TimestampRouter {
    fn apply(&self, mut record: TransformRecord) -> Outcome {
        let Some(timestamp) = record.timestamp else {
            return Err(format!(
                "Timestamp missing on record of topic `{}`",
                record.topic
            ));
        };
        let formatted = self.timestamp_format.format(timestamp);
        // In Kafka's order: `${topic}` first, then `${timestamp}`.
        record.topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &formatted);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConfigMap;

    fn settings(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| (format!("transforms.r.{k}"), v.to_string()))
            .collect()
    }

    fn router(regex: &str, replacement: &str) -> Read<RegexRouter> {
        let config = settings(&[("regex", regex), ("replacement", replacement)]);
        RegexRouter::configure(&Settings::new("transforms.r.".into(), &config))
    }

    fn route(router: &dyn Transform, topic: &str, timestamp: Option<i64>) -> Outcome {
        let mut record = TransformRecord::new(topic, None);
        record.timestamp = timestamp;
        router.apply(record)
    }

    fn topic_after(router: &dyn Transform, topic: &str) -> String {
        route(router, topic, Some(0)).unwrap().unwrap().topic
    }

    #[test]
    fn regex_router_rewrites_whole_matches_with_java_replacements() {
        let strip = router("(.*)-(v\\d+)", "$1_$2").unwrap();
        assert_eq!(topic_after(&strip, "orders-v2"), "orders_v2");
        assert_eq!(
            topic_after(&strip, "orders"),
            "orders",
            "no match, no change"
        );
        let named = router("db\\.(?P<table>\\w+)", "cdc.${table}\\$").unwrap();
        assert_eq!(topic_after(&named, "db.users"), "cdc.users$");
        assert_eq!(
            topic_after(&named, "xdb.users"),
            "xdb.users",
            "a whole match only"
        );
        // `$12` with one group is group 1 and a `2`, as in Java.
        let digits = router("(a)", "$12").unwrap();
        assert_eq!(topic_after(&digits, "a"), "a2");
    }

    #[test]
    fn regex_router_refuses_what_java_would_fail_on() {
        for (regex, replacement, key, says) in [
            ("(a", "x", "regex", "not a valid regular expression"),
            ("(a)", "$2", "replacement", "No group 2"),
            ("(a)", "${name}", "replacement", "No group with name {name}"),
            ("(a)", "$x", "replacement", "Illegal group reference"),
            (
                "(a)",
                "x\\",
                "replacement",
                "character to be escaped is missing",
            ),
        ] {
            let error = router(regex, replacement).err().unwrap().to_string();
            let key = format!("transforms.r.{key}");
            assert!(error.contains(&key) && error.contains(says), "{error}");
        }
    }

    #[test]
    fn timestamp_router_formats_the_topic() {
        let default = settings(&[]);
        let router =
            TimestampRouter::configure(&Settings::new("transforms.r.".into(), &default)).unwrap();
        assert_eq!(
            route(&router, "logs", Some(1_700_000_000_000))
                .unwrap()
                .unwrap()
                .topic,
            "logs-20231114"
        );
        let error = route(&router, "logs", None).unwrap_err();
        assert_eq!(error, "Timestamp missing on record of topic `logs`");

        let custom = settings(&[
            ("topic.format", "${timestamp}.${topic}"),
            ("timestamp.format", "yyyy-MM-dd'T'HH"),
        ]);
        let router =
            TimestampRouter::configure(&Settings::new("transforms.r.".into(), &custom)).unwrap();
        assert_eq!(
            route(&router, "logs", Some(1_700_000_000_000))
                .unwrap()
                .unwrap()
                .topic,
            "2023-11-14T22.logs"
        );
        let bad = settings(&[("timestamp.format", "EEE")]);
        let error = TimestampRouter::configure(&Settings::new("transforms.r.".into(), &bad))
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("transforms.r.timestamp.format"),
            "{error}"
        );
    }
}
