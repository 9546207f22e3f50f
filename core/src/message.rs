//! A published message as it travels through the broker: received once, reference-counted,
//! and encoded at most once per (protocol version, delivered QoS) however many subscribers get it.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::mqtt::{encode_publish_parts, ProtocolVersion, PublishParts, PublishProps, QoS};

/// Immutable after creation; shared across workers behind an `Arc`.
#[derive(Debug)]
pub struct Message {
    /// Topic as delivered (the group name, or a server topic such as `$webpubsub/server/messages`).
    pub topic: Arc<str>,
    pub payload: Bytes,
    /// v5 properties forwarded to v5 subscribers unchanged (topic alias never set).
    pub props: PublishProps,
    /// QoS the message was published with; a delivery uses min(this, granted).
    pub qos: QoS,
    /// Serial of the publishing session (0 = no session, e.g. a will or a server send), for the
    /// v5 No Local subscription option.
    pub origin: u64,
    /// Absolute expiry in milliseconds on the broker's clock (v5 Message Expiry Interval).
    pub expires_at_ms: Option<u64>,
    /// The RETAIN flag this message is delivered with: set only on copies sent from a retained
    /// store to a new subscription (live deliveries carry 0 [MQTT-3.3.1-12]), and on a will
    /// published with retain so the broker knows to store it.
    pub retain: bool,
    /// Encodings cache, index = version * 3 + qos. `OnceLock` because the same message may be
    /// encoded by several workers; the first one wins, the rest reuse its bytes.
    encoded: [OnceLock<PublishParts>; 6],
}

impl Message {
    pub fn new(
        topic: Arc<str>,
        payload: Bytes,
        mut props: PublishProps,
        qos: QoS,
        origin: u64,
        now_ms: u64,
    ) -> Message {
        props.topic_alias = None;
        // Subscription identifiers belong to a delivery, never to the message itself.
        props.subscription_ids.clear();
        let expires_at_ms = props
            .message_expiry
            .filter(|s| *s > 0)
            .map(|s| now_ms + u64::from(s) * 1000);
        Message {
            topic,
            payload,
            props,
            qos,
            origin,
            expires_at_ms,
            retain: false,
            encoded: Default::default(),
        }
    }

    /// This message with another RETAIN flag (payload and properties shared, encodings fresh).
    /// `expires_at_ms` replaces the expiry when the copy has none of its own (v3.1.1 retained
    /// messages live a year in Event Grid).
    pub fn with_retain(&self, retain: bool, default_expiry_ms: Option<u64>) -> Message {
        Message {
            topic: self.topic.clone(),
            payload: self.payload.clone(),
            props: self.props.clone(),
            qos: self.qos,
            origin: self.origin,
            expires_at_ms: self.expires_at_ms.or(default_expiry_ms),
            retain,
            encoded: Default::default(),
        }
    }

    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expires_at_ms, Some(t) if now_ms >= t)
    }

    /// Wire size estimate used for queue accounting.
    #[inline]
    pub fn cost(&self) -> usize {
        self.payload.len() + self.topic.len() + 16
    }

    /// The shared encoding for `version` at delivered QoS `qos` (DUP = 0, RETAIN = `retain`). Messages
    /// with an expiry are re-encoded per delivery by `encode_fresh` since the remaining interval
    /// changes with time.
    pub fn encoded(&self, version: ProtocolVersion, qos: QoS) -> &PublishParts {
        let idx = match version {
            ProtocolVersion::V4 => 0,
            ProtocolVersion::V5 => 3,
        } + qos as usize;
        self.encoded[idx].get_or_init(|| self.encode_fresh(version, qos, false, None))
    }

    /// A one-off encoding: retransmission with DUP set, or a remaining expiry interval.
    pub fn encode_fresh(
        &self,
        version: ProtocolVersion,
        qos: QoS,
        dup: bool,
        remaining_expiry: Option<u32>,
    ) -> PublishParts {
        let props;
        let p = match remaining_expiry {
            Some(secs) => {
                props = PublishProps {
                    message_expiry: Some(secs.max(1)),
                    ..self.props.clone()
                };
                &props
            }
            None => &self.props,
        };
        let empty = PublishProps::default();
        let p = if version == ProtocolVersion::V4 {
            &empty
        } else {
            p
        };
        encode_publish_parts(
            &self.topic,
            qos,
            self.retain,
            dup,
            p,
            &self.payload,
            version,
        )
    }
}
