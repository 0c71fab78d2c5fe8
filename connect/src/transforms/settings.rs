//! One transform's or predicate's keys, read under its prefix
//! (`transforms.<alias>.` or `predicates.<alias>.`) of the connector's
//! config, with errors that name the full key, so a user finds the line.
//!
//! Values are read as Kafka's `ConfigDef` reads them: strings and list
//! entries trimmed, lists split on commas, an empty list value an empty
//! list. Keys a transform does not define are ignored, as Kafka ignores
//! them.

use crate::api::ConfigMap;
use crate::ConnectError;

/// The outcome of reading a key: the value, or the error naming the key.
pub(crate) type Read<T> = std::result::Result<T, ConnectError>;

/// A transform's or predicate's view of the connector config.
pub(crate) struct Settings<'a> {
    /// `transforms.<alias>.` or `predicates.<alias>.`.
    prefix: String,
    config: &'a ConfigMap,
}

impl<'a> Settings<'a> {
    pub(crate) fn new(prefix: String, config: &'a ConfigMap) -> Settings<'a> {
        Settings { prefix, config }
    }

    /// The full key of `name`.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// An error of key `name`.
    pub(crate) fn invalid(&self, name: &str, reason: impl Into<String>) -> ConnectError {
        ConnectError::config(self.key(name), reason)
    }

    /// The trimmed value of `name`, if given.
    pub(crate) fn string(&self, name: &str) -> Option<&'a str> {
        self.config.get(&self.key(name)).map(|v| v.trim())
    }

    /// The trimmed value of `name`, which must be given (Kafka's
    /// `NO_DEFAULT_VALUE`).
    pub(crate) fn required(&self, name: &str) -> Read<&'a str> {
        self.string(name).ok_or_else(|| {
            let key = self.key(name);
            let reason =
                format!("missing required configuration \"{key}\" which has no default value");
            ConnectError::config(key, reason)
        })
    }

    /// The value of `name`, which must be given and not empty (Kafka's
    /// `NonEmptyString`).
    pub(crate) fn non_empty(&self, name: &str) -> Read<&'a str> {
        let value = self.required(name)?;
        match value.is_empty() {
            true => Err(self.invalid(name, "must not be empty")),
            false => Ok(value),
        }
    }

    /// The entries of list `name`; none when absent or empty.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        match self.string(name) {
            None | Some("") => Vec::new(),
            Some(text) => text.split(',').map(|s| s.trim().to_string()).collect(),
        }
    }

    /// The entries of list `name`, which must be given with at least one
    /// entry and no empty one (Kafka's `NonEmptyListValidator`).
    pub(crate) fn required_list(&self, name: &str) -> Read<Vec<String>> {
        self.required(name)?;
        let entries = self.list(name);
        if entries.is_empty() {
            return Err(self.invalid(name, "must name at least one entry"));
        }
        if entries.iter().any(String::is_empty) {
            return Err(self.invalid(name, "has an empty entry"));
        }
        Ok(entries)
    }

    /// Boolean `name`, `default` when absent.
    pub(crate) fn boolean(&self, name: &str, default: bool) -> Read<bool> {
        match self.string(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(self.invalid(
                name,
                format!("invalid value `{other}`: expected true or false"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConfigMap {
        [
            ("transforms.a.field", " id "),
            ("transforms.a.fields", "a, b ,c"),
            ("transforms.a.blank", ""),
            ("transforms.a.holes", "a,,b"),
            ("transforms.a.flag", "TRUE"),
            ("transforms.a.bad", "maybe"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn values_are_read_under_the_prefix_and_errors_name_the_full_key() {
        let config = config();
        let settings = Settings::new("transforms.a.".into(), &config);
        assert_eq!(settings.required("field").unwrap(), "id");
        assert_eq!(settings.list("fields"), ["a", "b", "c"]);
        assert!(settings.list("blank").is_empty());
        assert!(settings.boolean("flag", false).unwrap());
        assert!(!settings.boolean("absent", false).unwrap());

        let missing = settings.required("other").unwrap_err();
        assert_eq!(
            missing.to_string(),
            "invalid configuration `transforms.a.other`: missing required configuration \
             \"transforms.a.other\" which has no default value"
        );
        let holes = settings.required_list("holes").unwrap_err();
        assert!(holes.to_string().contains("transforms.a.holes"), "{holes}");
        let empty = settings.non_empty("blank").unwrap_err();
        assert!(empty.to_string().contains("must not be empty"), "{empty}");
        let bad = settings.boolean("bad", true).unwrap_err();
        assert!(bad.to_string().contains("transforms.a.bad"), "{bad}");
    }
}
