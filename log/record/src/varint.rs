//! Zig-zag variable-length integers, as used inside Kafka v2 records.

use crate::{RecordError, Result};

/// Appends `value` as a zig-zag varint (at most 10 bytes).
pub fn put_varlong(buf: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends `value` as a zig-zag varint (at most 5 bytes).
pub fn put_varint(buf: &mut Vec<u8>, value: i32) {
    put_varlong(buf, value as i64)
}

/// Number of bytes `put_varlong(value)` writes.
pub fn varlong_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// A cursor over a byte slice that decodes the primitives of the record format
/// and reports truncation as an [`RecordError::InvalidBatch`] instead of panicking.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub fn varlong(&mut self) -> Result<i64> {
        // Most fields (lengths under 64, deltas, counts) fit one byte.
        if let Some(&byte) = self.buf.get(self.pos) {
            if byte & 0x80 == 0 {
                self.pos += 1;
                let raw = u64::from(byte);
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        self.varlong_slow()
    }

    #[inline(never)]
    fn varlong_slow(&mut self) -> Result<i64> {
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or_else(|| truncated("varint"))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(RecordError::InvalidBatch("varint overflows 64 bits".into()));
            }
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(RecordError::InvalidBatch(
            "varint longer than 10 bytes".into(),
        ))
    }

    #[inline]
    pub fn varint(&mut self) -> Result<i32> {
        let v = self.varlong()?;
        i32::try_from(v)
            .map_err(|_| RecordError::InvalidBatch(format!("varint {v} overflows 32 bits")))
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8]> {
        if self.remaining() < len {
            return Err(truncated("field"));
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// A varint length followed by that many bytes; a length of -1 is null.
    pub fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>> {
        match self.varint()? {
            -1 => Ok(None),
            len if len < 0 => Err(RecordError::InvalidBatch(format!("negative length {len}"))),
            len => self.bytes(len as usize).map(Some),
        }
    }
}

fn truncated(what: &str) -> RecordError {
    RecordError::InvalidBatch(format!("record truncated inside a {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            prop_assert_eq!(buf.len(), varlong_len(v));
            let mut r = Reader::new(&buf);
            prop_assert_eq!(r.varlong().unwrap(), v);
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut r = Reader::new(&bytes);
            let _ = r.varlong();
        }
    }

    #[test]
    fn small_values_are_one_byte() {
        for v in -64..64 {
            assert_eq!(varlong_len(v), 1, "{v}");
        }
        assert_eq!(varlong_len(64), 2);
        assert_eq!(varlong_len(i64::MIN), 10);
    }
}
