//! Custom processors: typed stores bound per task, forwarding, and
//! punctuation on stream time and on the driver's wall clock.

use std::time::Duration;

use spool_streams::{
    BigEndian, Consumed, KeyValueStore, Materialized, Processor, ProcessorContext, ProcessorInit,
    Produced, PunctuationType, Record, Result, StreamsBuilder, StreamsError, TestTopic,
    TopologyTestDriver, Utf8,
};

/// Forwards each key's first record only; every 10 ms of stream time
/// reports how many distinct keys it has seen (key "distinct"), and on
/// each wall-clock second reports "tick".
struct FirstSeen {
    seen: KeyValueStore<String, i64>,
    distinct: i64,
}

impl Processor<String, String> for FirstSeen {
    type KOut = String;
    type VOut = String;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> Result<()> {
        if self.seen.get(ctx, &r.key)?.is_some() {
            return Ok(());
        }
        self.seen.put(ctx, &r.key, &r.timestamp)?;
        self.distinct += 1;
        ctx.forward(r)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        kind: PunctuationType,
        at: i64,
    ) -> Result<()> {
        let record = match kind {
            PunctuationType::StreamTime => {
                Record::new("distinct".to_string(), self.distinct.to_string(), at)
            }
            PunctuationType::WallClockTime => Record::new("tick".to_string(), at.to_string(), at),
        };
        ctx.forward(record)
    }
}

fn first_seen_topology() -> spool_streams::Topology {
    let builder = StreamsBuilder::new();
    let seen = builder.add_state_store(Materialized::with(Utf8, BigEndian).named("seen"));
    builder
        .stream("events", Consumed::with(Utf8, Utf8))
        .process(
            move |init: &mut ProcessorInit<'_>| {
                init.schedule(PunctuationType::StreamTime, Duration::from_millis(10));
                init.schedule(PunctuationType::WallClockTime, Duration::from_secs(1));
                FirstSeen {
                    seen: init.store(&seen),
                    distinct: 0,
                }
            },
            &["seen"],
        )
        .to("first", Produced::with(Utf8, Utf8));
    builder.build().unwrap()
}

fn read(driver: &mut TopologyTestDriver) -> Vec<(String, String, i64)> {
    driver
        .read(&TestTopic::new("first", Utf8, Utf8))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

#[test]
fn a_processor_keeps_state_in_its_store_and_punctuates_on_both_clocks() {
    let topology = first_seen_topology();
    assert!(topology.describe().to_string().contains("(stores: [seen])"));
    let mut driver = TopologyTestDriver::new(&topology);
    let events = TestTopic::new("events", Utf8, Utf8);
    for (key, ts) in [("a", 1), ("b", 5), ("a", 8), ("c", 12), ("b", 25)] {
        driver
            .pipe(&events, &key.to_string(), &format!("{key}@{ts}"), ts)
            .unwrap();
    }
    let expected: Vec<(String, String, i64)> = vec![
        ("a".into(), "a@1".into(), 1),
        // The first record starts stream time: the schedule fires, then
        // every 10 ms of stream time.
        ("distinct".into(), "1".into(), 1),
        ("b".into(), "b@5".into(), 5),
        ("c".into(), "c@12".into(), 12),
        ("distinct".into(), "3".into(), 12),
        // 25 passes 21: once, then the schedule realigns to 31.
        ("distinct".into(), "3".into(), 25),
    ];
    assert_eq!(read(&mut driver), expected);
    let stored = driver.store_entries("seen", Utf8, BigEndian).unwrap();
    assert_eq!(
        stored,
        vec![("a".to_string(), 1i64), ("b".into(), 5), ("c".into(), 12)]
    );

    // The first wall-clock punctuation is set one second after the first
    // record; advancing the clock past it fires it once.
    driver
        .advance_wall_clock(Duration::from_millis(500))
        .unwrap();
    assert!(read(&mut driver).is_empty());
    driver
        .advance_wall_clock(Duration::from_millis(600))
        .unwrap();
    assert_eq!(
        read(&mut driver),
        vec![("tick".to_string(), "1100".to_string(), 1100)]
    );
}

#[test]
fn a_processor_naming_an_undeclared_store_is_refused() {
    struct Nothing;
    impl Processor<String, String> for Nothing {
        type KOut = String;
        type VOut = String;
        fn process(
            &mut self,
            _: &mut ProcessorContext<'_, String, String>,
            _: Record<String, String>,
        ) -> Result<()> {
            Ok(())
        }
    }
    let builder = StreamsBuilder::new();
    builder
        .stream("events", Consumed::with(Utf8, Utf8))
        .process(|_: &mut ProcessorInit<'_>| Nothing, &["missing"]);
    match builder.build() {
        Err(StreamsError::InvalidTopology(message)) => {
            assert!(
                message.contains("KSTREAM-PROCESSOR-0000000001"),
                "{message}"
            );
            assert!(message.contains("`missing`"), "{message}");
        }
        other => panic!("expected an invalid topology, got {:?}", other.map(|_| ())),
    }
}
