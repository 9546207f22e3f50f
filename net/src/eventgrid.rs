//! Event Grid namespaces at run time (`eventgrid-mqtt.md`): the compiled policy and token
//! verifiers of each namespace, its limits, the session-name table that enforces "one session
//! name, one authentication name" and the per-name session quota, and the worker side of
//! wildcard routing.
//!
//! Routing: a namespace is a hub of the registry (`$eventgrid/NAME`, which no Web PubSub hub name
//! can spell). A subscription filter is a group named by the filter text, exactly like a Web
//! PubSub group; filters without wildcards are routed by the group's interest mask as before.
//! Wildcard filters additionally live in a per-worker `TopicTrie` (one per namespace) over the
//! worker's own subscribers, and the namespace keeps one atomic mask of the workers holding any
//! wildcard subscription. A PUBLISH goes to (exact group interest | wildcard mask); each worker
//! that receives it matches the topic against its own trie. No lock on the path, no shared trie.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use hubmq_auth::eventgrid::model::{Quotas, WebhookCfg};
use hubmq_auth::eventgrid::{
    ClientIdentity, ClientPermissions, CompiledNamespace, CustomJwtVerifier, EntraVerifier,
    Namespace,
};
use hubmq_core::ids::{HubId, WorkerId};
use hubmq_core::limits::Limits;
use hubmq_core::message::Message;
use hubmq_core::mqtt::ReasonCode;
use hubmq_core::rate::TokenBucket;

/// Keep Alive granted when the client asks for more, or for none (§2) [doc: max 1,160 s].
pub const KEEP_ALIVE_MAX_SECS: u16 = 1160;
/// Maximum packet size of the mode [doc].
pub const MAX_PACKET_SIZE: u32 = 512 * 1024;
/// Topic aliases a client may set up (client → server only) [doc].
pub const TOPIC_ALIAS_MAX: u16 = 10;
/// Inbound in-flight QoS 1 messages advertised as Receive Maximum [unconfirmed].
pub const RECEIVE_MAXIMUM: u16 = 1000;
/// Outbound in-flight window [hubmq, from the outbound in-flight quota].
pub const OUTBOUND_INFLIGHT: u16 = 100;
/// Offline queue of a persistent session: past either bound the session ends [doc].
pub const OFFLINE_QUEUE_MESSAGES: usize = 100;
pub const OFFLINE_QUEUE_BYTES: usize = 1_000_000;
/// Will Delay Interval cap [doc].
pub const WILL_DELAY_MAX_SECS: u32 = 300;
/// Filters per SUBSCRIBE and subscriptions per session [doc].
pub const MAX_FILTERS_PER_SUBSCRIBE: usize = 10;
pub const MAX_SUBSCRIPTIONS_PER_SESSION: usize = 50;
/// Longest session name (Client Identifier) [doc: lifecycle schema].
pub const MAX_SESSION_NAME_CHARS: usize = 128;
/// Longest response topic, content type and correlation data; total user properties [doc].
pub const MAX_PROPERTY_BYTES: usize = 256;
pub const MAX_USER_PROPERTY_BYTES: usize = 32 * 1024;
/// Retained messages: 64 KB each; 10,000 messages or 640 MB per throughput unit [doc].
pub const MAX_RETAINED_MESSAGE_BYTES: usize = 64 * 1024;
pub const RETAINED_MESSAGES_PER_TU: usize = 10_000;
pub const RETAINED_BYTES_PER_TU: usize = 640 * 1024 * 1024;
/// v3.1.1 retained messages expire after 365 days [doc].
pub const V311_RETAINED_TTL_MS: u64 = 365 * 24 * 3600 * 1000;
/// Sessions (online and offline) per throughput unit, and subscriptions per namespace [doc].
pub const SESSIONS_PER_TU: usize = 10_000;
pub const MAX_NAMESPACE_SUBSCRIPTIONS: i64 = 1_000_000;

pub use crate::settings::NamespaceSettings;

