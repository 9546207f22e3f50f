//! The Event Grid side of a connection (`eventgrid-mqtt.md`): CONNECT with enhanced
//! authentication (`OAUTH2-JWT`, `CUSTOM-JWT`), a client certificate or the custom webhook,
//! AUTH re-authentication and token expiry, and the lifecycle log lines. PUBLISH / SUBSCRIBE
//! with their topic-space checks, aliases and quotas are in `pubsub`. The policy decisions
//! come from `hubmq_auth::eventgrid`; these files apply them to the connection and the worker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hubmq_auth::eventgrid::cert::ChainTrust;
use hubmq_auth::eventgrid::token::{CUSTOM_JWT_METHOD, ENTRA_METHOD, MAX_AUTH_DATA_LEN};
use hubmq_auth::eventgrid::{validate_topic_name, verify_custom_jwt, verify_entra, ClientIdentity};
use hubmq_core::connect::{connack_success, negotiate};
use hubmq_core::mqtt::{Auth as AuthPacket, Connect, Packet, ProtocolVersion, QoS, ReasonCode};

use super::{assign_client_id, Active, ConnKind, Phase, Reader};
use crate::auth::now_secs;
use crate::ending::{eg_disconnection_reason, token_reason, ConnError, End};
use crate::eventgrid::{
    EgNamespace, EgRights, SessionRates, Source, KEEP_ALIVE_MAX_SECS, MAX_SESSION_NAME_CHARS,
    TOPIC_ALIAS_MAX, WILL_DELAY_MAX_SECS,
};
use crate::worker::{SessionExt, WillSpec};

mod pubsub;

/// An Event Grid connection's credentials and rights.
pub(super) struct EgConn {
    pub(super) ns: Arc<EgNamespace>,
    /// `OAUTH2-JWT` / `CUSTOM-JWT`; `None` for certificate authentication (no AUTH allowed).
    method: Option<String>,
    /// The authentication name (the rights live on the session slot, see `EgRights`).
    auth_name: Arc<str>,
    /// Topic aliases the client set up (index = alias - 1); client → server only [doc].
    aliases: Vec<Option<Arc<str>>>,
    /// The session's own rate quotas (§7).
    rates: SessionRates,
}

/// A verified client: who, by which method, valid until when (unix seconds incl. skew).
struct Verified {
    identity: ClientIdentity,
    /// The CONNECT's Authentication Method, echoed in the CONNACK.
    method: Option<String>,
    /// Whether AUTH 0x19 may refresh the credentials (the JWT methods only).
    reauth: bool,
    source: Source,
    valid_until: Option<u64>,
}

/// An `Instant` for a unix time in seconds (the read loop's timer runs on `Instant`s).
fn instant_at(unix_secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(unix_secs.saturating_sub(now_secs()))
}

/// Log protocol label of Azure Monitor (§1): `MQTT3`, `MQTT3-WS`, `MQTT5`, `MQTT5-WS`.
fn protocol_label(v: ProtocolVersion, ws: bool) -> &'static str {
    match (v, ws) {
        (ProtocolVersion::V4, false) => "MQTT3",
        (ProtocolVersion::V4, true) => "MQTT3-WS",
        (ProtocolVersion::V5, false) => "MQTT5",
        (ProtocolVersion::V5, true) => "MQTT5-WS",
    }
}

impl Reader {
    fn eg_active(&self) -> Option<(&Active, &EgConn)> {
        match &self.phase {
            Phase::Active(a) => a.eg().map(|e| (&**a, e)),
            Phase::AwaitConnect => None,
        }
    }

    fn eg_active_mut(&mut self) -> Option<&mut EgConn> {
        match &mut self.phase {
            Phase::Active(a) => a.eg_mut(),
            Phase::AwaitConnect => None,
        }
    }

