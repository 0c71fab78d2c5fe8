//! Byte layouts the windowed stores share (time windows, sessions,
//! sliding windows, stream-stream joins): times as 8 bytes that sort as
//! the times do, keys behind their length so that one key's entries are
//! one range, and durations in milliseconds.

use std::time::Duration;

/// Milliseconds of `d`, at most a quarter of the range, so that window
/// bounds (a time plus or minus a few windows) cannot overflow.
pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis())
        .unwrap_or(i64::MAX)
        .min(i64::MAX / 4)
}

/// A time as 8 bytes whose byte order is the times' order (sign bit
/// flipped, big-endian).
pub(super) fn ordered(time: i64) -> [u8; 8] {
    ((time as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time [`ordered`] wrote into the first 8 bytes of `bytes` (which
/// callers slice to 8 bytes or more).
pub(super) fn from_ordered(bytes: &[u8]) -> i64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(&bytes[..8]);
    (u64::from_be_bytes(array) ^ (1 << 63)) as i64
}

/// `prefix`, the key's length (4 bytes, big-endian), the key: what the
/// entries of one key start with, so that no key's entries are a prefix
/// range of another's.
pub(super) fn key_prefixed(prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(29 + key.len());
    entry.push(prefix);
    entry.extend_from_slice(&(key.len() as u32).to_be_bytes());
    entry.extend_from_slice(key);
    entry
}