/// The leaf thumbprints a namespace pins: every enabled `ThumbprintMatch` client's
/// `allowed_thumbprints`, for the TLS layer to accept those (often self-signed) certificates.
pub fn pinned_thumbprints(model: &Namespace) -> Vec<crate::io::tls::Thumbprint> {
    use hubmq_auth::eventgrid::model::{ClientState, ValidationScheme};
    model
        .clients
        .iter()
        .filter(|c| {
            c.state == ClientState::Enabled
                && c.validation_scheme == ValidationScheme::ThumbprintMatch
        })
        .flat_map(|c| c.allowed_thumbprints.iter())
        .filter_map(|t| crate::io::tls::thumbprint_from_hex(t))
        .collect()
}

/// The part of a namespace a reload (SIGHUP) replaces: who may connect and what they may do.
pub struct NsAuth {
    pub policy: CompiledNamespace,
    pub entra: Option<EntraVerifier>,
    pub custom: Option<CustomJwtVerifier>,
    pub audiences: Vec<String>,
    pub webhook: Option<WebhookCfg>,
    /// `custom_jwt.allow_v311_password`.
    pub custom_v311: bool,
    /// Where a certificate client's authentication name comes from without a Username (§5).
    pub name_sources: Vec<hubmq_auth::eventgrid::model::NameSource>,
}

impl NsAuth {
    fn build(s: &NamespaceSettings) -> Result<NsAuth, String> {
        Ok(NsAuth {
            policy: CompiledNamespace::compile(&s.model).map_err(|e| e.to_string())?,
            entra: s
                .model
                .entra
                .as_ref()
                .map(|c| EntraVerifier::new(c, s.entra_keys.clone())),
            custom: s
                .model
                .custom_jwt
                .as_ref()
                .map(|c| CustomJwtVerifier::new(c, s.custom_keys.clone())),
            audiences: s.audiences.clone(),
            webhook: s.model.webhook.clone(),
            custom_v311: s
                .model
                .custom_jwt
                .as_ref()
                .is_some_and(|c| c.allow_v311_password),
            name_sources: s.model.alternative_authentication_name_sources.clone(),
        })
    }
}

/// How a session's client proved who it is; decides what a reload re-reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A JWT (`OAUTH2-JWT`, `CUSTOM-JWT`): the identity stands until the token expires.
    Token,
    /// A registered client's certificate: the identity (and its attributes) come from the
    /// configuration, so a reload re-reads them and may refuse the client.
    Certificate,
    /// The authentication webhook's answer.
    Webhook,
}

/// What a session may do in its namespace, kept on the worker's session slot so a reload can
/// re-check every session the worker owns, online or not.
pub struct EgRights {
    pub identity: ClientIdentity,
    pub perms: ClientPermissions,
    pub source: Source,
}

/// A namespace at run time, shared by every worker.
pub struct EgNamespace {
    pub name: Arc<str>,
    pub hub: HubId,
    /// Replaced whole by a reload; read with one atomic load.
    auth: ArcSwap<NsAuth>,
    /// The settings the namespace started with (a reload compares and warns).
    started: Namespace,
    /// Limits of the mode; the session queue bounds are the offline queue's (§2).
    pub limits: Limits,
    /// The same with the server's session queue bounds, for online sessions (an online
    /// subscriber's backlog is the slow-consumer rule's business, not "session overflow").
    pub online_limits: Limits,
    pub retain: bool,
    max_sessions_per_name: u32,
    max_sessions: usize,
    /// Subscriptions held in the namespace by every worker's sessions (quota 1,000,000).
    subscriptions: std::sync::atomic::AtomicI64,
    /// Bit `w` set while worker `w` holds a wildcard subscription in this namespace.
    wild: AtomicU64,
    sessions: Mutex<SessionTable>,
    /// Retained messages by topic. Locked only by retained PUBLISHes and by SUBSCRIBEs, never by
    /// the ordinary publish path.
    retained: Mutex<RetainStore>,
    retained_max_messages: usize,
    retained_max_bytes: usize,
    /// Rate quotas (§7), namespace-wide ones already multiplied by the throughput units.
    pub quotas: Quotas,
}

/// One worker's share of the namespace-wide rate quotas. Each worker enforces
/// `limit / workers` on its own connections, so the namespace limit holds without any state
/// shared between cores (a busy worker cannot borrow an idle one's share).
pub struct WorkerRates {
    pub connects: TokenBucket,
    pub publishes: TokenBucket,
    pub publish_bytes: TokenBucket,
    pub subscribes: TokenBucket,
}

