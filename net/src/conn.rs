//! One MQTT connection on a worker: a reader task that turns bytes into packets and packets into
//! decisions, and a writer task that drains the connection's outbound queue into as few writes
//! as possible (every packet queued since the last write goes out in one write, and over
//! WebSocket in one binary frame).
//!
//! The reader never holds the worker state across an `.await`; the writer owns the socket's
//! write half and nothing else.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use hubmq_core::connect::connack_refusal;
use hubmq_core::ids::{HubId, SessionIdx};
use hubmq_core::mqtt::{self, CodecError, Packet, ProtocolVersion, PubAck, QoS, ReasonCode};
use monoio::io::{AsyncReadRent, AsyncWriteRent};

use hubmq_core::timers::{ConnTimers, Expiry};

use crate::auth::Identity;
use crate::ending::{self, ConnError, End};
use crate::eventgrid::EgNamespace;
use crate::io::ws::{self, WsDecoder, WsEvent};
use crate::worker::{ConnHandle, Out, Transport, Worker};
use hubmq_metrics::{ConnectOutcome, DropReason};

mod eg;
mod up;
mod wps;

/// How a connection authenticates, fixed by where it arrived.
pub enum Auth {
    /// Web PubSub: the identity from the WebSocket upgrade, or `None` = from CONNECT (TCP/TLS).
    WebPubSub(Option<Identity>),
    /// An Event Grid namespace's listener: CONNECT carries the credentials.
    EventGrid(Arc<EgNamespace>),
}

impl Auth {
    /// A TCP/TLS listener's connections: the namespace's, or Web PubSub from CONNECT.
    pub fn for_listener(ns: Option<Arc<EgNamespace>>) -> Auth {
        match ns {
            Some(ns) => Auth::EventGrid(ns),
            None => Auth::WebPubSub(None),
        }
    }
}

/// The read's timeout when no clock can run out; one timer either way keeps the read future
/// small (it is parked for as long as the connection idles).
const IDLE_FOREVER: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Smallest and largest read size of an MQTT connection (see `Reader::read_size`).
const READ_MIN: usize = 1024;
const READ_MAX: usize = 64 * 1024;

/// The phase a connection is in. Before CONNECT only `AwaitConnect` exists, so a PUBLISH
/// before CONNECT cannot reach the session code.
enum Phase {
    AwaitConnect,
    /// Boxed: the identity is large and the reader is polled on every packet.
    Active(Box<Active>),
}

struct Active {
    idx: SessionIdx,
    hub: HubId,
    client_id: Arc<str>,
    /// The personality's part of the connection, matched once per packet (see `handle`).
    kind: ConnKind,
}

/// What a connection holds for its product.
enum ConnKind {
    /// The identity from the token (and the upstream `connect` event's answer).
    WebPubSub(Identity),
    /// The namespace, credentials, aliases and rate quotas (see `eg`).
    EventGrid(Box<eg::EgConn>),
}

impl Active {
    fn identity(&self) -> Option<&Identity> {
        match &self.kind {
            ConnKind::WebPubSub(id) => Some(id),
            ConnKind::EventGrid(_) => None,
        }
    }

    fn eg(&self) -> Option<&eg::EgConn> {
        match &self.kind {
            ConnKind::EventGrid(e) => Some(e),
            ConnKind::WebPubSub(_) => None,
        }
    }

    fn eg_mut(&mut self) -> Option<&mut eg::EgConn> {
        match &mut self.kind {
            ConnKind::EventGrid(e) => Some(e),
            ConnKind::WebPubSub(_) => None,
        }
    }
}

