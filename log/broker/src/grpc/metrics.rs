//! Prometheus metrics: request counts and latencies per RPC, bytes in and
//! out, partition offsets and sizes, and consumer-group lag, served as text
//! on a small HTTP endpoint (`GET /metrics`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::RPC_NAMES;
use crate::broker::Broker;
use spool_protocol::proto::*;

/// Latency histogram bucket bounds, in seconds: from a fast fetch to a
/// long-polling one.
const BUCKETS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Default)]
struct RpcStats {
    count: AtomicU64,
    latency_micros: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
}

/// Counters the gRPC service updates on every call.
pub struct Metrics {
    rpcs: HashMap<&'static str, RpcStats>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            rpcs: RPC_NAMES
                .iter()
                .map(|n| (*n, RpcStats::default()))
                .collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn record(&self, rpc: &'static str, latency: Duration, bytes_in: u64, bytes_out: u64) {
        if let Some(stats) = self.rpcs.get(rpc) {
            stats.count.fetch_add(1, Ordering::Relaxed);
            stats
                .latency_micros
                .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
            let seconds = latency.as_secs_f64();
            for (bound, bucket) in BUCKETS.iter().zip(&stats.buckets) {
                if seconds <= *bound {
                    bucket.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of these counters and of the broker's
    /// partitions and groups.
    pub fn render(&self, broker: &Broker) -> String {
        let mut out = String::new();
        self.render_rpcs(&mut out);
        let _ = writeln!(
            out,
            "# TYPE spool_bytes_in_total counter\nspool_bytes_in_total {}",
            self.bytes_in.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE spool_bytes_out_total counter\nspool_bytes_out_total {}",
            self.bytes_out.load(Ordering::Relaxed)
        );
        render_partitions(&mut out, broker);
        render_lag(&mut out, broker);
        out
    }

    fn render_rpcs(&self, out: &mut String) {
        let _ = writeln!(out, "# TYPE spool_requests_total counter");
        for name in RPC_NAMES {
            let _ = writeln!(
                out,
                "spool_requests_total{{rpc=\"{name}\"}} {}",
                self.rpcs[name].count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE spool_request_seconds histogram");
        for name in RPC_NAMES {
            let stats = &self.rpcs[name];
            for (bound, bucket) in BUCKETS.iter().zip(&stats.buckets) {
                let _ = writeln!(
                    out,
                    "spool_request_seconds_bucket{{rpc=\"{name}\",le=\"{bound}\"}} {}",
                    bucket.load(Ordering::Relaxed)
                );
            }
            let count = stats.count.load(Ordering::Relaxed);
            let sum = stats.latency_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "spool_request_seconds_bucket{{rpc=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "spool_request_seconds_sum{{rpc=\"{name}\"}} {sum}");
            let _ = writeln!(out, "spool_request_seconds_count{{rpc=\"{name}\"}} {count}");
        }
    }
}

fn render_partitions(out: &mut String, broker: &Broker) {
    let mut rows = Vec::new();
    for name in broker.topic_names() {
        let Some(topic) = broker.topic(&name) else {
            continue;
        };
        for p in topic.partitions() {
            rows.push((
                name.clone(),
                p.index,
                p.log.log_start_offset(),
                p.log.log_end_offset(),
                p.log.size_bytes(),
            ));
        }
    }
    for (metric, help) in [
        ("spool_partition_log_start_offset", "first readable offset"),
        (
            "spool_partition_log_end_offset",
            "offset of the next record",
        ),
        ("spool_partition_size_bytes", "bytes of all segments"),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} gauge");
        for (topic, partition, start, end, size) in &rows {
            let value = match metric {
                "spool_partition_log_start_offset" => start,
                "spool_partition_log_end_offset" => end,
                _ => size,
            };
            let _ = writeln!(
                out,
                "{metric}{{topic=\"{topic}\",partition=\"{partition}\"}} {value}"
            );
        }
    }
}

fn render_lag(out: &mut String, broker: &Broker) {
    let _ = writeln!(out, "# HELP spool_consumer_group_lag records between a group's committed offset and the log end");
    let _ = writeln!(out, "# TYPE spool_consumer_group_lag gauge");
    for (group, topic, index, committed) in broker.groups().committed_offsets() {
        let Ok(partition) = broker.partition(&topic, index) else {
            continue;
        };
        let lag = partition.high_watermark().saturating_sub(committed);
        let _ = writeln!(
            out,
            "spool_consumer_group_lag{{group=\"{}\",topic=\"{topic}\",partition=\"{index}\"}} {lag}",
            label(&group)
        );
    }
}

/// Escapes a label value: group ids are free text.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` (any path, in fact) until `shutdown` completes.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    broker: Arc<Broker>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => return,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let (broker, metrics) = (Arc::clone(&broker), Arc::clone(&metrics));
        tokio::spawn(async move {
            // Read the request head (bounded); its content does not matter.
            let mut head = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head)).await;
            let body = metrics.render(&broker);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Bytes of record data a message carries, for the traffic counters.
pub trait Payload {
    fn payload_bytes(&self) -> u64 {
        0
    }
}

impl Payload for ProduceRequest {
    fn payload_bytes(&self) -> u64 {
        self.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.records.len() as u64)
            .sum()
    }
}

impl Payload for FetchResponse {
    fn payload_bytes(&self) -> u64 {
        self.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.records.len() as u64)
            .sum()
    }
}

macro_rules! no_payload {
    ($($t:ty),*) => { $(impl Payload for $t {})* };
}

no_payload!(
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    ProduceResponse,
    FetchRequest,
    ListOffsetsRequest,
    ListOffsetsResponse,
    MetadataRequest,
    MetadataResponse,
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    AlterConfigsRequest,
    AlterConfigsResponse,
    CreatePartitionsRequest,
    CreatePartitionsResponse,
    DeleteRecordsRequest,
    DeleteRecordsResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    SyncGroupRequest,
    SyncGroupResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    ListGroupsRequest,
    ListGroupsResponse,
    DescribeGroupsRequest,
    DeleteGroupRequest,
    DeleteGroupResponse,
    ClusterStatusRequest,
    ClusterStatusResponse,
    JoinClusterRequest,
    AdvertiseListenerRequest,
    MovePartitionRequest,
    ClusterChangeResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    DescribeGroupsResponse,
    AddPartitionsToTxnRequest,
    AddOffsetsToTxnRequest,
    EndTxnRequest,
    EndTxnResponse,
    VerifyTxnPartitionRequest,
    DescribeTransactionsRequest,
    DescribeTransactionsResponse,
    ListTransactionsRequest,
    ListTransactionsResponse,
    AbortTransactionRequest,
    TxnOffsetCommitRequest,
    TxnResponse,
    WriteTxnMarkersRequest,
    WriteTxnMarkersResponse
);
