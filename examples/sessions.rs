//! A keyed aggregation with a custom processor and a punctuator: user
//! sessions from a click stream. The processor keeps, per user, the
//! clicks of the open session and when it last saw one, in a RocksDB
//! store with a changelog; a punctuator on stream time closes sessions
//! idle for 30 s of event time and writes them out. Stream time moves
//! with the records' own timestamps, so replaying yesterday's clicks
//! closes the same sessions as the live run did.
//!
//! Run: cargo run --release --example sessions

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spool::broker::Node;
use spool::client::proto::IsolationLevel;
use spool::client::{ConsumerConfig, OffsetReset, ProducerRecord, TopicPartition};
use spool::streams::{
    Consumed, Json, KafkaStreams, KeyValueStore, Materialized, ProcessingGuarantee, Processor,
    ProcessorContext, ProcessorInit, Produced, PunctuationType, Record, StreamsBuilder,
    StreamsConfig, Utf8,
};

/// How long a user may be idle (in event time) before the session ends.
const IDLE_MS: i64 = 30_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Session {
    clicks: u32,
    first: i64,
    last: i64,
}

struct Sessions {
    open: KeyValueStore<String, Session>,
}

impl Processor<String, String> for Sessions {
    type KOut = String;
    type VOut = Session;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Session>,
        click: Record<String, String>,
    ) -> spool::streams::Result<()> {
        let at = click.timestamp;
        let session = match self.open.get(ctx, &click.key)? {
            Some(s) if at - s.last <= IDLE_MS => Session {
                clicks: s.clicks + 1,
                last: at,
                ..s
            },
            Some(ended) => {
                // A click after a long pause: the old session ended.
                ctx.forward(Record::new(click.key.clone(), ended, at))?;
                Session {
                    clicks: 1,
                    first: at,
                    last: at,
                }
            }
            None => Session {
                clicks: 1,
                first: at,
                last: at,
            },
        };
        self.open.put(ctx, &click.key, &session)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Session>,
        _kind: PunctuationType,
        stream_time: i64,
    ) -> spool::streams::Result<()> {
        for (user, session) in self.open.all(ctx)? {
            if stream_time - session.last > IDLE_MS {
                self.open.delete(ctx, &user)?;
                ctx.forward(Record::new(user, session, stream_time))?;
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::embedded(dir.path().join("broker")).await?;
    let client = node.client();
    // One partition: stream time is a task's, and with one task every
    // user's clicks move it (with more, a partition whose users stop
    // clicking keeps its sessions open until it sees a later record).
    client.admin().create_topic("clicks", 1, &[]).await?;
    client.admin().create_topic("sessions", 1, &[]).await?;

    let builder = StreamsBuilder::new();
    let open = builder
        .add_state_store(Materialized::with(Utf8, Json::<Session>::new()).named("open-sessions"));
    builder
        .stream("clicks", Consumed::with(Utf8, Utf8))
        .process(
            move |init: &mut ProcessorInit<'_>| {
                init.schedule(PunctuationType::StreamTime, Duration::from_secs(10));
                Sessions {
                    open: init.store(&open),
                }
            },
            &["open-sessions"],
        )
        .to("sessions", Produced::with(Utf8, Json::<Session>::new()));
    let topology = builder.build()?;
    println!("{}", topology.describe());
    let mut config = StreamsConfig::new("sessions");
    config.state_dir = dir.path().join("state");
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    let app = KafkaStreams::start(topology, client.clone(), config).await?;

    // Ten minutes of clicks from three users, in event time: ann clicks
    // every 20 s (one long session), bob in two bursts, cid once.
    let producer = client.producer(Default::default());
    let mut clicks = Vec::new();
    for second in (0..600).step_by(5) {
        let at = 1_700_000_000_000 + second * 1000;
        let mut click = |user: &str| {
            clicks.push(
                ProducerRecord::new("clicks", format!("page-{second}"))
                    .key(user.to_string())
                    .timestamp(at),
            );
        };
        if second % 20 == 0 {
            click("ann");
        }
        if second < 60 || (300..330).contains(&second) {
            click("bob");
        }
        if second == 100 {
            click("cid");
        }
    }
    let total = clicks.len();
    producer.send_batch(clicks).await?.await?;
    println!("produced {total} clicks over ten minutes of event time");

    let mut consumer = client.consumer(ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        isolation: IsolationLevel::ReadCommitted,
        ..Default::default()
    });
    consumer.assign([TopicPartition::new("sessions", 0)]);
    // bob's two bursts and cid's one click end sessions; ann's stays open
    // (she never pauses 30 s).
    let mut ended = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ended < 3 && Instant::now() < deadline {
        for record in consumer.poll(Duration::from_millis(200)).await? {
            let user =
                String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
            let session: Session =
                serde_json::from_slice(record.value.as_deref().unwrap_or_default())?;
            println!(
                "session ended: {user:>4} {:>3} clicks over {:>3} s",
                session.clicks,
                (session.last - session.first) / 1000
            );
            ended += 1;
        }
    }
    app.close().await?;
    node.shutdown().await?;
    anyhow::ensure!(ended == 3, "expected 3 ended sessions, read {ended}");
    Ok(())
}
