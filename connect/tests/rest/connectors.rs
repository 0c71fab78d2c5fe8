//! Connectors created, read, reconfigured and deleted through the API,
//! with Kafka's payloads, and the lines that move meanwhile.

use axum::http::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{read_topic, wait_for_lines};
use crate::support::{append, not_found, pipeline, setup, source_config, text, SINK};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_are_created_and_read_with_kafkas_payloads() {
    let s = setup(&["lines"], None).await;
    let (input, out) = (s.file("in.txt"), s.file("out.txt"));
    std::fs::write(&input, "a\nb\n").unwrap();
    let source = source_config(&input, "lines");
    let create = json!({"name": "source", "config": source});
    let (status, created) = s.api.call(Method::POST, "/connectors", Some(create)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let mut config = source.clone();
    config["name"] = json!("source");
    let info = json!({"name": "source", "config": config,
        "tasks": [{"connector": "source", "task": 0}], "type": "source"});
    assert_eq!(created, info);

    // Created through PUT .../config: 201 with its Location.
    let sink = json!({"connector.class": SINK, "file": out.display().to_string(),
        "topics": "lines", "value.converter": "string"});
    let (status, headers, body) = s
        .api
        .raw(Method::PUT, "/connectors/sink/config", Some(sink), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers[header::LOCATION], "/connectors/sink");
    assert_eq!(body["type"], "sink");
    assert_eq!(wait_for_lines(&out, 2).await, "a\nb\n");

    assert_eq!(s.api.get("/connectors").await, json!(["sink", "source"]));
    assert_eq!(s.api.get("/connectors/source").await, info);
    assert_eq!(s.api.get("/connectors/source/config").await, config);
    let status = s.api.wait_state("source", "RUNNING").await;
    assert_eq!(
        status,
        json!({"name": "source", "type": "source",
               "connector": {"state": "RUNNING", "worker_id": "standalone"},
               "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "standalone"}]})
    );
    s.api.wait_state("sink", "RUNNING").await;
    let expanded = s.api.get("/connectors?expand=status").await;
    assert_eq!(expanded["source"], json!({ "status": status }));
    assert_eq!(expanded["sink"]["status"]["type"], "sink");
    let both = s.api.get("/connectors?expand=info&expand=status").await;
    assert_eq!(both["source"], json!({"info": info, "status": status}));

    let file = input.display().to_string();
    assert_eq!(
        s.api.get("/connectors/source/tasks").await,
        json!([{"id": {"connector": "source", "task": 0},
                "config": {"file": file, "topic": "lines"}}])
    );
    let sink_tasks = s.api.get("/connectors/sink/tasks").await;
    assert_eq!(sink_tasks[0]["id"], json!({"connector": "sink", "task": 0}));
    assert_eq!(sink_tasks[0]["config"]["topics"], "lines");
    assert_eq!(
        s.api.get("/connectors/source/tasks/0/status").await,
        json!({"id": 0, "state": "RUNNING", "worker_id": "standalone"})
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_are_replaced_and_patched_and_connectors_deleted() {
    let s = setup(&["lines"], None).await;
    let (input, out) = pipeline(&s).await;
    append(&input, "a\n");
    assert_eq!(wait_for_lines(&out, 1).await, "a\n");

    // A new config: 200, and the sink goes on from its committed offsets,
    // into the new file.
    let out2 = s.file("out2.txt");
    let mut replaced = s.api.get("/connectors/sink/config").await;
    replaced["file"] = json!(out2.display().to_string());
    replaced["key.converter"] = json!("string");
    let path = "/connectors/sink/config";
    let (status, body) = s.api.call(Method::PUT, path, Some(replaced)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["config"]["file"], out2.display().to_string());
    append(&input, "b\n");
    assert_eq!(wait_for_lines(&out2, 1).await, "b\n");

    // A patch: keys set, a null one removed, the others kept.
    let out3 = s.file("out3.txt");
    let patch = json!({"file": out3.display().to_string(), "key.converter": null});
    let (status, body) = s.api.call(Method::PATCH, path, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["config"]["file"], out3.display().to_string());
    assert_eq!(body["config"]["topics"], "lines");
    assert_eq!(
        body["config"].get("key.converter"),
        None::<&Value>,
        "{body}"
    );
    assert_eq!(s.api.get(path).await, body["config"]);
    append(&input, "c\n");
    assert_eq!(wait_for_lines(&out3, 1).await, "c\n");
    assert_eq!(
        (text(&out), text(&out2)),
        ("a\n".to_string(), "b\n".to_string())
    );

    let (status, body) = s.api.call(Method::DELETE, "/connectors/source", None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let answer = s.api.call(Method::GET, "/connectors/source", None).await;
    assert_eq!(answer, not_found("Connector source not found"));
    assert_eq!(s.api.get("/connectors").await, json!(["sink"]));
    append(&input, "d\n");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(read_topic(&s.client, "lines", 3).await, ["a", "b", "c"]);
    s.finish().await;
}
