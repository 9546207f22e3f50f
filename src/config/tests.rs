//! Tests for `config`: the sample from `shared/spec/config.md`, defaults, every validation
//! message, masking and endpoint derivation.

use super::*;

/// A throw-away directory removed on drop (no tempfile crate in this package).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hubmq-config-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

/// The sample of config.md, whole, with the certificate paths pointing at `dir`.
fn sample(dir: &TempDir) -> String {
    let cert = dir.file("cert.pem", PEM);
    let key = dir.file("key.pem", PEM);
    // A syntactically valid JWKS (an EC P-256 key of zero coordinates: loads, verifies nothing).
    let zero = "A".repeat(43);
    let jwks = dir.file(
        "entra-jwks.json",
        &format!(r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{zero}","y":"{zero}"}}]}}"#),
    );
    format!(
        r#"
[server]
workers = 2                      # default: number of cores
public_endpoints = ["http://localhost:8080"]   # accepted token audiences (scheme+host+port)

[[listeners]]
kind = "http"                    # http | https | tcp | tls   (http/https carry WS MQTT + REST + metrics)
bind = "127.0.0.1:18080"

[[listeners]]
kind = "tcp"
bind = "127.0.0.1:11883"

[[listeners]]
kind = "https"                   # tls and https need:
bind = "127.0.0.1:18443"
cert = "{cert}"
key = "{key}"

[[listeners]]
kind = "tcp"                      # tls / https in production; tcp / http for local use
bind = "127.0.0.1:21883"
namespace = "factory"

[auth]
access_keys = ["primary-key-string", "secondary-key-string"]   # HS256 keys (any of them valid)
# access_key_files = ["/etc/hubmq/key1"]                        # alternative: keys from files

[limits]
max_packet_size = 1048576
max_keepalive_secs = 1160
max_session_expiry_secs = 86400
outbound_queue_bytes = 1048576
session_queue_messages = 1000
max_connections = 1000000

[hubs.chat]                      # settings for one hub; undeclared hubs use defaults
anonymous_connect = false

[[hubs.chat.event_handlers]]
url_template = "http://127.0.0.1:9000/upstream/{{hub}}/{{event}}"   # {{hub}} and {{event}} substituted
system_events = ["connect", "connected", "disconnected"]         # any subset
user_event_pattern = "*"        # "*", "", or a comma list like "chat,alarm"
timeout_ms = 10000              # default; connect event: on timeout the client gets "server unavailable"

[metrics]
path = "/metrics"                # served on every http listener; optional dedicated bind:
# bind = "127.0.0.1:9100"

[eventgrid.namespaces.factory]
hostnames = ["factory.example.net"]          # accepted CUSTOM-JWT audiences (plus each listener's host)

[eventgrid.namespaces.factory.entra]         # OAUTH2-JWT
tenants = ["00000000-0000-0000-0000-000000000001"]
audiences = ["https://eventgrid.azure.net/"]
jwks_file = "{jwks}"     # RS256 keys (no network fetch needed)

[[eventgrid.namespaces.factory.clients]]     # registered clients (certificate / username auth)
authentication_name = "sensor-1"
attributes = {{ type = "sensor", floor = 3 }}

[[eventgrid.namespaces.factory.topic_spaces]]
name = "telemetry"
templates = ["devices/${{client.authenticationName}}/telemetry", "fleet/+/status"]
"#,
        cert = cert.display(),
        key = key.display(),
        jwks = jwks.display()
    )
}

fn err(text: &str) -> String {
    match Config::from_str(text, "t.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "error spans lines: {line}");
            line
        }
    }
}

fn assert_starts(actual: &str, expected: &str) {
    assert!(
        actual.starts_with(expected),
        "\n  actual: {actual}\nexpected: {expected}…"
    );
}

