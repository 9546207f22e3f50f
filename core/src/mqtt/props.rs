//! MQTT 5 properties (§2.2.2): reading a property block strictly inside its declared length,
//! with the identifier → type table, duplicate detection, and the writers shared by every packet.
//! Which identifiers a packet accepts is decided by that packet's decoder (it matches on the id
//! and rejects the rest), so this module knows types but not packets.

use bytes::Bytes;

use super::codec::CodecError;
use super::packet::{PublishProps, UserProperty};
use super::wire::{Counter, Reader, Sink};

pub(crate) const PAYLOAD_FORMAT: u8 = 0x01;
pub(crate) const MESSAGE_EXPIRY: u8 = 0x02;
pub(crate) const CONTENT_TYPE: u8 = 0x03;
pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
pub(crate) const CORRELATION_DATA: u8 = 0x09;
pub(crate) const SUBSCRIPTION_ID: u8 = 0x0B;
pub(crate) const SESSION_EXPIRY: u8 = 0x11;
pub(crate) const ASSIGNED_CLIENT_ID: u8 = 0x12;
pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
pub(crate) const AUTH_METHOD: u8 = 0x15;
pub(crate) const AUTH_DATA: u8 = 0x16;
pub(crate) const REQUEST_PROBLEM_INFO: u8 = 0x17;
pub(crate) const WILL_DELAY: u8 = 0x18;
pub(crate) const REQUEST_RESPONSE_INFO: u8 = 0x19;
pub(crate) const RESPONSE_INFO: u8 = 0x1A;
pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
pub(crate) const REASON_STRING: u8 = 0x1F;
pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
pub(crate) const TOPIC_ALIAS_MAX: u8 = 0x22;
pub(crate) const TOPIC_ALIAS: u8 = 0x23;
pub(crate) const MAX_QOS: u8 = 0x24;
pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
pub(crate) const USER_PROPERTY: u8 = 0x26;
pub(crate) const MAX_PACKET_SIZE: u8 = 0x27;
pub(crate) const WILDCARD_SUB_AVAILABLE: u8 = 0x28;
pub(crate) const SUB_IDS_AVAILABLE: u8 = 0x29;
pub(crate) const SHARED_SUB_AVAILABLE: u8 = 0x2A;

/// A decoded property value; its variant is fixed by the identifier (§2.2.2.2 table).
pub(crate) enum Prop {
    Byte(u8),
    U16(u16),
    U32(u32),
    Var(u32),
    Str(String),
    Bin(Bytes),
    Pair(String, String),
}

/// Any property whose identifier is not valid for the packet being decoded.
pub(crate) const NOT_ALLOWED: CodecError =
    CodecError::Malformed("property not valid for this packet");

/// Iterates over one property block. Identifiers other than User Property and Subscription
/// Identifier may appear once per block: a repeat is a Protocol Error (§2.2.2.2 and the "more than
/// once" rule of every property). Subscription Identifier repeats are allowed only in PUBLISH, so
/// SUBSCRIBE checks that itself.
pub(crate) struct PropReader {
    r: Reader,
    seen: u64,
}

impl PropReader {
    /// Reads the property length and splits that many bytes off `r`.
    pub(crate) fn new(r: &mut Reader) -> Result<PropReader, CodecError> {
        let len = r.varint()? as usize;
        if len > r.remaining() {
            return Err(CodecError::Malformed("property length beyond the packet"));
        }
        Ok(PropReader {
            r: Reader::new(r.take(len)?),
            seen: 0,
        })
    }

    pub(crate) fn next(&mut self) -> Result<Option<(u8, Prop)>, CodecError> {
        if self.r.is_empty() {
            return Ok(None);
        }
        // The identifier is a Variable Byte Integer, but every defined one fits in one byte, so a
        // multi-byte identifier is simply an unknown one.
        let id = self.r.u8()?;
        let value = match id {
            PAYLOAD_FORMAT
            | REQUEST_PROBLEM_INFO
            | REQUEST_RESPONSE_INFO
            | MAX_QOS
            | RETAIN_AVAILABLE
            | WILDCARD_SUB_AVAILABLE
            | SUB_IDS_AVAILABLE
            | SHARED_SUB_AVAILABLE => Prop::Byte(self.r.u8()?),
            SERVER_KEEP_ALIVE | RECEIVE_MAXIMUM | TOPIC_ALIAS_MAX | TOPIC_ALIAS => {
                Prop::U16(self.r.u16()?)
            }
            MESSAGE_EXPIRY | SESSION_EXPIRY | WILL_DELAY | MAX_PACKET_SIZE => {
                Prop::U32(self.r.u32()?)
            }
            SUBSCRIPTION_ID => Prop::Var(self.r.varint()?),
            CONTENT_TYPE | RESPONSE_TOPIC | ASSIGNED_CLIENT_ID | AUTH_METHOD | RESPONSE_INFO
            | SERVER_REFERENCE | REASON_STRING => Prop::Str(self.r.string()?),
            CORRELATION_DATA | AUTH_DATA => Prop::Bin(self.r.binary()?),
            USER_PROPERTY => {
                let k = self.r.string()?;
                let v = self.r.string()?;
                Prop::Pair(k, v)
            }
            _ => return Err(CodecError::Malformed("unknown property identifier")),
        };
        if id != USER_PROPERTY && id != SUBSCRIPTION_ID {
            let bit = 1u64 << id; // every defined id is < 64
            if self.seen & bit != 0 {
                return Err(CodecError::ProtocolViolation(
                    "property included more than once",
                ));
            }
            self.seen |= bit;
        }
        Ok(Some((id, value)))
    }
}

