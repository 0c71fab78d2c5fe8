//! `ConfigDef`: the keys a connector (or the worker) accepts, each with a
//! type, a default, an importance, documentation and validators, as in
//! Kafka's `ConfigDef`.
//!
//! Config maps stay strings (`BTreeMap<String, String>`, as Kafka's
//! properties) until [`ConfigDef::parse`] turns them into typed values.
//! [`ConfigDef::validate`] reports every key at once, shaped like the
//! `configs[].value` objects of Kafka Connect's validate endpoint, so a
//! REST layer can return it as it is.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::{ConnectError, Result};

/// A config map: key to raw value, as in a Kafka properties file.
pub type ConfigMap = BTreeMap<String, String>;

/// A config map from key-value pairs: a connector's config written in a
/// Rust program (connectors run embedded) or a test.
pub fn config_map(pairs: &[(&str, &str)]) -> ConfigMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The type a key's raw value is parsed as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConfigType {
    /// Trimmed, as Kafka trims strings.
    String,
    /// A 32-bit integer.
    Int,
    /// A 64-bit integer.
    Long,
    /// `true` or `false`, in any case.
    Boolean,
    /// Comma-separated, each entry trimmed; an empty value is an empty list.
    List,
    /// A string that is never shown: `[hidden]` in validation results,
    /// debug output and errors.
    Password,
}

/// How much a key matters, for documentation and UIs (Kafka's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Importance {
    High,
    Medium,
    Low,
}

/// What a key takes when the map does not have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DefaultValue {
    /// The key must be given (Kafka's `NO_DEFAULT_VALUE`).
    Required,
    /// The key may be absent; it then has no value.
    Null,
    /// This raw value, parsed like a given one.
    Value(String),
}

/// A password: its `Debug` and `Display` print `[hidden]`, so it never
/// reaches a log or a status by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// What Kafka shows in place of a password.
    pub const HIDDEN: &'static str = "[hidden]";

    pub fn new(value: impl Into<String>) -> Password {
        Password(value.into())
    }

    /// The password itself.
    pub fn value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Password::HIDDEN)
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Password::HIDDEN)
    }
}

/// A parsed value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypedValue {
    String(String),
    Int(i32),
    Long(i64),
    Boolean(bool),
    List(Vec<String>),
    Password(Password),
    /// An absent key whose default is [`DefaultValue::Null`].
    Null,
}

/// A check of a parsed value; its error says what is wrong, and the
/// caller adds which key. Validators never see [`TypedValue::Null`]: an
/// absent optional key is valid by definition.
#[derive(Clone)]
pub enum Validator {
    /// A string that is not empty (Kafka's `NonEmptyString`).
    NonEmptyString,
    /// A list with at least one entry and no empty entry (a list of topic
    /// names, say).
    NonEmptyList,
    /// An int or long within these inclusive bounds (Kafka's `Range`).
    Range { min: Option<i64>, max: Option<i64> },
    /// A string among these (Kafka's `ValidString`); they are also the
    /// key's recommended values.
    OneOf(Vec<String>),
    /// Any other check.
    Custom(Check),
}

/// A custom validator: what is wrong with a value, if anything.
pub type Check = Arc<dyn Fn(&TypedValue) -> std::result::Result<(), String> + Send + Sync>;

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Validator::NonEmptyString => f.write_str("NonEmptyString"),
            Validator::NonEmptyList => f.write_str("NonEmptyList"),
            Validator::Range { min, max } => write!(f, "Range({min:?}..={max:?})"),
            Validator::OneOf(values) => write!(f, "OneOf({values:?})"),
            Validator::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl Validator {
    /// At least `min` (Kafka's `Range.atLeast`).
    pub fn at_least(min: i64) -> Validator {
        Validator::Range {
            min: Some(min),
            max: None,
        }
    }

    fn check(&self, value: &TypedValue) -> std::result::Result<(), String> {
        match (self, value) {
            (Validator::NonEmptyString, TypedValue::String(s)) if s.is_empty() => {
                Err("must not be empty".into())
            }
            (Validator::NonEmptyList, TypedValue::List(items)) => {
                if items.is_empty() {
                    Err("must name at least one entry".into())
                } else if items.iter().any(String::is_empty) {
                    Err("has an empty entry".into())
                } else {
                    Ok(())
                }
            }
            (Validator::Range { min, max }, TypedValue::Int(_) | TypedValue::Long(_)) => {
                let n = match value {
                    TypedValue::Int(n) => i64::from(*n),
                    TypedValue::Long(n) => *n,
                    _ => return Ok(()),
                };
                match (min, max) {
                    (Some(min), _) if n < *min => Err(format!("must be at least {min}")),
                    (_, Some(max)) if n > *max => Err(format!("must be at most {max}")),
                    _ => Ok(()),
                }
            }
            (Validator::OneOf(allowed), TypedValue::String(s)) if !allowed.contains(s) => {
                Err(format!("must be one of {}", allowed.join(", ")))
            }
            (Validator::Custom(check), value) => check(value),
            _ => Ok(()),
        }
    }
}

