//! `hubmq-bench`: a frugal MQTT 3.1.1 load generator (its own client engine, TCP or WebSocket)
//! for comparing brokers on this machine. Scenarios: `fanout` (1 publisher → N subscribers on
//! one topic), `pairs` (P publisher/subscriber pairs, one topic each), `connect` (connection
//! storm); `report` turns their JSON results into Markdown tables. It only ever targets
//! loopback addresses.

#![forbid(unsafe_code)]

mod codec;
mod conn;
mod connect;
mod egfanout;
mod jwt;
mod load;
mod procstat;
mod report;
mod rs256;
mod trie;
mod url;
mod v5;
mod ws;

use clap::{Args, Parser, Subcommand};
use conn::ClientOpts;
use hdrhistogram::Histogram;
use procstat::Probe;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use url::{BrokerUrl, Transport};

#[derive(Parser, Debug)]
#[command(name = "hubmq-bench", about = "MQTT load generator (loopback only)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// One publisher → N subscribers on one topic.
    Fanout(FanoutArgs),
    /// P publisher/subscriber pairs, each on its own topic `pair/{i}`.
    Pairs(PairsArgs),
    /// Open many connections (CONNECT/CONNACK) and report connects/s.
    Connect(ConnectArgs),
    /// Print Markdown tables comparing result JSON files (grouped by label).
    Report(ReportArgs),
    /// Time in-process topic-trie lookups (Event Grid wildcard routing); no broker needed.
    Trie(trie::TrieArgs),
    /// MQTT 5 wildcard fan-out (`fleet/+/status`, `fleet/#`); CUSTOM-JWT with --eg-key (Event Grid mode).
    Egfanout(egfanout::EgFanoutArgs),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// tcp://127.0.0.1:1883 or ws://127.0.0.1:8080/path?query (loopback only).
    #[arg(long)]
    url: String,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// Sign an HS256 access token with this key (hubmq hubs that need tokens); on WS it goes
    /// into `access_token`, on TCP into the CONNECT password.
    #[arg(long)]
    jwt_key: Option<String>,
    /// Token audience; default for WS: http://{host}:{port}{path}. Required on TCP with --jwt-key.
    #[arg(long)]
    jwt_audience: Option<String>,
    /// Broker process id for CPU and RSS readings from /proc.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Scenario label for reports (e.g. fanout-ws-sat).
    #[arg(long)]
    label: Option<String>,
    /// Broker name for reports (e.g. mosquitto).
    #[arg(long, default_value = "broker")]
    broker_name: String,
    /// MQTT keep-alive in seconds sent in CONNECT.
    #[arg(long, default_value_t = 300)]
    keepalive: u16,
    /// Generator threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Args, Debug)]
struct LoadArgs {
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Measurement interval in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds allowed after the interval for in-flight messages to arrive.
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Total publish rate in messages/s (default: flat out within the window).
    #[arg(long)]
    rate: Option<u64>,
    /// Most messages a publisher may be ahead of its subscribers.
    #[arg(long, default_value_t = 32)]
    window: u64,
    /// Shell command run when the measurement interval starts (after warm-up).
    #[arg(long)]
    at_start: Option<String>,
    /// Shell command run when the measurement interval ends.
    #[arg(long)]
    at_end: Option<String>,
}

#[derive(Args, Debug)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    load: LoadArgs,
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    #[arg(long, default_value = "g1")]
    topic: String,
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
}

#[derive(Args, Debug)]
struct PairsArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    load: LoadArgs,
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
}

#[derive(Args, Debug)]
struct ConnectArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 5000)]
    count: u64,
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Keep all connections open until the end (reports RSS per connection).
    #[arg(long)]
    keep: bool,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Result JSON files; labels keep the order of first appearance.
    files: Vec<PathBuf>,
    /// Broker the ratios are computed against.
    #[arg(long, default_value = "mosquitto")]
    baseline: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Report(a) => report::print(&a.files, &a.baseline),
        Cmd::Trie(a) => trie::run(a),
        Cmd::Fanout(a) => with_runtime(a.common.clone(), |c| Box::pin(fanout(c, a))),
        Cmd::Pairs(a) => with_runtime(a.common.clone(), |c| Box::pin(pairs(c, a))),
        Cmd::Connect(a) => with_runtime(a.common.clone(), |c| Box::pin(connect_storm(c, a))),
        Cmd::Egfanout(a) => with_runtime(a.common.clone(), |c| Box::pin(egfanout::run(c, a))),
    }
}

type Outcome = Result<Map<String, Value>, String>;
type ScenarioFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Outcome>>>;

