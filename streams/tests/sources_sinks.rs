//! Where records enter and leave, through the test driver: pattern
//! sources, several topics and merged streams reaching one processor
//! instance per task, named nodes, and partitioners (and the topologies
//! they refuse).

use spool_streams::{
    Consumed, Materialized, Processor, ProcessorContext, ProcessorInit, Produced, Record, Result,
    StreamsBuilder, StreamsError, TestTopic, TopologyTestDriver, Utf8,
};

/// Forwards each record's value with how many records this instance has
/// seen: two instances in one task would each count from 1.
struct Counter {
    seen: u64,
}

impl Processor<String, String> for Counter {
    type KOut = String;
    type VOut = String;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> Result<()> {
        self.seen += 1;
        let value = format!("{}#{}", r.value, self.seen);
        ctx.forward(Record::new(r.key, value, r.timestamp))
    }
}

fn values(driver: &mut TopologyTestDriver, topic: &str) -> Vec<String> {
    let out = TestTopic::new(topic, Utf8, Utf8);
    driver
        .read(&out)
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect()
}

fn pipe(driver: &mut TopologyTestDriver, topic: &str, value: &str) -> Result<()> {
    driver.pipe_raw(topic, Some(b"k"), Some(value.as_bytes()), 1)
}

fn counted(stream: spool_streams::KStream<String, String>) {
    stream
        .process(|_: &mut ProcessorInit<'_>| Counter { seen: 0 }, &[])
        .to("out", Produced::with(Utf8, Utf8));
}

#[test]
fn a_pattern_source_reads_every_matching_topic_through_one_instance() {
    let builder = StreamsBuilder::new();
    counted(builder.stream_pattern("orders-[a-z]+", Consumed::with(Utf8, Utf8)));
    let topology = builder.build().unwrap();
    let description = topology.describe().to_string();
    assert!(
        description.contains("(topics: [pattern orders-[a-z]+])"),
        "{description}"
    );
    let mut driver = TopologyTestDriver::new(&topology);
    pipe(&mut driver, "orders-eu", "a").unwrap();
    pipe(&mut driver, "orders-us", "b").unwrap();
    // The whole name must match.
    let error = pipe(&mut driver, "orders-eu2", "c").unwrap_err();
    assert!(matches!(error, StreamsError::UnknownTopic(_)), "{error}");
    assert_eq!(values(&mut driver, "out"), vec!["a#1", "b#2"]);
}

#[test]
fn an_invalid_pattern_is_refused_when_built() {
    let builder = StreamsBuilder::new();
    counted(builder.stream_pattern("orders-(", Consumed::with(Utf8, Utf8)));
    let error = builder.build().err().expect("refused").to_string();
    assert!(error.contains("source pattern `orders-(`"), "{error}");
}

#[test]
fn merged_streams_and_several_topics_reach_one_processor_instance() {
    let builder = StreamsBuilder::new();
    let left = builder.stream("left", Consumed::with(Utf8, Utf8));
    let right = builder.stream("right", Consumed::with(Utf8, Utf8));
    counted(left.merge(&right));
    counted(builder.stream_of(&["x", "y"], Consumed::with(Utf8, Utf8)));
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    for (topic, value) in [("left", "l1"), ("right", "r1"), ("left", "l2")] {
        pipe(&mut driver, topic, value).unwrap();
    }
    for (topic, value) in [("x", "x1"), ("y", "y1")] {
        pipe(&mut driver, topic, value).unwrap();
    }
    assert_eq!(
        values(&mut driver, "out"),
        vec!["l1#1", "r1#2", "l2#3", "x1#1", "y1#2"]
    );
}

#[test]
fn named_nodes_show_in_the_description_and_names_are_unique() {
    let builder = StreamsBuilder::new();
    builder
        .stream("events", Consumed::with(Utf8, Utf8))
        .filter(|_, v| !v.is_empty())
        .named("non-empty")
        .map_values(|v| v.to_uppercase())
        .named("shout")
        .to("out", Produced::with(Utf8, Utf8));
    let description = builder.build().unwrap().describe().to_string();
    assert!(
        description.contains("Processor: non-empty (stores: [])\n      --> shout"),
        "{description}"
    );

    let builder = StreamsBuilder::new();
    let events = builder.stream("events", Consumed::with(Utf8, Utf8));
    events.filter(|_, _| true).named("twice");
    events.filter(|_, _| false).named("twice");
    let error = builder.build().err().expect("refused").to_string();
    assert!(error.contains("two nodes are named `twice`"), "{error}");
}

#[test]
fn a_partitioner_choosing_a_partition_the_topic_lacks_fails_the_record() {
    let builder = StreamsBuilder::new();
    builder.stream("events", Consumed::with(Utf8, Utf8)).to(
        "out",
        Produced::with(Utf8, Utf8).with_partitioner(|_, _, count| Some(count)),
    );
    // The driver models one partition per topic.
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    let error = pipe(&mut driver, "events", "a").unwrap_err().to_string();
    assert!(
        error.contains("chose partition 1 of `out`, which has 1"),
        "{error}"
    );
}

#[test]
fn partitioners_where_a_partition_cannot_be_chosen_are_refused() {
    let builder = StreamsBuilder::new();
    builder
        .table(
            "rows",
            Consumed::with(Utf8, Utf8),
            Materialized::with(Utf8, Utf8),
        )
        .to(
            "out",
            Produced::with(Utf8, Utf8).with_partitioner(|_, _, _| Some(0)),
        );
    builder
        .stream("events", Consumed::with(Utf8, Utf8))
        .to_topic_chosen_by(
            |_, _| "somewhere".into(),
            Produced::with(Utf8, Utf8).with_partitioner(|_, _, _| Some(0)),
        );
    let error = builder.build().err().expect("refused").to_string();
    assert!(
        error.contains("KTable::to(\"out\") with a partitioner"),
        "{error}"
    );
    assert!(
        error.contains("to_topic_chosen_by with a partitioner"),
        "{error}"
    );
}
