//! Process-wide registries shared by all workers: hub and group interning, and which worker
//! owns each session. All of them are touched on cold paths only (first sight of a hub or
//! group name, CONNECT, session end); the publish path reads a group's interest mask through a
//! per-worker cache and never takes these locks.
//!
//! Lock order (never hold two at once except in this order): sessions → groups → hubs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hubmq_core::ids::{GroupId, HubId, WorkerId};

/// A group as every worker sees it. `interest` has bit `w` set while worker `w` holds at least
/// one local subscriber, so a publisher knows which peers to hand a message to.
#[derive(Debug)]
pub struct GroupShared {
    pub id: GroupId,
    pub hub: HubId,
    pub name: Arc<str>,
    pub interest: AtomicU64,
}

impl GroupShared {
    #[inline]
    pub fn interest(&self) -> u64 {
        self.interest.load(Ordering::Acquire)
    }
}

/// Key of a group: hub plus group name.
pub type GroupKey = (HubId, Arc<str>);

/// Key of a session: hub plus client id (the connection id of the Web PubSub API).
pub type SessionKey = (HubId, Arc<str>);

#[derive(Default)]
pub struct Registry {
    hubs: Mutex<HubTable>,
    groups: Mutex<HashMap<GroupKey, Arc<GroupShared>>>,
    sessions: Mutex<HashMap<SessionKey, WorkerId>>,
    /// Bumped whenever a group is created, so workers can cache "no such group" answers and
    /// know when they went stale.
    groups_created: AtomicU64,
}

#[derive(Default)]
struct HubTable {
    by_name: HashMap<String, HubId>,
    names: Vec<Arc<str>>,
}

/// A poisoned lock only means another worker panicked mid-update of a plain map; the map
/// itself is still consistent enough to keep serving, so recover the guard.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// Hub names are case-insensitive: interned by their lower-case form.
    pub fn hub(&self, name: &str) -> HubId {
        let key = name.to_ascii_lowercase();
        let mut t = lock(&self.hubs);
        if let Some(id) = t.by_name.get(&key) {
            return *id;
        }
        let id = HubId(t.names.len() as u32);
        t.names.push(key.as_str().into());
        t.by_name.insert(key, id);
        id
    }

    /// The group, created on first use.
    pub fn group(&self, hub: HubId, name: &str) -> Arc<GroupShared> {
        let mut g = lock(&self.groups);
        let key: GroupKey = (hub, name.into());
        if let Some(s) = g.get(&key) {
            return s.clone();
        }
        let shared = Arc::new(GroupShared {
            id: GroupId(g.len() as u32),
            hub,
            name: key.1.clone(),
            interest: AtomicU64::new(0),
        });
        g.insert(key, shared.clone());
        self.groups_created.fetch_add(1, Ordering::Release);
        shared
    }

    /// The group if anyone ever created it (a publish to an unknown group reaches nobody and
    /// must not allocate registry entries for whatever topic a client invents).
    pub fn find_group(&self, hub: HubId, name: &str) -> Option<Arc<GroupShared>> {
        lock(&self.groups)
            .get(&(hub, Arc::<str>::from(name)))
            .cloned()
    }

    /// Changes whenever a group is created (see `groups_created`).
    pub fn groups_generation(&self) -> u64 {
        self.groups_created.load(Ordering::Acquire)
    }

    /// Claims `key` for `worker`, returning the previous owner.
    pub fn claim_session(&self, key: SessionKey, worker: WorkerId) -> Option<WorkerId> {
        lock(&self.sessions).insert(key, worker)
    }

    /// Releases `key` if `worker` still owns it.
    pub fn release_session(&self, key: &SessionKey, worker: WorkerId) {
        let mut s = lock(&self.sessions);
        if s.get(key) == Some(&worker) {
            s.remove(key);
        }
    }
}
