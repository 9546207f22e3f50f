//! The upstream event handler (webpubsub-upstream.md): per-hub handler settings, the pure
//! request and response mapping (`event`, `reply`), and the HTTP client that runs on its own
//! small thread pool (`client`) so no worker thread ever waits on a webhook.
//!
//! A worker hands a request to the pool and awaits the answer on a `flume` channel: the
//! connection's task is suspended, the worker's event loop keeps serving everyone else.
//! Blocking events (`connect`, user events) share one bounded queue; unblocking events
//! (`connected`, `disconnected`) go to a few bounded queues sharded by connection id, so the
//! events of one client stay in order, and are retried on transient failures. A full queue
//! refuses (blocking: the client sees "server unavailable") or drops (unblocking: counted in
//! `hubmq_upstream_dropped_total`) rather than growing.

pub mod client;
pub mod event;
pub mod reply;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hubmq_metrics::UpstreamEvent;

pub use event::{CloseInfo, SystemEvent};

/// One configured event handler (§2).
#[derive(Debug, Clone)]
pub struct HandlerSpec {
    /// `{hub}` / `{event}` are substituted, percent-escaped.
    pub url_template: String,
    pub system_events: Vec<SystemEvent>,
    /// `*`, `a,b` or `a`; empty = no user events.
    pub user_event_pattern: String,
    /// Per request, from sending to the end of the response body.
    pub timeout: Duration,
    /// `auth.type = bearer`: sent as `Authorization: Bearer <token>`.
    pub bearer: Option<String>,
}

impl HandlerSpec {
    pub fn handles_system(&self, e: SystemEvent) -> bool {
        self.system_events.contains(&e)
    }

    /// Case-insensitive match of a user event name against the pattern (§2).
    pub fn handles_user(&self, name: &str) -> bool {
        let p = self.user_event_pattern.trim();
        if p == "*" {
            return true;
        }
        p.split(',')
            .map(str::trim)
            .any(|n| !n.is_empty() && n.eq_ignore_ascii_case(name))
    }
}

/// A hub's handlers in order, and the keys that sign its events.
#[derive(Debug, Clone, Default)]
pub struct HubUpstream {
    pub handlers: Vec<HandlerSpec>,
    /// Access key strings, as configured; one `ce-signature` entry each.
    pub keys: Vec<String>,
}

impl HubUpstream {
    /// The first handler listing system event `e`.
    pub fn for_system(&self, e: SystemEvent) -> Option<&HandlerSpec> {
        self.handlers.iter().find(|h| h.handles_system(e))
    }

    /// The first handler whose pattern matches user event `name`.
    pub fn for_user(&self, name: &str) -> Option<&HandlerSpec> {
        self.handlers.iter().find(|h| h.handles_user(name))
    }
}

/// Everything the upstream client needs, resolved from configuration.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Hubs with at least one handler, by lower-case name.
    pub hubs: HashMap<String, HubUpstream>,
    /// Host name sent as `WebHook-Request-Origin` (no scheme, no port).
    pub public_host: String,
    /// OPTIONS abuse-protection handshake before the first event to each URL.
    pub validate_webhooks: bool,
    /// Threads serving blocking events.
    pub threads: usize,
    /// Capacity of each request queue.
    pub queue: usize,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            hubs: HashMap::new(),
            public_host: "localhost".into(),
            validate_webhooks: true,
            threads: 4,
            queue: 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Options,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Options => "OPTIONS",
        }
    }
}

/// One HTTP request to an upstream.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// An upstream's answer (any status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why there is no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("timeout")]
    Timeout,
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("webhook validation failed")]
    ValidationFailed,
    #[error("too many pending upstream requests")]
    Overloaded,
}

/// A new opaque id: 22 characters of base64url over 16 random bytes (§1).
pub fn new_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// The running upstream client. Shared by every worker.
pub struct Upstream {
    /// Handlers and signing keys per hub (lower-case name); replaced whole by a reload.
    hubs: arc_swap::ArcSwap<HashMap<String, Arc<HubUpstream>>>,
    public_host: String,
    client: client::Pool,
}

