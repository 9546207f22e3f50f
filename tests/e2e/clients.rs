//! Interoperability with MQTT client libraries that share no code with hubmq: Eclipse paho-mqtt
//! (Python) and MQTT.js (Node), driven through the scenario runners in `tests/clients/`. Each
//! run is a child process that prints one JSON object (see `tests/clients/paho_client.py`);
//! these tests assert on that JSON: connects over WebSocket (token in the query and in the
//! `Authorization` header) and TCP, v3.1.1 and v5, cross-implementation round trips at QoS
//! 0/1/2, v5 property forwarding, and the Web PubSub refusals (SUBACK 0x87/0x80, PUBACK 0x87,
//! wildcard 0xA2, expired token).
//!
//! A missing client library skips a test with a printed reason on a developer machine, and
//! fails it when the `CI` environment variable is set (`scripts/test.sh` installs both).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::harness::{now_secs, Broker};

/// Hub every test here uses; tests do not share brokers, so one name is enough.
const HUB: &str = "interop";
const JOIN: &str = "webpubsub.joinLeaveGroup";
const SEND: &str = "webpubsub.sendToGroup";
/// `--timeout` handed to every script run: the bound on one scenario.
pub(crate) const RUN_TIMEOUT_SECS: u64 = 15;
/// How long a script may take beyond its own `--timeout` (interpreter start-up on a loaded
/// machine) before the test kills it and fails.
const PROCESS_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Client {
    Paho,
    MqttJs,
}

pub(crate) const BOTH: [Client; 2] = [Client::Paho, Client::MqttJs];

impl Client {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Client::Paho => "paho",
            Client::MqttJs => "mqtt.js",
        }
    }

    fn command(self) -> Command {
        let (program, script) = match self {
            Client::Paho => ("python3", "tests/clients/paho_client.py"),
            Client::MqttJs => ("node", "tests/clients/mqttjs_client.js"),
        };
        let mut cmd = Command::new(program);
        cmd.arg(script).current_dir(env!("CARGO_MANIFEST_DIR"));
        cmd
    }

    /// Why this client cannot run here, if it cannot.
    fn missing(self) -> Option<String> {
        static PAHO: OnceLock<Option<String>> = OnceLock::new();
        static MQTTJS: OnceLock<Option<String>> = OnceLock::new();
        match self {
            Client::Paho => PAHO
                .get_or_init(|| {
                    let ok = Command::new("python3")
                        .args(["-c", "import paho.mqtt.client"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .map(|s| s.success())
                        .unwrap_or(false);
                    (!ok).then(|| {
                        "python3 cannot import paho (pip install -r tests/clients/requirements.txt)".to_owned()
                    })
                })
                .clone(),
            Client::MqttJs => MQTTJS
                .get_or_init(|| {
                    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node_modules/mqtt");
                    let node = Command::new("node")
                        .arg("--version")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .map(|s| s.success())
                        .unwrap_or(false);
                    if !node {
                        Some("node is not installed".to_owned())
                    } else if !module.is_dir() {
                        Some(format!("{} is missing (cd tests/clients && npm ci)", module.display()))
                    } else {
                        None
                    }
                })
                .clone(),
        }
    }
}

/// True when every client in `clients` can run. Otherwise: under CI (`CI` set) the test fails;
/// elsewhere it prints why and the caller returns early (a skip).
pub(crate) fn require(test: &str, clients: &[Client]) -> bool {
    let missing: Vec<String> = clients
        .iter()
        .filter_map(|c| c.missing().map(|why| format!("{}: {why}", c.name())))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: client libraries missing under CI: {}",
            missing.join("; ")
        );
    }
    eprintln!("SKIPPED {test}: {}", missing.join("; "));
    false
}

/// How a run dials the broker and presents its token.
#[derive(Clone, Copy, Debug)]
enum Transport {
    /// `ws://…/clients/mqtt/hubs/{hub}?access_token=…`
    WsQuery,
    /// Same URL without the query, `Authorization: Bearer …` on the upgrade.
    WsHeader,
    /// `mqtt://…`, CONNECT username = hub, password = token.
    Tcp,
}

const TRANSPORTS: [Transport; 3] = [Transport::WsQuery, Transport::WsHeader, Transport::Tcp];

/// Where and how one run connects: the flags every subcommand takes.
#[derive(Clone, Copy)]
struct Dial<'a> {
    broker: &'a Broker,
    token: &'a str,
    transport: Transport,
    protocol: u8,
}

