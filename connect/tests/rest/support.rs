//! What the REST tests share: a worker on an embedded broker serving the
//! API on 127.0.0.1:0, an HTTP client that returns statuses and JSON
//! bodies as they came, and file helpers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use spool_broker::Node;
use spool_client::Client;
use spool_connect::api::Password;
use spool_connect::{RestServer, Worker, WorkerConfig};
use tempfile::TempDir;

use crate::common::{broker, wait_for_lines, PATIENCE};

pub const SOURCE: &str = "org.apache.kafka.connect.file.FileStreamSourceConnector";
pub const SINK: &str = "org.apache.kafka.connect.file.FileStreamSinkConnector";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A worker on an embedded broker, its REST API, and an HTTP client.
pub struct Setup {
    pub dir: TempDir,
    pub node: Node,
    pub client: Client,
    pub worker: Worker,
    pub server: RestServer,
    pub api: Api,
}

pub async fn setup(topics: &[&str], token: Option<&str>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), topics).await;
    let mut config = WorkerConfig::new(dir.path().join("connect.offsets"));
    config.offset_flush_interval = Duration::from_millis(100);
    config.listeners = vec!["http://127.0.0.1:0".to_string()];
    config.rest_auth_token = token.map(Password::new);
    let worker = Worker::start(client.clone(), config).await.unwrap();
    let server = RestServer::start(worker.clone()).await.unwrap();
    let api = Api::new(&server, token);
    Setup {
        dir,
        node,
        client,
        worker,
        server,
        api,
    }
}

impl Setup {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub async fn finish(self) {
        self.server.stop().await.unwrap();
        self.worker.shutdown().await.unwrap();
        self.node.shutdown().await.unwrap();
    }
}

pub struct Api {
    base: String,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    token: Option<String>,
}

impl Api {
    /// A client of `server`'s API, sending `token` with each request.
    pub fn new(server: &RestServer, token: Option<&str>) -> Api {
        Api {
            base: server.url().unwrap(),
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
            token: token.map(str::to_string),
        }
    }

    /// Sends a request with the configured token; the status and the JSON
    /// body (`null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.raw(method, path, body, self.token.as_deref()).await;
        (status, body)
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = body
            .map(|body| Bytes::from(serde_json::to_vec(&body).unwrap()))
            .unwrap_or_default();
        let response = self
            .http
            .request(request.body(Full::new(bytes)).unwrap())
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = match bytes.is_empty() {
            true => Value::Null,
            false => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{path}: {status} without JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            }),
        };
        (status, headers, value)
    }

    /// A GET that must answer 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// GET `path` until `done` holds for its answer.
    pub async fn wait(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let body = self.get(path).await;
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "GET {path}: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The connector's status once it and every task of it are `state`.
    pub async fn wait_state(&self, name: &str, state: &str) -> Value {
        self.wait(&format!("/connectors/{name}/status"), |s| {
            s["connector"]["state"] == state
                && s["tasks"].as_array().is_some_and(|tasks| {
                    !tasks.is_empty() && tasks.iter().all(|t| t["state"] == state)
                })
        })
        .await
    }
}

pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

pub fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A file source of `file` into `topic`, its lines as plain strings.
pub fn source_config(file: &Path, topic: &str) -> Value {
    json!({
        "connector.class": "FileStreamSource",
        "file": file.display().to_string(),
        "topic": topic,
        "value.converter": "string",
    })
}

pub fn not_found(message: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"error_code": 404, "message": message}),
    )
}

/// Appends `line` to the source's file and checks it arrives in `out`
/// after `before`, and nothing else does.
pub async fn flows(input: &Path, out: &Path, before: &str, line: &str) -> String {
    append(input, &format!("{line}\n"));
    let expected = format!("{before}{line}\n");
    let lines = expected.lines().count();
    assert_eq!(wait_for_lines(out, lines).await, expected);
    expected
}

/// Appends `line` and checks that `out` stays as it is meanwhile.
pub async fn held(input: &Path, out: &Path, line: &str) {
    let before = text(out);
    append(input, &format!("{line}\n"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(text(out), before, "`{line}` went through");
}

/// PATCHes `offsets` onto connector `name` and checks Kafka's answer.
pub async fn alter(api: &Api, name: &str, offsets: Value) {
    let path = format!("/connectors/{name}/offsets");
    let (status, body) = api
        .call(Method::PATCH, &path, Some(json!({ "offsets": offsets })))
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"message": "The offsets for this connector have been altered successfully"})
        )
    );
}

/// A file source `source` of `in.txt` into topic `lines` and a file sink
/// `sink` of `lines` into `out.txt`, created through the API, each line a
/// plain string; the two files.
pub async fn pipeline(s: &Setup) -> (PathBuf, PathBuf) {
    let (input, out) = (s.file("in.txt"), s.file("out.txt"));
    std::fs::write(&input, "").unwrap();
    let source = json!({"name": "source", "config": source_config(&input, "lines")});
    let (status, body) = s.api.call(Method::POST, "/connectors", Some(source)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sink = json!({"name": "sink", "config": {"connector.class": "FileStreamSink",
        "file": out.display().to_string(), "topics": "lines", "value.converter": "string"}});
    let (status, body) = s.api.call(Method::POST, "/connectors", Some(sink)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (input, out)
}

/// The message of an error body.
pub fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_default()
}
