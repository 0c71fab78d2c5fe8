//! The built-in connectors, and the plugin registry that lists them and
//! builds one by class name (Kafka's plugin path, without class loading:
//! every connector spool runs is compiled in): Kafka's file source and
//! sink ([`file`]), the PostgreSQL sink and source ([`postgres`]) and a
//! data generator ([`datagen`]).
//!
//! A class is named as Kafka names it, by its full class name, its simple
//! name, or its simple name without `Connector`: for the file source,
//! `org.apache.kafka.connect.file.FileStreamSourceConnector`,
//! `FileStreamSourceConnector` or `FileStreamSource`; for the PostgreSQL
//! sink, `io.spool.connect.postgres.PostgresSinkConnector`,
//! `PostgresSinkConnector` or `PostgresSink`; for the PostgreSQL source,
//! `io.spool.connect.postgres.PostgresSourceConnector`,
//! `PostgresSourceConnector` or `PostgresSource`.

pub mod datagen;
pub mod file;
pub mod postgres;

use serde::Serialize;

use crate::api::keys::CONNECTOR_CLASS;
use crate::api::{Connector, ConnectorType};
use crate::{ConnectError, Result};

/// A connector class the worker can run, as Kafka Connect's
/// `GET /connector-plugins` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    pub class: &'static str,
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
    pub version: &'static str,
}

/// A class and how to build it.
struct Plugin {
    info: PluginInfo,
    build: fn() -> Connector,
}

/// Sorted by class name, as Kafka Connect lists plugins.
fn registry() -> [Plugin; 5] {
    let version = env!("CARGO_PKG_VERSION");
    [
        Plugin {
            info: PluginInfo {
                class: datagen::DATAGEN,
                connector_type: ConnectorType::Source,
                version,
            },
            build: || Connector::Source(Box::new(datagen::DatagenConnector::default())),
        },
        Plugin {
            info: PluginInfo {
                class: postgres::POSTGRES_SINK,
                connector_type: ConnectorType::Sink,
                version,
            },
            build: || Connector::Sink(Box::new(postgres::PostgresSinkConnector::default())),
        },
        Plugin {
            info: PluginInfo {
                class: postgres::POSTGRES_SOURCE,
                connector_type: ConnectorType::Source,
                version,
            },
            build: || Connector::Source(Box::new(postgres::PostgresSourceConnector::default())),
        },
        Plugin {
            info: PluginInfo {
                class: file::FILE_STREAM_SINK,
                connector_type: ConnectorType::Sink,
                version,
            },
            build: || Connector::Sink(Box::new(file::FileStreamSinkConnector::default())),
        },
        Plugin {
            info: PluginInfo {
                class: file::FILE_STREAM_SOURCE,
                connector_type: ConnectorType::Source,
                version,
            },
            build: || Connector::Source(Box::new(file::FileStreamSourceConnector::default())),
        },
    ]
}

/// Every connector class, sorted by class name.
pub fn plugins() -> Vec<PluginInfo> {
    registry().into_iter().map(|p| p.info).collect()
}

/// Whether `name` names `class` (see the module's comment).
fn names(class: &str, name: &str) -> bool {
    let simple = class.rsplit('.').next().unwrap_or(class);
    name == class || name == simple || simple.strip_suffix("Connector") == Some(name)
}

/// The full class name `name` stands for, if any.
pub fn resolve_class(name: &str) -> Option<&'static str> {
    let name = name.trim();
    registry()
        .into_iter()
        .find(|p| names(p.info.class, name))
        .map(|p| p.info.class)
}

/// A new, unstarted connector of class `name`; an unknown class is an
/// [`ConnectError::InvalidConfig`] of `connector.class` listing the known
/// ones.
pub fn create_connector(name: &str) -> Result<Connector> {
    let name = name.trim();
    match registry().into_iter().find(|p| names(p.info.class, name)) {
        Some(plugin) => Ok((plugin.build)()),
        None => Err(ConnectError::config(
            CONNECTOR_CLASS,
            format!(
                "no connector class `{name}`; the classes are {}",
                plugins()
                    .iter()
                    .map(|p| p.class)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_is_found_by_its_full_simple_or_short_name() {
        for name in [
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "FileStreamSourceConnector",
            "FileStreamSource",
        ] {
            let connector = create_connector(name).unwrap();
            assert_eq!(connector.connector_type(), ConnectorType::Source, "{name}");
        }
        let sink = create_connector("FileStreamSink").unwrap();
        assert_eq!(sink.connector_type(), ConnectorType::Sink);
        assert_eq!(
            resolve_class("FileStreamSink"),
            Some(file::FILE_STREAM_SINK)
        );
        assert_eq!(resolve_class("Stream"), None);
        assert_eq!(resolve_class("PostgresSink"), Some(postgres::POSTGRES_SINK));
        assert_eq!(
            resolve_class("PostgresSinkConnector"),
            Some(postgres::POSTGRES_SINK)
        );
        assert_eq!(resolve_class("Datagen"), Some(datagen::DATAGEN));
        assert_eq!(
            resolve_class("PostgresSource"),
            Some(postgres::POSTGRES_SOURCE)
        );
        let source = create_connector("PostgresSourceConnector").unwrap();
        assert_eq!(source.connector_type(), ConnectorType::Source);
        let datagen = create_connector("io.spool.connect.datagen.DatagenConnector").unwrap();
        assert_eq!(datagen.connector_type(), ConnectorType::Source);
    }

    #[test]
    fn an_unknown_class_names_the_key_and_the_known_classes() {
        let Err(error) = create_connector("com.example.Nope") else {
            panic!("an unknown class was built");
        };
        assert!(
            matches!(&error, ConnectError::InvalidConfig { key, .. } if key == "connector.class")
        );
        let text = error.to_string();
        assert!(
            text.contains("com.example.Nope") && text.contains(file::FILE_STREAM_SINK),
            "{text}"
        );
    }

    #[test]
    fn plugins_are_listed_like_kafka_connect_lists_them() {
        let listed = serde_json::to_value(plugins()).unwrap();
        let classes: Vec<&str> = plugins().iter().map(|p| p.class).collect();
        assert_eq!(
            classes,
            [
                datagen::DATAGEN,
                postgres::POSTGRES_SINK,
                postgres::POSTGRES_SOURCE,
                file::FILE_STREAM_SINK,
                file::FILE_STREAM_SOURCE
            ]
        );
        let mut sorted = classes.clone();
        sorted.sort_unstable();
        assert_eq!(classes, sorted);
        assert_eq!(listed[4]["class"], file::FILE_STREAM_SOURCE);
        assert_eq!(listed[4]["type"], "source");
        assert_eq!(listed[3]["type"], "sink");
        assert_eq!(listed[2]["type"], "source");
        assert_eq!(listed[1]["type"], "sink");
        assert_eq!(listed[0]["version"], env!("CARGO_PKG_VERSION"));
    }
}