/// A session's own rate quotas, kept by its connection.
pub struct SessionRates {
    pub publishes: TokenBucket,
    pub publish_bytes: TokenBucket,
    pub subscribes: TokenBucket,
    /// Refused publishes draw on this; once it is empty too, the client is sending at more
    /// than twice its quota and is disconnected (0x96) [hubmq's reading of "sustained"].
    pub overdraft: TokenBucket,
}

#[derive(Default)]
struct RetainStore {
    by_topic: HashMap<Arc<str>, Arc<Message>>,
    bytes: usize,
}

impl RetainStore {
    fn remove(&mut self, topic: &str) {
        if let Some(old) = self.by_topic.remove(topic) {
            self.bytes -= old.cost();
        }
    }
}

/// Session names → owner, and how many sessions each authentication name holds (online and
/// offline, until they expire: §2).
#[derive(Default)]
struct SessionTable {
    /// Session name → (authentication name key, last CONNECT on the broker clock, ms).
    owner: HashMap<Arc<str>, (String, u64)>,
    per_name: HashMap<String, u32>,
}

/// The key an authentication name is counted and compared under: names compare ignoring case
/// [doc], so fold them once.
fn name_key(name: &str) -> String {
    name.to_lowercase()
}

impl EgNamespace {
    pub fn new(s: &NamespaceSettings, hub: HubId, server: &Limits) -> Result<Self, String> {
        let auth = NsAuth::build(s)?;
        let expiry = s.model.max_session_expiry_hours * 3600;
        let limits = Limits {
            max_packet_size: MAX_PACKET_SIZE,
            max_keepalive_secs: KEEP_ALIVE_MAX_SECS,
            max_session_expiry_secs: expiry,
            // v3.1.1 persistent sessions live for the namespace maximum (§2).
            default_session_expiry_secs: expiry,
            outbound_queue_bytes: server.outbound_queue_bytes,
            session_queue_messages: OFFLINE_QUEUE_MESSAGES,
            session_queue_bytes: OFFLINE_QUEUE_BYTES,
            receive_maximum: RECEIVE_MAXIMUM,
            max_inflight: OUTBOUND_INFLIGHT,
            will_payload_max: MAX_PACKET_SIZE as usize,
            max_topic_len: hubmq_auth::eventgrid::topics::MAX_TOPIC_BYTES,
        };
        let online_limits = Limits {
            session_queue_messages: server.session_queue_messages.max(OFFLINE_QUEUE_MESSAGES),
            session_queue_bytes: server.session_queue_bytes.max(OFFLINE_QUEUE_BYTES),
            ..limits.clone()
        };
        Ok(EgNamespace {
            name: s.name.as_str().into(),
            hub,
            auth: ArcSwap::from_pointee(auth),
            started: s.model.clone(),
            limits,
            online_limits,
            retain: s.model.retain,
            max_sessions_per_name: s.model.max_client_sessions_per_authentication_name,
            max_sessions: SESSIONS_PER_TU * s.model.throughput_units as usize,
            subscriptions: std::sync::atomic::AtomicI64::new(0),
            wild: AtomicU64::new(0),
            sessions: Mutex::new(SessionTable::default()),
            retained: Mutex::new(RetainStore::default()),
            retained_max_messages: RETAINED_MESSAGES_PER_TU * s.model.throughput_units as usize,
            retained_max_bytes: RETAINED_BYTES_PER_TU * s.model.throughput_units as usize,
            quotas: {
                let q = &s.model.quotas;
                let tu = s.model.throughput_units;
                Quotas {
                    connects_per_second: q.connects_per_second.saturating_mul(tu),
                    publishes_per_second: q.publishes_per_second.saturating_mul(tu),
                    publish_bytes_per_second: q.publish_bytes_per_second.saturating_mul(tu),
                    subscribes_per_second: q.subscribes_per_second.saturating_mul(tu),
                    ..q.clone()
                }
            },
        })
    }

