//! CONNECT and CONNACK bodies (MQTT 5.0 §3.1–3.2, 3.1.1 §3.1–3.2).

use super::codec::CodecError;
use super::packet::{ConnAck, ConnAckProps, Connect, ConnectProps, LastWill, ProtocolVersion, QoS};
use super::props::{self as p, put_props, MessageProps, Prop, PropReader, PropSet, NOT_ALLOWED};
use super::wire::{Reader, Sink};

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN_START: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

/// Decodes a CONNECT; the protocol version comes from the packet itself.
pub(crate) fn decode_connect(mut r: Reader) -> Result<Connect, CodecError> {
    let name = r.binary()?;
    let level = r.u8()?;
    let version = match (&name[..], level) {
        (b"MQTT", 4) => ProtocolVersion::V4,
        (b"MQTT", 5) => ProtocolVersion::V5,
        // "MQIsdp" is MQTT 3.1 (level 3); refusing it needs the level for the CONNACK code.
        (b"MQTT", l) | (b"MQIsdp", l) => return Err(CodecError::UnsupportedProtocol(l)),
        _ => return Err(CodecError::Malformed("unknown protocol name")),
    };

    let flags = r.u8()?;
    if flags & FLAG_RESERVED != 0 {
        return Err(CodecError::Malformed("CONNECT reserved flag set")); // [MQTT-3.1.2-3]
    }
    let will_flag = flags & FLAG_WILL != 0;
    let will_qos = QoS::from_u8((flags >> 3) & 0b11).ok_or(CodecError::Malformed("will QoS 3"))?;
    let will_retain = flags & FLAG_WILL_RETAIN != 0;
    if !will_flag && (will_qos != QoS::AtMostOnce || will_retain) {
        // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]
        return Err(CodecError::ProtocolViolation(
            "will QoS or retain set without will flag",
        ));
    }
    let has_username = flags & FLAG_USERNAME != 0;
    let has_password = flags & FLAG_PASSWORD != 0;
    if version == ProtocolVersion::V4 && has_password && !has_username {
        return Err(CodecError::ProtocolViolation("password without user name"));
        // [MQTT-3.1.2-22]
    }
    let keep_alive = r.u16()?;
    let props = match version {
        ProtocolVersion::V4 => ConnectProps::default(),
        ProtocolVersion::V5 => read_connect_props(&mut r)?,
    };
    let client_id = r.string()?;
    let will = if will_flag {
        let (props, delay) = match version {
            ProtocolVersion::V4 => Default::default(),
            ProtocolVersion::V5 => p::read_message_props(&mut r, true)?,
        };
        let topic = r.string()?;
        let payload = r.binary()?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            delay,
            props,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    r.finish()?;
    Ok(Connect {
        protocol: Some(version),
        clean_start: flags & FLAG_CLEAN_START != 0,
        keep_alive,
        client_id,
        username,
        password,
        will,
        props,
    })
}

fn read_connect_props(r: &mut Reader) -> Result<ConnectProps, CodecError> {
    let mut c = ConnectProps::default();
    let mut props = PropReader::new(r)?;
    while let Some((id, v)) = props.next()? {
        match (id, v) {
            (p::SESSION_EXPIRY, Prop::U32(x)) => c.session_expiry = Some(x),
            (p::RECEIVE_MAXIMUM, Prop::U16(0)) => {
                return Err(CodecError::ProtocolViolation("receive maximum 0"))
            }
            (p::RECEIVE_MAXIMUM, Prop::U16(x)) => c.receive_maximum = Some(x),
            (p::MAX_PACKET_SIZE, Prop::U32(0)) => {
                return Err(CodecError::ProtocolViolation("maximum packet size 0"))
            }
            (p::MAX_PACKET_SIZE, Prop::U32(x)) => c.max_packet_size = Some(x),
            (p::TOPIC_ALIAS_MAX, Prop::U16(x)) => c.topic_alias_max = Some(x),
            (p::REQUEST_RESPONSE_INFO, Prop::Byte(b)) => {
                p::flag(b)?;
                c.request_response_info = Some(b);
            }
            (p::REQUEST_PROBLEM_INFO, Prop::Byte(b)) => {
                p::flag(b)?;
                c.request_problem_info = Some(b);
            }
            (p::USER_PROPERTY, Prop::Pair(k, v)) => c.user_properties.push((k, v)),
            (p::AUTH_METHOD, Prop::Str(s)) => c.auth_method = Some(s),
            (p::AUTH_DATA, Prop::Bin(b)) => c.auth_data = Some(b),
            _ => return Err(NOT_ALLOWED),
        }
    }
    if c.auth_data.is_some() && c.auth_method.is_none() {
        return Err(CodecError::ProtocolViolation(
            "authentication data without method",
        ));
    }
    Ok(c)
}

struct ConnectPropsW<'a>(&'a ConnectProps);

