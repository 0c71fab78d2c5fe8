//! Bad input and failing processing: records skipped by policy go to the
//! dead-letter topic with Kafka Streams' error headers (KIP-1034); a
//! failing processor stops the task, or is skipped when configured so.

use spool_streams::{
    BigEndian, Consumed, ErrorHandling, OnDecodeError, OnProcessingError, Produced, Record,
    StreamsBuilder, StreamsError, TestTopic, TopologyTestDriver, Utf8,
};

fn header<'a>(record: &'a Record<Vec<u8>, Vec<u8>>, key: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| std::str::from_utf8(h.value.as_deref()?).ok())
}

/// Doubles numbers; fails (as a processing error) on negative ones.
fn doubling() -> spool_streams::Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream("numbers", Consumed::with(Utf8, BigEndian))
        .process(|_: &mut spool_streams::ProcessorInit<'_>| Doubler, &[])
        .to("doubled", Produced::with(Utf8, BigEndian));
    builder.build().unwrap()
}

struct Doubler;

impl spool_streams::Processor<String, i64> for Doubler {
    type KOut = String;
    type VOut = i64;
    fn process(
        &mut self,
        ctx: &mut spool_streams::ProcessorContext<'_, String, i64>,
        r: Record<String, i64>,
    ) -> spool_streams::Result<()> {
        if r.value < 0 {
            return Err(StreamsError::Config(format!("negative: {}", r.value)));
        }
        ctx.forward(Record::new(r.key, r.value * 2, r.timestamp))
    }
}

fn dead_letters(driver: &mut TopologyTestDriver) -> Vec<Record<Vec<u8>, Vec<u8>>> {
    let dlq = TestTopic::new("dlq", spool_streams::RawBytes, spool_streams::RawBytes);
    driver.read(&dlq).unwrap()
}

#[test]
fn undecodable_and_failing_records_go_to_the_dead_letter_topic_with_their_error() {
    let errors = ErrorHandling {
        on_decode_error: OnDecodeError::LogAndContinue,
        on_processing_error: OnProcessingError::LogAndContinue,
        dead_letter_topic: Some("dlq".into()),
    };
    let mut driver = TopologyTestDriver::with_errors(&doubling(), errors);
    let numbers = TestTopic::<String, i64>::new("numbers", Utf8, BigEndian);
    driver.pipe(&numbers, &"a".into(), &4, 1).unwrap();
    // Three bytes are no i64.
    driver
        .pipe_raw("numbers", Some(b"b"), Some(b"bad"), 2)
        .unwrap();
    driver.pipe(&numbers, &"c".into(), &-1, 3).unwrap();
    driver.pipe(&numbers, &"d".into(), &5, 4).unwrap();

    let doubled: Vec<(String, i64)> = driver
        .read(&TestTopic::new("doubled", Utf8, BigEndian))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(doubled, vec![("a".to_string(), 8i64), ("d".into(), 10)]);
    assert_eq!(driver.skipped_records(), 2);

    let letters = dead_letters(&mut driver);
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].key, b"b".to_vec());
    assert_eq!(letters[0].value, b"bad".to_vec());
    assert_eq!(letters[0].timestamp, 2);
    assert_eq!(
        header(&letters[0], "__streams.errors.topic"),
        Some("numbers")
    );
    assert_eq!(
        header(&letters[0], "__streams.errors.exception"),
        Some("spool_streams::decode")
    );
    assert!(header(&letters[0], "__streams.errors.message")
        .unwrap()
        .contains("i64"));
    assert_eq!(letters[1].key, b"c".to_vec());
    assert_eq!(
        header(&letters[1], "__streams.errors.exception"),
        Some("spool_streams::process")
    );
    assert!(header(&letters[1], "__streams.errors.message")
        .unwrap()
        .contains("negative: -1"));
}

#[test]
fn a_failing_processor_stops_the_task_by_default() {
    let mut driver = TopologyTestDriver::new(&doubling());
    let numbers = TestTopic::<String, i64>::new("numbers", Utf8, BigEndian);
    driver.pipe(&numbers, &"a".into(), &4, 1).unwrap();
    let error = driver.pipe(&numbers, &"b".into(), &-2, 2).unwrap_err();
    assert!(error.to_string().contains("negative: -2"), "{error}");
    // Undecodable records are still skipped (a separate policy).
    driver
        .pipe_raw("numbers", Some(b"x"), Some(b"?"), 3)
        .unwrap();
    assert_eq!(driver.skipped_records(), 1);
}