#[test]
fn parses_the_config_md_sample() {
    let dir = TempDir::new("sample");
    let c = Config::from_str(&sample(&dir), "sample.toml").expect("sample is valid");
    assert_eq!(c.server.workers, Some(2));
    assert_eq!(c.server.worker_count(), 2);
    assert_eq!(c.server.public_endpoints, ["http://localhost:8080"]);
    assert_eq!(c.listeners.len(), 4);
    assert_eq!(c.listeners[0].kind, ListenerKind::Http);
    assert_eq!(
        c.listeners[0].bind,
        "127.0.0.1:18080".parse().expect("addr")
    );
    assert_eq!(c.listeners[2].kind, ListenerKind::Https);
    assert_eq!(
        c.listeners[2].cert.as_deref(),
        Some(dir.0.join("cert.pem").as_path())
    );
    assert_eq!(c.listeners[3].namespace.as_deref(), Some("factory"));
    assert_eq!(
        c.auth.all_keys().collect::<Vec<_>>(),
        ["primary-key-string", "secondary-key-string"]
    );
    assert_eq!(c.generated_key, None);
    assert_eq!(c.limits, Limits::default());
    let chat = c.hub("CHAT").expect("hub names match case-insensitively");
    assert!(!chat.anonymous_connect);
    assert_eq!(
        chat.event_handlers,
        [EventHandler {
            url_template: "http://127.0.0.1:9000/upstream/{hub}/{event}".into(),
            system_events: vec![
                SystemEvent::Connect,
                SystemEvent::Connected,
                SystemEvent::Disconnected
            ],
            user_event_pattern: "*".into(),
            timeout_ms: 10_000,
            auth: None,
        }]
    );
    assert_eq!(c.metrics, MetricsCfg::default());
    let eg = c.eventgrid.as_ref().expect("eventgrid kept");
    assert!(eg
        .get("namespaces")
        .and_then(|n| n.get("factory"))
        .is_some());
}

#[test]
fn empty_file_gives_defaults_and_a_generated_key() {
    let c = Config::from_str("", "empty.toml").expect("empty is valid");
    assert_eq!(c.server, Server::default());
    assert_eq!(c.server.connect_timeout_secs, 10);
    assert_eq!(c.server.token_skew_secs, 300);
    assert_eq!(c.listeners, default_listeners());
    assert_eq!(c.listeners[0].bind, "0.0.0.0:8080".parse().expect("addr"));
    assert_eq!(c.listeners[1].kind, ListenerKind::Tcp);
    assert_eq!(c.listeners[1].bind.port(), 1883);
    assert!(c.hubs.is_empty());
    assert_eq!(c.limits.max_packet_size, 1_048_576);
    assert_eq!(c.limits.max_keepalive_secs, 1160);
    assert_eq!(c.limits.default_session_expiry_secs, 3600);
    assert_eq!(c.limits.receive_maximum, 1000);
    assert_eq!(c.limits.max_inflight, 100);
    assert_eq!(c.limits.will_payload_max, 2000);
    assert_eq!(c.limits.max_ws_frame(), 1_048_576 + 16);
    assert_eq!(c.metrics.path, "/metrics");
    assert_eq!(c.log.level, "info");
    assert_eq!(c.log.format, LogFormat::Text);
    let key = c.generated_key.as_deref().expect("generated");
    assert_eq!(c.auth.access_keys, [key]);
    assert_eq!(key.len(), 44, "32 bytes in base64");
    assert_eq!(c.public_endpoint_for(), "http://localhost:8080");
}

#[test]
fn embedded_defaults_declare_demo_hub_and_public_endpoint() {
    let c = Config::embedded();
    assert!(c.hub("demo").is_some());
    assert_eq!(c.server.public_endpoints, ["http://localhost:8080"]);
    assert!(c.generated_key.is_some());
    assert_ne!(
        c.generated_key,
        Config::embedded().generated_key,
        "a fresh key each time"
    );
    assert_eq!(c.path, None);
}

#[test]
fn no_key_is_generated_when_any_key_source_is_configured() {
    let dir = TempDir::new("nogen");
    let pem = dir.file(
        "pub.pem",
        "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
    );
    let text = format!("[auth]\njwt_public_key_files = [\"{}\"]\n", pem.display());
    let c = Config::from_str(&text, "t.toml").expect("valid");
    assert_eq!(c.generated_key, None);
    assert!(c.auth.access_keys.is_empty());
}

#[test]
fn reads_access_key_files_trimmed_relative_to_the_config_file() {
    let dir = TempDir::new("keyfile");
    dir.file("key1", "  file-key-1\n");
    let path = dir.file(
        "hubmq.toml",
        "[auth]\naccess_keys = [\"inline\"]\naccess_key_files = [\"key1\"]\n",
    );
    let c = Config::load(&path).expect("valid");
    assert_eq!(
        c.auth.all_keys().collect::<Vec<_>>(),
        ["inline", "file-key-1"]
    );
    assert_eq!(c.path.as_deref(), Some(path.as_path()));
}

