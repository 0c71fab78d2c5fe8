//! The HTTP side of `spool connect`'s REST commands: one JSON request to a
//! worker's REST API (Kafka Connect's paths), with hyper's client, and an
//! error status turned into the server's own message.

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Where a worker's REST API is, and the token it wants.
#[derive(clap::Args, Clone, Debug)]
pub struct RestArgs {
    /// The worker's REST API (its `listeners`).
    #[arg(
        long,
        env = "SPOOL_CONNECT_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    url: String,
    /// The worker's `rest.auth.token`, sent as a bearer token.
    #[arg(long, env = "SPOOL_CONNECT_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl RestArgs {
    pub fn client(&self) -> anyhow::Result<RestClient> {
        RestClient::new(&self.url, self.token.clone())
    }
}

/// A client of one worker's REST API.
pub struct RestClient {
    base: String,
    token: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl RestClient {
    pub fn new(url: &str, token: Option<String>) -> anyhow::Result<RestClient> {
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            bail!("--url must be an http:// URL (the REST API speaks HTTP), not `{url}`");
        }
        Ok(RestClient {
            base,
            token,
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Sends one request and returns the answer's JSON body (`None` when
    /// it has none, as a 202 or a 204); an error status is an error with
    /// the server's message.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Option<Value>> {
        let uri = format!("{}{path}", self.base);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri.as_str())
            .header(header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let payload = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(body)?)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .with_context(|| format!("building the request {method} {uri}"))?;
        let response = self
            .http
            .request(request)
            .await
            .with_context(|| format!("{method} {uri}: is a connect worker running there?"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer to {method} {uri}"))?
            .to_bytes();
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_client_error() || status.is_server_error() {
            let message = json
                .as_ref()
                .and_then(|answer| answer.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{status}: {message}");
        }
        if json.is_none() && !bytes.is_empty() {
            bail!(
                "{method} {uri} answered {status} with a body that is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(json)
    }
}

pub use spool_connect::rest::encode_segment as segment;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connector_name_is_one_path_segment() {
        assert_eq!(segment("my-connector_1.0~"), "my-connector_1.0~");
        assert_eq!(segment("a b/c?d"), "a%20b%2Fc%3Fd");
    }

    #[tokio::test]
    async fn only_http_urls_are_taken() {
        let error = RestClient::new("https://127.0.0.1:8443", None)
            .err()
            .unwrap();
        assert!(error.to_string().contains("http://"), "{error}");
        let client = RestClient::new("http://127.0.0.1:8083/", None).unwrap();
        assert_eq!(client.base, "http://127.0.0.1:8083");
    }
}
