//! The `hubmq` binary: command line, configuration, logging, start-up.
//!
//! Everything here runs once on the main thread: parse the CLI, load (or embed) the
//! configuration, turn it into `hubmq_net::Settings`, start the workers, announce the bound
//! addresses on stdout, then wait. No protocol logic lives here.

#![forbid(unsafe_code)]

mod cli;
mod config;
mod metrics_http;
mod notify;
mod signals;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use hubmq_auth::KeyRing;
use hubmq_net::{ListenerKind, ListenerSpec, Settings};

use crate::cli::{Cli, Command};
use crate::config::{Config, LogFormat};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.check_config {
        return match cli::run_check_config(path) {
            Ok(msg) => {
                println!("{msg}");
                ExitCode::SUCCESS
            }
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::load_or_embedded(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Token(args)) = &cli.command {
        let cfg = cli.config.as_ref().map(|_| &config);
        return match cli::run_token(args, cfg) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hubmq token: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.print_config {
        print!("{}", config.effective_toml());
        return ExitCode::SUCCESS;
    }
    init_logging(&config);
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hubmq: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = std::env::var("HUBMQ_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| config.log.level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    // Before any listener exists, so a SIGTERM during start-up is handled, not fatal.
    let signals = signals::install().context("cannot install signal handlers")?;
    let exporter = hubmq_metrics::install().map_err(|e| anyhow::anyhow!("{e}"))?;
    let settings = settings_from(&config, exporter.clone())?;
    let server = hubmq_net::start(settings).context("cannot start listeners")?;
    // `bound` is in the order of the configured listeners.
    for ((kind, addr), l) in server.bound.iter().zip(&config.listeners) {
        match &l.namespace {
            Some(ns) => println!(
                "hubmq listening kind={} addr={addr} namespace={ns}",
                kind.name()
            ),
            None => println!("hubmq listening kind={} addr={addr}", kind.name()),
        }
    }
    if let Some(bind) = config.metrics.bind {
        let addr = metrics_http::start(bind, config.metrics.path.clone(), exporter.clone())
            .with_context(|| format!("metrics.bind {bind}"))?;
        println!("hubmq listening kind=metrics addr={addr}");
    }
    if let Some(key) = &config.generated_key {
        announce_dev_setup(&config, key, &server.bound);
    }
    println!("hubmq ready");
    // systemd: every listener is bound and listening now (`start` returns only then).
    let notifier = notify::Notifier::from_env().map(Arc::new);
    let watchdog_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(n) = &notifier {
        n.notify("READY=1\nSTATUS=accepting connections");
        if let Some(interval) = notify::watchdog_interval() {
            notify::spawn_watchdog(
                n.clone(),
                server.heartbeats(),
                interval,
                watchdog_stop.clone(),
            )?;
        }
    }
    // Process metrics and histogram upkeep from a small background thread; the workers flush
    // their own counters.
    std::thread::Builder::new()
        .name("hubmq-metrics".into())
        .spawn(move || loop {
            hubmq_metrics::process_metrics();
            exporter.upkeep();
            std::thread::sleep(Duration::from_secs(2));
        })?;
    signals::run(signals, server, config, notifier, watchdog_stop);
    Ok(())
}

/// With embedded defaults, print what a newcomer needs to connect at once.
fn announce_dev_setup(config: &Config, key: &str, bound: &[(ListenerKind, SocketAddr)]) {
    let Some((_, http)) = bound.iter().find(|(k, _)| *k == ListenerKind::Http) else {
        return;
    };
    let endpoint = format!("http://localhost:{}", http.port());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let roles = [
        "webpubsub.joinLeaveGroup".to_owned(),
        "webpubsub.sendToGroup".to_owned(),
    ];
    let token = hubmq_auth::client_token(
        &endpoint,
        "demo",
        Some("demo-user"),
        &roles,
        &[],
        now,
        60,
        key,
    );
    let base = hubmq_auth::client_base_url(&endpoint, "demo").unwrap_or_default();
    println!("hubmq dev access key (generated, not persisted): {key}");
    println!(
        "hubmq connection string: Endpoint=http://localhost;Port={};AccessKey={key};Version=1.0;",
        http.port()
    );
    println!("hubmq client URL (hub demo, 1 hour, may publish and subscribe): {base}?access_token={token}");
    let _ = config;
}

fn keyring(keys: impl IntoIterator<Item = impl AsRef<str>>) -> KeyRing {
    let mut ring = KeyRing::new();
    for k in keys {
        ring.add_hmac(k.as_ref());
    }
    ring
}

/// Configuration → the network layer's settings (TLS files are read here).
fn settings_from(config: &Config, exporter: hubmq_metrics::Exporter) -> anyhow::Result<Settings> {
    // Keys and hubs are built where SIGHUP rebuilds them, so start-up and reload agree.
    let hubmq_net::AuthSettings { keys, hubs } = signals::auth_settings(config)?;
    let mut listeners = Vec::new();
    for l in &config.listeners {
        let (tls, client_auth) = match (&l.cert, &l.key, &l.client_ca, l.client_auth) {
            (Some(c), Some(k), Some(ca), Some(mode)) if l.kind.is_tls() => {
                let (cfg, auth) =
                    hubmq_net::tls::server_config_with_client_auth(c, k, ca, mode.into())?;
                (Some(cfg), Some(auth))
            }
            (Some(c), Some(k), _, _) if l.kind.is_tls() => {
                (Some(hubmq_net::tls::server_config(c, k)?), None)
            }
            _ => (None, None),
        };
        listeners.push(ListenerSpec {
            kind: l.kind,
            addr: l.bind,
            tls,
            client_auth,
            namespace: l.namespace.clone(),
        });
    }
    let l = &config.limits;
    Ok(Settings {
        workers: config.server.worker_count(),
        listeners,
        limits: l.into(),
        keys,
        public_endpoints: config
            .server
            .public_endpoints
            .iter()
            .filter_map(|e| hubmq_auth::parse_endpoint(e))
            .collect(),
        hubs,
        strict_hubs: config.server.strict_hubs,
        connect_timeout: Duration::from_secs(config.server.connect_timeout_secs),
        token_skew_secs: config.server.token_skew_secs,
        max_http_head: l.max_http_head,
        max_connections: l.max_connections,
        metrics_path: config.metrics.path.clone(),
        metrics: Some(exporter),
        upstream: upstream_settings(config),
        eventgrid: eventgrid_settings(config)?,
    })
}

/// Event Grid namespaces with their keys loaded. CUSTOM-JWT audiences: the configured host
/// names plus each of the namespace's listeners' hosts (`localhost` for loopback/wildcard).
pub(crate) fn eventgrid_settings(
    config: &Config,
) -> anyhow::Result<Vec<hubmq_net::NamespaceSettings>> {
    let mut out = Vec::new();
    for (name, ns) in &config.eventgrid_namespaces {
        let (entra_keys, custom_keys) = config::namespace_keys(ns).map_err(|(key, reason)| {
            anyhow::anyhow!("eventgrid.namespaces.{name}.{key}: {reason}")
        })?;
        let mut audiences = ns.hostnames.clone();
        for l in config
            .listeners
            .iter()
            .filter(|l| l.namespace.as_deref() == Some(name.as_str()))
        {
            let ip = l.bind.ip();
            let mut hosts = vec![ip.to_string()];
            if ip.is_loopback() || ip.is_unspecified() {
                hosts.push("localhost".to_owned());
            }
            for h in hosts {
                if !audiences.contains(&h) {
                    audiences.push(h);
                }
            }
        }
        out.push(hubmq_net::NamespaceSettings {
            name: name.clone(),
            model: ns.clone(),
            entra_keys,
            custom_keys,
            audiences,
        });
    }
    Ok(out)
}

/// The upstream event handlers of every hub that has any. Events are signed with the hub's own
/// keys when it has some, else with the server's (`[auth]`). Restart to change.
pub(crate) fn upstream_settings(config: &Config) -> hubmq_net::upstream::UpstreamSettings {
    use hubmq_net::upstream::{HandlerSpec, HubUpstream, UpstreamSettings};
    let hubs = config
        .hubs
        .iter()
        .filter(|(_, h)| !h.event_handlers.is_empty())
        .map(|(name, h)| {
            let keys: Vec<String> = if h.access_keys.is_empty() {
                config.auth.all_keys().map(str::to_owned).collect()
            } else {
                h.access_keys.clone()
            };
            let handlers = h
                .event_handlers
                .iter()
                .map(|e| HandlerSpec {
                    url_template: e.url_template.clone(),
                    system_events: e.system_events.iter().map(|&s| s.into()).collect(),
                    user_event_pattern: e.user_event_pattern.clone(),
                    timeout: Duration::from_millis(e.timeout_ms),
                    bearer: e
                        .auth
                        .as_ref()
                        .filter(|a| a.kind == "bearer")
                        .and_then(|a| a.token.clone()),
                })
                .collect();
            (name.to_ascii_lowercase(), HubUpstream { handlers, keys })
        })
        .collect();
    UpstreamSettings {
        hubs,
        public_host: config.upstream_public_host(),
        validate_webhooks: config.upstream.validate_webhooks,
        threads: config.upstream.threads,
        queue: config.upstream.queue,
    }
}
