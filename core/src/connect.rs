//! CONNECT negotiation: what the broker grants a client (client id, keep-alive, session expiry,
//! windows) and the v5 CONNACK properties that tell it so. Pure: the caller passes a generator
//! for assigned client ids.

use crate::limits::Limits;
use crate::mqtt::{ConnAck, ConnAckProps, Connect, ProtocolVersion, ReasonCode};
use crate::topic::{check_topic, TopicKind};

/// The outcome of a CONNECT the broker accepts (authentication aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub version: ProtocolVersion,
    pub client_id: String,
    /// The client sent an empty id and v5 must be told the one we assigned.
    pub assigned: bool,
    /// Keep-alive enforced (seconds; 0 = none).
    pub keep_alive: u16,
    /// Set when the client's value was lowered (v5 `Server Keep Alive`).
    pub server_keep_alive: Option<u16>,
    pub clean_start: bool,
    pub session_expiry: u32,
    /// Set when the client's v5 value was lowered (CONNACK `Session Expiry Interval`).
    pub expiry_lowered: bool,
    /// Client's Receive Maximum (outbound QoS 1/2 window), 65535 when absent.
    pub client_receive_max: u16,
    /// Largest packet the client accepts; bigger deliveries are dropped for it.
    pub client_max_packet: u32,
    /// Will delay in seconds (v5), already bounded by the session expiry.
    pub will_delay: u32,
}

/// Check a CONNECT against the protocol rules and our limits. `Err` carries the v5 reason code
/// to refuse with (the caller maps it to the v3.1.1 return code for v3.1.1 clients).
pub fn negotiate(
    c: &Connect,
    limits: &Limits,
    assign_id: impl FnOnce() -> String,
) -> Result<Negotiated, ReasonCode> {
    let version = c.protocol.ok_or(ReasonCode::UnsupportedProtocolVersion)?;
    let v5 = version == ProtocolVersion::V5;

    let (client_id, assigned) = if c.client_id.is_empty() {
        // [MQTT-3.1.3-8]: v3.1.1 may only omit the id together with clean session.
        if !v5 && !c.clean_start {
            return Err(ReasonCode::ClientIdentifierNotValid);
        }
        (assign_id(), v5)
    } else {
        (c.client_id.clone(), false)
    };

    if c.props.receive_maximum == Some(0) || c.props.max_packet_size == Some(0) {
        // [MQTT-3.1.2-...]: both properties must be non-zero when present.
        return Err(ReasonCode::ProtocolError);
    }

    let max_ka = limits.max_keepalive_secs;
    let (keep_alive, server_keep_alive) = if c.keep_alive > max_ka {
        (max_ka, v5.then_some(max_ka))
    } else {
        (c.keep_alive, None)
    };

    let (session_expiry, expiry_lowered) = if v5 {
        let asked = c.props.session_expiry.unwrap_or(0);
        // 0xFFFFFFFF means "never expires" [MQTT-3.1.2-...]; we cap it like any other value.
        if asked > limits.max_session_expiry_secs {
            (limits.max_session_expiry_secs, true)
        } else {
            (asked, false)
        }
    } else if c.clean_start {
        (0, false)
    } else {
        (
            limits
                .default_session_expiry_secs
                .min(limits.max_session_expiry_secs),
            false,
        )
    };

    let mut will_delay = 0;
    if let Some(w) = &c.will {
        match check_topic(&w.topic, limits.max_topic_len) {
            Ok(TopicKind::Group(_)) => {}
            _ => return Err(ReasonCode::TopicNameInvalid),
        }
        if w.payload.len() > limits.will_payload_max {
            return Err(ReasonCode::PacketTooLarge);
        }
        will_delay = w.delay.unwrap_or(0).min(session_expiry);
    }

    Ok(Negotiated {
        version,
        client_id,
        assigned,
        keep_alive,
        server_keep_alive,
        clean_start: c.clean_start,
        session_expiry,
        expiry_lowered,
        client_receive_max: c.props.receive_maximum.unwrap_or(u16::MAX),
        client_max_packet: c.props.max_packet_size.unwrap_or(u32::MAX),
        will_delay,
    })
}

/// The CONNACK for an accepted connection.
pub fn connack_success(n: &Negotiated, session_present: bool, limits: &Limits) -> ConnAck {
    let props = if n.version == ProtocolVersion::V5 {
        ConnAckProps {
            session_expiry: n.expiry_lowered.then_some(n.session_expiry),
            receive_maximum: Some(limits.receive_maximum),
            retain_available: Some(false),
            max_packet_size: Some(limits.max_packet_size),
            assigned_client_id: n.assigned.then(|| n.client_id.clone()),
            topic_alias_max: Some(0),
            wildcard_sub_available: Some(false),
            sub_ids_available: Some(false),
            shared_sub_available: Some(false),
            server_keep_alive: n.server_keep_alive,
            ..ConnAckProps::default()
        }
    } else {
        ConnAckProps::default()
    };
    ConnAck {
        session_present,
        code: 0,
        props,
    }
}

