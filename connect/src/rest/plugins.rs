//! `/connector-plugins`: the connector classes this worker runs, and
//! Kafka's config validation, which reports every key of a config at
//! once with its definition, value and errors.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};

use super::response::{flag, json, parse_json, query_params, ApiError};
use super::Rest;
use crate::api::keys::CONNECTOR_CLASS;
use crate::api::{ConfigKey, ConfigType, ConfigValue, DefaultValue, Importance};
use crate::connectors::{create_connector, plugins, resolve_class};
use crate::convert::{BYTE_ARRAY_CONVERTER, JSON_CONVERTER, STRING_CONVERTER};
use crate::transforms::{predicate_classes, transform_classes};
use crate::worker::{connector_config_def, json_config};

type Reply = Result<Response, ApiError>;

/// The group Kafka puts the keys every connector has in.
const COMMON_GROUP: &str = "Common";

/// A plugin as `GET /connector-plugins?connectorsOnly=false` lists the
/// ones that are not connectors (Kafka's types `converter`,
/// `transformation` and `predicate`).
#[derive(Serialize)]
struct OtherPlugin {
    class: &'static str,
    #[serde(rename = "type")]
    plugin_type: &'static str,
    version: &'static str,
}

/// Kafka's `ConfigInfos`: the validate endpoint's answer.
#[derive(Serialize)]
struct ConfigInfos {
    /// The connector class.
    name: String,
    error_count: usize,
    groups: Vec<&'static str>,
    configs: Vec<ConfigInfo>,
}

#[derive(Serialize)]
struct ConfigInfo {
    definition: KeyInfo,
    value: ConfigValue,
}

/// Kafka's `ConfigKeyInfo`: a key's definition.
#[derive(Serialize)]
struct KeyInfo {
    name: String,
    #[serde(rename = "type")]
    config_type: ConfigType,
    required: bool,
    default_value: Option<String>,
    importance: Importance,
    documentation: String,
    group: Option<&'static str>,
    width: &'static str,
    display_name: String,
    dependents: Vec<String>,
    order: i32,
}

impl KeyInfo {
    /// `key`'s definition; `order` is its place in its group, -1 outside
    /// one (Kafka's).
    fn of(key: &ConfigKey, group: Option<&'static str>, order: i32) -> KeyInfo {
        KeyInfo {
            name: key.name.clone(),
            config_type: key.config_type,
            required: key.default == DefaultValue::Required,
            default_value: match &key.default {
                DefaultValue::Value(value) => Some(value.clone()),
                DefaultValue::Required | DefaultValue::Null => None,
            },
            importance: key.importance,
            documentation: key.documentation.clone(),
            group,
            width: "NONE",
            display_name: key.name.clone(),
            dependents: Vec::new(),
            order,
        }
    }

    /// A key validation reported that no definition here has (one the
    /// worker checks by other means).
    fn undefined(name: &str) -> KeyInfo {
        KeyInfo {
            name: name.to_string(),
            config_type: ConfigType::String,
            required: false,
            default_value: None,
            importance: Importance::Low,
            documentation: String::new(),
            group: None,
            width: "NONE",
            display_name: name.to_string(),
            dependents: Vec::new(),
            order: -1,
        }
    }
}

/// `GET /connector-plugins`: `[{"class", "type", "version"}]`; with
/// `connectorsOnly=false`, the converters, transforms and predicates too.
pub(super) async fn list(RawQuery(query): RawQuery) -> Reply {
    let params = query_params(query.as_deref());
    let connectors_only = match params.iter().any(|(key, _)| key == "connectorsOnly") {
        true => flag(&params, "connectorsOnly")?,
        // Kafka's default.
        false => true,
    };
    let mut listed: Vec<Value> = Vec::new();
    for plugin in plugins() {
        listed.push(super::response::to_value(&plugin)?);
    }
    if !connectors_only {
        let converters = [BYTE_ARRAY_CONVERTER, JSON_CONVERTER, STRING_CONVERTER];
        let others = converters
            .into_iter()
            .map(|class| (class, "converter"))
            .chain(
                transform_classes()
                    .into_iter()
                    .map(|c| (c, "transformation")),
            )
            .chain(predicate_classes().into_iter().map(|c| (c, "predicate")));
        for (class, plugin_type) in others {
            let plugin = OtherPlugin {
                class,
                plugin_type,
                version: env!("CARGO_PKG_VERSION"),
            };
            listed.push(super::response::to_value(&plugin)?);
        }
    }
    Ok(json(StatusCode::OK, &listed))
}

/// `PUT /connector-plugins/{plugin}/config/validate`: every key of the
/// config's connector class with its definition, value and errors. The
/// body's `connector.class`, if any, must name the path's plugin.
pub(super) async fn validate(
    State(rest): State<Rest>,
    Path(plugin): Path<String>,
    body: Bytes,
) -> Reply {
    let object: Map<String, Value> = parse_json(&body)?;
    let mut config = json_config(&object)?;
    let class = match config.get(CONNECTOR_CLASS) {
        Some(given) if resolve_class(given) != resolve_class(&plugin) => {
            return Err(ApiError::bad_request(format!(
                "Included connector type {given} does not match request type {plugin}"
            )))
        }
        Some(given) => given.clone(),
        None => {
            config.insert(CONNECTOR_CLASS.to_string(), plugin.clone());
            plugin.clone()
        }
    };
    let connector = create_connector(&class)?;
    let common = connector_config_def(connector.connector_type());
    let def = common.clone().merge(&connector.config_def());
    let values = rest.worker.validate(&config)?;
    let configs: Vec<ConfigInfo> = values
        .into_iter()
        .map(|value| {
            let in_common = common.keys().iter().position(|k| k.name == value.name);
            let definition = match (def.key(&value.name), in_common) {
                (Some(key), Some(index)) => {
                    let order = i32::try_from(index + 1).unwrap_or(i32::MAX);
                    KeyInfo::of(key, Some(COMMON_GROUP), order)
                }
                (Some(key), None) => KeyInfo::of(key, None, -1),
                (None, _) => KeyInfo::undefined(&value.name),
            };
            ConfigInfo { definition, value }
        })
        .collect();
    let infos = ConfigInfos {
        name: resolve_class(&class).map_or_else(|| class.clone(), str::to_string),
        error_count: configs.iter().map(|c| c.value.errors.len()).sum(),
        groups: vec![COMMON_GROUP],
        configs,
    };
    Ok(json(StatusCode::OK, &infos))
}
