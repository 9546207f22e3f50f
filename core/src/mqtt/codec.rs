//! The MQTT 3.1.1 / 5.0 codec entry points: fixed-header framing (check-then-parse), fixed-header
//! flag validation, dispatch to the per-packet decoders and encoders, and the shared-encoding fast
//! path for PUBLISH fan-out.
//!
//! Every packet body is decoded and encoded here in `core` (see `connect.rs`, `publish.rs`,
//! `ack.rs`, `subscribe.rs`, `control.rs`) instead of through `mqttbytes` 0.6: that crate's v5
//! property parser reads past the declared property length, miscounts after a Subscription
//! Identifier, never rejects duplicated properties, treats the password as UTF-8, and it has no
//! AUTH nor short DISCONNECT. Once our own property reader was needed for AUTH/DISCONNECT, the
//! remaining packets were each a few lines; `mqttbytes` stays as an independent test oracle.
//!
//! Decoding is direction-agnostic (the bench client decodes CONNACK and SUBACK with it); which
//! packets a server accepts from a client is the connection state machine's business, as are
//! topic name and filter rules (`crate::topic`).

use bytes::{Bytes, BytesMut};

use super::packet::{Packet, ProtocolVersion, PublishProps, QoS};
use super::props::{MessageProps, PropSet};
use super::reason::ReasonCode;
use super::wire::{varint_len, Counter, Reader, Sink};
use super::{ack, connect, control, publish, subscribe};

/// Why bytes from the network could not become a packet. Small and `Copy`: the hot path never
/// allocates for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Bytes that cannot be a valid packet: bad remaining length encoding (>4 bytes), bad flags
    /// for the packet type [MQTT-2.2.2-2], reserved packet type 0, invalid UTF-8 / strings,
    /// unknown or misplaced property ids, QoS 3, truncated or over-long variable header, etc.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// Well-formed but forbidden by the protocol: e.g. a second CONNECT, packet id 0 on QoS>0,
    /// SUBSCRIBE with no filters, will flag combinations [MQTT-3.1.2-11..15], AUTH on v3.1.1,
    /// a property that may appear once included twice (MQTT 5 calls that a Protocol Error).
    #[error("protocol violation: {0}")]
    ProtocolViolation(&'static str),
    /// Declared packet size (fixed header + remaining length) above the limit.
    #[error("packet too large")]
    PacketTooLarge,
    /// CONNECT with protocol name/level other than MQTT 4 or 5. Carries the level so the caller
    /// can answer CONNACK 0x01 (v3.1.1 return code) / 0x84 (v5).
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocol(u8),
}

impl CodecError {
    /// The v5 reason code to close the connection with.
    pub fn reason(self) -> ReasonCode {
        match self {
            CodecError::Malformed(_) => ReasonCode::MalformedPacket,
            CodecError::ProtocolViolation(_) => ReasonCode::ProtocolError,
            CodecError::PacketTooLarge => ReasonCode::PacketTooLarge,
            CodecError::UnsupportedProtocol(_) => ReasonCode::UnsupportedProtocolVersion,
        }
    }
}

pub(crate) const CONNECT: u8 = 1;
pub(crate) const CONNACK: u8 = 2;
pub(crate) const PUBLISH: u8 = 3;
pub(crate) const PUBACK: u8 = 4;
pub(crate) const PUBREC: u8 = 5;
pub(crate) const PUBREL: u8 = 6;
pub(crate) const PUBCOMP: u8 = 7;
pub(crate) const SUBSCRIBE: u8 = 8;
pub(crate) const SUBACK: u8 = 9;
pub(crate) const UNSUBSCRIBE: u8 = 10;
pub(crate) const UNSUBACK: u8 = 11;
pub(crate) const PINGREQ: u8 = 12;
pub(crate) const PINGRESP: u8 = 13;
pub(crate) const DISCONNECT: u8 = 14;
pub(crate) const AUTH: u8 = 15;

