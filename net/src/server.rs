//! Start-up and the per-worker accept loops: resolves listener addresses (one ephemeral port
//! shared by all workers when a bind asks for port 0), starts one named thread per worker with
//! its own monoio runtime and its own SO_REUSEPORT listening sockets, and routes accepted
//! connections: TLS handshake, HTTP head (WebSocket upgrade, /metrics, /healthz) or MQTT.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;

use bytes::{Buf, BytesMut};
use hubmq_core::ids::{HubId, WorkerId, MAX_WORKERS};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use socket2::{Domain, Protocol, Socket, Type};

use crate::auth::{authenticate, valid_hub_name, AuthFailure};
use crate::conn;
use crate::eventgrid::EgNamespace;
use crate::io::http::{self, Head};
use crate::io::read::read_more;
use crate::mesh::Mesh;
use crate::registry::Registry;
use crate::settings::{ListenerKind, Settings};
use crate::worker::Command;
use crate::worker::{Shared, Transport, Worker};
use hubmq_metrics::ConnectOutcome;

/// Where an Event Grid namespace's WebSocket MQTT endpoint lives (`wss://{host}/mqtt`) [doc].
const EG_WS_PATH: &str = "/mqtt";

/// A running broker: the bound addresses and the worker threads.
pub struct Server {
    pub bound: Vec<(ListenerKind, SocketAddr)>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Asks every worker to disconnect its clients (v5 DISCONNECT 0x8B) and stop.
    pub fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        for w in 0..self.shared.mesh.workers() {
            self.shared
                .mesh
                .command(WorkerId(w as u16), Command::Shutdown);
        }
    }

    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }

    // ----- lifecycle (see `lifecycle`) -------------------------------------------------------

    /// Graceful stop: like [`Server::shutdown`], and each worker then stops accepting, waits up
    /// to `grace` for its connections to flush and close, and exits, so [`Server::join`]
    /// returns.
    pub fn stop(&self, grace: std::time::Duration) {
        self.shared.control.set_grace(grace);
        self.shutdown();
    }

    /// The per-worker heartbeats (for a watchdog that must stop when any worker is stuck).
    pub fn heartbeats(&self) -> Arc<crate::lifecycle::Heartbeats> {
        self.shared.control.heartbeats.clone()
    }

    /// Replaces the access keys and hub settings; later CONNECTs use them, live connections
    /// are not touched.
    /// Reloads the Event Grid namespaces (all or nothing): each one's settings are swapped and
    /// every worker re-checks its sessions in it. Returns notes on what needs a restart
    /// (namespaces added or removed, limits and quotas).
    pub fn reload_eventgrid(
        &self,
        settings: &[crate::eventgrid::NamespaceSettings],
    ) -> Result<Vec<String>, String> {
        for s in settings {
            EgNamespace::check(s).map_err(|e| format!("eventgrid.namespaces.{}: {e}", s.name))?;
        }
        let mut notes = Vec::new();
        for ns in self.shared.eventgrid.values() {
            let Some(s) = settings.iter().find(|s| *s.name == *ns.name) else {
                notes.push(format!(
                    "eventgrid namespace {} removed from the file: restart to apply",
                    ns.name
                ));
                continue;
            };
            notes.extend(ns.reload(s)?);
            self.pin_certificates(s);
            for w in 0..self.shared.settings.workers {
                self.shared
                    .mesh
                    .command(WorkerId(w as u16), recheck_namespace(ns.hub));
            }
        }
        for s in settings {
            if !self.shared.eventgrid.values().any(|ns| *ns.name == *s.name) {
                notes.push(format!(
                    "eventgrid namespace {} added: restart to apply",
                    s.name
                ));
            }
        }
        Ok(notes)
    }

    /// Reloads the Web PubSub upstream handlers and their signing keys. Returns a note when
    /// handlers appear but the upstream client was not started (no hub had any at start).
    pub fn reload_upstream(&self, settings: &crate::upstream::UpstreamSettings) -> Vec<String> {
        match &self.shared.upstream {
            Some(u) => {
                u.reload_hubs(&settings.hubs);
                Vec::new()
            }
            None if settings.hubs.values().any(|h| !h.handlers.is_empty()) => vec![
                "event handlers added while none were configured at start: restart to enable them"
                    .to_owned(),
            ],
            None => Vec::new(),
        }
    }

    /// Hands namespace `s`'s pinned client-certificate thumbprints to its mutual-TLS listeners.
    fn pin_certificates(&self, s: &crate::eventgrid::NamespaceSettings) {
        pin_certificates(&self.shared.settings, s);
    }

    pub fn reload_auth(&self, auth: crate::lifecycle::AuthSettings) {
        self.shared.control.set_auth(auth);
    }
}