/// Builds the runtime, resolves the client options, runs the scenario and reports.
fn with_runtime(common: Common, scenario: impl FnOnce(ScenarioCtx) -> ScenarioFuture) -> ExitCode {
    let mut base = Map::new();
    base.insert("label".into(), json!(common.label));
    base.insert("broker".into(), json!(common.broker_name));
    let outcome = prepare(&common).and_then(|ctx| {
        base.insert("broker_url".into(), json!(ctx.opts.url.redacted()));
        base.insert(
            "transport".into(),
            json!(if ctx.opts.url.transport == Transport::Ws {
                "ws"
            } else {
                "tcp"
            }),
        );
        let rt = if common.threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(common.threads)
                .enable_all()
                .build()
        }
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
        // Dropping the runtime cancels the connection tasks still running after the run.
        rt.block_on(scenario(ctx))
    });
    let (code, record) = match outcome {
        Ok(fields) => {
            let errors = fields.get("errors").and_then(Value::as_u64).unwrap_or(0);
            base.extend(fields);
            println!("{}", summary_line(&base));
            if errors > 0 {
                eprintln!(
                    "hubmq-bench: {errors} connection error(s) during the run; first: {}",
                    base.get("first_error")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                );
            }
            (
                if errors > 0 {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                },
                base,
            )
        }
        Err(e) => {
            eprintln!("hubmq-bench: {e}");
            base.insert("error".into(), json!(e));
            (ExitCode::FAILURE, base)
        }
    };
    if let Some(path) = &common.json {
        let text = serde_json::to_string_pretty(&Value::Object(record)).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("hubmq-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    code
}

struct ScenarioCtx {
    opts: ClientOpts,
    broker: Probe,
}

fn prepare(c: &Common) -> Result<ScenarioCtx, String> {
    let mut url = BrokerUrl::parse(&c.url).map_err(|e| format!("--url: {e}"))?;
    let mut password = c.password.clone();
    if let Some(key) = &c.jwt_key {
        let audience = match (&c.jwt_audience, url.transport) {
            (Some(a), _) => a.clone(),
            (None, Transport::Ws) => format!("http://{}{}", url.host, url.path()),
            (None, Transport::Tcp) => {
                return Err("--jwt-key on a tcp:// URL needs --jwt-audience".into())
            }
        };
        let token = jwt::mint_hs256(key, &audience, 3600);
        match url.transport {
            Transport::Ws => url = url.with_query_param("access_token", &token),
            Transport::Tcp => password = Some(token),
        }
    }
    let broker = Probe::new(c.broker_pid);
    broker.check()?;
    Ok(ScenarioCtx {
        opts: ClientOpts {
            url,
            username: c.username.clone(),
            password,
            keep_alive_secs: c.keepalive,
        },
        broker,
    })
}

fn secs(v: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| format!("--{what} must be a non-negative number of seconds"))
}

fn load_spec(
    ctx: ScenarioCtx,
    l: &LoadArgs,
    topics: Vec<String>,
    subs: usize,
    qos: u8,
) -> Result<load::LoadSpec, String> {
    if l.payload < load::HEADER_BYTES {
        return Err(format!(
            "--payload must be at least {} bytes (sequence + timestamp)",
            load::HEADER_BYTES
        ));
    }
    if l.window == 0 {
        return Err("--window must be at least 1".into());
    }
    Ok(load::LoadSpec {
        opts: ctx.opts,
        topics,
        subscribers_per_topic: subs,
        qos,
        payload: l.payload,
        warmup: secs(l.warmup, "warmup")?,
        duration: secs(l.duration, "duration")?,
        drain: secs(l.drain, "drain")?,
        rate: l.rate,
        window: l.window,
        broker: ctx.broker,
        at_start: l.at_start.clone(),
        at_end: l.at_end.clone(),
    })
}

fn percentiles(h: &Histogram<u64>, m: &mut Map<String, Value>) {
    let us = |q: f64| (h.value_at_quantile(q) as f64 / 1000.0 * 10.0).round() / 10.0;
    m.insert("latency_samples".into(), json!(h.len()));
    m.insert("p50_us".into(), json!(us(0.5)));
    m.insert("p99_us".into(), json!(us(0.99)));
    m.insert("p999_us".into(), json!(us(0.999)));
    m.insert(
        "max_us".into(),
        json!((h.max() as f64 / 100.0).round() / 10.0),
    );
}

fn load_record(scenario: &str, spec: &load::LoadSpec, r: load::LoadResult) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("scenario".into(), json!(scenario));
    m.insert("qos".into(), json!(spec.qos));
    m.insert("payload".into(), json!(spec.payload));
    m.insert("topics".into(), json!(spec.topics.len()));
    m.insert(
        "subscribers_per_topic".into(),
        json!(spec.subscribers_per_topic),
    );
    m.insert("connections".into(), json!(r.connections));
    m.insert("window".into(), json!(spec.window));
    m.insert("rate".into(), json!(spec.rate));
    m.insert("duration_s".into(), json!(spec.duration.as_secs_f64()));
    m.insert("setup_s".into(), json!(r.setup_secs));
    m.insert("published".into(), json!(r.published));
    m.insert(
        "publishes_per_sec".into(),
        json!(r.publishes_per_sec.round()),
    );
    m.insert("deliveries".into(), json!(r.deliveries));
    m.insert(
        "deliveries_per_sec".into(),
        json!(r.deliveries_per_sec.round()),
    );
    m.insert("ops_per_sec".into(), json!(r.deliveries_per_sec.round()));
    m.insert("lost".into(), json!(r.lost));
    percentiles(&r.latency, &mut m);
    cpu_fields(
        &mut m,
        r.broker_cpu_secs,
        r.deliveries,
        r.broker_rss_kib,
        r.generator_cpu_secs,
    );
    m.insert("errors".into(), json!(r.errors));
    m.insert("first_error".into(), json!(r.first_error));
    m
}