    /// Verifies the credentials of a CONNECT or an AUTH: a token for an enhanced-auth method,
    /// else a client certificate with the Username naming a registered client (§5).
    fn eg_verify(
        &mut self,
        ns: &EgNamespace,
        method: Option<&str>,
        data: Option<&[u8]>,
        username: Option<&str>,
    ) -> Result<Verified, (ReasonCode, &'static str)> {
        let Some(method) = method else {
            let certs = std::mem::take(&mut self.client_certs);
            if certs.is_empty() {
                return Err((
                    ReasonCode::NotAuthorized,
                    "no credentials: send a JWT (authentication method) or a client certificate",
                ));
            }
            let auth = ns.auth();
            return match hubmq_auth::eventgrid::cert::authenticate_certificate_with_sources(
                &auth.policy,
                &auth.name_sources,
                username,
                &certs,
                if self.client_ca_verified {
                    ChainTrust::CaVerified
                } else {
                    // Let in by a pinned thumbprint only: CA-based schemes are refused.
                    ChainTrust::Unverified { now: now_secs() }
                },
            ) {
                Ok(identity) => Ok(Verified {
                    identity,
                    method: None,
                    reauth: false,
                    source: Source::Certificate,
                    valid_until: None,
                }),
                Err(e) => {
                    tracing::info!(namespace = %ns.name, error = %e, "certificate refused");
                    Err((ReasonCode::NotAuthorized, "client certificate not accepted"))
                }
            };
        };
        let data = data.unwrap_or_default();
        if data.len() > MAX_AUTH_DATA_LEN {
            return Err((
                ReasonCode::PacketTooLarge,
                "authentication data larger than 8 KB",
            ));
        }
        let now = now_secs();
        let auth = ns.auth();
        let res = match method {
            ENTRA_METHOD => match &auth.entra {
                Some(v) => verify_entra(data, v, now),
                None => {
                    return Err((
                        ReasonCode::BadAuthenticationMethod,
                        "OAUTH2-JWT is not enabled on this namespace",
                    ))
                }
            },
            CUSTOM_JWT_METHOD => match &auth.custom {
                Some(v) => verify_custom_jwt(data, v, &auth.audiences, now),
                None => {
                    return Err((
                        ReasonCode::BadAuthenticationMethod,
                        "CUSTOM-JWT is not enabled on this namespace",
                    ))
                }
            },
            _ => {
                return Err((
                    ReasonCode::BadAuthenticationMethod,
                    "unknown authentication method",
                ))
            }
        };
        match res {
            Ok(t) => Ok(Verified {
                identity: t.identity,
                method: Some(method.to_owned()),
                reauth: true,
                source: Source::Token,
                valid_until: Some(t.expires_at.saturating_add(t.skew_secs)),
            }),
            Err(e) => {
                tracing::info!(namespace = %ns.name, method, error = %e, "token refused");
                Err((token_reason(&e), "token not accepted"))
            }
        }
    }

    /// v3.1.1 with a Password, no registered certificate, and the namespace's
    /// `custom_jwt.allow_v311_password` on: the Password is a CUSTOM-JWT token.
    fn v311_password_jwt(&self, ns: &EgNamespace, c: &Connect) -> bool {
        c.password.is_some()
            && !self.certificate_settles(ns, c.username.as_deref())
            && ns.auth().custom_v311
    }

    /// Does a client certificate plus Username settle this CONNECT (a registered client)?
    fn certificate_settles(&self, ns: &EgNamespace, username: Option<&str>) -> bool {
        if self.client_certs.is_empty() {
            return false;
        }
        let auth = ns.auth();
        hubmq_auth::eventgrid::cert::certificate_authentication_name(
            &auth.name_sources,
            username,
            &self.client_certs,
        )
        .is_ok_and(|n| auth.policy.registered_client(&n).is_some())
    }

