//! hubmq-metrics: every metric name in one place, the per-core counters the workers bump on the
//! hot path, and the Prometheus recorder whose text `net` serves from its own `/metrics` route.
//!
//! The hot path never touches a shared atomic: a worker owns a [`CoreCounters`] of plain
//! integers and calls [`CoreCounters::flush`] about once a second, which is the only place the
//! `metrics` handles are updated. Label sets are bounded (worker, transport, protocol, qos,
//! reason, result, event, outcome); a client id or topic never becomes a label. This crate must
//! not depend on `net` or do any I/O besides reading `/proc/self` in [`process_metrics`].
#![forbid(unsafe_code)]

mod counters;
mod process;

use std::fmt;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub use counters::{
    ConnectOutcome, CoreCounters, DisconnectReason, DropReason, Protocol, Transport, UpstreamEvent,
    UpstreamOutcome,
};
pub use metrics_exporter_prometheus::PrometheusRecorder;
pub use process::process_metrics;

/// Metric names. These are a contract: dashboards and alerts depend on them (design.md,
/// "Operations"). Add freely, never rename.
pub mod names {
    /// gauge: live MQTT connections (labels: worker, transport, protocol).
    pub const CONNECTIONS: &str = "hubmq_connections";
    /// counter: CONNECT outcomes (labels: worker, result = `accepted` or the refusal reason).
    pub const CONNECTS_TOTAL: &str = "hubmq_connects_total";
    /// counter: connections closed after a successful CONNECT (labels: worker, reason).
    pub const DISCONNECTS_TOTAL: &str = "hubmq_disconnects_total";
    /// counter: PUBLISH packets accepted from clients and REST sends (label: worker).
    pub const MESSAGES_RECEIVED_TOTAL: &str = "hubmq_messages_received_total";
    /// counter: PUBLISH packets written to subscribers (labels: worker, qos).
    pub const MESSAGES_DELIVERED_TOTAL: &str = "hubmq_messages_delivered_total";
    /// counter: messages not delivered (labels: worker, reason).
    pub const MESSAGES_DROPPED_TOTAL: &str = "hubmq_messages_dropped_total";
    /// counter: wire bytes read from clients (label: worker).
    pub const BYTES_RECEIVED_TOTAL: &str = "hubmq_bytes_received_total";
    /// counter: wire bytes written to clients (label: worker).
    pub const BYTES_SENT_TOTAL: &str = "hubmq_bytes_sent_total";
    /// gauge: sessions, including offline persistent ones (label: worker).
    pub const SESSIONS: &str = "hubmq_sessions";
    /// gauge: queued outbound bytes (label: worker).
    pub const OUTBOUND_QUEUE_BYTES: &str = "hubmq_outbound_queue_bytes";
    /// counter: messages handed from this worker to another (label: worker).
    pub const CROSS_CORE_MESSAGES_TOTAL: &str = "hubmq_cross_core_messages_total";
    /// counter: cross-worker requests that got no answer within their deadline (a session
    /// takeover whose old owner did not answer; label: worker).
    pub const CROSS_CORE_TIMEOUTS_TOTAL: &str = "hubmq_cross_core_timeouts_total";
    /// counter: times a connection's writer held deliveries back for an outbound rate quota
    /// (Event Grid; label: worker).
    pub const DELIVERIES_DELAYED_TOTAL: &str = "hubmq_deliveries_delayed_total";
    /// counter: upstream event-handler calls (labels: event, outcome).
    pub const UPSTREAM_REQUESTS_TOTAL: &str = "hubmq_upstream_requests_total";
    /// histogram: upstream event-handler call latency (label: event).
    pub const UPSTREAM_REQUEST_DURATION_SECONDS: &str = "hubmq_upstream_request_duration_seconds";
    /// gauge: always 1 (label: version).
    pub const BUILD_INFO: &str = "hubmq_build_info";
    /// gauge: user + system CPU time of the process, in seconds.
    pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
    /// gauge: resident set size in bytes.
    pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
    /// gauge: open file descriptors.
    pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
    /// gauge: the soft limit on open file descriptors.
    pub const PROCESS_MAX_FDS: &str = "process_max_fds";
}

