//! MQTT 3.1.1 / 5.0 packet bytes for the raw-wire tests: small encoders for what a test sends
//! (CONNECT, SUBSCRIBE, PUBLISH, acks) and decoders for what it checks (CONNACK, SUBACK, acks,
//! DISCONNECT reason codes, v5 properties). Written from the OASIS specs so the tests do not
//! share a codec with the broker they test.

/// Protocol level byte: 4 = 3.1.1, 5 = 5.0.
pub const V4: u8 = 4;
pub const V5: u8 = 5;

/// v5 property identifiers used by the tests (MQTT 5 §2.2.2.2).
pub mod prop {
    pub const PAYLOAD_FORMAT: u8 = 0x01;
    pub const MESSAGE_EXPIRY: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const SESSION_EXPIRY: u8 = 0x11;
    pub const ASSIGNED_CLIENT_ID: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const REASON_STRING: u8 = 0x1F;
    pub const WILL_DELAY: u8 = 0x18;
    pub const TOPIC_ALIAS_MAX: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAX_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_AVAILABLE: u8 = 0x28;
    pub const SHARED_AVAILABLE: u8 = 0x2A;
}

/// A CONNECT to encode. Build with [`Connect::v4`] / [`Connect::v5`] and set fields.
#[derive(Clone, Debug)]
pub struct Connect {
    pub version: u8,
    pub client_id: String,
    pub clean: bool,
    pub keepalive: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub will: Option<Will>,
    /// Encoded v5 CONNECT properties (without the length prefix); ignored for v4.
    pub props: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    /// Encoded v5 will properties (without the length prefix).
    pub props: Vec<u8>,
}

impl Connect {
    pub fn v4(client_id: &str) -> Connect {
        Connect::new(V4, client_id)
    }

    pub fn v5(client_id: &str) -> Connect {
        Connect::new(V5, client_id)
    }

    pub fn new(version: u8, client_id: &str) -> Connect {
        Connect {
            version,
            client_id: client_id.to_owned(),
            clean: true,
            keepalive: 60,
            username: None,
            password: None,
            will: None,
            props: Vec::new(),
        }
    }

    /// Credentials as the TCP transport takes them: username = hub, password = token.
    pub fn auth(mut self, hub: &str, token: Option<&str>) -> Connect {
        self.username = Some(hub.to_owned());
        self.password = token.map(str::to_owned);
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        put_str(&mut body, "MQTT");
        body.push(self.version);
        let mut flags = 0u8;
        if self.clean {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | (w.qos << 3);
            if w.retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        body.push(flags);
        body.extend_from_slice(&self.keepalive.to_be_bytes());
        if self.version == V5 {
            put_props(&mut body, &self.props);
        }
        put_str(&mut body, &self.client_id);
        if let Some(w) = &self.will {
            if self.version == V5 {
                put_props(&mut body, &w.props);
            }
            put_str(&mut body, &w.topic);
            put_bin(&mut body, &w.payload);
        }
        if let Some(u) = &self.username {
            put_str(&mut body, u);
        }
        if let Some(p) = &self.password {
            put_bin(&mut body, p.as_bytes());
        }
        packet(0x10, &body)
    }
}

/// SUBSCRIBE with one `(filter, options)` per entry (options = max QoS in bits 0–1).
pub fn subscribe(version: u8, pkid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if version == V5 {
        body.push(0);
    }
    for (f, opts) in filters {
        put_str(&mut body, f);
        body.push(*opts);
    }
    packet(0x82, &body)
}

pub fn unsubscribe(version: u8, pkid: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if version == V5 {
        body.push(0);
    }
    for f in filters {
        put_str(&mut body, f);
    }
    packet(0xA2, &body)
}

/// PUBLISH; `pkid` is written only for QoS > 0, `props` only for v5.
pub fn publish(
    version: u8,
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    pkid: u16,
    props: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, topic);
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    if version == V5 {
        put_props(&mut body, props);
    }
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1) | u8::from(retain), &body)
}