/// One key of a [`ConfigDef`].
#[derive(Clone, Debug)]
pub struct ConfigKey {
    pub name: String,
    pub config_type: ConfigType,
    pub default: DefaultValue,
    pub importance: Importance,
    pub documentation: String,
    pub validators: Vec<Validator>,
}

impl ConfigKey {
    /// A required key; give it a default with [`ConfigKey::default_value`]
    /// or [`ConfigKey::optional`].
    pub fn new(
        name: impl Into<String>,
        config_type: ConfigType,
        importance: Importance,
        documentation: impl Into<String>,
    ) -> ConfigKey {
        ConfigKey {
            name: name.into(),
            config_type,
            default: DefaultValue::Required,
            importance,
            documentation: documentation.into(),
            validators: Vec::new(),
        }
    }

    /// Takes `value` (raw, parsed like a given value) when absent.
    pub fn default_value(mut self, value: impl Into<String>) -> ConfigKey {
        self.default = DefaultValue::Value(value.into());
        self
    }

    /// May be absent, and then has no value.
    pub fn optional(mut self) -> ConfigKey {
        self.default = DefaultValue::Null;
        self
    }

    pub fn validator(mut self, validator: Validator) -> ConfigKey {
        self.validators.push(validator);
        self
    }

    /// The raw value in effect: given, else the default; `Err` with
    /// Kafka's message for a required key that is missing.
    fn raw<'a>(&'a self, map: &'a ConfigMap) -> std::result::Result<Option<&'a str>, String> {
        match (map.get(&self.name), &self.default) {
            (Some(value), _) => Ok(Some(value.as_str())),
            (None, DefaultValue::Value(value)) => Ok(Some(value.as_str())),
            (None, DefaultValue::Null) => Ok(None),
            (None, DefaultValue::Required) => Err(format!(
                "missing required configuration \"{}\" which has no default value",
                self.name
            )),
        }
    }

    /// The typed value in effect, checked by every validator.
    fn resolve(&self, map: &ConfigMap) -> std::result::Result<TypedValue, String> {
        let Some(raw) = self.raw(map)? else {
            return Ok(TypedValue::Null);
        };
        let shown = match self.config_type {
            ConfigType::Password => Password::HIDDEN,
            _ => raw,
        };
        let invalid = |reason: String| format!("invalid value `{shown}`: {reason}");
        let value = parse_value(self.config_type, raw).map_err(invalid)?;
        for validator in &self.validators {
            validator.check(&value).map_err(invalid)?;
        }
        Ok(value)
    }
}

fn parse_value(config_type: ConfigType, raw: &str) -> std::result::Result<TypedValue, String> {
    let trimmed = raw.trim();
    Ok(match config_type {
        ConfigType::String => TypedValue::String(trimmed.to_string()),
        ConfigType::Int => TypedValue::Int(
            trimmed
                .parse()
                .map_err(|_| "expected a 32-bit integer".to_string())?,
        ),
        ConfigType::Long => TypedValue::Long(
            trimmed
                .parse()
                .map_err(|_| "expected a 64-bit integer".to_string())?,
        ),
        ConfigType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" => TypedValue::Boolean(true),
            "false" => TypedValue::Boolean(false),
            _ => return Err("expected true or false".into()),
        },
        ConfigType::List if trimmed.is_empty() => TypedValue::List(Vec::new()),
        ConfigType::List => {
            TypedValue::List(trimmed.split(',').map(|s| s.trim().to_string()).collect())
        }
        // Not trimmed: spaces may be part of a password.
        ConfigType::Password => TypedValue::Password(Password::new(raw)),
    })
}

/// One key's validation result: Kafka Connect's `ConfigValueInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigValue {
    pub name: String,
    /// The raw value in effect (`[hidden]` for a password); `None` when
    /// the key has no value.
    pub value: Option<String>,
    pub recommended_values: Vec<String>,
    /// Empty when the value is valid.
    pub errors: Vec<String>,
    pub visible: bool,
}