impl Dial<'_> {
    /// `subcommand`, the connection flags, then `flags` split on whitespace (no flag value in
    /// these tests contains a space; the one that does, the header, is built here).
    fn argv(&self, subcommand: &str, flags: &str) -> Vec<String> {
        let (broker, token) = (self.broker, self.token);
        let mut v = vec![subcommand.to_owned(), "--url".to_owned()];
        match self.transport {
            Transport::WsQuery => v.push(broker.ws_url(HUB, Some(token))),
            Transport::WsHeader => v.extend([
                broker.ws_url(HUB, None),
                "--header".to_owned(),
                format!("Authorization: Bearer {token}"),
            ]),
            Transport::Tcp => v.extend([
                format!("mqtt://{}", broker.tcp),
                "--username".to_owned(),
                HUB.to_owned(),
                "--password".to_owned(),
                token.to_owned(),
            ]),
        }
        v.extend(["--protocol".to_owned(), self.protocol.to_string()]);
        v.extend(["--timeout".to_owned(), RUN_TIMEOUT_SECS.to_string()]);
        v.extend(flags.split_whitespace().map(str::to_owned));
        v
    }
}

fn dial<'a>(broker: &'a Broker, token: &'a str, transport: Transport, protocol: u8) -> Dial<'a> {
    Dial {
        broker,
        token,
        transport,
        protocol,
    }
}

/// One running scenario script. Killed on drop if still running.
pub(crate) struct Proc {
    what: String,
    child: Child,
    stdout: mpsc::Receiver<String>,
    /// Every stderr line, in order, as it arrives.
    stderr: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
    started: Instant,
}

impl Proc {
    pub(crate) fn spawn(client: Client, args: Vec<String>) -> Proc {
        let what = format!("{} {}", client.name(), args.join(" "));
        let mut child = client
            .command()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let (out_tx, stdout) = mpsc::channel();
        if let Some(mut out) = child.stdout.take() {
            thread::spawn(move || {
                let mut text = String::new();
                let _ = out.read_to_string(&mut text);
                let _ = out_tx.send(text);
            });
        }
        let (err_tx, stderr) = mpsc::channel();
        if let Some(err) = child.stderr.take() {
            thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    if err_tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Proc {
            what,
            child,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
            started: Instant::now(),
        }
    }

    fn deadline(&self) -> Instant {
        self.started + Duration::from_secs(RUN_TIMEOUT_SECS) + PROCESS_GRACE
    }

    /// Waits for the `{"suback": [...], "ready": true}` line a subscriber prints once its
    /// SUBACK arrived, and returns it. Panics if the script ends or stalls first.
    pub(crate) fn wait_ready(&mut self) -> Value {
        loop {
            let left = self.deadline().saturating_duration_since(Instant::now());
            match self
                .stderr
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    let ready = serde_json::from_str::<Value>(&line)
                        .ok()
                        .filter(|v| v.get("ready") == Some(&Value::Bool(true)));
                    self.stderr_seen.push(line);
                    if let Some(v) = ready {
                        return v;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < self.deadline() => {}
                Err(_) => {
                    // The script ended (stderr closed) or stalled: show what it said.
                    let out = self
                        .stdout
                        .recv_timeout(Duration::from_secs(1))
                        .unwrap_or_default();
                    panic!(
                        "{}: no ready line\n--- stdout ---\n{out}\n--- stderr ---\n{}",
                        self.what,
                        self.stderr_seen.join("\n")
                    );
                }
            }
        }
    }

    /// Waits for the script to exit 0 and returns the JSON object it printed.
    pub(crate) fn finish(mut self) -> Value {
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < self.deadline() => {
                    thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    panic!(
                        "{}: still running after {:?}",
                        self.what,
                        self.deadline() - self.started
                    );
                }
                Err(e) => panic!("{}: wait: {e}", self.what),
            }
        };
        let out = self
            .stdout
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            self.stderr_seen.push(line);
        }
        assert!(
            status.success(),
            "{}: exited with {status}\n--- stdout ---\n{out}\n--- stderr ---\n{}",
            self.what,
            self.stderr_seen.join("\n")
        );
        serde_json::from_str(out.trim()).unwrap_or_else(|e| {
            panic!(
                "{}: stdout is not one JSON object ({e}):\n{out}\n--- stderr ---\n{}",
                self.what,
                self.stderr_seen.join("\n")
            )
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Already exited after `finish`; otherwise a panicking test must not leave it behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `subcommand` with `flags` to its end and returns its JSON.
fn run(client: Client, d: Dial<'_>, subcommand: &str, flags: &str) -> Value {
    Proc::spawn(client, d.argv(subcommand, flags)).finish()
}

/// Starts a `sub` scenario and returns it once its SUBACK arrived, with the SUBACK codes.
fn start_sub(client: Client, d: Dial<'_>, flags: &str) -> (Proc, Vec<u64>) {
    let mut p = Proc::spawn(client, d.argv("sub", flags));
    let ready = p.wait_ready();
    (p, codes(&ready["suback"]))
}

pub(crate) fn codes(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array of codes, got {v}"))
        .iter()
        .map(|c| {
            c.as_u64()
                .unwrap_or_else(|| panic!("non-integer code in {v}"))
        })
        .collect()
}

fn payload(msg: &Value) -> String {
    let b64 = msg["payload_b64"]
        .as_str()
        .unwrap_or_else(|| panic!("no payload_b64 in {msg}"));
    let bytes = STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("bad base64 in {msg}: {e}"));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("payload is not UTF-8 in {msg}: {e}"))
}

