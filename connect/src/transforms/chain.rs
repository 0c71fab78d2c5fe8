//! The transform chain a connector's config defines, under Kafka's keys:
//! `transforms` (aliases, in order), `transforms.<alias>.type` (a class),
//! `transforms.<alias>.predicate` and `.negate`, and the transform's own
//! keys under `transforms.<alias>.`; `predicates`, with
//! `predicates.<alias>.type` and the predicate's keys under its prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use super::cast::Cast;
use super::fields::{InsertField, MaskField, ReplaceField};
use super::headers::{DropHeaders, Filter, HeaderFrom, InsertHeader};
use super::predicates::{HasHeaderKey, RecordIsTombstone, TopicNameMatches};
use super::reshape::{ExtractField, Flatten, HoistField, ValueToKey};
use super::routers::{RegexRouter, TimestampRouter};
use super::settings::{Read, Settings};
use super::{ConnectRecord, Part, Predicate, Transform};
use crate::api::{ConfigDef, ConfigKey, ConfigMap, ConfigType, ConfigValue, Importance};
use crate::api::{TypedValue, Validator};
use crate::{ConnectError, Result};

/// The aliases of a connector's transforms, applied in this order.
pub const TRANSFORMS: &str = "transforms";
/// The aliases of the predicates its transforms may name.
pub const PREDICATES: &str = "predicates";

/// The package of Kafka's transforms; a class may be named without it.
const TRANSFORMS_PACKAGE: &str = "org.apache.kafka.connect.transforms.";
/// The package of Kafka's predicates.
const PREDICATES_PACKAGE: &str = "org.apache.kafka.connect.transforms.predicates.";

/// Every transform class, by Kafka's full name, with the half of a record
/// it works on (`None`: the record as a whole).
const TRANSFORM_CLASSES: [(&str, Option<Part>); 22] = [
    (
        "org.apache.kafka.connect.transforms.Cast$Key",
        Some(Part::Key),
    ),
    (
        "org.apache.kafka.connect.transforms.Cast$Value",
        Some(Part::Value),
    ),
    ("org.apache.kafka.connect.transforms.DropHeaders", None),
    (
        "org.apache.kafka.connect.transforms.ExtractField$Key",
        Some(Part::Key),
    ),
    (
        "org.apache.kafka.connect.transforms.ExtractField$Value",
        Some(Part::Value),
    ),
    ("org.apache.kafka.connect.transforms.Filter", None),
    (
        "org.apache.kafka.connect.transforms.Flatten$Key",
        Some(Part::Key),
    ),
    (
        "org.apache.kafka.connect.transforms.Flatten$Value",
        Some(Part::Value),
    ),
    (
        "org.apache.kafka.connect.transforms.HeaderFrom$Key",
        Some(Part::Key),
    ),
    (
        "org.apache.kafka.connect.transforms.HeaderFrom$Value",
        Some(Part::Value),
    ),
    (
        "org.apache.kafka.connect.transforms.HoistField$Key",
        Some(Part::Key),
    ),
    (
        "org.apache.kafka.connect.transforms.HoistField$Value",
        Some(Part::Value),
    ),
    (
        "org.apache.kafka.connect.transforms.InsertField$Key",
        Some(Part::Key),
    ),
    (
        "org.apache.kafka.connect.transforms.InsertField$Value",
        Some(Part::Value),
    ),
    ("org.apache.kafka.connect.transforms.InsertHeader", None),
    (
        "org.apache.kafka.connect.transforms.MaskField$Key",
        Some(Part::Key),
    ),
    (
        "org.apache.kafka.connect.transforms.MaskField$Value",
        Some(Part::Value),
    ),
    ("org.apache.kafka.connect.transforms.RegexRouter", None),
    (
        "org.apache.kafka.connect.transforms.ReplaceField$Key",
        Some(Part::Key),
    ),
    (
        "org.apache.kafka.connect.transforms.ReplaceField$Value",
        Some(Part::Value),
    ),
    ("org.apache.kafka.connect.transforms.TimestampRouter", None),
    ("org.apache.kafka.connect.transforms.ValueToKey", None),
];

/// Every predicate class, by Kafka's full name.
const PREDICATE_CLASSES: [&str; 3] = [
    "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
    "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
];

/// Every transform class, by Kafka's full name (a plugin list's).
pub fn transform_classes() -> Vec<&'static str> {
    TRANSFORM_CLASSES.iter().map(|(class, _)| *class).collect()
}

/// Every predicate class, by Kafka's full name (a plugin list's).
pub fn predicate_classes() -> Vec<&'static str> {
    PREDICATE_CLASSES.to_vec()
}

/// The class `name` names: a full class name or the name without the
/// package, as Kafka's plugin aliases allow.
fn resolve<'c>(
    name: &str,
    classes: impl IntoIterator<Item = &'c str>,
    package: &str,
) -> Option<&'c str> {
    classes
        .into_iter()
        .find(|class| *class == name || class.strip_prefix(package) == Some(name))
}

