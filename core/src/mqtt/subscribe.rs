//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK bodies (MQTT 5.0 §3.8–3.11, 3.1.1 §3.8–3.11).

use super::codec::CodecError;
use super::packet::{
    ProtocolVersion, QoS, SubAck, Subscribe, SubscribeFilter, UnsubAck, Unsubscribe, UserProperty,
};
use super::props::{
    self as p, put_props, read_reason_props, Prop, PropReader, PropSet, ReasonProps, NOT_ALLOWED,
};
use super::wire::{Reader, Sink};

fn pkid(r: &mut Reader) -> Result<u16, CodecError> {
    match r.u16()? {
        0 => Err(CodecError::ProtocolViolation("packet identifier 0")), // [MQTT-2.2.1-3]
        id => Ok(id),
    }
}

/// Only User Properties (UNSUBSCRIBE's whole property set).
fn read_user_props(r: &mut Reader) -> Result<Vec<UserProperty>, CodecError> {
    let mut users = Vec::new();
    let mut props = PropReader::new(r)?;
    while let Some((id, v)) = props.next()? {
        match (id, v) {
            (p::USER_PROPERTY, Prop::Pair(k, v)) => users.push((k, v)),
            _ => return Err(NOT_ALLOWED),
        }
    }
    Ok(users)
}

pub(crate) fn decode_subscribe(mut r: Reader, v: ProtocolVersion) -> Result<Subscribe, CodecError> {
    let mut sub = Subscribe {
        pkid: pkid(&mut r)?,
        ..Subscribe::default()
    };
    if v == ProtocolVersion::V5 {
        let mut props = PropReader::new(&mut r)?;
        while let Some((id, val)) = props.next()? {
            match (id, val) {
                (p::SUBSCRIPTION_ID, Prop::Var(0)) => {
                    return Err(CodecError::ProtocolViolation("subscription identifier 0"));
                }
                (p::SUBSCRIPTION_ID, Prop::Var(x)) => {
                    // The property reader lets it repeat (PUBLISH may carry several); not here.
                    if sub.subscription_id.replace(x).is_some() {
                        return Err(CodecError::ProtocolViolation(
                            "property included more than once",
                        ));
                    }
                }
                (p::USER_PROPERTY, Prop::Pair(k, v)) => sub.user_properties.push((k, v)),
                _ => return Err(NOT_ALLOWED),
            }
        }
    }
    while !r.is_empty() {
        let path = r.string()?;
        let opts = r.u8()?;
        let qos = QoS::from_u8(opts & 0b11);
        let filter = match v {
            ProtocolVersion::V4 => {
                if opts & 0xfc != 0 {
                    return Err(CodecError::Malformed(
                        "subscription options reserved bits set",
                    )); // [MQTT-3-8.3-4]
                }
                let qos = qos.ok_or(CodecError::Malformed("subscription QoS 3"))?;
                SubscribeFilter {
                    path,
                    qos,
                    ..SubscribeFilter::default()
                }
            }
            ProtocolVersion::V5 => {
                if opts & 0xc0 != 0 {
                    return Err(CodecError::Malformed(
                        "subscription options reserved bits set",
                    )); // [MQTT-3.8.3-5]
                }
                let qos = qos.ok_or(CodecError::ProtocolViolation("subscription QoS 3"))?;
                let retain_handling = (opts >> 4) & 0b11;
                if retain_handling == 3 {
                    return Err(CodecError::ProtocolViolation("retain handling 3"));
                }
                SubscribeFilter {
                    path,
                    qos,
                    no_local: opts & 0b0100 != 0,
                    retain_as_published: opts & 0b1000 != 0,
                    retain_handling,
                }
            }
        };
        sub.filters.push(filter);
    }
    if sub.filters.is_empty() {
        return Err(CodecError::ProtocolViolation(
            "SUBSCRIBE without topic filters",
        )); // [MQTT-3.8.3-3]
    }
    Ok(sub)
}

struct SubscribePropsW<'a>(&'a Subscribe);

impl PropSet for SubscribePropsW<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        if let Some(id) = self.0.subscription_id {
            s.put_u8(p::SUBSCRIPTION_ID);
            s.put_varint(id as usize);
        }
        p::users(s, &self.0.user_properties);
    }
}

pub(crate) fn write_subscribe<S: Sink>(sub: &Subscribe, v: ProtocolVersion, s: &mut S) {
    s.put_u16(sub.pkid);
    if v == ProtocolVersion::V5 {
        put_props(s, &SubscribePropsW(sub));
    }
    for f in &sub.filters {
        s.put_str(&f.path);
        let mut opts = f.qos as u8;
        if v == ProtocolVersion::V5 {
            opts |= u8::from(f.no_local) << 2
                | u8::from(f.retain_as_published) << 3
                | (f.retain_handling & 0b11) << 4;
        }
        s.put_u8(opts);
    }
}

