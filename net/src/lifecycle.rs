//! What the main thread controls while the workers run: the settings it may swap on reload
//! (access keys and hub settings, read by the workers at CONNECT time only), the per-worker
//! heartbeats a watchdog reads to prove every worker's event loop still turns, the shutdown
//! grace period, and the per-worker gate that stops the accept loops on shutdown.
//!
//! Everything here is cold path: a heartbeat is one relaxed store per worker every 100 ms, the
//! auth settings are loaded once per CONNECT, the rest happens once per process.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hubmq_auth::KeyRing;
use hubmq_core::ids::WorkerId;
use monoio::io::{CancelHandle, Canceller};

use crate::settings::HubSettings;

/// The part of the settings a reload (SIGHUP) may replace without touching connections.
pub struct AuthSettings {
    /// Server-wide access keys.
    pub keys: Arc<KeyRing>,
    /// Declared hubs by lower-case name.
    pub hubs: HashMap<String, HubSettings>,
}

impl AuthSettings {
    pub fn hub(&self, lower_name: &str) -> Option<&HubSettings> {
        self.hubs.get(lower_name)
    }
}

/// One counter per worker, bumped by the worker's timer task. A reader that sees every counter
/// move between two looks knows every worker ran its timer in between, i.e. no worker is stuck
/// in a busy loop or a blocking call.
pub struct Heartbeats {
    beats: Box<[AtomicU64]>,
}

impl Heartbeats {
    pub fn new(workers: usize) -> Heartbeats {
        Heartbeats {
            beats: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Called by worker `w` from its timer task.
    pub fn beat(&self, w: WorkerId) {
        if let Some(b) = self.beats.get(usize::from(w.0)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The current counters, one per worker.
    pub fn snapshot(&self) -> Vec<u64> {
        self.beats
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// Whether every worker beat since `before` (a previous [`Heartbeats::snapshot`]).
    pub fn all_advanced(&self, before: &[u64]) -> bool {
        let now = self.snapshot();
        now.len() == before.len() && now.iter().zip(before).all(|(n, b)| n > b)
    }
}

/// State shared by the main thread and the workers for lifecycle and reload.
pub struct Control {
    pub heartbeats: Arc<Heartbeats>,
    auth: ArcSwap<AuthSettings>,
    /// How long a worker waits for its connections to flush and close after a shutdown
    /// command, in milliseconds.
    grace_ms: AtomicU64,
}

impl Control {
    pub fn new(workers: usize, auth: AuthSettings) -> Control {
        Control {
            heartbeats: Arc::new(Heartbeats::new(workers)),
            auth: ArcSwap::from_pointee(auth),
            grace_ms: AtomicU64::new(10_000),
        }
    }

    /// The current keys and hub settings (one atomic load; hold it only for one CONNECT).
    pub fn auth(&self) -> Arc<AuthSettings> {
        self.auth.load_full()
    }

    pub fn set_auth(&self, auth: AuthSettings) {
        self.auth.store(Arc::new(auth));
    }

    pub fn set_grace(&self, grace: Duration) {
        let ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        self.grace_ms.store(ms, Ordering::Release);
    }

    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.load(Ordering::Acquire))
    }
}

/// Per-worker switch that ends the accept loops: every accept is issued with the gate's cancel
/// handle, so stopping cancels the pending accepts and the loops see `is_stopped` and return,
/// dropping (closing) their listening sockets.
#[derive(Default)]
pub struct AcceptGate {
    canceller: RefCell<Canceller>,
    stopped: Cell<bool>,
}

impl AcceptGate {
    pub fn handle(&self) -> CancelHandle {
        self.canceller.borrow().handle()
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    pub fn stop(&self) {
        if self.stopped.replace(true) {
            return;
        }
        let old = std::mem::take(&mut *self.canceller.borrow_mut());
        // `cancel` returns a fresh canceller; the gate is stopped for good, so it is dropped.
        drop(old.cancel());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_advance_only_when_every_worker_beats() {
        let h = Heartbeats::new(3);
        let before = h.snapshot();
        h.beat(WorkerId(0));
        h.beat(WorkerId(2));
        assert!(!h.all_advanced(&before), "worker 1 did not beat");
        h.beat(WorkerId(1));
        assert!(h.all_advanced(&before));
        let again = h.snapshot();
        assert!(!h.all_advanced(&again), "nothing beat since the last look");
    }

    #[test]
    fn heartbeat_of_unknown_worker_is_ignored() {
        let h = Heartbeats::new(1);
        h.beat(WorkerId(5));
        assert_eq!(h.snapshot(), vec![0]);
    }

    #[test]
    fn reload_swaps_keys_and_hubs() {
        let c = Control::new(
            1,
            AuthSettings {
                keys: Arc::new(KeyRing::new()),
                hubs: HashMap::new(),
            },
        );
        let old = c.auth();
        let mut hubs = HashMap::new();
        hubs.insert(
            "chat".to_owned(),
            HubSettings {
                anonymous_connect: true,
                keys: None,
            },
        );
        c.set_auth(AuthSettings {
            keys: Arc::new(KeyRing::new()),
            hubs,
        });
        assert!(old.hub("chat").is_none(), "a loaded snapshot never changes");
        assert!(c.auth().hub("chat").is_some_and(|h| h.anonymous_connect));
    }

    #[test]
    fn grace_round_trips() {
        let c = Control::new(
            1,
            AuthSettings {
                keys: Arc::new(KeyRing::new()),
                hubs: HashMap::new(),
            },
        );
        c.set_grace(Duration::from_millis(1500));
        assert_eq!(c.grace(), Duration::from_millis(1500));
    }
}
