//! `spool streams`: operating a spool-streams (or Kafka Streams)
//! application from outside: what it runs and how far it is, and a reset
//! that makes it reprocess its input from the beginning.

use anyhow::bail;
use clap::Subcommand;
use spool_client::Client;

use super::{groups, Connection};

#[derive(Subcommand)]
pub enum Command {
    /// Show an application: its internal topics (repartition and
    /// changelog), its group's members and each input partition's
    /// committed offset and lag.
    ///
    /// Example: spool streams describe --application-id wordcount
    Describe {
        #[arg(long)]
        application_id: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Make an application reprocess its input from the beginning, as
    /// Kafka's kafka-streams-application-reset does: deletes its committed
    /// offsets (it restarts at the earliest offsets) and its internal
    /// topics; with --state-dir, also its local stores. Every instance
    /// must be stopped first (refused while the group has members).
    ///
    /// Example: spool streams reset --application-id wordcount --state-dir /var/lib/wordcount
    Reset {
        #[arg(long)]
        application_id: String,
        /// The application's state directory on this machine (its
        /// `<state-dir>/<application-id>` is removed).
        #[arg(long)]
        state_dir: Option<std::path::PathBuf>,
        #[command(flatten)]
        connection: Connection,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Describe {
            application_id,
            connection,
        } => {
            let client = connection.client().await?;
            let internal = internal_topics(&client, &application_id).await?;
            println!(
                "application {application_id}: {} internal topics",
                internal.len()
            );
            for topic in &internal {
                let info = client.admin().describe_topic(topic).await?;
                println!("  {topic} ({} partitions)", info.partitions.len());
            }
            groups::describe(&client, &application_id).await
        }
        Command::Reset {
            application_id,
            state_dir,
            connection,
        } => {
            let client = connection.client().await?;
            reset(&client, &application_id, state_dir.as_deref()).await
        }
    }
}

/// The application's repartition and changelog topics, as Kafka Streams
/// names them: `<id>-<name>-repartition`, `<id>-<store>-changelog`.
async fn internal_topics(client: &Client, app: &str) -> anyhow::Result<Vec<String>> {
    let prefix = format!("{app}-");
    Ok(client
        .admin()
        .list_topics()
        .await?
        .into_iter()
        .filter(|t| {
            t.starts_with(&prefix) && (t.ends_with("-repartition") || t.ends_with("-changelog"))
        })
        .collect())
}

async fn reset(
    client: &Client,
    app: &str,
    state_dir: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match client.admin().delete_group(app).await {
        Ok(()) => println!("deleted the committed offsets of group {app}"),
        Err(e) if e.code() == spool_client::proto::ErrorCode::GroupIdNotFound => {
            println!("group {app} has no committed offsets")
        }
        Err(e) if e.code() == spool_client::proto::ErrorCode::NonEmptyGroup => {
            bail!("group {app} still has members: stop every instance of the application first")
        }
        Err(e) => return Err(e.into()),
    }
    for topic in internal_topics(client, app).await? {
        client.admin().delete_topic(&topic).await?;
        println!("deleted internal topic {topic}");
    }
    if let Some(dir) = state_dir {
        let dir = dir.join(app);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
            println!("removed local state {}", dir.display());
        }
    }
    Ok(())
}