/// Label keys, so every call site spells them the same way.
pub mod labels {
    pub const WORKER: &str = "worker";
    pub const TRANSPORT: &str = "transport";
    pub const PROTOCOL: &str = "protocol";
    pub const RESULT: &str = "result";
    pub const REASON: &str = "reason";
    pub const QOS: &str = "qos";
    pub const EVENT: &str = "event";
    pub const OUTCOME: &str = "outcome";
    pub const VERSION: &str = "version";
}

/// Upstream latency buckets in seconds: handlers answer in milliseconds normally, and the
/// default timeout is 10 s, so the buckets span 1 ms .. 10 s plus one above.
const UPSTREAM_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A handle to the installed Prometheus recorder. Cheap to clone, `Send + Sync`; any thread may
/// render or run upkeep.
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// The Prometheus text exposition of every metric recorded so far.
    pub fn render(&self) -> String {
        // `process_cpu_seconds_total` is a counter by convention (and promtool insists) but
        // holds fractional seconds, which the integral `metrics` counter cannot: it is recorded
        // as a gauge and its TYPE line corrected here, once per scrape.
        self.handle.render().replace(
            "# TYPE process_cpu_seconds_total gauge",
            "# TYPE process_cpu_seconds_total counter",
        )
    }

    /// Drains histogram samples into their buckets. The exporter runs no background task of its
    /// own (default features off), so the caller must call this every few seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// Why [`install`] failed.
#[derive(Debug)]
pub enum InstallError {
    /// A global `metrics` recorder is already set (install runs once per process).
    AlreadyInstalled,
    /// The exporter rejected its own configuration (a bug in this crate).
    Build(String),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::AlreadyInstalled => {
                f.write_str("a metrics recorder is already installed")
            }
            InstallError::Build(why) => write!(f, "cannot build the metrics recorder: {why}"),
        }
    }
}

impl std::error::Error for InstallError {}

/// Installs the global Prometheus recorder once per process, describes every metric and sets
/// `hubmq_build_info`. Call it before workers create their [`CoreCounters`]: counters created
/// earlier hold no-op handles.
pub fn install() -> Result<Exporter, InstallError> {
    let handle = builder()?.install_recorder().map_err(|e| match e {
        BuildError::FailedToSetGlobalRecorder(_) => InstallError::AlreadyInstalled,
        other => InstallError::Build(other.to_string()),
    })?;
    describe();
    Ok(Exporter { handle })
}

/// Builds a recorder without installing it, for tests and embedders that scope it with
/// `metrics::with_local_recorder`. Call [`describe`] inside that scope to get help texts.
pub fn build_recorder() -> Result<(PrometheusRecorder, Exporter), InstallError> {
    let recorder = builder()?.build_recorder();
    let handle = recorder.handle();
    Ok((recorder, Exporter { handle }))
}

fn builder() -> Result<PrometheusBuilder, InstallError> {
    // Recommended naming stays off: our names already carry `_total` and units, and turning it
    // on would append them a second time.
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::UPSTREAM_REQUEST_DURATION_SECONDS.to_owned()),
            &UPSTREAM_BUCKETS,
        )
        .map_err(|e| InstallError::Build(e.to_string()))
}