pub(crate) fn payloads(result: &Value) -> Vec<String> {
    result["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages array in {result}"))
        .iter()
        .map(payload)
        .collect()
}

/// The connect report must say accepted; `context` names the case in the failure.
fn assert_connected(result: &Value, context: &str) {
    let conn = if result.get("connect").is_some() {
        &result["connect"]
    } else {
        result
    };
    assert_eq!(
        conn["connected"],
        Value::Bool(true),
        "{context}: not connected: {result}"
    );
    assert_eq!(conn["reason_code"], 0, "{context}: {result}");
}

fn full_rights(broker: &Broker) -> String {
    broker.token(HUB, Some("interop-user"), &[JOIN, SEND], &[])
}

/// The implementation that is not `client`.
fn other(client: Client) -> Client {
    match client {
        Client::Paho => Client::MqttJs,
        Client::MqttJs => Client::Paho,
    }
}

/// A group name unique to one case, from its parts (dots are not needed in group names).
fn group(parts: &[&str]) -> String {
    parts.join("-").replace('.', "")
}

fn connect_matrix(test: &str, client: Client) {
    if !require(test, &[client]) {
        return;
    }
    let broker = Broker::start();
    let token = full_rights(&broker);
    for protocol in [4u8, 5] {
        for transport in TRANSPORTS {
            let context = format!("{} v{protocol} {transport:?}", client.name());
            let result = run(
                client,
                dial(&broker, &token, transport, protocol),
                "connect",
                "",
            );
            assert_connected(&result, &context);
            assert_eq!(
                result["session_present"], false,
                "{context}: clean start: {result}"
            );
        }
    }
}

#[test]
fn paho_connects_over_ws_query_ws_header_and_tcp_with_v311_and_v5() {
    connect_matrix(
        "paho_connects_over_ws_query_ws_header_and_tcp_with_v311_and_v5",
        Client::Paho,
    );
}

#[test]
fn mqttjs_connects_over_ws_query_ws_header_and_tcp_with_v311_and_v5() {
    connect_matrix(
        "mqttjs_connects_over_ws_query_ws_header_and_tcp_with_v311_and_v5",
        Client::MqttJs,
    );
}

#[test]
fn v5_empty_client_id_gets_an_assigned_identifier() {
    if !require("v5_empty_client_id_gets_an_assigned_identifier", &BOTH) {
        return;
    }
    let broker = Broker::start();
    let token = full_rights(&broker);
    for client in BOTH {
        // An empty value cannot go through the whitespace-split flags.
        let mut args = dial(&broker, &token, Transport::WsQuery, 5).argv("connect", "");
        args.extend(["--client-id".to_owned(), String::new()]);
        let result = Proc::spawn(client, args).finish();
        assert_connected(&result, client.name());
        let assigned = result["assigned_client_id"].as_str().unwrap_or("");
        assert!(
            !assigned.is_empty(),
            "{}: no Assigned Client Identifier: {result}",
            client.name()
        );
    }
}

