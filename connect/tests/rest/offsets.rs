//! `GET`, `PATCH` and `DELETE /connectors/{name}/offsets`: the offsets a
//! source and a sink committed, and what each reads next once they are
//! changed, on a running connector and on a stopped one.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{read_topic, wait_for_lines};
use crate::support::{alter, message, setup, source_config, Api, Setup};

/// The body of a file source's offsets: `file` read up to `position`.
fn source_offsets(file: &str, position: u64) -> Value {
    json!({"offsets": [{"partition": {"filename": file}, "offset": {"position": position}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_reads_on_from_its_altered_or_reset_offsets() {
    let s = setup(&["off"], None).await;
    let input = s.file("in.txt");
    std::fs::write(&input, "one\ntwo\nthree\n").unwrap();
    let file = input.display().to_string();
    let create = json!({"name": "tail", "config": source_config(&input, "off")});
    s.api.call(Method::POST, "/connectors", Some(create)).await;
    assert_eq!(
        read_topic(&s.client, "off", 3).await,
        ["one", "two", "three"]
    );
    let at = |position| source_offsets(&file, position);
    let path = "/connectors/tail/offsets";
    s.api.wait(path, |o| *o == at(14)).await;

    // On the running connector: from byte 4, `two` and `three` again.
    alter(&s.api, "tail", at(4)["offsets"].clone()).await;
    let mut expected = vec!["one", "two", "three", "two", "three"];
    assert_eq!(read_topic(&s.client, "off", 5).await, expected);
    s.api.wait(path, |o| *o == at(14)).await;

    let (status, body) = s.api.call(Method::DELETE, path, None).await;
    let reset = json!({"message": "The offsets for this connector have been reset successfully"});
    assert_eq!((status, body), (StatusCode::OK, reset));
    expected.extend(["one", "two", "three"]);
    assert_eq!(read_topic(&s.client, "off", 8).await, expected);

    // On a stopped connector, as Kafka does it: nothing runs until resumed.
    s.api.wait(path, |o| *o == at(14)).await;
    s.api.call(Method::PUT, "/connectors/tail/stop", None).await;
    alter(&s.api, "tail", at(8)["offsets"].clone()).await;
    assert_eq!(s.api.get(path).await, at(8));
    assert_eq!(read_topic(&s.client, "off", 8).await.len(), 8);
    s.api
        .call(Method::PUT, "/connectors/tail/resume", None)
        .await;
    expected.push("three");
    assert_eq!(read_topic(&s.client, "off", 9).await, expected);

    s.api.wait(path, |o| *o == at(14)).await;
    refuses_bad_offsets(&s.api, &file).await;
    sink_offsets(&s, &expected).await;
    s.finish().await;
}

/// Offsets the file source cannot read, and bodies that are no offsets,
/// are refused with a 400 and change nothing.
async fn refuses_bad_offsets(api: &Api, file: &str) {
    let path = "/connectors/tail/offsets";
    let before = api.get(path).await;
    for (body, says) in [
        (
            json!({"offsets": [{"partition": {"file": file}, "offset": {"position": 1}}]}),
            "filename",
        ),
        (
            json!({"offsets": [{"partition": {"filename": file}, "offset": {"position": -1}}]}),
            "position",
        ),
        (json!({"offsets": []}), "need to be provided"),
        (
            json!({"offsets": [{"offset": {"position": 1}}]}),
            "partition",
        ),
        (json!(["no offsets"]), "not the JSON expected"),
    ] {
        let (status, error) = api.call(Method::PATCH, path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert!(message(&error).contains(says), "{says}: {error}");
    }
    assert_eq!(api.get(path).await, before);
}

/// A sink's offsets are its group's: read, altered (it writes records
/// again from there) and reset (it writes the whole topic again).
async fn sink_offsets(s: &Setup, records: &[&str]) {
    let out = s.file("out.txt");
    let create = json!({"name": "copy", "config": {"connector.class": "FileStreamSink",
        "file": out.display().to_string(), "topics": "off", "value.converter": "string"}});
    s.api.call(Method::POST, "/connectors", Some(create)).await;
    let lines = |records: &[&str]| records.iter().map(|r| format!("{r}\n")).collect::<String>();
    assert_eq!(wait_for_lines(&out, records.len()).await, lines(records));
    let at = |offset: usize| {
        json!([{"partition": {"kafka_topic": "off", "kafka_partition": 0},
                "offset": {"kafka_offset": offset}}])
    };
    let end = records.len();
    let path = "/connectors/copy/offsets";
    s.api.wait(path, |o| o["offsets"] == at(end)).await;

    alter(&s.api, "copy", at(end - 2)).await;
    let mut written: Vec<&str> = records.to_vec();
    written.extend(&records[end - 2..]);
    assert_eq!(
        wait_for_lines(&out, written.len()).await,
        lines(&written[..])
    );

    s.api.wait(path, |o| o["offsets"] == at(end)).await;
    let (status, body) = s.api.call(Method::DELETE, path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    written.extend(records);
    assert_eq!(
        wait_for_lines(&out, written.len()).await,
        lines(&written[..])
    );
}
