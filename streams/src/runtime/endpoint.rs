//! The instance's metrics endpoint (`StreamsConfig::metrics_listen`):
//! `GET /metrics` (any path) answers Prometheus' text format, as the
//! broker's `--metrics-listen` does, so one scrape config covers both.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::Metrics;
use crate::Result;

/// Answers scrapes until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    application: String,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return Ok(()),
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let body = metrics.render(&application);
        tokio::spawn(async move {
            // The request head (bounded) says nothing the answer needs.
            let mut head = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head)).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
