//! `/connectors/{name}/offsets`: a connector's committed offsets read
//! (`GET`), altered (`PATCH`, with `GET`'s body) and reset (`DELETE`),
//! with Kafka Connect's bodies and messages (KIP-875). Unlike Kafka, the
//! connector need not be stopped: see `worker::offset_admin`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::response::{json, parse_json, ApiError};
use super::Rest;
use crate::worker::ConnectorOffsets;

type Reply = Result<Response, ApiError>;

/// The answer of an alteration or a reset (Kafka's `Message`).
#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// `GET /connectors/{name}/offsets`: `{"offsets": [{"partition", "offset"}]}`.
pub(super) async fn get(State(rest): State<Rest>, Path(name): Path<String>) -> Reply {
    let offsets = rest.worker.connector_offsets(&name).await?;
    Ok(json(StatusCode::OK, &offsets))
}

/// `PATCH /connectors/{name}/offsets`: sets the offsets given (a `null`
/// offset forgets its partition's).
pub(super) async fn alter(
    State(rest): State<Rest>,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let request: ConnectorOffsets = parse_json(&body)?;
    if request.offsets.is_empty() {
        return Err(ApiError::bad_request(
            "Partitions / offsets need to be provided for an alter offsets request",
        ));
    }
    let complete = rest
        .worker
        .alter_connector_offsets(&name, request.offsets)
        .await?;
    let message = match complete {
        true => "The offsets for this connector have been altered successfully",
        false => {
            "The Connect framework-managed offsets for this connector have been altered \
             successfully. However, if this connector manages offsets externally, they will \
             need to be manually altered in the system that the connector uses."
        }
    };
    Ok(json(StatusCode::OK, &Message { message }))
}

/// `DELETE /connectors/{name}/offsets`: forgets every offset, so the
/// connector reads from the start.
pub(super) async fn reset(State(rest): State<Rest>, Path(name): Path<String>) -> Reply {
    let complete = rest.worker.reset_connector_offsets(&name).await?;
    let message = match complete {
        true => "The offsets for this connector have been reset successfully",
        false => {
            "The Connect framework-managed offsets for this connector have been reset \
             successfully. However, if this connector manages offsets externally, they will \
             need to be manually reset in the system that the connector uses."
        }
    };
    Ok(json(StatusCode::OK, &Message { message }))
}