/// Checks everything the first byte alone can tell: the type exists, its flags are the fixed
/// ones [MQTT-2.2.2-2] (PUBLISH: no QoS 3, no DUP on QoS 0 [MQTT-3.3.1-2]), and it may arrive
/// now (CONNECT first and only once, no AUTH on v3.1.1). Done before the length is even read so a
/// garbage stream is refused on its first byte.
fn check_first_byte(byte1: u8, version: Option<ProtocolVersion>) -> Result<(), CodecError> {
    let kind = byte1 >> 4;
    let flags = byte1 & 0x0f;
    match kind {
        0 => return Err(CodecError::Malformed("reserved packet type 0")),
        PUBLISH => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(CodecError::Malformed("PUBLISH with QoS 3"));
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(CodecError::Malformed("PUBLISH QoS 0 with DUP set"));
            }
        }
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => {
            if flags != 0b0010 {
                return Err(CodecError::Malformed("fixed header flags must be 0010"));
            }
        }
        _ => {
            if flags != 0 {
                return Err(CodecError::Malformed("fixed header flags must be 0000"));
            }
        }
    }
    match (kind, version) {
        (CONNECT, None) => Ok(()),
        (CONNECT, Some(_)) => Err(CodecError::ProtocolViolation("second CONNECT")),
        (_, None) => Err(CodecError::ProtocolViolation(
            "first packet must be CONNECT",
        )),
        (AUTH, Some(ProtocolVersion::V4)) => {
            Err(CodecError::ProtocolViolation("AUTH on MQTT 3.1.1"))
        }
        _ => Ok(()),
    }
}

/// First byte, fixed-header length (2..=5) and Remaining Length, once enough bytes are buffered.
fn read_fixed_header(buf: &[u8]) -> Result<Option<(usize, usize)>, CodecError> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(CodecError::Malformed(
                    "remaining length not minimally encoded",
                ));
            }
            return Ok(Some((2 + i, remaining)));
        }
    }
    Err(CodecError::Malformed(
        "remaining length longer than 4 bytes",
    ))
}

/// Check-then-parse. `Ok(None)` when a whole packet is not yet buffered (never an error).
/// Otherwise splits exactly one packet off the front of `buf` and decodes it. `version` is `None`
/// before CONNECT was decoded: then only CONNECT is acceptable and the version is read from the
/// CONNECT itself (`Connect::protocol` set to `Some(..)`). `max_packet_size` bounds the whole
/// packet: as soon as the fixed header is readable and the total exceeds it, `PacketTooLarge` is
/// returned without waiting for the bytes. After an error the connection must be closed: the
/// framing errors leave `buf` untouched, the body errors have already split the packet off.
pub fn decode(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: usize,
) -> Result<Option<Packet>, CodecError> {
    let Some(&byte1) = buf.first() else {
        return Ok(None);
    };
    check_first_byte(byte1, version)?;
    let Some((header_len, remaining)) = read_fixed_header(buf)? else {
        return Ok(None);
    };
    let total = header_len + remaining;
    if total > max_packet_size {
        return Err(CodecError::PacketTooLarge);
    }
    if buf.len() < total {
        return Ok(None);
    }
    let frame = buf.split_to(total).freeze();
    let r = Reader::new(frame.slice(header_len..));
    decode_body(byte1, r, version).map(Some)
}