#[test]
fn rejects_unknown_keys_naming_table_and_key() {
    assert_starts(
        &err("[server]\nworkers = 2\nworkerz = 3\n"),
        "t.toml: server.workerz: unknown field `workerz`, expected one of `workers`",
    );
    assert!(err("[server]\nworkerz = 3\n").ends_with("(line 2)"));
    assert_starts(
        &err("[serverx]\nworkers = 2\n"),
        "t.toml: serverx: unknown field `serverx`",
    );
    assert_starts(
        &err("verbose = true\n"),
        "t.toml: verbose: unknown field `verbose`",
    );
    let two = "[[listeners]]\nkind = \"http\"\nbind = \"127.0.0.1:1\"\n\n[[listeners]]\nkind = \"tcp\"\nbind = \"127.0.0.1:2\"\nport = 3\n";
    assert_starts(&err(two), "t.toml: listeners[1].port: unknown field `port`");
    assert_starts(
        &err("[hubs.chat]\nanonymous = true\n"),
        "t.toml: hubs.chat.anonymous: unknown field `anonymous`",
    );
    let handler = "[[hubs.chat.event_handlers]]\nurl_template = \"http://x/\"\nurl = 1\n";
    assert_starts(
        &err(handler),
        "t.toml: hubs.chat.event_handlers[0].url: unknown field `url`",
    );
}

#[test]
fn rejects_bad_values_naming_the_key() {
    let text = "[[listeners]]\nkind = \"http\"\nbind = \"127.0.0.1:8080\"\n[[listeners]]\nkind = \"tcp\"\nbind = \"127.0.0.1:99999\"\n";
    assert_starts(
        &err(text),
        "t.toml: listeners[1].bind: invalid socket address \"127.0.0.1:99999\"",
    );
    assert_starts(
        &err("[[listeners]]\nkind = \"quic\"\nbind = \"127.0.0.1:1\"\n"),
        "t.toml: listeners[0].kind: unknown variant `quic`",
    );
    assert_starts(
        &err("[[listeners]]\nkind = \"tcp\"\n"),
        "t.toml: listeners[0]: missing field `bind`",
    );
    assert_starts(
        &err("[server]\nworkers = \"two\"\n"),
        "t.toml: server.workers: invalid type: string \"two\"",
    );
    assert_starts(
        &err("[limits]\nmax_keepalive_secs = 70000\n"),
        "t.toml: limits.max_keepalive_secs: invalid value: integer `70000`",
    );
    assert_starts(
        &err("[metrics]\nbind = \"nowhere\"\n"),
        "t.toml: metrics.bind: invalid socket address \"nowhere\"",
    );
    let bad_event = "[[hubs.chat.event_handlers]]\nurl_template = \"http://x/\"\nsystem_events = [\n  \"connect\",\n  \"typo\",\n]\n";
    assert_starts(
        &err(bad_event),
        "t.toml: hubs.chat.event_handlers[0].system_events: unknown variant `typo`",
    );
}

#[test]
fn toml_syntax_errors_are_one_line() {
    let e = err("[server\nworkers = 2\n");
    assert_starts(&e, "t.toml: ");
    assert!(e.contains("(line 1)"), "{e}");
}

#[test]
fn rejects_overlapping_binds() {
    let dup = "[[listeners]]\nkind = \"http\"\nbind = \"127.0.0.1:8080\"\n[[listeners]]\nkind = \"tcp\"\nbind = \"127.0.0.1:8080\"\n";
    assert_eq!(
        err(dup),
        "t.toml: listeners[1].bind: address 127.0.0.1:8080 overlaps listeners[0] (127.0.0.1:8080)"
    );
    let wildcard = "[[listeners]]\nkind = \"http\"\nbind = \"0.0.0.0:8080\"\n[[listeners]]\nkind = \"tcp\"\nbind = \"10.0.0.1:8080\"\n";
    assert_starts(
        &err(wildcard),
        "t.toml: listeners[1].bind: address 10.0.0.1:8080 overlaps listeners[0]",
    );
    let metrics = "[metrics]\nbind = \"127.0.0.1:1883\"\n";
    assert_eq!(
        err(metrics),
        "t.toml: metrics.bind: address 127.0.0.1:1883 overlaps listeners[1] (0.0.0.0:1883)"
    );
    // Port 0 is ephemeral: any number of listeners may ask for it.
    let ephemeral = "[[listeners]]\nkind = \"http\"\nbind = \"127.0.0.1:0\"\n[[listeners]]\nkind = \"tcp\"\nbind = \"127.0.0.1:0\"\n";
    assert!(Config::from_str(ephemeral, "t.toml").is_ok());
}

