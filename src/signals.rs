//! The process lifecycle after start-up, run on the main thread: wait for signals, reload the
//! access keys and hub settings on SIGHUP, stop gracefully on SIGTERM / SIGINT.
//!
//! Signals are received with `signal-hook`'s iterator (its handler only writes to a pipe; the
//! work happens here, on an ordinary thread). SIGHUP re-reads the configuration file: a file
//! that does not load or validate is refused with one log line and the running configuration
//! stays; a good one replaces the keys and hub settings the workers read at CONNECT time (live
//! connections are untouched) and every change is logged, including changes that need a
//! restart. SIGTERM sends `STOPPING=1`, asks the workers to disconnect their clients (v5 gets
//! DISCONNECT 0x8B), stop accepting and let their writers flush, and waits for them up to
//! `server.shutdown_grace_secs` (plus a second), after which the process exits anyway.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::Context as _;
use hubmq_net::{AuthSettings, HubSettings, Server};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::{Config, Hub};
use crate::notify::Notifier;

/// Registers the handlers. Call before the listeners are bound, so a SIGTERM that arrives
/// during start-up is not lost (it is handled as soon as [`run`] starts).
pub fn install() -> std::io::Result<Signals> {
    Signals::new([SIGTERM, SIGINT, SIGHUP])
}

/// Serves signals until a stop signal, then stops the server and waits for it (bounded by
/// the grace period). `watchdog_stop` is set first, so the watchdog does not report the
/// workers it is taking down as stuck.
pub fn run(
    mut signals: Signals,
    server: Server,
    mut config: Config,
    notifier: Option<Arc<Notifier>>,
    watchdog_stop: Arc<AtomicBool>,
) {
    let notify = |state: &str| {
        if let Some(n) = &notifier {
            n.notify(state);
        }
    };
    let mut stop_signal = None;
    for sig in signals.forever() {
        match sig {
            SIGHUP => {
                notify("STATUS=reloading configuration");
                match reload(&config).and_then(|(new, auth, changes)| {
                    let eg = crate::eventgrid_settings(&new)?;
                    let mut notes = server
                        .reload_eventgrid(&eg)
                        .map_err(|e| anyhow::anyhow!(e))?;
                    notes.extend(server.reload_upstream(&crate::upstream_settings(&new)));
                    Ok((new, auth, changes, notes))
                }) {
                    Ok((new, auth, mut changes, notes)) => {
                        server.reload_auth(auth);
                        changes.extend(notes);
                        if changes.is_empty() {
                            tracing::info!("configuration reloaded: nothing changed");
                        }
                        for c in &changes {
                            tracing::info!(change = %c, "configuration reloaded");
                        }
                        config = new;
                        notify("STATUS=configuration reloaded");
                    }
                    Err(e) => {
                        tracing::error!(
                            error = format!("{e:#}"),
                            "reload refused; keeping the running configuration"
                        );
                        notify("STATUS=reload refused; running the previous configuration");
                    }
                }
            }
            other => {
                stop_signal = Some(other);
                break;
            }
        }
    }
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    tracing::info!(
        signal = stop_signal.unwrap_or(SIGTERM),
        grace_secs = grace.as_secs(),
        "shutting down: disconnecting clients"
    );
    notify("STOPPING=1\nSTATUS=shutting down");
    watchdog_stop.store(true, Ordering::Release);
    server.stop(grace);
    let (tx, rx) = mpsc::channel();
    // `join` has no timeout; a helper thread turns it into a message we can wait for.
    let joiner = std::thread::Builder::new()
        .name("hubmq-join".into())
        .spawn(move || {
            server.join();
            let _ = tx.send(());
        });
    if joiner.is_err() {
        tracing::warn!("cannot start the join thread; exiting without waiting for workers");
        return;
    }
    match rx.recv_timeout(grace + Duration::from_secs(1)) {
        Ok(()) => tracing::info!("all workers stopped"),
        Err(_) => tracing::warn!("workers did not stop within the grace period; exiting"),
    }
}

/// Loads the file the running configuration came from and turns it into new auth settings.
/// Returns the new configuration, its auth settings and a description of every change.
fn reload(old: &Config) -> anyhow::Result<(Config, AuthSettings, Vec<String>)> {
    let path = old
        .path
        .as_deref()
        .context("running on embedded defaults (no --config file): nothing to reload")?;
    let mut new = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    if new.generated_key.is_some() && old.generated_key.is_some() {
        // Still no key configured: keep the key the running process generated and announced
        // instead of silently rotating to a fresh random one.
        new.auth = old.auth.clone();
        new.generated_key = old.generated_key.clone();
    }
    let auth = auth_settings(&new)?;
    let changes = describe_changes(old, &new);
    Ok((new, auth, changes))
}

/// The reloadable part of the configuration in the network layer's terms: HS256 keys and PEM
/// public keys (files are read here), and the declared hubs by lower-case name.
pub fn auth_settings(config: &Config) -> anyhow::Result<AuthSettings> {
    let mut keys = crate::keyring(config.auth.all_keys());
    for path in &config.auth.jwt_public_key_files {
        let pem = std::fs::read_to_string(path).with_context(|| {
            format!("auth.jwt_public_key_files: cannot read {}", path.display())
        })?;
        keys.add_public_pem(&pem)
            .map_err(|e| anyhow::anyhow!("auth.jwt_public_key_files: {}: {e}", path.display()))?;
    }
    let hubs: HashMap<String, HubSettings> = config
        .hubs
        .iter()
        .map(|(name, h)| {
            let keys =
                (!h.access_keys.is_empty()).then(|| Arc::new(crate::keyring(&h.access_keys)));
            (
                name.to_ascii_lowercase(),
                HubSettings {
                    anonymous_connect: h.anonymous_connect,
                    keys,
                },
            )
        })
        .collect();
    Ok(AuthSettings {
        keys: Arc::new(keys),
        hubs,
    })
}