fn decode_body(
    byte1: u8,
    r: Reader,
    version: Option<ProtocolVersion>,
) -> Result<Packet, CodecError> {
    // `check_first_byte` guarantees `version` is `Some` for everything but CONNECT.
    let Some(v) = version else {
        return connect::decode_connect(r).map(Packet::Connect);
    };
    let p = match byte1 >> 4 {
        CONNACK => Packet::ConnAck(connect::decode_connack(r, v)?),
        PUBLISH => Packet::Publish(publish::decode(byte1, r, v)?),
        PUBACK => Packet::PubAck(ack::decode(r, v, PUBACK)?),
        PUBREC => Packet::PubRec(ack::decode(r, v, PUBREC)?),
        PUBREL => Packet::PubRel(ack::decode(r, v, PUBREL)?),
        PUBCOMP => Packet::PubComp(ack::decode(r, v, PUBCOMP)?),
        SUBSCRIBE => Packet::Subscribe(subscribe::decode_subscribe(r, v)?),
        SUBACK => Packet::SubAck(subscribe::decode_suback(r, v)?),
        UNSUBSCRIBE => Packet::Unsubscribe(subscribe::decode_unsubscribe(r, v)?),
        UNSUBACK => Packet::UnsubAck(subscribe::decode_unsuback(r, v)?),
        PINGREQ => {
            r.finish()?;
            Packet::PingReq
        }
        PINGRESP => {
            r.finish()?;
            Packet::PingResp
        }
        DISCONNECT => Packet::Disconnect(control::decode_disconnect(r, v)?),
        AUTH => Packet::Auth(control::decode_auth(r)?),
        // CONNECT with a known version and type 0 were refused by `check_first_byte`.
        _ => return Err(CodecError::ProtocolViolation("second CONNECT")),
    };
    Ok(p)
}

/// The first byte of the fixed header.
fn first_byte(packet: &Packet) -> u8 {
    let (kind, flags) = match packet {
        Packet::Connect(_) => (CONNECT, 0),
        Packet::ConnAck(_) => (CONNACK, 0),
        Packet::Publish(p) => (PUBLISH, publish::flags(p.qos, p.retain, p.dup)),
        Packet::PubAck(_) => (PUBACK, 0),
        Packet::PubRec(_) => (PUBREC, 0),
        Packet::PubRel(_) => (PUBREL, 0b0010),
        Packet::PubComp(_) => (PUBCOMP, 0),
        Packet::Subscribe(_) => (SUBSCRIBE, 0b0010),
        Packet::SubAck(_) => (SUBACK, 0),
        Packet::Unsubscribe(_) => (UNSUBSCRIBE, 0b0010),
        Packet::UnsubAck(_) => (UNSUBACK, 0),
        Packet::PingReq => (PINGREQ, 0),
        Packet::PingResp => (PINGRESP, 0),
        Packet::Disconnect(_) => (DISCONNECT, 0),
        Packet::Auth(_) => (AUTH, 0),
    };
    kind << 4 | flags
}

/// Everything after the fixed header.
fn write_body<S: Sink>(packet: &Packet, v: ProtocolVersion, s: &mut S) {
    match packet {
        Packet::Connect(c) => connect::write_connect(c, v, s),
        Packet::ConnAck(c) => connect::write_connack(c, v, s),
        Packet::Publish(p) => publish::write(p, v, s),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            ack::write(a, v, s)
        }
        Packet::Subscribe(p) => subscribe::write_subscribe(p, v, s),
        Packet::SubAck(p) => subscribe::write_suback(p, v, s),
        Packet::Unsubscribe(p) => subscribe::write_unsubscribe(p, v, s),
        Packet::UnsubAck(p) => subscribe::write_unsuback(p, v, s),
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => control::write_disconnect(d, v, s),
        Packet::Auth(a) => control::write_auth(a, s),
    }
}

