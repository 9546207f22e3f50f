//! Limits the protocol machinery enforces, resolved from configuration once at start-up.

/// Protocol limits. Defaults are the documented ones (spec/config.md, webpubsub-mqtt.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest MQTT packet accepted (and advertised in the v5 CONNACK).
    pub max_packet_size: u32,
    /// Largest keep-alive granted; v5 clients asking for more get `Server Keep Alive`.
    pub max_keepalive_secs: u16,
    /// Cap on any session expiry interval.
    pub max_session_expiry_secs: u32,
    /// Session expiry used for v3.1.1 persistent sessions (clean session = 0).
    pub default_session_expiry_secs: u32,
    /// Outbound bytes queued for a connection before QoS 0 is dropped / the consumer is slow.
    pub outbound_queue_bytes: usize,
    /// Messages and bytes queued per session beyond the in-flight window (and while offline).
    pub session_queue_messages: usize,
    pub session_queue_bytes: usize,
    /// Receive Maximum advertised to v5 clients (inbound QoS 1/2 window).
    pub receive_maximum: u16,
    /// Outbound in-flight window cap (also bounded by the client's Receive Maximum).
    pub max_inflight: u16,
    /// Largest will payload.
    pub will_payload_max: usize,
    /// Largest topic / group name in bytes.
    pub max_topic_len: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_packet_size: 1024 * 1024,
            max_keepalive_secs: 1160,
            max_session_expiry_secs: 86_400,
            default_session_expiry_secs: 3600,
            outbound_queue_bytes: 1024 * 1024,
            session_queue_messages: 1000,
            session_queue_bytes: 1024 * 1024,
            receive_maximum: 1000,
            max_inflight: 100,
            will_payload_max: 2000,
            max_topic_len: 1024,
        }
    }
}
