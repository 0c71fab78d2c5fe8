//! Answers in Kafka Connect's shapes: JSON bodies, and every error as
//! `{"error_code": <status>, "message": <text>}`, whoever produced it (a
//! handler, or axum for an unknown path or a wrong method); and the
//! request parts the handlers read themselves (JSON bodies, query
//! parameters), so that bad input gets the same JSON error as the rest.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ConnectError;

const JSON: &str = "application/json";

/// The most of an error body that axum wrote which is kept as the
/// message: axum's own messages are a line or two.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// An error answer: a status and Kafka Connect's message.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message)
    }
}

/// Kafka Connect's status and message for each error of the worker.
impl From<ConnectError> for ApiError {
    fn from(error: ConnectError) -> ApiError {
        match &error {
            ConnectError::UnknownConnector(name) => {
                ApiError::not_found(format!("Connector {name} not found"))
            }
            ConnectError::UnknownTask { connector, task } => {
                ApiError::not_found(format!("Task {connector}-{task} not found"))
            }
            ConnectError::ConnectorExists(name) => ApiError::new(
                StatusCode::CONFLICT,
                format!("Connector {name} already exists"),
            ),
            ConnectError::Rebalancing => ApiError::new(StatusCode::CONFLICT, error.to_string()),
            ConnectError::InvalidConfig { .. } | ConnectError::BadRequest(_) => {
                ApiError::bad_request(error.to_string())
            }
            _ => ApiError::internal(error.trace()),
        }
    }
}

/// `body` as a JSON answer.
pub(crate) fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
            bytes,
        )
            .into_response(),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the answer could not be encoded: {e}"),
        ),
    }
}

/// `body` as a JSON value, for answers assembled from several parts.
pub(crate) fn to_value(body: &impl Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(body)
        .map_err(|e| ApiError::internal(format!("the answer could not be encoded: {e}")))
}

fn error_response(status: StatusCode, message: &str) -> Response {
    // A `Value` always renders, so an error answer cannot fail itself.
    let body = serde_json::json!({ "error_code": status.as_u16(), "message": message });
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
        body.to_string(),
    )
        .into_response()
}

/// Rewrites an error answer that is not JSON yet (axum's own: an unknown
/// path, a wrong method, a path parameter that does not decode) into
/// Kafka's error body; its text, or Jersey's `HTTP 404 Not Found` when it
/// has none, is the message. Other headers (a 405's `Allow`) stay.
pub(crate) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(JSON));
    if !is_error || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let message = match text.is_empty() {
        true => format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        ),
        false => text,
    };
    let mut answer = error_response(status, &message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// A request body as the JSON `T`; anything else is a 400 saying why.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the request body is not the JSON expected: {e}"))
    })
}

/// A query string's parameters in their order, decoded (`+` is a space,
/// `%XX` a byte).
pub(crate) fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// A boolean query parameter (the last one, if given twice): `false`
/// when absent, as Kafka's defaults are; a value other than `true` or
/// `false` is a 400.
pub(crate) fn flag(params: &[(String, String)], name: &str) -> Result<bool, ApiError> {
    match params.iter().rev().find(|(key, _)| key == name) {
        None => Ok(false),
        Some((_, value)) if value.eq_ignore_ascii_case("true") => Ok(true),
        Some((_, value)) if value.eq_ignore_ascii_case("false") => Ok(false),
        Some((_, value)) => Err(ApiError::bad_request(format!(
            "query parameter {name} must be true or false, not `{value}`"
        ))),
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes[i] {
            b'%' => bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (byte, None) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `segment` percent-encoded for a URL path (RFC 3986's unreserved
/// characters stay).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_decode_and_flags_are_strict() {
        let params = query_params(Some(
            "expand=status&expand=info&includeTasks=TRUE&x=a%2Fb+c",
        ));
        assert_eq!(
            params,
            [
                ("expand".to_string(), "status".to_string()),
                ("expand".to_string(), "info".to_string()),
                ("includeTasks".to_string(), "TRUE".to_string()),
                ("x".to_string(), "a/b c".to_string()),
            ]
        );
        assert!(flag(&params, "includeTasks").unwrap());
        assert!(!flag(&params, "onlyFailed").unwrap());
        let bad = flag(&query_params(Some("onlyFailed=yes")), "onlyFailed").unwrap_err();
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(query_params(None).is_empty());
        assert_eq!(decode("100%"), "100%");
    }

    #[test]
    fn worker_errors_map_onto_kafkas_statuses_and_messages() {
        let cases = [
            (
                ConnectError::UnknownConnector("x".into()),
                StatusCode::NOT_FOUND,
                "Connector x not found",
            ),
            (
                ConnectError::UnknownTask {
                    connector: "x".into(),
                    task: 3,
                },
                StatusCode::NOT_FOUND,
                "Task x-3 not found",
            ),
            (
                ConnectError::ConnectorExists("x".into()),
                StatusCode::CONFLICT,
                "Connector x already exists",
            ),
            (
                ConnectError::config("file", "missing"),
                StatusCode::BAD_REQUEST,
                "invalid configuration `file`: missing",
            ),
            (
                ConnectError::WorkerStopped,
                StatusCode::INTERNAL_SERVER_ERROR,
                "the worker has stopped",
            ),
            (
                ConnectError::Rebalancing,
                StatusCode::CONFLICT,
                "Cannot complete request because of a conflicting operation (e.g. worker \
                 rebalance)",
            ),
        ];
        for (error, status, message) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status, api.message.as_str()), (status, message));
        }
        assert_eq!(encode_segment("a b/ü"), "a%20b%2F%C3%BC");
    }
}