/// A value 0 or 1 (the boolean-like byte properties).
pub(crate) fn flag(v: u8) -> Result<bool, CodecError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(CodecError::ProtocolViolation(
            "property value must be 0 or 1",
        )),
    }
}

/// Reads the PUBLISH / Will message properties shared by both. `will` selects the Will set
/// (adds Will Delay, forbids Topic Alias and Subscription Identifier) and returns the delay.
pub(crate) fn read_message_props(
    r: &mut Reader,
    will: bool,
) -> Result<(PublishProps, Option<u32>), CodecError> {
    let mut p = PublishProps::default();
    let mut delay = None;
    let mut props = PropReader::new(r)?;
    while let Some((id, v)) = props.next()? {
        match (id, v) {
            (PAYLOAD_FORMAT, Prop::Byte(b)) => {
                flag(b)?;
                p.payload_format = Some(b);
            }
            (MESSAGE_EXPIRY, Prop::U32(x)) => p.message_expiry = Some(x),
            (CONTENT_TYPE, Prop::Str(s)) => p.content_type = Some(s),
            (RESPONSE_TOPIC, Prop::Str(s)) => p.response_topic = Some(s),
            (CORRELATION_DATA, Prop::Bin(b)) => p.correlation_data = Some(b),
            (USER_PROPERTY, Prop::Pair(k, v)) => p.user_properties.push((k, v)),
            (TOPIC_ALIAS, Prop::U16(x)) if !will => p.topic_alias = Some(x),
            (SUBSCRIPTION_ID, Prop::Var(x)) if !will => {
                if x == 0 {
                    return Err(CodecError::ProtocolViolation("subscription identifier 0"));
                }
                p.subscription_ids.push(x);
            }
            (WILL_DELAY, Prop::U32(x)) if will => delay = Some(x),
            _ => return Err(NOT_ALLOWED),
        }
    }
    Ok((p, delay))
}

/// A set of properties that can be written; `put_props` prefixes it with its length.
pub(crate) trait PropSet {
    fn write<S: Sink>(&self, s: &mut S);

    fn len(&self) -> usize {
        let mut c = Counter::default();
        self.write(&mut c);
        c.0
    }
}

/// Property Length followed by the properties.
pub(crate) fn put_props<S: Sink, P: PropSet>(s: &mut S, p: &P) {
    s.put_varint(p.len());
    p.write(s);
}

pub(crate) fn opt_u8<S: Sink>(s: &mut S, id: u8, v: Option<u8>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u8(v);
    }
}

pub(crate) fn opt_bool<S: Sink>(s: &mut S, id: u8, v: Option<bool>) {
    opt_u8(s, id, v.map(u8::from));
}

pub(crate) fn opt_u16<S: Sink>(s: &mut S, id: u8, v: Option<u16>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u16(v);
    }
}

pub(crate) fn opt_u32<S: Sink>(s: &mut S, id: u8, v: Option<u32>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_u32(v);
    }
}

pub(crate) fn opt_str<S: Sink>(s: &mut S, id: u8, v: &Option<String>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_str(v);
    }
}

pub(crate) fn opt_bin<S: Sink>(s: &mut S, id: u8, v: &Option<Bytes>) {
    if let Some(v) = v {
        s.put_u8(id);
        s.put_binary(v);
    }
}

pub(crate) fn users<S: Sink>(s: &mut S, v: &[UserProperty]) {
    for (k, val) in v {
        s.put_u8(USER_PROPERTY);
        s.put_str(k);
        s.put_str(val);
    }
}

/// PUBLISH properties (and, with `will_delay`, the Will properties of CONNECT).
pub(crate) struct MessageProps<'a> {
    pub(crate) props: &'a PublishProps,
    pub(crate) will_delay: Option<u32>,
}

impl PropSet for MessageProps<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let p = self.props;
        opt_u32(s, WILL_DELAY, self.will_delay);
        opt_u8(s, PAYLOAD_FORMAT, p.payload_format);
        opt_u32(s, MESSAGE_EXPIRY, p.message_expiry);
        opt_u16(s, TOPIC_ALIAS, p.topic_alias);
        opt_str(s, RESPONSE_TOPIC, &p.response_topic);
        opt_bin(s, CORRELATION_DATA, &p.correlation_data);
        users(s, &p.user_properties);
        for id in &p.subscription_ids {
            s.put_u8(SUBSCRIPTION_ID);
            s.put_varint(*id as usize);
        }
        opt_str(s, CONTENT_TYPE, &p.content_type);
    }
}

/// Reason String + User Properties: the whole property set of the acks (PUBACK..PUBCOMP,
/// SUBACK, UNSUBACK) and, without a reason string, of UNSUBSCRIBE.
pub(crate) struct ReasonProps<'a> {
    pub(crate) reason_string: &'a Option<String>,
    pub(crate) user_properties: &'a [UserProperty],
}

impl PropSet for ReasonProps<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        opt_str(s, REASON_STRING, self.reason_string);
        users(s, self.user_properties);
    }
}

/// Reads a Reason String + User Properties block.
pub(crate) fn read_reason_props(
    r: &mut Reader,
) -> Result<(Option<String>, Vec<UserProperty>), CodecError> {
    let mut reason = None;
    let mut users = Vec::new();
    let mut props = PropReader::new(r)?;
    while let Some((id, v)) = props.next()? {
        match (id, v) {
            (REASON_STRING, Prop::Str(s)) => reason = Some(s),
            (USER_PROPERTY, Prop::Pair(k, v)) => users.push((k, v)),
            _ => return Err(NOT_ALLOWED),
        }
    }
    Ok((reason, users))
}