fn shared_hubs(hubs: &HashMap<String, HubUpstream>) -> HashMap<String, Arc<HubUpstream>> {
    hubs.iter()
        .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
        .collect()
}

impl Upstream {
    /// Starts the client threads; `None` when no hub has a handler (nothing to run).
    /// `always`: start even without handlers (an Event Grid namespace calls a webhook).
    pub fn start(
        settings: &UpstreamSettings,
        always: bool,
    ) -> std::io::Result<Option<Arc<Upstream>>> {
        if !always && settings.hubs.values().all(|h| h.handlers.is_empty()) {
            return Ok(None);
        }
        let client = client::Pool::start(settings)?;
        Ok(Some(Arc::new(Upstream {
            hubs: arc_swap::ArcSwap::from_pointee(shared_hubs(&settings.hubs)),
            public_host: settings.public_host.clone(),
            client,
        })))
    }

    /// The handlers of hub `lower_name`, as of now (a reload may replace them).
    pub fn hub(&self, lower_name: &str) -> Option<Arc<HubUpstream>> {
        self.hubs.load().get(lower_name).cloned()
    }

    /// SIGHUP: new handlers and signing keys for every hub; events already queued or in
    /// flight finish with the old ones. The client threads and their settings stay.
    pub fn reload_hubs(&self, hubs: &HashMap<String, HubUpstream>) {
        self.hubs.store(Arc::new(shared_hubs(hubs)));
    }

    pub fn public_host(&self) -> &str {
        &self.public_host
    }

    /// Sends a blocking event and waits (without blocking the thread) for the answer.
    pub async fn call(
        &self,
        handler: &HandlerSpec,
        hub: &str,
        req: HttpRequest,
        event: UpstreamEvent,
    ) -> Result<HttpResponse, CallError> {
        self.submit_and_wait(validate_url(handler, hub), req, event)
            .await
    }

    /// A blocking request outside the Web PubSub event protocol (Event Grid webhook
    /// authentication): same pool and metrics, no abuse-protection handshake.
    pub async fn call_plain(
        &self,
        req: HttpRequest,
        event: UpstreamEvent,
    ) -> Result<HttpResponse, CallError> {
        // An empty validation URL: nothing to validate.
        self.submit_and_wait(String::new(), req, event).await
    }

    /// Queues a blocking request on the pool and waits for its answer without blocking the
    /// worker thread.
    async fn submit_and_wait(
        &self,
        validate_url: String,
        req: HttpRequest,
        event: UpstreamEvent,
    ) -> Result<HttpResponse, CallError> {
        let limit = req.timeout + Duration::from_secs(12);
        let rx = self.client.submit(validate_url, req, event)?;
        // The pool enforces the request timeout; this bound only guards against a lost reply.
        match monoio::time::timeout(limit, rx.recv_async()).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => Err(CallError::Unreachable("upstream client stopped".into())),
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// Queues an unblocking event (retried on transient failures); dropped and counted when
    /// the queue is full. `shard` keeps one client's events in order.
    pub fn notify(
        &self,
        handler: &HandlerSpec,
        hub: &str,
        req: HttpRequest,
        event: UpstreamEvent,
        shard: &str,
    ) {
        self.client
            .notify(validate_url(handler, hub), req, event, shard);
    }
}

/// What a session remembers for its upstream events (stored on the worker's session slot and
/// moved with the session when another worker takes it over).
#[derive(Debug, Clone)]
pub struct SessionUp {
    /// Hub name as the client spelled it (`{hub}`, `ce-hub`).
    pub hub: Arc<str>,
    pub session_id: String,
    /// The current (after a close: last) physical connection.
    pub physical_id: String,
    /// `ce-connectionState` set by a blocking event.
    pub state: Option<String>,
    /// Next `ce-id` on the current physical connection (`connect` was 0).
    pub next_event_id: u64,
    /// How the last physical connection ended, for `disconnected`.
    pub close: CloseInfo,
}

impl SessionUp {
    pub fn new(hub: &str, physical_id: String) -> SessionUp {
        SessionUp {
            hub: hub.into(),
            session_id: new_id(),
            physical_id,
            state: None,
            next_event_id: 1,
            close: CloseInfo::default(),
        }
    }