/// Runs an MQTT connection to the end. `rx` holds bytes already read (after an HTTP upgrade),
/// `auth` how it authenticates, `client_cert` what a mutual-TLS client presented (usually
/// nothing).
pub async fn run<S>(
    w: Rc<Worker>,
    stream: S,
    transport: Transport,
    rx: BytesMut,
    auth: Auth,
    client_cert: crate::io::tls::ClientCert,
) where
    S: AsyncReadRent + AsyncWriteRent + monoio::io::Split + 'static,
{
    use monoio::io::Splitable;
    let (mut r, wr) = stream.into_split();
    let h = Rc::new(ConnHandle::new(w.shared.next_serial(), transport));
    let (pre, ns) = match auth {
        Auth::WebPubSub(pre) => (pre, None),
        Auth::EventGrid(ns) => (None, Some(ns)),
    };
    // Event Grid's outbound quota per session paces this connection's deliveries.
    let pacer = ns.as_ref().and_then(|ns| {
        crate::writer::Pacer::new(
            ns.quotas.session_deliveries_per_second,
            ns.quotas.session_delivery_bytes_per_second,
            w.now_ms(),
        )
    });
    let writer = monoio::spawn(crate::writer::write_loop(w.clone(), h.clone(), wr, pacer));
    let max_packet = ns
        .as_ref()
        .map_or(w.limits().max_packet_size, |n| n.limits.max_packet_size);
    let mut c = Reader {
        w: w.clone(),
        h: h.clone(),
        phase: Phase::AwaitConnect,
        pre,
        ns,
        client_certs: client_cert.chain,
        client_ca_verified: client_cert.ca_verified,
        ws: transport
            .is_ws()
            .then(|| WsDecoder::new(2 * max_packet as usize + 64)),
        mqtt_rx: BytesMut::new(),
        timers: ConnTimers::new(Instant::now(), w.shared.settings.connect_timeout),
        read_size: READ_MIN,
        version: None,
        client_disconnect: None,
    };
    let end = c.read_loop(&mut r, rx).await;
    if let Phase::Active(a) = &c.phase {
        let said_goodbye = c.client_disconnect.is_some();
        if w.shared.upstream.is_some() {
            w.note_close(a.idx, h.id, up::close_info(&h, c.client_disconnect.take()));
        }
        w.detach(a.idx, h.id, end == End::WithWill);
        let mut ctr = w.counters.borrow_mut();
        ctr.connections[transport.index()][version_index(c.version)] -= 1;
        drop(ctr);
        match &a.kind {
            ConnKind::EventGrid(eg) => eg::log_disconnected(a, eg, &h, said_goodbye),
            ConnKind::WebPubSub(id) => tracing::info!(
                hub = %id.hub_name,
                client = %a.client_id,
                worker = w.id.0,
                clean = end == End::Clean,
                "client disconnected"
            ),
        }
    }
    if !h.closing.replace(true) {
        h.push(Out::Close);
    }
    let _ = writer.await;
}

fn version_index(v: Option<ProtocolVersion>) -> usize {
    match v {
        Some(ProtocolVersion::V5) => 1,
        _ => 0,
    }
}

struct Reader {
    w: Rc<Worker>,
    h: Rc<ConnHandle>,
    phase: Phase,
    pre: Option<Identity>,
    /// The Event Grid namespace of the listener; `None` = Web PubSub.
    ns: Option<Arc<EgNamespace>>,
    /// The client's TLS certificate chain, for the upstream `connect` event; taken there.
    client_certs: Vec<Vec<u8>>,
    /// Whether that chain verified up to a client CA (false: only a pinned thumbprint let it
    /// in, see `tls::ClientCert`).
    client_ca_verified: bool,
    ws: Option<WsDecoder>,
    /// MQTT bytes unwrapped from WebSocket frames (unused on TCP, where `rx` is the stream).
    mqtt_rx: BytesMut,
    /// The CONNECT deadline, keep-alive and credentials expiry (Event Grid: exp + skew; the
    /// connection is closed with 0x87 then unless re-authenticated with AUTH 0x19 before).
    timers: ConnTimers,
    /// Bytes offered to the next read; adapts between `READ_MIN` and `READ_MAX`.
    read_size: usize,
    version: Option<ProtocolVersion>,
    /// The client's DISCONNECT, if it sent one (for the upstream `disconnected` event).
    client_disconnect: Option<mqtt::Disconnect>,
}

