//! The `egfanout` scenario: wildcard fan-out over MQTT 5, for hubmq's Event Grid mode and for
//! any v5 broker (mosquitto) on the same load.
//!
//! N subscribers each hold one wildcard filter (`fleet/+/status` or `fleet/#`, alternating by
//! default) and one publisher cycles through `fleet/{i}/status` for i in 0..topics, so every
//! publish matches every subscriber through wildcard routing (hubmq: the per-worker topic trie
//! plus the topic-space permission check on PUBLISH). `--filters exact` subscribes everyone to
//! `fleet/0/status` and publishes only there: the same mode's exact-topic path, for contrast.
//! With `--eg-key` every connection authenticates with `CUSTOM-JWT` (a fresh RS256 token per
//! client, `sub` = its client id, so each authentication name holds one session); without it
//! CONNECT carries no authentication (mosquitto with `allow_anonymous true`).
//!
//! Measurement follows `load.rs` (same window rule, warm-up, drain, broker CPU from `/proc`,
//! JSON fields), with its own v5 connections: the 3.1.1 engine cannot carry CONNECT
//! properties. Lost = published × subscribers − received after the drain; sequence gaps are
//! not used because the publisher spreads its messages over many topics.

use crate::load::{new_histogram, next_batch, window_room, HEADER_BYTES};
use crate::rs256::Signer;
use crate::v5::{self, Packet};
use crate::{secs, Common, LoadArgs, Outcome, ScenarioCtx};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{json, Map};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

const READ_CHUNK: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
const SETUP_CONCURRENCY: usize = 64;
/// Token lifetime: far longer than any bounded run, so no AUTH re-authentication is needed.
const TOKEN_TTL_SECS: u64 = 3600;

/// Which filter each subscriber holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Filters {
    /// Even subscribers `fleet/+/status`, odd ones `fleet/#`.
    Mixed,
    /// Everyone `fleet/+/status`.
    Plus,
    /// Everyone `fleet/#`.
    Hash,
    /// Everyone `fleet/0/status`, and the publisher uses that topic only (no wildcard).
    Exact,
}

impl Filters {
    fn filter_for(self, n: usize) -> &'static str {
        match self {
            Filters::Mixed if n % 2 == 1 => "fleet/#",
            Filters::Mixed | Filters::Plus => "fleet/+/status",
            Filters::Hash => "fleet/#",
            Filters::Exact => "fleet/0/status",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Filters::Mixed => "mixed",
            Filters::Plus => "plus",
            Filters::Hash => "hash",
            Filters::Exact => "exact",
        }
    }
}

#[derive(Args, Debug)]
pub struct EgFanoutArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    load: LoadArgs,
    #[arg(long, default_value_t = 200)]
    subscribers: usize,
    #[arg(long, value_enum, default_value_t = Filters::Mixed)]
    filters: Filters,
    /// Distinct topics `fleet/{i}/status` the publisher cycles through (1 with --filters exact).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    topics: u32,
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// PKCS#8 RSA private key PEM: authenticate every client with CUSTOM-JWT (hubmq Event Grid
    /// mode). Without it, CONNECT carries no authentication.
    #[arg(long)]
    eg_key: Option<PathBuf>,
    /// The tokens' `iss` (the namespace's `custom_jwt.issuer`).
    #[arg(long, default_value = "https://issuer.bench.local")]
    eg_issuer: String,
    /// The tokens' `aud` (one of the namespace's `hostnames`).
    #[arg(long, default_value = "bench.eventgrid.local")]
    eg_audience: String,
}

/// Everything that can end a v5 benchmark connection.
#[derive(Debug)]
enum EgError {
    Io(std::io::Error),
    Mqtt(v5::DecodeError),
    ConnectRefused(u8),
    SubscribeRefused(u8),
    PubAckRefused(u8),
    /// A server DISCONNECT with its reason code.
    Disconnected(u8),
    Closed,
    Timeout(&'static str),
    Unexpected(&'static str),
    Token(String),
}

impl fmt::Display for EgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EgError::Io(e) => write!(f, "I/O error: {e}"),
            EgError::Mqtt(e) => write!(f, "malformed MQTT 5 from broker: {e}"),
            EgError::ConnectRefused(c) => write!(f, "CONNACK refused: reason 0x{c:02x}"),
            EgError::SubscribeRefused(c) => write!(f, "SUBACK refused: reason 0x{c:02x}"),
            EgError::PubAckRefused(c) => write!(f, "PUBACK refused the message: reason 0x{c:02x}"),
            EgError::Disconnected(c) => write!(f, "server DISCONNECT: reason 0x{c:02x}"),
            EgError::Closed => write!(f, "broker closed the connection"),
            EgError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            EgError::Unexpected(what) => write!(f, "unexpected packet: {what}"),
            EgError::Token(e) => write!(f, "cannot mint a token: {e}"),
        }
    }
}