fn listener_socket(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    Ok(s)
}

/// Binds every listener on every worker and starts the workers. Returns once all sockets are
/// bound and listening (so a caller may announce readiness).
pub fn start(mut settings: Settings) -> io::Result<Server> {
    let workers = settings.workers.clamp(1, MAX_WORKERS);
    settings.workers = workers;
    // Resolve port 0 once: a bound (not listening) socket reserves the port; the workers then
    // bind the same port with SO_REUSEPORT. The reservation is dropped after they are up.
    let mut reservations = Vec::new();
    for l in settings.listeners.iter_mut() {
        let s = listener_socket(l.addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{} listener {}: {e}", l.kind.name(), l.addr),
            )
        })?;
        if l.addr.port() == 0 {
            if let Some(a) = s.local_addr()?.as_socket() {
                l.addr = a;
            }
        }
        reservations.push(s);
    }
    let bound: Vec<_> = settings
        .listeners
        .iter()
        .map(|l| (l.kind, l.addr))
        .collect();
    let control = crate::lifecycle::Control::new(
        workers,
        crate::lifecycle::AuthSettings {
            keys: settings.keys.clone(),
            hubs: settings.hubs.clone(),
        },
    );
    let webhooks = settings.eventgrid.iter().any(|n| n.model.webhook.is_some());
    for ns in &settings.eventgrid {
        pin_certificates(&settings, ns);
    }
    let upstream = crate::upstream::Upstream::start(&settings.upstream, webhooks)?;
    let registry = Registry::default();
    let mut eventgrid = HashMap::new();
    for ns in &settings.eventgrid {
        let hub = registry.hub(&crate::eventgrid::EgNamespace::hub_name(&ns.name));
        let rt = crate::eventgrid::EgNamespace::new(ns, hub, &settings.limits).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("eventgrid namespace {}: {e}", ns.name),
            )
        })?;
        eventgrid.insert(hub, Arc::new(rt));
    }
    let shared = Arc::new(Shared {
        upstream,
        eventgrid,
        settings,
        registry,
        mesh: Mesh::new(workers),
        serial: AtomicU64::new(0),
        shutting_down: AtomicBool::new(false),
        clock: crate::clock::Clock::real(),
        control,
    });
    let barrier = Arc::new(Barrier::new(workers + 1));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for i in 0..workers {
        let shared = shared.clone();
        let barrier = barrier.clone();
        let failed = failed.clone();
        let t = std::thread::Builder::new()
            .name(format!("hubmq-w{i}"))
            .spawn(move || worker_main(WorkerId(i as u16), shared, barrier, failed))?;
        threads.push(t);
    }
    barrier.wait();
    drop(reservations);
    if failed.load(Ordering::Acquire) > 0 {
        return Err(io::Error::other("a worker failed to start (see log)"));
    }
    Ok(Server {
        bound,
        shared,
        threads,
    })
}

/// Pins the `ThumbprintMatch` certificates of namespace `ns` on its mutual-TLS listeners (only
/// Event Grid listeners ever get pins: a Web PubSub listener stays CA-only).
fn pin_certificates(settings: &Settings, ns: &crate::eventgrid::NamespaceSettings) {
    let pins = crate::eventgrid::pinned_thumbprints(&ns.model);
    for l in &settings.listeners {
        if let (Some(auth), Some(name)) = (&l.client_auth, &l.namespace) {
            if *name == ns.name {
                auth.set_pinned(pins.clone());
            }
        }
    }
}