impl Reader {
    async fn read_loop<R: AsyncReadRent>(&mut self, r: &mut R, mut rx: BytesMut) -> End {
        loop {
            match self.process(&mut rx).await {
                Ok(()) => {}
                Err(stop) => return self.stop(stop),
            }
            if self.h.closing.get() {
                return End::WithWill;
            }
            let now = Instant::now();
            // The CONNECT deadline, keep-alive and credentials share the read's one timer.
            if let Some(why) = self.timers.expired(now) {
                return self.timeout(why);
            }
            let next = self.timers.next();
            let h = self.h.clone();
            if rx.is_empty() && rx.capacity() > 2 * self.read_size {
                // A burst is over: give the big buffer back instead of parking it in the
                // kernel for as long as the connection idles.
                rx = BytesMut::new();
            }
            let buf = std::mem::take(&mut rx);
            let offered = (buf.capacity() - buf.len()).max(self.read_size / 2);
            // Nothing that can run out (keep-alive 0, no expiring credentials): a year.
            let wait = next.map_or(IDLE_FOREVER, |(at, _)| at - now);
            let got = monoio::select! {
                res = monoio::time::timeout(wait, crate::io::read::read_into(r, buf, self.read_size)) => Some(res),
                _ = h.kill.wait() => None,
            };
            match got {
                None => return End::WithWill,
                Some(Err(_)) => {
                    // A year of silence with keep-alive 0 ends as a keep-alive timeout.
                    let why = next.map_or(Expiry::KeepAlive, |(_, why)| why);
                    return self.timeout(why);
                }
                Some(Ok((Ok(0), _))) | Some(Ok((Err(_), _))) => return End::WithWill,
                Some(Ok((Ok(n), b))) => {
                    // Grow while reads fill what was offered; shrink when they stay small.
                    self.read_size = if n >= offered {
                        (self.read_size * 2).min(READ_MAX)
                    } else if n < self.read_size / 8 {
                        (self.read_size / 2).max(READ_MIN)
                    } else {
                        self.read_size
                    };
                    rx = b;
                    self.w.counters.borrow_mut().bytes_received += n as u64;
                    self.timers.traffic(Instant::now());
                }
            }
        }
    }

    /// A clock ran out (`why`, as `ConnTimers` says).
    fn timeout(&mut self, why: Expiry) -> End {
        if why == Expiry::Credentials && matches!(self.phase, Phase::Active(_)) {
            return self.token_expired();
        }
        match &self.phase {
            Phase::AwaitConnect => {
                tracing::debug!("closing connection that sent no CONNECT in time");
                self.h.closing.set(true);
                self.h.push(Out::Close);
            }
            Phase::Active(a) => {
                tracing::info!(client = %a.client_id, "keep-alive timeout");
                self.h.end(ending::ServerEnd::KeepAliveTimeout);
            }
        }
        End::WithWill
    }

    fn stop(&mut self, e: ConnError) -> End {
        if self.h.closing.get() {
            return e.end();
        }
        match (e.reason(), self.version) {
            (Some(rc), Some(_)) if matches!(self.phase, Phase::Active(_)) => {
                tracing::debug!(
                    reason = rc.name(),
                    detail = e.detail(),
                    "disconnecting client"
                );
                self.h.disconnect(rc, e.detail());
            }
            _ => {
                self.h.closing.set(true);
                self.h.push(Out::Close);
            }
        }
        e.end()
    }

    /// Decodes and handles everything buffered.
    async fn process(&mut self, rx: &mut BytesMut) -> Result<(), ConnError> {
        // A close (or WebSocket error) ends the connection only after the MQTT bytes that came
        // before it were handled: a DISCONNECT right before the close frame must count.
        let ws_end = if self.ws.is_some() {
            self.unwrap_ws(rx).err()
        } else {
            None
        };
        self.process_mqtt(rx).await?;
        match ws_end {
            Some(stop) => Err(stop),
            None => Ok(()),
        }
    }

    /// The limits this connection is held to: its namespace's, or the server's.
    fn limits(&self) -> &hubmq_core::limits::Limits {
        match &self.ns {
            Some(ns) => &ns.limits,
            None => self.w.limits(),
        }
    }

