//! `spool streams`: operating a spool-streams (or Kafka Streams)
//! application from outside: what it runs and how far it is, and a reset
//! that makes it reprocess its input.

use anyhow::bail;
use clap::Subcommand;
use spool_client::proto::{ErrorCode, OffsetSpec};
use spool_client::Client;

use super::{groups, Connection};

#[derive(Subcommand)]
pub enum Command {
    /// Show an application: its internal topics (repartition and
    /// changelog), its group's members and each input partition's
    /// committed offset, lag and owner; with --state-dir, the stores an
    /// instance keeps on this machine: size, the changelog offset each
    /// recorded and how far behind its changelog's end that is.
    ///
    /// Example: spool streams describe --application-id wordcount --state-dir /var/lib/wordcount
    Describe {
        #[arg(long)]
        application_id: String,
        /// An instance's state directory on this machine.
        #[arg(long)]
        state_dir: Option<std::path::PathBuf>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Make an application reprocess its input, as Kafka's
    /// kafka-streams-application-reset does: moves its committed offsets
    /// on the input topics (to the earliest by default), deletes its
    /// internal topics (repartition and changelog) and, with --state-dir,
    /// its local stores. Every instance must be stopped first (refused
    /// while the group has members). Without --input-topics, the group's
    /// committed offsets are all deleted: every input restarts at its
    /// earliest offset.
    ///
    /// Example: spool streams reset --application-id wordcount --input-topics lines --to-datetime 2026-12-01T00:00:00 --state-dir /var/lib/wordcount
    #[command(group(clap::ArgGroup::new("target")
        .args(["to_earliest", "to_offset", "to_datetime", "by_duration"])))]
    Reset {
        #[arg(long)]
        application_id: String,
        /// Input topics to reset, comma-separated.
        #[arg(long, value_delimiter = ',')]
        input_topics: Vec<String>,
        /// The default.
        #[arg(long)]
        to_earliest: bool,
        #[arg(long)]
        to_offset: Option<u64>,
        /// Milliseconds since the epoch, or YYYY-MM-DDTHH:MM:SS[.mmm] in UTC.
        #[arg(long)]
        to_datetime: Option<String>,
        /// Back from now: 15m, 2h, 7d, or seconds.
        #[arg(long)]
        by_duration: Option<String>,
        /// The application's state directory on this machine (its
        /// `<state-dir>/<application-id>` is removed).
        #[arg(long)]
        state_dir: Option<std::path::PathBuf>,
        /// Print what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        connection: Connection,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Describe {
            application_id,
            state_dir,
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
            groups::describe(&client, &application_id).await?;
            match state_dir {
                Some(dir) => describe_stores(&client, &application_id, &dir).await,
                None => Ok(()),
            }
        }
        Command::Reset {
            application_id,
            input_topics,
            to_earliest: _,
            to_offset,
            to_datetime,
            by_duration,
            state_dir,
            dry_run,
            connection,
        } => {
            let at = match (to_datetime, by_duration) {
                (Some(when), _) => Some(groups::parse_time(&when)?),
                (_, Some(ago)) => Some(ago_ms(&ago)?),
                _ => None,
            };
            let client = connection.client().await?;
            let plan = Reset {
                app: &application_id,
                inputs: &input_topics,
                to_offset,
                at,
                state_dir: state_dir.as_deref(),
                execute: !dry_run,
            };
            reset(&client, plan).await
        }
    }
}

