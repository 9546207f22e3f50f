//! One worker = one thread = one monoio runtime. It owns the connections it accepted, the
//! sessions of those clients, and its shard of every group (the local subscribers). Nothing in
//! `State` is shared with other threads: peers reach this worker only through the cross-core
//! queues of `mesh`, and the process-wide `Registry` is touched on cold paths only.
//!
//! Ownership contract: a `Worker` lives on its thread behind an `Rc`; every method is called
//! from that thread. `State` is borrowed mutably for short, synchronous sections and never
//! across an `.await`.
//!
//! The submodules, in the order a message meets them: `handle` (a connection's outbound queue),
//! `session` (attach, takeover, detach, wills, session end), `groups` (membership and interest
//! bits), `deliver` (fan-out to local members and peers), `topics` (wildcard-routed hubs: the
//! per-worker trie and one copy per session), `eg` (what an Event Grid namespace keeps per
//! worker: quota shares, the topic-space cache, reload re-checks) and `tasks` (the worker's
//! own tasks: inbox, commands, timers). Time comes in as `now` (broker-clock milliseconds)
//! wherever a rule depends on it; only the tasks read the clock.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use hubmq_core::ids::{GroupId, HubId, SessionIdx, WorkerId};
use hubmq_core::message::Message;
use hubmq_core::mqtt::QoS;
use hubmq_core::session::{OutItem, SubOpts};
use hubmq_metrics::CoreCounters;

use crate::mesh::Mesh;
use crate::registry::{GroupShared, Registry, SessionKey};
use crate::settings::Settings;

mod deliver;
mod eg;
mod ext;
mod groups;
mod handle;
mod session;
mod tasks;
#[cfg(test)]
mod tests;
mod topics;

pub(crate) use deliver::{disconnect_slow, offer_to_slot};
pub use ext::SessionExt;
pub(crate) use groups::LocalGroup;
pub use handle::{ConnHandle, Out};
pub use session::{Slot, WillSpec};

/// A cold-path request from another thread, served by the worker's command task.
pub enum Command {
    /// Another worker accepted a CONNECT for a session this worker owns: disconnect the current
    /// connection (0x8E) and hand the session over (`keep`) or discard it.
    Takeover {
        key: SessionKey,
        keep: bool,
        reply: flume::Sender<Option<SessionTransfer>>,
    },
    /// Run a job against this worker's state (REST operations, namespace re-checks after a
    /// reload): whoever sends it owns the reply channel, so this module needs to know none of
    /// those features.
    Run(Box<dyn FnOnce(&Worker) + Send>),
    /// Stop accepting, disconnect clients, exit.
    Shutdown,
}

/// A session moving between workers.
pub struct SessionTransfer {
    pub serial: u64,
    pub user_id: Option<Arc<str>>,
    /// The product's part that moves along (Web PubSub's permissions and upstream data);
    /// `None` when the new connection's credentials replace it anyway (Event Grid).
    pub ext: Option<SessionExt>,
    pub subs: Vec<(Arc<GroupShared>, SubOpts)>,
    pub undelivered: Vec<(Arc<Message>, QoS)>,
}

/// State shared by all workers (read-mostly; see `registry` for the locks).
pub struct Shared {
    pub settings: Settings,
    pub registry: Registry,
    pub mesh: Mesh<Command>,
    /// Source of session serials (No Local) and connection ids.
    pub serial: AtomicU64,
    pub shutting_down: AtomicBool,
    /// The broker clock. One for the whole process: message expiry instants computed on one
    /// worker are compared on another.
    pub clock: crate::clock::Clock,
    /// Reloadable auth settings, heartbeats, shutdown grace (see `lifecycle`).
    pub control: crate::lifecycle::Control,
    /// The upstream event-handler client; `None` when no hub has a handler.
    pub upstream: Option<Arc<crate::upstream::Upstream>>,
    /// Event Grid namespaces by their registry hub (empty without `[eventgrid]`).
    pub eventgrid: HashMap<HubId, Arc<crate::eventgrid::EgNamespace>>,
}

impl Shared {
    pub fn next_serial(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// How a connection reached us; a metric label and a log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    pub fn index(self) -> usize {
        match self {
            Transport::Tcp => 0,
            Transport::Tls => 1,
            Transport::Ws => 2,
            Transport::Wss => 3,
        }
    }

    pub fn is_ws(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }
}

