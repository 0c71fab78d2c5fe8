//! What both ends of a gRPC connection agree on: message and frame limits,
//! flow-control windows, and accepting connections with Nagle off.

/// Largest gRPC message either way. Produce requests carry whole batches and
/// fetch responses up to the client's `max_bytes` (50 MiB by default, as in
/// Kafka), so tonic's 4 MiB default is far too small.
pub const MAX_MESSAGE_BYTES: usize = 128 << 20;

/// HTTP/2 flow-control windows of both ends. hyper's defaults (1 MiB per
/// connection on the server) hold fewer bytes than a producer's in-flight
/// requests (5 of 256 KiB in the benchmarks), so a sender would stop and
/// wait for window updates mid-request; these hold several full requests
/// and fetch responses. They bound buffered bytes per connection, not
/// allocations.
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;
pub const CONNECTION_WINDOW_BYTES: u32 = 32 << 20;

/// Largest HTTP/2 frame the server accepts (the default is 16 KiB): a
/// produce request of 256 KiB then travels in a few frames, not sixteen.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// Accepted connections as the stream tonic wants, with Nagle off: produce
/// and fetch responses are latency-bound.
pub fn nodelay_incoming(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}