/// PUBACK / PUBREC / PUBREL / PUBCOMP in the short form valid in both versions (v5: reason 0).
pub fn puback(pkid: u16) -> Vec<u8> {
    packet(0x40, &pkid.to_be_bytes())
}
pub fn pubrec(pkid: u16) -> Vec<u8> {
    packet(0x50, &pkid.to_be_bytes())
}
pub fn pubrel(pkid: u16) -> Vec<u8> {
    packet(0x62, &pkid.to_be_bytes())
}
pub fn pubcomp(pkid: u16) -> Vec<u8> {
    packet(0x70, &pkid.to_be_bytes())
}
pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
pub const PINGRESP: [u8; 2] = [0xD0, 0x00];
/// DISCONNECT with no body: normal disconnection in both versions.
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

/// v5 property helpers: each returns the encoded property, to be concatenated.
pub fn prop_u8(id: u8, v: u8) -> Vec<u8> {
    vec![id, v]
}
pub fn prop_u16(id: u8, v: u16) -> Vec<u8> {
    let mut p = vec![id];
    p.extend_from_slice(&v.to_be_bytes());
    p
}
pub fn prop_u32(id: u8, v: u32) -> Vec<u8> {
    let mut p = vec![id];
    p.extend_from_slice(&v.to_be_bytes());
    p
}
pub fn prop_str(id: u8, v: &str) -> Vec<u8> {
    let mut p = vec![id];
    put_str(&mut p, v);
    p
}
pub fn prop_pair(k: &str, v: &str) -> Vec<u8> {
    let mut p = vec![prop::USER_PROPERTY];
    put_str(&mut p, k);
    put_str(&mut p, v);
    p
}

/// A fixed header + body.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    put_varint(&mut p, body.len());
    p.extend_from_slice(body);
    p
}

pub fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bin(out, s.as_bytes());
}

fn put_bin(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_props(out: &mut Vec<u8>, props: &[u8]) {
    put_varint(out, props.len());
    out.extend_from_slice(props);
}

/// (fixed-header byte, body) of a whole packet as [`crate::harness::Raw::read_packet`] returns it.
pub fn split(p: &[u8]) -> (u8, &[u8]) {
    let mut i = 1;
    while p[i] & 0x80 != 0 {
        i += 1;
    }
    (p[0], &p[i + 1..])
}

/// A decoded CONNACK.
#[derive(Debug)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: u8,
    pub props: Vec<(u8, PropValue)>,
}

impl ConnAck {
    pub fn prop(&self, id: u8) -> Option<&PropValue> {
        self.props.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
    }
}

pub fn connack(version: u8, p: &[u8]) -> ConnAck {
    let (first, body) = split(p);
    assert_eq!(
        first,
        0x20,
        "expected CONNACK, got {}",
        crate::harness::hex(p)
    );
    assert!(body.len() >= 2, "short CONNACK {}", crate::harness::hex(p));
    let props = if version == V5 && body.len() > 2 {
        parse_props(&body[2..]).0
    } else {
        Vec::new()
    };
    ConnAck {
        session_present: body[0] & 1 == 1,
        code: body[1],
        props,
    }
}

/// SUBACK return codes (one per filter).
pub fn suback_codes(version: u8, p: &[u8]) -> Vec<u8> {
    let (first, body) = split(p);
    assert_eq!(
        first,
        0x90,
        "expected SUBACK, got {}",
        crate::harness::hex(p)
    );
    let rest = &body[2..];
    if version == V5 {
        let (_, used) = parse_props(rest);
        rest[used..].to_vec()
    } else {
        rest.to_vec()
    }
}

/// Reason code of a v5 PUBACK/PUBREC/PUBREL/PUBCOMP (0 when omitted) and its packet id.
pub fn ack(p: &[u8]) -> (u8, u16, u8) {
    let (first, body) = split(p);
    let pkid = u16::from_be_bytes([body[0], body[1]]);
    (first, pkid, body.get(2).copied().unwrap_or(0))
}

/// Reason code of a DISCONNECT (0 when the body is empty).
pub fn disconnect_reason(p: &[u8]) -> u8 {
    let (_, body) = split(p);
    body.first().copied().unwrap_or(0)
}

/// A decoded PUBLISH.
#[derive(Debug)]
pub struct Publish {
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub topic: String,
    pub pkid: u16,
    pub props: Vec<(u8, PropValue)>,
    pub payload: Vec<u8>,
}

