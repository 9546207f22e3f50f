//! Per-worker hot-path counters and the small label enums that bound every label set.
//!
//! A [`CoreCounters`] is owned by exactly one worker thread and is plain integers: the worker
//! bumps fields directly (no atomics, no registry lookups) and calls [`CoreCounters::flush`]
//! about once a second. Flush is the only code that touches `metrics` handles; it adds the
//! counter deltas since the previous flush and sets the gauges. This module must not read the
//! clock or do I/O.

use metrics::{Counter, Gauge};

use crate::{labels, names};

/// Defines a fieldless enum used as a label value, with `ALL`, `COUNT`, `label()` and
/// `index()` so counters can be fixed arrays indexed by the enum instead of maps.
macro_rules! label_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// Every variant, in index order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Number of variants: the length of arrays indexed by this enum.
            pub const COUNT: usize = Self::ALL.len();

            /// The Prometheus label value.
            pub const fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }

            /// Position in arrays indexed by this enum.
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

label_enum! {
    /// How a connection reached us.
    Transport {
        Tcp => "tcp",
        Tls => "tls",
        Ws => "ws",
        Wss => "wss",
    }
}

label_enum! {
    /// MQTT protocol level of a connection (4 = 3.1.1, 5 = 5.0).
    Protocol {
        V4 => "v4",
        V5 => "v5",
    }
}

label_enum! {
    /// Result of a connection attempt, for `hubmq_connects_total{result}`.
    ConnectOutcome {
        Accepted => "accepted",
        /// Bad HTTP head, bad WebSocket upgrade or a malformed CONNECT.
        Malformed => "malformed",
        /// Protocol level other than 4 or 5.
        UnsupportedProtocol => "unsupported_protocol",
        /// Client identifier refused (e.g. empty with a persistent v3.1.1 session).
        ClientIdRejected => "client_id_rejected",
        /// Missing, expired or badly signed token, or the upstream refused.
        NotAuthorized => "not_authorized",
        /// Invalid hub name, or undeclared with `strict_hubs`.
        HubNotFound => "hub_not_found",
        /// `max_connections` reached.
        ServerBusy => "server_busy",
        /// The upstream `connect` handler failed or timed out.
        ServerUnavailable => "server_unavailable",
        /// No complete HTTP head or CONNECT within `connect_timeout_secs`.
        Timeout => "timeout",
    }
}

label_enum! {
    /// Why an established connection ended, for `hubmq_disconnects_total{reason}`.
    DisconnectReason {
        /// The client sent DISCONNECT.
        Client => "client",
        /// The socket closed without DISCONNECT.
        PeerClosed => "peer_closed",
        /// No packet within 1.5 × keep alive.
        KeepAliveTimeout => "keepalive_timeout",
        ProtocolError => "protocol_error",
        PacketTooLarge => "packet_too_large",
        /// Another connection took the client id over.
        TakenOver => "taken_over",
        /// Outbound queue over its bound (v5 0x97).
        SlowConsumer => "slow_consumer",
        /// Closed through the REST API.
        Server => "server",
        Shutdown => "shutdown",
        Io => "io_error",
    }
}

label_enum! {
    /// Why a message was not delivered, for `hubmq_messages_dropped_total{reason}`.
    DropReason {
        /// The sender lacks permission for the group.
        Denied => "denied",
        /// A QoS 0 message over a connection's outbound byte bound.
        QueueFull => "queue_full",
        /// Message expiry interval passed while queued.
        Expired => "expired",
        /// The target session vanished (expired) before delivery.
        NoSession => "no_session",
        /// An offline session's queue (messages or bytes) is full.
        SessionQueueFull => "session_queue_full",
        /// Larger than the subscriber's Maximum Packet Size.
        TooLarge => "too_large",
        /// A worker's inbound cross-core queue was full.
        CrossCoreFull => "cross_core_full",
    }
}

label_enum! {
    /// Upstream event kinds, for `hubmq_upstream_requests_total{event}`.
    UpstreamEvent {
        Connect => "connect",
        Connected => "connected",
        Disconnected => "disconnected",
        /// A user event (`$webpubsub/server/events/...`).
        User => "user",
        /// An Event Grid namespace's webhook authentication call.
        EventGridWebhook => "eventgrid_webhook",
    }
}

