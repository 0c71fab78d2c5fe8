//! One client connection: length-prefixed request frames in, responses
//! out in the same order.
//!
//! Requests of a connection are answered one at a time, as Kafka's broker
//! does (it mutes a connection until its response is sent): clients rely
//! on responses arriving in request order, and a long-polling Fetch or a
//! JoinGroup waiting for the group holds only its own connection.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use super::{versions, Session};
use crate::{BrokerError, Result};

/// The smallest request: api key, version and correlation id.
const MIN_FRAME: usize = 8;

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
    let mut reader = BufReader::new(reader);
    let mut writer = BufWriter::new(writer);
    let io = |source| BrokerError::Serve {
        what: "a Kafka connection".into(),
        source,
    };
    loop {
        let mut prefix = [0u8; 4];
        match reader.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(io(e)),
        }
        let length = i32::from_be_bytes(prefix);
        let length = usize::try_from(length).unwrap_or(0);
        if length < MIN_FRAME || length > session.config.max_request_bytes {
            return Err(BrokerError::InvalidRequest(format!(
                "a request frame of {length} bytes (accepted: {MIN_FRAME} to {})",
                session.config.max_request_bytes
            )));
        }
        let mut frame = BytesMut::zeroed(length);
        reader.read_exact(&mut frame).await.map_err(io)?;
        if let Some(response) = versions::answer(session, &host, frame.freeze()).await? {
            writer.write_all(&response).await.map_err(io)?;
            writer.flush().await.map_err(io)?;
        }
    }
}