/// `subscriber` joins a group, `publisher` sends two messages to it, at each QoS and on each
/// protocol version, the two sides over different transports.
fn cross_round_trip(test: &str, subscriber: Client, publisher: Client) {
    if !require(test, &[subscriber, publisher]) {
        return;
    }
    let broker = Broker::start();
    let token = full_rights(&broker);
    let mut case = 0usize;
    for protocol in [4u8, 5] {
        for qos in [0u64, 1, 2] {
            // Rotate the transports so every pairing is exercised somewhere.
            let (sub_t, pub_t) = (TRANSPORTS[case % 3], TRANSPORTS[(case + 1) % 3]);
            case += 1;
            let context = format!(
                "{} sub ({sub_t:?}) <- {} pub ({pub_t:?}) v{protocol} qos{qos}",
                subscriber.name(),
                publisher.name()
            );
            let g = group(&["rt", subscriber.name(), &format!("v{protocol}q{qos}")]);
            let (sub, suback) = start_sub(
                subscriber,
                dial(&broker, &token, sub_t, protocol),
                &format!("--topic {g} --qos {qos} --count 2"),
            );
            assert_eq!(suback, vec![qos], "{context}: SUBACK");

            let flags = format!("--topic {g} --qos {qos} --count 2 --message msg-{{i}}");
            let published = run(
                publisher,
                dial(&broker, &token, pub_t, protocol),
                "pub",
                &flags,
            );
            assert_connected(&published, &context);
            assert_eq!(
                codes(&published["acks"]),
                vec![0, 0],
                "{context}: acks: {published}"
            );
            assert_eq!(published["error"], Value::Null, "{context}: {published}");

            let got = sub.finish();
            assert_eq!(payloads(&got), vec!["msg-0", "msg-1"], "{context}: {got}");
            for m in got["messages"].as_array().into_iter().flatten() {
                assert_eq!(m["topic"], g.as_str(), "{context}: {m}");
                // Delivered QoS = min(published, granted); both are `qos` here.
                assert_eq!(m["qos"], qos, "{context}: {m}");
                assert_eq!(m["retain"], false, "{context}: {m}");
            }
            assert_eq!(got["disconnect"], Value::Null, "{context}: {got}");
        }
    }
}

#[test]
fn paho_subscriber_receives_mqttjs_publishes_at_qos_0_1_2() {
    cross_round_trip(
        "paho_subscriber_receives_mqttjs_publishes_at_qos_0_1_2",
        Client::Paho,
        Client::MqttJs,
    );
}

#[test]
fn mqttjs_subscriber_receives_paho_publishes_at_qos_0_1_2() {
    cross_round_trip(
        "mqttjs_subscriber_receives_paho_publishes_at_qos_0_1_2",
        Client::MqttJs,
        Client::Paho,
    );
}

#[test]
fn publisher_subscribed_to_its_own_group_gets_its_message_back() {
    if !require(
        "publisher_subscribed_to_its_own_group_gets_its_message_back",
        &BOTH,
    ) {
        return;
    }
    let broker = Broker::start();
    let token = full_rights(&broker);
    for client in BOTH {
        for protocol in [4u8, 5] {
            let context = format!("{} v{protocol}", client.name());
            let g = group(&["echo", client.name(), &protocol.to_string()]);
            let d = dial(&broker, &token, Transport::WsQuery, protocol);
            let flags = format!("--topic {g} --qos 1 --count 1 --message echo");
            let result = run(client, d, "pubsub", &flags);
            assert_connected(&result, &context);
            assert_eq!(codes(&result["suback"]), vec![1], "{context}: {result}");
            assert_eq!(codes(&result["acks"]), vec![0], "{context}: {result}");
            assert_eq!(payloads(&result), vec!["echo"], "{context}: {result}");
        }
    }
}