/// The stores under `<dir>/<app>`: size, recorded changelog offset, and
/// how far the changelog's end is past it (what a restart would restore).
async fn describe_stores(client: &Client, app: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let stores = spool_streams::state::stores_on_disk(dir, app)?;
    println!("stores in {}:", dir.join(app).display());
    if stores.is_empty() {
        println!("  none");
        return Ok(());
    }
    let changelog = |task: &str, store: &str| {
        let partition = task.split_once('_')?.1.parse::<u32>().ok()?;
        Some((format!("{app}-{store}-changelog"), partition))
    };
    let wanted: Vec<(String, u32)> = stores
        .iter()
        .filter_map(|s| changelog(&s.task, &s.store))
        .collect();
    let ends = groups::end_offsets(client, wanted.iter()).await?;
    println!(
        "{:<8} {:<28} {:>12} {:>12} {:>12} {:>10}",
        "task", "store", "bytes", "recorded", "changelog end", "behind"
    );
    for s in &stores {
        let recorded = match (s.changelog_offset, s.positions.is_empty()) {
            (Some(offset), _) => offset.to_string(),
            (None, false) => format!("{} partitions", s.positions.len()),
            (None, true) => "-".into(),
        };
        let end = changelog(&s.task, &s.store).and_then(|key| ends.get(&key).copied());
        let behind = match (end, s.changelog_offset) {
            (Some(end), Some(offset)) => end.saturating_sub(offset).to_string(),
            (Some(end), None) => end.to_string(),
            (None, _) => "-".into(),
        };
        let end = end.map_or("-".to_string(), |e| e.to_string());
        println!(
            "{:<8} {:<28} {:>12} {:>12} {:>12} {:>10}",
            s.task, s.store, s.bytes, recorded, end, behind
        );
    }
    Ok(())
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

/// What `spool streams reset` was asked to do.
struct Reset<'a> {
    app: &'a str,
    inputs: &'a [String],
    /// Where the inputs go: this offset, the first record at `at`
    /// (milliseconds since the epoch), or else the earliest.
    to_offset: Option<u64>,
    at: Option<i64>,
    state_dir: Option<&'a std::path::Path>,
    execute: bool,
}

impl Reset<'_> {
    fn target(&self) -> groups::Target {
        match (self.to_offset, self.at) {
            (Some(offset), _) => groups::Target::Offset(offset),
            (_, Some(at)) => groups::Target::Spec(OffsetSpec::Timestamp, at),
            _ => groups::Target::Spec(OffsetSpec::Earliest, 0),
        }
    }
}

async fn reset(client: &Client, plan: Reset<'_>) -> anyhow::Result<()> {
    let app = plan.app;
    let dry = if plan.execute { "" } else { "(dry run) " };
    if plan.inputs.is_empty() {
        if plan.execute {
            delete_offsets(client, app).await?;
        } else {
            println!("{dry}would delete the committed offsets of group {app}");
        }
    }
    for topic in plan.inputs {
        groups::reset(client, app, topic, None, plan.target(), plan.execute).await?;
    }
    for topic in internal_topics(client, app).await? {
        if plan.execute {
            client.admin().delete_topic(&topic).await?;
        }
        println!("{dry}deleted internal topic {topic}");
    }
    if let Some(dir) = plan.state_dir {
        let dir = dir.join(app);
        if dir.exists() {
            if plan.execute {
                std::fs::remove_dir_all(&dir)?;
            }
            println!("{dry}removed local state {}", dir.display());
        }
    }
    Ok(())
}

async fn delete_offsets(client: &Client, app: &str) -> anyhow::Result<()> {
    match client.admin().delete_group(app).await {
        Ok(()) => println!("deleted the committed offsets of group {app}"),
        Err(e) if e.code() == ErrorCode::GroupIdNotFound => {
            println!("group {app} has no committed offsets")
        }
        Err(e) if e.code() == ErrorCode::NonEmptyGroup => {
            bail!("group {app} still has members: stop every instance of the application first")
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `15m`, `2h`, `7d` or plain seconds back from now, as milliseconds
/// since the epoch.
fn ago_ms(text: &str) -> anyhow::Result<i64> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let amount: i64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--by-duration {text}: expected e.g. 15m, 2h, 7d"))?;
    let seconds = match unit {
        "" | "s" => amount,
        "m" => amount * 60,
        "h" => amount * 3600,
        "d" => amount * 86_400,
        _ => bail!("--by-duration {text}: the unit is s, m, h or d"),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(now.as_millis() as i64 - seconds * 1000)
}
