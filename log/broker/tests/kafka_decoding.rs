//! Kafka request frames that fuzzing (`fuzz/`, target `kafka_request`)
//! found stopping the broker: each must decode to an error that closes
//! the one connection, and nothing more.

use bytes::Bytes;
use spool_broker::kafka::decode_request;

/// Protection tested: the decoders' first allocation bounded by the bytes
/// left (third_party/kafka-protocol/SPOOL_PATCH.md). Without it this
/// 14-byte frame made the decoder ask for 76 GB, and the failed
/// allocation aborted the process.
#[test]
fn a_metadata_request_declaring_a_billion_topics_is_refused() {
    // Metadata v8, correlation id 65536, an empty client id, then a topic
    // array declaring 0x3f000000 entries and holding none.
    let frame = [0, 3, 0, 8, 0, 1, 0, 0, 0, 0, 0x3f, 0, 0, 0];
    let error = decode_request(Bytes::copy_from_slice(&frame)).unwrap_err();
    assert!(
        error.to_string().contains("malformed Metadata v8"),
        "{error}"
    );
}

/// A frame shorter than a request header is refused (the listener checks
/// the length first; the decoder does not rely on it).
#[test]
fn a_frame_shorter_than_a_header_is_refused() {
    let error = decode_request(Bytes::from_static(&[0, 3, 0])).unwrap_err();
    assert!(
        error.to_string().contains("shorter than a request header"),
        "{error}"
    );
}