#[test]
fn tls_listeners_need_readable_pem_cert_and_key() {
    let dir = TempDir::new("tls");
    let cert = dir.file("cert.pem", PEM);
    let not_pem = dir.file("key.txt", "hello");
    let base = "[[listeners]]\nkind = \"tls\"\nbind = \"127.0.0.1:8883\"\n";
    assert_eq!(
        err(base),
        "t.toml: listeners[0].cert: required for a tls listener"
    );
    let no_key = format!("{base}cert = \"{}\"\n", cert.display());
    assert_eq!(
        err(&no_key),
        "t.toml: listeners[0].key: required for a tls listener"
    );
    let missing = dir.0.join("missing.pem");
    let unreadable = format!("{no_key}key = \"{}\"\n", missing.display());
    assert_starts(
        &err(&unreadable),
        &format!(
            "t.toml: listeners[0].key: cannot read {}: ",
            missing.display()
        ),
    );
    let garbage = format!("{no_key}key = \"{}\"\n", not_pem.display());
    assert_eq!(
        err(&garbage),
        format!(
            "t.toml: listeners[0].key: {} is not a PEM file",
            not_pem.display()
        )
    );
    let plain = format!(
        "[[listeners]]\nkind = \"tcp\"\nbind = \"127.0.0.1:1883\"\ncert = \"{}\"\n",
        cert.display()
    );
    assert_eq!(err(&plain), "t.toml: listeners[0].cert: only https and tls listeners take a certificate, this one is tcp");
}

#[test]
fn client_auth_needs_a_tls_listener_and_a_readable_ca() {
    let dir = TempDir::new("mtls");
    let cert = dir.file("cert.pem", PEM);
    let tls = format!(
        "[[listeners]]\nkind = \"tls\"\nbind = \"127.0.0.1:8883\"\ncert = \"{c}\"\nkey = \"{c}\"\n",
        c = cert.display()
    );
    let ok = format!(
        "{tls}client_ca = \"{}\"\nclient_auth = \"optional\"\n",
        cert.display()
    );
    let parsed = Config::from_str(&ok, "t.toml").map_err(|e| e.to_string());
    assert_eq!(
        parsed.map(|c| c.listeners[0].client_auth),
        Ok(Some(super::ClientAuth::Optional))
    );
    assert_eq!(
        err(&format!("{tls}client_auth = \"required\"\n")),
        "t.toml: listeners[0].client_ca: required when client_auth is set"
    );
    let missing = dir.0.join("missing.pem");
    assert_starts(
        &err(&format!(
            "{tls}client_ca = \"{}\"\nclient_auth = \"required\"\n",
            missing.display()
        )),
        &format!(
            "t.toml: listeners[0].client_ca: cannot read {}: ",
            missing.display()
        ),
    );
    let plain = format!(
        "[[listeners]]\nkind = \"tcp\"\nbind = \"127.0.0.1:1883\"\nclient_ca = \"{}\"\nclient_auth = \"optional\"\n",
        cert.display()
    );
    assert_eq!(
        err(&plain),
        "t.toml: listeners[0].client_auth: only https and tls listeners take client certificates, this one is tcp"
    );
}

#[test]
fn rejects_unreadable_or_empty_key_files_and_empty_keys() {
    let dir = TempDir::new("authfiles");
    let missing = dir.0.join("nope");
    let text = format!("[auth]\naccess_key_files = [\"{}\"]\n", missing.display());
    assert_starts(
        &err(&text),
        &format!(
            "t.toml: auth.access_key_files[0]: cannot read {}: ",
            missing.display()
        ),
    );
    let empty = dir.file("empty", " \n");
    let text = format!("[auth]\naccess_key_files = [\"{}\"]\n", empty.display());
    assert_eq!(
        err(&text),
        format!(
            "t.toml: auth.access_key_files[0]: {} is empty",
            empty.display()
        )
    );
    assert_eq!(
        err("[auth]\naccess_keys = [\"a\", \"\"]\n"),
        "t.toml: auth.access_keys[1]: empty key"
    );
    let pub_missing = format!(
        "[auth]\njwt_public_key_files = [\"{}\"]\n",
        missing.display()
    );
    assert_starts(
        &err(&pub_missing),
        "t.toml: auth.jwt_public_key_files[0]: cannot read ",
    );
}

