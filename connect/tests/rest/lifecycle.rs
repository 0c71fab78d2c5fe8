//! Pause, resume, stop and restart through the API, each checked by the
//! lines that move (or do not) from a file source through a topic into a
//! file sink: none lost, none written twice.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::read_topic;
use crate::support::{flows, held, pipeline, setup, source_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_and_stopped_connectors_hold_the_data_until_resumed() {
    let s = setup(&["lines"], None).await;
    let (input, out) = pipeline(&s).await;
    let mut seen = flows(&input, &out, "", "a").await;

    let (status, body) = s
        .api
        .call(Method::PUT, "/connectors/source/pause", None)
        .await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, Value::Null));
    s.api.wait_state("source", "PAUSED").await;
    held(&input, &out, "b").await;
    let (status, _) = s
        .api
        .call(Method::PUT, "/connectors/source/resume", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The line written while paused comes first.
    seen = flows(&input, &out, &(seen + "b\n"), "c").await;

    // Stopped: the config stays, no task runs, and nothing moves.
    let (status, _) = s
        .api
        .call(Method::PUT, "/connectors/source/stop", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let stopped = json!({"name": "source", "type": "source", "tasks": [],
        "connector": {"state": "STOPPED", "worker_id": "standalone"}});
    assert_eq!(s.api.get("/connectors/source/status").await, stopped);
    assert_eq!(s.api.get("/connectors/source").await["tasks"], json!([]));
    assert_eq!(s.api.get("/connectors/source/tasks").await, json!([]));
    assert_eq!(
        s.api.get("/connectors/source/config").await["topic"],
        "lines"
    );
    held(&input, &out, "d").await;
    let (status, _) = s
        .api
        .call(Method::POST, "/connectors/source/restart", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let after = s.api.get("/connectors/source/status").await;
    assert_eq!(after, stopped, "a restart starts no stopped connector");

    // Paused from stopped: started, but moving nothing yet.
    s.api
        .call(Method::PUT, "/connectors/source/pause", None)
        .await;
    s.api.wait_state("source", "PAUSED").await;
    held(&input, &out, "e").await;
    s.api
        .call(Method::PUT, "/connectors/source/resume", None)
        .await;
    s.api.wait_state("source", "RUNNING").await;
    seen = flows(&input, &out, &(seen + "d\ne\n"), "f").await;
    assert_eq!(seen, "a\nb\nc\nd\ne\nf\n");
    assert_eq!(
        read_topic(&s.client, "lines", 6).await.len(),
        6,
        "no line twice"
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_resume_from_the_committed_offsets() {
    let s = setup(&["lines"], None).await;
    let (input, out) = pipeline(&s).await;
    let mut seen = flows(&input, &out, "", "a").await;

    let (status, body) = s
        .api
        .call(Method::POST, "/connectors/source/restart", None)
        .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    seen = flows(&input, &out, &seen, "b").await;

    let all = "/connectors/source/restart?includeTasks=true";
    let (status, plan) = s.api.call(Method::POST, all, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(plan["name"], "source");
    assert_eq!(plan["connector"]["state"], "RESTARTING", "{plan}");
    assert_eq!(plan["tasks"][0]["state"], "RESTARTING", "{plan}");
    s.api.wait_state("source", "RUNNING").await;
    seen = flows(&input, &out, &seen, "c").await;

    let failed_only = "/connectors/source/restart?includeTasks=true&onlyFailed=true";
    let (status, plan) = s.api.call(Method::POST, failed_only, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        plan["connector"]["state"], "RUNNING",
        "nothing failed: {plan}"
    );
    assert_eq!(plan["tasks"][0]["state"], "RUNNING", "{plan}");

    let task = "/connectors/source/tasks/0/restart";
    let (status, body) = s.api.call(Method::POST, task, None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    s.api.wait_state("source", "RUNNING").await;
    seen = flows(&input, &out, &seen, "d").await;
    assert_eq!(seen, "a\nb\nc\nd\n");
    assert_eq!(
        read_topic(&s.client, "lines", 4).await,
        ["a", "b", "c", "d"],
        "no line twice"
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_is_restarted_with_only_failed() {
    let s = setup(&[], None).await;
    let input = s.file("in.txt");
    std::fs::write(&input, "x\ny\n").unwrap();
    // The topic does not exist yet: producing to it fails the task.
    let create = json!({"name": "late", "config": source_config(&input, "late")});
    s.api.call(Method::POST, "/connectors", Some(create)).await;
    let failed = s
        .api
        .wait("/connectors/late/status", |s| {
            s["tasks"][0]["state"] == "FAILED"
        })
        .await;
    assert_eq!(failed["connector"]["state"], "RUNNING", "{failed}");
    let trace = failed["tasks"][0]["trace"].as_str().unwrap_or_default();
    assert!(trace.contains("late"), "{failed}");
    let task = s.api.get("/connectors/late/tasks/0/status").await;
    assert_eq!(task["state"], "FAILED");

    s.client.admin().create_topic("late", 1, &[]).await.unwrap();
    let path = "/connectors/late/restart?includeTasks=true&onlyFailed=true";
    let (status, plan) = s.api.call(Method::POST, path, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(plan["tasks"][0]["state"], "RESTARTING", "{plan}");
    assert_eq!(plan["tasks"][0].get("trace"), None, "{plan}");
    s.api.wait_state("late", "RUNNING").await;
    assert_eq!(read_topic(&s.client, "late", 2).await, ["x", "y"]);
    s.finish().await;
}
