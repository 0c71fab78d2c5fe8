//! `/connectors`: listing, creating, reading, reconfiguring, pausing,
//! resuming, stopping, restarting and deleting connectors, and their
//! tasks, with Kafka Connect's payloads and status codes.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::response::{encode_segment, flag, json, parse_json, query_params, to_value, ApiError};
use super::Rest;
use crate::api::keys::NAME;
use crate::api::ConfigMap;
use crate::worker::{config_text, json_config, TargetState};
use crate::ConnectError;

type Reply = Result<Response, ApiError>;

/// `POST /connectors`' body (Kafka's `CreateConnectorRequest`).
#[derive(Deserialize)]
struct CreateConnector {
    name: Option<String>,
    config: Option<Map<String, Value>>,
}

/// `GET /connectors`: the names; with `expand=status` and/or
/// `expand=info`, Kafka's map from each name to those expansions.
pub(super) async fn list(State(rest): State<Rest>, RawQuery(query): RawQuery) -> Reply {
    let names = rest.worker.connectors().await?;
    let params = query_params(query.as_deref());
    let expansions: Vec<&str> = params
        .iter()
        .filter(|(key, _)| key == "expand")
        .map(|(_, value)| value.as_str())
        .collect();
    if expansions.is_empty() {
        return Ok(json(StatusCode::OK, &names));
    }
    let mut expanded: BTreeMap<String, BTreeMap<&str, Value>> = BTreeMap::new();
    'connectors: for name in names {
        let mut entry = BTreeMap::new();
        for &expansion in &expansions {
            let value = match expansion {
                "status" => rest
                    .worker
                    .connector_status(&name)
                    .await
                    .map(|s| to_value(&s)),
                "info" => rest
                    .worker
                    .connector_info(&name)
                    .await
                    .map(|i| to_value(&i)),
                // Kafka ignores an expansion it does not know.
                _ => continue,
            };
            match value {
                Ok(value) => entry.insert(expansion, value?),
                // Deleted since it was listed: left out, as Kafka does.
                Err(ConnectError::UnknownConnector(_)) => continue 'connectors,
                Err(e) => return Err(e.into()),
            };
        }
        expanded.insert(name, entry);
    }
    Ok(json(StatusCode::OK, &expanded))
}

/// `POST /connectors`: 201 with the new connector's info; 409 if the name
/// is taken; 400 listing every config error.
pub(super) async fn create(State(rest): State<Rest>, body: Bytes) -> Reply {
    let request: CreateConnector = parse_json(&body)?;
    let name = request
        .name
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ApiError::bad_request("Connector name is required"))?;
    check_name(&name)?;
    let config = request
        .config
        .ok_or_else(|| ApiError::bad_request("Connector config is required"))?;
    let mut config = json_config(&config)?;
    named(&name, &mut config)?;
    validated(&rest, &config)?;
    rest.worker.add_connector(&name, config).await?;
    let info = rest.worker.connector_info(&name).await?;
    Ok(created(json(StatusCode::CREATED, &info), &name))
}

/// `GET /connectors/{name}`: the connector's config, tasks and type.
pub(super) async fn info(State(rest): State<Rest>, Path(name): Path<String>) -> Reply {
    let info = rest.worker.connector_info(&name).await?;
    Ok(json(StatusCode::OK, &info))
}

/// `GET /connectors/{name}/config`.
pub(super) async fn config(State(rest): State<Rest>, Path(name): Path<String>) -> Reply {
    let config = rest.worker.connector_config(&name).await?;
    Ok(json(StatusCode::OK, &config))
}

/// `PUT /connectors/{name}/config`: creates the connector (201) or
/// replaces its config (200), answering its info either way.
pub(super) async fn put_config(
    State(rest): State<Rest>,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let object: Map<String, Value> = parse_json(&body)?;
    let mut config = json_config(&object)?;
    check_name(&name)?;
    named(&name, &mut config)?;
    validated(&rest, &config)?;
    let was_created = rest.worker.put_connector_config(&name, config).await?;
    let info = rest.worker.connector_info(&name).await?;
    Ok(match was_created {
        true => created(json(StatusCode::CREATED, &info), &name),
        false => json(StatusCode::OK, &info),
    })
}

/// `PATCH /connectors/{name}/config`: merges the body into the config (a
/// `null` value removes its key), checks the result whole, and answers
/// the connector's info.
pub(super) async fn patch_config(
    State(rest): State<Rest>,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let object: Map<String, Value> = parse_json(&body)?;
    let mut patch = BTreeMap::new();
    for (key, value) in &object {
        patch.insert(key.clone(), config_text(key, value)?);
    }
    let mut merged = rest.worker.connector_config(&name).await?;
    for (key, value) in &patch {
        match value {
            Some(value) => merged.insert(key.clone(), value.clone()),
            None => merged.remove(key),
        };
    }
    named(&name, &mut merged)?;
    validated(&rest, &merged)?;
    rest.worker.patch_connector_config(&name, patch).await?;
    let info = rest.worker.connector_info(&name).await?;
    Ok(json(StatusCode::OK, &info))
}