#[derive(Default)]
pub struct State {
    pub(crate) slots: Vec<Option<Slot>>,
    pub(crate) free: Vec<u32>,
    pub(crate) by_key: HashMap<SessionKey, SessionIdx>,
    pub(crate) groups: HashMap<GroupId, LocalGroup>,
    /// Per-worker cache hub → group name → shared group, so a PUBLISH finds its group
    /// without touching the registry lock.
    group_cache: HashMap<HubId, HashMap<Box<str>, Arc<GroupShared>>>,
    /// Topics published to that had no group, with the registry generation of that answer:
    /// a publish to a topic nobody ever subscribed to costs no lock until a group is created.
    missing_groups: HashMap<(HubId, Box<str>), u64>,
    /// Scratch buffer for session output, reused to avoid an allocation per delivery.
    pub(crate) scratch: Vec<OutItem>,
    /// Wildcard-routed hubs (Event Grid namespaces; the standard MQTT mode next): this
    /// worker's wildcard subscriptions per hub (see `topics`).
    pub(crate) tries: HashMap<HubId, hubmq_core::trie::TopicTrie<GroupId>>,
    /// Event Grid: topic → matching variable-free topic spaces, per namespace.
    pub(crate) eg_masks: HashMap<HubId, HashMap<Box<str>, u64>>,
    /// Event Grid: this worker's share of each namespace's rate quotas.
    pub(crate) eg_rates: HashMap<HubId, crate::eventgrid::WorkerRates>,
    /// Wildcard routing: the sessions one delivery reaches, each once (see `eg_deliver_local`).
    pub(crate) targets: Vec<SessionIdx>,
    /// Wildcard routing: numbers deliveries, to mark sessions already reached by one.
    pub(crate) stamp: u64,
}

pub struct Worker {
    pub id: WorkerId,
    pub shared: Arc<Shared>,
    pub st: RefCell<State>,
    pub counters: RefCell<CoreCounters>,
    pub connections: Cell<usize>,
    /// Ends this worker's accept loops on shutdown.
    pub accept_gate: crate::lifecycle::AcceptGate,
    /// Peers (bit = worker id) handed messages since their last wake-up: the peer-waker
    /// task wakes each once when the current task yields, so a batch of publishes costs each
    /// peer one cross-thread wake-up, not one per message.
    pub(crate) wake_pending: Cell<u64>,
    pub(crate) wake_peers: crate::io::notify::LocalNotify,
}

impl Worker {
    pub fn new(id: WorkerId, shared: Arc<Shared>) -> Worker {
        Worker {
            id,
            shared,
            st: RefCell::new(State::default()),
            counters: RefCell::new(CoreCounters::new(id.0)),
            connections: Cell::new(0),
            accept_gate: crate::lifecycle::AcceptGate::default(),
            wake_pending: Cell::new(0),
            wake_peers: Default::default(),
        }
    }

    /// Milliseconds on this worker's clock (monotonic).
    pub fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    pub fn limits(&self) -> &hubmq_core::limits::Limits {
        &self.shared.settings.limits
    }

    fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The group named `name` in `hub` if it exists anywhere, via the per-worker cache.
    pub fn find_group(&self, hub: HubId, name: &str) -> Option<Arc<GroupShared>> {
        let mut st = self.st.borrow_mut();
        let cache = st.group_cache.entry(hub).or_default();
        if let Some(g) = cache.get(name) {
            return Some(g.clone());
        }
        let generation = self.registry().groups_generation();
        let key = (hub, Box::<str>::from(name));
        if st.missing_groups.get(&key) == Some(&generation) {
            return None;
        }
        match self.registry().find_group(hub, name) {
            Some(g) => {
                st.missing_groups.remove(&key);
                st.group_cache
                    .entry(hub)
                    .or_default()
                    .insert(key.1, g.clone());
                Some(g)
            }
            None => {
                // Bounded: clients may invent any number of topics.
                if st.missing_groups.len() >= 4096 {
                    st.missing_groups.clear();
                }
                st.missing_groups.insert(key, generation);
                None
            }
        }
    }

    /// The group, created if needed (subscribe, role compilation).
    pub fn group(&self, hub: HubId, name: &str) -> Arc<GroupShared> {
        if let Some(g) = self.find_group(hub, name) {
            return g;
        }
        let g = self.registry().group(hub, name);
        self.st
            .borrow_mut()
            .group_cache
            .entry(hub)
            .or_default()
            .insert(name.into(), g.clone());
        g
    }

    pub fn with_slot<R>(&self, idx: SessionIdx, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
        let mut st = self.st.borrow_mut();
        st.slots.get_mut(idx.0 as usize)?.as_mut().map(f)
    }
}
