//! Topic settings over Kafka: DescribeConfigs and IncrementalAlterConfigs,
//! translated to the broker's DescribeConfigs and AlterConfigs.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::*;

use super::codes::{kafka_code, kafka_message, INVALID_REQUEST};
use super::Session;
use spool_protocol::proto;

/// Kafka's config resource types spool answers.
const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;

/// Kafka's config sources: DYNAMIC_TOPIC_CONFIG and DEFAULT_CONFIG.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Kafka's INVALID_CONFIG.
const INVALID_CONFIG: i16 = 40;

pub(super) async fn describe_configs(
    session: &Session,
    request: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match resource.resource_type {
                TOPIC_RESOURCE => topic_configs(session, resource, result),
                // A broker's settings are not topic settings; none are
                // described yet (docs/kafka-compatibility.md).
                BROKER_RESOURCE => result,
                other => result
                    .with_error_code(INVALID_REQUEST)
                    .with_error_message(Some(
                        format!("resource type {other} is not described").into(),
                    )),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn topic_configs(
    session: &Session,
    resource: &describe_configs_request::DescribeConfigsResource,
    result: DescribeConfigsResult,
) -> DescribeConfigsResult {
    let answered = session
        .broker
        .describe_configs(proto::DescribeConfigsRequest {
            names: vec![resource.resource_name.to_string()],
        });
    let Some(topic) = answered.topics.into_iter().next() else {
        return result.with_error_code(super::codes::UNKNOWN_TOPIC_OR_PARTITION);
    };
    if topic.error != 0 {
        return result
            .with_error_code(kafka_code(topic.error))
            .with_error_message(kafka_message(topic.error, topic.message));
    }
    let keys = resource.configuration_keys.as_ref();
    let configs = topic
        .configs
        .into_iter()
        .filter(|c| keys.is_none_or(|keys| keys.iter().any(|k| k.as_str() == c.key)))
        .map(|c| {
            let from_topic = c.source == proto::ConfigSource::Topic as i32;
            DescribeConfigsResourceResult::default()
                .with_name(c.key.into())
                .with_value(Some(c.value.into()))
                .with_config_source(if from_topic {
                    SOURCE_TOPIC
                } else {
                    SOURCE_DEFAULT
                })
        })
        .collect();
    result.with_configs(configs)
}

/// IncrementalAlterConfigs on topics: SET and DELETE (back to the
/// default). APPEND and SUBTRACT, on list settings, are refused for the
/// resource; broker resources are refused (docs/kafka-compatibility.md).
pub(super) async fn incremental_alter_configs(
    session: &Session,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let refused = |code: i16, message: String| {
            response
                .clone()
                .with_error_code(code)
                .with_error_message(Some(message.into()))
        };
        if resource.resource_type != TOPIC_RESOURCE {
            let message = format!("resource type {} is not altered", resource.resource_type);
            responses.push(refused(INVALID_REQUEST, message));
            continue;
        }
        let entries = match config_entries(resource) {
            Ok(entries) => entries,
            Err(message) => {
                responses.push(refused(INVALID_CONFIG, message));
                continue;
            }
        };
        if request.validate_only {
            responses.push(refused(
                INVALID_REQUEST,
                "validate_only is not supported for topic settings".into(),
            ));
            continue;
        }
        let answered = session
            .broker
            .alter_configs(proto::AlterConfigsRequest {
                topics: vec![proto::TopicConfigs {
                    name: resource.resource_name.to_string(),
                    configs: entries,
                    ..Default::default()
                }],
            })
            .await;
        let outcome = answered.topics.into_iter().next().unwrap_or_default();
        responses.push(
            response
                .with_error_code(kafka_code(outcome.error))
                .with_error_message(kafka_message(outcome.error, outcome.message)),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// A resource's operations as the broker's entries.
fn config_entries(resource: &AlterConfigsResource) -> Result<Vec<proto::ConfigEntry>, String> {
    resource
        .configs
        .iter()
        .map(|c| match c.config_operation {
            OP_SET => Ok(proto::ConfigEntry {
                key: c.name.to_string(),
                value: c.value.as_deref().unwrap_or_default().to_string(),
                ..Default::default()
            }),
            OP_DELETE => Ok(proto::ConfigEntry {
                key: c.name.to_string(),
                reset: true,
                ..Default::default()
            }),
            other => Err(format!(
                "operation {other} on `{}` is not supported (SET and DELETE are)",
                c.name.as_str()
            )),
        })
        .collect()
}
