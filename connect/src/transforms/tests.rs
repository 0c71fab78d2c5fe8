//! Tests of whole chains built from connector configs: class names,
//! predicates with `negate`, the order of transforms, and config errors
//! that name their key.

use bytes::Bytes;
use serde_json::json;

use super::*;
use crate::api::{ConfigMap, ConfigValue, SinkRecord, SourceRecord};
use crate::ConnectError;

fn config(pairs: &[(&str, &str)]) -> ConfigMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn error_key(pairs: &[(&str, &str)]) -> (String, String) {
    match TransformChain::from_config(&config(pairs)) {
        Err(ConnectError::InvalidConfig { key, reason }) => (key, reason),
        Err(other) => panic!("not a config error: {other}"),
        Ok(chain) => panic!("accepted: {chain:?}"),
    }
}

#[test]
fn a_chain_runs_in_order_and_predicates_gate_it() {
    let chain = TransformChain::from_config(&config(&[
        ("transforms", "hoist, stamp,route,tag,drop"),
        ("transforms.hoist.type", "HoistField$Value"),
        ("transforms.hoist.field", "line"),
        (
            "transforms.stamp.type",
            "org.apache.kafka.connect.transforms.InsertField$Value",
        ),
        ("transforms.stamp.topic.field", "from"),
        ("transforms.stamp.predicate", "isRaw"),
        (
            "transforms.route.type",
            "org.apache.kafka.connect.transforms.RegexRouter",
        ),
        ("transforms.route.regex", "raw-(.*)"),
        ("transforms.route.replacement", "clean-$1"),
        ("transforms.tag.type", "InsertHeader"),
        ("transforms.tag.header", "pipeline"),
        ("transforms.tag.value.literal", "v1"),
        ("transforms.tag.predicate", "isRaw"),
        ("transforms.tag.negate", "true"),
        ("transforms.drop.type", "Filter"),
        ("transforms.drop.predicate", "isTombstone"),
        ("predicates", "isRaw,isTombstone"),
        (
            "predicates.isRaw.type",
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        ),
        ("predicates.isRaw.pattern", "raw-.*"),
        ("predicates.isTombstone.type", "RecordIsTombstone"),
    ]))
    .unwrap();
    assert_eq!(
        chain.aliases().collect::<Vec<_>>(),
        ["hoist", "stamp", "route", "tag", "drop"]
    );
    let out = chain
        .apply(TransformRecord::new("raw-events", Some(json!("a"))))
        .unwrap()
        .unwrap();
    assert_eq!(out.topic, "clean-events");
    assert_eq!(out.value, Some(json!({"line": "a", "from": "raw-events"})));
    assert_eq!(
        out.headers,
        [("pipeline".to_string(), Some(Bytes::from_static(b"v1")))]
    );
    // Not raw: no `from`, still tagged. HoistField wraps a null, so the
    // tombstone filter sees an object and keeps the record.
    let other = chain
        .apply(TransformRecord::new("events", None))
        .unwrap()
        .unwrap();
    assert_eq!(other.topic, "events");
    assert_eq!(other.value, Some(json!({"line": null})));
    assert_eq!(other.headers.len(), 1);
}

#[test]
fn a_filter_drops_and_source_and_sink_records_keep_their_positions() {
    let chain = TransformChain::from_config(&config(&[
        ("transforms", "drop,mask"),
        ("transforms.drop.type", "Filter"),
        ("transforms.drop.predicate", "noise"),
        ("transforms.mask.type", "MaskField$Key"),
        ("transforms.mask.fields", "ssn"),
        ("predicates", "noise"),
        ("predicates.noise.type", "HasHeaderKey"),
        ("predicates.noise.name", "debug"),
    ]))
    .unwrap();
    let mut source = SourceRecord::new(
        [("file".to_string(), json!("a"))].into(),
        [("position".to_string(), json!(7))].into(),
        "t",
        Some(json!(1)),
    );
    source.key = Some(json!({"ssn": "123", "id": 1}));
    let out = chain.apply(source.clone()).unwrap().unwrap();
    assert_eq!(out.key, Some(json!({"ssn": "", "id": 1})));
    assert_eq!(out.source_offset, source.source_offset);
    source.headers.push(("debug".into(), None));
    assert_eq!(chain.apply(source).unwrap(), None);

    let sink = SinkRecord {
        topic: "t".into(),
        partition: 4,
        offset: 11,
        key: Some(json!({"ssn": "9"})),
        value: None,
        headers: Vec::new(),
        timestamp: 5,
    };
    let out = chain.apply(sink).unwrap().unwrap();
    assert_eq!((out.partition, out.offset, out.timestamp), (4, 11, 5));
    assert_eq!(out.key, Some(json!({"ssn": ""})));
}