    async fn process_mqtt(&mut self, rx: &mut BytesMut) -> Result<(), ConnError> {
        loop {
            let max = self.limits().max_packet_size as usize;
            let buf = if self.ws.is_some() {
                &mut self.mqtt_rx
            } else {
                &mut *rx
            };
            let packet = match mqtt::decode(buf, self.version, max) {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.codec_error(e)),
            };
            self.handle(packet).await?;
            if self.h.closing.get() {
                return Ok(());
            }
        }
    }

    fn unwrap_ws(&mut self, rx: &mut BytesMut) -> Result<(), ConnError> {
        let Some(dec) = self.ws.as_mut() else {
            return Ok(());
        };
        loop {
            match dec.decode(rx) {
                Ok(None) => return Ok(()),
                Ok(Some(WsEvent::Data(d))) => {
                    if self.mqtt_rx.is_empty() {
                        self.mqtt_rx = d;
                    } else {
                        self.mqtt_rx.extend_from_slice(&d);
                    }
                }
                Ok(Some(WsEvent::Ping(p))) => {
                    let mut f = BytesMut::new();
                    ws::encode_pong(&p, &mut f);
                    self.h.push(Out::WsFrame(f.freeze()));
                }
                Ok(Some(WsEvent::Pong)) => {}
                Ok(Some(WsEvent::Close { .. })) => {
                    self.h.ws_close_sent.set(true);
                    let mut f = BytesMut::new();
                    ws::encode_close(ws::CLOSE_NORMAL, "", &mut f);
                    self.h.push(Out::WsFrame(f.freeze()));
                    return Err(ConnError::Closed);
                }
                Err(ws::WsError::FrameTooLarge) => {
                    // The frame can only be this large if it carries an MQTT packet over the
                    // limit (or many packets at once): answer as MQTT does, 0x95.
                    return Err(ConnError::PacketTooLarge);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "websocket protocol error");
                    self.h.ws_close_sent.set(true);
                    let mut f = BytesMut::new();
                    ws::encode_close(e.close_code(), &e.to_string(), &mut f);
                    self.h.push(Out::WsFrame(f.freeze()));
                    return Err(ConnError::Closed);
                }
            }
        }
    }

    fn codec_error(&mut self, e: CodecError) -> ConnError {
        tracing::debug!(error = %e, "bad MQTT input");
        if let CodecError::UnsupportedProtocol(level) = e {
            // We cannot know which CONNACK format a client of an unknown level reads; the
            // v3.1.1 form with return code 0x01 is what MQTT 3.1.1 §3.1.2.2 prescribes.
            let _ = level;
            self.h.version.set(ProtocolVersion::V4);
            self.h.send_packet(&Packet::ConnAck(connack_refusal(
                ProtocolVersion::V4,
                ReasonCode::UnsupportedProtocolVersion,
                None,
            )));
            self.w.counters.borrow_mut().connects[ConnectOutcome::UnsupportedProtocol.index()] += 1;
            return ConnError::Closed;
        }
        ConnError::from(e)
    }

    async fn handle(&mut self, p: Packet) -> Result<(), ConnError> {
        let active = match &mut self.phase {
            Phase::AwaitConnect => {
                return match p {
                    Packet::Connect(c) if self.ns.is_some() => {
                        Box::pin(self.on_connect_eg(c)).await
                    }
                    // Boxed: the CONNECT path (token checks, upstream call, takeover) is large
                    // and runs once; inlining it would grow every idle connection's future.
                    Packet::Connect(c) => Box::pin(self.on_connect(c)).await,
                    _ => Err(ConnError::Protocol("first packet must be CONNECT")),
                };
            }
            Phase::Active(a) => a,
        };
        // Each personality handles the packets its contract decides (PUBLISH, SUBSCRIBE,
        // UNSUBSCRIBE, AUTH and its own refusals) and hands the rest to `handle_common`.
        let idx = active.idx;
        match active.kind {
            ConnKind::EventGrid(_) => match self.handle_eg(p)? {
                Some(p) => self.handle_common(idx, p).await,
                None => Ok(()),
            },
            ConnKind::WebPubSub(_) => self.handle_wps(idx, p).await,
        }
    }

    /// The packets every personality handles alike: acknowledgements, PINGREQ, DISCONNECT and
    /// the packets no client may send.
    async fn handle_common(&mut self, idx: SessionIdx, p: Packet) -> Result<(), ConnError> {
        match p {
            // Taken by the personality before it gets here (see `handle`).
            Packet::Publish(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => Err(
                ConnError::Protocol("packet not handled by this listener's mode"),
            ),
            Packet::PubAck(a) => {
                let _ = self
                    .w
                    .session_io(idx, |s, now, out| s.on_puback(a.pkid, now, out));
                Ok(())
            }
            Packet::PubRec(a) => {
                let known = self
                    .w
                    .session_io(idx, |s, now, out| {
                        s.on_pubrec(a.pkid, a.reason, now, out).is_ok()
                    })
                    .unwrap_or(false);
                if !known {
                    // [MQTT-4.3.3]: answer PUBREL 0x92 so the client can finish its flow.
                    self.send(Packet::PubRel(PubAck::new(
                        a.pkid,
                        ReasonCode::PacketIdentifierNotFound.as_u8(),
                    )));
                }
                Ok(())
            }
            Packet::PubRel(a) => {
                let known = self
                    .w
                    .with_slot(idx, |s| s.session.release_incoming(a.pkid))
                    .unwrap_or(false);
                let rc = if known {
                    0
                } else {
                    ReasonCode::PacketIdentifierNotFound.as_u8()
                };
                self.send(Packet::PubComp(PubAck::new(a.pkid, rc)));
                Ok(())
            }
            Packet::PubComp(a) => {
                let _ = self
                    .w
                    .session_io(idx, |s, now, out| s.on_pubcomp(a.pkid, now, out));
                Ok(())
            }
            Packet::PingReq => {
                self.send(Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => {
                let expiry0 = self
                    .w
                    .with_slot(idx, |s| s.session.expiry_secs == 0)
                    .unwrap_or(true);
                if let Some(e) = d.session_expiry {
                    // [MQTT-3.14.2-2]: a session that had expiry 0 cannot get one now.
                    if expiry0 && e > 0 {
                        return Err(ConnError::Protocol("session expiry was 0"));
                    }
                    let cap = self.limits().max_session_expiry_secs;
                    self.w
                        .with_slot(idx, |s| s.session.expiry_secs = e.min(cap));
                }
                let will = d.reason == ReasonCode::DisconnectWithWill.as_u8();
                self.client_disconnect = Some(d);
                self.h.closing.set(true);
                self.h.push(Out::Close);
                Err(ConnError::Goodbye { will })
            }
            Packet::Auth(_) => Err(ConnError::Protocol("AUTH without enhanced authentication")),
            Packet::Connect(_) => Err(ConnError::Protocol("second CONNECT")),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => Err(
                ConnError::Protocol("server-to-client packet sent by client"),
            ),
        }
    }

    fn send(&self, p: Packet) {
        self.h.send_packet(&p);
    }

    /// After the CONNACK of an accepted CONNECT: sends what the session kept for the client
    /// (in-flight and queued messages) and counts the connection.
    fn resume_accepted(&self, idx: SessionIdx, version: ProtocolVersion) {
        let w = &self.w;
        let expired = w
            .session_io(idx, |s, now, out| s.resume(now, out))
            .unwrap_or(0);
        let mut ctr = w.counters.borrow_mut();
        ctr.connects[ConnectOutcome::Accepted.index()] += 1;
        ctr.dropped[DropReason::Expired.index()] += expired as u64;
        ctr.connections[self.h.transport.index()][version_index(Some(version))] += 1;
    }

    fn refuse_connect(
        &mut self,
        version: ProtocolVersion,
        rc: ReasonCode,
        text: &'static str,
    ) -> Result<(), ConnError> {
        self.h
            .send_packet(&Packet::ConnAck(connack_refusal(version, rc, Some(text))));
        self.w.counters.borrow_mut().connects[ending::connect_outcome(rc).index()] += 1;
        tracing::info!(reason = rc.name(), detail = text, "connection refused");
        Err(ConnError::Closed)
    }

    fn ack(&self, qos: QoS, pkid: u16, rc: ReasonCode) {
        // v3.1.1 acks carry no reason: a refusal is acknowledged normally (the spec's rule).
        let code = if self.version == Some(ProtocolVersion::V5) {
            rc.as_u8()
        } else {
            0
        };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(Packet::PubAck(PubAck::new(pkid, code))),
            QoS::ExactlyOnce => self.send(Packet::PubRec(PubAck::new(pkid, code))),
        }
    }
}

/// A SUBACK entry: the granted QoS, or the refusal (v3.1.1 knows only 0x80, "failure").
fn suback_code(rc: Result<QoS, ReasonCode>, v5: bool) -> u8 {
    match rc {
        Ok(q) => q as u8,
        Err(rc) if v5 => rc.as_u8(),
        Err(_) => 0x80,
    }
}

fn assign_client_id(w: &Worker) -> String {
    format!(
        "hubmq-{:x}-{:x}",
        w.shared.next_serial(),
        rand::random::<u32>()
    )
}