label_enum! {
    /// Upstream call results, for `hubmq_upstream_requests_total{outcome}`.
    UpstreamOutcome {
        Ok => "ok",
        /// The handler answered with a non-2xx status.
        Rejected => "rejected",
        Timeout => "timeout",
        /// Connection refused, DNS failure, TLS failure, bad response.
        Error => "error",
    }
}

/// QoS levels 0, 1, 2.
const QOS_COUNT: usize = 3;
const QOS_LABELS: [&str; QOS_COUNT] = ["0", "1", "2"];

/// Plain per-worker counters. Owned by one worker thread; not shared, no atomics.
///
/// Counter fields are cumulative since the worker started (the worker only ever adds);
/// gauge fields (`connections`, `sessions`, `outbound_queue_bytes`) hold the current value.
/// Create it after [`crate::install`], inside the worker, so its handles bind to the real
/// recorder.
pub struct CoreCounters {
    pub worker: u16,
    pub messages_received: u64,
    /// Indexed by delivered QoS.
    pub messages_delivered: [u64; QOS_COUNT],
    /// Indexed by [`DropReason::index`].
    pub dropped: [u64; DropReason::COUNT],
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub cross_core_messages: u64,
    pub deliveries_delayed: u64,
    pub cross_core_timeouts: u64,
    /// Indexed by [`ConnectOutcome::index`].
    pub connects: [u64; ConnectOutcome::COUNT],
    /// Indexed by [`DisconnectReason::index`].
    pub disconnects: [u64; DisconnectReason::COUNT],
    /// Live connections, `[transport][protocol]`.
    pub connections: [[i64; Protocol::COUNT]; Transport::COUNT],
    pub sessions: i64,
    pub outbound_queue_bytes: i64,
    flushed: Flushed,
    handles: Handles,
}

/// Counter values as of the last flush, so flush can add only the difference.
#[derive(Default)]
struct Flushed {
    messages_received: u64,
    messages_delivered: [u64; QOS_COUNT],
    dropped: [u64; DropReason::COUNT],
    bytes_received: u64,
    bytes_sent: u64,
    cross_core_messages: u64,
    deliveries_delayed: u64,
    cross_core_timeouts: u64,
    connects: [u64; ConnectOutcome::COUNT],
    disconnects: [u64; DisconnectReason::COUNT],
}

/// Registered once per worker so flush never looks a key up in the registry.
struct Handles {
    messages_received: Counter,
    messages_delivered: [Counter; QOS_COUNT],
    dropped: [Counter; DropReason::COUNT],
    bytes_received: Counter,
    bytes_sent: Counter,
    cross_core_messages: Counter,
    deliveries_delayed: Counter,
    cross_core_timeouts: Counter,
    connects: [Counter; ConnectOutcome::COUNT],
    disconnects: [Counter; DisconnectReason::COUNT],
    connections: [[Gauge; Protocol::COUNT]; Transport::COUNT],
    sessions: Gauge,
    outbound_queue_bytes: Gauge,
}

impl Handles {
    fn register(worker: u16) -> Self {
        let w = worker.to_string();
        let worker_counter =
            |name: &'static str| metrics::counter!(name, labels::WORKER => w.clone());
        let worker_gauge = |name: &'static str| metrics::gauge!(name, labels::WORKER => w.clone());
        Handles {
            messages_received: worker_counter(names::MESSAGES_RECEIVED_TOTAL),
            messages_delivered: std::array::from_fn(|q| {
                metrics::counter!(names::MESSAGES_DELIVERED_TOTAL,
                    labels::WORKER => w.clone(), labels::QOS => QOS_LABELS[q])
            }),
            dropped: std::array::from_fn(|i| {
                metrics::counter!(names::MESSAGES_DROPPED_TOTAL,
                    labels::WORKER => w.clone(), labels::REASON => DropReason::ALL[i].label())
            }),
            bytes_received: worker_counter(names::BYTES_RECEIVED_TOTAL),
            bytes_sent: worker_counter(names::BYTES_SENT_TOTAL),
            cross_core_messages: worker_counter(names::CROSS_CORE_MESSAGES_TOTAL),
            deliveries_delayed: worker_counter(names::DELIVERIES_DELAYED_TOTAL),
            cross_core_timeouts: worker_counter(names::CROSS_CORE_TIMEOUTS_TOTAL),
            connects: std::array::from_fn(|i| {
                metrics::counter!(names::CONNECTS_TOTAL,
                    labels::WORKER => w.clone(), labels::RESULT => ConnectOutcome::ALL[i].label())
            }),
            disconnects: std::array::from_fn(|i| {
                metrics::counter!(names::DISCONNECTS_TOTAL,
                    labels::WORKER => w.clone(), labels::REASON => DisconnectReason::ALL[i].label())
            }),
            connections: std::array::from_fn(|t| {
                std::array::from_fn(|p| {
                    metrics::gauge!(names::CONNECTIONS,
                        labels::WORKER => w.clone(),
                        labels::TRANSPORT => Transport::ALL[t].label(),
                        labels::PROTOCOL => Protocol::ALL[p].label())
                })
            }),
            sessions: worker_gauge(names::SESSIONS),
            outbound_queue_bytes: worker_gauge(names::OUTBOUND_QUEUE_BYTES),
        }
    }
}

