//! The Kafka listener's request decoder: a frame (without its length
//! prefix) is split into its header and a served API's body exactly as
//! the listener does before answering. Whatever the bytes, it decodes or
//! returns the error that closes the connection, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spool_broker::kafka::decode_request(bytes::Bytes::copy_from_slice(data));
});
