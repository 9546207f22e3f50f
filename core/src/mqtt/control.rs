//! DISCONNECT and AUTH bodies (MQTT 5.0 §3.14–3.15, 3.1.1 §3.14), including the short v5 forms
//! (`e0 00`, `e0 01 rc`, `f0 00`) that mqttbytes 0.6 rejects or lacks.

use super::codec::CodecError;
use super::packet::{Auth, Disconnect, ProtocolVersion};
use super::props::{self as p, put_props, Prop, PropReader, PropSet, NOT_ALLOWED};
use super::wire::{Reader, Sink};

/// v5 DISCONNECT reason codes (§3.14.2.1).
fn valid_disconnect_reason(code: u8) -> bool {
    matches!(code, 0x00 | 0x04 | 0x80..=0x83 | 0x87 | 0x89 | 0x8b | 0x8d..=0x90 | 0x93..=0xa2)
}

pub(crate) fn decode_disconnect(
    mut r: Reader,
    v: ProtocolVersion,
) -> Result<Disconnect, CodecError> {
    let mut d = Disconnect::default();
    if v == ProtocolVersion::V5 && !r.is_empty() {
        d.reason = r.u8()?;
        if !valid_disconnect_reason(d.reason) {
            return Err(CodecError::Malformed("invalid DISCONNECT reason code"));
        }
        // Remaining Length 1: no Property Length, properties empty (§3.14.2.2).
        if !r.is_empty() {
            let mut props = PropReader::new(&mut r)?;
            while let Some((id, val)) = props.next()? {
                match (id, val) {
                    (p::SESSION_EXPIRY, Prop::U32(x)) => d.session_expiry = Some(x),
                    (p::REASON_STRING, Prop::Str(s)) => d.reason_string = Some(s),
                    (p::USER_PROPERTY, Prop::Pair(k, v)) => d.user_properties.push((k, v)),
                    (p::SERVER_REFERENCE, Prop::Str(s)) => d.server_reference = Some(s),
                    _ => return Err(NOT_ALLOWED),
                }
            }
        }
    }
    // v3.1.1 DISCONNECT has no body at all.
    r.finish()?;
    Ok(d)
}

struct DisconnectPropsW<'a>(&'a Disconnect);

impl PropSet for DisconnectPropsW<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let d = self.0;
        p::opt_u32(s, p::SESSION_EXPIRY, d.session_expiry);
        p::opt_str(s, p::REASON_STRING, &d.reason_string);
        p::users(s, &d.user_properties);
        p::opt_str(s, p::SERVER_REFERENCE, &d.server_reference);
    }
}

/// v5 always writes the full form (see `codec::encode` for why); v3.1.1 writes nothing.
pub(crate) fn write_disconnect<S: Sink>(d: &Disconnect, v: ProtocolVersion, s: &mut S) {
    if v == ProtocolVersion::V5 {
        s.put_u8(d.reason);
        put_props(s, &DisconnectPropsW(d));
    }
}

pub(crate) fn decode_auth(mut r: Reader) -> Result<Auth, CodecError> {
    let mut a = Auth::default();
    // Remaining Length 0: reason Success and no properties (§3.15.2.1). A lone reason byte is
    // accepted too, as DISCONNECT allows, since the spec gives it only one meaning.
    if !r.is_empty() {
        a.reason = r.u8()?;
        if !matches!(a.reason, 0x00 | 0x18 | 0x19) {
            return Err(CodecError::Malformed("invalid AUTH reason code"));
        }
        if !r.is_empty() {
            let mut props = PropReader::new(&mut r)?;
            while let Some((id, val)) = props.next()? {
                match (id, val) {
                    (p::AUTH_METHOD, Prop::Str(s)) => a.method = Some(s),
                    (p::AUTH_DATA, Prop::Bin(b)) => a.data = Some(b),
                    (p::REASON_STRING, Prop::Str(s)) => a.reason_string = Some(s),
                    (p::USER_PROPERTY, Prop::Pair(k, v)) => a.user_properties.push((k, v)),
                    _ => return Err(NOT_ALLOWED),
                }
            }
        }
    }
    r.finish()?;
    Ok(a)
}

struct AuthPropsW<'a>(&'a Auth);

impl PropSet for AuthPropsW<'_> {
    fn write<S: Sink>(&self, s: &mut S) {
        let a = self.0;
        p::opt_str(s, p::AUTH_METHOD, &a.method);
        p::opt_bin(s, p::AUTH_DATA, &a.data);
        p::opt_str(s, p::REASON_STRING, &a.reason_string);
        p::users(s, &a.user_properties);
    }
}

/// `f0 00` for reason 0 without properties, the full form otherwise.
pub(crate) fn write_auth<S: Sink>(a: &Auth, s: &mut S) {
    let props = AuthPropsW(a);
    if a.reason == 0 && props.len() == 0 {
        return;
    }
    s.put_u8(a.reason);
    put_props(s, &props);
}
