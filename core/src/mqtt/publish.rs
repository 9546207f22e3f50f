//! PUBLISH body (MQTT 5.0 §3.3, 3.1.1 §3.3). The fan-out fast path that shares one encoding
//! between subscribers lives in `codec.rs` (`encode_publish_parts`) and writes the same bytes.

use super::codec::CodecError;
use super::packet::{ProtocolVersion, Publish, PublishProps, QoS};
use super::props::{put_props, read_message_props, MessageProps};
use super::wire::{Reader, Sink};

/// Fixed-header flags. DUP is never set on QoS 0 [MQTT-3.3.1-2], whatever the caller asked.
pub(crate) fn flags(qos: QoS, retain: bool, dup: bool) -> u8 {
    let dup = dup && qos != QoS::AtMostOnce;
    u8::from(dup) << 3 | (qos as u8) << 1 | u8::from(retain)
}

/// `byte1` was validated by the framing (no QoS 3, no DUP on QoS 0).
pub(crate) fn decode(byte1: u8, mut r: Reader, v: ProtocolVersion) -> Result<Publish, CodecError> {
    let qos =
        QoS::from_u8((byte1 >> 1) & 0b11).ok_or(CodecError::Malformed("PUBLISH with QoS 3"))?;
    let topic = r.string()?;
    let pkid = if qos == QoS::AtMostOnce {
        0
    } else {
        let id = r.u16()?;
        if id == 0 {
            return Err(CodecError::ProtocolViolation("packet identifier 0")); // [MQTT-2.2.1-3]
        }
        id
    };
    let props = match v {
        ProtocolVersion::V4 => PublishProps::default(),
        ProtocolVersion::V5 => read_message_props(&mut r, false)?.0,
    };
    Ok(Publish {
        dup: byte1 & 0b1000 != 0,
        qos,
        retain: byte1 & 1 != 0,
        topic,
        pkid,
        payload: r.rest(),
        props,
    })
}

pub(crate) fn write<S: Sink>(p: &Publish, v: ProtocolVersion, s: &mut S) {
    s.put_str(&p.topic);
    if p.qos != QoS::AtMostOnce {
        s.put_u16(p.pkid);
    }
    if v == ProtocolVersion::V5 {
        put_props(
            s,
            &MessageProps {
                props: &p.props,
                will_delay: None,
            },
        );
    }
    s.put_slice(&p.payload);
}
