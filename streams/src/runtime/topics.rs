//! The application's topics before it starts: source topics must exist
//! and be co-partitioned within a sub-topology; internal topics
//! (repartition and changelog) are created with the partition counts
//! their sub-topologies need, as Kafka Streams creates them.

use std::collections::BTreeMap;

use spool_client::proto::ErrorCode;
use spool_client::Client;

use super::StreamsConfig;
use crate::topology::{TopicName, Topology};
use crate::{Result, StreamsError};

/// The changelog topic of `store` in application `app_id`.
pub(crate) fn changelog_topic(app_id: &str, store: &str) -> String {
    format!("{app_id}-{store}-changelog")
}

/// Checks the sources, creates what is missing, and returns each
/// sub-topology's partition count (its number of tasks).
pub(crate) async fn prepare(
    client: &Client,
    topology: &Topology,
    config: &StreamsConfig,
) -> Result<Vec<u32>> {
    let app = &config.application_id;
    let mut known: BTreeMap<TopicName, u32> = BTreeMap::new();
    for topic in topology.source_topics() {
        if let TopicName::User(name) = topic {
            known.insert(topic.clone(), partition_count(client, name).await?.ok_or_else(|| {
                StreamsError::InvalidTopology(format!(
                    "source topic `{name}` does not exist; create it before starting the application"
                ))
            })?);
        }
    }
    check_co_partitioned(topology, &known)?;
    let counts = sub_topology_counts(topology, &mut known)?;
    for (topic, &count) in known
        .iter()
        .filter(|(t, _)| matches!(t, TopicName::Internal(_)))
    {
        ensure_topic(client, &topic.resolve(app), count, &[], config).await?;
    }
    for (index, sub) in topology.sub_topologies().iter().enumerate() {
        for store in &sub.stores {
            let logged = topology.stores.get(store).is_some_and(|s| s.logged);
            if logged {
                let compact = [("cleanup.policy", "compact")];
                ensure_topic(
                    client,
                    &changelog_topic(app, store),
                    counts[index],
                    &compact,
                    config,
                )
                .await?;
            }
        }
    }
    Ok(counts)
}

/// The partition counts of the topics sinks partition themselves; each
/// must exist, since a partitioner chooses among its partitions.
pub(crate) async fn sink_partitions(
    client: &Client,
    topology: &Topology,
) -> Result<BTreeMap<String, u32>> {
    let mut counts = BTreeMap::new();
    for topic in topology.partitioned_sinks() {
        let count = partition_count(client, topic).await?.ok_or_else(|| {
            StreamsError::InvalidTopology(format!(
                "output topic `{topic}` chooses its partitions (a partitioner, or windowed keys partitioned by the key alone) but does not exist; create it before starting the application"
            ))
        })?;
        counts.insert(topic.clone(), count);
    }
    Ok(counts)
}

/// Sources of one sub-topology must have as many partitions each: a
/// task joins partition `p` of every one of them.
fn check_co_partitioned(topology: &Topology, known: &BTreeMap<TopicName, u32>) -> Result<()> {
    for sub in topology.sub_topologies() {
        let counts: Vec<(String, u32)> = sub
            .sources
            .iter()
            .filter_map(|t| Some((t.to_string(), *known.get(t)?)))
            .collect();
        if counts.windows(2).any(|w| w[0].1 != w[1].1) {
            let listed: Vec<String> = counts.iter().map(|(t, n)| format!("{t} ({n})")).collect();
            return Err(StreamsError::InvalidTopology(format!(
                "topics read by one sub-topology must have as many partitions each: {}",
                listed.join(", ")
            )));
        }
    }
    Ok(())
}

/// Partition counts of sub-topologies and internal topics: a
/// sub-topology has as many tasks as its largest source, and a
/// repartition topic as many partitions as the sub-topology writing it
/// (Kafka Streams' rule), resolved until nothing changes.
fn sub_topology_counts(
    topology: &Topology,
    known: &mut BTreeMap<TopicName, u32>,
) -> Result<Vec<u32>> {
    let subs = topology.sub_topologies();
    let mut counts = vec![0u32; subs.len()];
    for _round in 0..=subs.len() {
        let mut changed = false;
        for (index, sub) in subs.iter().enumerate() {
            let count = sub
                .sources
                .iter()
                .filter_map(|t| known.get(t))
                .copied()
                .max()
                .unwrap_or(0);
            if count != counts[index] {
                counts[index] = count;
                changed = true;
            }
            for written in &sub.writes {
                if count > 0 && known.get(written) != Some(&count) {
                    known.insert(written.clone(), count);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    match counts.iter().position(|&c| c == 0) {
        Some(index) => Err(StreamsError::InvalidTopology(format!(
            "sub-topology {index} reads only internal topics no other sub-topology writes"
        ))),
        None => Ok(counts),
    }
}

async fn partition_count(client: &Client, topic: &str) -> Result<Option<u32>> {
    match client.topic_metadata(topic).await {
        Ok(meta) => Ok(Some(meta.partitions.len() as u32)),
        Err(e) if e.code() == ErrorCode::UnknownTopicOrPartition => Ok(None),
        Err(e) => Err(StreamsError::client(
            format!("describing topic `{topic}`"),
            e,
        )),
    }
}

/// Creates `topic` unless it exists; an existing one with another
/// partition count is refused (its keys would land in other tasks).
async fn ensure_topic(
    client: &Client,
    topic: &str,
    partitions: u32,
    configs: &[(&str, &str)],
    config: &StreamsConfig,
) -> Result<()> {
    match partition_count(client, topic).await? {
        Some(existing) if existing == partitions => return Ok(()),
        Some(existing) => {
            return Err(StreamsError::InvalidTopology(format!(
                "internal topic `{topic}` has {existing} partitions, the topology needs {partitions}; reset the application (spool streams reset) or fix the source topics"
            )))
        }
        None => {}
    }
    let created = client
        .admin()
        .create_replicated_topic(topic, partitions, config.replication_factor, configs)
        .await;
    match created {
        Ok(()) => Ok(()),
        // Another instance or thread created it meanwhile.
        Err(e) if e.code() == ErrorCode::TopicAlreadyExists => Ok(()),
        Err(e) => Err(StreamsError::client(
            format!("creating internal topic `{topic}`"),
            e,
        )),
    }
}