pub fn publish_of(version: u8, p: &[u8]) -> Publish {
    let (first, body) = split(p);
    assert_eq!(
        first & 0xF0,
        0x30,
        "expected PUBLISH, got {}",
        crate::harness::hex(p)
    );
    let qos = (first >> 1) & 3;
    let tlen = u16::from_be_bytes([body[0], body[1]]) as usize;
    let topic = String::from_utf8_lossy(&body[2..2 + tlen]).into_owned();
    let mut at = 2 + tlen;
    let mut pkid = 0;
    if qos > 0 {
        pkid = u16::from_be_bytes([body[at], body[at + 1]]);
        at += 2;
    }
    let mut props = Vec::new();
    if version == V5 {
        let (ps, used) = parse_props(&body[at..]);
        props = ps;
        at += used;
    }
    Publish {
        qos,
        retain: first & 1 == 1,
        dup: first & 8 != 0,
        topic,
        pkid,
        props,
        payload: body[at..].to_vec(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    Byte(u8),
    U16(u16),
    U32(u32),
    VarInt(usize),
    Str(String),
    Bin(Vec<u8>),
    Pair(String, String),
}

/// Parses a length-prefixed v5 property block; returns the properties and the bytes used.
pub fn parse_props(b: &[u8]) -> (Vec<(u8, PropValue)>, usize) {
    let (len, mut at) = read_varint(b);
    let end = at + len;
    let mut out = Vec::new();
    while at < end {
        let id = b[at];
        at += 1;
        let str_at = |at: usize| -> (String, usize) {
            let l = u16::from_be_bytes([b[at], b[at + 1]]) as usize;
            (
                String::from_utf8_lossy(&b[at + 2..at + 2 + l]).into_owned(),
                2 + l,
            )
        };
        let value = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
                at += 1;
                PropValue::Byte(b[at - 1])
            }
            0x13 | 0x21 | 0x22 | 0x23 => {
                at += 2;
                PropValue::U16(u16::from_be_bytes([b[at - 2], b[at - 1]]))
            }
            0x02 | 0x11 | 0x18 | 0x27 => {
                at += 4;
                PropValue::U32(u32::from_be_bytes([
                    b[at - 4],
                    b[at - 3],
                    b[at - 2],
                    b[at - 1],
                ]))
            }
            0x0B => {
                let (v, used) = read_varint(&b[at..]);
                at += used;
                PropValue::VarInt(v)
            }
            0x09 | 0x16 => {
                let l = u16::from_be_bytes([b[at], b[at + 1]]) as usize;
                let v = b[at + 2..at + 2 + l].to_vec();
                at += 2 + l;
                PropValue::Bin(v)
            }
            0x26 => {
                let (k, u1) = str_at(at);
                let (v, u2) = str_at(at + u1);
                at += u1 + u2;
                PropValue::Pair(k, v)
            }
            _ => {
                let (s, used) = str_at(at);
                at += used;
                PropValue::Str(s)
            }
        };
        out.push((id, value));
    }
    (out, end)
}

fn read_varint(b: &[u8]) -> (usize, usize) {
    let mut n = 0usize;
    for (i, byte) in b.iter().enumerate().take(4) {
        n |= ((byte & 0x7F) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return (n, i + 1);
        }
    }
    panic!("bad variable byte integer in {}", crate::harness::hex(b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_v4_connect_like_the_spec_example() {
        // MQTT 3.1.1 §3.1: protocol name "MQTT", level 4, clean session, keepalive 60, id "a".
        let c = Connect::v4("a").encode();
        assert_eq!(
            c,
            vec![0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'a']
        );
    }

    #[test]
    fn round_trips_publish_with_properties() {
        let p = publish(
            V5,
            "g",
            b"hi",
            1,
            true,
            9,
            &prop_str(prop::CONTENT_TYPE, "t"),
        );
        let d = publish_of(V5, &p);
        assert_eq!(
            (d.qos, d.retain, d.pkid, d.topic.as_str(), &d.payload[..]),
            (1, true, 9, "g", &b"hi"[..])
        );
        assert_eq!(
            d.props,
            vec![(prop::CONTENT_TYPE, PropValue::Str("t".into()))]
        );
    }

    #[test]
    fn varint_encodes_two_byte_lengths() {
        let mut v = Vec::new();
        put_varint(&mut v, 321);
        assert_eq!(v, vec![0xC1, 0x02]);
        assert_eq!(read_varint(&v), (321, 2));
    }
}
