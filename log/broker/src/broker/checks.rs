//! Checks of request fields that several kinds of request carry, so that
//! groups, transactions and markers refuse bad values alike.

use crate::{BrokerError, Result};

/// Refuses a group id that cannot be stored.
pub(crate) fn validate_group_id(group: &str) -> Result<()> {
    validate_key("group id", group)
}

/// Refuses a transactional id that cannot be stored.
pub(crate) fn validate_transactional_id(id: &str) -> Result<()> {
    validate_key("transactional id", id)
}

/// Coordinator keys are Kafka strings: at most 65535 bytes, and never
/// empty (the empty id means "none" on the wire).
fn validate_key(what: &str, key: &str) -> Result<()> {
    if key.is_empty() || key.len() > u16::MAX as usize {
        return Err(BrokerError::InvalidRequest(format!(
            "a {what} must be 1 to 65535 bytes"
        )));
    }
    Ok(())
}

/// A producer epoch from a request, refused when it does not fit.
pub(crate) fn epoch_of(epoch: i32) -> Result<i16> {
    i16::try_from(epoch)
        .map_err(|_| BrokerError::InvalidRequest(format!("producer epoch {epoch} out of range")))
}