/// Appends the encoded packet to `out`.
///
/// v3.1.1: v5-only fields are dropped (properties, PUBACK-family and UNSUBACK reasons; SUBACK
/// failure codes become 0x80); a DISCONNECT is `e0 00`; AUTH does not exist, so it is a caller
/// bug: debug-asserted and skipped in release.
///
/// v5 picks the shortest form every peer accepts: PUBACK..PUBCOMP without properties are
/// `pkid` (reason 0) or `pkid reason`; AUTH with reason 0 and no properties is `f0 00`.
/// DISCONNECT is always written in full (`e0 02 rc 00` without properties) because some v5
/// clients (those built on mqttbytes 0.6, e.g. rumqttc 0.x) reject the short forms and a server
/// DISCONNECT is sent once per connection, so the two bytes do not matter.
pub fn encode(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) {
    if version == ProtocolVersion::V4 && matches!(packet, Packet::Auth(_)) {
        debug_assert!(false, "AUTH cannot be encoded for MQTT 3.1.1");
        return;
    }
    let mut c = Counter::default();
    write_body(packet, version, &mut c);
    let remaining = c.0;
    out.reserve(1 + varint_len(remaining) + remaining);
    out.put_u8(first_byte(packet));
    out.put_varint(remaining);
    write_body(packet, version, out);
}

/// A PUBLISH encoded once for many subscribers, split around the packet id: write `head`, then
/// (QoS > 0 only) the 2-byte packet id, then `props`, then `payload`. `props` holds the v5
/// Property Length and properties (empty on v3.1.1); `payload` shares the message's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishParts {
    /// Fixed header (first byte + Remaining Length) and the topic name.
    pub head: Bytes,
    /// v5 properties block (length prefix included); empty for v3.1.1.
    pub props: Bytes,
    /// The application payload, not copied.
    pub payload: Bytes,
}

impl PublishParts {
    /// Bytes on the wire for one delivery at `qos`, packet id included.
    pub fn wire_len(&self, qos: QoS) -> usize {
        self.head.len() + pkid_len(qos) + self.props.len() + self.payload.len()
    }
}

fn pkid_len(qos: QoS) -> usize {
    if qos == QoS::AtMostOnce {
        0
    } else {
        2
    }
}

/// (props block length, Remaining Length) of a PUBLISH.
fn publish_lens(
    topic: &str,
    qos: QoS,
    props: &PublishProps,
    payload_len: usize,
    v: ProtocolVersion,
) -> (usize, usize) {
    let props_block = match v {
        ProtocolVersion::V4 => 0,
        ProtocolVersion::V5 => {
            let n = MessageProps {
                props,
                will_delay: None,
            }
            .len();
            varint_len(n) + n
        }
    };
    let mut topic_len = Counter::default();
    topic_len.put_str(topic);
    (
        props_block,
        topic_len.0 + pkid_len(qos) + props_block + payload_len,
    )
}

/// Fast path for fan-out: see [`PublishParts`]. A QoS 0 `dup` is ignored (DUP must be 0 on
/// QoS 0 [MQTT-3.3.1-2]); a caller that needs DUP=1 for a retransmit calls this again.
pub fn encode_publish_parts(
    topic: &str,
    qos: QoS,
    retain: bool,
    dup: bool,
    props: &PublishProps,
    payload: &Bytes,
    version: ProtocolVersion,
) -> PublishParts {
    let (props_block, remaining) = publish_lens(topic, qos, props, payload.len(), version);
    let mut head = BytesMut::with_capacity(1 + varint_len(remaining) + 2 + topic.len());
    head.put_u8(PUBLISH << 4 | publish::flags(qos, retain, dup));
    head.put_varint(remaining);
    head.put_str(topic);
    let mut p = BytesMut::with_capacity(props_block);
    if version == ProtocolVersion::V5 {
        super::props::put_props(
            &mut p,
            &MessageProps {
                props,
                will_delay: None,
            },
        );
    }
    PublishParts {
        head: head.freeze(),
        props: p.freeze(),
        payload: payload.clone(),
    }
}

/// Size in bytes of the full packet as `encode_publish_parts` would write it (for Maximum Packet
/// Size checks).
pub fn publish_len(
    topic: &str,
    qos: QoS,
    props: &PublishProps,
    payload_len: usize,
    version: ProtocolVersion,
) -> usize {
    let (_, remaining) = publish_lens(topic, qos, props, payload_len, version);
    1 + varint_len(remaining) + remaining
}