impl CoreCounters {
    /// Registers this worker's series with the current recorder (all start at 0).
    pub fn new(worker: u16) -> Self {
        CoreCounters {
            worker,
            messages_received: 0,
            messages_delivered: [0; QOS_COUNT],
            dropped: [0; DropReason::COUNT],
            bytes_received: 0,
            bytes_sent: 0,
            cross_core_messages: 0,
            deliveries_delayed: 0,
            cross_core_timeouts: 0,
            connects: [0; ConnectOutcome::COUNT],
            disconnects: [0; DisconnectReason::COUNT],
            connections: [[0; Protocol::COUNT]; Transport::COUNT],
            sessions: 0,
            outbound_queue_bytes: 0,
            flushed: Flushed::default(),
            handles: Handles::register(worker),
        }
    }

    /// Counts one delivered PUBLISH at `qos` (values above 2 count as 2; the codec rejects them
    /// long before this, so clamping only keeps the index in range).
    #[inline]
    pub fn count_delivered(&mut self, qos: u8) {
        self.messages_delivered[usize::from(qos.min(2))] += 1;
    }

    #[inline]
    pub fn count_drop(&mut self, reason: DropReason) {
        self.dropped[reason.index()] += 1;
    }

    #[inline]
    pub fn count_connect(&mut self, outcome: ConnectOutcome) {
        self.connects[outcome.index()] += 1;
    }

    #[inline]
    pub fn count_disconnect(&mut self, reason: DisconnectReason) {
        self.disconnects[reason.index()] += 1;
    }

    #[inline]
    pub fn connection_opened(&mut self, transport: Transport, protocol: Protocol) {
        self.connections[transport.index()][protocol.index()] += 1;
    }

    #[inline]
    pub fn connection_closed(&mut self, transport: Transport, protocol: Protocol) {
        self.connections[transport.index()][protocol.index()] -= 1;
    }

    /// Live connections on this worker over all transports and protocols.
    pub fn live_connections(&self) -> i64 {
        self.connections.iter().flatten().sum()
    }

    /// Pushes the deltas since the last flush to the recorder and sets the gauges. Call about
    /// once a second from the owning worker.
    pub fn flush(&mut self) {
        let (h, f) = (&self.handles, &mut self.flushed);
        add(
            &h.messages_received,
            self.messages_received,
            &mut f.messages_received,
        );
        add(
            &h.bytes_received,
            self.bytes_received,
            &mut f.bytes_received,
        );
        add(&h.bytes_sent, self.bytes_sent, &mut f.bytes_sent);
        add(
            &h.cross_core_messages,
            self.cross_core_messages,
            &mut f.cross_core_messages,
        );
        add(
            &h.deliveries_delayed,
            self.deliveries_delayed,
            &mut f.deliveries_delayed,
        );
        add(
            &h.cross_core_timeouts,
            self.cross_core_timeouts,
            &mut f.cross_core_timeouts,
        );
        add_all(
            &h.messages_delivered,
            &self.messages_delivered,
            &mut f.messages_delivered,
        );
        add_all(&h.dropped, &self.dropped, &mut f.dropped);
        add_all(&h.connects, &self.connects, &mut f.connects);
        add_all(&h.disconnects, &self.disconnects, &mut f.disconnects);
        for (gauges, values) in h.connections.iter().zip(&self.connections) {
            for (gauge, &value) in gauges.iter().zip(values) {
                gauge.set(value as f64);
            }
        }
        h.sessions.set(self.sessions as f64);
        h.outbound_queue_bytes.set(self.outbound_queue_bytes as f64);
    }
}

