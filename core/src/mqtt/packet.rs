//! Version-neutral MQTT packet types.
//!
//! One type per packet, shared by MQTT 3.1.1 (protocol level 4) and 5.0 (level 5). Fields that
//! exist only in v5 (properties, reason codes) are simply left at their defaults for v3.1.1 and
//! ignored by the v3.1.1 encoder. Payloads are `Bytes` split off the receive buffer, so a PUBLISH
//! payload is never copied after it is read.

use bytes::Bytes;

/// MQTT protocol level, from CONNECT. Level 3 (3.1) is refused before this type is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

impl ProtocolVersion {
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V4 => 4,
            ProtocolVersion::V5 => 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// A v5 user property (name, value); order and duplicates are significant.
pub type UserProperty = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubAck),
    PubRec(PubAck),
    PubRel(PubAck),
    PubComp(PubAck),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    pub protocol: Option<ProtocolVersion>,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub will: Option<LastWill>,
    pub props: ConnectProps,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProps {
    pub session_expiry: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub max_packet_size: Option<u32>,
    pub topic_alias_max: Option<u16>,
    pub request_response_info: Option<u8>,
    pub request_problem_info: Option<u8>,
    pub user_properties: Vec<UserProperty>,
    pub auth_method: Option<String>,
    pub auth_data: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastWill {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// v5 Will Delay Interval (seconds).
    pub delay: Option<u32>,
    /// v5 will properties that travel with the message (same set as PUBLISH, minus alias).
    pub props: PublishProps,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    pub session_present: bool,
    /// v5 reason code, or the v3.1.1 return code (0..=5).
    pub code: u8,
    pub props: ConnAckProps,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProps {
    pub session_expiry: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub max_qos: Option<u8>,
    pub retain_available: Option<bool>,
    pub max_packet_size: Option<u32>,
    pub assigned_client_id: Option<String>,
    pub topic_alias_max: Option<u16>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
    pub wildcard_sub_available: Option<bool>,
    pub sub_ids_available: Option<bool>,
    pub shared_sub_available: Option<bool>,
    pub server_keep_alive: Option<u16>,
    pub response_info: Option<String>,
    pub server_reference: Option<String>,
    pub auth_method: Option<String>,
    pub auth_data: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: String,
    /// 0 for QoS 0.
    pub pkid: u16,
    pub payload: Bytes,
    pub props: PublishProps,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProps {
    pub payload_format: Option<u8>,
    pub message_expiry: Option<u32>,
    pub topic_alias: Option<u16>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
    pub subscription_ids: Vec<u32>,
    pub content_type: Option<String>,
}

impl PublishProps {
    pub fn is_empty(&self) -> bool {
        *self == PublishProps::default()
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PubAck {
    pub pkid: u16,
    /// v5 reason code; always 0 on v3.1.1.
    pub reason: u8,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

impl PubAck {
    pub fn new(pkid: u16, reason: u8) -> PubAck {
        PubAck {
            pkid,
            reason,
            ..PubAck::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscribe {
    pub pkid: u16,
    pub filters: Vec<SubscribeFilter>,
    pub subscription_id: Option<u32>,
    pub user_properties: Vec<UserProperty>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeFilter {
    pub path: String,
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubAck {
    pub pkid: u16,
    /// Granted QoS (0..=2) or a failure code (v5 reason / 0x80 on v3.1.1), one per filter.
    pub reasons: Vec<u8>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unsubscribe {
    pub pkid: u16,
    pub filters: Vec<String>,
    pub user_properties: Vec<UserProperty>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnsubAck {
    pub pkid: u16,
    /// v5 only: one reason per filter (0x00 success, 0x11 no subscription existed, ...).
    pub reasons: Vec<u8>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason: u8,
    pub session_expiry: Option<u32>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
    pub server_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    pub reason: u8,
    pub method: Option<String>,
    pub data: Option<Bytes>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}