/// Registers the help text of every metric with the current recorder and sets
/// `hubmq_build_info{version}` to 1.
pub fn describe() {
    use names::*;
    describe_gauge!(CONNECTIONS, "Live MQTT connections.");
    describe_counter!(
        CONNECTS_TOTAL,
        "CONNECT attempts by result (accepted or the refusal reason)."
    );
    describe_counter!(
        DISCONNECTS_TOTAL,
        "Connections closed after CONNECT, by reason."
    );
    describe_counter!(
        MESSAGES_RECEIVED_TOTAL,
        "PUBLISH packets accepted from clients and messages sent through the REST API."
    );
    describe_counter!(
        MESSAGES_DELIVERED_TOTAL,
        "PUBLISH packets written to subscribers, by QoS."
    );
    describe_counter!(MESSAGES_DROPPED_TOTAL, "Messages not delivered, by reason.");
    describe_counter!(
        BYTES_RECEIVED_TOTAL,
        Unit::Bytes,
        "Wire bytes read from clients."
    );
    describe_counter!(
        BYTES_SENT_TOTAL,
        Unit::Bytes,
        "Wire bytes written to clients."
    );
    describe_gauge!(SESSIONS, "Sessions, including offline persistent ones.");
    describe_gauge!(
        OUTBOUND_QUEUE_BYTES,
        Unit::Bytes,
        "Bytes queued for writing to clients."
    );
    describe_counter!(
        CROSS_CORE_MESSAGES_TOTAL,
        "Messages handed from one worker to another."
    );
    describe_counter!(
        CROSS_CORE_TIMEOUTS_TOTAL,
        "Cross-worker requests (session takeovers) that got no answer in time."
    );
    describe_counter!(
        DELIVERIES_DELAYED_TOTAL,
        "Times deliveries were held back by an outbound rate quota."
    );
    describe_counter!(
        UPSTREAM_REQUESTS_TOTAL,
        "Upstream event-handler calls, by event and outcome."
    );
    describe_histogram!(
        UPSTREAM_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Upstream event-handler call latency."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label names the running build."
    );
    describe_gauge!(
        PROCESS_CPU_SECONDS_TOTAL,
        Unit::Seconds,
        "User and system CPU time spent."
    );
    describe_gauge!(
        PROCESS_RESIDENT_MEMORY_BYTES,
        Unit::Bytes,
        "Resident memory size."
    );
    describe_gauge!(PROCESS_OPEN_FDS, "Open file descriptors.");
    describe_gauge!(PROCESS_MAX_FDS, "Soft limit on open file descriptors.");
    metrics::gauge!(BUILD_INFO, labels::VERSION => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Records one upstream call. Upstream calls run off the workers' hot path (one per event, on
/// the upstream client's threads), so this goes straight to the recorder.
pub fn record_upstream(event: UpstreamEvent, outcome: UpstreamOutcome, seconds: f64) {
    metrics::counter!(
        names::UPSTREAM_REQUESTS_TOTAL,
        labels::EVENT => event.label(),
        labels::OUTCOME => outcome.label()
    )
    .increment(1);
    metrics::histogram!(names::UPSTREAM_REQUEST_DURATION_SECONDS, labels::EVENT => event.label())
        .record(seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_build_info_and_upstream_histogram() {
        let (recorder, exporter) = build_recorder().expect("recorder builds");
        metrics::with_local_recorder(&recorder, || {
            describe();
            record_upstream(UpstreamEvent::Connect, UpstreamOutcome::Ok, 0.003);
            record_upstream(UpstreamEvent::Connect, UpstreamOutcome::Timeout, 10.5);
        });
        exporter.upkeep();
        let text = exporter.render();
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!("hubmq_build_info{{version=\"{version}\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains("# HELP hubmq_upstream_requests_total"),
            "{text}"
        );
        assert!(
            text.contains("hubmq_upstream_requests_total{event=\"connect\",outcome=\"timeout\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE hubmq_upstream_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                "hubmq_upstream_request_duration_seconds_bucket{event=\"connect\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("hubmq_upstream_request_duration_seconds_count{event=\"connect\"} 2"),
            "{text}"
        );
    }

    /// The only test that touches the global recorder (it can be set once per process); the
    /// others scope their own recorder with `with_local_recorder`, which wins over the global.
    #[test]
    fn install_once_then_reports_already_installed() {
        let exporter = install().expect("first install succeeds");
        assert!(matches!(install(), Err(InstallError::AlreadyInstalled)));
        let text = exporter.render();
        assert!(text.contains("hubmq_build_info{version="), "{text}");
    }

    #[test]
    fn process_cpu_seconds_is_typed_as_a_counter() {
        let (recorder, exporter) = build_recorder().expect("recorder builds");
        metrics::with_local_recorder(&recorder, || {
            describe();
            metrics::gauge!(names::PROCESS_CPU_SECONDS_TOTAL).set(1.25);
        });
        let text = exporter.render();
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter"),
            "{text}"
        );
        assert!(text.contains("process_cpu_seconds_total 1.25"), "{text}");
    }

    #[test]
    fn exporter_is_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<Exporter>();
    }
}