/// One line per change between two configurations; secrets are never printed (key changes are
/// reported as counts). Sections that only apply at start-up are named as needing a restart.
fn describe_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let old_keys: Vec<&str> = old.auth.all_keys().collect();
    let new_keys: Vec<&str> = new.auth.all_keys().collect();
    if old_keys != new_keys {
        let kept = new_keys.iter().filter(|k| old_keys.contains(k)).count();
        out.push(format!(
            "auth access keys: {} → {} ({kept} kept, {} added, {} removed)",
            old_keys.len(),
            new_keys.len(),
            new_keys.len() - kept,
            old_keys.len() - kept,
        ));
    }
    if old.auth.jwt_public_key_files != new.auth.jwt_public_key_files {
        out.push(format!(
            "auth.jwt_public_key_files: {} → {} files",
            old.auth.jwt_public_key_files.len(),
            new.auth.jwt_public_key_files.len()
        ));
    }
    out.extend(describe_hub_changes(&old.hubs, &new.hubs));
    if old.eventgrid != new.eventgrid {
        out.push("[eventgrid] changed: namespaces reloaded, live sessions re-checked".to_owned());
    }
    let restart = |name: &str, changed: bool, out: &mut Vec<String>| {
        if changed {
            out.push(format!(
                "{name} changed: takes effect after a restart (not reloadable)"
            ));
        }
    };
    restart("[server]", old.server != new.server, &mut out);
    restart("[[listeners]]", old.listeners != new.listeners, &mut out);
    restart("[limits]", old.limits != new.limits, &mut out);
    restart("[upstream]", old.upstream != new.upstream, &mut out);
    restart("[metrics]", old.metrics != new.metrics, &mut out);
    restart("[log]", old.log != new.log, &mut out);
    out
}

fn describe_hub_changes(old: &BTreeMap<String, Hub>, new: &BTreeMap<String, Hub>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, h) in new {
        match old.get(name) {
            None => out.push(format!("hub {name}: added")),
            Some(o) => {
                if o.anonymous_connect != h.anonymous_connect {
                    out.push(format!(
                        "hub {name}: anonymous_connect {} → {}",
                        o.anonymous_connect, h.anonymous_connect
                    ));
                }
                if o.access_keys != h.access_keys {
                    out.push(format!(
                        "hub {name}: access keys {} → {}",
                        o.access_keys.len(),
                        h.access_keys.len()
                    ));
                }
                if o.event_handlers != h.event_handlers {
                    out.push(format!("hub {name}: event handlers changed"));
                }
            }
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        out.push(format!("hub {name}: removed"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_str(text, "test").expect("valid config")
    }

    #[test]
    fn describes_key_rotation_without_printing_keys() {
        let old = config("[auth]\naccess_keys = [\"k-one\", \"k-two\"]\n");
        let new = config("[auth]\naccess_keys = [\"k-two\", \"k-three\"]\n");
        let changes = describe_changes(&old, &new);
        assert_eq!(
            changes,
            vec!["auth access keys: 2 → 2 (1 kept, 1 added, 1 removed)".to_owned()]
        );
        assert!(!changes.concat().contains("k-three"));
    }

    #[test]
    fn describes_hub_changes_and_restart_only_sections() {
        let old = config(
            "[auth]\naccess_keys=[\"k\"]\n[hubs.a]\nanonymous_connect = false\n[hubs.gone]\n",
        );
        let new = config(
            "[auth]\naccess_keys=[\"k\"]\n[limits]\nmax_packet_size = 4096\n[hubs.a]\nanonymous_connect = true\n[hubs.b]\n",
        );
        let changes = describe_changes(&old, &new);
        assert!(changes.contains(&"hub a: anonymous_connect false → true".to_owned()));
        assert!(changes.contains(&"hub b: added".to_owned()));
        assert!(changes.contains(&"hub gone: removed".to_owned()));
        assert!(changes
            .iter()
            .any(|c| c.starts_with("[limits] changed: takes effect after a restart")));
    }

    #[test]
    fn unchanged_config_describes_nothing() {
        let c = config("[auth]\naccess_keys=[\"k\"]\n[hubs.a]\n");
        assert!(describe_changes(&c, &c.clone()).is_empty());
    }

    #[test]
    fn auth_settings_lowercase_hub_names_and_hub_keys() {
        let c = config("[auth]\naccess_keys=[\"k\"]\n[hubs.Chat]\naccess_keys=[\"hk\"]\n");
        let auth = auth_settings(&c).expect("auth settings");
        assert!(auth.hub("chat").is_some_and(|h| h.keys.is_some()));
    }

    #[test]
    fn reload_refuses_a_broken_file_and_embedded_defaults() {
        assert!(
            reload(&Config::embedded()).is_err(),
            "embedded defaults have no file"
        );
        let dir = std::env::temp_dir().join(format!("hubmq-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("hubmq.toml");
        std::fs::write(&path, "[auth]\naccess_keys=[\"k\"]\n").expect("write");
        let good = Config::load(&path).expect("loads");
        std::fs::write(&path, "[auth\naccess_keys=").expect("write");
        let Err(err) = reload(&good) else {
            panic!("a broken file must be refused")
        };
        assert!(format!("{err:#}").contains("hubmq.toml"), "{err:#}");
        std::fs::write(&path, "[auth]\naccess_keys=[\"k2\"]\n").expect("write");
        let (_, _, changes) = reload(&good).expect("good file reloads");
        assert_eq!(changes.len(), 1, "{changes:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
