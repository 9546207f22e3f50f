//! The load generator's minimal MQTT 3.1.1 client codec.
//!
//! It encodes only what a benchmark client sends (CONNECT, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ,
//! DISCONNECT) and decodes only what it receives (CONNACK, SUBACK, PUBLISH, PUBACK, PINGRESP),
//! straight from a read buffer without copying: a decoded PUBLISH borrows its topic and payload.
//! It is deliberately independent of the broker's codec so a bug there cannot hide in both.

use std::fmt;

/// MQTT control packet types (the high nibble of the first byte).
const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;

/// One packet received from the broker; borrows from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    ConnAck {
        session_present: bool,
        code: u8,
    },
    SubAck {
        pid: u16,
        code: u8,
    },
    Publish {
        qos: u8,
        pid: u16,
        topic: &'a [u8],
        payload: &'a [u8],
    },
    PubAck {
        pid: u16,
    },
    PingResp,
    /// Any other packet type (e.g. PUBREC); the caller decides whether it matters.
    Other {
        kind: u8,
    },
}

/// A byte sequence that cannot be an MQTT 3.1.1 packet from a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Remaining length used more than four bytes.
    BadRemainingLength,
    /// The packet body is shorter than its fixed fields.
    Truncated(u8),
    /// A PUBLISH with QoS 3.
    BadQos,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadRemainingLength => write!(f, "remaining length longer than 4 bytes"),
            DecodeError::Truncated(kind) => write!(f, "packet type {kind} shorter than its fields"),
            DecodeError::BadQos => write!(f, "PUBLISH with QoS 3"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Appends the variable-length "remaining length" encoding of `len` (the same variable byte
/// integer encodes v5 property lengths).
pub(crate) fn put_remaining_length(buf: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        buf.push(byte);
        if len == 0 {
            break;
        }
    }
}

pub(crate) fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u16).to_be_bytes());
    buf.extend_from_slice(s);
}

/// CONNECT fields the generator uses.
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub keep_alive_secs: u16,
    pub clean_session: bool,
}

/// Appends a CONNECT (protocol level 4).
pub fn encode_connect(buf: &mut Vec<u8>, c: &Connect<'_>) {
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0x02;
    }
    let mut len = 10 + 2 + c.client_id.len();
    if let Some(u) = c.username {
        flags |= 0x80;
        len += 2 + u.len();
    }
    if let Some(p) = c.password {
        flags |= 0x40;
        len += 2 + p.len();
    }
    buf.push(CONNECT << 4);
    put_remaining_length(buf, len);
    put_str(buf, b"MQTT");
    buf.push(4); // protocol level 3.1.1
    buf.push(flags);
    buf.extend_from_slice(&c.keep_alive_secs.to_be_bytes());
    put_str(buf, c.client_id.as_bytes());
    if let Some(u) = c.username {
        put_str(buf, u.as_bytes());
    }
    if let Some(p) = c.password {
        put_str(buf, p);
    }
}

/// Appends a SUBSCRIBE for one topic filter.
pub fn encode_subscribe(buf: &mut Vec<u8>, pid: u16, filter: &str, qos: u8) {
    buf.push((SUBSCRIBE << 4) | 0x02); // flags 0010 are mandatory
    put_remaining_length(buf, 2 + 2 + filter.len() + 1);
    buf.extend_from_slice(&pid.to_be_bytes());
    put_str(buf, filter.as_bytes());
    buf.push(qos);
}

/// Appends a PUBLISH; `pid` is ignored for QoS 0.
pub fn encode_publish(buf: &mut Vec<u8>, topic: &str, qos: u8, pid: u16, payload: &[u8]) {
    buf.push((PUBLISH << 4) | (qos << 1));
    let pid_len = if qos > 0 { 2 } else { 0 };
    put_remaining_length(buf, 2 + topic.len() + pid_len + payload.len());
    put_str(buf, topic.as_bytes());
    if qos > 0 {
        buf.extend_from_slice(&pid.to_be_bytes());
    }
    buf.extend_from_slice(payload);
}