impl PropSet for ConnectPropsW<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let c = self.0;
        p::opt_u32(s, p::SESSION_EXPIRY, c.session_expiry);
        p::opt_u16(s, p::RECEIVE_MAXIMUM, c.receive_maximum);
        p::opt_u32(s, p::MAX_PACKET_SIZE, c.max_packet_size);
        p::opt_u16(s, p::TOPIC_ALIAS_MAX, c.topic_alias_max);
        p::opt_u8(s, p::REQUEST_RESPONSE_INFO, c.request_response_info);
        p::opt_u8(s, p::REQUEST_PROBLEM_INFO, c.request_problem_info);
        p::users(s, &c.user_properties);
        p::opt_str(s, p::AUTH_METHOD, &c.auth_method);
        p::opt_bin(s, p::AUTH_DATA, &c.auth_data);
    }
}

/// CONNECT body for `v` (`Connect::protocol` is ignored: the caller's version wins).
pub(crate) fn write_connect<S: Sink>(c: &Connect, v: ProtocolVersion, s: &mut S) {
    s.put_str("MQTT");
    s.put_u8(v.level());
    let mut flags = 0;
    if c.clean_start {
        flags |= FLAG_CLEAN_START;
    }
    if let Some(w) = &c.will {
        flags |= FLAG_WILL | (w.qos as u8) << 3;
        if w.retain {
            flags |= FLAG_WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= FLAG_USERNAME;
    }
    if c.password.is_some() {
        flags |= FLAG_PASSWORD;
    }
    s.put_u8(flags);
    s.put_u16(c.keep_alive);
    if v == ProtocolVersion::V5 {
        put_props(s, &ConnectPropsW(&c.props));
    }
    s.put_str(&c.client_id);
    if let Some(w) = &c.will {
        if v == ProtocolVersion::V5 {
            put_props(
                s,
                &MessageProps {
                    props: &w.props,
                    will_delay: w.delay,
                },
            );
        }
        s.put_str(&w.topic);
        s.put_binary(&w.payload);
    }
    if let Some(u) = &c.username {
        s.put_str(u);
    }
    if let Some(pw) = &c.password {
        s.put_binary(pw);
    }
}

/// v5 CONNACK reason codes (§3.2.2.2).
fn is_connack_reason(code: u8) -> bool {
    matches!(
        code,
        0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F
    )
}

pub(crate) fn decode_connack(mut r: Reader, v: ProtocolVersion) -> Result<ConnAck, CodecError> {
    let flags = r.u8()?;
    if flags & 0xfe != 0 {
        return Err(CodecError::Malformed("CONNACK reserved flags set"));
    }
    let code = r.u8()?;
    let props = match v {
        ProtocolVersion::V4 => {
            if code > 5 {
                return Err(CodecError::Malformed("invalid CONNACK return code"));
            }
            ConnAckProps::default()
        }
        ProtocolVersion::V5 => {
            if !is_connack_reason(code) {
                return Err(CodecError::Malformed("invalid CONNACK reason code"));
            }
            read_connack_props(&mut r)?
        }
    };
    r.finish()?;
    Ok(ConnAck {
        session_present: flags & 1 != 0,
        code,
        props,
    })
}

fn read_connack_props(r: &mut Reader) -> Result<ConnAckProps, CodecError> {
    let mut c = ConnAckProps::default();
    let mut props = PropReader::new(r)?;
    while let Some((id, v)) = props.next()? {
        match (id, v) {
            (p::SESSION_EXPIRY, Prop::U32(x)) => c.session_expiry = Some(x),
            (p::RECEIVE_MAXIMUM, Prop::U16(0)) => {
                return Err(CodecError::ProtocolViolation("receive maximum 0"))
            }
            (p::RECEIVE_MAXIMUM, Prop::U16(x)) => c.receive_maximum = Some(x),
            (p::MAX_QOS, Prop::Byte(b)) => {
                p::flag(b)?; // only 0 or 1 may be announced; no property means 2
                c.max_qos = Some(b);
            }
            (p::RETAIN_AVAILABLE, Prop::Byte(b)) => c.retain_available = Some(p::flag(b)?),
            (p::MAX_PACKET_SIZE, Prop::U32(0)) => {
                return Err(CodecError::ProtocolViolation("maximum packet size 0"))
            }
            (p::MAX_PACKET_SIZE, Prop::U32(x)) => c.max_packet_size = Some(x),
            (p::ASSIGNED_CLIENT_ID, Prop::Str(s)) => c.assigned_client_id = Some(s),
            (p::TOPIC_ALIAS_MAX, Prop::U16(x)) => c.topic_alias_max = Some(x),
            (p::REASON_STRING, Prop::Str(s)) => c.reason_string = Some(s),
            (p::USER_PROPERTY, Prop::Pair(k, v)) => c.user_properties.push((k, v)),
            (p::WILDCARD_SUB_AVAILABLE, Prop::Byte(b)) => {
                c.wildcard_sub_available = Some(p::flag(b)?)
            }
            (p::SUB_IDS_AVAILABLE, Prop::Byte(b)) => c.sub_ids_available = Some(p::flag(b)?),
            (p::SHARED_SUB_AVAILABLE, Prop::Byte(b)) => c.shared_sub_available = Some(p::flag(b)?),
            (p::SERVER_KEEP_ALIVE, Prop::U16(x)) => c.server_keep_alive = Some(x),
            (p::RESPONSE_INFO, Prop::Str(s)) => c.response_info = Some(s),
            (p::SERVER_REFERENCE, Prop::Str(s)) => c.server_reference = Some(s),
            (p::AUTH_METHOD, Prop::Str(s)) => c.auth_method = Some(s),
            (p::AUTH_DATA, Prop::Bin(b)) => c.auth_data = Some(b),
            _ => return Err(NOT_ALLOWED),
        }
    }
    Ok(c)
}

struct ConnAckPropsW<'a>(&'a ConnAckProps);

