//! What an Event Grid namespace keeps per worker: this worker's share of the namespace-wide
//! rate quotas, the topic → topic-space cache, and the re-check of its sessions after a
//! reload (rights recompiled, uncovered subscriptions dropped, removed clients disconnected).

use std::sync::Arc;

use hubmq_auth::eventgrid::{check_subscribe, ClientIdentity, CompiledNamespace};
use hubmq_core::ids::{GroupId, HubId, SessionIdx};

use super::Worker;
use crate::eventgrid::{EgNamespace, Source, WorkerRates};

impl Worker {
    /// The Event Grid namespace session `idx` lives in, if any.
    pub(super) fn eg_of_session(
        &self,
        idx: SessionIdx,
    ) -> Option<&Arc<crate::eventgrid::EgNamespace>> {
        let hub = self.with_slot(idx, |s| s.key.0)?;
        self.eg(hub)
    }

    /// The Event Grid namespace served under `hub`, if it is one.
    pub fn eg(&self, hub: HubId) -> Option<&Arc<EgNamespace>> {
        self.shared.eventgrid.get(&hub)
    }

    /// Runs `f` on this worker's share of `ns`'s namespace-wide quotas.
    pub fn eg_rates<R>(&self, ns: &EgNamespace, f: impl FnOnce(&mut WorkerRates) -> R) -> R {
        let now = self.now_ms();
        let mut st = self.st.borrow_mut();
        let workers = self.shared.settings.workers;
        let rates = st
            .eg_rates
            .entry(ns.hub)
            .or_insert_with(|| ns.worker_rates(workers, now));
        f(rates)
    }

    /// Topic spaces whose variable-free templates match `topic`, memoized per worker (the
    /// answer is the same for every client; a PUBLISH check is then a mask AND plus the
    /// client's few resolved variable templates).
    pub fn eg_topic_mask(&self, ns: &EgNamespace, topic: &str) -> u64 {
        let mut st = self.st.borrow_mut();
        let cache = st.eg_masks.entry(ns.hub).or_default();
        if let Some(m) = cache.get(topic) {
            return *m;
        }
        let mask = ns.auth().policy.topic_space_mask(topic);
        // Bounded: clients may publish to any number of topics.
        if cache.len() >= 16 * 1024 {
            cache.clear();
        }
        cache.insert(topic.into(), mask);
        mask
    }

    /// the subscriptions they no longer cover (lifecycle reason `ClientAuthorizationError`, §6).
    pub fn eg_recheck(&self, ns: &EgNamespace) {
        let auth = ns.auth_full();
        self.st.borrow_mut().eg_masks.remove(&ns.hub);
        let sessions: Vec<SessionIdx> = {
            let st = self.st.borrow();
            st.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    s.as_ref()
                        .is_some_and(|s| s.key.0 == ns.hub && s.ext.eg().is_some())
                })
                .map(|(i, _)| SessionIdx(i as u32))
                .collect()
        };
        for idx in sessions {
            let Some(Some((identity, source, name))) = self.with_slot(idx, |s| {
                s.ext
                    .eg()
                    .map(|r| (r.identity.clone(), r.source, s.key.1.clone()))
            }) else {
                continue;
            };
            let identity = match source {
                Source::Certificate => auth
                    .policy
                    .registered_client(&identity.authentication_name)
                    .map(ClientIdentity::registered),
                Source::Token | Source::Webhook => Some(identity),
            };
            let Some(identity) = identity else {
                tracing::info!(
                    namespace = %ns.name,
                    client_session_name = %name,
                    disconnection_reason = "ClientAuthenticationError",
                    "client removed or disabled by a configuration change"
                );
                // The session itself stays until it expires, so its name cannot be taken by
                // another client meanwhile (§2: a deleted client's session name stays taken).
                if let Some(Some(conn)) = self.with_slot(idx, |s| s.conn.clone()) {
                    conn.end(crate::ending::ServerEnd::CredentialsRevoked);
                }
                continue;
            };
            let dropped = self.eg_set_rights(idx, &auth.policy, identity);
            if dropped > 0 {
                tracing::info!(
                    namespace = %ns.name,
                    client_session_name = %name,
                    dropped_subscriptions = dropped,
                    reason = "ClientAuthorizationError",
                    "subscriptions removed by a configuration change"
                );
            }
        }
    }

    /// Gives session `idx` the rights `policy` compiles for `identity` (after a re-authentication
    /// or a reload) and ends the subscriptions they no longer cover (§3 step 3: silently).
    /// Returns how many were ended.
    pub fn eg_set_rights(
        &self,
        idx: SessionIdx,
        policy: &CompiledNamespace,
        identity: ClientIdentity,
    ) -> usize {
        let perms = policy.permissions(&identity);
        let doomed: Vec<GroupId> = {
            let st = self.st.borrow();
            let Some(slot) = st.slots.get(idx.0 as usize).and_then(|s| s.as_ref()) else {
                return 0;
            };
            slot.session
                .subs
                .keys()
                .filter(|gid| {
                    st.groups
                        .get(gid)
                        .is_some_and(|lg| !check_subscribe(&perms, &lg.shared.name))
                })
                .copied()
                .collect()
        };
        for gid in &doomed {
            self.unsubscribe(idx, *gid);
        }
        self.with_slot(idx, |s| {
            if let Some(r) = s.ext.eg_mut() {
                r.identity = identity;
                r.perms = perms;
            }
        });
        doomed.len()
    }
}