fn valid_suback_code(v: ProtocolVersion, code: u8) -> bool {
    match v {
        ProtocolVersion::V4 => matches!(code, 0 | 1 | 2 | 0x80),
        ProtocolVersion::V5 => {
            matches!(
                code,
                0 | 1 | 2 | 0x80 | 0x83 | 0x87 | 0x8f | 0x91 | 0x97 | 0x9e | 0xa1 | 0xa2
            )
        }
    }
}

pub(crate) fn decode_suback(mut r: Reader, v: ProtocolVersion) -> Result<SubAck, CodecError> {
    let mut ack = SubAck {
        pkid: pkid(&mut r)?,
        ..SubAck::default()
    };
    if v == ProtocolVersion::V5 {
        (ack.reason_string, ack.user_properties) = read_reason_props(&mut r)?;
    }
    ack.reasons = r.rest().to_vec();
    if ack.reasons.is_empty() {
        return Err(CodecError::ProtocolViolation("SUBACK without reason codes"));
    }
    if !ack.reasons.iter().all(|&c| valid_suback_code(v, c)) {
        return Err(CodecError::Malformed("invalid SUBACK reason code"));
    }
    Ok(ack)
}

/// On v3.1.1 every failure code becomes 0x80, the only one it has.
pub(crate) fn write_suback<S: Sink>(ack: &SubAck, v: ProtocolVersion, s: &mut S) {
    s.put_u16(ack.pkid);
    match v {
        ProtocolVersion::V4 => {
            for &c in &ack.reasons {
                s.put_u8(if c <= 2 { c } else { 0x80 });
            }
        }
        ProtocolVersion::V5 => {
            put_props(
                s,
                &ReasonProps {
                    reason_string: &ack.reason_string,
                    user_properties: &ack.user_properties,
                },
            );
            s.put_slice(&ack.reasons);
        }
    }
}

pub(crate) fn decode_unsubscribe(
    mut r: Reader,
    v: ProtocolVersion,
) -> Result<Unsubscribe, CodecError> {
    let mut unsub = Unsubscribe {
        pkid: pkid(&mut r)?,
        ..Unsubscribe::default()
    };
    if v == ProtocolVersion::V5 {
        unsub.user_properties = read_user_props(&mut r)?;
    }
    while !r.is_empty() {
        unsub.filters.push(r.string()?);
    }
    if unsub.filters.is_empty() {
        return Err(CodecError::ProtocolViolation(
            "UNSUBSCRIBE without topic filters",
        )); // [MQTT-3.10.3-2]
    }
    Ok(unsub)
}

pub(crate) fn write_unsubscribe<S: Sink>(unsub: &Unsubscribe, v: ProtocolVersion, s: &mut S) {
    s.put_u16(unsub.pkid);
    if v == ProtocolVersion::V5 {
        put_props(
            s,
            &ReasonProps {
                reason_string: &None,
                user_properties: &unsub.user_properties,
            },
        );
    }
    for f in &unsub.filters {
        s.put_str(f);
    }
}

pub(crate) fn decode_unsuback(mut r: Reader, v: ProtocolVersion) -> Result<UnsubAck, CodecError> {
    let mut ack = UnsubAck {
        pkid: pkid(&mut r)?,
        ..UnsubAck::default()
    };
    if v == ProtocolVersion::V5 {
        (ack.reason_string, ack.user_properties) = read_reason_props(&mut r)?;
        ack.reasons = r.rest().to_vec();
        if ack.reasons.is_empty() {
            return Err(CodecError::ProtocolViolation(
                "UNSUBACK without reason codes",
            ));
        }
        if !ack
            .reasons
            .iter()
            .all(|c| matches!(c, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8f | 0x91))
        {
            return Err(CodecError::Malformed("invalid UNSUBACK reason code"));
        }
    }
    r.finish()?;
    Ok(ack)
}

/// v3.1.1 UNSUBACK is only the packet id.
pub(crate) fn write_unsuback<S: Sink>(ack: &UnsubAck, v: ProtocolVersion, s: &mut S) {
    s.put_u16(ack.pkid);
    if v == ProtocolVersion::V5 {
        put_props(
            s,
            &ReasonProps {
                reason_string: &ack.reason_string,
                user_properties: &ack.user_properties,
            },
        );
        s.put_slice(&ack.reasons);
    }
}
