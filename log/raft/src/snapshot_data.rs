//! The data of a partition snapshot as openraft moves it around.
//!
//! A snapshot's data is the log itself (see [`super::state_machine`]), so
//! reading it can mean reading gigabytes of segments. openraft asks for the
//! current snapshot at every start only to learn its description, and again
//! each time it sends one to a follower. [`SnapshotData`] therefore reads
//! the log on first access, not when it is handed out: a start costs
//! nothing, a send reads what it sends.

use std::io::{self, Cursor, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// Reads a snapshot's bytes from the log, when first needed.
type ReadLater = Box<dyn FnOnce() -> io::Result<Vec<u8>> + Send>;

/// Snapshot bytes: in memory (built, or being received), or still in the
/// log until something reads, seeks or writes.
pub struct SnapshotData {
    state: State,
}

enum State {
    Loaded(Cursor<Vec<u8>>),
    Unread(Option<ReadLater>),
}

impl SnapshotData {
    pub fn from_bytes(bytes: Vec<u8>) -> SnapshotData {
        SnapshotData {
            state: State::Loaded(Cursor::new(bytes)),
        }
    }

    /// Data that `read` produces on first access.
    pub fn read_later(read: impl FnOnce() -> io::Result<Vec<u8>> + Send + 'static) -> SnapshotData {
        SnapshotData {
            state: State::Unread(Some(Box::new(read))),
        }
    }

    /// The whole data (a received snapshot, about to be installed).
    pub fn into_bytes(mut self) -> io::Result<Vec<u8>> {
        self.loaded()?;
        match self.state {
            State::Loaded(cursor) => Ok(cursor.into_inner()),
            State::Unread(_) => Err(earlier_failure()),
        }
    }

    fn loaded(&mut self) -> io::Result<&mut Cursor<Vec<u8>>> {
        if let State::Unread(read) = &mut self.state {
            let read = read.take().ok_or_else(earlier_failure)?;
            self.state = State::Loaded(Cursor::new(read()?));
        }
        match &mut self.state {
            State::Loaded(cursor) => Ok(cursor),
            State::Unread(_) => Err(earlier_failure()),
        }
    }
}

/// A read that failed is not tried again: the data stays unavailable.
fn earlier_failure() -> io::Error {
    io::Error::other("an earlier read of the snapshot failed")
}

impl AsyncRead for SnapshotData {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().loaded() {
            Ok(cursor) => Pin::new(cursor).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for SnapshotData {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().loaded() {
            Ok(cursor) => Pin::new(cursor).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for SnapshotData {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        Pin::new(self.get_mut().loaded()?).start_seek(position)
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        match self.get_mut().loaded() {
            Ok(cursor) => Pin::new(cursor).poll_complete(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};

    #[tokio::test]
    async fn the_log_is_read_once_and_only_when_the_data_is_used() {
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&reads);
        let mut data = SnapshotData::read_later(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(b"header and batches".to_vec())
        });
        assert_eq!(
            reads.load(Ordering::SeqCst),
            0,
            "handing data out reads nothing"
        );
        data.seek(SeekFrom::Start(11)).await.unwrap();
        let mut rest = String::new();
        data.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "batches");
        assert_eq!(data.into_bytes().unwrap(), b"header and batches");
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_read_is_an_error_every_time() {
        let mut data = SnapshotData::read_later(|| Err(io::Error::other("segment gone")));
        let mut bytes = Vec::new();
        assert!(data.read_to_end(&mut bytes).await.is_err());
        assert!(data.read_to_end(&mut bytes).await.is_err());
    }
}
