//! Every stateless operator through the test driver: what each forwards,
//! with keys, values and timestamps; poison records by policy; the
//! topology's description.

use spool_streams::{
    BigEndian, Consumed, Json, Nullable, OnDecodeError, Produced, StreamsBuilder, StreamsError,
    TestTopic, TopologyTestDriver, Unit, Utf8,
};

fn lines() -> TestTopic<(), String> {
    TestTopic::new("lines", Unit, Utf8)
}

fn pairs(driver: &mut TopologyTestDriver, topic: &str) -> Vec<(String, String, i64)> {
    let out = TestTopic::new(topic, Utf8, Utf8);
    driver
        .read(&out)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

#[test]
fn words_are_split_keyed_filtered_and_written_with_their_timestamps() {
    let builder = StreamsBuilder::new();
    builder
        .stream("lines", Consumed::with(Unit, Utf8))
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .filter_not(|_, word| word == "the")
        .select_key(|_, word| word.clone())
        .map_values(|word: String| word.len().to_string())
        .to("lengths", Produced::with(Utf8, Utf8));
    let topology = builder.build().unwrap();
    let mut driver = TopologyTestDriver::new(&topology);
    driver
        .pipe(&lines(), &(), &"The quick fox".into(), 10)
        .unwrap();
    driver.pipe(&lines(), &(), &"jumps".into(), 20).unwrap();
    assert_eq!(
        pairs(&mut driver, "lengths"),
        vec![
            ("quick".into(), "5".into(), 10),
            ("fox".into(), "3".into(), 10),
            ("jumps".into(), "5".into(), 20),
        ]
    );
}

#[test]
fn map_flat_map_peek_and_for_each_see_every_record() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let peeked = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let builder = StreamsBuilder::new();
    let numbers = builder.stream("numbers", Consumed::with(Utf8, BigEndian));
    let (p, s) = (Arc::clone(&peeked), Arc::clone(&seen));
    let doubled = numbers
        .peek(move |_, _: &i64| {
            p.fetch_add(1, Ordering::Relaxed);
        })
        .map(|key: String, n: i64| (format!("{key}!"), n * 2));
    doubled.for_each(move |_, _| {
        s.fetch_add(1, Ordering::Relaxed);
    });
    doubled
        .flat_map(|key, n| (0..n).map(move |i| (format!("{key}{i}"), i)))
        .to("out", Produced::with(Utf8, BigEndian));
    let topology = builder.build().unwrap();
    let mut driver = TopologyTestDriver::new(&topology);
    let input = TestTopic::new("numbers", Utf8, BigEndian);
    driver.pipe(&input, &"a".to_string(), &1i64, 5).unwrap();
    driver.pipe(&input, &"b".to_string(), &0i64, 6).unwrap();
    let out = TestTopic::new("out", Utf8, BigEndian);
    let written: Vec<(String, i64)> = driver
        .read(&out)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(written, vec![("a!0".into(), 0), ("a!1".into(), 1)]);
    assert_eq!(peeked.load(Ordering::Relaxed), 2);
    assert_eq!(seen.load(Ordering::Relaxed), 2);
}

#[test]
fn split_sends_each_record_to_its_first_matching_branch_and_merge_joins_streams() {
    let builder = StreamsBuilder::new();
    let words = builder.stream("words", Consumed::with(Utf8, Utf8));
    let mut short = None;
    let mut long = None;
    words
        .split()
        .branch(|_, w: &String| w.len() <= 3, |s| short = Some(s))
        .branch(|_, w: &String| w.len() <= 6, |s| long = Some(s))
        .default_branch(|rest| rest.to("rest", Produced::with(Utf8, Utf8)));
    let (short, long) = (short.unwrap(), long.unwrap());
    short.to("short", Produced::with(Utf8, Utf8));
    short
        .map_values(|w: String| w.to_uppercase())
        .merge(&long)
        .to("merged", Produced::with(Utf8, Utf8));
    let topology = builder.build().unwrap();
    let mut driver = TopologyTestDriver::new(&topology);
    let input = TestTopic::new("words", Utf8, Utf8);
    for (i, w) in ["ox", "horse", "hippopotamus", "cat"].iter().enumerate() {
        driver
            .pipe(&input, &w.to_string(), &w.to_string(), i as i64)
            .unwrap();
    }
    let values = |d: &mut TopologyTestDriver, t| -> Vec<String> {
        pairs(d, t).into_iter().map(|(_, v, _)| v).collect()
    };
    assert_eq!(values(&mut driver, "short"), vec!["ox", "cat"]);
    assert_eq!(values(&mut driver, "rest"), vec!["hippopotamus"]);
    assert_eq!(values(&mut driver, "merged"), vec!["OX", "horse", "CAT"]);
}

