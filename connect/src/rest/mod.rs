//! Kafka Connect's REST API over a worker, standalone
//! ([`Worker`](crate::worker::Worker)) or
//! distributed ([`DistributedWorker`](crate::worker::distributed::DistributedWorker)),
//! both behind [`Herder`]: the same paths, payloads, status codes and error
//! bodies as Kafka Connect 3.x and 4.x, so its users' scripts, curl lines
//! and tools work against spool unchanged.
//!
//! This module only maps HTTP onto the worker's operations: it parses
//! paths, query parameters and JSON bodies (`response`, so that bad input
//! gets Kafka's JSON error like everything else), calls one method of the
//! worker, and shapes its answer. Connectors and their lifecycle are in
//! `connectors`, offsets in `offsets`, plugins and config validation in
//! `plugins`. It never reaches into the worker's state. A distributed
//! worker refuses a change while its group rebalances with Kafka's 409.
//!
//! Authentication: when the worker config has `rest.auth.token`, every
//! request must carry `Authorization: Bearer <token>`, or is answered 401
//! with Kafka's error body. The server listens on the worker config's
//! `listeners` (default `http://127.0.0.1:8083`).
//!
//! Where spool goes beyond Kafka: offsets may be altered or reset on a
//! running connector (its tasks stop, the change is applied, they start
//! again), where Kafka requires the connector to be STOPPED; request
//! bodies are read as JSON whatever their `Content-Type`.

mod connectors;
mod herder;
mod offsets;
mod plugins;
mod response;

pub use herder::Herder;

/// For clients of the API (`spool connect`), which build the same paths.
pub use response::encode_segment;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::response::{json, json_errors, ApiError};
use crate::api::Password;
use crate::worker::{listener_address, WorkerConfig, LISTENERS};
use crate::{ConnectError, Result};

/// The cluster id spool's Kafka listener gives Kafka clients (in its
/// Metadata answers), and so what `GET /` reports as Kafka Connect
/// reports its Kafka cluster's.
pub const KAFKA_CLUSTER_ID: &str = "spool";

/// What the handlers share.
#[derive(Clone)]
struct Rest {
    worker: Herder,
    /// `rest.auth.token`, if set.
    token: Option<Arc<Password>>,
}

/// The REST API over `worker` as an axum router, for a program that
/// serves it itself (beside other routes, say); [`RestServer`] serves it
/// on the worker's `listeners`.
pub fn router(worker: impl Into<Herder>) -> Router {
    let worker = worker.into();
    let token = worker.config().rest_auth_token.clone().map(Arc::new);
    let rest = Rest { worker, token };
    Router::new()
        .route("/", get(server_info))
        .route(
            "/connectors",
            get(connectors::list).post(connectors::create),
        )
        .route(
            "/connectors/:name",
            get(connectors::info).delete(connectors::delete),
        )
        .route(
            "/connectors/:name/config",
            get(connectors::config)
                .put(connectors::put_config)
                .patch(connectors::patch_config),
        )
        .route("/connectors/:name/status", get(connectors::status))
        .route("/connectors/:name/tasks", get(connectors::tasks))
        .route(
            "/connectors/:name/tasks/:task/status",
            get(connectors::task_status),
        )
        .route(
            "/connectors/:name/tasks/:task/restart",
            post(connectors::restart_task),
        )
        .route("/connectors/:name/pause", put(connectors::pause))
        .route("/connectors/:name/resume", put(connectors::resume))
        .route("/connectors/:name/stop", put(connectors::stop))
        .route("/connectors/:name/restart", post(connectors::restart))
        .route(
            "/connectors/:name/offsets",
            get(offsets::get)
                .patch(offsets::alter)
                .delete(offsets::reset),
        )
        .route("/connector-plugins", get(plugins::list))
        .route(
            "/connector-plugins/:plugin/config/validate",
            put(plugins::validate),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(rest.clone(), authenticate))
        .layer(middleware::map_response(json_errors))
        .with_state(rest)
}

/// `GET /`'s answer (Kafka's `ServerInfo`).
#[derive(Serialize)]
struct ServerInfo {
    version: &'static str,
    /// The commit spool was built from, when the build was told
    /// (`SPOOL_COMMIT` at build time).
    commit: &'static str,
    kafka_cluster_id: &'static str,
}

async fn server_info() -> Response {
    json(
        StatusCode::OK,
        &ServerInfo {
            version: env!("CARGO_PKG_VERSION"),
            commit: option_env!("SPOOL_COMMIT").unwrap_or("unknown"),
            kafka_cluster_id: KAFKA_CLUSTER_ID,
        },
    )
}

