//! The publish/subscribe load engine behind the `fanout` and `pairs` scenarios.
//!
//! A run is a set of *flows*: one publisher connection and the subscriber connections on its
//! topic (fan-out = one flow with N subscribers; pairs = P flows with one subscriber each).
//! Every payload starts with a sequence number and a send timestamp (nanoseconds since one
//! `Instant` shared by the whole process), so each subscriber measures latency itself and spots
//! lost messages by sequence gaps. A publisher never runs more than `window` messages ahead of
//! the average progress of its subscribers (and, at QoS 1, of its PUBACKs): without that bound
//! a QoS 0 publisher fills socket buffers with seconds of backlog and the rates mean nothing
//! (see the design's "Bench pitfall").

use crate::codec::{self, Packet};
use crate::conn::{self, ClientError, ClientOpts, Reader, Writer};
use crate::procstat::Probe;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// Bytes at the start of every payload: sequence number then send time.
pub const HEADER_BYTES: usize = 16;
/// How many connections are opened at once during set-up.
const SETUP_CONCURRENCY: usize = 64;
/// Most messages a publisher stages into one write.
pub(crate) const MAX_BATCH: u64 = 256;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub opts: ClientOpts,
    /// Topic of each flow (one publisher per topic).
    pub topics: Vec<String>,
    pub subscribers_per_topic: usize,
    pub qos: u8,
    pub payload: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    /// Total publish rate over all flows in messages/s; `None` = as fast as the window allows.
    pub rate: Option<u64>,
    pub window: u64,
    pub broker: Probe,
    /// Shell commands run right before / after the measurement interval (e.g. zeroing and
    /// dumping callgrind counters).
    pub at_start: Option<String>,
    pub at_end: Option<String>,
}

/// What a run measured (over the measurement interval unless noted).
#[derive(Debug)]
pub struct LoadResult {
    pub connections: usize,
    pub setup_secs: f64,
    pub published: u64,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    pub publishes_per_sec: f64,
    /// Deliveries that never arrived (sequence gaps plus what was still missing after the drain).
    pub lost: u64,
    pub latency: Histogram<u64>,
    pub broker_cpu_secs: Option<f64>,
    pub broker_rss_kib: Option<u64>,
    pub generator_cpu_secs: Option<f64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// One publisher's view of its subscribers.
struct Flow {
    topic: String,
    subscribers: u64,
    /// Messages received by its subscribers plus messages they saw skipped (gaps).
    progress: AtomicU64,
    /// PUBACKs the publisher received.
    acked: AtomicU64,
    /// Messages this publisher sent.
    published: AtomicU64,
    wake: Notify,
}

/// State every task of a run shares.
struct Shared {
    origin: Instant,
    delivered: AtomicU64,
    gaps: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    /// Set when publishers must stop (end of the measurement interval).
    stop: AtomicBool,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    client_seq: AtomicU64,
    keep_alive_secs: u16,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn client_id(&self) -> (String, u64) {
        let n = self.client_seq.fetch_add(1, Ordering::Relaxed);
        (format!("bench-{}-{n}", std::process::id()), n)
    }

