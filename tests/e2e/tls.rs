//! TLS listeners (rustls with the ring provider): MQTT over TLS (`tls`) and WebSocket MQTT over
//! HTTPS (`https`), with a certificate made at test time by openssl, driven by paho-mqtt (the
//! Python runner in `tests/clients/`), which verifies the chain against that certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{now_secs, Broker};

const SEND_JOIN: [&str; 2] = ["webpubsub.sendToGroup", "webpubsub.joinLeaveGroup"];

/// A self-signed certificate for 127.0.0.1/localhost in a fresh temp dir, or None (with a
/// printed reason) when openssl is missing outside CI.
fn make_cert() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::temp_dir().join(format!("hubmq-tls-{}-{}", std::process::id(), now_secs()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .output();
    match out {
        Ok(o) if o.status.success() => Some((cert, key)),
        other if std::env::var_os("CI").is_none() => {
            println!("SKIPPED: openssl unavailable: {other:?}");
            None
        }
        other => panic!("openssl req failed: {other:?}"),
    }
}

fn listener(b: &Broker, kind: &str) -> SocketAddr {
    b.listeners
        .iter()
        .find(|(k, _)| k == kind)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("no {kind} listener in {:?}", b.listeners))
}

fn paho(args: &[&str], ca: &Path) -> Value {
    let out = Command::new("python3")
        .arg("tests/clients/paho_client.py")
        .args(args)
        .arg("--ca-file")
        .arg(ca)
        .args(["--timeout", "15"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run paho_client.py");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "paho output is not JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn start_tls_broker() -> Option<(Broker, PathBuf)> {
    let (cert, key) = make_cert()?;
    let extra = format!(
        "[[listeners]]\nkind = \"tls\"\nbind = \"127.0.0.1:0\"\ncert = \"{c}\"\nkey = \"{k}\"\n\n\
         [[listeners]]\nkind = \"https\"\nbind = \"127.0.0.1:0\"\ncert = \"{c}\"\nkey = \"{k}\"\n",
        c = cert.display(),
        k = key.display()
    );
    Some((Broker::start_with(&extra), cert))
}

#[test]
fn mqtt_over_tls_round_trips_with_a_token_in_the_password() {
    let Some((mut b, ca)) = start_tls_broker() else {
        return;
    };
    let tls = listener(&b, "tls");
    let token = b.token("chat", Some("alice"), &SEND_JOIN, &[]);
    let url = format!("mqtts://localhost:{}", tls.port());
    for protocol in ["4", "5"] {
        let v = paho(
            &[
                "pubsub",
                "--url",
                &url,
                "--protocol",
                protocol,
                "--username",
                "chat",
                "--password",
                &token,
                "--topic",
                "secure",
                "--qos",
                "1",
                "--message",
                "over-tls",
                "--count",
                "1",
            ],
            &ca,
        );
        assert_eq!(v["suback"], serde_json::json!([1]), "v{protocol}: {v}");
        let msgs = v["messages"].as_array().cloned().unwrap_or_default();
        assert_eq!(msgs.len(), 1, "v{protocol}: {v}");
        assert_eq!(msgs[0]["topic"], "secure");
    }
    // A bad token over TLS gets the same CONNACK refusal as over TCP.
    let v = paho(
        &[
            "connect",
            "--url",
            &url,
            "--protocol",
            "5",
            "--username",
            "chat",
            "--password",
            "nope",
        ],
        &ca,
    );
    assert_eq!(v["connected"], false, "{v}");
    assert_eq!(v["reason_code"], 0x87, "{v}");
    b.assert_alive();
}

#[test]
fn websocket_mqtt_over_https_checks_the_token_audience() {
    let Some((mut b, ca)) = start_tls_broker() else {
        return;
    };
    let https = listener(&b, "https");
    let aud = format!("https://localhost:{}/clients/mqtt/hubs/chat", https.port());
    let token = b.token_with(
        serde_json::json!({"aud": aud, "exp": now_secs() + 600, "role": SEND_JOIN}),
        &b.keys[0],
    );
    let url = format!(
        "wss://localhost:{}/clients/mqtt/hubs/chat?access_token={token}",
        https.port()
    );
    let v = paho(
        &[
            "pubsub",
            "--url",
            &url,
            "--protocol",
            "5",
            "--topic",
            "wss",
            "--qos",
            "0",
            "--message",
            "hello",
            "--count",
            "1",
        ],
        &ca,
    );
    assert_eq!(v["suback"], serde_json::json!([0]), "{v}");
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(1), "{v}");

    // The same token presented to another hub is refused at the upgrade.
    let wrong = format!(
        "wss://localhost:{}/clients/mqtt/hubs/other?access_token={token}",
        https.port()
    );
    let v = paho(&["connect", "--url", &wrong, "--protocol", "5"], &ca);
    assert_eq!(v["connected"], false, "{v}");
    b.assert_alive();
}