#[test]
fn rejects_zero_and_absurd_limits() {
    assert_eq!(
        err("[limits]\nmax_packet_size = 64\n"),
        "t.toml: limits.max_packet_size: 64 is out of range (128..=268435455)"
    );
    assert_eq!(
        err("[limits]\nmax_packet_size = 268435456\n"),
        "t.toml: limits.max_packet_size: 268435456 is out of range (128..=268435455)"
    );
    assert_eq!(
        err("[limits]\nmax_keepalive_secs = 0\n"),
        "t.toml: limits.max_keepalive_secs: 0 is out of range (1..=65535)"
    );
    assert_eq!(
        err("[limits]\nreceive_maximum = 0\n"),
        "t.toml: limits.receive_maximum: 0 is out of range (1..=65535)"
    );
    assert_eq!(
        err("[limits]\nmax_connections = 0\n"),
        "t.toml: limits.max_connections: 0 is out of range (1..=100000000)"
    );
    assert_eq!(
        err("[limits]\noutbound_queue_bytes = 1000\n"),
        "t.toml: limits.outbound_queue_bytes: 1000 is out of range (1048576..=1099511627776)"
    );
    assert_eq!(
        err("[limits]\nmax_session_expiry_secs = 60\n"),
        "t.toml: limits.default_session_expiry_secs: 3600 is out of range (0..=60)"
    );
    assert_eq!(
        err("[limits]\nwill_payload_max = 2000000\n"),
        "t.toml: limits.will_payload_max: 2000000 is out of range (0..=1048576)"
    );
    assert_eq!(
        err("[server]\nworkers = 0\n"),
        "t.toml: server.workers: 0 is out of range (1..=1024)"
    );
    assert_eq!(
        err("[server]\nconnect_timeout_secs = 0\n"),
        "t.toml: server.connect_timeout_secs: 0 is out of range (1..=3600)"
    );
    assert_starts(
        &err("[limits]\nmax_packet_size = -1\n"),
        "t.toml: limits.max_packet_size: invalid value: integer `-1`",
    );
}

#[test]
fn rejects_bad_hub_names_and_case_duplicates() {
    let reason = "invalid hub name (1-128 letters, digits or _, starting with a letter)";
    assert_eq!(
        err("[hubs.9chat]\n"),
        format!("t.toml: hubs.9chat: {reason}")
    );
    assert_eq!(
        err("[hubs.\"bad-name\"]\n"),
        format!("t.toml: hubs.bad-name: {reason}")
    );
    assert_eq!(
        err("[hubs.Chat]\n[hubs.chat]\n"),
        "t.toml: hubs.chat: same hub as hubs.Chat (hub names ignore case)"
    );
    assert_eq!(
        err("[hubs.chat]\naccess_keys = [\"\"]\n"),
        "t.toml: hubs.chat.access_keys[0]: empty key"
    );
}

#[test]
fn rejects_bad_event_handlers() {
    let url = "[[hubs.chat.event_handlers]]\nurl_template = \"ftp://x/{event}\"\n";
    assert_eq!(err(url), "t.toml: hubs.chat.event_handlers[0].url_template: \"ftp://x/{event}\" is not an http:// or https:// URL");
    let timeout = "[[hubs.chat.event_handlers]]\nurl_template = \"http://x/\"\ntimeout_ms = 0\n";
    assert_eq!(
        err(timeout),
        "t.toml: hubs.chat.event_handlers[0].timeout_ms: 0 is out of range (1..=600000)"
    );
    let pattern = "[[hubs.chat.event_handlers]]\nurl_template = \"http://x/\"\nuser_event_pattern = \"a,,b\"\n";
    assert_starts(
        &err(pattern),
        "t.toml: hubs.chat.event_handlers[0].user_event_pattern: \"a,,b\"",
    );
    let missing = "[[hubs.chat.event_handlers]]\ntimeout_ms = 5\n";
    assert_starts(&err(missing), "t.toml: hubs.chat.event_handlers[0]");
    assert!(err(missing).contains("missing field `url_template`"));
}

