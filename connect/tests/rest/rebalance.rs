//! A distributed worker's REST API while its group rebalances: a change
//! is refused with Kafka's 409 and JSON body, a read is answered, and the
//! same change is taken once the group settles.
//!
//! The rebalance is held open on purpose: a member that is no worker
//! joins the group first (so it leads) and then never syncs, heartbeats
//! or rejoins, so the worker's join waits until the broker drops that
//! member after its session timeout.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::json;
use spool_client::proto::{ErrorCode, GroupProtocol, JoinGroupRequest};
use spool_client::Client;
use spool_connect::{DistributedConfig, DistributedWorker, RestServer, WorkerConfig};

use crate::common::{broker, PATIENCE};
use crate::support::{source_config, Api};

const GROUP: &str = "connect-rebalancing";

/// How long the silent member holds the group: long enough for every
/// request below to be sent inside it, short enough for a test.
const HELD_FOR: Duration = Duration::from_secs(8);

/// Joins `GROUP` as a member of the connect protocol that will never say
/// anything again.
async fn silent_member(client: &Client) {
    let request = JoinGroupRequest {
        group_id: GROUP.to_string(),
        member_id: String::new(),
        group_instance_id: String::new(),
        session_timeout_ms: HELD_FOR.as_millis() as u32,
        rebalance_timeout_ms: HELD_FOR.as_millis() as u32,
        protocols: vec![GroupProtocol {
            name: "spool-incremental-cooperative".to_string(),
            metadata: Default::default(),
        }],
        protocol_type: "connect".to_string(),
        client_id: "silent".to_string(),
        client_host: String::new(),
    };
    let joined = client.join_group(request).await.unwrap();
    assert_eq!(ErrorCode::from_raw(joined.error), ErrorCode::None);
    assert_eq!(
        joined.leader_id, joined.member_id,
        "the silent member leads"
    );
}

fn worker_config(dir: &std::path::Path) -> DistributedConfig {
    let mut worker = WorkerConfig::new(dir.join("unused.offsets"));
    worker.worker_id = "127.0.0.1:0".to_string();
    worker.group_id = GROUP.to_string();
    worker.listeners = vec!["http://127.0.0.1:0".to_string()];
    let mut config = DistributedConfig::new(worker);
    config.session_timeout = Duration::from_secs(6);
    config.heartbeat_interval = Duration::from_millis(500);
    config.status_storage_partitions = 1;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_during_a_rebalance_is_409_and_taken_once_the_group_settles() {
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = broker(dir.path(), &["lines"]).await;
    silent_member(&client).await;
    let held_since = Instant::now();
    let worker = DistributedWorker::start(client.clone(), worker_config(dir.path()))
        .await
        .unwrap();
    let server = RestServer::start(worker.clone()).await.unwrap();
    let api = Api::new(&server, None);

    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\n").unwrap();
    let create = json!({"name": "source", "config": source_config(&input, "lines")});
    let (status, body) = api
        .call(Method::POST, "/connectors", Some(create.clone()))
        .await;
    assert!(
        held_since.elapsed() < HELD_FOR,
        "the request came after the group could have settled; the test proves nothing"
    );
    let message = "Cannot complete request because of a conflicting operation (e.g. worker \
                   rebalance)";
    assert_eq!(
        (status, body),
        (
            StatusCode::CONFLICT,
            json!({"error_code": 409, "message": message})
        )
    );
    let (status, body) = api
        .call(Method::PUT, "/connectors/source/pause", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        api.get("/connectors").await,
        json!([]),
        "reads are answered"
    );

    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = api
            .call(Method::POST, "/connectors", Some(create.clone()))
            .await;
        if status == StatusCode::CREATED {
            break;
        }
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(Instant::now() < deadline, "the group never settled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        held_since.elapsed() >= Duration::from_secs(5),
        "taken only once the silent member was dropped"
    );
    api.wait_state("source", "RUNNING").await;

    server.stop().await.unwrap();
    worker.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}
