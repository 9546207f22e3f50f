//! What a session carries for the product it belongs to. The worker's session code (attach,
//! takeover, delivery, expiry) is the same for every personality; what differs — Web PubSub's
//! group permission bitset, upstream event data and server-message QoS, Event Grid's identity
//! and compiled topic-space rights — lives in one variant here, so neither product's fields
//! exist on the other's sessions and no code has to fake the other product's state.

use hubmq_core::mqtt::QoS;
use hubmq_core::perm::Permissions;

use crate::eventgrid::EgRights;
use crate::upstream::SessionUp;

pub enum SessionExt {
    WebPubSub(WpsSession),
    /// Boxed: the identity and rights are large and sessions are many.
    EventGrid(Box<EgRights>),
}

/// A Web PubSub session's own state.
pub struct WpsSession {
    /// The group permissions, precomputed from the token's roles (a check is a bit test).
    pub perms: Permissions,
    /// Upstream event data; `None` when the hub has no event handlers (or the session moved).
    pub up: Option<Box<SessionUp>>,
    /// QoS of server messages (`$webpubsub/server/messages`): 1 unless the client subscribed
    /// to that topic explicitly with a lower maximum.
    pub server_qos: QoS,
}

impl SessionExt {
    pub fn web_pubsub(perms: Permissions) -> SessionExt {
        SessionExt::WebPubSub(WpsSession {
            perms,
            up: None,
            server_qos: QoS::AtLeastOnce,
        })
    }

    pub fn wps(&self) -> Option<&WpsSession> {
        match self {
            SessionExt::WebPubSub(s) => Some(s),
            SessionExt::EventGrid(_) => None,
        }
    }

    pub fn wps_mut(&mut self) -> Option<&mut WpsSession> {
        match self {
            SessionExt::WebPubSub(s) => Some(s),
            SessionExt::EventGrid(_) => None,
        }
    }

    pub fn eg(&self) -> Option<&EgRights> {
        match self {
            SessionExt::EventGrid(r) => Some(r),
            SessionExt::WebPubSub(_) => None,
        }
    }

    pub fn eg_mut(&mut self) -> Option<&mut EgRights> {
        match self {
            SessionExt::EventGrid(r) => Some(r),
            SessionExt::WebPubSub(_) => None,
        }
    }

    /// The session resumes under a new connection whose credentials gave `new`. Event Grid
    /// re-evaluates rights at every CONNECT, so the new ones replace the session's; a Web
    /// PubSub session keeps the permissions and upstream state it was created with.
    pub fn resume_with(&mut self, new: SessionExt) {
        if let SessionExt::EventGrid(_) = new {
            *self = new;
        }
    }

    /// What moves with the session to another worker; the upstream data leaves this copy
    /// (so ending it here sends no `disconnected` event).
    pub fn take_for_transfer(&mut self) -> Option<SessionExt> {
        match self {
            SessionExt::WebPubSub(s) => Some(SessionExt::WebPubSub(WpsSession {
                perms: s.perms.clone(),
                up: s.up.take(),
                server_qos: s.server_qos,
            })),
            // The new connection's own rights replace these anyway (see `resume_with`).
            SessionExt::EventGrid(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_web_pubsub_session_keeps_its_permissions_on_resume() {
        let mut ext = SessionExt::web_pubsub(Permissions {
            send_any: true,
            ..Permissions::default()
        });
        ext.resume_with(SessionExt::web_pubsub(Permissions::default()));
        assert!(ext.wps().is_some_and(|s| s.perms.send_any));
        assert!(ext.eg().is_none());
    }

    #[test]
    fn a_transfer_takes_the_upstream_data_along() {
        let mut ext = SessionExt::web_pubsub(Permissions::default());
        if let Some(s) = ext.wps_mut() {
            s.up = Some(Box::new(SessionUp::new("hub", "conn-1".into())));
            s.server_qos = QoS::AtMostOnce;
        }
        let moved = ext.take_for_transfer();
        assert!(
            ext.wps().is_some_and(|s| s.up.is_none()),
            "left nothing to report here"
        );
        let moved = moved.as_ref().and_then(SessionExt::wps);
        assert!(moved.is_some_and(|s| s.up.is_some() && s.server_qos == QoS::AtMostOnce));
    }
}