impl From<std::io::Error> for EgError {
    fn from(e: std::io::Error) -> Self {
        EgError::Io(e)
    }
}
impl From<v5::DecodeError> for EgError {
    fn from(e: v5::DecodeError) -> Self {
        EgError::Mqtt(e)
    }
}

/// Receiving half: TCP bytes → MQTT 5 packets, decoded in place.
struct Reader {
    rd: OwnedReadHalf,
    buf: Vec<u8>,
    pos: usize,
}

impl Reader {
    async fn fill(&mut self) -> Result<(), EgError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(READ_CHUNK);
        if self.rd.read_buf(&mut self.buf).await? == 0 {
            return Err(EgError::Closed);
        }
        Ok(())
    }

    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, EgError> {
        match v5::decode(&self.buf[self.pos..])? {
            None => Ok(None),
            Some((p, used)) => {
                self.pos += used;
                Ok(Some(p))
            }
        }
    }
}

/// Sending half: packets staged in `buf`, sent with one write per flush.
struct Writer {
    wr: OwnedWriteHalf,
    buf: Vec<u8>,
}

impl Writer {
    async fn flush(&mut self) -> Result<(), EgError> {
        if !self.buf.is_empty() {
            self.wr.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }
}

async fn with_timeout<T>(
    what: &'static str,
    fut: impl std::future::Future<Output = Result<T, EgError>>,
) -> Result<T, EgError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .map_err(|_| EgError::Timeout(what))?
}

/// Opens a TCP connection and completes CONNECT/CONNACK (v5, clean start).
async fn connect(
    addr: SocketAddr,
    client_id: &str,
    keep_alive_secs: u16,
    token: Option<&str>,
) -> Result<(Reader, Writer), EgError> {
    let stream = with_timeout("TCP connect", async { Ok(TcpStream::connect(addr).await?) }).await?;
    stream.set_nodelay(true)?;
    let (rd, wr) = stream.into_split();
    let mut r = Reader {
        rd,
        buf: Vec::new(),
        pos: 0,
    };
    let mut w = Writer {
        wr,
        buf: Vec::with_capacity(4096),
    };
    v5::encode_connect(
        &mut w.buf,
        &v5::Connect {
            client_id,
            keep_alive_secs,
            auth: token.map(|t| ("CUSTOM-JWT", t.as_bytes())),
        },
    );
    w.flush().await?;
    with_timeout("CONNACK", async {
        loop {
            if let Some(p) = r.next_packet()? {
                return match p {
                    Packet::ConnAck { code: 0 } => Ok(()),
                    Packet::ConnAck { code } => Err(EgError::ConnectRefused(code)),
                    Packet::Disconnect { code } => Err(EgError::Disconnected(code)),
                    _ => Err(EgError::Unexpected("expected CONNACK")),
                };
            }
            r.fill().await?;
        }
    })
    .await?;
    Ok((r, w))
}

async fn subscribe(r: &mut Reader, w: &mut Writer, filter: &str, qos: u8) -> Result<(), EgError> {
    v5::encode_subscribe(&mut w.buf, 1, filter, qos);
    w.flush().await?;
    with_timeout("SUBACK", async {
        loop {
            while let Some(p) = r.next_packet()? {
                match p {
                    Packet::SubAck { pid: 1, code } if code <= 2 => return Ok(()),
                    Packet::SubAck { code, .. } => return Err(EgError::SubscribeRefused(code)),
                    Packet::Disconnect { code } => return Err(EgError::Disconnected(code)),
                    Packet::Publish { .. } | Packet::PingResp => {}
                    _ => return Err(EgError::Unexpected("expected SUBACK")),
                }
            }
            r.fill().await?;
        }
    })
    .await
}

/// State every task of a run shares (one publisher, so one flow).
struct Shared {
    origin: Instant,
    subscribers: u64,
    keep_alive_secs: u16,
    /// Deliveries received by all subscribers since the start (warm-up included).
    delivered: AtomicU64,
    published: AtomicU64,
    acked: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    stop: AtomicBool,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    wake: Notify,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn record_error(&self, e: &EgError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| e.to_string());
    }
}

