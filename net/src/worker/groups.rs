//! Group membership on a worker: a subscription adds the session to its group's local
//! members and sets this worker's bit in the group's interest mask while it has any.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hubmq_core::ids::{GroupId, SessionIdx};
use hubmq_core::session::SubOpts;

use super::Worker;
use crate::registry::GroupShared;

/// This worker's part of a group: local subscribers with their options.
pub(crate) struct LocalGroup {
    pub(crate) shared: Arc<GroupShared>,
    pub(crate) members: Vec<(SessionIdx, SubOpts)>,
}

impl Worker {
    /// Adds (or updates) the subscription of session `idx` to group `g`. Returns false when it
    /// already existed.
    pub fn subscribe(&self, idx: SessionIdx, g: &Arc<GroupShared>, opts: SubOpts) -> bool {
        let mut st = self.st.borrow_mut();
        let Some(slot) = st.slots.get_mut(idx.0 as usize).and_then(|s| s.as_mut()) else {
            return false;
        };
        let new = slot.session.subs.insert(g.id, opts).is_none();
        let ns = self.eg(g.hub);
        if let (true, Some(ns)) = (new, ns) {
            ns.count_subscriptions(1);
        }
        let lg = st.groups.entry(g.id).or_insert_with(|| LocalGroup {
            shared: g.clone(),
            members: Vec::new(),
        });
        if let Some(m) = lg.members.iter_mut().find(|m| m.0 == idx) {
            m.1 = opts;
        } else {
            lg.members.push((idx, opts));
            if lg.members.len() == 1 {
                g.interest.fetch_or(1u64 << self.id.0, Ordering::AcqRel);
                if let Some(ns) = ns.filter(|_| crate::eventgrid::is_wildcard(&g.name)) {
                    self.eg_index(&mut st, ns, g);
                }
            }
        }
        new
    }

    /// Removes the subscription; returns whether it existed.
    pub fn unsubscribe(&self, idx: SessionIdx, g: GroupId) -> bool {
        let existed = self
            .with_slot(idx, |s| s.session.subs.remove(&g).is_some())
            .unwrap_or(false);
        if existed {
            if let Some(ns) = self.eg_of_session(idx) {
                ns.count_subscriptions(-1);
            }
        }
        self.unsubscribe_id(idx, g);
        existed
    }

    pub(super) fn unsubscribe_id(&self, idx: SessionIdx, g: GroupId) {
        let mut st = self.st.borrow_mut();
        let Some(lg) = st.groups.get_mut(&g) else {
            return;
        };
        lg.members.retain(|m| m.0 != idx);
        if lg.members.is_empty() {
            lg.shared
                .interest
                .fetch_and(!(1u64 << self.id.0), Ordering::AcqRel);
            if let Some(lg) = st.groups.remove(&g) {
                let shared = lg.shared;
                if let Some(ns) = self
                    .eg(shared.hub)
                    .filter(|_| crate::eventgrid::is_wildcard(&shared.name))
                {
                    self.eg_unindex(&mut st, ns, &shared);
                }
            }
        }
    }
}
