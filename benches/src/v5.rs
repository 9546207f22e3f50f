//! The load generator's minimal MQTT 5 client codec, for the `egfanout` scenario (Event Grid
//! mode speaks v5: `CUSTOM-JWT` rides in CONNECT properties).
//!
//! Like `codec` (the 3.1.1 one) it encodes only what a benchmark client sends (CONNECT with
//! optional Authentication Method/Data, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ) and
//! decodes only what it receives (CONNACK, SUBACK, PUBLISH, PUBACK, PINGRESP, DISCONNECT),
//! borrowing topic and payload from the read buffer. Properties the broker sends are skipped:
//! the benchmark needs none of them. It stays independent of the broker's codec so a bug there
//! cannot hide in both.

use crate::codec::{put_remaining_length, put_str};
use std::fmt;

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;

/// CONNECT property identifiers the generator sends.
const PROP_AUTH_METHOD: u8 = 0x15;
const PROP_AUTH_DATA: u8 = 0x16;

/// One packet received from the broker; borrows from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    ConnAck {
        code: u8,
    },
    /// The first reason code (the generator subscribes one filter at a time).
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
    /// `code` is 0 when the short form (no reason code) was sent.
    PubAck {
        pid: u16,
        code: u8,
    },
    PingResp,
    /// A server DISCONNECT and its reason code (0 when absent).
    Disconnect {
        code: u8,
    },
    /// Anything else (AUTH, PUBREC, …); the caller decides whether it matters.
    Other {
        kind: u8,
    },
}

/// A byte sequence that cannot be an MQTT 5 packet from a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A variable byte integer used more than four bytes.
    BadVarInt,
    /// The packet body is shorter than its fixed fields (packet type given).
    Truncated(u8),
    /// A PUBLISH with QoS 3.
    BadQos,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadVarInt => write!(f, "variable byte integer longer than 4 bytes"),
            DecodeError::Truncated(kind) => write!(f, "packet type {kind} shorter than its fields"),
            DecodeError::BadQos => write!(f, "PUBLISH with QoS 3"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Reads a variable byte integer: `Ok(None)` when the bytes run out first.
fn get_varint(b: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut v = 0usize;
    for i in 0..4 {
        let Some(&byte) = b.get(i) else {
            return Ok(None);
        };
        v |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    Err(DecodeError::BadVarInt)
}

/// CONNECT fields the generator uses (clean start, no will, no username/password).
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub keep_alive_secs: u16,
    /// Authentication Method and Data (e.g. `CUSTOM-JWT` and the token).
    pub auth: Option<(&'a str, &'a [u8])>,
}

/// Appends a CONNECT (protocol level 5, clean start).
pub fn encode_connect(buf: &mut Vec<u8>, c: &Connect<'_>) {
    let props_len = c.auth.map_or(0, |(m, d)| 1 + 2 + m.len() + 1 + 2 + d.len());
    let len = 10 + varint_len(props_len) + props_len + 2 + c.client_id.len();
    buf.push(CONNECT << 4);
    put_remaining_length(buf, len);
    put_str(buf, b"MQTT");
    buf.push(5);
    buf.push(0x02); // clean start
    buf.extend_from_slice(&c.keep_alive_secs.to_be_bytes());
    put_remaining_length(buf, props_len);
    if let Some((method, data)) = c.auth {
        buf.push(PROP_AUTH_METHOD);
        put_str(buf, method.as_bytes());
        buf.push(PROP_AUTH_DATA);
        put_str(buf, data);
    }
    put_str(buf, c.client_id.as_bytes());
}

/// Appends a SUBSCRIBE for one filter (options byte = maximum QoS, no properties).
pub fn encode_subscribe(buf: &mut Vec<u8>, pid: u16, filter: &str, qos: u8) {
    buf.push((SUBSCRIBE << 4) | 0x02);
    put_remaining_length(buf, 2 + 1 + 2 + filter.len() + 1);
    buf.extend_from_slice(&pid.to_be_bytes());
    buf.push(0); // property length
    put_str(buf, filter.as_bytes());
    buf.push(qos & 0x03);
}

/// Appends a PUBLISH without properties; `pid` is ignored for QoS 0.
pub fn encode_publish(buf: &mut Vec<u8>, topic: &str, qos: u8, pid: u16, payload: &[u8]) {
    buf.push((PUBLISH << 4) | (qos << 1));
    let pid_len = if qos > 0 { 2 } else { 0 };
    put_remaining_length(buf, 2 + topic.len() + pid_len + 1 + payload.len());
    put_str(buf, topic.as_bytes());
    if qos > 0 {
        buf.extend_from_slice(&pid.to_be_bytes());
    }
    buf.push(0); // property length
    buf.extend_from_slice(payload);
}

/// Appends a success PUBACK in the short form (reason code omitted = 0x00).
pub fn encode_puback(buf: &mut Vec<u8>, pid: u16) {
    buf.push(PUBACK << 4);
    buf.push(2);
    buf.extend_from_slice(&pid.to_be_bytes());
}

pub fn encode_pingreq(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[PINGREQ << 4, 0]);
}

