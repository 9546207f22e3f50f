//! MQTT 5 reason codes (OASIS MQTT 5.0 §2.4) and v3.1.1 CONNACK return codes.
//!
//! Every error in the broker is mapped to one of these in exactly one place (`ConnError::reason`
//! in the connection state machine); nothing else picks codes ad hoc.

/// v5 reason code. Named after the spec; the numeric value is the wire byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReasonCode {
    Success = 0x00,
    GrantedQoS1 = 0x01,
    GrantedQoS2 = 0x02,
    DisconnectWithWill = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C,
    KeepAliveTimeout = 0x8D,
    SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QoSNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E,
    ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0,
    SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2,
}

impl ReasonCode {
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The v3.1.1 CONNACK return code closest to a v5 CONNACK reason (MQTT 3.1.1 §3.2.2.3).
    pub fn v4_connack_code(self) -> u8 {
        match self {
            ReasonCode::Success => 0,
            ReasonCode::UnsupportedProtocolVersion => 1,
            ReasonCode::ClientIdentifierNotValid => 2,
            ReasonCode::BadUserNameOrPassword | ReasonCode::BadAuthenticationMethod => 4,
            ReasonCode::NotAuthorized | ReasonCode::Banned => 5,
            _ => 3,
        }
    }

    /// Short, stable, lower-case name for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            ReasonCode::Success => "success",
            ReasonCode::GrantedQoS1 => "granted_qos1",
            ReasonCode::GrantedQoS2 => "granted_qos2",
            ReasonCode::DisconnectWithWill => "disconnect_with_will",
            ReasonCode::NoMatchingSubscribers => "no_matching_subscribers",
            ReasonCode::NoSubscriptionExisted => "no_subscription_existed",
            ReasonCode::ContinueAuthentication => "continue_authentication",
            ReasonCode::ReAuthenticate => "re_authenticate",
            ReasonCode::UnspecifiedError => "unspecified_error",
            ReasonCode::MalformedPacket => "malformed_packet",
            ReasonCode::ProtocolError => "protocol_error",
            ReasonCode::ImplementationSpecificError => "implementation_specific_error",
            ReasonCode::UnsupportedProtocolVersion => "unsupported_protocol_version",
            ReasonCode::ClientIdentifierNotValid => "client_identifier_not_valid",
            ReasonCode::BadUserNameOrPassword => "bad_username_or_password",
            ReasonCode::NotAuthorized => "not_authorized",
            ReasonCode::ServerUnavailable => "server_unavailable",
            ReasonCode::ServerBusy => "server_busy",
            ReasonCode::Banned => "banned",
            ReasonCode::ServerShuttingDown => "server_shutting_down",
            ReasonCode::BadAuthenticationMethod => "bad_authentication_method",
            ReasonCode::KeepAliveTimeout => "keep_alive_timeout",
            ReasonCode::SessionTakenOver => "session_taken_over",
            ReasonCode::TopicFilterInvalid => "topic_filter_invalid",
            ReasonCode::TopicNameInvalid => "topic_name_invalid",
            ReasonCode::PacketIdentifierInUse => "packet_identifier_in_use",
            ReasonCode::PacketIdentifierNotFound => "packet_identifier_not_found",
            ReasonCode::ReceiveMaximumExceeded => "receive_maximum_exceeded",
            ReasonCode::TopicAliasInvalid => "topic_alias_invalid",
            ReasonCode::PacketTooLarge => "packet_too_large",
            ReasonCode::MessageRateTooHigh => "message_rate_too_high",
            ReasonCode::QuotaExceeded => "quota_exceeded",
            ReasonCode::AdministrativeAction => "administrative_action",
            ReasonCode::PayloadFormatInvalid => "payload_format_invalid",
            ReasonCode::RetainNotSupported => "retain_not_supported",
            ReasonCode::QoSNotSupported => "qos_not_supported",
            ReasonCode::UseAnotherServer => "use_another_server",
            ReasonCode::ServerMoved => "server_moved",
            ReasonCode::SharedSubscriptionsNotSupported => "shared_subscriptions_not_supported",
            ReasonCode::ConnectionRateExceeded => "connection_rate_exceeded",
            ReasonCode::MaximumConnectTime => "maximum_connect_time",
            ReasonCode::SubscriptionIdentifiersNotSupported => {
                "subscription_identifiers_not_supported"
            }
            ReasonCode::WildcardSubscriptionsNotSupported => "wildcard_subscriptions_not_supported",
        }
    }
}
