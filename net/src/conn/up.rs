//! The Web PubSub upstream side of a connection (`webpubsub-upstream.md`): the blocking
//! `connect` event and its answer, user events published to `$webpubsub/server/events/…`, and
//! how a connection ended, for the `disconnected` event. The event wire format and the HTTP
//! client live in `crate::upstream`; this file performs the calls for one connection.

use std::sync::Arc;

use hubmq_core::ids::SessionIdx;
use hubmq_core::message::Message;
use hubmq_core::mqtt::{
    self, Connect, Packet, ProtocolVersion, Publish, PublishProps, QoS, ReasonCode,
};
use hubmq_core::topic::SERVER_EVENTS_PREFIX;
use hubmq_metrics::{ConnectOutcome, UpstreamEvent};

use super::{Phase, Reader};
use crate::auth::Identity;
use crate::ending::{upstream_reason, ConnError};
use crate::upstream::{self, event as up_event, reply as up_reply, SystemEvent};
use crate::worker::ConnHandle;

/// How this connection ended, for the upstream `disconnected` event (§7).
pub(super) fn close_info(h: &ConnHandle, client: Option<mqtt::Disconnect>) -> upstream::CloseInfo {
    let v5 = h.version.get() == ProtocolVersion::V5;
    if let Some(d) = client {
        return upstream::CloseInfo {
            reason: d.reason_string.filter(|_| v5),
            initiated_by_client: true,
            packet: Some((if v5 { d.reason } else { 0 }, d.user_properties)),
        };
    }
    match h.end_reason.get() {
        Some(rc) => upstream::CloseInfo {
            reason: Some(upstream_reason(rc).to_owned()),
            initiated_by_client: false,
            packet: v5.then(|| (rc.as_u8(), Vec::new())),
        },
        None => upstream::CloseInfo {
            reason: Some("connection lost".into()),
            initiated_by_client: false,
            packet: None,
        },
    }
}

impl Reader {
    /// Sends the blocking `connect` event if a handler of the hub lists it; `None` = no handler.
    pub(super) async fn connect_event(
        &self,
        u: &Arc<upstream::Upstream>,
        physical_id: &str,
        c: &Connect,
        n: &hubmq_core::connect::Negotiated,
        identity: &Identity,
        client_certs: Vec<Vec<u8>>,
    ) -> Option<up_reply::ConnectDecision> {
        let hub = u.hub(&identity.hub_name.to_ascii_lowercase())?;
        let h = hub.for_system(SystemEvent::Connect)?;
        let v5 = n.version == ProtocolVersion::V5;
        let up = identity.upgrade.as_deref();
        let info = up_event::ConnectInfo {
            protocol_version: n.version.level(),
            clean_start: c.clean_start,
            username: c.username.clone(),
            password: c.password.as_ref().map(|p| p.to_vec()),
            user_properties: if v5 {
                c.props.user_properties.clone()
            } else {
                Vec::new()
            },
            claims: identity.claims.clone(),
            query: up.map(|u| u.query.clone()).unwrap_or_default(),
            headers: up.map(|u| u.headers.clone()).unwrap_or_default(),
            subprotocols: up.map(|u| u.subprotocols.clone()).unwrap_or_default(),
            client_certificates: client_certs,
        };
        let common = up_event::Common {
            hub: &identity.hub_name,
            connection_id: &n.client_id,
            physical_id,
            session_id: None,
            user_id: identity.user_id.as_deref(),
            state: None,
            event_id: 0,
            keys: &hub.keys,
            public_host: u.public_host(),
            time: std::time::SystemTime::now(),
            bearer: h.bearer.as_deref(),
        };
        let req = up_event::system_request(
            &h.url_template,
            &common,
            SystemEvent::Connect,
            up_event::connect_body(&info),
            h.timeout,
        );
        let res = u
            .call(h, &identity.hub_name, req, UpstreamEvent::Connect)
            .await;
        Some(up_reply::map_connect(v5, &res))
    }

    /// The CONNACK refusal an upstream decided (§5.4, §5.5); the connection closes after it.
    pub(super) fn refuse_upstream(&mut self, r: up_reply::Refuse) -> Result<(), ConnError> {
        let ack = hubmq_core::mqtt::ConnAck {
            session_present: false,
            code: r.code,
            props: hubmq_core::mqtt::ConnAckProps {
                reason_string: r.reason.clone(),
                user_properties: r.user_properties,
                ..Default::default()
            },
        };
        self.h.send_packet(&Packet::ConnAck(ack));
        let outcome = match r.code {
            4 | 5 | 0x86 | 0x87 | 0x8A => ConnectOutcome::NotAuthorized,
            0x89 | 0x97 | 0x9F => ConnectOutcome::ServerBusy,
            _ => ConnectOutcome::ServerUnavailable,
        };
        self.w.counters.borrow_mut().connects[outcome.index()] += 1;
        tracing::info!(
            code = r.code,
            reason = r.reason.as_deref().unwrap_or(""),
            "connection refused by upstream"
        );
        Err(ConnError::Closed)
    }

