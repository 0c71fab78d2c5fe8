//! `spool groups list|describe|reset-offsets|delete`.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::{ArgGroup, Subcommand};
use spool_client::group::Assignment;
use spool_client::Client;
use spool_protocol::proto::{
    DescribeGroupsRequest, ListGroupsRequest, ListOffsetsPartition, ListOffsetsRequest,
    ListOffsetsTopic, OffsetCommitPartition, OffsetCommitRequest, OffsetCommitTopic,
    OffsetFetchRequest, OffsetSpec,
};

use super::Connection;

#[derive(Subcommand)]
pub enum Command {
    /// List groups and their states.
    ///
    /// Example: spool groups list
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Show a group's members and, per partition, committed offset, end
    /// offset and lag.
    ///
    /// Example: spool groups describe workers
    Describe {
        group: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Move a group's committed offsets (the group must have no members).
    /// Prints the plan; changes nothing without --execute.
    ///
    /// Example: spool groups reset-offsets --group workers --topic orders --to-earliest --execute
    #[command(group(ArgGroup::new("target").required(true)
        .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
    ResetOffsets {
        #[arg(long)]
        group: String,
        #[arg(long)]
        topic: String,
        /// Only this partition (default: all).
        #[arg(long)]
        partition: Option<u32>,
        #[arg(long)]
        to_earliest: bool,
        #[arg(long)]
        to_latest: bool,
        #[arg(long)]
        to_offset: Option<u64>,
        /// Milliseconds since the epoch, or YYYY-MM-DDTHH:MM:SS[.mmm] in UTC.
        #[arg(long)]
        to_datetime: Option<String>,
        /// Move by this many records (negative: back), within the log.
        #[arg(long, allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// Apply the plan.
        #[arg(long)]
        execute: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a group that has no members, with its committed offsets; with
    /// --topic, only that topic's offsets (refused while a member
    /// subscribes to it).
    ///
    /// Example: spool groups delete workers --topic orders
    Delete {
        group: String,
        #[arg(long)]
        topic: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { connection } => {
            let client = connection.client().await?;
            for g in client.list_groups(ListGroupsRequest {}).await?.groups {
                println!("{}\t{}", g.group_id, g.state);
            }
            Ok(())
        }
        Command::Describe { group, connection } => {
            describe(&connection.client().await?, &group).await
        }
        Command::Delete {
            group,
            topic,
            connection,
        } => delete(&connection.client().await?, &group, topic.as_deref()).await,
        Command::ResetOffsets {
            group,
            topic,
            partition,
            to_earliest,
            to_latest,
            to_offset,
            to_datetime,
            shift_by,
            execute,
            connection,
        } => {
            let target = match (to_earliest, to_latest, to_offset, to_datetime, shift_by) {
                (true, ..) => Target::Spec(OffsetSpec::Earliest, 0),
                (_, true, ..) => Target::Spec(OffsetSpec::Latest, 0),
                (_, _, Some(offset), ..) => Target::Offset(offset),
                (_, _, _, Some(when), _) => Target::Spec(OffsetSpec::Timestamp, parse_time(&when)?),
                (.., Some(shift)) => Target::Shift(shift),
                _ => bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by"),
            };
            reset(
                &connection.client().await?,
                &group,
                &topic,
                partition,
                target,
                execute,
            )
            .await
        }
    }
}

pub(super) async fn describe(client: &Client, group: &str) -> anyhow::Result<()> {
    let description = client
        .describe_groups(DescribeGroupsRequest {
            group_ids: vec![group.to_string()],
        })
        .await?
        .groups
        .into_iter()
        .next()
        .context("empty response")?;
    println!(
        "group {group}  state {}  generation {}  assignor {}  members {}",
        description.state,
        description.generation_id,
        if description.protocol_name.is_empty() {
            "-"
        } else {
            &description.protocol_name
        },
        description.members.len()
    );
    let mut owners: BTreeMap<(String, u32), String> = BTreeMap::new();
    for member in &description.members {
        for tp in Assignment::decode(&member.assignment)
            .unwrap_or_default()
            .partitions
        {
            owners.insert((tp.topic, tp.partition), member.member_id.clone());
        }
    }
    let committed = client
        .offset_fetch(OffsetFetchRequest {
            require_stable: false,
            group_id: group.to_string(),
            topics: vec![],
        })
        .await?
        .offsets;
    let mut rows: BTreeMap<(String, u32), Option<u64>> = committed
        .iter()
        .map(|c| ((c.topic.clone(), c.partition), Some(c.offset)))
        .collect();
    for key in owners.keys() {
        rows.entry(key.clone()).or_insert(None);
    }
    let ends = end_offsets(client, rows.keys()).await?;
    println!(
        "{:<24} {:>9} {:>12} {:>12} {:>10}  owner",
        "topic", "partition", "committed", "end", "lag"
    );
    for ((topic, partition), offset) in &rows {
        let end = ends.get(&(topic.clone(), *partition)).copied().unwrap_or(0);
        let lag = offset.map_or("-".to_string(), |o| end.saturating_sub(o).to_string());
        let shown = offset.map_or("-".to_string(), |o| o.to_string());
        let owner = owners
            .get(&(topic.clone(), *partition))
            .map_or("-", String::as_str);
        println!("{topic:<24} {partition:>9} {shown:>12} {end:>12} {lag:>10}  {owner}");
    }
    Ok(())
}

pub(super) async fn end_offsets<'a>(
    client: &Client,
    partitions: impl Iterator<Item = &'a (String, u32)>,
) -> anyhow::Result<BTreeMap<(String, u32), u64>> {
    let resolved = list_offsets(
        client,
        partitions.map(|(t, p)| (t.clone(), *p, OffsetSpec::Latest, 0)),
    )
    .await?;
    Ok(resolved.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

async fn list_offsets(
    client: &Client,
    wanted: impl Iterator<Item = (String, u32, OffsetSpec, i64)>,
) -> anyhow::Result<Vec<(String, u32, u64)>> {
    let mut topics: Vec<ListOffsetsTopic> = Vec::new();
    for (topic, partition, spec, timestamp) in wanted {
        let entry = ListOffsetsPartition {
            partition,
            spec: spec as i32,
            timestamp,
        };
        match topics.iter_mut().find(|t| t.name == topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(ListOffsetsTopic {
                name: topic,
                partitions: vec![entry],
            }),
        }
    }
    let response = client
        .list_offsets(ListOffsetsRequest {
            topics,
            ..Default::default()
        })
        .await?;
    let mut out = Vec::new();
    for topic in response.topics {
        for p in topic.partitions {
            if let Some(e) = spool_client::ClientError::from_code(p.error, &p.message) {
                bail!("{}/{}: {e}", topic.name, p.partition);
            }
            out.push((topic.name.clone(), p.partition, p.offset));
        }
    }
    Ok(out)
}

pub(super) enum Target {
    Spec(OffsetSpec, i64),
    Offset(u64),
    Shift(i64),
}

pub(super) async fn reset(
    client: &Client,
    group: &str,
    topic: &str,
    partition: Option<u32>,
    target: Target,
    execute: bool,
) -> anyhow::Result<()> {
    let info = client.admin().describe_topic(topic).await?;
    let partitions: Vec<u32> = match partition {
        Some(p) if p as usize >= info.partitions.len() => {
            bail!("topic {topic} has no partition {p}")
        }
        Some(p) => vec![p],
        None => info.partitions.iter().map(|p| p.partition).collect(),
    };
    let bounds: BTreeMap<u32, (u64, u64)> = info
        .partitions
        .iter()
        .map(|p| (p.partition, (p.log_start_offset, p.high_watermark)))
        .collect();
    let committed: BTreeMap<u32, u64> = client
        .offset_fetch(OffsetFetchRequest {
            require_stable: false,
            group_id: group.to_string(),
            topics: vec![],
        })
        .await?
        .offsets
        .into_iter()
        .filter(|c| c.topic == topic)
        .map(|c| (c.partition, c.offset))
        .collect();
    let plan: Vec<(u32, u64)> = match target {
        Target::Spec(spec, ts) => list_offsets(
            client,
            partitions.iter().map(|p| (topic.to_string(), *p, spec, ts)),
        )
        .await?
        .into_iter()
        .map(|(_, p, o)| (p, o))
        .collect(),
        Target::Offset(offset) => partitions
            .iter()
            .map(|p| (*p, offset.clamp(bounds[p].0, bounds[p].1)))
            .collect(),
        Target::Shift(shift) => partitions
            .iter()
            .map(|p| {
                let from = committed.get(p).copied().unwrap_or(bounds[p].0) as i64;
                (
                    *p,
                    (from + shift).clamp(bounds[p].0 as i64, bounds[p].1 as i64) as u64,
                )
            })
            .collect(),
    };
    println!(
        "{:<24} {:>9} {:>12} {:>12}",
        "topic", "partition", "current", "new"
    );
    for (p, offset) in &plan {
        let current = committed.get(p).map_or("-".to_string(), u64::to_string);
        println!("{topic:<24} {p:>9} {current:>12} {offset:>12}");
    }
    if !execute {
        println!("dry run: nothing changed (add --execute to apply)");
        return Ok(());
    }
    let request = OffsetCommitRequest {
        group_id: group.to_string(),
        generation_id: -1,
        topics: vec![OffsetCommitTopic {
            name: topic.to_string(),
            partitions: plan
                .iter()
                .map(|(p, o)| OffsetCommitPartition {
                    partition: *p,
                    offset: *o,
                    metadata: String::new(),
                })
                .collect(),
        }],
        ..Default::default()
    };
    let response = client.offset_commit(request).await?;
    if let Some(e) = spool_client::ClientError::from_code(response.error, &response.message) {
        bail!("cannot reset offsets of {group}: {e} (stop the group's consumers first)");
    }
    println!("offsets of group {group} reset");
    Ok(())
}

/// Milliseconds since the epoch, or `YYYY-MM-DDTHH:MM:SS[.mmm][Z]` in UTC.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        anyhow::anyhow!(
            "`{text}` is neither milliseconds since the epoch nor YYYY-MM-DDTHH:MM:SS[.mmm]"
        )
    };
    let text = text.trim_end_matches('Z');
    let (date, time) = text.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let millis: i64 = format!("{millis:0<3}")[..3].parse().map_err(|_| bad())?;
    if d.len() != 3
        || t.len() != 3
        || !(1..=12).contains(&d[1])
        || !(1..=31).contains(&d[2])
        || t[0] > 23
        || t[1] > 59
        || t[2] > 60
    {
        return Err(bad());
    }
    let days = days_from_civil(d[0], d[1], d[2]);
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Deletes the group, or its offsets of `topic`'s partitions.
async fn delete(client: &Client, group: &str, topic: Option<&str>) -> anyhow::Result<()> {
    let admin = client.admin();
    let Some(topic) = topic else {
        admin.delete_group(group).await?;
        println!("deleted group {group}");
        return Ok(());
    };
    let partitions = client.admin().describe_topic(topic).await?.partitions.len() as u32;
    let asked: Vec<(&str, u32)> = (0..partitions).map(|p| (topic, p)).collect();
    let refused = admin.delete_group_offsets(group, &asked).await?;
    if !refused.is_empty() {
        bail!("group {group} has members subscribed to {topic}: its offsets stay");
    }
    println!("deleted the offsets of group {group} on {topic}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("0").unwrap(), 0);
        assert_eq!(parse_time("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(
            parse_time("2023-11-14T22:13:20.5Z").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(parse_time("2000-02-29T12:00:00").unwrap(), 951_825_600_000);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2023-13-01T00:00:00").is_err());
    }
}
