//! Server side of the RFC 6455 WebSocket framing, sans-I/O.
//!
//! Owns turning the bytes a client sent into frames (check the header, unmask the payload in
//! place, split it off the read buffer) and building the few frames the server itself sends
//! (headers for binary data, close, pong). It knows nothing about sockets, TLS, the HTTP upgrade
//! (see `http`) or MQTT: data frames are handed on as raw byte chunks because MQTT over WebSocket
//! is a byte stream whose packets may span frames (MQTT 5 §6). No extensions are ever negotiated,
//! so every RSV bit must be zero; only binary data frames are accepted (the MQTT spec forbids
//! text frames).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Frame opcodes (RFC 6455 §5.2). `0x3`–`0x7` and `0xB`–`0xF` are reserved and rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Decodes the low 4 bits of the first header byte; `None` for reserved opcodes.
    pub fn from_u8(v: u8) -> Option<Opcode> {
        match v {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// Control frames are the ones with the high opcode bit set (RFC 6455 §5.5).
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// What one decoded client frame means to the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum WsEvent {
    /// Unmasked payload of a Binary frame or of a Continuation of a binary message (MQTT is a
    /// byte stream, so fragments are handed on as they arrive; message boundaries do not matter).
    /// May be empty: a zero-length frame is legal.
    Data(BytesMut),
    /// Ping payload (at most 125 bytes), to be echoed in a pong (RFC 6455 §5.5.2).
    Ping(Bytes),
    /// An unsolicited or answering pong; its payload is of no interest to the server.
    Pong,
    /// Peer's close frame: code (None if the body was empty) and reason bytes (valid UTF-8).
    /// The peer sends no data after it (§5.5.1): answer with a close and stop decoding.
    Close { code: Option<u16>, reason: Bytes },
}

/// Why a client's frames were refused. Every error is fatal for the connection: the decoder's
/// state is unspecified afterwards, and the server should send a close frame with
/// [`WsError::close_code`] and stop reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("client frame is not masked")]
    UnmaskedFrame,
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    #[error("reserved opcode")]
    UnknownOpcode,
    #[error("text frames are not supported, MQTT needs binary frames")]
    TextFrame,
    #[error("fragmented control frame")]
    FragmentedControl,
    #[error("control frame payload longer than 125 bytes")]
    ControlTooLong,
    #[error("continuation without a started message, or new message inside a fragmented one")]
    BadContinuation,
    #[error("frame payload larger than the configured limit")]
    FrameTooLarge,
    #[error("close frame with an invalid status code")]
    BadCloseCode,
    #[error("close frame body of a single byte")]
    ShortCloseBody,
    #[error("close reason is not valid UTF-8")]
    InvalidUtf8CloseReason,
    #[error("payload length not in its minimal encoding")]
    NonMinimalLength,
    #[error("64-bit payload length with the most significant bit set")]
    LengthHighBitSet,
}

impl WsError {
    /// The close status code to send back for this error (RFC 6455 §7.4.1).
    pub fn close_code(self) -> u16 {
        match self {
            WsError::TextFrame => CLOSE_UNSUPPORTED_DATA,
            WsError::FrameTooLarge => CLOSE_TOO_BIG,
            WsError::InvalidUtf8CloseReason => CLOSE_INVALID_PAYLOAD,
            WsError::UnmaskedFrame
            | WsError::ReservedBits
            | WsError::UnknownOpcode
            | WsError::FragmentedControl
            | WsError::ControlTooLong
            | WsError::BadContinuation
            | WsError::BadCloseCode
            | WsError::ShortCloseBody
            | WsError::NonMinimalLength
            | WsError::LengthHighBitSet => CLOSE_PROTOCOL_ERROR,
        }
    }
}

