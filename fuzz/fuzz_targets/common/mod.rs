//! Shared by the targets: turning arbitrary bytes into record batches that
//! pass the framing and CRC checks, so that the fuzzer explores what lies
//! behind them (a random input almost never carries a right CRC32C).

/// Bytes of a batch header before its records (Kafka's v2 layout).
const HEADER_LEN: usize = 61;
/// Bytes before a batch's length field ends: base offset and length.
const LOG_OVERHEAD: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// When the first byte's low bit is set, reframes the rest as record
/// batches with right lengths, magic and CRCs: the input is cut into
/// batches at the lengths it declares (the last one takes what is left)
/// and each is sealed. Otherwise returns the rest as it is, to test the
/// framing and CRC checks themselves.
pub fn batches(data: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 0 {
        return bytes;
    }
    let mut position = 0;
    while bytes.len() - position >= HEADER_LEN {
        let declared = i32::from_be_bytes(
            bytes[position + 8..position + 12]
                .try_into()
                .expect("four bytes"),
        );
        let left = bytes.len() - position;
        let size = usize::try_from(declared)
            .ok()
            .map(|length| length + LOG_OVERHEAD)
            .filter(|&size| (HEADER_LEN..=left).contains(&size))
            .unwrap_or(left);
        seal(&mut bytes[position..position + size]);
        position += size;
    }
    bytes
}

/// Makes `batch` (at least a header long) one well-framed v2 batch.
fn seal(batch: &mut [u8]) {
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[MAGIC_AT] = 2;
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}