fn worker_main(id: WorkerId, shared: Arc<Shared>, barrier: Arc<Barrier>, failed: Arc<AtomicUsize>) {
    // `HUBMQ_IO_DRIVER=epoll` forces the epoll driver: valgrind (the callgrind benchmark) does
    // not model io_uring completions, and some sandboxes forbid io_uring outright.
    let force_epoll =
        std::env::var("HUBMQ_IO_DRIVER").is_ok_and(|v| v.eq_ignore_ascii_case("epoll"));
    let (barrier_on_error, failed_on_error) = (barrier.clone(), failed.clone());
    let body = async move {
        let driver = if !force_epoll && monoio::utils::detect_uring() {
            "io_uring"
        } else {
            "epoll"
        };
        let mut listeners = Vec::new();
        for l in &shared.settings.listeners {
            let bound = listener_socket(l.addr).and_then(|s| {
                s.set_nonblocking(true)?;
                s.listen(4096)?;
                monoio::net::TcpListener::from_std(s.into())
            });
            match bound {
                Ok(tl) => listeners.push((l.clone(), tl)),
                Err(e) => {
                    tracing::error!(worker = id.0, addr = %l.addr, error = %e, "cannot bind");
                    failed.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        tracing::info!(worker = id.0, driver, "worker started");
        barrier.wait();
        let w = Rc::new(Worker::new(id, shared.clone()));
        monoio::spawn(w.clone().inbox_task());
        monoio::spawn(w.clone().peer_waker_task());
        monoio::spawn(w.clone().timer_task());
        let cmd = monoio::spawn(w.clone().command_task());
        for (spec, tl) in listeners {
            monoio::spawn(accept_loop(w.clone(), spec, tl));
        }
        // The command task ends only when the mesh is dropped; shutdown is signalled through it.
        let _ = cmd.await;
    };
    let built = if force_epoll {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(body))
    } else {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(body))
    };
    if let Err(e) = built {
        tracing::error!(worker = id.0, error = %e, "cannot build runtime");
        failed_on_error.fetch_add(1, Ordering::AcqRel);
        barrier_on_error.wait();
    }
}

async fn accept_loop(
    w: Rc<Worker>,
    spec: crate::settings::ListenerSpec,
    tl: monoio::net::TcpListener,
) {
    let max_per_worker = (w.shared.settings.max_connections / w.shared.settings.workers).max(1);
    let acceptor = spec.tls.clone().map(monoio_rustls::TlsAcceptor::from);
    let client_auth = spec.client_auth.clone();
    let ns = spec.namespace.as_deref().and_then(|name| {
        w.shared
            .eventgrid
            .values()
            .find(|n| &*n.name == name)
            .cloned()
    });
    loop {
        // Shutdown cancels the pending accept through the gate; returning drops (closes) `tl`.
        if w.accept_gate.is_stopped() {
            return;
        }
        let (stream, peer) = match tl.cancelable_accept(w.accept_gate.handle()).await {
            Ok(x) => x,
            Err(_) if w.accept_gate.is_stopped() => return,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if w.shared.shutting_down.load(Ordering::Acquire) {
            continue;
        }
        if w.connections.get() >= max_per_worker {
            tracing::warn!(%peer, "connection limit reached; refusing");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let w = w.clone();
        let acceptor = acceptor.clone();
        let client_auth = client_auth.clone();
        let kind = spec.kind;
        let ns = ns.clone();
        monoio::spawn(async move {
            w.connections.set(w.connections.get() + 1);
            // Each branch is boxed so the task stores only the future of the branch taken
            // (a plain TCP connection does not pay for the TLS + HTTP state).
            match (kind, acceptor) {
                (ListenerKind::Tcp, _) => {
                    Box::pin(conn::run(
                        w.clone(),
                        stream,
                        Transport::Tcp,
                        BytesMut::new(),
                        conn::Auth::for_listener(ns),
                        crate::io::tls::ClientCert::none(),
                    ))
                    .await
                }
                (ListenerKind::Http, _) => {
                    Box::pin(serve_http(
                        w.clone(),
                        stream,
                        false,
                        crate::io::tls::ClientCert::none(),
                        ns,
                    ))
                    .await
                }
                (_, Some(acc)) => {
                    Box::pin(serve_tls(
                        w.clone(),
                        acc,
                        client_auth,
                        stream,
                        kind,
                        peer,
                        ns,
                    ))
                    .await
                }
                (_, None) => tracing::error!("TLS listener without TLS configuration"),
            }
            w.connections.set(w.connections.get() - 1);
        });
    }
}

/// TLS handshake (bounded by the connect timeout), then MQTT (`tls`) or HTTP (`https`).
/// With client auth the handshake uses a config of its own that records the client's chain.
async fn serve_tls(
    w: Rc<Worker>,
    acc: monoio_rustls::TlsAcceptor,
    client_auth: Option<Arc<crate::io::tls::ClientAuth>>,
    stream: monoio::net::TcpStream,
    kind: ListenerKind,
    peer: SocketAddr,
    ns: Option<Arc<EgNamespace>>,
) {
    let (acc, slot) = match client_auth.as_deref().map(|a| a.config_for_connection()) {
        None => (acc, None),
        Some(Ok((cfg, slot))) => (monoio_rustls::TlsAcceptor::from(cfg), Some(slot)),
        Some(Err(e)) => {
            tracing::error!(%peer, error = %e, "cannot build TLS config");
            return;
        }
    };
    let timeout = w.shared.settings.connect_timeout;
    let res = monoio::time::timeout(timeout, acc.accept(stream)).await;
    let certs = slot
        .as_ref()
        .and_then(crate::io::tls::take_client_cert)
        .unwrap_or_else(crate::io::tls::ClientCert::none);
    match res {
        Ok(Ok(tls)) if kind == ListenerKind::Tls => {
            let auth = conn::Auth::for_listener(ns);
            conn::run(w.clone(), tls, Transport::Tls, BytesMut::new(), auth, certs).await
        }
        Ok(Ok(tls)) => serve_http(w.clone(), tls, true, certs, ns).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves HTTP requests on one connection until it upgrades to WebSocket MQTT or closes.
/// `certs`: the client's TLS certificate (mutual TLS), for the upstream `connect` event and
/// Event Grid certificate authentication.
/// On a listener of an Event Grid namespace (`ns`) MQTT over WebSocket is at `/mqtt` and the
/// client authenticates in CONNECT; the Web PubSub paths and the REST API are not served there.
async fn serve_http<S>(
    w: Rc<Worker>,
    mut s: S,
    tls: bool,
    certs: crate::io::tls::ClientCert,
    ns: Option<Arc<EgNamespace>>,
) where
    S: AsyncReadRent + AsyncWriteRent + monoio::io::Split + 'static,
{
    let settings = &w.shared.settings;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        // Read one request head, bounded in size and time.
        let deadline = std::time::Instant::now() + settings.connect_timeout;
        let (head, used) = loop {
            match http::parse_head(&buf, settings.max_http_head) {
                Ok(Some(x)) => break x,
                Ok(None) => {}
                Err(e) => {
                    let body = format!("bad request: {e}\n");
                    let _ = s
                        .write_all(http::response(
                            e.status(),
                            "text/plain",
                            body.as_bytes(),
                            &[],
                            true,
                        ))
                        .await;
                    return;
                }
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match monoio::time::timeout(left, read_more(&mut s, buf)).await {
                Ok((Ok(n), b)) if n > 0 => buf = b,
                _ => return, // closed, error or idle too long
            }
        };
        buf.advance(used);
        let close = wants_close(&head);
        let path = head.path.clone();
        let reply = if path == "/healthz" || path == "/readyz" {
            http::response(200, "text/plain", b"ok\n", &[], close)
        } else if path == settings.metrics_path {
            let text = settings
                .metrics
                .as_ref()
                .map(|m| m.render())
                .unwrap_or_default();
            http::response(
                200,
                "text/plain; version=0.0.4",
                text.as_bytes(),
                &[],
                close,
            )
        } else if let Some(ns) = &ns {
            if path == EG_WS_PATH {
                match http::check_upgrade(&head) {
                    Ok(up) => {
                        let (res, _) = s.write_all(http::switching_protocols(&up)).await;
                        if res.is_err() {
                            return;
                        }
                        let transport = if tls { Transport::Wss } else { Transport::Ws };
                        let auth = conn::Auth::EventGrid(ns.clone());
                        conn::run(w.clone(), s, transport, buf, auth, certs).await;
                        return;
                    }
                    Err(reason) => http::response(
                        400,
                        "text/plain",
                        format!("{reason}\n").as_bytes(),
                        &[],
                        true,
                    ),
                }
            } else {
                http::response(404, "text/plain", b"not found\n", &[], close)
            }
        } else if let Some(hub) = path.strip_prefix("/clients/mqtt/hubs/") {
            match upgrade(&w, &head, hub, tls) {
                Ok((resp, identity)) => {
                    let (res, _) = s.write_all(resp).await;
                    if res.is_err() {
                        return;
                    }
                    let transport = if tls { Transport::Wss } else { Transport::Ws };
                    let auth = conn::Auth::WebPubSub(Some(identity));
                    conn::run(w.clone(), s, transport, buf, auth, certs).await;
                    return;
                }
                Err(resp) => resp,
            }
        } else if path.starts_with("/api/") {
            // REST data plane: reads its own body, answers, and keeps the connection alive.
            match crate::rest::serve(&w, &mut s, &head, buf, tls).await {
                Some(rest) => {
                    buf = rest;
                    continue;
                }
                None => return,
            }
        } else {
            http::response(404, "text/plain", b"not found\n", &[], close)
        };
        let (res, _) = s.write_all(reply).await;
        if res.is_err() || close || content_length(&head) > 0 {
            return;
        }
    }
}

fn wants_close(head: &Head) -> bool {
    head.version_minor == 0
        || head
            .header_tokens("connection")
            .any(|t| t.eq_ignore_ascii_case("close"))
}

fn content_length(head: &Head) -> usize {
    head.header("content-length")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Validates a WebSocket MQTT upgrade for `hub`; Ok = the 101 response and the identity,
/// Err = the full error response (400 / 401 / 404) with a reason in the body.
fn upgrade(
    w: &Worker,
    head: &Head,
    hub: &str,
    tls: bool,
) -> Result<(Vec<u8>, crate::auth::Identity), Vec<u8>> {
    let text = |status: u16, msg: &str| {
        http::response(
            status,
            "text/plain",
            format!("{msg}\n").as_bytes(),
            &[],
            true,
        )
    };
    if !valid_hub_name(hub) {
        return Err(text(400, "invalid hub name"));
    }
    let up = http::check_upgrade(head).map_err(|reason| text(400, reason))?;
    // The query parameter wins over the header when both are present (documented choice).
    let token = head.query_param("access_token").or_else(|| {
        head.header("authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned())
    });
    let scheme = if tls { "https" } else { "http" };
    let host = head.header("host");
    match authenticate(w, hub, token.as_deref(), host.map(|h| (scheme, h))) {
        Ok(mut id) => {
            // Kept only where an upstream `connect` event may need it.
            if let Some(u) = &w.shared.upstream {
                if u.hub(&hub.to_ascii_lowercase()).is_some() {
                    let info =
                        crate::auth::UpgradeInfo::from_head(head, up.offered_subprotocols.clone());
                    id.upgrade = Some(Arc::new(info));
                }
            }
            Ok((http::switching_protocols(&up), id))
        }
        Err(AuthFailure::UnknownHub) => Err(text(404, "unknown hub")),
        Err(f) => {
            w.counters.borrow_mut().connects[ConnectOutcome::NotAuthorized.index()] += 1;
            tracing::info!(hub, reason = f.describe(), "upgrade refused");
            Err(text(401, &format!("unauthorized: {}", f.describe())))
        }
    }
}

/// The job that re-checks a worker's sessions in namespace `hub` after a reload.
fn recheck_namespace(hub: HubId) -> Command {
    Command::Run(Box::new(move |w: &Worker| {
        if let Some(ns) = w.eg(hub).cloned() {
            w.eg_recheck(&ns);
        }
    }))
}
