//! `[limits]`: protocol and resource bounds, their defaults and ranges, and the protocol part
//! handed to `hubmq_core`.

use serde::{Deserialize, Serialize};

use super::range;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest MQTT packet accepted (v5 CONNACK advertises it); 128 B ..= 256 MiB - 1.
    pub max_packet_size: u32,
    /// Keep alive requested by clients is lowered to this (v5 `Server Keep Alive`).
    pub max_keepalive_secs: u16,
    pub max_session_expiry_secs: u32,
    /// Session expiry for v3.1.1 persistent sessions (which cannot ask for one).
    pub default_session_expiry_secs: u32,
    /// Per-connection outbound queue bound; QoS 0 beyond it is dropped.
    pub outbound_queue_bytes: usize,
    /// Offline queue bounds of a persistent session.
    pub session_queue_messages: usize,
    pub session_queue_bytes: usize,
    pub max_connections: usize,
    /// v5 Receive Maximum we advertise: in-flight QoS 1/2 a client may send us.
    pub receive_maximum: u16,
    /// Outbound in-flight QoS 1/2 window per connection (also bounded by the client's Receive
    /// Maximum).
    pub max_inflight: u16,
    pub will_payload_max: usize,
    /// Largest WebSocket frame; `None` = `max_packet_size + 16`, see [`Limits::max_ws_frame`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ws_frame: Option<usize>,
    pub max_http_head: usize,
    /// Longest topic (= group name) in bytes.
    pub max_topic_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: 1024 * 1024,
            max_keepalive_secs: 1160,
            max_session_expiry_secs: 86_400,
            default_session_expiry_secs: 3600,
            outbound_queue_bytes: 1024 * 1024,
            session_queue_messages: 1000,
            session_queue_bytes: 1024 * 1024,
            max_connections: 1_000_000,
            receive_maximum: 1000,
            max_inflight: 100,
            will_payload_max: 2000,
            max_ws_frame: None,
            max_http_head: 16 * 1024,
            max_topic_len: 1024,
        }
    }
}

impl Limits {
    /// The WebSocket frame bound: the configured one, or the largest packet plus the longest
    /// frame header (14 bytes, RFC 6455 §5.2) rounded up.
    // Part of the config API for the WebSocket codec settings; allowed until main wires it.
    #[allow(dead_code)]
    pub fn max_ws_frame(&self) -> usize {
        self.max_ws_frame
            .unwrap_or(self.max_packet_size as usize + 16)
    }
}

impl From<&Limits> for hubmq_core::limits::Limits {
    /// The limits the protocol machinery enforces; `max_connections`, `max_http_head` and
    /// `max_ws_frame` belong to the network settings instead.
    fn from(l: &Limits) -> Self {
        hubmq_core::limits::Limits {
            max_packet_size: l.max_packet_size,
            max_keepalive_secs: l.max_keepalive_secs,
            max_session_expiry_secs: l.max_session_expiry_secs,
            default_session_expiry_secs: l.default_session_expiry_secs,
            outbound_queue_bytes: l.outbound_queue_bytes,
            session_queue_messages: l.session_queue_messages,
            session_queue_bytes: l.session_queue_bytes,
            receive_maximum: l.receive_maximum,
            max_inflight: l.max_inflight,
            will_payload_max: l.will_payload_max,
            max_topic_len: l.max_topic_len,
        }
    }
}

/// Hard ceiling of the MQTT remaining length (MQTT 5 §1.5.5): 268,435,455 bytes.
const MQTT_MAX_PACKET: u32 = 268_435_455;

impl Limits {
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        let l = self;
        range(
            "limits.max_packet_size",
            l.max_packet_size.into(),
            128,
            MQTT_MAX_PACKET.into(),
        )?;
        range(
            "limits.max_keepalive_secs",
            l.max_keepalive_secs.into(),
            1,
            65_535,
        )?;
        range(
            "limits.max_session_expiry_secs",
            l.max_session_expiry_secs.into(),
            0,
            u32::MAX.into(),
        )?;
        range(
            "limits.default_session_expiry_secs",
            l.default_session_expiry_secs.into(),
            0,
            l.max_session_expiry_secs.into(),
        )?;
        let packet = u64::from(l.max_packet_size);
        // A queue smaller than one packet could never hold a largest message, which would then
        // always be dropped: refuse rather than lose messages silently.
        range(
            "limits.outbound_queue_bytes",
            l.outbound_queue_bytes as u64,
            packet,
            1 << 40,
        )?;
        range(
            "limits.session_queue_messages",
            l.session_queue_messages as u64,
            1,
            10_000_000,
        )?;
        range(
            "limits.session_queue_bytes",
            l.session_queue_bytes as u64,
            packet,
            1 << 40,
        )?;
        range(
            "limits.max_connections",
            l.max_connections as u64,
            1,
            100_000_000,
        )?;
        range(
            "limits.receive_maximum",
            l.receive_maximum.into(),
            1,
            65_535,
        )?;
        range("limits.max_inflight", l.max_inflight.into(), 1, 65_535)?;
        range(
            "limits.will_payload_max",
            l.will_payload_max as u64,
            0,
            packet,
        )?;
        if let Some(frame) = l.max_ws_frame {
            range("limits.max_ws_frame", frame as u64, 128, 1 << 31)?;
        }
        range(
            "limits.max_http_head",
            l.max_http_head as u64,
            1024,
            1 << 20,
        )?;
        range("limits.max_topic_len", l.max_topic_len as u64, 1, 65_535)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Limits;

    #[test]
    fn default_limits_convert_to_the_core_defaults() {
        let core: hubmq_core::limits::Limits = (&Limits::default()).into();
        assert_eq!(core, hubmq_core::limits::Limits::default());
    }
}
