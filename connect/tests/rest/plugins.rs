//! `GET /`, the plugin list, config validation, and the bearer token.

use axum::http::{header, Method, StatusCode};
use serde_json::json;

use crate::support::{message, setup, SINK, SOURCE, VERSION};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_info_and_plugins_read_like_kafka_connects() {
    let s = setup(&[], None).await;
    let info = s.api.get("/").await;
    assert_eq!(info["version"], VERSION);
    assert_eq!(info["kafka_cluster_id"], "spool");
    assert!(info["commit"].is_string(), "{info}");

    let plugins = s.api.get("/connector-plugins").await;
    assert_eq!(
        plugins,
        json!([
            {"class": "io.spool.connect.datagen.DatagenConnector", "type": "source", "version": VERSION},
            {"class": "io.spool.connect.postgres.PostgresSinkConnector", "type": "sink", "version": VERSION},
            {"class": "io.spool.connect.postgres.PostgresSourceConnector", "type": "source", "version": VERSION},
            {"class": SINK, "type": "sink", "version": VERSION},
            {"class": SOURCE, "type": "source", "version": VERSION},
        ])
    );
    let all = s.api.get("/connector-plugins?connectorsOnly=false").await;
    let all = all.as_array().unwrap();
    assert_eq!(
        all[..5],
        plugins.as_array().unwrap()[..],
        "connectors first"
    );
    assert!(all.iter().any(|p| {
        p["class"] == "org.apache.kafka.connect.json.JsonConverter" && p["type"] == "converter"
    }));
    let kinds = ["sink", "source", "converter", "transformation", "predicate"];
    for plugin in all {
        assert!(kinds.iter().any(|k| plugin["type"] == *k), "{plugin}");
        assert_eq!(plugin["version"], VERSION);
    }
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_reports_every_key_with_its_definition_and_errors() {
    let s = setup(&[], None).await;
    let path = "/connector-plugins/FileStreamSource/config/validate";
    let body = json!({"name": "v", "topic": "t", "tasks.max": "0"});
    let (status, result) = s.api.call(Method::PUT, path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["name"], SOURCE);
    assert_eq!(result["error_count"], 2, "{result}");
    assert_eq!(result["groups"], json!(["Common"]));
    let configs = result["configs"].as_array().unwrap();
    let find = |name: &str| {
        configs
            .iter()
            .find(|c| c["value"]["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {result}"))
    };
    assert_eq!(
        find("file")["definition"],
        json!({"name": "file", "type": "STRING", "required": true, "default_value": null,
               "importance": "HIGH", "documentation": "Source filename.", "group": null,
               "width": "NONE", "display_name": "file", "dependents": [], "order": -1})
    );
    let file_errors = &find("file")["value"]["errors"];
    assert_eq!(
        file_errors.as_array().map(Vec::len),
        Some(1),
        "{file_errors}"
    );
    assert!(file_errors[0]
        .as_str()
        .unwrap()
        .contains("missing required"));
    assert_eq!(find("tasks.max")["definition"]["group"], "Common");
    assert_eq!(find("tasks.max")["definition"]["default_value"], "1");
    let errors = &find("tasks.max")["value"]["errors"];
    assert_eq!(errors.as_array().map(Vec::len), Some(1), "{errors}");
    assert_eq!(find("batch.size")["value"]["value"], "2000");
    assert_eq!(
        find("connector.class")["value"]["value"],
        "FileStreamSource"
    );
    assert_eq!(
        find("topic")["value"],
        json!({"name": "topic", "value": "t", "recommended_values": [], "errors": [],
               "visible": true})
    );

    let valid = json!({"name": "v", "file": "f", "topic": "t"});
    let (_, result) = s.api.call(Method::PUT, path, Some(valid)).await;
    assert_eq!(result["error_count"], 0, "{result}");
    let mismatch = json!({"connector.class": "FileStreamSink"});
    let (status, error) = s.api.call(Method::PUT, path, Some(mismatch)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&error).contains("does not match"), "{error}");
    let unknown = "/connector-plugins/com.example.Nope/config/validate";
    let (status, error) = s.api.call(Method::PUT, unknown, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error_code"], 400);
    assert!(message(&error).contains("com.example.Nope"), "{error}");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_request_must_carry_it() {
    let s = setup(&[], Some("s3cret")).await;
    let (status, headers, body) = s.api.raw(Method::GET, "/connectors", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body["error_code"], 401);
    assert!(message(&body).contains("Authorization: Bearer"), "{body}");
    let (status, _, body) = s
        .api
        .raw(Method::GET, "/connectors", None, Some("guess"))
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error_code": 401, "message": "Invalid bearer token"})
        )
    );
    let (status, _, _) = s.api.raw(Method::GET, "/no/such/path", None, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "no path is told to a stranger"
    );
    let (status, _, body) = s
        .api
        .raw(Method::GET, "/connectors", None, Some("s3cret"))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    // The client's own calls carry the token.
    assert_eq!(s.api.get("/").await["kafka_cluster_id"], "spool");
    s.finish().await;
}
