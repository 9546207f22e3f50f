//! PUBACK, PUBREC, PUBREL and PUBCOMP bodies (MQTT 5.0 §3.4–3.7, 3.1.1 §3.4–3.7): one shape,
//! a packet id plus, on v5, an optional reason code and properties.

use super::codec::{CodecError, PUBACK, PUBREC};
use super::packet::{ProtocolVersion, PubAck};
use super::props::{put_props, read_reason_props, ReasonProps};
use super::wire::{Reader, Sink};

/// Reason codes valid for the packet `kind` (§3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1).
fn valid_reason(kind: u8, code: u8) -> bool {
    if kind == PUBACK || kind == PUBREC {
        matches!(
            code,
            0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
        )
    } else {
        matches!(code, 0x00 | 0x92)
    }
}

pub(crate) fn decode(mut r: Reader, v: ProtocolVersion, kind: u8) -> Result<PubAck, CodecError> {
    let pkid = r.u16()?;
    if pkid == 0 {
        return Err(CodecError::ProtocolViolation("packet identifier 0"));
    }
    let mut ack = PubAck::new(pkid, 0);
    // v5: Remaining Length 2 means reason 0 and no properties; 3 means no properties (§3.4.2.1).
    if v == ProtocolVersion::V5 && !r.is_empty() {
        ack.reason = r.u8()?;
        if !valid_reason(kind, ack.reason) {
            return Err(CodecError::Malformed("invalid reason code"));
        }
        if !r.is_empty() {
            (ack.reason_string, ack.user_properties) = read_reason_props(&mut r)?;
        }
    }
    r.finish()?;
    Ok(ack)
}

/// The shortest v5 form: no reason byte for reason 0 without properties.
pub(crate) fn write<S: Sink>(a: &PubAck, v: ProtocolVersion, s: &mut S) {
    s.put_u16(a.pkid);
    if v == ProtocolVersion::V4 {
        return;
    }
    let has_props = a.reason_string.is_some() || !a.user_properties.is_empty();
    if a.reason != 0 || has_props {
        s.put_u8(a.reason);
    }
    if has_props {
        put_props(
            s,
            &ReasonProps {
                reason_string: &a.reason_string,
                user_properties: &a.user_properties,
            },
        );
    }
}