/// Appends a PUBACK.
pub fn encode_puback(buf: &mut Vec<u8>, pid: u16) {
    buf.push(PUBACK << 4);
    buf.push(2);
    buf.extend_from_slice(&pid.to_be_bytes());
}

/// Appends a PINGREQ.
pub fn encode_pingreq(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[PINGREQ << 4, 0]);
}

/// Appends a DISCONNECT.
pub fn encode_disconnect(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[DISCONNECT << 4, 0]);
}

fn be16(b: &[u8], kind: u8) -> Result<u16, DecodeError> {
    match b {
        [hi, lo, ..] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(DecodeError::Truncated(kind)),
    }
}

/// Decodes one packet from the front of `buf`.
///
/// `Ok(None)` means "not a whole packet yet, read more"; `Ok(Some((packet, used)))` gives the
/// packet and how many bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    let mut shift = 0;
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if i > 4 {
            return Err(DecodeError::BadRemainingLength);
        }
    }
    let total = i + len;
    let Some(body) = buf.get(i..total) else {
        return Ok(None);
    };
    let kind = first >> 4;
    let packet = match kind {
        CONNACK => match body {
            [flags, code, ..] => Packet::ConnAck {
                session_present: flags & 1 == 1,
                code: *code,
            },
            _ => return Err(DecodeError::Truncated(kind)),
        },
        SUBACK => {
            let pid = be16(body, kind)?;
            let code = *body.get(2).ok_or(DecodeError::Truncated(kind))?;
            Packet::SubAck { pid, code }
        }
        PUBLISH => {
            let qos = (first >> 1) & 0x03;
            if qos == 3 {
                return Err(DecodeError::BadQos);
            }
            let tlen = be16(body, kind)? as usize;
            let topic = body.get(2..2 + tlen).ok_or(DecodeError::Truncated(kind))?;
            let mut at = 2 + tlen;
            let mut pid = 0;
            if qos > 0 {
                pid = be16(body.get(at..).unwrap_or(&[]), kind)?;
                at += 2;
            }
            let payload = body.get(at..).ok_or(DecodeError::Truncated(kind))?;
            Packet::Publish {
                qos,
                pid,
                topic,
                payload,
            }
        }
        PUBACK => Packet::PubAck {
            pid: be16(body, kind)?,
        },
        PINGRESP => Packet::PingResp,
        _ => Packet::Other { kind },
    };
    Ok(Some((packet, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_connect_with_credentials() {
        let mut b = Vec::new();
        encode_connect(
            &mut b,
            &Connect {
                client_id: "c1",
                username: Some("bench"),
                password: Some(b"pw"),
                keep_alive_secs: 60,
                clean_session: true,
            },
        );
        let expected: &[u8] = &[
            0x10, // CONNECT
            25,   // remaining length: 10 + (2+2) + (2+5) + (2+2)
            0, 4, b'M', b'Q', b'T', b'T', // protocol name
            4,    // level 3.1.1
            0xc2, // username + password + clean session
            0, 60, // keep alive
            0, 2, b'c', b'1', // client id
            0, 5, b'b', b'e', b'n', b'c', b'h', // username
            0, 2, b'p', b'w', // password
        ];
        assert_eq!(b, expected);
    }

    #[test]
    fn encodes_connect_without_credentials() {
        let mut b = Vec::new();
        let c = Connect {
            client_id: "",
            username: None,
            password: None,
            keep_alive_secs: 0,
            clean_session: true,
        };
        encode_connect(&mut b, &c);
        assert_eq!(
            b,
            [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0, 0, 0]
        );
    }

    #[test]
    fn encodes_subscribe_with_mandatory_flags() {
        let mut b = Vec::new();
        encode_subscribe(&mut b, 7, "g1", 1);
        assert_eq!(b, [0x82, 7, 0, 7, 0, 2, b'g', b'1', 1]);
    }

    #[test]
    fn encodes_publish_qos0_and_qos1() {
        let mut b = Vec::new();
        encode_publish(&mut b, "t", 0, 99, b"xy");
        assert_eq!(b, [0x30, 5, 0, 1, b't', b'x', b'y']);
        b.clear();
        encode_publish(&mut b, "t", 1, 0x0102, b"xy");
        assert_eq!(b, [0x32, 7, 0, 1, b't', 1, 2, b'x', b'y']);
    }

    #[test]
    fn encodes_two_byte_remaining_length() {
        let mut b = Vec::new();
        encode_publish(&mut b, "t", 0, 0, &[0u8; 200]);
        // 203 = 0xcb → 0xcb & 0x7f | 0x80, 203 >> 7 = 1
        assert_eq!(&b[..3], &[0x30, 0xcb, 0x01]);
        let (p, used) = decode(&b).unwrap().unwrap();
        assert_eq!(used, b.len());
        assert!(matches!(p, Packet::Publish { payload, .. } if payload.len() == 200));
    }

    #[test]
    fn encodes_small_packets() {
        let mut b = Vec::new();
        encode_puback(&mut b, 0x1234);
        encode_pingreq(&mut b);
        encode_disconnect(&mut b);
        assert_eq!(b, [0x40, 2, 0x12, 0x34, 0xc0, 0, 0xe0, 0]);
    }

    #[test]
    fn decodes_connack_suback_puback_pingresp() {
        assert_eq!(
            decode(&[0x20, 2, 0, 5]).unwrap(),
            Some((
                Packet::ConnAck {
                    session_present: false,
                    code: 5
                },
                4
            ))
        );
        assert_eq!(
            decode(&[0x90, 3, 0, 7, 0x80]).unwrap(),
            Some((Packet::SubAck { pid: 7, code: 0x80 }, 5))
        );
        assert_eq!(
            decode(&[0x40, 2, 1, 2]).unwrap(),
            Some((Packet::PubAck { pid: 0x0102 }, 4))
        );
        assert_eq!(decode(&[0xd0, 0]).unwrap(), Some((Packet::PingResp, 2)));
        assert_eq!(
            decode(&[0x50, 2, 0, 1]).unwrap(),
            Some((Packet::Other { kind: 5 }, 4))
        );
    }

    #[test]
    fn decodes_qos1_publish_borrowing_topic_and_payload() {
        let bytes = [
            0x32, // PUBLISH QoS 1
            8,    // remaining length
            0, 2, b'g', b'1', // topic
            0, 9, // packet id
            b'h', b'i', // payload
        ];
        let (p, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!(used, 10);
        assert_eq!(
            p,
            Packet::Publish {
                qos: 1,
                pid: 9,
                topic: b"g1",
                payload: b"hi"
            }
        );
    }

    #[test]
    fn partial_buffers_need_more_bytes() {
        let mut b = Vec::new();
        encode_publish(&mut b, "topic", 1, 3, &[7u8; 300]);
        for cut in 0..b.len() {
            assert_eq!(decode(&b[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(decode(&b).unwrap().is_some());
    }

    #[test]
    fn decodes_back_to_back_packets() {
        let mut b = Vec::new();
        encode_publish(&mut b, "a", 0, 0, b"1");
        encode_publish(&mut b, "a", 0, 0, b"2");
        let (_, n1) = decode(&b).unwrap().unwrap();
        let (p2, n2) = decode(&b[n1..]).unwrap().unwrap();
        assert_eq!(n1 + n2, b.len());
        assert!(matches!(p2, Packet::Publish { payload: b"2", .. }));
    }

    #[test]
    fn rejects_five_byte_remaining_length() {
        assert_eq!(
            decode(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(DecodeError::BadRemainingLength)
        );
    }

    #[test]
    fn rejects_truncated_fields_and_qos3() {
        assert_eq!(decode(&[0x20, 1, 0]), Err(DecodeError::Truncated(2)));
        assert_eq!(decode(&[0x30, 2, 0, 5]), Err(DecodeError::Truncated(3)));
        assert_eq!(decode(&[0x32, 3, 0, 0, 1]), Err(DecodeError::Truncated(3)));
        assert_eq!(decode(&[0x36, 2, 0, 0]), Err(DecodeError::BadQos));
    }
}
