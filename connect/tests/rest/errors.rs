//! Bad requests answered as Kafka Connect answers them: the status, and
//! `{"error_code", "message"}` with Kafka's message.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{message, not_found, setup, source_config, Setup};

/// A worker with one file source, `source`, on topic `lines`.
async fn with_source() -> Setup {
    let s = setup(&["lines"], None).await;
    let input = s.file("in.txt");
    std::fs::write(&input, "a\n").unwrap();
    let create = json!({"name": "source", "config": source_config(&input, "lines")});
    let (status, body) = s.api.call(Method::POST, "/connectors", Some(create)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_is_409_and_a_bad_config_400_listing_every_error() {
    let s = with_source().await;
    let input = s.file("in.txt");
    let again = json!({"name": "source", "config": source_config(&input, "lines")});
    let (status, body) = s.api.call(Method::POST, "/connectors", Some(again)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({"error_code": 409, "message": "Connector source already exists"})
        )
    );

    let invalid = json!({"name": "bad", "config": {
        "connector.class": "FileStreamSource", "topic": "lines", "tasks.max": "0"}});
    let (status, body) = s.api.call(Method::POST, "/connectors", Some(invalid)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error_code"], 400);
    let text = message(&body);
    let opening = "Connector configuration is invalid and contains the following 2 error(s):";
    assert!(text.starts_with(opening), "{text}");
    assert!(
        text.contains("missing required configuration \"file\""),
        "{text}"
    );
    assert!(text.contains("tasks.max: invalid value `0`"), "{text}");
    let answer = s.api.call(Method::GET, "/connectors/bad", None).await;
    assert_eq!(
        answer,
        not_found("Connector bad not found"),
        "nothing was created"
    );

    for (body, says) in [
        (
            json!({"name": "x", "config": {"connector.class": "com.example.Nope"}}),
            "com.example.Nope",
        ),
        (
            json!({"config": {"connector.class": "FileStreamSource"}}),
            "Connector name is required",
        ),
        (
            json!({"name": "a/b", "config": {}}),
            "should not contain '/'",
        ),
        (
            json!({"name": "x", "config": {"name": "y"}}),
            "doesn't match",
        ),
        (json!(["not", "a", "request"]), "not the JSON expected"),
    ] {
        let (status, error) = s.api.call(Method::POST, "/connectors", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert!(message(&error).contains(says), "{says}: {error}");
    }
    let bad_value = json!({"topics": ["a", "b"]});
    let path = "/connectors/source/config";
    let (status, error) = s.api.call(Method::PATCH, path, Some(bad_value)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(message(&error).contains("`topics`"), "{error}");
    assert_eq!(s.api.get("/connectors").await, json!(["source"]));
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_connectors_tasks_and_paths_are_404() {
    let s = with_source().await;
    let offsets = json!({"offsets": [{"partition": {"filename": "f"}, "offset": {"position": 1}}]});
    for (method, path, body) in [
        (Method::GET, "/connectors/nope", None),
        (Method::DELETE, "/connectors/nope", None),
        (Method::GET, "/connectors/nope/config", None),
        (
            Method::PATCH,
            "/connectors/nope/config",
            Some(json!({"a": "b"})),
        ),
        (Method::GET, "/connectors/nope/status", None),
        (Method::GET, "/connectors/nope/tasks", None),
        (Method::GET, "/connectors/nope/tasks/0/status", None),
        (Method::POST, "/connectors/nope/tasks/0/restart", None),
        (Method::PUT, "/connectors/nope/pause", None),
        (Method::PUT, "/connectors/nope/resume", None),
        (Method::PUT, "/connectors/nope/stop", None),
        (Method::POST, "/connectors/nope/restart", None),
        (
            Method::POST,
            "/connectors/nope/restart?includeTasks=true",
            None,
        ),
        (Method::GET, "/connectors/nope/offsets", None),
        (Method::PATCH, "/connectors/nope/offsets", Some(offsets)),
        (Method::DELETE, "/connectors/nope/offsets", None),
    ] {
        let answer = s.api.call(method.clone(), path, body).await;
        assert_eq!(
            answer,
            not_found("Connector nope not found"),
            "{method} {path}"
        );
    }
    for (method, path) in [
        (Method::GET, "/connectors/source/tasks/5/status"),
        (Method::POST, "/connectors/source/tasks/5/restart"),
    ] {
        let answer = s.api.call(method, path, None).await;
        assert_eq!(answer, not_found("Task source-5 not found"), "{path}");
    }
    let answer = s
        .api
        .call(Method::GET, "/connectors/source/tasks/x/status", None)
        .await;
    assert_eq!(answer, not_found("Task source-x not found"));
    let bad_flag = "/connectors/source/restart?includeTasks=yes";
    let (status, body) = s.api.call(Method::POST, bad_flag, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("includeTasks"), "{body}");

    // What the routes do not know, answered as Kafka's HTTP layer does.
    let answer = s.api.call(Method::GET, "/no/such/path", None).await;
    assert_eq!(answer, not_found("HTTP 404 Not Found"));
    let (status, body) = s.api.call(Method::DELETE, "/connector-plugins", None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error_code": 405, "message": "HTTP 405 Method Not Allowed"})
        )
    );
    s.finish().await;
}
