//! What both PostgreSQL connectors share about reaching the database:
//! Confluent's connection keys (`connection.url`, `connection.user`,
//! `connection.password`), the session config they make, and opening a
//! session named after its task. What each connector does over the
//! session is its own (`database` for the sink, `source` for the source).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls};

use crate::api::{
    ConfigDef, ConfigKey, ConfigType, Importance, ParsedConfig, TypedValue, Validator,
};
use crate::{ConnectError, Result};

/// The database: a `postgresql://user@host:port/db` URL (Confluent's JDBC
/// form `jdbc:postgresql://...` too), or tokio-postgres's `key=value` form.
pub const CONNECTION_URL: &str = "connection.url";
/// The user, over the one the URL names.
pub const CONNECTION_USER: &str = "connection.user";
/// The password, over the one the URL names.
pub const CONNECTION_PASSWORD: &str = "connection.password";

/// How long connecting may take (tokio-postgres waits for ever unless
/// told): a database that does not answer fails the task, which a restart
/// retries, instead of hanging it past its shutdown timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection keys.
pub fn config_def() -> ConfigDef {
    let key = |name: &str, config_type: ConfigType, doc: &str| {
        ConfigKey::new(name, config_type, Importance::High, doc)
    };
    ConfigDef::new()
        .define(
            key(
                CONNECTION_URL,
                ConfigType::String,
                "The database: postgresql://user@host:port/db (or jdbc:postgresql://...), or \
                 host=... port=... user=... dbname=... pairs.",
            )
            .validator(Validator::NonEmptyString)
            .validator(Validator::Custom(Arc::new(valid_url))),
        )
        // Optional: the URL may name the user and password itself.
        .define(
            key(
                CONNECTION_USER,
                ConfigType::String,
                "The database user; the URL's when absent.",
            )
            .optional(),
        )
        .define(
            key(
                CONNECTION_PASSWORD,
                ConfigType::Password,
                "The database user's password; the URL's when absent.",
            )
            .optional(),
        )
}

fn valid_url(value: &TypedValue) -> std::result::Result<(), String> {
    match value {
        TypedValue::String(url) => parse_url(url).map(|_| ()),
        _ => Ok(()),
    }
}

/// `connection.url` as tokio-postgres reads it: a `postgresql://` URL
/// (a JDBC URL's `jdbc:` dropped) or `key=value` pairs. The error never
/// repeats the URL, which may hold a password.
pub fn parse_url(url: &str) -> std::result::Result<Config, String> {
    let url = url.trim();
    let url = url.strip_prefix("jdbc:").unwrap_or(url);
    url.parse::<Config>()
        .map_err(|e| format!("not a PostgreSQL connection string: {e}"))
}

/// The session config of a parsed config map: the URL's, with
/// `connection.user` and `connection.password` over what it names.
pub fn from_parsed(parsed: &ParsedConfig) -> Result<Config> {
    let mut config = parse_url(parsed.string(CONNECTION_URL)?)
        .map_err(|reason| ConnectError::config(CONNECTION_URL, reason))?;
    if let Some(user) = parsed.optional_string(CONNECTION_USER)? {
        if !user.is_empty() {
            config.user(user);
        }
    }
    if let Some(password) = parsed.password(CONNECTION_PASSWORD)? {
        config.password(password.value());
    }
    Ok(config)
}

/// Opens a session as `config` says, named `spool-connect
/// <connector>-<task>` unless the URL names it (shown in
/// `pg_stat_activity`: which sessions are which task's).
pub async fn connect(
    config: &Config,
    connector: &str,
    task: u32,
) -> std::result::Result<Client, tokio_postgres::Error> {
    let mut config = config.clone();
    if config.get_application_name().is_none() {
        config.application_name(format!("spool-connect {connector}-{task}"));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, connection) = config.connect(NoTls).await?;
    let name = connector.to_string();
    // tokio-postgres's connection does the I/O as a task of its own,
    // which ends when the client is dropped.
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(
                connector = %name,
                task,
                error = %error,
                "the PostgreSQL connection failed"
            );
        }
    });
    Ok(client)
}