#[test]
fn rejects_bad_endpoints_metrics_paths_log_levels_and_namespaces() {
    assert_eq!(
        err("[server]\npublic_endpoints = [\"localhost:8080\"]\n"),
        "t.toml: server.public_endpoints[0]: invalid endpoint \"localhost:8080\" (expected http[s]://host[:port])"
    );
    assert!(
        err("[server]\npublic_endpoints = [\"http://h:port\"]\n").contains("public_endpoints[0]")
    );
    assert_eq!(
        err("[metrics]\npath = \"metrics\"\n"),
        "t.toml: metrics.path: \"metrics\" must be an absolute path such as \"/metrics\""
    );
    assert_eq!(
        err("[metrics]\npath = \"/healthz\"\n"),
        "t.toml: metrics.path: \"/healthz\" collides with the /healthz route"
    );
    assert_eq!(
        err("[metrics]\npath = \"/api/m\"\n"),
        "t.toml: metrics.path: \"/api/m\" collides with the /api/ route"
    );
    assert_starts(
        &err("[log]\nlevel = \"info,=[\"\n"),
        "t.toml: log.level: invalid filter",
    );
    assert_starts(
        &err("[log]\nformat = \"xml\"\n"),
        "t.toml: log.format: unknown variant `xml`",
    );
    let ns = "[[listeners]]\nkind = \"tcp\"\nbind = \"127.0.0.1:1\"\nnamespace = \"factory\"\n";
    assert_eq!(
        err(ns),
        "t.toml: listeners[0].namespace: unknown Event Grid namespace \"factory\" (no [eventgrid.namespaces.factory] table)"
    );
}

#[test]
fn unreadable_config_file_names_the_file() {
    let e = Config::load(Path::new("/nonexistent/hubmq.toml")).expect_err("missing file");
    assert_starts(&e.to_string(), "/nonexistent/hubmq.toml: cannot read: ");
}