/// `GET /connectors/{name}/status`.
pub(super) async fn status(State(rest): State<Rest>, Path(name): Path<String>) -> Reply {
    let status = rest.worker.connector_status(&name).await?;
    Ok(json(StatusCode::OK, &status))
}

/// `GET /connectors/{name}/tasks`: `[{"id": {"connector", "task"}, "config"}]`.
pub(super) async fn tasks(State(rest): State<Rest>, Path(name): Path<String>) -> Reply {
    let tasks = rest.worker.connector_tasks(&name).await?;
    Ok(json(StatusCode::OK, &tasks))
}

/// `GET /connectors/{name}/tasks/{task}/status`.
pub(super) async fn task_status(
    State(rest): State<Rest>,
    Path((name, task)): Path<(String, String)>,
) -> Reply {
    let task = task_id(&name, &task)?;
    let status = rest.worker.task_status(&name, task).await?;
    Ok(json(StatusCode::OK, &status))
}

/// `PUT /connectors/{name}/pause`: 202.
pub(super) async fn pause(State(rest): State<Rest>, Path(name): Path<String>) -> Reply {
    target(&rest, &name, TargetState::Paused).await
}

/// `PUT /connectors/{name}/resume`: 202; a stopped connector starts again.
pub(super) async fn resume(State(rest): State<Rest>, Path(name): Path<String>) -> Reply {
    target(&rest, &name, TargetState::Started).await
}

/// `PUT /connectors/{name}/stop`: 202; the connector keeps its config
/// but runs no tasks (Kafka's STOPPED).
pub(super) async fn stop(State(rest): State<Rest>, Path(name): Path<String>) -> Reply {
    target(&rest, &name, TargetState::Stopped).await
}

async fn target(rest: &Rest, name: &str, state: TargetState) -> Reply {
    rest.worker.set_target_state(name, state).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /connectors/{name}/restart`: without parameters, the connector
/// instance alone (204); with `includeTasks` or `onlyFailed` (Kafka's
/// KIP-745), 202 with the status, what restarts marked RESTARTING.
pub(super) async fn restart(
    State(rest): State<Rest>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let params = query_params(query.as_deref());
    let include_tasks = flag(&params, "includeTasks")?;
    let only_failed = flag(&params, "onlyFailed")?;
    if !include_tasks && !only_failed {
        rest.worker.restart_connector(&name).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let plan = rest
        .worker
        .restart_connector_and_tasks(&name, include_tasks, only_failed)
        .await?;
    Ok(json(StatusCode::ACCEPTED, &plan))
}

/// `POST /connectors/{name}/tasks/{task}/restart`: 204.
pub(super) async fn restart_task(
    State(rest): State<Rest>,
    Path((name, task)): Path<(String, String)>,
) -> Reply {
    let task = task_id(&name, &task)?;
    rest.worker.restart_task(&name, task).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /connectors/{name}`: its tasks and the connector stop, and it
/// is forgotten (its source offsets stay, as in Kafka); 204.
pub(super) async fn delete(State(rest): State<Rest>, Path(name): Path<String>) -> Reply {
    rest.worker.stop_connector(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A task number from a path; anything else names no task.
fn task_id(name: &str, task: &str) -> Result<u32, ApiError> {
    task.parse()
        .map_err(|_| ApiError::not_found(format!("Task {name}-{task} not found")))
}

/// Kafka's checks of a new connector's name: a `/` would make its paths
/// ambiguous, and control characters unprintable.
fn check_name(name: &str) -> Result<(), ApiError> {
    if name.contains('/') {
        return Err(ApiError::bad_request(
            "connector name should not contain '/'",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "connector name should not contain control characters",
        ));
    }
    Ok(())
}

/// The config with the connector's name, which it may give only as it is.
fn named(name: &str, config: &mut ConfigMap) -> Result<(), ApiError> {
    match config.get(NAME) {
        Some(given) if given != name => {
            return Err(ApiError::bad_request(format!(
                "Connector name configuration ({given}) doesn't match connector name in the URL ({name})"
            )))
        }
        _ => config.insert(NAME.to_string(), name.to_string()),
    };
    Ok(())
}

/// Refuses a config with any error, listing them all as Kafka does.
fn validated(rest: &Rest, config: &ConfigMap) -> Result<(), ApiError> {
    let values = rest.worker.validate(config)?;
    let errors: Vec<String> = values
        .iter()
        .flat_map(|value| {
            value.errors.iter().map(move |error| {
                match error.contains(&format!("\"{}\"", value.name)) {
                    true => error.clone(),
                    false => format!("{}: {error}", value.name),
                }
            })
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "Connector configuration is invalid and contains the following {} error(s):\n{}\n\
         You can also find the above list of errors at the endpoint \
         `/connector-plugins/{{connectorType}}/config/validate`",
        errors.len(),
        errors.join("\n")
    )))
}

/// A 201 answer with the new connector's `Location`, as Kafka gives it.
fn created(mut response: Response, name: &str) -> Response {
    let location = format!("/connectors/{}", encode_segment(name));
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