/// Close status codes the server uses (RFC 6455 §7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// Control frames carry at most this many payload bytes (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// Whether a peer may put `code` in a close frame (RFC 6455 §7.4).
///
/// 1004 is reserved, 1005/1006/1015 are reserved for APIs and must never be on the wire, and
/// 1016–2999 are reserved for future RFCs. 1012–1014 (service restart, try again later, bad
/// gateway) are registered in the IANA "WebSocket Close Code Number Registry" after RFC 6455 was
/// published, and real servers/proxies send them, so they are accepted too. 3000–4999 belong to
/// libraries and applications.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The parts of a client frame header that decoding needs once the whole frame is buffered.
struct FrameHeader {
    fin: bool,
    opcode: Opcode,
    /// Bytes before the payload: 2 fixed + 0/2/8 extended length + 4 mask.
    header_len: usize,
    payload_len: usize,
    mask: [u8; 4],
}

/// Decodes masked client frames from a connection's read buffer.
///
/// Owned by the connection's worker; holds only whether a fragmented message is in progress, so
/// idle connections cost two words.
#[derive(Debug, Clone)]
pub struct WsDecoder {
    max_frame_payload: usize,
    /// A Binary frame without FIN was seen and its final Continuation has not arrived yet.
    in_fragmented_message: bool,
}

impl WsDecoder {
    pub fn new(max_frame_payload: usize) -> Self {
        WsDecoder {
            max_frame_payload,
            in_fragmented_message: false,
        }
    }

    /// Check-then-parse: Ok(None) when a whole frame is not buffered yet (never an error). On a
    /// whole frame: validate, unmask IN PLACE in `buf`, split the frame off `buf` and return the
    /// event. A frame whose declared length exceeds `max_frame_payload` is an error as soon as
    /// the header is read, so a client cannot make the server buffer it.
    ///
    /// `Ok(None)` leaves `buf` and the decoder untouched, so calling again after more bytes
    /// arrive re-reads the header from the start (a few comparisons; cheaper than keeping a
    /// half-parsed header in every connection).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<WsEvent>, WsError> {
        let Some(h) = self.check(buf)? else {
            return Ok(None);
        };
        buf.advance(h.header_len);
        let mut payload = buf.split_to(h.payload_len);
        unmask(&mut payload, h.mask);

        let event = match h.opcode {
            Opcode::Binary | Opcode::Continuation => {
                // Binary starts a message, Continuation extends it; `check` has already refused
                // the out-of-order cases, so FIN alone decides whether a message is open now.
                self.in_fragmented_message = !h.fin;
                WsEvent::Data(payload)
            }
            Opcode::Ping => WsEvent::Ping(payload.freeze()),
            Opcode::Pong => WsEvent::Pong,
            Opcode::Close => decode_close(payload.freeze())?,
            // `check` rejects text frames before the payload is even buffered.
            Opcode::Text => return Err(WsError::TextFrame),
        };
        Ok(Some(event))
    }

    /// Validates the header at the start of `buf`; `Ok(Some)` only once the whole frame is
    /// buffered. Every rule that the header alone decides is applied as soon as the bytes that
    /// carry it are present, so a bad frame fails without waiting for its payload.
    fn check(&self, buf: &[u8]) -> Result<Option<FrameHeader>, WsError> {
        let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        if b0 & 0x70 != 0 {
            return Err(WsError::ReservedBits);
        }
        let opcode = Opcode::from_u8(b0 & 0x0F).ok_or(WsError::UnknownOpcode)?;
        // §5.1: a server MUST close the connection on an unmasked client frame.
        if b1 & 0x80 == 0 {
            return Err(WsError::UnmaskedFrame);
        }
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            // §5.5: control frames are never fragmented and fit a 7-bit length.
            if !fin {
                return Err(WsError::FragmentedControl);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(WsError::ControlTooLong);
            }
        } else {
            match opcode {
                Opcode::Text => return Err(WsError::TextFrame),
                Opcode::Binary if self.in_fragmented_message => {
                    return Err(WsError::BadContinuation)
                }
                Opcode::Continuation if !self.in_fragmented_message => {
                    return Err(WsError::BadContinuation)
                }
                _ => {}
            }
        }

        // §5.2: "the minimal number of bytes MUST be used to encode the length", and the 64-bit
        // form has its most significant bit clear.
        let (payload_len, ext_len) = match len7 {
            126 => {
                let Some(b) = buf.get(2..4) else {
                    return Ok(None);
                };
                let n = u64::from(u16::from_be_bytes([b[0], b[1]]));
                if n < 126 {
                    return Err(WsError::NonMinimalLength);
                }
                (n, 2)
            }
            127 => {
                let Some(b) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                let n = u64::from_be_bytes(be);
                if n >> 63 != 0 {
                    return Err(WsError::LengthHighBitSet);
                }
                if n <= u64::from(u16::MAX) {
                    return Err(WsError::NonMinimalLength);
                }
                (n, 8)
            }
            n => (u64::from(n), 0),
        };
        // Compared as u64 so a 64-bit length cannot wrap on a 32-bit target.
        if payload_len > self.max_frame_payload as u64 {
            return Err(WsError::FrameTooLarge);
        }
        // Fits: it is no larger than `max_frame_payload`, a usize.
        let payload_len = payload_len as usize;

        let mask_at = 2 + ext_len;
        let header_len = mask_at + 4;
        if buf.len() < header_len || buf.len() - header_len < payload_len {
            return Ok(None);
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&buf[mask_at..header_len]);
        Ok(Some(FrameHeader {
            fin,
            opcode,
            header_len,
            payload_len,
            mask,
        }))
    }
}

