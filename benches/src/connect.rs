//! The `connect` scenario: open many connections (TCP connect, optional WebSocket upgrade,
//! CONNECT/CONNACK) with bounded concurrency and report connects/s and connect latency; with
//! `keep` the connections stay open to the end so the broker's RSS per idle connection can be
//! read.

use crate::conn::{self, ClientError, ClientOpts, Reader, Writer};
use crate::load::new_histogram;
use crate::procstat::Probe;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ConnectSpec {
    pub opts: ClientOpts,
    pub count: u64,
    pub concurrency: usize,
    /// Keep every connection open until all are done (measures idle memory).
    pub keep: bool,
    pub broker: Probe,
}

#[derive(Debug)]
pub struct ConnectResult {
    pub connected: u64,
    pub elapsed_secs: f64,
    pub connects_per_sec: f64,
    pub latency: Histogram<u64>,
    pub broker_cpu_secs: Option<f64>,
    pub broker_rss_kib_before: Option<u64>,
    pub broker_rss_kib: Option<u64>,
    pub generator_cpu_secs: Option<f64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

pub async fn run(spec: ConnectSpec) -> Result<ConnectResult, ClientError> {
    let next = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let latency = Arc::new(Mutex::new(new_histogram()?));
    let kept: Arc<Mutex<Vec<(Reader, Writer)>>> = Arc::new(Mutex::new(Vec::new()));
    let generator = Probe::this_process();
    let rss0 = spec.broker.rss_kib();
    let cpu0 = spec.broker.cpu_secs();
    let gen0 = generator.cpu_secs();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..spec.concurrency.max(1) {
        let (next, connected, errors, first_error, latency, kept, opts) = (
            next.clone(),
            connected.clone(),
            errors.clone(),
            first_error.clone(),
            latency.clone(),
            kept.clone(),
            spec.opts.clone(),
        );
        let (count, keep) = (spec.count, spec.keep);
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let t = Instant::now();
                let id = format!("bench-{}-c{n}", std::process::id());
                match conn::connect(&opts, &id, n).await {
                    Ok((r, w)) => {
                        connected.fetch_add(1, Ordering::Relaxed);
                        latency
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .saturating_record(t.elapsed().as_nanos() as u64);
                        if keep {
                            kept.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push((r, w));
                        } else {
                            w.close().await;
                            drop(r);
                        }
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_or_insert_with(|| e.to_string());
                        // A refusing broker would otherwise be hammered in a tight loop.
                        if matches!(e, ClientError::Io(_)) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu1 = spec.broker.cpu_secs();
    let gen1 = generator.cpu_secs();
    if spec.keep {
        // Give the broker a moment to settle its per-connection allocations before reading RSS.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rss = spec.broker.rss_kib();
    let kept_conns = std::mem::take(&mut *kept.lock().unwrap_or_else(PoisonError::into_inner));
    for (r, w) in kept_conns {
        w.close().await;
        drop(r);
    }
    let connected = connected.load(Ordering::Relaxed);
    let latency = latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let first_error = first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(ConnectResult {
        connected,
        elapsed_secs: elapsed,
        connects_per_sec: connected as f64 / elapsed,
        latency,
        broker_cpu_secs: cpu0.zip(cpu1).map(|(a, b)| b - a),
        broker_rss_kib_before: rss0,
        broker_rss_kib: rss,
        generator_cpu_secs: gen0.zip(gen1).map(|(a, b)| b - a),
        errors: errors.load(Ordering::Relaxed),
        first_error,
    })
}
