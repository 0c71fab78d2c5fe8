//! spool-record: the record batch format, what producers encode once and
//! the log stores and serves without re-encoding.
//!
//! The lowest layer of spool: it knows bytes, not topics, files or
//! networks, and depends on no other spool crate.
//!
//! The layout is Kafka's v2 record batch, byte for byte, so the same bytes can
//! later be served over Kafka's wire protocol. spool stores its Raft term in
//! the partition-leader-epoch slot. All integers are big-endian.
//!
//! ```text
//! offset  size  field
//!      0     8  base offset            stamped by the leader on append
//!      8     4  batch length           bytes after this field
//!     12     4  raft term              stamped by the leader on append
//!     16     1  magic (= 2)
//!     17     4  crc32c                 over bytes 21..end
//!     21     2  attributes             compression (bits 0-2), timestamp type (3),
//!                                      transactional (4), control (5)
//!     23     4  last offset delta
//!     27     8  first timestamp
//!     35     8  max timestamp
//!     43     8  producer id            -1 when not idempotent
//!     51     2  producer epoch
//!     53     4  base sequence
//!     57     4  record count
//!     61     …  records (compressed as a whole when compression is set)
//! ```
//!
//! Each record: varint length, int8 attributes, varlong timestamp delta,
//! varint offset delta, varint key length + key (-1 = null), varint value
//! length + value (-1 = null), varint header count, and per header a varint
//! key length + UTF-8 key and a varint value length + value.
//!
//! Because the CRC starts at byte 21, stamping the base offset and the term
//! does not invalidate it: one CRC pass validates a batch, and the log never
//! recomputes it.

mod batch;
mod builder;
mod compression;
mod control;
mod error;
mod recompress;
mod records;
mod sequence;
mod time;
pub mod varint;

pub use batch::{
    batch_size, stamp, Attributes, BatchIter, RecordBatch, HEADER_LEN, LOG_OVERHEAD, MAGIC,
};
pub use builder::BatchBuilder;
pub use compression::Compression;
pub use control::{control_marker, control_marker_is_commit};
pub use error::{RecordError, Result};
pub use recompress::recompress;
pub use records::{Header, Record, Records};
pub use sequence::next_sequence;
pub use time::now_ms;