/// Adds `now - last` to `counter`. Saturating: fields only grow, but a field reset by mistake
/// must not add 2^64 to a counter.
fn add(counter: &Counter, now: u64, last: &mut u64) {
    let delta = now.saturating_sub(*last);
    if delta > 0 {
        counter.increment(delta);
    }
    *last = now;
}

fn add_all<const N: usize>(counters: &[Counter; N], now: &[u64; N], last: &mut [u64; N]) {
    for ((counter, &value), prev) in counters.iter().zip(now).zip(last.iter_mut()) {
        add(counter, value, prev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build_recorder;

    #[test]
    fn flush_adds_deltas_with_worker_labels() {
        let (recorder, exporter) = build_recorder().expect("recorder builds");
        let mut c = metrics::with_local_recorder(&recorder, || CoreCounters::new(3));
        c.messages_received += 5;
        c.count_delivered(1);
        c.count_delivered(1);
        c.count_delivered(0);
        c.count_drop(DropReason::QueueFull);
        c.count_connect(ConnectOutcome::Accepted);
        c.count_connect(ConnectOutcome::NotAuthorized);
        c.count_disconnect(DisconnectReason::KeepAliveTimeout);
        c.bytes_received += 1000;
        c.bytes_sent += 2000;
        c.cross_core_messages += 7;
        c.connection_opened(Transport::Ws, Protocol::V5);
        c.connection_opened(Transport::Ws, Protocol::V5);
        c.connection_opened(Transport::Tcp, Protocol::V4);
        c.sessions = 4;
        c.outbound_queue_bytes = 512;
        c.flush();
        // A second flush with new increments adds only the difference.
        c.messages_received += 2;
        c.connection_closed(Transport::Ws, Protocol::V5);
        c.flush();
        c.flush();

        let text = exporter.render();
        for line in [
            "hubmq_messages_received_total{worker=\"3\"} 7",
            "hubmq_messages_delivered_total{worker=\"3\",qos=\"1\"} 2",
            "hubmq_messages_delivered_total{worker=\"3\",qos=\"0\"} 1",
            "hubmq_messages_delivered_total{worker=\"3\",qos=\"2\"} 0",
            "hubmq_messages_dropped_total{worker=\"3\",reason=\"queue_full\"} 1",
            "hubmq_connects_total{worker=\"3\",result=\"accepted\"} 1",
            "hubmq_connects_total{worker=\"3\",result=\"not_authorized\"} 1",
            "hubmq_disconnects_total{worker=\"3\",reason=\"keepalive_timeout\"} 1",
            "hubmq_bytes_received_total{worker=\"3\"} 1000",
            "hubmq_bytes_sent_total{worker=\"3\"} 2000",
            "hubmq_cross_core_messages_total{worker=\"3\"} 7",
            "hubmq_connections{worker=\"3\",transport=\"ws\",protocol=\"v5\"} 1",
            "hubmq_connections{worker=\"3\",transport=\"tcp\",protocol=\"v4\"} 1",
            "hubmq_connections{worker=\"3\",transport=\"wss\",protocol=\"v4\"} 0",
            "hubmq_sessions{worker=\"3\"} 4",
            "hubmq_outbound_queue_bytes{worker=\"3\"} 512",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(c.live_connections(), 2);
    }

    #[test]
    fn counters_before_any_recorder_are_harmless() {
        // No recorder in scope: handles are no-ops and flushing must not panic.
        let mut c = CoreCounters::new(0);
        c.messages_received += 1;
        c.count_delivered(7);
        c.flush();
        assert_eq!(c.messages_delivered, [0, 0, 1]);
    }

    #[test]
    fn label_values_are_unique_per_enum() {
        fn unique(labels: Vec<&str>) -> bool {
            let mut sorted = labels.clone();
            sorted.sort_unstable();
            sorted.dedup();
            sorted.len() == labels.len()
        }
        assert!(unique(
            ConnectOutcome::ALL.iter().map(|o| o.label()).collect()
        ));
        assert!(unique(
            DisconnectReason::ALL.iter().map(|o| o.label()).collect()
        ));
        assert!(unique(DropReason::ALL.iter().map(|o| o.label()).collect()));
        assert!(ConnectOutcome::ALL
            .iter()
            .enumerate()
            .all(|(i, o)| o.index() == i));
    }
}
