//! Record timestamps: milliseconds since the Unix epoch, as Kafka's.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock as a record timestamp; 0 if the clock is before 1970.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