/// Reads a close frame body: empty, or a 2-byte code followed by a UTF-8 reason (§5.5.1).
fn decode_close(body: Bytes) -> Result<WsEvent, WsError> {
    match body.len() {
        0 => Ok(WsEvent::Close {
            code: None,
            reason: Bytes::new(),
        }),
        1 => Err(WsError::ShortCloseBody),
        _ => {
            let code = u16::from_be_bytes([body[0], body[1]]);
            if !is_valid_close_code(code) {
                return Err(WsError::BadCloseCode);
            }
            let reason = body.slice(2..);
            if std::str::from_utf8(&reason).is_err() {
                return Err(WsError::InvalidUtf8CloseReason);
            }
            Ok(WsEvent::Close {
                code: Some(code),
                reason,
            })
        }
    }
}

/// XORs `payload` with the 4-byte `mask` repeated (§5.3), 8 bytes per step.
///
/// Every client byte goes through here, so it works on u64 words rather than bytes; the payload
/// starts right after the mask key, so byte `i` uses `mask[i % 4]` and an 8-byte word is the mask
/// twice, whatever the endianness (the same byte order is used to load, XOR and store).
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let [m0, m1, m2, m3] = mask;
    let mask64 = u64::from_ne_bytes([m0, m1, m2, m3, m0, m1, m2, m3]);
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(w) ^ mask64).to_ne_bytes());
    }
    // The tail starts at a multiple of 8, hence of 4, so the mask restarts at index 0.
    for (b, m) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *b ^= m;
    }
}

/// Header of an unmasked server frame (FIN set): returns the bytes and how many are used (2, 4
/// or 10), using the minimal length encoding (§5.2).
pub fn frame_header(opcode: Opcode, payload_len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode.as_u8();
    let len = payload_len as u64;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if len <= u64::from(u16::MAX) {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&len.to_be_bytes());
        (h, 10)
    }
}

/// Appends a close frame with `code` and `reason`. The reason is cut to fit the 125-byte control
/// payload (123 bytes after the code) at a UTF-8 character boundary, so the peer never sees a
/// broken character (which would itself be a 1007 error).
pub fn encode_close(code: u16, reason: &str, out: &mut BytesMut) {
    let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = &reason.as_bytes()[..cut];
    let (h, n) = frame_header(Opcode::Close, 2 + reason.len());
    out.reserve(n + 2 + reason.len());
    out.put_slice(&h[..n]);
    out.put_u16(code);
    out.put_slice(reason);
}