/// Why `name` names no transform class, with what would.
fn unknown_transform(name: &str) -> String {
    let simple = name.strip_prefix(TRANSFORMS_PACKAGE).unwrap_or(name);
    let variant = format!("{simple}$Value");
    if resolve(
        &variant,
        TRANSFORM_CLASSES.map(|(c, _)| c),
        TRANSFORMS_PACKAGE,
    )
    .is_some()
    {
        return format!(
            "`{name}` works on a record's key or value: use `{simple}$Key` or `{simple}$Value`"
        );
    }
    let known: Vec<&str> = TRANSFORM_CLASSES
        .iter()
        .map(|(class, _)| class.strip_prefix(TRANSFORMS_PACKAGE).unwrap_or(class))
        .collect();
    format!(
        "no transformation class `{name}`; the classes are {} (under {TRANSFORMS_PACKAGE})",
        known.join(", ")
    )
}

/// A new transform of `class`, configured by `settings`.
fn build_transform(
    class: &str,
    part: Option<Part>,
    settings: &Settings<'_>,
) -> Read<Box<dyn Transform>> {
    let simple = class.strip_prefix(TRANSFORMS_PACKAGE).unwrap_or(class);
    let base = simple.split('$').next().unwrap_or(simple);
    let part = part.unwrap_or(Part::Value);
    let transform: Box<dyn Transform> = match base {
        "Cast" => Box::new(Cast::configure(settings, part)?),
        "DropHeaders" => Box::new(DropHeaders::configure(settings)?),
        "ExtractField" => Box::new(ExtractField::configure(settings, part)?),
        "Filter" => Box::new(Filter),
        "Flatten" => Box::new(Flatten::configure(settings, part)?),
        "HeaderFrom" => Box::new(HeaderFrom::configure(settings, part)?),
        "HoistField" => Box::new(HoistField::configure(settings, part)?),
        "InsertField" => Box::new(InsertField::configure(settings, part)?),
        "InsertHeader" => Box::new(InsertHeader::configure(settings)?),
        "MaskField" => Box::new(MaskField::configure(settings, part)?),
        "RegexRouter" => Box::new(RegexRouter::configure(settings)?),
        "ReplaceField" => Box::new(ReplaceField::configure(settings, part)?),
        "TimestampRouter" => Box::new(TimestampRouter::configure(settings)?),
        "ValueToKey" => Box::new(ValueToKey::configure(settings)?),
        _ => return Err(settings.invalid("type", unknown_transform(class))),
    };
    Ok(transform)
}

/// A new predicate of the class `settings`' `type` names.
fn build_predicate(settings: &Settings<'_>) -> Read<Arc<dyn Predicate>> {
    let name = settings.required("type")?;
    let class = resolve(name, PREDICATE_CLASSES, PREDICATES_PACKAGE).ok_or_else(|| {
        let known: Vec<&str> = PREDICATE_CLASSES
            .iter()
            .map(|c| c.strip_prefix(PREDICATES_PACKAGE).unwrap_or(c))
            .collect();
        settings.invalid(
            "type",
            format!(
                "no predicate class `{name}`; the classes are {}",
                known.join(", ")
            ),
        )
    })?;
    let predicate: Arc<dyn Predicate> =
        match class.strip_prefix(PREDICATES_PACKAGE).unwrap_or(class) {
            "HasHeaderKey" => Arc::new(HasHeaderKey::configure(settings)?),
            "RecordIsTombstone" => Arc::new(RecordIsTombstone),
            _ => Arc::new(TopicNameMatches::configure(settings)?),
        };
    Ok(predicate)
}

/// The aliases listed under `key`: trimmed, none empty, none twice (as
/// Kafka's alias validator requires).
fn aliases(config: &ConfigMap, key: &str) -> Result<Vec<String>> {
    let text = config.get(key).map(|v| v.trim()).unwrap_or("");
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let aliases: Vec<String> = text.split(',').map(|a| a.trim().to_string()).collect();
    check_aliases(&aliases).map_err(|reason| ConnectError::config(key, reason))?;
    Ok(aliases)
}

fn check_aliases(aliases: &[String]) -> std::result::Result<(), String> {
    let mut seen = BTreeSet::new();
    for alias in aliases {
        if alias.is_empty() {
            return Err("has an empty alias".into());
        }
        if !seen.insert(alias) {
            return Err(format!("Duplicate alias provided: `{alias}`"));
        }
    }
    Ok(())
}

/// One transform of a chain, with the predicate that gates it.
struct Stage {
    alias: String,
    /// Kafka's full class name, for errors and dead-letter headers.
    class: &'static str,
    transform: Box<dyn Transform>,
    /// The predicate and `negate`: the transform applies to a record when
    /// the predicate's answer differs from `negate`.
    predicate: Option<(Arc<dyn Predicate>, bool)>,
}

/// A connector's transforms, in order (Kafka's `TransformationChain`).
/// Built once per connector and shared by its tasks: transforms keep no
/// per-record state.
#[derive(Default)]
pub struct TransformChain {
    stages: Vec<Stage>,
}

impl fmt::Debug for TransformChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.stages.iter().map(|s| (&s.alias, s.class)))
            .finish()
    }
}