/// What Jersey, Kafka Connect's HTTP layer, answers for an unknown path.
async fn not_found() -> ApiError {
    ApiError::not_found("HTTP 404 Not Found")
}

/// Lets a request through only with the bearer token, when one is set.
async fn authenticate(State(rest): State<Rest>, request: Request, next: Next) -> Response {
    let Some(token) = &rest.token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credentials)| credentials.trim());
    let verdict = match given {
        None => Err(
            "Authentication required: send the header `Authorization: Bearer <rest.auth.token>`",
        ),
        Some(credentials) if same(credentials.as_bytes(), token.value().as_bytes()) => Ok(()),
        Some(_) => Err("Invalid bearer token"),
    };
    let refusal = match verdict {
        Ok(()) => return next.run(request).await,
        Err(refusal) => refusal,
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, refusal).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Whether two secrets are equal, in a time that does not tell how much
/// of a guess was right.
fn same(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

/// The REST API served on every address of a worker's `listeners`.
/// Dropping it stops the listeners as [`RestServer::stop`] does, without
/// waiting for them.
pub struct RestServer {
    addresses: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
}

/// The addresses of a worker config's `listeners`, bound but not served
/// yet: a program learns the ports the system chose for port 0 (a
/// distributed worker's id is its address) before it starts the worker
/// the API will serve.
pub struct RestListeners {
    listeners: Vec<(TcpListener, SocketAddr)>,
}

impl RestListeners {
    /// Binds every address of `config`'s `listeners`; a port in use fails
    /// before anything is served.
    pub async fn bind(config: &WorkerConfig) -> Result<RestListeners> {
        let mut listeners = Vec::new();
        for listener in &config.listeners {
            let address = listener_address(listener)
                .map_err(|reason| ConnectError::config(LISTENERS, reason))?;
            let listen_error = |source| ConnectError::Listen {
                address: address.clone(),
                source,
            };
            let bound = TcpListener::bind(&address).await.map_err(listen_error)?;
            let local = bound.local_addr().map_err(listen_error)?;
            listeners.push((bound, local));
        }
        Ok(RestListeners { listeners })
    }

    /// The bound addresses, in `listeners`' order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(_, local)| *local).collect()
    }
}

impl RestServer {
    /// Binds every address of `worker`'s `listeners` (a port in use fails
    /// the start before anything is served), then serves the API on them.
    pub async fn start(worker: impl Into<Herder>) -> Result<RestServer> {
        let worker = worker.into();
        let listeners = RestListeners::bind(worker.config()).await?;
        Ok(RestServer::serve(listeners, worker))
    }

    /// Serves the API over `worker` on listeners bound already.
    pub fn serve(listeners: RestListeners, worker: impl Into<Herder>) -> RestServer {
        let app = router(worker);
        let (stop, _) = watch::channel(false);
        let mut addresses = Vec::new();
        let mut servers = Vec::new();
        for (listener, local) in listeners.listeners {
            let mut stopped = stop.subscribe();
            let shutdown = async move {
                // Also when the server is dropped: the sender is gone.
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let served = axum::serve(listener, app.clone()).with_graceful_shutdown(shutdown);
            servers.push(tokio::spawn(async move { served.await }));
            tracing::info!(address = %local, "connect REST API listening");
            addresses.push(local);
        }
        RestServer {
            addresses,
            stop,
            servers,
        }
    }

    /// The addresses the API is served on, in `listeners`' order (with
    /// the ports the system chose for port 0).
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The URL of the first listener, for a client on this machine.
    pub fn url(&self) -> Option<String> {
        self.addresses
            .first()
            .map(|address| format!("http://{address}"))
    }

    /// Stops accepting connections, lets requests in progress finish, and
    /// waits for every listener to close.
    pub async fn stop(self) -> Result<()> {
        self.stop.send_replace(true);
        let mut outcome = Ok(());
        for (server, address) in self.servers.into_iter().zip(&self.addresses) {
            let failed = match server.await {
                Ok(Ok(())) => continue,
                Ok(Err(source)) => source,
                Err(e) => std::io::Error::other(e),
            };
            tracing::warn!(address = %address, error = %failed, "the REST listener failed");
            if outcome.is_ok() {
                outcome = Err(ConnectError::Listen {
                    address: address.to_string(),
                    source: failed,
                });
            }
        }
        outcome
    }
}