/// Appends a pong echoing `payload` (§5.5.3). Decoded pings never exceed 125 bytes; a longer
/// payload from another caller is cut to 125 so the frame stays a valid control frame.
pub fn encode_pong(payload: &[u8], out: &mut BytesMut) {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let (h, n) = frame_header(Opcode::Pong, payload.len());
    out.reserve(n + payload.len());
    out.put_slice(&h[..n]);
    out.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Masking key of the RFC 6455 §5.7 examples.
    const RFC_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame with first byte `b0` and the minimal length encoding.
    fn client_frame(b0: u8, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = vec![b0];
        let n = payload.len();
        if n < 126 {
            v.push(0x80 | n as u8);
        } else if n <= 0xFFFF {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        v
    }

    fn decoder() -> WsDecoder {
        WsDecoder::new(1 << 20)
    }

    /// Decodes everything in `bytes` at once; also checks nothing is left over.
    fn decode_all(dec: &mut WsDecoder, bytes: &[u8]) -> Result<Vec<WsEvent>, WsError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(ev) = dec.decode(&mut buf)? {
            out.push(ev);
        }
        assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
        Ok(out)
    }

    /// Decodes a single frame from a fresh decoder.
    fn decode_one(bytes: &[u8]) -> Result<Option<WsEvent>, WsError> {
        decoder().decode(&mut BytesMut::from(bytes))
    }

    fn data(bytes: &[u8]) -> WsEvent {
        WsEvent::Data(BytesMut::from(bytes))
    }

    #[test]
    fn rfc_masked_text_hello_is_refused_as_text_frame() {
        let frame = [
            0x81, // FIN, opcode Text
            0x85, // MASK, length 5
            0x37, 0xfa, 0x21, 0x3d, // masking key
            0x7f, 0x9f, 0x4d, 0x51, 0x58, // "Hello" masked
        ];
        assert_eq!(decode_one(&frame), Err(WsError::TextFrame));
        assert_eq!(WsError::TextFrame.close_code(), 1003);
    }

    #[test]
    fn text_frame_is_refused_before_its_payload_arrives() {
        assert_eq!(decode_one(&[0x81, 0x85]), Err(WsError::TextFrame));
    }

    #[test]
    fn rfc_unmasked_hello_is_refused() {
        let frame = [
            0x82, // FIN, opcode Binary
            0x05, // no MASK, length 5
            b'H', b'e', b'l', b'l', b'o',
        ];
        assert_eq!(decode_one(&frame), Err(WsError::UnmaskedFrame));
        assert_eq!(WsError::UnmaskedFrame.close_code(), 1002);
    }

    #[test]
    fn decodes_masked_binary_hello() {
        let frame = [
            0x82, // FIN, opcode Binary
            0x85, // MASK, length 5
            0x37, 0xfa, 0x21, 0x3d, // masking key
            0x7f, 0x9f, 0x4d, 0x51, 0x58, // "Hello" masked
        ];
        assert_eq!(decode_one(&frame), Ok(Some(data(b"Hello"))));
    }

    #[test]
    fn splits_exactly_one_frame_off_the_buffer() {
        let mut bytes = client_frame(0x82, RFC_MASK, b"one");
        bytes.extend_from_slice(&[0x82, 0x85, 0x37]); // start of the next frame
        let mut buf = BytesMut::from(&bytes[..]);
        let mut dec = decoder();
        assert_eq!(dec.decode(&mut buf), Ok(Some(data(b"one"))));
        assert_eq!(&buf[..], &[0x82, 0x85, 0x37]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(&buf[..], &[0x82, 0x85, 0x37]);
    }

    #[test]
    fn incomplete_frame_leaves_buffer_untouched() {
        let frame = client_frame(0x82, RFC_MASK, &[7u8; 300]);
        for cut in 0..frame.len() {
            let mut buf = BytesMut::from(&frame[..cut]);
            assert_eq!(decoder().decode(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(&buf[..], &frame[..cut]);
        }
    }

    #[test]
    fn decodes_fragmented_binary_message_as_it_arrives() {
        let frames = [
            0x02, // no FIN, opcode Binary
            0x83, // MASK, length 3
            0x37, 0xfa, 0x21, 0x3d, // masking key
            0x7f, 0x9f, 0x4d, // "Hel" masked
            0x80, // FIN, opcode Continuation
            0x82, // MASK, length 2
            0x37, 0xfa, 0x21, 0x3d, // masking key
            0x5b, 0x95, // "lo" masked
        ];
        let mut dec = decoder();
        assert_eq!(
            decode_all(&mut dec, &frames),
            Ok(vec![data(b"Hel"), data(b"lo")])
        );
        // The message is over: a new one may start.
        assert_eq!(
            decode_all(&mut dec, &client_frame(0x82, RFC_MASK, b"x")),
            Ok(vec![data(b"x")])
        );
    }

    #[test]
    fn control_frames_may_come_between_fragments() {
        let mut bytes = client_frame(0x02, RFC_MASK, b"ab");
        bytes.extend(client_frame(0x89, RFC_MASK, b"p"));
        bytes.extend(client_frame(0x8A, RFC_MASK, b""));
        bytes.extend(client_frame(0x00, RFC_MASK, b"cd"));
        bytes.extend(client_frame(0x80, RFC_MASK, b"ef"));
        assert_eq!(
            decode_all(&mut decoder(), &bytes),
            Ok(vec![
                data(b"ab"),
                WsEvent::Ping(Bytes::from_static(b"p")),
                WsEvent::Pong,
                data(b"cd"),
                data(b"ef"),
            ])
        );
    }

    #[test]
    fn rfc_masked_pong_and_ping_are_decoded() {
        let pong = [
            0x8a, // FIN, opcode Pong
            0x85, // MASK, length 5
            0x37, 0xfa, 0x21, 0x3d, // masking key
            0x7f, 0x9f, 0x4d, 0x51, 0x58, // "Hello" masked
        ];
        assert_eq!(decode_one(&pong), Ok(Some(WsEvent::Pong)));
        let mut ping = pong;
        ping[0] = 0x89; // FIN, opcode Ping
        assert_eq!(
            decode_one(&ping),
            Ok(Some(WsEvent::Ping(Bytes::from_static(b"Hello"))))
        );
    }

    #[test]
    fn decodes_256_bytes_with_16_bit_length() {
        let payload: Vec<u8> = (0..=255u8).collect();
        let frame = client_frame(0x82, RFC_MASK, &payload);
        assert_eq!(
            &frame[..4],
            &[
                0x82, // FIN, opcode Binary
                0xFE, // MASK, length 126: 16-bit length follows
                0x01, 0x00, // 256
            ]
        );
        assert_eq!(decode_one(&frame), Ok(Some(data(&payload))));
    }

    #[test]
    fn decodes_64_kib_with_64_bit_length() {
        let payload: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
        let frame = client_frame(0x82, RFC_MASK, &payload);
        assert_eq!(
            &frame[..10],
            &[
                0x82, // FIN, opcode Binary
                0xFF, // MASK, length 127: 64-bit length follows
                0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, // 65536
            ]
        );
        assert_eq!(decode_one(&frame), Ok(Some(data(&payload))));
    }

    #[test]
    fn decodes_empty_binary_frame() {
        assert_eq!(decode_one(&[0x82, 0x80, 1, 2, 3, 4]), Ok(Some(data(b""))));
    }

    /// A stream exercising every length form, fragments, control frames and close.
    fn mixed_stream() -> (Vec<u8>, Vec<WsEvent>) {
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mid = [0x5Au8; 300];
        let mut bytes = Vec::new();
        bytes.extend(client_frame(0x82, [1, 2, 3, 4], b"Hello"));
        bytes.extend(client_frame(0x82, [0, 0, 0, 0], b""));
        bytes.extend(client_frame(0x02, [9, 8, 7, 6], &mid));
        bytes.extend(client_frame(0x89, [0xFF, 0, 0xFF, 0], b"are you there"));
        bytes.extend(client_frame(0x80, [5, 5, 5, 5], &big));
        bytes.extend(client_frame(0x8A, [1, 1, 1, 1], b"x"));
        bytes.extend(client_frame(0x88, [3, 1, 4, 1], b"\x03\xe8bye"));
        let events = vec![
            data(b"Hello"),
            data(b""),
            data(&mid),
            WsEvent::Ping(Bytes::from_static(b"are you there")),
            data(&big),
            WsEvent::Pong,
            WsEvent::Close {
                code: Some(1000),
                reason: Bytes::from_static(b"bye"),
            },
        ];
        (bytes, events)
    }

    #[test]
    fn same_events_when_fed_one_byte_at_a_time() {
        let (bytes, expected) = mixed_stream();
        let mut dec = decoder();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in &bytes {
            buf.put_u8(b);
            while let Some(ev) = dec.decode(&mut buf).unwrap() {
                got.push(ev);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, expected);
    }

    #[test]
    fn same_events_when_split_at_every_byte_boundary() {
        // Small frames only, so that trying every split point stays quick.
        let mut bytes = client_frame(0x02, [1, 2, 3, 4], &[0xAB; 130]);
        bytes.extend(client_frame(0x89, [4, 3, 2, 1], b"hi"));
        bytes.extend(client_frame(0x80, [7, 7, 0, 0], b"tail"));
        bytes.extend(client_frame(0x88, [0, 1, 0, 1], b""));
        let expected = decode_all(&mut decoder(), &bytes).unwrap();
        assert_eq!(expected.len(), 4);
        for cut in 0..=bytes.len() {
            let mut dec = decoder();
            let mut buf = BytesMut::from(&bytes[..cut]);
            let mut got = Vec::new();
            while let Some(ev) = dec.decode(&mut buf).unwrap() {
                got.push(ev);
            }
            buf.extend_from_slice(&bytes[cut..]);
            while let Some(ev) = dec.decode(&mut buf).unwrap() {
                got.push(ev);
            }
            assert!(buf.is_empty(), "cut at {cut}");
            assert_eq!(got, expected, "cut at {cut}");
        }
    }

    #[test]
    fn rejects_reserved_bits() {
        for rsv in [0x40, 0x20, 0x10] {
            let frame = client_frame(0x82 | rsv, RFC_MASK, b"x");
            assert_eq!(decode_one(&frame), Err(WsError::ReservedBits));
        }
        assert_eq!(WsError::ReservedBits.close_code(), 1002);
    }

    #[test]
    fn rejects_reserved_opcodes() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            let frame = client_frame(0x80 | op, RFC_MASK, b"");
            assert_eq!(
                decode_one(&frame),
                Err(WsError::UnknownOpcode),
                "opcode {op:#x}"
            );
        }
    }

    #[test]
    fn rejects_fragmented_control_frames() {
        for op in [0x08, 0x09, 0x0A] {
            let frame = client_frame(op, RFC_MASK, b"");
            assert_eq!(decode_one(&frame), Err(WsError::FragmentedControl));
        }
    }

    #[test]
    fn rejects_control_frames_over_125_bytes() {
        for op in [0x88, 0x89, 0x8A] {
            let frame = client_frame(op, RFC_MASK, &[0u8; 126]);
            assert_eq!(decode_one(&frame), Err(WsError::ControlTooLong));
        }
        let ping125 = client_frame(0x89, RFC_MASK, &[1u8; 125]);
        assert_eq!(
            decode_one(&ping125),
            Ok(Some(WsEvent::Ping(Bytes::from(vec![1u8; 125]))))
        );
    }

    #[test]
    fn rejects_continuation_without_a_started_message() {
        let frame = client_frame(0x80, RFC_MASK, b"x");
        assert_eq!(decode_one(&frame), Err(WsError::BadContinuation));
        assert_eq!(WsError::BadContinuation.close_code(), 1002);
    }

    #[test]
    fn rejects_new_message_inside_a_fragmented_one() {
        let mut bytes = client_frame(0x02, RFC_MASK, b"a");
        bytes.extend(client_frame(0x82, RFC_MASK, b"b"));
        let mut dec = decoder();
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(dec.decode(&mut buf), Ok(Some(data(b"a"))));
        assert_eq!(dec.decode(&mut buf), Err(WsError::BadContinuation));
    }

    #[test]
    fn rejects_frame_over_limit_as_soon_as_header_is_read() {
        let mut dec = WsDecoder::new(1000);
        // Only the header: the payload never needs to be buffered to refuse it.
        let header = [
            0x82, // FIN, opcode Binary
            0xFE, // MASK, 16-bit length follows
            0x03, 0xE9, // 1001
        ];
        assert_eq!(
            dec.decode(&mut BytesMut::from(&header[..])),
            Err(WsError::FrameTooLarge)
        );
        assert_eq!(WsError::FrameTooLarge.close_code(), 1009);
        let at_limit = client_frame(0x82, RFC_MASK, &[0u8; 1000]);
        assert!(matches!(
            WsDecoder::new(1000).decode(&mut BytesMut::from(&at_limit[..])),
            Ok(Some(WsEvent::Data(d))) if d.len() == 1000
        ));
    }

    #[test]
    fn rejects_huge_64_bit_length_without_buffering() {
        let header = [
            0x82, // FIN, opcode Binary
            0xFF, // MASK, 64-bit length follows
            0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // 2^63 - 1
        ];
        assert_eq!(decode_one(&header), Err(WsError::FrameTooLarge));
    }

    #[test]
    fn rejects_non_minimal_16_bit_length() {
        let frame = [
            0x82, // FIN, opcode Binary
            0xFE, // MASK, 16-bit length follows
            0x00, 0x7D, // 125: fits the 7-bit form
            1, 2, 3, 4, // masking key
        ];
        assert_eq!(decode_one(&frame), Err(WsError::NonMinimalLength));
    }

    #[test]
    fn rejects_non_minimal_64_bit_length() {
        let frame = [
            0x82, // FIN, opcode Binary
            0xFF, // MASK, 64-bit length follows
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, // 65535: fits the 16-bit form
        ];
        assert_eq!(decode_one(&frame), Err(WsError::NonMinimalLength));
        assert_eq!(WsError::NonMinimalLength.close_code(), 1002);
    }

    #[test]
    fn rejects_64_bit_length_with_high_bit_set() {
        let frame = [
            0x82, // FIN, opcode Binary
            0xFF, // MASK, 64-bit length follows
            0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // MSB set
        ];
        assert_eq!(decode_one(&frame), Err(WsError::LengthHighBitSet));
        assert_eq!(WsError::LengthHighBitSet.close_code(), 1002);
    }

    #[test]
    fn decodes_close_without_body() {
        let frame = client_frame(0x88, RFC_MASK, b"");
        assert_eq!(
            decode_one(&frame),
            Ok(Some(WsEvent::Close {
                code: None,
                reason: Bytes::new()
            }))
        );
    }

    #[test]
    fn rejects_close_body_of_one_byte() {
        let frame = client_frame(0x88, RFC_MASK, &[0x03]);
        assert_eq!(decode_one(&frame), Err(WsError::ShortCloseBody));
        assert_eq!(WsError::ShortCloseBody.close_code(), 1002);
    }

    #[test]
    fn accepts_valid_close_codes() {
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1014, 3000, 3999, 4000,
            4999,
        ] {
            let frame = client_frame(0x88, RFC_MASK, &code.to_be_bytes());
            assert_eq!(
                decode_one(&frame),
                Ok(Some(WsEvent::Close {
                    code: Some(code),
                    reason: Bytes::new()
                })),
                "code {code}"
            );
        }
    }

    #[test]
    fn rejects_invalid_close_codes() {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let frame = client_frame(0x88, RFC_MASK, &code.to_be_bytes());
            assert_eq!(
                decode_one(&frame),
                Err(WsError::BadCloseCode),
                "code {code}"
            );
        }
        assert_eq!(WsError::BadCloseCode.close_code(), 1002);
    }

    #[test]
    fn decodes_close_reason() {
        let mut body = vec![0x03, 0xE9]; // 1001 going away
        body.extend_from_slice("gönë".as_bytes());
        let frame = client_frame(0x88, RFC_MASK, &body);
        assert_eq!(
            decode_one(&frame),
            Ok(Some(WsEvent::Close {
                code: Some(1001),
                reason: Bytes::from("gönë")
            }))
        );
    }

    #[test]
    fn rejects_close_reason_with_invalid_utf8() {
        let frame = client_frame(0x88, RFC_MASK, &[0x03, 0xE8, b'a', 0xC3]);
        assert_eq!(decode_one(&frame), Err(WsError::InvalidUtf8CloseReason));
        assert_eq!(WsError::InvalidUtf8CloseReason.close_code(), 1007);
    }

    #[test]
    fn unmask_matches_bytewise_xor_for_every_length() {
        let masks = [[0, 0, 0, 0], [0xFF; 4], [1, 2, 3, 4], RFC_MASK];
        for mask in masks {
            for len in 0..67 {
                let plain: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
                let mut buf: Vec<u8> = plain
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ mask[i % 4])
                    .collect();
                unmask(&mut buf, mask);
                assert_eq!(buf, plain, "mask {mask:?} len {len}");
            }
        }
    }

    #[test]
    fn frame_header_uses_minimal_length_encoding() {
        let cases: [(usize, &[u8]); 6] = [
            (0, &[0x82, 0x00]),
            (5, &[0x82, 0x05]),
            (125, &[0x82, 0x7D]),
            (126, &[0x82, 0x7E, 0x00, 0x7E]),
            (65535, &[0x82, 0x7E, 0xFF, 0xFF]),
            (65536, &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for (len, want) in cases {
            let (h, n) = frame_header(Opcode::Binary, len);
            assert_eq!(&h[..n], want, "len {len}");
        }
        let (h, n) = frame_header(Opcode::Close, 2);
        assert_eq!(&h[..n], &[0x88, 0x02]);
    }

    #[test]
    fn encodes_pong_echoing_payload() {
        let mut out = BytesMut::new();
        encode_pong(b"Hello", &mut out);
        assert_eq!(
            &out[..],
            &[
                0x8A, // FIN, opcode Pong
                0x05, // no mask, length 5
                b'H', b'e', b'l', b'l', b'o',
            ]
        );
        out.clear();
        encode_pong(&[0u8; 200], &mut out);
        assert_eq!(out.len(), 2 + 125);
        assert_eq!(out[1], 125);
    }

    #[test]
    fn encodes_close_with_code_and_reason() {
        let mut out = BytesMut::new();
        encode_close(1000, "bye", &mut out);
        assert_eq!(
            &out[..],
            &[
                0x88, // FIN, opcode Close
                0x05, // no mask, length 5
                0x03, 0xE8, // 1000
                b'b', b'y', b'e',
            ]
        );
    }

    #[test]
    fn close_reason_is_cut_on_a_utf8_boundary() {
        // 'é' is two bytes: 123 bytes of room hold 61 of them and half of another.
        let reason = "é".repeat(100);
        let mut out = BytesMut::new();
        encode_close(1008, &reason, &mut out);
        assert_eq!(out[1] as usize, 2 + 122);
        assert_eq!(out.len(), 2 + 2 + 122);
        assert_eq!(
            std::str::from_utf8(&out[4..]).ok(),
            Some("é".repeat(61).as_str())
        );
        // What we send passes our own validation once masked like a client would.
        let frame = client_frame(out[0], RFC_MASK, &out[2..]);
        assert!(matches!(
            decode_one(&frame),
            Ok(Some(WsEvent::Close {
                code: Some(1008),
                ..
            }))
        ));
    }

    #[test]
    fn opcode_round_trips_through_wire_value() {
        for op in [
            Opcode::Continuation,
            Opcode::Text,
            Opcode::Binary,
            Opcode::Close,
            Opcode::Ping,
            Opcode::Pong,
        ] {
            assert_eq!(Opcode::from_u8(op.as_u8()), Some(op));
        }
        assert!(Opcode::Ping.is_control() && !Opcode::Binary.is_control());
    }
}