#[test]
fn effective_toml_masks_secrets_and_parses_back() {
    let dir = TempDir::new("mask");
    let mut text = sample(&dir);
    text.push_str("\n[hubs.secret]\naccess_keys = [\"hub-secret\"]\n");
    let c = Config::from_str(&text, "t.toml").expect("valid");
    let shown = c.effective_toml();
    for secret in ["primary-key-string", "secondary-key-string", "hub-secret"] {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
    assert!(shown.contains(r#"access_keys = ["***", "***"]"#), "{shown}");
    assert!(shown.contains("workers = 2"), "{shown}");
    let back = Config::from_str(&shown, "effective.toml").expect("effective config parses back");
    assert_eq!(back.listeners, c.listeners);
    assert_eq!(back.limits, c.limits);
    assert_eq!(back.hubs["chat"], c.hubs["chat"]);
    assert_eq!(back.eventgrid, c.eventgrid);
}

#[test]
fn effective_toml_masks_the_generated_key_and_shows_worker_count() {
    let c = Config::embedded();
    let shown = c.effective_toml();
    let key = c.generated_key.as_deref().expect("generated");
    assert!(!shown.contains(key));
    assert!(
        shown.contains(&format!("workers = {}", c.server.worker_count())),
        "{shown}"
    );
    assert!(
        Config::from_str(&shown, "effective.toml").is_ok(),
        "{shown}"
    );
}

#[test]
fn hub_names_follow_the_service_rules() {
    assert!(valid_hub_name("chat"));
    assert!(valid_hub_name("Chat_2"));
    assert!(valid_hub_name(&"a".repeat(128)));
    assert!(!valid_hub_name(&"a".repeat(129)));
    assert!(!valid_hub_name(""));
    assert!(!valid_hub_name("_chat"));
    assert!(!valid_hub_name("2chat"));
    assert!(!valid_hub_name("chat-room"));
    assert!(!valid_hub_name("chät"));
}

#[test]
fn endpoints_derive_from_the_first_http_listener() {
    let text = "[[listeners]]\nkind = \"tcp\"\nbind = \"0.0.0.0:1883\"\n[[listeners]]\nkind = \"https\"\nbind = \"10.1.2.3:443\"\ncert = \"/dev/null\"\nkey = \"/dev/null\"\n";
    // /dev/null is readable but not PEM, so build the listener set directly instead.
    assert!(Config::from_str(text, "t.toml").is_err());
    let mut c = Config::from_str(
        "[[listeners]]\nkind = \"http\"\nbind = \"0.0.0.0:18080\"\n",
        "t.toml",
    )
    .expect("valid");
    assert_eq!(c.public_endpoint_for(), "http://localhost:18080");
    assert_eq!(
        c.accepted_endpoints(),
        ["http://localhost:18080", "http://127.0.0.1:18080"]
    );
    c.listeners[0].bind = "[2001:db8::1]:80".parse().expect("addr");
    assert_eq!(c.public_endpoint_for(), "http://[2001:db8::1]:80");
    c.server.public_endpoints = vec!["https://broker.example.net/".into()];
    assert_eq!(c.public_endpoint_for(), "https://broker.example.net");
    assert_eq!(c.accepted_endpoints(), ["https://broker.example.net"]);
}

#[test]
fn upstream_public_host_defaults_to_the_first_public_endpoint_host() {
    let c = Config::from_str(
        "[server]\npublic_endpoints = [\"https://hubmq.example.com:8443\"]\n",
        "t.toml",
    )
    .expect("valid");
    assert_eq!(c.upstream_public_host(), "hubmq.example.com");
    let c =
        Config::from_str("[upstream]\npublic_host = \"edge.example\"\n", "t.toml").expect("valid");
    assert_eq!(c.upstream_public_host(), "edge.example");
    assert!(c.upstream.validate_webhooks);
}

#[test]
fn rejects_bad_event_handler_urls_and_auth() {
    let handler = |extra: &str| {
        format!(
            "[[hubs.chat.event_handlers]]\nurl_template = \"http://h/{{hub}}/{{event}}\"\n{extra}"
        )
    };
    assert!(Config::from_str(&handler(""), "t.toml").is_ok());
    let e = err("[[hubs.chat.event_handlers]]\nurl_template = \"http://{hub}.example.com/x\"\n");
    assert!(
        e.contains("hubs.chat.event_handlers[0].url_template") && e.contains("host"),
        "{e}"
    );
    let e = err("[[hubs.chat.event_handlers]]\nurl_template = \"tunnel:///x\"\n");
    assert!(e.contains("url_template"), "{e}");
    let e = err(&handler("auth = { type = \"bearer\" }\n"));
    assert!(
        e.contains("event_handlers[0].auth") && e.contains("token"),
        "{e}"
    );
    let e = err(&handler("auth = { type = \"ManagedIdentity\" }\n"));
    assert!(e.contains("not supported"), "{e}");
    let c = Config::from_str(
        &handler("auth = { type = \"bearer\", token = \"s3cret\" }\n"),
        "t.toml",
    )
    .expect("valid");
    assert!(
        !c.effective_toml().contains("s3cret"),
        "bearer token must be masked"
    );
}

#[test]
fn print_config_masks_the_event_grid_webhook_token() {
    let text = r#"
[eventgrid.namespaces.plant]
hostnames = ["plant.example.net"]

[eventgrid.namespaces.plant.webhook]
url = "https://auth.example.net/mqtt"
bearer_token = "very-secret-token"
"#;
    let c = Config::from_str(text, "t.toml").expect("valid");
    let shown = c.effective_toml();
    assert!(!shown.contains("very-secret-token"), "{shown}");
    assert!(shown.contains("bearer_token = \"***\""), "{shown}");
    assert_eq!(
        c.eventgrid_namespaces["plant"]
            .webhook
            .as_ref()
            .map(|w| w.url.as_str()),
        Some("https://auth.example.net/mqtt")
    );
}

/// A namespace whose CUSTOM-JWT issuer signs HS256 with `secrets` (and `extra` lines).
fn hs256_namespace(secrets: &str, extra: &str) -> String {
    format!(
        "[eventgrid.namespaces.plant]\nhostnames = [\"plant.example.net\"]\n\n\
         [eventgrid.namespaces.plant.custom_jwt]\nissuer = \"https://issuer.example.net\"\n\
         algorithms = [\"HS256\"]\nhmac_secrets = {secrets}\n{extra}"
    )
}

const HS_SECRET: &str = "hs256-shared-secret-of-32-bytes!";

#[test]
fn custom_jwt_hmac_secrets_load_and_are_masked() {
    let dir = TempDir::new("custom-jwt-hmac");
    let file = dir.file("issuer.secret", "file-held-secret-of-at-least-32-b\n");
    let text = hs256_namespace(
        &format!("[\"{HS_SECRET}\"]"),
        &format!("hmac_secret_files = [\"{}\"]\n", file.display()),
    );
    let c = Config::from_str(&text, "t.toml").expect("valid");
    let ns = &c.eventgrid_namespaces["plant"];
    let custom = ns.custom_jwt.as_ref().expect("custom_jwt");
    assert_eq!(custom.algorithms, ["HS256"]);
    let (entra, keys) = namespace_keys(ns).expect("keys load");
    assert!(entra.is_empty());
    assert!(
        !keys.has_public_keys(),
        "an HS256-only namespace needs no public key"
    );
    // The file's trailing newline is not part of the secret.
    assert_eq!(
        keys.hmac_keys().collect::<Vec<_>>(),
        [HS_SECRET, "file-held-secret-of-at-least-32-b"]
    );

    let shown = c.effective_toml();
    assert!(!shown.contains(HS_SECRET), "{shown}");
    assert!(shown.contains("hmac_secrets = [\"***\"]"), "{shown}");
    // The file path is not a secret and stays visible.
    assert!(shown.contains("issuer.secret"), "{shown}");
    assert!(
        !format!("{ns:?}").contains(HS_SECRET),
        "Debug leaks the secret"
    );
}

#[test]
fn custom_jwt_algorithm_errors_name_the_item() {
    let e = err(&hs256_namespace("[]", ""));
    assert_starts(
        &e,
        "t.toml: eventgrid.namespaces.plant.custom_jwt.hmac_secrets: HS256 is listed",
    );
    let e = err(&hs256_namespace("[\"short\"]", ""));
    assert_starts(
        &e,
        "t.toml: eventgrid.namespaces.plant.custom_jwt.hmac_secrets[0]: must be at least 32 bytes",
    );
    assert!(!e.contains("short\""), "secret echoed: {e}");
    let e = err(&hs256_namespace(
        "[]",
        "hmac_secret_files = [\"/nonexistent/hubmq-secret\"]\n",
    ));
    assert_starts(
        &e,
        "t.toml: eventgrid.namespaces.plant.custom_jwt.hmac_secret_files[0]: cannot read /nonexistent/hubmq-secret",
    );
    let dir = TempDir::new("custom-jwt-short-file");
    let short = dir.file("short.secret", "  tiny\n");
    let e = err(&hs256_namespace(
        "[]",
        &format!("hmac_secret_files = [\"{}\"]\n", short.display()),
    ));
    assert!(
        e.contains("custom_jwt.hmac_secret_files[0]")
            && e.contains("32 bytes")
            && !e.contains("tiny"),
        "{e}"
    );
    let e = err(&hs256_namespace(
        &format!("[\"{HS_SECRET}\"]"),
        "", // algorithms replaced below
    )
    .replace("[\"HS256\"]", "[\"RS256\", \"PS256\"]"));
    assert_starts(
        &e,
        "t.toml: eventgrid.namespaces.plant.custom_jwt.algorithms[1]: \"PS256\" is not one of",
    );
    let e = err(&hs256_namespace(&format!("[\"{HS_SECRET}\"]"), "")
        .replace("[\"HS256\"]", "[\"HS256\", \"HS256\"]"));
    assert_starts(
        &e,
        "t.toml: eventgrid.namespaces.plant.custom_jwt.algorithms[1]: \"HS256\" is listed twice",
    );
    // A secret without HS256 listed is refused rather than silently unused.
    let e = err(
        &hs256_namespace(&format!("[\"{HS_SECRET}\"]"), "jwks_file = \"k.json\"\n")
            .replace("[\"HS256\"]", "[\"RS256\"]"),
    );
    assert_starts(
        &e,
        "t.toml: eventgrid.namespaces.plant.custom_jwt.hmac_secrets: only allowed when algorithms lists HS256",
    );
    // RS256 listed next to HS256 still needs a public key.
    let e = err(&hs256_namespace(&format!("[\"{HS_SECRET}\"]"), "")
        .replace("[\"HS256\"]", "[\"RS256\", \"HS256\"]"));
    assert_starts(
        &e,
        "t.toml: eventgrid.namespaces.plant.custom_jwt: needs public_key_files or jwks_file",
    );
}