    /// A PUBLISH to `$webpubsub/server/events/{name}` (webpubsub-upstream.md §8): one upstream
    /// round trip, awaited here so a session's events go out one at a time and in order (the
    /// worker keeps serving other connections meanwhile); the answer comes back to this session
    /// as `{name}/succeeded` or `{name}/failed`, then the PUBLISH is acknowledged.
    pub(super) async fn on_user_event(
        &mut self,
        idx: SessionIdx,
        name: String,
        p: Publish,
    ) -> Result<(), ConnError> {
        let w = self.w.clone();
        if self.version == Some(ProtocolVersion::V5) {
            if let Some(ct) = &p.props.content_type {
                if !up_event::is_mime_type(ct) {
                    // It would become the HTTP Content-Type (§8.1).
                    self.ack(p.qos, p.pkid, ReasonCode::PayloadFormatInvalid);
                    return Ok(());
                }
            }
        }
        if p.qos == QoS::ExactlyOnce
            && !w
                .with_slot(idx, |s| s.session.incoming_qos2(p.pkid))
                .unwrap_or(false)
        {
            // A retransmission of a QoS 2 event already sent upstream.
            self.ack(p.qos, p.pkid, ReasonCode::Success);
            return Ok(());
        }
        let reply = match self.call_user_event(idx, &name, &p).await {
            Some(r) => r,
            // The connection is being closed: no answer, no ack.
            None => return Ok(()),
        };
        w.with_slot(idx, |s| {
            if let Some(up) = s.ext.wps_mut().and_then(|p| p.up.as_mut()) {
                up.apply_state(&reply.state);
            }
        });
        let suffix = if reply.succeeded {
            "succeeded"
        } else {
            "failed"
        };
        let props = PublishProps {
            correlation_data: p.props.correlation_data.clone(),
            user_properties: reply.user_properties,
            content_type: reply.content_type,
            ..PublishProps::default()
        };
        let topic: Arc<str> = format!("{SERVER_EVENTS_PREFIX}{name}/{suffix}").into();
        let msg = Arc::new(Message::new(
            topic,
            bytes::Bytes::from(reply.payload),
            props,
            p.qos,
            0,
            w.now_ms(),
        ));
        let limits = w.limits().clone();
        let _ = w.session_io(idx, |s, now, out| {
            s.offer(msg, p.qos, true, now, &limits, out)
        });
        self.ack(p.qos, p.pkid, ReasonCode::Success);
        Ok(())
    }

    /// Sends the user event upstream if a handler of the hub matches it; no handler → 404.
    /// `None` when the connection was closed while waiting.
    async fn call_user_event(
        &self,
        idx: SessionIdx,
        name: &str,
        p: &Publish,
    ) -> Option<up_reply::EventReply> {
        let Phase::Active(a) = &self.phase else {
            return None;
        };
        // User events are Web PubSub's (an Event Grid connection never gets here).
        let identity = a.identity()?;
        let w = &self.w;
        let hub_lower = identity.hub_name.to_ascii_lowercase();
        let Some((u, h, keys)) = w.shared.upstream.as_ref().and_then(|u| {
            let hub = u.hub(&hub_lower)?;
            let h = hub.for_user(name)?;
            Some((u.clone(), h.clone(), hub.keys.clone()))
        }) else {
            return Some(up_reply::failed(404));
        };
        let Some((session_id, physical_id, state, event_id, user_id)) = w
            .with_slot(idx, |s| {
                let up = s.ext.wps_mut().and_then(|p| p.up.as_mut())?;
                let id = up.take_event_id();
                Some((
                    up.session_id.clone(),
                    up.physical_id.clone(),
                    up.state.clone(),
                    id,
                    s.user_id.clone(),
                ))
            })
            .flatten()
        else {
            return Some(up_reply::failed(404));
        };
        let common = up_event::Common {
            hub: &identity.hub_name,
            connection_id: &a.client_id,
            physical_id: &physical_id,
            session_id: Some(&session_id),
            user_id: user_id.as_deref(),
            state: state.as_deref(),
            event_id,
            keys: &keys,
            public_host: u.public_host(),
            time: std::time::SystemTime::now(),
            bearer: h.bearer.as_deref(),
        };
        let content_type = if self.version == Some(ProtocolVersion::V5) {
            p.props.content_type.as_deref()
        } else {
            None
        };
        let req = up_event::user_event_request(
            &h.url_template,
            &common,
            name,
            &p.payload,
            content_type,
            &p.props.user_properties,
            h.timeout,
        );
        let kill = self.h.clone();
        let res = monoio::select! {
            r = u.call(&h, &identity.hub_name, req, UpstreamEvent::User) => r,
            _ = kill.kill.wait() => return None,
        };
        Some(up_reply::map_user_event(&res))
    }
}
