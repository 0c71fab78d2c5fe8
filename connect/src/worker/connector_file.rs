//! Connector configs from files and JSON, as Kafka Connect takes them: a
//! standalone worker's connector files are Kafka's JSON (a create request
//! `{"name": ..., "config": {...}}`, or a flat map with a `name` key) or
//! Java properties files; the REST API's bodies are JSON objects.
//!
//! JSON config values are strings in Kafka's API; numbers and booleans are
//! taken as their text (as Kafka's JSON reader coerces them), so
//! `"tasks.max": 2` works too.

use std::path::Path;

use crate::api::keys::NAME;
use crate::api::{ConfigMap, Value};
use crate::{ConnectError, Result};

/// A JSON config value as a property: a string as it is, a number or a
/// boolean as its text, and `null` as no value.
pub fn config_text(key: &str, value: &Value) -> Result<Option<String>> {
    match value {
        Value::String(text) => Ok(Some(text.clone())),
        Value::Number(number) => Ok(Some(number.to_string())),
        Value::Bool(flag) => Ok(Some(flag.to_string())),
        Value::Null => Ok(None),
        Value::Array(_) | Value::Object(_) => Err(ConnectError::BadRequest(format!(
            "the value of `{key}` must be a string, not {value}"
        ))),
    }
}

/// A JSON object as a config map (see [`config_text`]; a `null` value
/// leaves its key out).
pub fn json_config(object: &serde_json::Map<String, Value>) -> Result<ConfigMap> {
    let mut config = ConfigMap::new();
    for (key, value) in object {
        if let Some(text) = config_text(key, value)? {
            config.insert(key.clone(), text);
        }
    }
    Ok(config)
}

/// A connector's name and config from Kafka's JSON: a create request
/// `{"name": ..., "config": {...}}`, or a flat config map with a `name`
/// key.
pub fn parse_connector_json(text: &str) -> Result<(String, ConfigMap)> {
    let bad = |reason: &str| ConnectError::BadRequest(reason.to_string());
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ConnectError::BadRequest(format!("not JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(bad("a connector is a JSON object"));
    };
    let (name, config) = match object.remove("config") {
        Some(Value::Object(config)) => {
            let config = json_config(&config)?;
            let name = match object.get(NAME) {
                Some(Value::String(name)) => Some(name.clone()),
                None | Some(Value::Null) => None,
                Some(_) => return Err(bad("`name` must be a string")),
            };
            (name.or_else(|| config.get(NAME).cloned()), config)
        }
        Some(_) => return Err(bad("`config` must be an object")),
        None => {
            let config = json_config(&object)?;
            (config.get(NAME).cloned(), config)
        }
    };
    let name = name
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| bad("the connector has no `name`"))?;
    Ok((name, config))
}

/// A connector's name and config from a file: JSON if it ends in `.json`
/// (or, with another extension than `.properties`, starts with `{`), a
/// Java properties file otherwise, as Kafka's standalone worker reads
/// them.
pub fn read_connector_file(path: &Path) -> Result<(String, ConfigMap)> {
    let text = std::fs::read_to_string(path).map_err(|e| ConnectError::io(path, e))?;
    let invalid = |reason: String| ConnectError::InvalidFile {
        path: path.to_path_buf(),
        reason,
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let json = match extension.as_deref() {
        Some("json") => true,
        Some("properties") => false,
        _ => text.trim_start().starts_with('{'),
    };
    if json {
        return parse_connector_json(&text).map_err(|e| invalid(e.to_string()));
    }
    let config = parse_properties(&text);
    let name = config
        .get(NAME)
        .filter(|name| !name.trim().is_empty())
        .cloned()
        .ok_or_else(|| invalid("the connector has no `name`".to_string()))?;
    Ok((name, config))
}

/// A Java properties file's entries (`java.util.Properties.load`): `#` and
/// `!` comment lines, `key=value`, `key: value` or `key value`, a line
/// ending in an odd number of backslashes continued on the next, and the
/// escapes `\t`, `\n`, `\r`, `\f`, `\uXXXX` and `\` before any other
/// character. A key given twice keeps its last value.
pub fn parse_properties(text: &str) -> ConfigMap {
    let mut properties = ConfigMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut logical = line.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while ends_in_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some(next) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_entry(&logical);
        properties.insert(unescape(key), unescape(value));
    }
    properties
}