impl TransformChain {
    /// The chain `config` (a connector's config map) defines. Refuses an
    /// unknown class, a missing or invalid key, or a predicate alias not
    /// listed in `predicates`, as [`ConnectError::InvalidConfig`] naming
    /// the key (`transforms.<alias>.<key>`); every listed predicate is
    /// checked, used or not.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<TransformChain> {
        let mut predicates: BTreeMap<String, Arc<dyn Predicate>> = BTreeMap::new();
        for alias in aliases(config, PREDICATES)? {
            let settings = Settings::new(format!("{PREDICATES}.{alias}."), config);
            predicates.insert(alias, build_predicate(&settings)?);
        }
        let mut stages = Vec::new();
        for alias in aliases(config, TRANSFORMS)? {
            stages.push(stage(config, alias, &predicates)?);
        }
        Ok(TransformChain { stages })
    }

    /// Whether the chain has no transform (records pass as they are).
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// The transforms' aliases, in order.
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.stages.iter().map(|s| s.alias.as_str())
    }

    /// `record` through every transform whose predicate lets it, in order:
    /// `Ok(None)` once one drops it (the rest do not see it). A transform
    /// that cannot handle the record fails the chain with
    /// [`ConnectError::Transform`], naming its alias and class.
    pub fn apply<R: ConnectRecord>(&self, record: R) -> Result<Option<R>> {
        if self.stages.is_empty() {
            return Ok(Some(record));
        }
        let (mut current, rest) = record.split();
        // The topic the record came with, for an error: the record itself
        // is gone into the transform that failed.
        let topic = current.topic.clone();
        for stage in &self.stages {
            if let Some((predicate, negate)) = &stage.predicate {
                if predicate.test(&current) == *negate {
                    continue;
                }
            }
            match stage.transform.apply(current) {
                Ok(Some(next)) => current = next,
                Ok(None) => return Ok(None),
                Err(reason) => {
                    return Err(ConnectError::Transform {
                        alias: stage.alias.clone(),
                        transform: stage.class,
                        topic,
                        reason,
                    })
                }
            }
        }
        Ok(Some(R::join(current, rest)))
    }
}

/// The stage of transform `alias`.
fn stage(
    config: &ConfigMap,
    alias: String,
    predicates: &BTreeMap<String, Arc<dyn Predicate>>,
) -> Result<Stage> {
    let settings = Settings::new(format!("{TRANSFORMS}.{alias}."), config);
    let name = settings.required("type")?;
    let classes = TRANSFORM_CLASSES.map(|(class, _)| class);
    let class = resolve(name, classes, TRANSFORMS_PACKAGE)
        .ok_or_else(|| settings.invalid("type", unknown_transform(name)))?;
    let part = TRANSFORM_CLASSES
        .iter()
        .find(|(c, _)| *c == class)
        .and_then(|(_, part)| *part);
    let transform = build_transform(class, part, &settings)?;
    // Checked whether or not a predicate is named, so a typo is caught.
    let negate = settings.boolean("negate", false)?;
    let predicate = match settings.string("predicate") {
        None | Some("") => None,
        Some(name) => {
            let predicate = predicates.get(name).ok_or_else(|| {
                settings.invalid(
                    "predicate",
                    format!("names the predicate `{name}`, which `{PREDICATES}` does not list"),
                )
            })?;
            Some((Arc::clone(predicate), negate))
        }
    };
    Ok(Stage {
        alias,
        class,
        transform,
        predicate,
    })
}

/// `transforms` and `predicates`, as every connector's config defines
/// them (Kafka's `ConnectorConfig`): lists of unique aliases, empty by
/// default since most connectors move records unchanged.
pub fn config_def() -> ConfigDef {
    let aliases_key = |name: &str, documentation: &str| {
        ConfigKey::new(name, ConfigType::List, Importance::Low, documentation)
            .default_value("")
            .validator(Validator::Custom(Arc::new(
                |value: &TypedValue| match value {
                    TypedValue::List(aliases) => check_aliases(aliases),
                    _ => Ok(()),
                },
            )))
    };
    ConfigDef::new()
        .define(aliases_key(
            TRANSFORMS,
            "Aliases for the transformations to be applied to records.",
        ))
        .define(aliases_key(
            PREDICATES,
            "Aliases for the predicates used by transformations.",
        ))
}

/// Adds the first error of `config`'s transform chain to `results` (the
/// answer of a config validation), on the key it names, so a validation
/// reports a bad `transforms.<alias>.<key>` as adding the connector would.
pub fn report_errors(config: &ConfigMap, results: &mut Vec<ConfigValue>) {
    let Err(ConnectError::InvalidConfig { key, reason }) = TransformChain::from_config(config)
    else {
        return;
    };
    match results.iter_mut().find(|v| v.name == key) {
        // A key whose own check failed already says what is wrong.
        Some(result) if result.errors.is_empty() => result.errors.push(reason),
        Some(_) => {}
        None => results.push(ConfigValue {
            value: config.get(&key).cloned(),
            name: key,
            recommended_values: Vec::new(),
            errors: vec![reason],
            visible: true,
        }),
    }
}