fn read_header(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?))
}

fn topic_names(filters: Filters, topics: u32) -> Vec<String> {
    let n = if filters == Filters::Exact { 1 } else { topics };
    (0..n).map(|i| format!("fleet/{i}/status")).collect()
}

async fn subscriber_loop(shared: &Shared, mut r: Reader, mut w: Writer) -> Result<(), EgError> {
    let mut lat: Vec<u64> = Vec::with_capacity(4096);
    // A QoS 0 subscriber never writes, so it pings to keep the broker's keep-alive timer happy.
    let ping_every_ns = u64::from(shared.keep_alive_secs.max(1)) * 500_000_000;
    let mut last_write_ns = shared.now_ns();
    loop {
        r.fill().await?;
        let now = shared.now_ns();
        let mut count = 0u64;
        while let Some(p) = r.next_packet()? {
            match p {
                Packet::Publish {
                    qos, pid, payload, ..
                } => {
                    count += 1;
                    if qos == 1 {
                        v5::encode_puback(&mut w.buf, pid);
                    }
                    if let Some(sent) = read_header(payload) {
                        lat.push(now.saturating_sub(sent).max(1));
                    }
                }
                Packet::Disconnect { code } => return Err(EgError::Disconnected(code)),
                _ => {}
            }
        }
        if count > 0 {
            shared.delivered.fetch_add(count, Ordering::Release);
            shared.wake.notify_one();
        }
        if !lat.is_empty() {
            let mut h = shared
                .latency
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for &v in &lat {
                h.saturating_record(v);
            }
            lat.clear();
        }
        if shared.keep_alive_secs > 0 && now.saturating_sub(last_write_ns) > ping_every_ns {
            v5::encode_pingreq(&mut w.buf);
        }
        if !w.buf.is_empty() {
            last_write_ns = now;
            w.flush().await?;
        }
    }
}

/// Publisher-side reader: counts PUBACKs; a refusal (reason ≥ 0x80) counts as an error.
async fn ack_loop(shared: &Shared, mut r: Reader) -> Result<(), EgError> {
    loop {
        r.fill().await?;
        let mut acks = 0;
        while let Some(p) = r.next_packet()? {
            match p {
                Packet::PubAck { code, .. } => {
                    acks += 1;
                    if code >= 0x80 {
                        shared.record_error(&EgError::PubAckRefused(code));
                    }
                }
                Packet::Disconnect { code } => return Err(EgError::Disconnected(code)),
                _ => {}
            }
        }
        if acks > 0 {
            shared.acked.fetch_add(acks, Ordering::Release);
            shared.wake.notify_one();
        }
    }
}

struct PublisherCfg {
    topics: Vec<String>,
    qos: u8,
    payload: usize,
    window: u64,
    rate: Option<f64>,
}

async fn publisher_loop(
    shared: &Shared,
    mut w: Writer,
    cfg: PublisherCfg,
    start: Instant,
) -> Result<(), EgError> {
    let mut payload = vec![0u8; cfg.payload.max(HEADER_BYTES)];
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let acked = (cfg.qos > 0).then(|| shared.acked.load(Ordering::Acquire));
        let room = window_room(
            seq,
            shared.delivered.load(Ordering::Acquire),
            shared.subscribers,
            acked,
            cfg.window,
        );
        let n = match next_batch(seq, room, cfg.rate, start) {
            Ok(n) => n,
            Err(next_due) => {
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep_until(next_due.into()) => {}
                }
                continue;
            }
        };
        for _ in 0..n {
            let topic = &cfg.topics[(seq % cfg.topics.len() as u64) as usize];
            seq += 1;
            payload[0..8].copy_from_slice(&seq.to_le_bytes());
            payload[8..16].copy_from_slice(&shared.now_ns().to_le_bytes());
            let pid = (seq % 65535) as u16 + 1;
            v5::encode_publish(&mut w.buf, topic, cfg.qos, pid, &payload);
        }
        w.flush().await?;
        shared.published.fetch_add(n, Ordering::Relaxed);
    }
    Ok(())
}