fn ends_in_odd_backslashes(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// The key (up to the first unescaped `=`, `:` or space) and the value
/// (after it, and after the spaces around one `=` or `:`), still escaped.
fn split_entry(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..i], line[i + 1..].trim_start()),
            c if c.is_whitespace() => {
                let rest = line[i..].trim_start();
                let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
                return (&line[..i], rest.trim_start());
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    // Not a code point: kept as written rather than lost.
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_read_as_java_reads_them() {
        let text = "# a comment\n\
                    ! another\n\
                    name=local-file-source\n\
                    connector.class : FileStreamSource\n\
                    tasks.max 1\n\
                    file=/tmp/a\\\n    b.txt\n\
                    topic=  lines  \n\
                    escaped\\=key=caf\\u00e9\\ttab\n\
                    empty\n";
        let properties = parse_properties(text);
        assert_eq!(properties["name"], "local-file-source");
        assert_eq!(properties["connector.class"], "FileStreamSource");
        assert_eq!(properties["tasks.max"], "1");
        assert_eq!(properties["file"], "/tmp/ab.txt");
        assert_eq!(properties["topic"], "lines  ");
        assert_eq!(properties["escaped=key"], "café\ttab");
        assert_eq!(properties["empty"], "");
        assert_eq!(properties.len(), 7);
    }

    #[test]
    fn kafkas_two_json_shapes_give_the_same_connector() {
        let request = r#"{"name": "files", "config": {"connector.class": "FileStreamSource",
            "file": "in.txt", "topic": "lines", "tasks.max": 1, "unused": null}}"#;
        let flat = r#"{"name": "files", "connector.class": "FileStreamSource",
            "file": "in.txt", "topic": "lines", "tasks.max": "1"}"#;
        let (name, config) = parse_connector_json(request).unwrap();
        assert_eq!(name, "files");
        assert_eq!(config["tasks.max"], "1");
        assert!(!config.contains_key("unused"));
        assert!(
            !config.contains_key("name"),
            "the request's name stays outside"
        );
        let (flat_name, flat_config) = parse_connector_json(flat).unwrap();
        assert_eq!(flat_name, "files");
        assert_eq!(flat_config["file"], "in.txt");
        assert_eq!(flat_config["name"], "files");

        for (bad, says) in [
            ("[1]", "object"),
            (r#"{"config": {"file": "x"}}"#, "no `name`"),
            (r#"{"name": "n", "config": []}"#, "`config`"),
            (r#"{"name": "n", "config": {"topics": ["a"]}}"#, "`topics`"),
            ("{", "not JSON"),
        ] {
            let error = parse_connector_json(bad).unwrap_err();
            assert!(error.to_string().contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn a_connector_file_is_read_by_its_extension_or_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let properties = dir.path().join("source.properties");
        std::fs::write(&properties, "name=p\nconnector.class=FileStreamSource\n").unwrap();
        let json = dir.path().join("source.conf");
        std::fs::write(&json, r#"{"name": "j", "config": {"topic": "t"}}"#).unwrap();
        let nameless = dir.path().join("nameless.properties");
        std::fs::write(&nameless, "topic=t\n").unwrap();

        let (name, config) = read_connector_file(&properties).unwrap();
        assert_eq!(
            (name.as_str(), config["connector.class"].as_str()),
            ("p", "FileStreamSource")
        );
        let (name, config) = read_connector_file(&json).unwrap();
        assert_eq!((name.as_str(), config["topic"].as_str()), ("j", "t"));
        let error = read_connector_file(&nameless).unwrap_err();
        assert!(
            matches!(&error, ConnectError::InvalidFile { path, .. } if path == &nameless),
            "{error}"
        );
        let missing = read_connector_file(&dir.path().join("none.json")).unwrap_err();
        assert!(matches!(missing, ConnectError::Io { .. }), "{missing}");
    }
}