#[test]
fn v5_publish_properties_are_forwarded_unchanged_across_implementations() {
    if !require(
        "v5_publish_properties_are_forwarded_unchanged_across_implementations",
        &BOTH,
    ) {
        return;
    }
    let broker = Broker::start();
    let token = full_rights(&broker);
    for publisher in BOTH {
        let subscriber = other(publisher);
        let context = format!("{} -> {}", publisher.name(), subscriber.name());
        let g = group(&["props", publisher.name()]);
        let sub_flags = format!("--topic {g} --qos 1");
        let (sub5, _) = start_sub(
            subscriber,
            dial(&broker, &token, Transport::WsHeader, 5),
            &sub_flags,
        );
        // A 3.1.1 member of the same group gets the payload and none of the properties.
        let (sub4, _) = start_sub(
            publisher,
            dial(&broker, &token, Transport::Tcp, 4),
            &sub_flags,
        );
        let flags = format!(
            "--topic {g} --qos 1 --message {{\"n\":1}} --user-property a=1 --user-property a=2 \
             --user-property trace=xyz --content-type application/json --correlation-data corr-42 \
             --response-topic replies --payload-format 1 --message-expiry 600"
        );
        let published = run(
            publisher,
            dial(&broker, &token, Transport::WsQuery, 5),
            "pub",
            &flags,
        );
        assert_eq!(codes(&published["acks"]), vec![0], "{context}: {published}");

        let got = sub5.finish();
        assert_eq!(payloads(&got), vec!["{\"n\":1}"], "{context}: {got}");
        let props = &got["messages"][0]["properties"];
        assert_eq!(
            props["user_properties"],
            serde_json::json!([["a", "1"], ["a", "2"], ["trace", "xyz"]]),
            "{context}: user properties keep order and duplicates: {got}"
        );
        assert_eq!(
            props["content_type"], "application/json",
            "{context}: {got}"
        );
        assert_eq!(
            props["correlation_data_b64"],
            STANDARD.encode("corr-42"),
            "{context}: {got}"
        );
        assert_eq!(props["response_topic"], "replies", "{context}: {got}");
        assert_eq!(props["payload_format"], 1, "{context}: {got}");
        // The broker may count down the time the message waited (MQTT 5 §3.3.2.3.3).
        let expiry = props["message_expiry"].as_u64().unwrap_or(0);
        assert!(
            (1..=600).contains(&expiry),
            "{context}: message expiry {expiry}: {got}"
        );

        let got4 = sub4.finish();
        assert_eq!(
            payloads(&got4),
            vec!["{\"n\":1}"],
            "{context} (v3.1.1 sub): {got4}"
        );
        let props4 = &got4["messages"][0]["properties"];
        assert_eq!(
            props4["user_properties"],
            serde_json::json!([]),
            "{context} (v3.1.1): {got4}"
        );
        assert_eq!(
            props4["content_type"],
            Value::Null,
            "{context} (v3.1.1): {got4}"
        );
    }
}

#[test]
fn subscribe_without_join_role_is_refused_0x87_on_v5_and_0x80_on_v311() {
    if !require(
        "subscribe_without_join_role_is_refused_0x87_on_v5_and_0x80_on_v311",
        &BOTH,
    ) {
        return;
    }
    let broker = Broker::start();
    let send_only = broker.token(HUB, Some("sender"), &[SEND], &[]);
    let one_group = broker.token(
        HUB,
        Some("member"),
        &["webpubsub.joinLeaveGroup.allowed"],
        &[],
    );
    for client in BOTH {
        for (protocol, denied) in [(5u8, 0x87u64), (4, 0x80)] {
            let context = format!("{} v{protocol}", client.name());
            let d = dial(&broker, &send_only, Transport::Tcp, protocol);
            let result = run(client, d, "sub", "--topic secret --qos 1 --count 0");
            assert_connected(&result, &context);
            assert_eq!(
                codes(&result["suback"]),
                vec![denied],
                "{context}: no join role: {result}"
            );

            // A group-scoped role grants that group only, within one SUBSCRIBE.
            let d = dial(&broker, &one_group, Transport::WsQuery, protocol);
            let result = run(
                client,
                d,
                "sub",
                "--topic allowed --topic other --qos 1 --count 0",
            );
            assert_eq!(
                codes(&result["suback"]),
                vec![1, denied],
                "{context}: scoped role: {result}"
            );
        }
    }
}