#[test]
fn a_failing_transform_names_its_alias_class_and_topic() {
    let chain = TransformChain::from_config(&config(&[
        ("transforms", "toInt"),
        ("transforms.toInt.type", "Cast$Value"),
        ("transforms.toInt.spec", "int32"),
    ]))
    .unwrap();
    let error = chain
        .apply(TransformRecord::new("numbers", Some(json!("x"))))
        .unwrap_err();
    match &error {
        ConnectError::Transform {
            alias,
            transform,
            topic,
            reason,
        } => {
            assert_eq!(alias, "toInt");
            assert_eq!(*transform, "org.apache.kafka.connect.transforms.Cast$Value");
            assert_eq!(topic, "numbers");
            assert_eq!(reason, "Value (x) was out of range for requested data type");
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        error.to_string(),
        "transform `toInt` (Cast$Value) cannot transform a record of `numbers`: Value (x) was \
         out of range for requested data type"
    );
}

#[test]
fn an_empty_config_is_an_empty_chain() {
    let chain = TransformChain::from_config(&config(&[("transforms", " ")])).unwrap();
    assert!(chain.is_empty());
    let record = TransformRecord::new("t", Some(json!(1)));
    assert_eq!(chain.apply(record.clone()).unwrap(), Some(record));
}

/// A connector config, the key its error must name, and words it must say.
type RefusedCase<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

#[test]
fn bad_chains_are_refused_naming_the_key() {
    let cases: [RefusedCase<'_>; 8] = [
        (
            &[("transforms", "a")],
            "transforms.a.type",
            "missing required configuration",
        ),
        (
            &[
                ("transforms", "a"),
                ("transforms.a.type", "com.example.Nope"),
            ],
            "transforms.a.type",
            "no transformation class `com.example.Nope`",
        ),
        (
            &[("transforms", "a"), ("transforms.a.type", "InsertField")],
            "transforms.a.type",
            "use `InsertField$Key` or `InsertField$Value`",
        ),
        (
            &[("transforms", "a,a")],
            "transforms",
            "Duplicate alias provided: `a`",
        ),
        (
            &[
                ("transforms", "a"),
                ("transforms.a.type", "Filter"),
                ("transforms.a.predicate", "p"),
            ],
            "transforms.a.predicate",
            "names the predicate `p`",
        ),
        (
            &[
                ("transforms", "a"),
                ("transforms.a.type", "Filter"),
                ("transforms.a.negate", "yes"),
            ],
            "transforms.a.negate",
            "expected true or false",
        ),
        (
            &[("predicates", "p"), ("predicates.p.type", "IsFriday")],
            "predicates.p.type",
            "no predicate class `IsFriday`",
        ),
        (
            &[
                ("transforms", "a"),
                ("transforms.a.type", "ExtractField$Key"),
            ],
            "transforms.a.field",
            "missing required configuration \"transforms.a.field\"",
        ),
    ];
    for (pairs, key, says) in cases {
        let (named, reason) = error_key(pairs);
        assert_eq!(named, key, "{reason}");
        assert!(reason.contains(says), "{key}: {reason}");
    }
}

#[test]
fn validation_results_get_the_chains_error_on_its_key() {
    let bad = config(&[("transforms", "a"), ("transforms.a.type", "Nope")]);
    let mut results = vec![ConfigValue {
        name: "transforms".into(),
        value: Some("a".into()),
        recommended_values: Vec::new(),
        errors: Vec::new(),
        visible: true,
    }];
    report_errors(&bad, &mut results);
    assert_eq!(results.len(), 2);
    assert_eq!(results[1].name, "transforms.a.type");
    assert_eq!(results[1].value.as_deref(), Some("Nope"));
    assert!(results[1].errors[0].contains("no transformation class"));
    let defined = config_def();
    assert!(defined.key(TRANSFORMS).is_some() && defined.key(PREDICATES).is_some());
    // Every listed class is known (its own keys are missing here).
    for class in transform_classes() {
        let chain = TransformChain::from_config(&config(&[
            ("transforms", "t"),
            ("transforms.t.type", class),
        ]));
        if let Err(error) = chain {
            let text = error.to_string();
            assert!(!text.contains("no transformation class"), "{text}");
        }
    }
    assert_eq!(predicate_classes().len(), 3);
}