impl PropSet for ConnAckPropsW<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let c = self.0;
        p::opt_u32(s, p::SESSION_EXPIRY, c.session_expiry);
        p::opt_u16(s, p::RECEIVE_MAXIMUM, c.receive_maximum);
        p::opt_u8(s, p::MAX_QOS, c.max_qos);
        p::opt_bool(s, p::RETAIN_AVAILABLE, c.retain_available);
        p::opt_u32(s, p::MAX_PACKET_SIZE, c.max_packet_size);
        p::opt_str(s, p::ASSIGNED_CLIENT_ID, &c.assigned_client_id);
        p::opt_u16(s, p::TOPIC_ALIAS_MAX, c.topic_alias_max);
        p::opt_str(s, p::REASON_STRING, &c.reason_string);
        p::users(s, &c.user_properties);
        p::opt_bool(s, p::WILDCARD_SUB_AVAILABLE, c.wildcard_sub_available);
        p::opt_bool(s, p::SUB_IDS_AVAILABLE, c.sub_ids_available);
        p::opt_bool(s, p::SHARED_SUB_AVAILABLE, c.shared_sub_available);
        p::opt_u16(s, p::SERVER_KEEP_ALIVE, c.server_keep_alive);
        p::opt_str(s, p::RESPONSE_INFO, &c.response_info);
        p::opt_str(s, p::SERVER_REFERENCE, &c.server_reference);
        p::opt_str(s, p::AUTH_METHOD, &c.auth_method);
        p::opt_bin(s, p::AUTH_DATA, &c.auth_data);
    }
}

/// CONNACK body. On v3.1.1 `code` must already be a 3.1.1 return code
/// (`ReasonCode::v4_connack_code`); properties are dropped.
pub(crate) fn write_connack<S: Sink>(c: &ConnAck, v: ProtocolVersion, s: &mut S) {
    s.put_u8(u8::from(c.session_present));
    s.put_u8(c.code);
    if v == ProtocolVersion::V5 {
        put_props(s, &ConnAckPropsW(&c.props));
    }
}