#[test]
fn publish_without_send_role_is_refused_on_v5_and_never_delivered() {
    if !require(
        "publish_without_send_role_is_refused_on_v5_and_never_delivered",
        &BOTH,
    ) {
        return;
    }
    let broker = Broker::start();
    let watcher_token = full_rights(&broker);
    let join_only = broker.token(HUB, Some("listener"), &[JOIN], &[]);
    // v3.1.1 has no way to say no: the packet is acknowledged and the message dropped.
    for (protocol, qos, expected) in [(5u8, 1u8, 0x87u64), (5, 2, 0x87), (4, 1, 0)] {
        for client in BOTH {
            let context = format!("{} v{protocol} qos{qos}", client.name());
            let g = group(&["guarded", client.name(), &format!("v{protocol}q{qos}")]);
            // A permitted member of the group, from the other implementation.
            let watcher = other(client);
            let watch = dial(&broker, &watcher_token, Transport::Tcp, 5);
            let (sub, _) = start_sub(watcher, watch, &format!("--topic {g} --qos 1 --count 1"));

            let d = dial(&broker, &join_only, Transport::WsHeader, protocol);
            let flags = format!("--topic {g} --qos {qos} --message must-not-arrive");
            let denied = run(client, d, "pub", &flags);
            assert_connected(&denied, &context);
            assert_eq!(
                codes(&denied["acks"]),
                vec![expected],
                "{context}: {denied}"
            );

            // The denied message was acknowledged before this one was sent, so the watcher's
            // first (and only collected) message must be this one.
            let marker = run(
                watcher,
                watch,
                "pub",
                &format!("--topic {g} --qos 1 --message marker"),
            );
            assert_eq!(codes(&marker["acks"]), vec![0], "{context}: {marker}");
            let got = sub.finish();
            assert_eq!(
                payloads(&got),
                vec!["marker"],
                "{context}: denied message delivered: {got}"
            );
        }
    }
}

#[test]
fn wildcard_and_shared_subscriptions_are_refused() {
    if !require("wildcard_and_shared_subscriptions_are_refused", &BOTH) {
        return;
    }
    let broker = Broker::start();
    let token = full_rights(&broker);
    for client in BOTH {
        let d = dial(&broker, &token, Transport::WsQuery, 5);
        let flags = "--topic a/+ --topic a/# --topic $share/team/g --topic plain --qos 0 --count 0";
        let v5 = run(client, d, "sub", flags);
        assert_connected(&v5, client.name());
        assert_eq!(
            codes(&v5["suback"]),
            vec![0xA2, 0xA2, 0x9E, 0],
            "{} v5: {v5}",
            client.name()
        );

        let d = dial(&broker, &token, Transport::Tcp, 4);
        let v4 = run(
            client,
            d,
            "sub",
            "--topic a/+ --topic # --topic plain --qos 1 --count 0",
        );
        assert_eq!(
            codes(&v4["suback"]),
            vec![0x80, 0x80, 1],
            "{} v3.1.1: {v4}",
            client.name()
        );
    }
}

#[test]
fn expired_token_is_refused_with_401_on_websocket_and_connack_on_tcp() {
    if !require(
        "expired_token_is_refused_with_401_on_websocket_and_connack_on_tcp",
        &BOTH,
    ) {
        return;
    }
    let broker = Broker::start();
    // An hour past expiry: well beyond the 5-minute clock-skew allowance.
    let claims = serde_json::json!({
        "aud": broker.aud(HUB),
        "exp": now_secs() - 3600,
        "iat": now_secs() - 7200,
        "sub": "late",
        "role": [JOIN, SEND],
    });
    let expired = broker.token_with(claims, &broker.keys[0]);
    for client in BOTH {
        for protocol in [4u8, 5] {
            for transport in [Transport::WsQuery, Transport::WsHeader] {
                let context = format!("{} v{protocol} {transport:?}", client.name());
                let result = run(
                    client,
                    dial(&broker, &expired, transport, protocol),
                    "connect",
                    "",
                );
                assert_eq!(result["connected"], false, "{context}: {result}");
                // The upgrade is refused, so no CONNACK ever comes.
                assert_eq!(result["reason_code"], Value::Null, "{context}: {result}");
                let error = result["error"].as_str().unwrap_or("");
                assert!(!error.is_empty(), "{context}: no error text: {result}");
                // paho does not expose the HTTP status of a refused upgrade; MQTT.js does.
                if client == Client::MqttJs {
                    assert!(
                        error.contains("401"),
                        "{context}: expected HTTP 401 in {error:?}"
                    );
                }
            }
            let context = format!("{} v{protocol} Tcp", client.name());
            let result = run(
                client,
                dial(&broker, &expired, Transport::Tcp, protocol),
                "connect",
                "",
            );
            assert_eq!(result["connected"], false, "{context}: {result}");
            // The spec does not pin the code: "bad user name or password" or "not authorized".
            let allowed: &[u64] = if protocol == 5 {
                &[0x86, 0x87]
            } else {
                &[0x04, 0x05]
            };
            let code = result["reason_code"].as_u64().unwrap_or(0);
            assert!(
                allowed.contains(&code),
                "{context}: CONNACK {code:#x} not in {allowed:x?}: {result}"
            );
        }
    }
}
