//! One client connection: length-prefixed request frames in, responses
//! out in the same order.
//!
//! Kafka's clients send several requests on a connection without waiting
//! (up to five Produce requests in flight, `max.in.flight.requests.per.
//! connection`) and rely on the responses coming back in request order.
//! Consecutive Produce requests are pipelined: each is proposed to its
//! partitions as soon as it arrives, in arrival order (so an idempotent
//! producer's batches reach each partition's log in sequence order), and
//! answered once committed, while the next is proposed. Any other request
//! waits until every request before it is answered, and the requests
//! after it wait until it is answered, as Kafka's broker handles all of a
//! connection's requests (it mutes a connection until its response is
//! sent): a long-polling Fetch or a JoinGroup waiting for its group holds
//! only its own connection, and a request never sees the effects of a
//! later one.

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::versions::{self, PendingAnswer};
use super::Session;
use crate::{BrokerError, Result};

/// The smallest request: api key, version and correlation id.
const MIN_FRAME: usize = 8;

/// Produce requests of one connection proposed and not yet answered, at
/// most. Kafka's clients keep five in flight; past this many the
/// connection is not read until the oldest is answered.
const MAX_PIPELINED: usize = 16;

/// Answers requests on `stream` until the client closes it (`Ok`) or
/// sends something that cannot be answered (an error: the connection is
/// closed, as Kafka closes it).
pub(super) async fn serve_connection(session: &Session, stream: TcpStream) -> Result<()> {
    // Kafka describes a member's host as "/address".
    let host = stream
        .peer_addr()
        .map(|peer| format!("/{}", peer.ip()))
        .unwrap_or_default();
    let (reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    // Frames are read on a task of their own, so that reading the next
    // one and answering the last ones can wait together.
    let (frames_tx, mut frames) = mpsc::channel(1);
    let _reading = AbortOnDrop(tokio::spawn(read_frames(
        reader,
        session.config.max_request_bytes,
        frames_tx,
    )));
    let mut pending: FuturesOrdered<PendingAnswer> = FuturesOrdered::new();
    let served = loop {
        tokio::select! {
            frame = frames.recv(), if pending.len() < MAX_PIPELINED => {
                // The client closed the connection, or sent what cannot be
                // framed: what came before is answered all the same.
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => break Err(e),
                    None => break Ok(()),
                };
                if versions::is_produce(&frame) {
                    // A Produce that cannot be proposed closes the
                    // connection, once those before it are answered.
                    match versions::propose(session, &host, frame).await {
                        Ok(answer) => pending.push_back(answer),
                        Err(e) => break Err(e),
                    }
                    continue;
                }
                while let Some(answered) = pending.next().await {
                    send(&mut writer, answered?).await?;
                }
                send(&mut writer, versions::answer(session, &host, frame).await?).await?;
            }
            Some(answered) = pending.next(), if !pending.is_empty() => {
                send(&mut writer, answered?).await?;
            }
        }
    };
    while let Some(answered) = pending.next().await {
        send(&mut writer, answered?).await?;
    }
    served
}

/// Writes a response frame, if any, and sends it on at once.
async fn send(writer: &mut BufWriter<OwnedWriteHalf>, response: Option<BytesMut>) -> Result<()> {
    if let Some(response) = response {
        writer.write_all(&response).await.map_err(io)?;
        writer.flush().await.map_err(io)?;
    }
    Ok(())
}

/// Reads request frames (without their length prefix) into `frames` until
/// the client closes the connection (the channel closes) or a frame
/// cannot be read (its error is the last message).
async fn read_frames(
    reader: OwnedReadHalf,
    max_request_bytes: usize,
    frames: mpsc::Sender<Result<Bytes>>,
) {
    let mut reader = BufReader::new(reader);
    loop {
        let frame = match read_frame(&mut reader, max_request_bytes).await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        let failed = frame.is_err();
        if frames.send(frame).await.is_err() || failed {
            return;
        }
    }
}

/// The next frame; `None` when the client closed the connection between
/// two frames.
async fn read_frame(
    reader: &mut BufReader<OwnedReadHalf>,
    max_request_bytes: usize,
) -> Result<Option<Bytes>> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let length = i32::from_be_bytes(prefix);
    let length = usize::try_from(length).unwrap_or(0);
    if length < MIN_FRAME || length > max_request_bytes {
        return Err(BrokerError::InvalidRequest(format!(
            "a request frame of {length} bytes (accepted: {MIN_FRAME} to {max_request_bytes})"
        )));
    }
    let mut frame = BytesMut::zeroed(length);
    reader.read_exact(&mut frame).await.map_err(io)?;
    Ok(Some(frame.freeze()))
}

fn io(source: std::io::Error) -> BrokerError {
    BrokerError::Serve {
        what: "a Kafka connection".into(),
        source,
    }
}

/// Stops the frame reader when the connection's handler ends, however it
/// ends: the reader holds half of the socket, which stays open until both
/// halves are dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