    /// Custom webhook authentication (§5): the CONNECT's credentials go to the namespace's
    /// webhook, which allows (with a name, attributes and an optional expiry) or denies.
    async fn eg_webhook(
        &mut self,
        ns: &EgNamespace,
        c: &Connect,
        method: Option<&str>,
        data: Option<&[u8]>,
    ) -> Result<Verified, (ReasonCode, &'static str)> {
        use hubmq_auth::eventgrid::webhook::{parse_response, request_body, WebhookRequest};
        use hubmq_auth::eventgrid::WebhookDecision;
        const UNAVAILABLE: (ReasonCode, &str) = (
            ReasonCode::ServerUnavailable,
            "authentication webhook unavailable",
        );
        let auth = ns.auth();
        let (Some(cfg), Some(u)) = (&auth.webhook, self.w.shared.upstream.clone()) else {
            return Err(UNAVAILABLE);
        };
        let (url, bearer, timeout) = (
            cfg.url.clone(),
            cfg.bearer_token.clone(),
            Duration::from_millis(cfg.timeout_ms),
        );
        drop(auth);
        let certs = std::mem::take(&mut self.client_certs);
        let leaf = certs.first().map(|d| crate::upstream::event::pem(d));
        let chain = (certs.len() > 1).then(|| {
            certs[1..]
                .iter()
                .map(|d| crate::upstream::event::pem(d))
                .collect::<String>()
        });
        let body = request_body(&WebhookRequest {
            client_id: &c.client_id,
            user_name: c.username.as_deref(),
            password: c.password.as_deref(),
            authentication_method: method,
            authentication_data: data,
            client_certificate_pem: leaf.as_deref(),
            client_certificate_chain_pem: chain.as_deref(),
            user_properties: &c.props.user_properties,
        });
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        if let Some(t) = bearer {
            headers.push(("Authorization".to_owned(), format!("Bearer {t}")));
        }
        let req = crate::upstream::HttpRequest {
            method: crate::upstream::Method::Post,
            url,
            headers,
            body,
            timeout,
        };
        let resp = match u
            .call_plain(req, hubmq_metrics::UpstreamEvent::EventGridWebhook)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(namespace = %ns.name, error = %e, "authentication webhook failed");
                return Err(UNAVAILABLE);
            }
        };
        match parse_response(resp.status, &resp.body, now_secs()) {
            Ok(WebhookDecision::Allow {
                identity,
                expires_at,
            }) => Ok(Verified {
                identity,
                method: method.map(str::to_owned),
                reauth: false,
                source: Source::Webhook,
                valid_until: expires_at,
            }),
            Ok(WebhookDecision::Deny { reason }) => {
                tracing::info!(namespace = %ns.name, reason, "authentication webhook denied");
                Err((
                    ReasonCode::NotAuthorized,
                    "denied by the authentication webhook",
                ))
            }
            Err(e) => {
                tracing::warn!(namespace = %ns.name, status = resp.status, error = %e, "authentication webhook answered badly");
                Err(UNAVAILABLE)
            }
        }
    }

    /// CONNECT on an Event Grid listener (§2–§5).
    pub(super) async fn on_connect_eg(&mut self, mut c: Connect) -> Result<(), ConnError> {
        let Some(ns) = self.ns.clone() else {
            return Ok(());
        };
        let version = c.protocol.unwrap_or(ProtocolVersion::V4);
        self.version = Some(version);
        self.h.version.set(version);
        let v5 = version == ProtocolVersion::V5;
        let w = self.w.clone();
        // Checked before any signature: a CONNECT flood costs no RSA verification.
        let now = w.now_ms();
        if !w.eg_rates(&ns, |r| r.connects.try_take(1, now)) {
            return self.refuse_connect(
                version,
                ReasonCode::ServerBusy,
                "namespace connection rate exceeded",
            );
        }
        if !c.props.user_properties.is_empty() {
            return self.refuse_connect(
                version,
                ReasonCode::ImplementationSpecificError,
                "user properties are not accepted on CONNECT",
            );
        }
        if c.client_id.is_empty() && !v5 {
            return self.refuse_connect(
                version,
                ReasonCode::ClientIdentifierNotValid,
                "a client identifier (session name) is required",
            );
        }
        if c.client_id.chars().count() > MAX_SESSION_NAME_CHARS {
            return self.refuse_connect(
                version,
                ReasonCode::ClientIdentifierNotValid,
                "client identifier longer than 128 characters",
            );
        }
        // Enhanced auth and the will are this mode's business; the rest is common MQTT.
        let mut method = c.props.auth_method.take();
        let mut data = c.props.auth_data.take();
        if !v5 && self.v311_password_jwt(&ns, &c) {
            // The optional v3.1.1 extension (§4): the Password carries a CUSTOM-JWT token.
            method = Some(CUSTOM_JWT_METHOD.to_owned());
            data = c.password.clone();
        }
        let will = c.will.take();
        let mut n = match negotiate(&c, &ns.limits, || assign_client_id(&w)) {
            Ok(n) => n,
            Err(rc) => return self.refuse_connect(version, rc, "connect refused"),
        };
        if n.keep_alive == 0 {
            // No documented minimum; "none" becomes the maximum [unconfirmed, §2].
            n.keep_alive = KEEP_ALIVE_MAX_SECS;
            n.server_keep_alive = v5.then_some(KEEP_ALIVE_MAX_SECS);
        }
        let jwt = matches!(method.as_deref(), Some(ENTRA_METHOD | CUSTOM_JWT_METHOD));
        let res = if !jwt
            && ns.auth().webhook.is_some()
            && !self.certificate_settles(&ns, c.username.as_deref())
        {
            self.eg_webhook(&ns, &c, method.as_deref(), data.as_deref())
                .await
        } else {
            self.eg_verify(
                &ns,
                method.as_deref(),
                data.as_deref(),
                c.username.as_deref(),
            )
        };
        let verified = match res {
            Ok(v) => v,
            Err((rc, text)) => return self.refuse_connect(version, rc, text),
        };
        let perms = ns.auth().policy.permissions(&verified.identity);

        let will = match will {
            None => None,
            Some(wl) => {
                if wl.qos == QoS::ExactlyOnce {
                    return self.refuse_connect(
                        version,
                        ReasonCode::QoSNotSupported,
                        "will QoS 2 is not supported",
                    );
                }
                if wl.retain && !ns.retain {
                    return self.refuse_connect(
                        version,
                        ReasonCode::RetainNotSupported,
                        "retained messages are disabled",
                    );
                }
                if validate_topic_name(&wl.topic).is_err() {
                    return self.refuse_connect(
                        version,
                        ReasonCode::TopicNameInvalid,
                        "invalid will topic",
                    );
                }
                // Publisher permission is checked when the will fires (`fire_will_now_or_later`).
                let delay = wl
                    .delay
                    .unwrap_or(0)
                    .min(WILL_DELAY_MAX_SECS)
                    .min(n.session_expiry);
                Some(WillSpec {
                    will: wl,
                    delay_secs: delay,
                })
            }
        };

        let client_id: Arc<str> = n.client_id.as_str().into();
        if let Err(rc) = ns.claim_session(
            &client_id,
            &verified.identity.authentication_name,
            w.now_ms(),
        ) {
            let text = match rc {
                ReasonCode::NotAuthorized => "session name is held by another client",
                ReasonCode::ConnectionRateExceeded => "connection rate of this session exceeded",
                _ => "too many sessions for this authentication name",
            };
            return self.refuse_connect(version, rc, text);
        }
        self.h.client_max_packet.set(n.client_max_packet);
        let auth_name: Arc<str> = verified.identity.authentication_name.as_str().into();
        // The rights of this CONNECT are the session's, new or resumed (`SessionExt`).
        let rights = Box::new(EgRights {
            identity: verified.identity,
            perms,
            source: verified.source,
        });
        let attached = w
            .attach(
                (ns.hub, client_id.clone()),
                n.clean_start,
                n.session_expiry,
                Some(auth_name.clone()),
                SessionExt::EventGrid(rights),
                self.h.clone(),
                n.client_receive_max,
            )
            .await;
        let idx = attached.idx;
        w.with_slot(idx, |s| s.will = will);
        let mut ack = connack_success(&n, attached.session_present, &ns.limits);
        if v5 {
            let p = &mut ack.props;
            p.auth_method = verified.method.clone();
            p.max_qos = Some(1);
            p.retain_available = Some(ns.retain);
            p.topic_alias_max = Some(TOPIC_ALIAS_MAX);
            p.wildcard_sub_available = Some(true);
        }
        self.send(Packet::ConnAck(ack));
        self.resume_accepted(idx, version);
        tracing::info!(
            namespace = %ns.name,
            client_authentication_name = %auth_name,
            client_session_name = %client_id,
            method = verified.method.as_deref().unwrap_or("certificate"),
            protocol = protocol_label(version, self.h.transport.is_ws()),
            worker = w.id.0,
            session_present = attached.session_present,
            "Microsoft.EventGrid.MQTTClientSessionConnected"
        );
        self.timers
            .credentials_until(verified.valid_until.map(instant_at));
        self.phase = Phase::Active(Box::new(Active {
            idx,
            hub: ns.hub,
            client_id,
            kind: ConnKind::EventGrid(Box::new(EgConn {
                method: verified.method.filter(|_| verified.reauth),
                auth_name: auth_name.clone(),
                aliases: vec![None; usize::from(TOPIC_ALIAS_MAX)],
                rates: ns.session_rates(w.now_ms()),
                ns,
            })),
        }));
        self.timers.connected(Instant::now(), n.keep_alive);
        Ok(())
    }

    /// AUTH 0x19 (re-authenticate, §3): a new token for the same principal replaces the old
    /// one; rights are recompiled and subscriptions they no longer cover are dropped silently.
    fn on_auth_eg(&mut self, a: AuthPacket) -> Result<(), ConnError> {
        let Some((active, eg)) = self.eg_active() else {
            return Ok(());
        };
        let (idx, ns, method) = (active.idx, eg.ns.clone(), eg.method.clone());
        let Some(method) = method else {
            return Err(ConnError::Protocol("AUTH without enhanced authentication"));
        };
        if !a.user_properties.is_empty() {
            return Err(ConnError::Refused(
                "user properties are not accepted on AUTH",
            ));
        }
        if a.reason != ReasonCode::ReAuthenticate.as_u8() {
            // The broker never starts an exchange; both methods finish in one step (§3 step 6).
            return Err(ConnError::Protocol(
                "AUTH must carry reason 0x19 (re-authenticate)",
            ));
        }
        if a.method.as_deref() != Some(method.as_str()) {
            return Err(ConnError::Protocol("AUTH method differs from CONNECT"));
        }
        let verified = match self.eg_verify(&ns, Some(&method), a.data.as_deref(), None) {
            Ok(v) => v,
            Err((_, text)) => {
                tracing::info!(namespace = %ns.name, reason = text, "re-authentication failed");
                return Err(ConnError::NotAuthorized("re-authentication failed"));
            }
        };
        let same = self
            .w
            .with_slot(idx, |s| {
                s.ext
                    .eg()
                    .is_some_and(|r| r.identity.same_principal(&verified.identity))
            })
            .unwrap_or(false);
        if !same {
            tracing::info!(namespace = %ns.name, "re-authentication for another identity refused");
            return Err(ConnError::NotAuthorized("re-authentication failed"));
        }
        let dropped = self
            .w
            .eg_set_rights(idx, &ns.auth().policy, verified.identity);
        self.timers
            .credentials_until(verified.valid_until.map(instant_at));
        tracing::info!(namespace = %ns.name, dropped_subscriptions = dropped, "re-authenticated");
        self.send(Packet::Auth(AuthPacket {
            reason: ReasonCode::Success.as_u8(),
            method: Some(method),
            ..AuthPacket::default()
        }));
        Ok(())
    }

    /// The token's `exp` (plus skew) passed without a re-authentication (§3 step 5).
    pub(super) fn token_expired(&mut self) -> End {
        if let Some((a, eg)) = self.eg_active() {
            tracing::info!(
                namespace = %eg.ns.name,
                client_session_name = %a.client_id,
                "token expired; disconnecting"
            );
        }
        self.h.end(crate::ending::ServerEnd::TokenExpired);
        End::WithWill
    }
}

/// The lifecycle log line of a namespace connection that ended.
pub(super) fn log_disconnected(
    a: &Active,
    eg: &EgConn,
    h: &crate::worker::ConnHandle,
    client_said_goodbye: bool,
) {
    tracing::info!(
        namespace = %eg.ns.name,
        client_authentication_name = %eg.auth_name,
        client_session_name = %a.client_id,
        disconnection_reason = eg_disconnection_reason(h.end_reason.get(), client_said_goodbye),
        "Microsoft.EventGrid.MQTTClientSessionDisconnected"
    );
}
