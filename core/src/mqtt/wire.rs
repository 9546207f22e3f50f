//! MQTT wire primitives (MQTT 5.0 §1.5, 3.1.1 §1.5): a bounds-checked reader over one framed
//! packet and a `Sink` abstraction so every encoder is written once and run twice, first into a
//! byte counter (lengths) and then into the output buffer (bytes). Nothing here panics on input.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::codec::CodecError;

/// Largest value a Variable Byte Integer can carry (four bytes, §1.5.5).
pub(crate) const VARINT_MAX: usize = 268_435_455;

const TRUNCATED: CodecError = CodecError::Malformed("packet shorter than its fields");

/// Number of bytes the Variable Byte Integer encoding of `v` takes.
pub(crate) fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Reads one framed packet body. Strings are validated as MQTT UTF-8 strings; binary fields and
/// the payload are split off the frame without copying.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails unless every byte was consumed: trailing bytes mean the lengths disagree.
    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Malformed(
                "unexpected bytes after the last field",
            ))
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, CodecError> {
        if n > self.buf.len() {
            return Err(TRUNCATED);
        }
        Ok(self.buf.split_to(n))
    }

    /// Everything left (the PUBLISH payload).
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    // The fixed-width reads advance the view in place (no reference-count traffic per field).
    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        if self.buf.is_empty() {
            return Err(TRUNCATED);
        }
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        if self.buf.len() < 2 {
            return Err(TRUNCATED);
        }
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        if self.buf.len() < 4 {
            return Err(TRUNCATED);
        }
        Ok(self.buf.get_u32())
    }

    /// Variable Byte Integer: at most four bytes, minimal encoding [MQTT-1.5.5-1].
    pub(crate) fn varint(&mut self) -> Result<u32, CodecError> {
        let mut value: u32 = 0;
        for i in 0..4 {
            let b = self.u8()?;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(CodecError::Malformed(
                        "variable byte integer not minimally encoded",
                    ));
                }
                return Ok(value);
            }
        }
        Err(CodecError::Malformed(
            "variable byte integer longer than 4 bytes",
        ))
    }

    /// Binary Data: two-byte length then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, CodecError> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }

    /// UTF-8 Encoded String [MQTT-1.5.4-1]: well-formed UTF-8 (which already excludes the
    /// surrogates) and no U+0000 [MQTT-1.5.4-2].
    pub(crate) fn string(&mut self) -> Result<String, CodecError> {
        let n = usize::from(self.u16()?);
        let raw = self.buf.get(..n).ok_or(TRUNCATED)?;
        let s = check_utf8(raw)?.to_owned();
        self.buf.advance(n);
        Ok(s)
    }
}

pub(crate) fn check_utf8(raw: &[u8]) -> Result<&str, CodecError> {
    let s =
        std::str::from_utf8(raw).map_err(|_| CodecError::Malformed("string is not valid UTF-8"))?;
    if raw.contains(&0) {
        return Err(CodecError::Malformed("string contains U+0000"));
    }
    Ok(s)
}

/// Somewhere to put encoded bytes: the real buffer, or a counter for the length pass.
pub(crate) trait Sink {
    fn put_slice(&mut self, s: &[u8]);
    fn put_u8(&mut self, b: u8);

    fn put_u16(&mut self, v: u16) {
        self.put_slice(&v.to_be_bytes());
    }

    fn put_u32(&mut self, v: u32) {
        self.put_slice(&v.to_be_bytes());
    }

    fn put_varint(&mut self, v: usize) {
        debug_assert!(v <= VARINT_MAX, "variable byte integer overflow: {v}");
        let mut x = v.min(VARINT_MAX);
        loop {
            let mut b = (x % 128) as u8;
            x /= 128;
            if x > 0 {
                b |= 0x80;
            }
            self.put_u8(b);
            if x == 0 {
                break;
            }
        }
    }

    /// Binary Data. Longer than 65 535 bytes cannot be expressed: that is a caller bug (all our
    /// strings come from decoded packets or configuration), so it asserts in debug builds and is
    /// cut short in release rather than corrupting the stream.
    fn put_binary(&mut self, b: &[u8]) {
        debug_assert!(
            b.len() <= usize::from(u16::MAX),
            "MQTT binary field too long"
        );
        let b = &b[..b.len().min(usize::from(u16::MAX))];
        self.put_u16(b.len() as u16);
        self.put_slice(b);
    }

    /// UTF-8 string; cut at a character boundary when too long (see `put_binary`).
    fn put_str(&mut self, s: &str) {
        debug_assert!(s.len() <= usize::from(u16::MAX), "MQTT string too long");
        let mut end = s.len().min(usize::from(u16::MAX));
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.put_binary(&s.as_bytes()[..end]);
    }
}

impl Sink for BytesMut {
    fn put_slice(&mut self, s: &[u8]) {
        self.extend_from_slice(s);
    }

    fn put_u8(&mut self, b: u8) {
        BufMut::put_u8(self, b);
    }
}

/// Counts what would be written.
#[derive(Default)]
pub(crate) struct Counter(pub(crate) usize);

impl Sink for Counter {
    fn put_slice(&mut self, s: &[u8]) {
        self.0 += s.len();
    }

    fn put_u8(&mut self, _b: u8) {
        self.0 += 1;
    }

    fn put_varint(&mut self, v: usize) {
        self.0 += varint_len(v);
    }
}