    /// Whether `s` would build (a reload checks every namespace before applying any).
    pub fn check(s: &NamespaceSettings) -> Result<(), String> {
        NsAuth::build(s).map(|_| ())
    }

    /// The current authentication and authorization settings.
    #[inline]
    pub fn auth(&self) -> arc_swap::Guard<Arc<NsAuth>> {
        self.auth.load()
    }

    /// The same, as an owned `Arc` (for work that outlives a guard).
    pub fn auth_full(&self) -> Arc<NsAuth> {
        self.auth.load_full()
    }

    /// Replaces the reloadable settings (topic spaces, groups, bindings, roles, clients, keys,
    /// issuers, webhook). Returns the settings that changed but only take effect on restart.
    pub fn reload(&self, s: &NamespaceSettings) -> Result<Vec<String>, String> {
        let auth = NsAuth::build(s)?;
        self.auth.store(Arc::new(auth));
        let (old, new) = (&self.started, &s.model);
        let mut restart = Vec::new();
        if old.max_client_sessions_per_authentication_name
            != new.max_client_sessions_per_authentication_name
        {
            restart.push("max_client_sessions_per_authentication_name");
        }
        if old.max_session_expiry_hours != new.max_session_expiry_hours {
            restart.push("max_session_expiry_hours");
        }
        if old.retain != new.retain {
            restart.push("retain");
        }
        if old.throughput_units != new.throughput_units {
            restart.push("throughput_units");
        }
        if old.quotas != new.quotas {
            restart.push("quotas");
        }
        Ok(restart
            .into_iter()
            .map(|k| {
                format!(
                    "eventgrid.namespaces.{}.{k} changed: restart to apply",
                    self.name
                )
            })
            .collect())
    }

    /// The registry hub name of namespace `name`: `$` keeps it apart from every Web PubSub hub.
    pub fn hub_name(name: &str) -> String {
        format!("$eventgrid/{name}")
    }

    fn table(&self) -> MutexGuard<'_, SessionTable> {
        // A poisoned lock only means a panic elsewhere mid-update of two plain maps.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims session name `session` for `auth_name` at CONNECT (§2): the same authentication
    /// name may take its own session over; another name is refused (0x87); a new session over
    /// the per-name quota is refused (0x97).
    /// A session that exists already may be connected to at most
    /// `session_connects_per_second` times a second (0x9F).
    pub fn claim_session(
        &self,
        session: &Arc<str>,
        auth_name: &str,
        now_ms: u64,
    ) -> Result<(), ReasonCode> {
        let key = name_key(auth_name);
        let rate = u64::from(self.quotas.session_connects_per_second);
        let mut t = self.table();
        match t.owner.get_mut(session) {
            Some((owner, _)) if *owner != key => Err(ReasonCode::NotAuthorized),
            Some((_, last)) => {
                if rate > 0 && now_ms.saturating_sub(*last) < 1000 / rate {
                    return Err(ReasonCode::ConnectionRateExceeded);
                }
                *last = now_ms;
                Ok(())
            }
            None => {
                if t.owner.len() >= self.max_sessions {
                    return Err(ReasonCode::QuotaExceeded);
                }
                let held = t.per_name.get(&key).copied().unwrap_or(0);
                if held >= self.max_sessions_per_name {
                    return Err(ReasonCode::QuotaExceeded);
                }
                t.per_name.insert(key.clone(), held + 1);
                t.owner.insert(session.clone(), (key, now_ms));
                Ok(())
            }
        }
    }