    fn record_error(&self, e: &ClientError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert_with(|| e.to_string());
    }
}

/// An HDR histogram of nanoseconds from 1 ns to 100 s, 3 significant digits.
pub fn new_histogram() -> Result<Histogram<u64>, ClientError> {
    // Constant bounds that hdrhistogram accepts; the error path exists only to avoid a panic.
    Histogram::new_with_bounds(1, 100_000_000_000, 3)
        .map_err(|_| ClientError::Unexpected("histogram bounds"))
}

/// Runs the load and returns what it measured; set-up failures are errors.
pub async fn run(spec: LoadSpec) -> Result<LoadResult, ClientError> {
    let shared = Arc::new(Shared {
        origin: Instant::now(),
        delivered: AtomicU64::new(0),
        gaps: AtomicU64::new(0),
        latency: Mutex::new(new_histogram()?),
        stop: AtomicBool::new(false),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        client_seq: AtomicU64::new(0),
        keep_alive_secs: spec.opts.keep_alive_secs,
    });
    let flows: Vec<Arc<Flow>> = spec
        .topics
        .iter()
        .map(|t| {
            Arc::new(Flow {
                topic: t.clone(),
                subscribers: spec.subscribers_per_topic as u64,
                progress: AtomicU64::new(0),
                acked: AtomicU64::new(0),
                published: AtomicU64::new(0),
                wake: Notify::new(),
            })
        })
        .collect();

    // Set-up: subscribers first (all of them subscribed before anything is published), then
    // publishers; both with bounded concurrency.
    let setup_start = Instant::now();
    let sem = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut setups = Vec::new();
    for flow in &flows {
        for _ in 0..spec.subscribers_per_topic {
            let (sem, opts, shared, flow) =
                (sem.clone(), spec.opts.clone(), shared.clone(), flow.clone());
            let qos = spec.qos;
            setups.push(tokio::spawn(async move {
                let _permit = sem.acquire().await;
                let (id, n) = shared.client_id();
                let (mut r, mut w) = conn::connect(&opts, &id, n).await?;
                conn::subscribe(&mut r, &mut w, &flow.topic, qos).await?;
                Ok::<_, ClientError>((r, w))
            }));
        }
    }
    let mut subscribers = Vec::with_capacity(setups.len());
    for (i, s) in setups.into_iter().enumerate() {
        let flow = flows[i / spec.subscribers_per_topic.max(1)].clone();
        match s.await {
            Ok(Ok(rw)) => subscribers.push((flow, rw)),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ClientError::Unexpected("set-up task failed")),
        }
    }
    let mut publishers = Vec::with_capacity(flows.len());
    for flow in &flows {
        let (id, n) = shared.client_id();
        let rw = conn::connect(&spec.opts, &id, n).await?;
        publishers.push((flow.clone(), rw));
    }
    let connections = subscribers.len() + publishers.len();
    let setup_secs = setup_start.elapsed().as_secs_f64();

    for (flow, (r, w)) in subscribers {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = subscriber_loop(&shared, &flow, r, w).await {
                shared.record_error(&e);
            }
        });
    }
    let per_flow_rate = spec
        .rate
        .map(|r| (r as f64 / flows.len().max(1) as f64).max(0.001));
    let pub_start = Instant::now();
    for (flow, (r, w)) in publishers {
        let (shared2, flow2) = (shared.clone(), flow.clone());
        tokio::spawn(async move {
            if let Err(e) = ack_loop(&flow2, r).await {
                if !shared2.stop.load(Ordering::Relaxed) {
                    shared2.record_error(&e);
                }
            }
        });
        let shared = shared.clone();
        let cfg = PublisherCfg {
            qos: spec.qos,
            payload: spec.payload,
            window: spec.window,
            rate: per_flow_rate,
        };
        tokio::spawn(async move {
            if let Err(e) = publisher_loop(&shared, &flow, w, cfg, pub_start).await {
                shared.record_error(&e);
            }
        });
    }

    // Warm-up, then the measurement interval proper.
    tokio::time::sleep(spec.warmup).await;
    run_hook(spec.at_start.as_deref());
    let generator = Probe::this_process();
    let cpu0 = spec.broker.cpu_secs();
    let gen0 = generator.cpu_secs();
    let delivered0 = shared.delivered.load(Ordering::Relaxed);
    let published0: u64 = flows
        .iter()
        .map(|f| f.published.load(Ordering::Relaxed))
        .sum();
    shared
        .latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .reset();
    let t0 = Instant::now();
    tokio::time::sleep(spec.duration).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let delivered1 = shared.delivered.load(Ordering::Relaxed);
    let published1: u64 = flows
        .iter()
        .map(|f| f.published.load(Ordering::Relaxed))
        .sum();
    let cpu1 = spec.broker.cpu_secs();
    let gen1 = generator.cpu_secs();
    let rss = spec.broker.rss_kib();
    run_hook(spec.at_end.as_deref());
    shared.stop.store(true, Ordering::Relaxed);
    for f in &flows {
        f.wake.notify_one();
    }

    // Drain: wait (bounded) until every subscriber has seen every message or its gap.
    let drain_end = Instant::now() + spec.drain;
    let expected: u64 = flows
        .iter()
        .map(|f| f.published.load(Ordering::Relaxed) * f.subscribers)
        .sum();
    while Instant::now() < drain_end {
        let progress: u64 = flows
            .iter()
            .map(|f| f.progress.load(Ordering::Relaxed))
            .sum();
        if progress >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let progress: u64 = flows
        .iter()
        .map(|f| f.progress.load(Ordering::Relaxed))
        .sum();
    let lost = shared.gaps.load(Ordering::Relaxed) + expected.saturating_sub(progress);

    let deliveries = delivered1 - delivered0;
    let published = published1 - published0;
    let latency = shared
        .latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(LoadResult {
        connections,
        setup_secs,
        published,
        deliveries,
        deliveries_per_sec: deliveries as f64 / elapsed,
        publishes_per_sec: published as f64 / elapsed,
        lost,
        latency,
        broker_cpu_secs: cpu0.zip(cpu1).map(|(a, b)| b - a),
        broker_rss_kib: rss,
        generator_cpu_secs: gen0.zip(gen1).map(|(a, b)| b - a),
        errors: shared.errors.load(Ordering::Relaxed),
        first_error,
    })
}