#[test]
fn records_go_to_the_topic_chosen_for_each() {
    let builder = StreamsBuilder::new();
    builder
        .stream("events", Consumed::with(Utf8, Utf8))
        .to_topic_chosen_by(|k, _| format!("events-{k}"), Produced::with(Utf8, Utf8));
    let mut driver = TopologyTestDriver::new(&builder.build().unwrap());
    let input = TestTopic::new("events", Utf8, Utf8);
    driver.pipe(&input, &"eu".into(), &"1".into(), 0).unwrap();
    driver.pipe(&input, &"us".into(), &"2".into(), 0).unwrap();
    assert_eq!(
        pairs(&mut driver, "events-eu"),
        vec![("eu".into(), "1".into(), 0)]
    );
    assert_eq!(
        pairs(&mut driver, "events-us"),
        vec![("us".into(), "2".into(), 0)]
    );
}

#[test]
fn poison_records_are_skipped_and_counted_or_stop_the_task_as_configured() {
    #[derive(serde::Serialize, serde::Deserialize, Clone, PartialEq, Debug)]
    struct Order {
        id: u32,
    }
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "orders",
            Consumed::with(Nullable(Utf8), Json::<Order>::new()),
        )
        .map_values(|o: Order| Order { id: o.id + 1 })
        .to("next", Produced::with(Nullable(Utf8), Json::<Order>::new()));
    let topology = builder.build().unwrap();
    let next = TestTopic::new("next", Nullable(Utf8), Json::<Order>::new());

    let mut driver = TopologyTestDriver::new(&topology);
    driver
        .pipe_raw("orders", None, Some(b"{\"id\": 1}"), 0)
        .unwrap();
    driver
        .pipe_raw("orders", None, Some(b"not json"), 0)
        .unwrap();
    driver
        .pipe_raw("orders", Some(b"k"), Some(b"{\"id\": 7}"), 0)
        .unwrap();
    let written: Vec<(Option<String>, Order)> = driver
        .read(&next)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(
        written,
        vec![(None, Order { id: 2 }), (Some("k".into()), Order { id: 8 })]
    );
    assert_eq!(driver.skipped_records(), 1);

    let mut strict = TopologyTestDriver::with_policy(&topology, OnDecodeError::Fail);
    let failed = strict
        .pipe_raw("orders", None, Some(b"not json"), 0)
        .unwrap_err();
    assert!(
        matches!(&failed, StreamsError::Source { topic, .. } if topic == "orders"),
        "{failed}"
    );
    let unknown = strict.pipe_raw("elsewhere", None, None, 0).unwrap_err();
    assert!(
        matches!(unknown, StreamsError::UnknownTopic(_)),
        "{unknown}"
    );
}

#[test]
fn topologies_reading_nothing_or_a_topic_twice_are_refused() {
    let empty = StreamsBuilder::new().build().err().unwrap().to_string();
    assert!(empty.contains("reads no topic"), "{empty}");
    let builder = StreamsBuilder::new();
    builder.stream("t", Consumed::with(Utf8, Utf8));
    builder.stream("t", Consumed::with(Utf8, Utf8));
    let twice = builder.build().err().unwrap().to_string();
    assert!(twice.contains("`t` is read by two sources"), "{twice}");
}

#[test]
fn a_topology_describes_itself_as_kafka_streams_does() {
    let builder = StreamsBuilder::new();
    builder
        .stream("input", Consumed::with(Utf8, Utf8))
        .filter(|_, v| !v.is_empty())
        .to("output", Produced::with(Utf8, Utf8));
    builder
        .stream("other", Consumed::with(Utf8, Utf8))
        .for_each(|_, _| {});
    let topology = builder.build().unwrap();
    let text = topology.describe().to_string();
    let expected = "\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [input])
      --> KSTREAM-FILTER-0000000001
    Processor: KSTREAM-FILTER-0000000001 (stores: [])
      --> KSTREAM-SINK-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Sink: KSTREAM-SINK-0000000002 (topic: output)
      <-- KSTREAM-FILTER-0000000001
   Sub-topology: 1
    Source: KSTREAM-SOURCE-0000000003 (topics: [other])
      --> KSTREAM-FOREACH-0000000004
    Processor: KSTREAM-FOREACH-0000000004 (stores: [])
      <-- KSTREAM-SOURCE-0000000003
";
    assert_eq!(text, expected);
    let graph = topology.describe().mermaid();
    assert!(graph.starts_with("flowchart LR\n"), "{graph}");
    assert!(graph.contains("n0 --> n1"), "{graph}");
    assert_eq!(
        topology
            .source_topics()
            .map(|t| t.resolve("app"))
            .collect::<Vec<_>>(),
        vec!["input", "other"]
    );
}