/// The CONNACK refusing a connection with `reason` (v5) or its v3.1.1 equivalent.
pub fn connack_refusal(
    version: ProtocolVersion,
    reason: ReasonCode,
    text: Option<&str>,
) -> ConnAck {
    match version {
        ProtocolVersion::V5 => ConnAck {
            session_present: false,
            code: reason.as_u8(),
            props: ConnAckProps {
                reason_string: text.map(str::to_owned),
                ..ConnAckProps::default()
            },
        },
        ProtocolVersion::V4 => ConnAck {
            session_present: false,
            code: reason.v4_connack_code(),
            props: ConnAckProps::default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{ConnectProps, LastWill};

    fn connect(v: ProtocolVersion) -> Connect {
        Connect {
            protocol: Some(v),
            clean_start: true,
            keep_alive: 30,
            client_id: "c1".into(),
            ..Connect::default()
        }
    }

    fn id() -> String {
        "assigned-1".into()
    }

    #[test]
    fn v5_empty_client_id_is_assigned_and_announced() {
        let mut c = connect(ProtocolVersion::V5);
        c.client_id.clear();
        let n = negotiate(&c, &Limits::default(), id).unwrap();
        assert_eq!(n.client_id, "assigned-1");
        assert!(n.assigned);
        let ack = connack_success(&n, false, &Limits::default());
        assert_eq!(ack.props.assigned_client_id.as_deref(), Some("assigned-1"));
    }

    #[test]
    fn v4_empty_client_id_needs_clean_session() {
        let mut c = connect(ProtocolVersion::V4);
        c.client_id.clear();
        let n = negotiate(&c, &Limits::default(), id).unwrap();
        assert!(!n.assigned, "v3.1.1 cannot be told its id");
        c.clean_start = false;
        assert_eq!(
            negotiate(&c, &Limits::default(), id),
            Err(ReasonCode::ClientIdentifierNotValid)
        );
        assert_eq!(ReasonCode::ClientIdentifierNotValid.v4_connack_code(), 2);
    }

    #[test]
    fn keep_alive_above_max_is_lowered_and_told_on_v5() {
        let mut c = connect(ProtocolVersion::V5);
        c.keep_alive = 5000;
        let n = negotiate(&c, &Limits::default(), id).unwrap();
        assert_eq!((n.keep_alive, n.server_keep_alive), (1160, Some(1160)));
        let mut c4 = connect(ProtocolVersion::V4);
        c4.keep_alive = 5000;
        let n4 = negotiate(&c4, &Limits::default(), id).unwrap();
        assert_eq!((n4.keep_alive, n4.server_keep_alive), (1160, None));
    }

    #[test]
    fn session_expiry_rules() {
        let l = Limits::default();
        let mut c = connect(ProtocolVersion::V5);
        c.props = ConnectProps {
            session_expiry: Some(u32::MAX),
            ..ConnectProps::default()
        };
        let n = negotiate(&c, &l, id).unwrap();
        assert_eq!((n.session_expiry, n.expiry_lowered), (86_400, true));
        let mut c4 = connect(ProtocolVersion::V4);
        assert_eq!(negotiate(&c4, &l, id).unwrap().session_expiry, 0);
        c4.clean_start = false;
        assert_eq!(negotiate(&c4, &l, id).unwrap().session_expiry, 3600);
    }

    #[test]
    fn zero_receive_maximum_is_a_protocol_error() {
        let mut c = connect(ProtocolVersion::V5);
        c.props.receive_maximum = Some(0);
        assert_eq!(
            negotiate(&c, &Limits::default(), id),
            Err(ReasonCode::ProtocolError)
        );
    }

    #[test]
    fn enhanced_auth_is_the_personality_s_to_judge() {
        // Which methods exist is a product rule (Web PubSub refuses all, Event Grid takes two):
        // negotiation leaves the property alone.
        let mut c = connect(ProtocolVersion::V5);
        c.props.auth_method = Some("OAUTH2-JWT".into());
        assert!(negotiate(&c, &Limits::default(), id).is_ok());
    }

    #[test]
    fn will_rules() {
        let mut c = connect(ProtocolVersion::V5);
        c.props.session_expiry = Some(10);
        c.will = Some(LastWill {
            topic: "g".into(),
            delay: Some(60),
            ..LastWill::default()
        });
        assert_eq!(
            negotiate(&c, &Limits::default(), id).unwrap().will_delay,
            10
        );
        c.will.as_mut().unwrap().topic = "a/#".into();
        assert_eq!(
            negotiate(&c, &Limits::default(), id),
            Err(ReasonCode::TopicNameInvalid)
        );
        c.will.as_mut().unwrap().topic = "g".into();
        c.will.as_mut().unwrap().payload = vec![0u8; 2001].into();
        assert_eq!(
            negotiate(&c, &Limits::default(), id),
            Err(ReasonCode::PacketTooLarge)
        );
    }

    #[test]
    fn v5_connack_advertises_the_contract() {
        let n = negotiate(&connect(ProtocolVersion::V5), &Limits::default(), id).unwrap();
        let a = connack_success(&n, true, &Limits::default());
        assert!(a.session_present);
        assert_eq!(a.props.retain_available, Some(false));
        assert_eq!(a.props.wildcard_sub_available, Some(false));
        assert_eq!(a.props.shared_sub_available, Some(false));
        assert_eq!(a.props.topic_alias_max, Some(0));
        assert_eq!(a.props.max_packet_size, Some(1024 * 1024));
        assert_eq!(a.props.server_keep_alive, None);
    }

    #[test]
    fn refusals_map_to_v4_codes() {
        let a = connack_refusal(ProtocolVersion::V4, ReasonCode::NotAuthorized, Some("x"));
        assert_eq!(a.code, 5);
        assert!(a.props.reason_string.is_none());
        let a = connack_refusal(ProtocolVersion::V5, ReasonCode::NotAuthorized, Some("x"));
        assert_eq!(a.code, 0x87);
        assert_eq!(a.props.reason_string.as_deref(), Some("x"));
    }
}