    pub fn apply_state(&mut self, change: &reply::StateChange) {
        match change {
            reply::StateChange::Keep => {}
            reply::StateChange::Clear => self.state = None,
            reply::StateChange::Set(v) => self.state = Some(v.clone()),
        }
    }

    /// Takes the next `ce-id`.
    pub fn take_event_id(&mut self) -> u64 {
        let id = self.next_event_id;
        self.next_event_id += 1;
        id
    }
}

impl Upstream {
    /// Queues `connected` or `disconnected` for a session if a handler of its hub lists it.
    pub fn session_event(
        &self,
        ev: SystemEvent,
        up: &mut SessionUp,
        connection_id: &str,
        user_id: Option<&str>,
    ) {
        let Some(hub) = self.hub(&up.hub.to_ascii_lowercase()) else {
            return;
        };
        let Some(h) = hub.for_system(ev) else {
            return;
        };
        let body = match ev {
            SystemEvent::Disconnected => event::disconnected_body(&up.close),
            _ => b"{}".to_vec(),
        };
        let event_id = up.take_event_id();
        let common = event::Common {
            hub: &up.hub,
            connection_id,
            physical_id: &up.physical_id,
            session_id: Some(&up.session_id),
            user_id,
            state: up.state.as_deref(),
            event_id,
            keys: &hub.keys,
            public_host: self.public_host(),
            time: std::time::SystemTime::now(),
            bearer: h.bearer.as_deref(),
        };
        let req = event::system_request(&h.url_template, &common, ev, body, h.timeout);
        let metric = match ev {
            SystemEvent::Connect => UpstreamEvent::Connect,
            SystemEvent::Connected => UpstreamEvent::Connected,
            SystemEvent::Disconnected => UpstreamEvent::Disconnected,
        };
        self.notify(h, &up.hub, req, metric, connection_id);
    }
}

fn validate_url(handler: &HandlerSpec, hub: &str) -> String {
    event::resolve_url(&handler.url_template, hub, "validate")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(pattern: &str) -> HandlerSpec {
        HandlerSpec {
            url_template: "http://h/{event}".into(),
            system_events: vec![SystemEvent::Connect],
            user_event_pattern: pattern.into(),
            timeout: Duration::from_secs(1),
            bearer: None,
        }
    }

    #[test]
    fn user_event_patterns_match_case_insensitively() {
        assert!(handler("*").handles_user("anything"));
        assert!(handler("a, B").handles_user("b"));
        assert!(handler("a,b").handles_user("A"));
        assert!(!handler("a,b").handles_user("c"));
        assert!(handler("getTime").handles_user("gettime"));
        assert!(!handler("").handles_user("x"));
    }

    #[test]
    fn first_matching_handler_wins() {
        let mut second = handler("*");
        second.url_template = "http://second/{event}".into();
        second.system_events = vec![SystemEvent::Connect, SystemEvent::Connected];
        let hub = HubUpstream {
            handlers: vec![handler("a"), second],
            keys: vec![],
        };
        assert_eq!(
            hub.for_system(SystemEvent::Connect)
                .map(|h| h.url_template.as_str()),
            Some("http://h/{event}")
        );
        assert_eq!(
            hub.for_system(SystemEvent::Connected)
                .map(|h| h.url_template.as_str()),
            Some("http://second/{event}")
        );
        assert!(hub.for_system(SystemEvent::Disconnected).is_none());
        assert_eq!(
            hub.for_user("b").map(|h| h.url_template.as_str()),
            Some("http://second/{event}")
        );
    }

    #[test]
    fn ids_are_22_url_safe_characters() {
        let id = new_id();
        assert_eq!(id.len(), 22);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(id, new_id());
    }
}