/// Runs a measurement hook with `sh -c`, blocking on purpose: the load pauses meanwhile, so
/// the hook's own time does not blur the interval's edges.
pub(crate) fn run_hook(cmd: Option<&str>) {
    if let Some(cmd) = cmd {
        match std::process::Command::new("sh").arg("-c").arg(cmd).status() {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("hubmq-bench: hook `{cmd}` exited with {s}"),
            Err(e) => eprintln!("hubmq-bench: hook `{cmd}` failed: {e}"),
        }
    }
}

/// Reads deliveries: latency into the shared histogram, gaps counted, PUBACKs for QoS 1.
async fn subscriber_loop(
    shared: &Shared,
    flow: &Flow,
    mut r: Reader,
    mut w: Writer,
) -> Result<(), ClientError> {
    let mut last_seq = 0u64;
    let mut lat: Vec<u64> = Vec::with_capacity(4096);
    // A QoS 0 subscriber never writes, so it pings to keep the broker's keep-alive timer happy.
    let ping_every_ns = u64::from(shared.keep_alive_secs.max(1)) * 500_000_000;
    let mut last_write_ns = shared.now_ns();
    loop {
        r.fill().await?;
        // One clock read per batch: everything in it arrived by now.
        let now = shared.now_ns();
        let (mut count, mut gaps) = (0u64, 0u64);
        while let Some(p) = r.next_packet()? {
            if let Packet::Publish {
                qos, pid, payload, ..
            } = p
            {
                count += 1;
                if qos == 1 {
                    codec::encode_puback(&mut w.buf, pid);
                }
                if let Some((seq, sent)) = read_header(payload) {
                    lat.push(now.saturating_sub(sent).max(1));
                    if seq > last_seq + 1 && last_seq != 0 {
                        gaps += seq - last_seq - 1;
                    }
                    last_seq = last_seq.max(seq);
                }
            }
        }
        if count > 0 {
            shared.delivered.fetch_add(count, Ordering::Relaxed);
            if gaps > 0 {
                shared.gaps.fetch_add(gaps, Ordering::Relaxed);
            }
            flow.progress.fetch_add(count + gaps, Ordering::Release);
            flow.wake.notify_one();
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
        if let Some(p) = r.take_pong() {
            w.pong(&p).await?;
        }
        if shared.keep_alive_secs > 0 && now.saturating_sub(last_write_ns) > ping_every_ns {
            codec::encode_pingreq(&mut w.buf);
        }
        if !w.buf.is_empty() {
            last_write_ns = now;
            w.flush().await?;
        }
    }
}

/// Publisher-side reader: counts PUBACKs (QoS 1) and wakes the publisher.
async fn ack_loop(flow: &Flow, mut r: Reader) -> Result<(), ClientError> {
    loop {
        r.fill().await?;
        let mut acks = 0;
        while let Some(p) = r.next_packet()? {
            if let Packet::PubAck { .. } = p {
                acks += 1;
            }
        }
        if acks > 0 {
            flow.acked.fetch_add(acks, Ordering::Release);
            flow.wake.notify_one();
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct PublisherCfg {
    qos: u8,
    payload: usize,
    window: u64,
    /// Messages/s for this publisher; `None` = flat out.
    rate: Option<f64>,
}

fn read_header(payload: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?);
    let sent = u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
    Some((seq, sent))
}

/// How many messages the window still allows.
pub(crate) fn window_room(
    sent: u64,
    progress: u64,
    subscribers: u64,
    acked: Option<u64>,
    window: u64,
) -> u64 {
    let mut done = progress / subscribers.max(1);
    if let Some(a) = acked {
        done = done.min(a);
    }
    window.saturating_sub(sent.saturating_sub(done))
}

/// How many messages a publisher may send now (`Ok`, at least 1): what the window allows, what
/// a fixed `rate` has made due since `start`, at most `MAX_BATCH`. `Err(when)` when none: wait
/// until the next scheduled message, or a short while for window room.
pub(crate) fn next_batch(
    sent: u64,
    room: u64,
    rate: Option<f64>,
    start: Instant,
) -> Result<u64, Instant> {
    let due = match rate {
        Some(r) => ((start.elapsed().as_secs_f64() * r) as u64).saturating_sub(sent),
        None => u64::MAX,
    };
    let n = room.min(due).min(MAX_BATCH);
    if n > 0 {
        return Ok(n);
    }
    Err(match rate {
        Some(r) if room > 0 => start + Duration::from_secs_f64((sent + 1) as f64 / r),
        _ => Instant::now() + Duration::from_millis(50),
    })
}

async fn publisher_loop(
    shared: &Shared,
    flow: &Flow,
    mut w: Writer,
    cfg: PublisherCfg,
    start: Instant,
) -> Result<(), ClientError> {
    let mut payload = vec![0u8; cfg.payload.max(HEADER_BYTES)];
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let acked = (cfg.qos > 0).then(|| flow.acked.load(Ordering::Acquire));
        let room = window_room(
            seq,
            flow.progress.load(Ordering::Acquire),
            flow.subscribers,
            acked,
            cfg.window,
        );
        let n = match next_batch(seq, room, cfg.rate, start) {
            Ok(n) => n,
            Err(next_due) => {
                // Wait for subscriber progress, the next scheduled message, or the stop flag.
                tokio::select! {
                    _ = flow.wake.notified() => {}
                    _ = tokio::time::sleep_until(next_due.into()) => {}
                }
                continue;
            }
        };
        for _ in 0..n {
            seq += 1;
            payload[0..8].copy_from_slice(&seq.to_le_bytes());
            payload[8..16].copy_from_slice(&shared.now_ns().to_le_bytes());
            // Packet ids cycle through 1..=65535; the window keeps far fewer in flight.
            let pid = (seq % 65535) as u16 + 1;
            codec::encode_publish(&mut w.buf, &flow.topic, cfg.qos, pid, &payload);
        }
        w.flush().await?;
        flow.published.fetch_add(n, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds_publisher_by_average_progress() {
        // 1000 subscribers, each got 10 messages on average: 10 done, 32 allowed ahead.
        assert_eq!(window_room(10, 10_000, 1000, None, 32), 32);
        assert_eq!(window_room(42, 10_000, 1000, None, 32), 0);
        assert_eq!(window_room(30, 10_000, 1000, None, 32), 12);
    }

    #[test]
    fn window_also_bounds_by_pubacks_at_qos1() {
        assert_eq!(window_room(40, 40, 1, Some(20), 32), 12);
        assert_eq!(window_room(40, 40, 1, Some(40), 32), 32);
    }

    #[test]
    fn payload_header_roundtrips() {
        let mut p = vec![0u8; 64];
        p[0..8].copy_from_slice(&7u64.to_le_bytes());
        p[8..16].copy_from_slice(&99u64.to_le_bytes());
        assert_eq!(read_header(&p), Some((7, 99)));
        assert_eq!(read_header(&p[..15]), None);
    }
}