/// The keys a connector or the worker accepts (Kafka's `ConfigDef`). Keys
/// keep the order they were defined in, which is the order of
/// [`ConfigDef::validate`]'s results.
#[derive(Clone, Debug, Default)]
pub struct ConfigDef {
    keys: Vec<ConfigKey>,
}

impl ConfigDef {
    pub fn new() -> ConfigDef {
        ConfigDef::default()
    }

    /// Adds `key`; a key of the same name defined before is replaced, so
    /// a connector may redefine a key the worker defines for every
    /// connector.
    pub fn define(mut self, key: ConfigKey) -> ConfigDef {
        match self.keys.iter_mut().find(|k| k.name == key.name) {
            Some(existing) => *existing = key,
            None => self.keys.push(key),
        }
        self
    }

    /// Every key of `other` added to these (see [`ConfigDef::define`]).
    pub fn merge(self, other: &ConfigDef) -> ConfigDef {
        other
            .keys
            .iter()
            .cloned()
            .fold(self, |def, key| def.define(key))
    }

    pub fn keys(&self) -> &[ConfigKey] {
        &self.keys
    }

    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Every defined key's value and errors; keys of `map` this definition
    /// does not know are not reported (they may belong to the worker, a
    /// converter or a connector's tasks, as in Kafka).
    pub fn validate(&self, map: &ConfigMap) -> Vec<ConfigValue> {
        self.keys
            .iter()
            .map(|key| {
                let raw = key.raw(map).ok().flatten();
                let value = raw.map(|raw| match key.config_type {
                    ConfigType::Password => Password::HIDDEN.to_string(),
                    _ => raw.to_string(),
                });
                let recommended_values = key
                    .validators
                    .iter()
                    .find_map(|v| match v {
                        Validator::OneOf(values) => Some(values.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                ConfigValue {
                    name: key.name.clone(),
                    value,
                    recommended_values,
                    errors: key.resolve(map).err().into_iter().collect(),
                    visible: true,
                }
            })
            .collect()
    }

    /// The typed value of every defined key, or the first invalid key (in
    /// definition order) as [`ConnectError::InvalidConfig`]; `validate`
    /// reports all of them.
    pub fn parse(&self, map: &ConfigMap) -> Result<ParsedConfig> {
        let mut values = BTreeMap::new();
        for key in &self.keys {
            let value = key
                .resolve(map)
                .map_err(|reason| ConnectError::config(&key.name, reason))?;
            values.insert(key.name.clone(), value);
        }
        Ok(ParsedConfig { values })
    }
}

/// The typed values of a parsed config map (Kafka's `AbstractConfig`).
/// A getter asked for a key the definition lacks, or with another type,
/// answers [`ConnectError::InvalidConfig`] naming the key: a connector's
/// mistake, reported rather than panicking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedConfig {
    values: BTreeMap<String, TypedValue>,
}

impl ParsedConfig {
    pub fn get(&self, name: &str) -> Option<&TypedValue> {
        self.values.get(name)
    }

    fn typed(&self, name: &str) -> Result<&TypedValue> {
        self.values
            .get(name)
            .ok_or_else(|| ConnectError::config(name, "is not a defined configuration"))
    }

    fn mismatch(name: &str, wanted: &str) -> ConnectError {
        ConnectError::config(name, format!("has no {wanted} value"))
    }

    /// A string key's value; `None` when it has none.
    pub fn optional_string(&self, name: &str) -> Result<Option<&str>> {
        match self.typed(name)? {
            TypedValue::String(s) => Ok(Some(s.as_str())),
            TypedValue::Null => Ok(None),
            _ => Err(ParsedConfig::mismatch(name, "string")),
        }
    }

    /// A string key's value, which must be there.
    pub fn string(&self, name: &str) -> Result<&str> {
        self.optional_string(name)?
            .ok_or_else(|| ParsedConfig::mismatch(name, "string"))
    }

    pub fn int(&self, name: &str) -> Result<i32> {
        match self.typed(name)? {
            TypedValue::Int(n) => Ok(*n),
            _ => Err(ParsedConfig::mismatch(name, "int")),
        }
    }

    pub fn long(&self, name: &str) -> Result<i64> {
        match self.typed(name)? {
            TypedValue::Long(n) => Ok(*n),
            _ => Err(ParsedConfig::mismatch(name, "long")),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<bool> {
        match self.typed(name)? {
            TypedValue::Boolean(b) => Ok(*b),
            _ => Err(ParsedConfig::mismatch(name, "boolean")),
        }
    }

    /// A list key's entries (none when it has no value).
    pub fn list(&self, name: &str) -> Result<&[String]> {
        match self.typed(name)? {
            TypedValue::List(items) => Ok(items.as_slice()),
            TypedValue::Null => Ok(&[]),
            _ => Err(ParsedConfig::mismatch(name, "list")),
        }
    }

    pub fn password(&self, name: &str) -> Result<Option<&Password>> {
        match self.typed(name)? {
            TypedValue::Password(p) => Ok(Some(p)),
            TypedValue::Null => Ok(None),
            _ => Err(ParsedConfig::mismatch(name, "password")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ConfigDef {
        ConfigDef::new()
            .define(
                ConfigKey::new("file", ConfigType::String, Importance::High, "a file")
                    .validator(Validator::NonEmptyString),
            )
            .define(
                ConfigKey::new("batch.size", ConfigType::Int, Importance::Low, "a batch")
                    .default_value("2000")
                    .validator(Validator::at_least(1)),
            )
            .define(
                ConfigKey::new("topics", ConfigType::List, Importance::High, "topics").optional(),
            )
            .define(
                ConfigKey::new("secret", ConfigType::Password, Importance::Low, "a secret")
                    .optional(),
            )
            .define(
                ConfigKey::new("mode", ConfigType::String, Importance::Low, "a mode")
                    .default_value("fast")
                    .validator(Validator::OneOf(vec!["fast".into(), "safe".into()])),
            )
    }

    fn map(pairs: &[(&str, &str)]) -> ConfigMap {
        config_map(pairs)
    }

    #[test]
    fn parse_gives_typed_values_and_defaults() {
        let parsed = def()
            .parse(&map(&[
                ("file", " /tmp/x "),
                ("topics", "a, b,c"),
                ("secret", "s3cr3t "),
            ]))
            .unwrap();
        assert_eq!(parsed.string("file").unwrap(), "/tmp/x");
        assert_eq!(parsed.int("batch.size").unwrap(), 2000);
        assert_eq!(parsed.list("topics").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            parsed.password("secret").unwrap().unwrap().value(),
            "s3cr3t "
        );
        assert_eq!(parsed.string("mode").unwrap(), "fast");
        assert!(matches!(
            parsed.int("file"),
            Err(ConnectError::InvalidConfig { key, .. }) if key == "file"
        ));
    }

    #[test]
    fn parse_names_the_key_that_is_wrong() {
        let missing = def().parse(&map(&[])).unwrap_err();
        assert!(matches!(&missing, ConnectError::InvalidConfig { key, .. } if key == "file"));
        assert!(
            missing.to_string().contains("missing required"),
            "{missing}"
        );
        let small = def()
            .parse(&map(&[("file", "f"), ("batch.size", "0")]))
            .unwrap_err();
        assert!(matches!(&small, ConnectError::InvalidConfig { key, .. } if key == "batch.size"));
        let word = def()
            .parse(&map(&[("file", "f"), ("batch.size", "many")]))
            .unwrap_err();
        assert!(word.to_string().contains("32-bit integer"), "{word}");
    }

    #[test]
    fn validate_reports_every_key_like_kafka_connect() {
        let results = def().validate(&map(&[
            ("batch.size", "-1"),
            ("secret", "pw"),
            ("mode", "slow"),
        ]));
        let by_name: BTreeMap<&str, &ConfigValue> =
            results.iter().map(|v| (v.name.as_str(), v)).collect();
        assert_eq!(results.len(), 5);
        assert_eq!(by_name["file"].value, None);
        assert_eq!(by_name["file"].errors.len(), 1);
        assert_eq!(
            by_name["batch.size"].errors,
            ["invalid value `-1`: must be at least 1"]
        );
        assert_eq!(by_name["secret"].value.as_deref(), Some("[hidden]"));
        assert!(by_name["secret"].errors.is_empty());
        assert_eq!(by_name["mode"].recommended_values, ["fast", "safe"]);
        assert_eq!(by_name["mode"].errors.len(), 1);
        let json = serde_json::to_value(by_name["mode"]).unwrap();
        assert_eq!(json["recommended_values"][1], "safe");
        assert_eq!(json["visible"], true);
    }

    #[test]
    fn a_password_never_shows() {
        let password = Password::new("hunter2");
        assert_eq!(format!("{password} {password:?}"), "[hidden] [hidden]");
        let bad = ConfigDef::new()
            .define(ConfigKey::new("n", ConfigType::Int, Importance::Low, "n"))
            .parse(&map(&[("n", "x")]))
            .unwrap_err();
        assert!(bad.to_string().contains("`x`"));
    }
}