fn cpu_fields(
    m: &mut Map<String, Value>,
    cpu: Option<f64>,
    ops: u64,
    rss: Option<u64>,
    gen: Option<f64>,
) {
    let per_op = cpu.filter(|_| ops > 0).map(|c| c * 1e6 / ops as f64);
    let r3 = |v: f64| (v * 1000.0).round() / 1000.0;
    m.insert("broker_cpu_secs".into(), json!(cpu.map(r3)));
    m.insert("cpu_us_per_op".into(), json!(per_op.map(r3)));
    // µs per message and CPU-seconds per million messages are the same number; both names
    // are kept because readers look for either.
    m.insert("cpu_us_per_delivery".into(), json!(per_op.map(r3)));
    m.insert("cpu_secs_per_million".into(), json!(per_op.map(r3)));
    m.insert("broker_rss_kib".into(), json!(rss));
    m.insert("generator_cpu_secs".into(), json!(gen.map(r3)));
}

async fn fanout(ctx: ScenarioCtx, a: FanoutArgs) -> Outcome {
    if a.subscribers == 0 {
        return Err("--subscribers must be at least 1".into());
    }
    let spec = load_spec(ctx, &a.load, vec![a.topic.clone()], a.subscribers, a.qos)?;
    let r = load::run(spec.clone())
        .await
        .map_err(|e| format!("set-up failed: {e}"))?;
    Ok(load_record("fanout", &spec, r))
}

async fn pairs(ctx: ScenarioCtx, a: PairsArgs) -> Outcome {
    if a.pairs == 0 {
        return Err("--pairs must be at least 1".into());
    }
    let topics = (0..a.pairs).map(|i| format!("pair/{i}")).collect();
    let spec = load_spec(ctx, &a.load, topics, 1, a.qos)?;
    let r = load::run(spec.clone())
        .await
        .map_err(|e| format!("set-up failed: {e}"))?;
    Ok(load_record("pairs", &spec, r))
}

async fn connect_storm(ctx: ScenarioCtx, a: ConnectArgs) -> Outcome {
    let spec = connect::ConnectSpec {
        opts: ctx.opts,
        count: a.count,
        concurrency: a.concurrency,
        keep: a.keep,
        broker: ctx.broker,
    };
    let r = connect::run(spec).await.map_err(|e| e.to_string())?;
    if r.connected == 0 {
        return Err(format!(
            "no connection succeeded: {}",
            r.first_error.unwrap_or_else(|| "nothing attempted".into())
        ));
    }
    let mut m = Map::new();
    m.insert("scenario".into(), json!("connect"));
    m.insert("count".into(), json!(a.count));
    m.insert("concurrency".into(), json!(a.concurrency));
    m.insert("keep".into(), json!(a.keep));
    m.insert("connects".into(), json!(r.connected));
    m.insert("duration_s".into(), json!(r.elapsed_secs));
    m.insert("connects_per_sec".into(), json!(r.connects_per_sec.round()));
    m.insert("ops_per_sec".into(), json!(r.connects_per_sec.round()));
    percentiles(&r.latency, &mut m);
    cpu_fields(
        &mut m,
        r.broker_cpu_secs,
        r.connected,
        r.broker_rss_kib,
        r.generator_cpu_secs,
    );
    if a.keep {
        let per = r
            .broker_rss_kib
            .zip(r.broker_rss_kib_before)
            .map(|(after, before)| after.saturating_sub(before) as f64 / r.connected as f64);
        m.insert(
            "rss_kib_per_conn".into(),
            json!(per.map(|v| (v * 100.0).round() / 100.0)),
        );
    }
    m.insert("errors".into(), json!(r.errors));
    m.insert("first_error".into(), json!(r.first_error));
    Ok(m)
}

/// One human line per run.
fn summary_line(m: &Map<String, Value>) -> String {
    let s = |k: &str| {
        m.get(k)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    };
    let f = |k: &str| m.get(k).and_then(Value::as_f64);
    let ops = f("ops_per_sec")
        .map(report::human_rate)
        .unwrap_or_else(|| "-".into());
    let unit = if s("scenario") == "\"connect\"" {
        "connects/s"
    } else {
        "deliveries/s"
    };
    format!(
        "{} {} {}: {ops} {unit}, p50 {} µs, p99 {} µs, broker {} CPU-s ({} µs/op), RSS {} KiB, generator {} CPU-s, lost {}, errors {}",
        s("scenario").trim_matches('"'),
        s("broker_url").trim_matches('"'),
        s("label").trim_matches('"'),
        s("p50_us"),
        s("p99_us"),
        s("broker_cpu_secs"),
        s("cpu_us_per_op"),
        s("broker_rss_kib"),
        s("generator_cpu_secs"),
        s("lost"),
        s("errors"),
    )
}
