//! How a connection ends, in one place: the error a packet handler returns (`ConnError`, one
//! variant per fault of the client's), the server's own reasons (`ServerEnd`: takeover,
//! shutdown, slow consumer, keep-alive, expired or revoked credentials), and every mapping from a cause to what the world sees of it — the reason
//! code of the DISCONNECT, the CONNACK outcome metric, the `hubmq_disconnects_total` label, the
//! Web PubSub upstream's `disconnected` reason text and Event Grid's `disconnectionReason`.
//!
//! Handlers name the fault; they never pick a reason code. Adding a fault means adding a variant
//! here, and the compiler then points at every mapping that must say what it means.

use hubmq_auth::eventgrid::EgTokenError;
use hubmq_core::mqtt::{CodecError, ReasonCode};
use hubmq_metrics::{ConnectOutcome, DisconnectReason};

/// Why the reader stopped; decides whether the will is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Client DISCONNECT 0x00: no will.
    Clean,
    /// Client DISCONNECT 0x04, or any abnormal end: the will is due.
    WithWill,
}

/// A feature a personality refuses by contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    QoS2,
    Retain,
    SubscriptionIdentifiers,
    /// Client topic aliases (Web PubSub accepts none).
    TopicAliases,
}

/// A reason to end a connection, decided while handling its input. Every variant but `Closed`
/// and `Goodbye` is answered with a DISCONNECT (v5) carrying `reason()` before the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    /// Bytes that do not decode as MQTT (0x81).
    Malformed(&'static str),
    /// A packet that breaks MQTT's rules (0x82).
    Protocol(&'static str),
    /// A packet over the maximum packet size (0x95).
    PacketTooLarge,
    /// More QoS 2 flows open than the Receive Maximum we announced (0x93).
    ReceiveMaximumExceeded,
    /// A topic alias that is out of range or was never set (0x94).
    TopicAlias(&'static str),
    /// A feature the personality refuses (0x9B, 0x9A, 0xA1, 0x94).
    Unsupported(Feature),
    /// Credentials that do not (or no longer) hold (0x87).
    NotAuthorized(&'static str),
    /// A publish rate far over the quota (0x96).
    RateTooHigh(&'static str),
    /// Input valid MQTT but refused by the personality's contract (0x83).
    Refused(&'static str),
    /// A refusal whose code a policy decided (Event Grid's publish refusal table).
    Policy(ReasonCode, &'static str),
    /// Already answered (a CONNACK refusal, a WebSocket close) or the transport is gone:
    /// nothing more is sent.
    Closed,
    /// The client's own DISCONNECT; `will` when it was 0x04 (Disconnect with Will Message).
    Goodbye { will: bool },
}

impl ConnError {
    /// The reason code of the DISCONNECT that ends the connection; `None` = no DISCONNECT.
    pub fn reason(self) -> Option<ReasonCode> {
        Some(match self {
            ConnError::Malformed(_) => ReasonCode::MalformedPacket,
            ConnError::Protocol(_) => ReasonCode::ProtocolError,
            ConnError::PacketTooLarge => ReasonCode::PacketTooLarge,
            ConnError::ReceiveMaximumExceeded => ReasonCode::ReceiveMaximumExceeded,
            ConnError::TopicAlias(_) => ReasonCode::TopicAliasInvalid,
            ConnError::Unsupported(Feature::QoS2) => ReasonCode::QoSNotSupported,
            ConnError::Unsupported(Feature::Retain) => ReasonCode::RetainNotSupported,
            ConnError::Unsupported(Feature::SubscriptionIdentifiers) => {
                ReasonCode::SubscriptionIdentifiersNotSupported
            }
            ConnError::Unsupported(Feature::TopicAliases) => ReasonCode::TopicAliasInvalid,
            ConnError::NotAuthorized(_) => ReasonCode::NotAuthorized,
            ConnError::RateTooHigh(_) => ReasonCode::MessageRateTooHigh,
            ConnError::Refused(_) => ReasonCode::ImplementationSpecificError,
            ConnError::Policy(rc, _) => rc,
            ConnError::Closed | ConnError::Goodbye { .. } => return None,
        })
    }

    /// The reason string sent with the DISCONNECT (v5) and logged.
    pub fn detail(self) -> Option<&'static str> {
        Some(match self {
            ConnError::Malformed(t)
            | ConnError::Protocol(t)
            | ConnError::TopicAlias(t)
            | ConnError::NotAuthorized(t)
            | ConnError::RateTooHigh(t)
            | ConnError::Refused(t)
            | ConnError::Policy(_, t) => t,
            ConnError::PacketTooLarge => "packet too large",
            ConnError::ReceiveMaximumExceeded => "receive maximum exceeded",
            ConnError::Unsupported(Feature::QoS2) => "QoS 2 is not supported",
            ConnError::Unsupported(Feature::Retain) => "retained messages are disabled",
            ConnError::Unsupported(Feature::SubscriptionIdentifiers) => {
                "subscription identifiers are not supported"
            }
            ConnError::Unsupported(Feature::TopicAliases) => "topic aliases are not supported",
            ConnError::Closed | ConnError::Goodbye { .. } => return None,
        })
    }

    /// Whether the will is due: only a client's plain DISCONNECT (0x00) cancels it.
    pub fn end(self) -> End {
        match self {
            ConnError::Goodbye { will: false } => End::Clean,
            _ => End::WithWill,
        }
    }
}

impl From<CodecError> for ConnError {
    fn from(e: CodecError) -> ConnError {
        match e {
            CodecError::Malformed(t) => ConnError::Malformed(t),
            CodecError::ProtocolViolation(t) => ConnError::Protocol(t),
            CodecError::PacketTooLarge => ConnError::PacketTooLarge,
            // Answered with a CONNACK by the reader, which knows the level it refuses.
            CodecError::UnsupportedProtocol(_) => ConnError::Closed,
        }
    }
}

/// Why the server ends a connection on its own (not because of what the client sent): the
/// reason code and text of the DISCONNECT (v5; v3.1.1 clients are just closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEnd {
    /// Nothing received for 1.5 × the keep-alive [MQTT-3.1.2-22].
    KeepAliveTimeout,
    /// A new connection took the session [MQTT-3.1.4-3].
    TakenOver,
    /// The broker stops (SIGTERM, systemctl stop).
    ShuttingDown,
    /// The session queue overflowed while the connection was online: a slow consumer.
    SlowConsumer,
    /// Event Grid: the token's expiry passed without a re-authentication.
    TokenExpired,
    /// Event Grid: a reload removed or disabled the client.
    CredentialsRevoked,
}

impl ServerEnd {
    pub fn reason(self) -> ReasonCode {
        match self {
            ServerEnd::KeepAliveTimeout => ReasonCode::KeepAliveTimeout,
            ServerEnd::TakenOver => ReasonCode::SessionTakenOver,
            ServerEnd::ShuttingDown => ReasonCode::ServerShuttingDown,
            ServerEnd::SlowConsumer => ReasonCode::QuotaExceeded,
            ServerEnd::TokenExpired | ServerEnd::CredentialsRevoked => ReasonCode::NotAuthorized,
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            ServerEnd::KeepAliveTimeout => "keep alive timeout",
            ServerEnd::TakenOver => "session taken over",
            ServerEnd::ShuttingDown => "server shutting down",
            ServerEnd::SlowConsumer => "session queue full",
            ServerEnd::TokenExpired => "token expired",
            ServerEnd::CredentialsRevoked => "client removed or disabled",
        }
    }
}

/// The v5 code a refused Event Grid token gets (§3, §7: oversized data 0x95, else 0x87).
pub fn token_reason(e: &EgTokenError) -> ReasonCode {
    match e {
        EgTokenError::TooLarge => ReasonCode::PacketTooLarge,
        _ => ReasonCode::NotAuthorized,
    }
}

/// The `hubmq_connects_total` outcome of a refused CONNECT.
pub fn connect_outcome(rc: ReasonCode) -> ConnectOutcome {
    match rc {
        ReasonCode::UnsupportedProtocolVersion => ConnectOutcome::UnsupportedProtocol,
        ReasonCode::ClientIdentifierNotValid => ConnectOutcome::ClientIdRejected,
        ReasonCode::NotAuthorized
        | ReasonCode::BadUserNameOrPassword
        | ReasonCode::BadAuthenticationMethod => ConnectOutcome::NotAuthorized,
        ReasonCode::ServerBusy | ReasonCode::QuotaExceeded => ConnectOutcome::ServerBusy,
        ReasonCode::ServerUnavailable => ConnectOutcome::ServerUnavailable,
        _ => ConnectOutcome::Malformed,
    }
}

/// The `hubmq_disconnects_total` reason of a connection that ended: the server's own reason
/// code if it disconnected the client, else whether the client said goodbye (no will due).
pub fn disconnect_metric(server: Option<ReasonCode>, will: bool) -> DisconnectReason {
    match server {
        Some(ReasonCode::ServerShuttingDown) => DisconnectReason::Shutdown,
        Some(ReasonCode::SessionTakenOver) => DisconnectReason::TakenOver,
        Some(ReasonCode::KeepAliveTimeout) => DisconnectReason::KeepAliveTimeout,
        Some(ReasonCode::QuotaExceeded) => DisconnectReason::SlowConsumer,
        Some(ReasonCode::PacketTooLarge) => DisconnectReason::PacketTooLarge,
        Some(ReasonCode::AdministrativeAction) => DisconnectReason::Server,
        Some(_) => DisconnectReason::ProtocolError,
        None if will => DisconnectReason::PeerClosed,
        None => DisconnectReason::Client,
    }
}

/// The reason text of the Web PubSub upstream `disconnected` event when the server ended the
/// connection with `rc` (`webpubsub-upstream.md` §7).
pub fn upstream_reason(rc: ReasonCode) -> &'static str {
    match rc {
        ReasonCode::KeepAliveTimeout => ServerEnd::KeepAliveTimeout.detail(),
        ReasonCode::SessionTakenOver => ServerEnd::TakenOver.detail(),
        ReasonCode::ServerShuttingDown => ServerEnd::ShuttingDown.detail(),
        ReasonCode::AdministrativeAction => "closed by server API",
        ReasonCode::QuotaExceeded => ServerEnd::SlowConsumer.detail(),
        ReasonCode::PacketTooLarge => "packet too large",
        other => other.name(),
    }
}

/// Event Grid's `disconnectionReason` name for how a connection ended (§8); the numbers are
/// ours, the names are the service's.
pub fn eg_disconnection_reason(
    server: Option<ReasonCode>,
    client_said_goodbye: bool,
) -> &'static str {
    match server {
        None if client_said_goodbye => "ClientInitiatedDisconnect",
        None | Some(ReasonCode::KeepAliveTimeout) => "ConnectionLost",
        Some(ReasonCode::NotAuthorized) => "ClientAuthenticationError",
        Some(ReasonCode::SessionTakenOver) => "SessionTakenOver",
        Some(ReasonCode::ServerShuttingDown) => "ServerInitiatedDisconnect",
        Some(ReasonCode::QuotaExceeded | ReasonCode::MessageRateTooHigh) => "QuotaExceeded",
        Some(ReasonCode::UnspecifiedError) => "ServerError",
        Some(_) => "ClientError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_goodbye_cancels_the_will() {
        assert_eq!(ConnError::Goodbye { will: false }.end(), End::Clean);
        assert_eq!(ConnError::Goodbye { will: true }.end(), End::WithWill);
        assert_eq!(ConnError::Protocol("x").end(), End::WithWill);
        assert_eq!(ConnError::Closed.end(), End::WithWill);
    }

    #[test]
    fn silent_ends_send_no_disconnect() {
        for e in [ConnError::Closed, ConnError::Goodbye { will: true }] {
            assert_eq!(e.reason(), None);
            assert_eq!(e.detail(), None);
        }
    }

    #[test]
    fn faults_map_to_their_reason_codes() {
        let cases = [
            (ConnError::Malformed("m"), 0x81),
            (ConnError::Protocol("p"), 0x82),
            (ConnError::Refused("r"), 0x83),
            (ConnError::NotAuthorized("n"), 0x87),
            (ConnError::ReceiveMaximumExceeded, 0x93),
            (ConnError::TopicAlias("t"), 0x94),
            (ConnError::PacketTooLarge, 0x95),
            (ConnError::RateTooHigh("r"), 0x96),
            (ConnError::Unsupported(Feature::Retain), 0x9A),
            (ConnError::Unsupported(Feature::QoS2), 0x9B),
            (
                ConnError::Unsupported(Feature::SubscriptionIdentifiers),
                0xA1,
            ),
            (ConnError::Policy(ReasonCode::TopicNameInvalid, "x"), 0x90),
        ];
        for (e, code) in cases {
            assert_eq!(e.reason().map(ReasonCode::as_u8), Some(code), "{e:?}");
            assert!(e.detail().is_some_and(|d| !d.is_empty()), "{e:?}");
        }
    }

    #[test]
    fn codec_errors_keep_their_text() {
        assert_eq!(
            ConnError::from(CodecError::Malformed("bad varint")),
            ConnError::Malformed("bad varint")
        );
        assert_eq!(
            ConnError::from(CodecError::PacketTooLarge).reason(),
            Some(ReasonCode::PacketTooLarge)
        );
        assert_eq!(
            ConnError::from(CodecError::UnsupportedProtocol(3)),
            ConnError::Closed
        );
    }

    #[test]
    fn server_ends_carry_their_codes() {
        let cases = [
            (ServerEnd::KeepAliveTimeout, 0x8D),
            (ServerEnd::TakenOver, 0x8E),
            (ServerEnd::ShuttingDown, 0x8B),
            (ServerEnd::SlowConsumer, 0x97),
            (ServerEnd::TokenExpired, 0x87),
            (ServerEnd::CredentialsRevoked, 0x87),
        ];
        for (e, code) in cases {
            assert_eq!(e.reason().as_u8(), code, "{e:?}");
        }
        // The upstream hears the same words the client read.
        assert_eq!(
            upstream_reason(ServerEnd::TakenOver.reason()),
            "session taken over"
        );
        assert_eq!(
            disconnect_metric(Some(ServerEnd::SlowConsumer.reason()), true),
            DisconnectReason::SlowConsumer
        );
    }

    #[test]
    fn metrics_and_event_names() {
        assert_eq!(disconnect_metric(None, false), DisconnectReason::Client);
        assert_eq!(disconnect_metric(None, true), DisconnectReason::PeerClosed);
        assert_eq!(
            disconnect_metric(Some(ReasonCode::QuotaExceeded), true),
            DisconnectReason::SlowConsumer
        );
        assert_eq!(
            connect_outcome(ReasonCode::BadAuthenticationMethod),
            ConnectOutcome::NotAuthorized
        );
        assert_eq!(
            eg_disconnection_reason(None, true),
            "ClientInitiatedDisconnect"
        );
        assert_eq!(eg_disconnection_reason(None, false), "ConnectionLost");
        assert_eq!(
            eg_disconnection_reason(Some(ReasonCode::ProtocolError), false),
            "ClientError"
        );
        assert_eq!(
            upstream_reason(ReasonCode::AdministrativeAction),
            "closed by server API"
        );
        assert_eq!(
            token_reason(&EgTokenError::TooLarge),
            ReasonCode::PacketTooLarge
        );
    }
}