/// Runs the scenario; set-up failures are errors, failures during the run are counted.
pub async fn run(ctx: ScenarioCtx, a: EgFanoutArgs) -> Outcome {
    if a.subscribers == 0 {
        return Err("--subscribers must be at least 1".into());
    }
    if ctx.opts.url.transport != crate::url::Transport::Tcp {
        return Err("egfanout runs over tcp:// only".into());
    }
    if a.load.payload < HEADER_BYTES {
        return Err(format!("--payload must be at least {HEADER_BYTES} bytes"));
    }
    if a.load.window == 0 {
        return Err("--window must be at least 1".into());
    }
    let (warmup, duration, drain) = (
        secs(a.load.warmup, "warmup")?,
        secs(a.load.duration, "duration")?,
        secs(a.load.drain, "drain")?,
    );
    let signer = match &a.eg_key {
        Some(path) => Some(Arc::new(Signer::from_pem_file(
            path,
            &a.eg_issuer,
            &a.eg_audience,
        )?)),
        None => None,
    };
    let addr = ctx.opts.url.addr;
    let keep_alive = ctx.opts.keep_alive_secs;
    let shared = Arc::new(Shared {
        origin: Instant::now(),
        subscribers: a.subscribers as u64,
        keep_alive_secs: keep_alive,
        delivered: AtomicU64::new(0),
        published: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        latency: Mutex::new(new_histogram().map_err(|e| e.to_string())?),
        stop: AtomicBool::new(false),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        wake: Notify::new(),
    });
    let prefix = format!("egb-{}", std::process::id());
    let open = move |n: usize, signer: Option<Arc<Signer>>, prefix: String| async move {
        let id = format!("{prefix}-{n}");
        let token = match &signer {
            // sub = client id: one session per authentication name.
            Some(s) => Some(s.mint(&id, TOKEN_TTL_SECS).map_err(EgError::Token)?),
            None => None,
        };
        connect(addr, &id, keep_alive, token.as_deref()).await
    };

    // Set-up: every subscriber subscribed before the publisher connects.
    let setup_start = Instant::now();
    let sem = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut setups = Vec::with_capacity(a.subscribers);
    for n in 0..a.subscribers {
        let (sem, signer, prefix) = (sem.clone(), signer.clone(), prefix.clone());
        let (filter, qos) = (a.filters.filter_for(n), a.qos);
        setups.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let (mut r, mut w) = open(n, signer, prefix).await?;
            subscribe(&mut r, &mut w, filter, qos).await?;
            Ok::<_, EgError>((r, w))
        }));
    }
    let mut subscribers = Vec::with_capacity(setups.len());
    for s in setups {
        match s.await {
            Ok(Ok(rw)) => subscribers.push(rw),
            Ok(Err(e)) => return Err(format!("set-up failed: {e}")),
            Err(_) => return Err("set-up failed: a set-up task panicked".into()),
        }
    }
    let (pr, pw) = open(a.subscribers, signer.clone(), prefix.clone())
        .await
        .map_err(|e| format!("set-up failed (publisher): {e}"))?;
    let setup_secs = setup_start.elapsed().as_secs_f64();
    let connections = subscribers.len() + 1;

    for (r, w) in subscribers {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = subscriber_loop(&shared, r, w).await {
                shared.record_error(&e);
            }
        });
    }
    let shared2 = shared.clone();
    tokio::spawn(async move {
        if let Err(e) = ack_loop(&shared2, pr).await {
            if !shared2.stop.load(Ordering::Relaxed) {
                shared2.record_error(&e);
            }
        }
    });
    let topics = topic_names(a.filters, a.topics);
    let topic_count = topics.len();
    let cfg = PublisherCfg {
        topics,
        qos: a.qos,
        payload: a.load.payload,
        window: a.load.window,
        rate: a.load.rate.map(|r| (r as f64).max(0.001)),
    };
    let shared3 = shared.clone();
    let pub_start = Instant::now();
    tokio::spawn(async move {
        if let Err(e) = publisher_loop(&shared3, pw, cfg, pub_start).await {
            shared3.record_error(&e);
        }
    });

    tokio::time::sleep(warmup).await;
    crate::load::run_hook(a.load.at_start.as_deref());
    let generator = crate::procstat::Probe::this_process();
    let (cpu0, gen0) = (ctx.broker.cpu_secs(), generator.cpu_secs());
    let delivered0 = shared.delivered.load(Ordering::Relaxed);
    let published0 = shared.published.load(Ordering::Relaxed);
    shared
        .latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .reset();
    let t0 = Instant::now();
    tokio::time::sleep(duration).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let delivered1 = shared.delivered.load(Ordering::Relaxed);
    let published1 = shared.published.load(Ordering::Relaxed);
    let (cpu1, gen1) = (ctx.broker.cpu_secs(), generator.cpu_secs());
    let rss = ctx.broker.rss_kib();
    crate::load::run_hook(a.load.at_end.as_deref());
    shared.stop.store(true, Ordering::Relaxed);
    shared.wake.notify_one();

    // Drain (bounded): wait until every subscriber has every message published so far.
    let drain_end = Instant::now() + drain;
    let mut expected = shared.published.load(Ordering::Relaxed) * shared.subscribers;
    while Instant::now() < drain_end && shared.delivered.load(Ordering::Relaxed) < expected {
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The publisher may still finish one batch after the stop flag.
        expected = shared.published.load(Ordering::Relaxed) * shared.subscribers;
    }
    let received = shared.delivered.load(Ordering::Relaxed);
    let lost = expected.saturating_sub(received);
    // More than published × subscribers would mean duplicate deliveries (a routing bug).
    let duplicates = received.saturating_sub(expected);

    let deliveries = delivered1 - delivered0;
    let published = published1 - published0;
    let latency = shared
        .latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut m = Map::new();
    m.insert("scenario".into(), json!("egfanout"));
    m.insert("filters".into(), json!(a.filters.name()));
    m.insert("topic_names".into(), json!(topic_count));
    m.insert(
        "auth".into(),
        json!(if signer.is_some() {
            "CUSTOM-JWT"
        } else {
            "none"
        }),
    );
    m.insert("mqtt".into(), json!(5));
    m.insert("qos".into(), json!(a.qos));
    m.insert("payload".into(), json!(a.load.payload));
    m.insert("topics".into(), json!(1));
    m.insert("subscribers_per_topic".into(), json!(a.subscribers));
    m.insert("connections".into(), json!(connections));
    m.insert("window".into(), json!(a.load.window));
    m.insert("rate".into(), json!(a.load.rate));
    m.insert("duration_s".into(), json!(duration.as_secs_f64()));
    m.insert("setup_s".into(), json!(setup_secs));
    m.insert("published".into(), json!(published));
    m.insert(
        "publishes_per_sec".into(),
        json!((published as f64 / elapsed).round()),
    );
    m.insert("deliveries".into(), json!(deliveries));
    let per_sec = (deliveries as f64 / elapsed).round();
    m.insert("deliveries_per_sec".into(), json!(per_sec));
    m.insert("ops_per_sec".into(), json!(per_sec));
    m.insert("lost".into(), json!(lost));
    m.insert("duplicates".into(), json!(duplicates));
    crate::percentiles(&latency, &mut m);
    crate::cpu_fields(
        &mut m,
        cpu0.zip(cpu1).map(|(x, y)| y - x),
        deliveries,
        rss,
        gen0.zip(gen1).map(|(x, y)| y - x),
    );
    m.insert(
        "errors".into(),
        json!(shared.errors.load(Ordering::Relaxed)),
    );
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    m.insert("first_error".into(), json!(first_error));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_filters_alternate_plus_and_hash() {
        assert_eq!(Filters::Mixed.filter_for(0), "fleet/+/status");
        assert_eq!(Filters::Mixed.filter_for(1), "fleet/#");
        assert_eq!(Filters::Mixed.filter_for(2), "fleet/+/status");
        assert_eq!(Filters::Hash.filter_for(0), "fleet/#");
        assert_eq!(Filters::Exact.filter_for(7), "fleet/0/status");
    }

    #[test]
    fn exact_mode_publishes_to_one_topic_only() {
        assert_eq!(topic_names(Filters::Exact, 100), vec!["fleet/0/status"]);
        let t = topic_names(Filters::Mixed, 3);
        assert_eq!(
            t,
            vec!["fleet/0/status", "fleet/1/status", "fleet/2/status"]
        );
    }

    #[test]
    fn window_bounds_publisher_by_average_subscriber_and_acks() {
        assert_eq!(window_room(10, 2000, 200, None, 32), 32);
        assert_eq!(window_room(42, 2000, 200, None, 32), 0);
        assert_eq!(window_room(40, 40 * 200, 200, Some(20), 32), 12);
    }

    #[test]
    fn latency_header_needs_sixteen_bytes() {
        let mut p = vec![0u8; 64];
        p[8..16].copy_from_slice(&99u64.to_le_bytes());
        assert_eq!(read_header(&p), Some(99));
        assert_eq!(read_header(&p[..15]), None);
    }
}