    /// The session ended (expired, clean start, overflow): its name is free again.
    pub fn release_session(&self, session: &str) {
        let mut t = self.table();
        if let Some((owner, _)) = t.owner.remove(session) {
            if let Some(n) = t.per_name.get_mut(&owner) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    t.per_name.remove(&owner);
                }
            }
        }
    }

    fn retained_store(&self) -> MutexGuard<'_, RetainStore> {
        self.retained.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores (or, with an empty payload, deletes) the retained message of `msg.topic` (§7).
    /// `v311` = published by a v3.1.1 client (its retained messages expire after a year).
    /// Err(0x97) when the message or the store is over its quota.
    pub fn retain(&self, msg: &Message, v311: bool, now_ms: u64) -> Result<(), ReasonCode> {
        if msg.payload.is_empty() {
            self.retained_store().remove(&msg.topic);
            return Ok(());
        }
        if msg.payload.len() > MAX_RETAINED_MESSAGE_BYTES {
            return Err(ReasonCode::QuotaExceeded);
        }
        let ttl = v311.then(|| now_ms + V311_RETAINED_TTL_MS);
        let copy = Arc::new(msg.with_retain(true, ttl));
        let mut st = self.retained_store();
        // Checked as if replaced, so a refused update leaves the current message in place.
        let old = st.by_topic.get(&*msg.topic).map(|m| m.cost());
        let count = st.by_topic.len() + usize::from(old.is_none());
        let bytes = st.bytes - old.unwrap_or(0) + copy.cost();
        if count > self.retained_max_messages || bytes > self.retained_max_bytes {
            return Err(ReasonCode::QuotaExceeded);
        }
        st.remove(&msg.topic);
        st.bytes += copy.cost();
        st.by_topic.insert(copy.topic.clone(), copy);
        Ok(())
    }

    /// The retained messages `filter` matches, expired ones dropped on the way.
    pub fn retained_matching(&self, filter: &str, now_ms: u64) -> Vec<Arc<Message>> {
        let mut st = self.retained_store();
        let expired: Vec<Arc<str>> = st
            .by_topic
            .values()
            .filter(|m| m.is_expired(now_ms))
            .map(|m| m.topic.clone())
            .collect();
        for t in expired {
            st.remove(&t);
        }
        st.by_topic
            .values()
            .filter(|m| hubmq_core::trie::filter_matches(filter, &m.topic))
            .cloned()
            .collect()
    }

    /// Worker `workers`' share of the namespace-wide quotas (rounded up; 0 stays unlimited).
    pub fn worker_rates(&self, workers: usize, now_ms: u64) -> WorkerRates {
        let share = |q: u32| u64::from(q).div_ceil(workers.max(1) as u64);
        let q = &self.quotas;
        WorkerRates {
            connects: TokenBucket::new(share(q.connects_per_second), now_ms),
            publishes: TokenBucket::new(share(q.publishes_per_second), now_ms),
            publish_bytes: TokenBucket::new(share(q.publish_bytes_per_second), now_ms),
            subscribes: TokenBucket::new(share(q.subscribes_per_second), now_ms),
        }
    }

    pub fn session_rates(&self, now_ms: u64) -> SessionRates {
        let q = &self.quotas;
        let publishes = u64::from(q.session_publishes_per_second);
        SessionRates {
            publishes: TokenBucket::new(publishes, now_ms),
            publish_bytes: TokenBucket::new(u64::from(q.session_publish_bytes_per_second), now_ms),
            subscribes: TokenBucket::new(u64::from(q.session_subscribes_per_second), now_ms),
            overdraft: TokenBucket::new(publishes, now_ms),
        }
    }

    /// Adds `delta` to the namespace's subscription count (subscribe, unsubscribe, session end).
    pub fn count_subscriptions(&self, delta: i64) {
        self.subscriptions.fetch_add(delta, Ordering::Relaxed);
    }

    /// Whether the namespace holds its quota of subscriptions (checked before a new one; the
    /// count is shared by all workers, so concurrent SUBSCRIBEs may pass it by a few).
    pub fn subscriptions_full(&self) -> bool {
        self.subscriptions.load(Ordering::Relaxed) >= MAX_NAMESPACE_SUBSCRIPTIONS
    }

    #[inline]
    pub fn wild_interest(&self) -> u64 {
        self.wild.load(Ordering::Acquire)
    }

    /// Worker `w` now holds (`on`) or no longer holds any wildcard subscription here.
    pub fn set_wild_interest(&self, w: WorkerId, on: bool) {
        let bit = 1u64 << w.0;
        if on {
            self.wild.fetch_or(bit, Ordering::AcqRel);
        } else {
            self.wild.fetch_and(!bit, Ordering::AcqRel);
        }
    }
}

/// Does this filter hold a wildcard level?
pub fn is_wildcard(filter: &str) -> bool {
    filter.split('/').any(|l| l == "+" || l == "#")
}