fn be16(b: &[u8], kind: u8) -> Result<u16, DecodeError> {
    match b {
        [hi, lo, ..] => Ok(u16::from_be_bytes([*hi, *lo])),
        _ => Err(DecodeError::Truncated(kind)),
    }
}

/// Skips a property block at the start of `b` and returns what follows it.
fn skip_props(b: &[u8], kind: u8) -> Result<&[u8], DecodeError> {
    let (len, used) = get_varint(b)?.ok_or(DecodeError::Truncated(kind))?;
    b.get(used + len..).ok_or(DecodeError::Truncated(kind))
}

/// Decodes one packet from the front of `buf`: `Ok(None)` = not a whole packet yet;
/// `Ok(Some((packet, used)))` = the packet and how many bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((len, n)) = get_varint(&buf[1..])? else {
        return Ok(None);
    };
    let start = 1 + n;
    let Some(body) = buf.get(start..start + len) else {
        return Ok(None);
    };
    let kind = first >> 4;
    let packet = match kind {
        CONNACK => match body {
            [_flags, code, ..] => Packet::ConnAck { code: *code },
            _ => return Err(DecodeError::Truncated(kind)),
        },
        SUBACK => {
            let pid = be16(body, kind)?;
            let codes = skip_props(body.get(2..).unwrap_or(&[]), kind)?;
            let code = *codes.first().ok_or(DecodeError::Truncated(kind))?;
            Packet::SubAck { pid, code }
        }
        PUBLISH => {
            let qos = (first >> 1) & 0x03;
            if qos == 3 {
                return Err(DecodeError::BadQos);
            }
            let tlen = be16(body, kind)? as usize;
            let topic = body.get(2..2 + tlen).ok_or(DecodeError::Truncated(kind))?;
            let mut rest = body.get(2 + tlen..).ok_or(DecodeError::Truncated(kind))?;
            let mut pid = 0;
            if qos > 0 {
                pid = be16(rest, kind)?;
                rest = &rest[2..];
            }
            let payload = skip_props(rest, kind)?;
            Packet::Publish {
                qos,
                pid,
                topic,
                payload,
            }
        }
        PUBACK => Packet::PubAck {
            pid: be16(body, kind)?,
            code: body.get(2).copied().unwrap_or(0),
        },
        PINGRESP => Packet::PingResp,
        DISCONNECT => Packet::Disconnect {
            code: body.first().copied().unwrap_or(0),
        },
        _ => Packet::Other { kind },
    };
    Ok(Some((packet, start + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_connect_with_auth_properties() {
        let mut b = Vec::new();
        encode_connect(
            &mut b,
            &Connect {
                client_id: "c1",
                keep_alive_secs: 60,
                auth: Some(("M", b"tok")),
            },
        );
        let expected: &[u8] = &[
            0x10, // CONNECT
            25,   // 10 + 1 (prop len) + 10 (props) + 4 (client id)
            0, 4, b'M', b'Q', b'T', b'T', 5,    // level 5
            0x02, // clean start
            0, 60, // keep alive
            10, // property length
            0x15, 0, 1, b'M', // authentication method
            0x16, 0, 3, b't', b'o', b'k', // authentication data
            0, 2, b'c', b'1',
        ];
        assert_eq!(b, expected);
    }

    #[test]
    fn encodes_connect_without_auth() {
        let mut b = Vec::new();
        encode_connect(
            &mut b,
            &Connect {
                client_id: "",
                keep_alive_secs: 0,
                auth: None,
            },
        );
        assert_eq!(
            b,
            [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn connect_with_long_token_uses_two_byte_lengths() {
        let token = vec![b'x'; 700];
        let mut b = Vec::new();
        encode_connect(
            &mut b,
            &Connect {
                client_id: "id",
                keep_alive_secs: 1,
                auth: Some(("CUSTOM-JWT", &token)),
            },
        );
        let (len, n) = get_varint(&b[1..]).unwrap().unwrap();
        assert_eq!(1 + n + len, b.len());
        let (props, m) = get_varint(&b[1 + n + 10..]).unwrap().unwrap();
        assert_eq!(props, 1 + 2 + 10 + 1 + 2 + 700);
        assert_eq!(m, 2);
    }

    #[test]
    fn encodes_subscribe_publish_and_small_packets() {
        let mut b = Vec::new();
        encode_subscribe(&mut b, 1, "a/#", 1);
        assert_eq!(b, [0x82, 9, 0, 1, 0, 0, 3, b'a', b'/', b'#', 1]);
        b.clear();
        encode_publish(&mut b, "t", 1, 0x0102, b"xy");
        assert_eq!(b, [0x32, 8, 0, 1, b't', 1, 2, 0, b'x', b'y']);
        b.clear();
        encode_publish(&mut b, "t", 0, 9, b"xy");
        assert_eq!(b, [0x30, 6, 0, 1, b't', 0, b'x', b'y']);
        b.clear();
        encode_puback(&mut b, 0x1234);
        encode_pingreq(&mut b);
        assert_eq!(b, [0x40, 2, 0x12, 0x34, 0xc0, 0]);
    }

    #[test]
    fn decodes_connack_and_suback_skipping_properties() {
        // CONNACK: flags, reason 0, properties (Maximum QoS = 1).
        assert_eq!(
            decode(&[0x20, 5, 0, 0, 2, 0x24, 1]).unwrap(),
            Some((Packet::ConnAck { code: 0 }, 7))
        );
        assert_eq!(
            decode(&[0x20, 3, 0, 0x87, 0]).unwrap(),
            Some((Packet::ConnAck { code: 0x87 }, 5))
        );
        // SUBACK with a reason string property before the codes.
        let b = [0x90, 8, 0, 7, 4, 0x1f, 0, 1, b'r', 0x01];
        assert_eq!(
            decode(&b).unwrap(),
            Some((Packet::SubAck { pid: 7, code: 1 }, 10))
        );
    }

    #[test]
    fn decodes_publish_with_properties_borrowing_payload() {
        // Properties: Payload Format Indicator = 1 (2 bytes).
        let b = [0x32, 11, 0, 2, b'g', b'1', 0, 9, 2, 0x01, 0x01, b'h', b'i'];
        let (p, used) = decode(&b).unwrap().unwrap();
        assert_eq!(used, b.len());
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
    fn decodes_puback_forms_and_server_disconnect() {
        assert_eq!(
            decode(&[0x40, 2, 0, 5]).unwrap(),
            Some((Packet::PubAck { pid: 5, code: 0 }, 4))
        );
        assert_eq!(
            decode(&[0x40, 4, 0, 5, 0x87, 0]).unwrap(),
            Some((Packet::PubAck { pid: 5, code: 0x87 }, 6))
        );
        assert_eq!(
            decode(&[0xe0, 2, 0x8e, 0]).unwrap(),
            Some((Packet::Disconnect { code: 0x8e }, 4))
        );
        assert_eq!(
            decode(&[0xe0, 0]).unwrap(),
            Some((Packet::Disconnect { code: 0 }, 2))
        );
        assert_eq!(decode(&[0xd0, 0]).unwrap(), Some((Packet::PingResp, 2)));
    }

    #[test]
    fn partial_buffers_need_more_bytes() {
        let mut b = Vec::new();
        encode_publish(&mut b, "fleet/1/status", 1, 3, &[7u8; 300]);
        for cut in 0..b.len() {
            assert_eq!(decode(&b[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (p, _) = decode(&b).unwrap().unwrap();
        assert!(matches!(p, Packet::Publish { payload, .. } if payload.len() == 300));
    }

    #[test]
    fn rejects_long_varint_truncated_fields_and_qos3() {
        assert_eq!(
            decode(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(DecodeError::BadVarInt)
        );
        assert_eq!(decode(&[0x20, 1, 0]), Err(DecodeError::Truncated(2)));
        // PUBLISH whose property length points past the body.
        assert_eq!(
            decode(&[0x30, 4, 0, 1, b't', 9]),
            Err(DecodeError::Truncated(3))
        );
        assert_eq!(decode(&[0x36, 2, 0, 0]), Err(DecodeError::BadQos));
    }
}
