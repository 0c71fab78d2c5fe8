//! Idempotent producers' sequence numbers, as a batch header carries them.

/// `sequence` advanced by `count`, wrapping from `i32::MAX` to 0 as
/// Kafka's producers do.
pub fn next_sequence(sequence: i32, count: i32) -> i32 {
    let sum = i64::from(sequence) + i64::from(count);
    (sum % (i64::from(i32::MAX) + 1)) as i32
}
