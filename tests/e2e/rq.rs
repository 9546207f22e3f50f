//! rumqttc (a real, independent client library) wrapped for tests: [`V4`] (MQTT 3.1.1) and
//! [`V5`] (MQTT 5) clients over TCP or WebSocket (token in the query or in the `Authorization`
//! header). Each wrapper owns a task that polls the event loop and forwards incoming packets to
//! a channel; the task stops at the first connection error instead of letting rumqttc
//! reconnect, so a test sees every close. Every wait has a deadline.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::harness::{Broker, IO_DEADLINE};

/// How the client reaches the broker and presents its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// MQTT over TCP; username = hub, password = token.
    Tcp,
    /// WebSocket with `?access_token=`.
    WsQuery,
    /// WebSocket with `Authorization: Bearer`.
    WsHeader,
}

pub const ALL_VIAS: [Via; 3] = [Via::Tcp, Via::WsQuery, Via::WsHeader];

/// Options for a 3.1.1 client of `hub` with client id `id`.
pub fn v4_opts(
    b: &Broker,
    via: Via,
    id: &str,
    hub: &str,
    token: Option<&str>,
) -> rumqttc::MqttOptions {
    let mut o = match via {
        Via::Tcp => rumqttc::MqttOptions::new(id, b.tcp.ip().to_string(), b.tcp.port()),
        Via::WsQuery => rumqttc::MqttOptions::new(id, b.ws_url(hub, token), b.http.port()),
        Via::WsHeader => rumqttc::MqttOptions::new(id, b.ws_url(hub, None), b.http.port()),
    };
    match via {
        Via::Tcp => {
            o.set_credentials(hub, token.unwrap_or(""));
        }
        Via::WsQuery => {
            o.set_transport(rumqttc::Transport::Ws);
        }
        Via::WsHeader => {
            o.set_transport(rumqttc::Transport::Ws);
            if let Some(t) = token {
                let value = format!("Bearer {t}");
                o.set_request_modifier(move |mut req| {
                    let value = value.clone();
                    async move {
                        req.headers_mut()
                            .insert("Authorization", value.parse().expect("header value"));
                        req
                    }
                });
            }
        }
    }
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

/// Options for a 5.0 client of `hub` with client id `id`.
pub fn v5_opts(
    b: &Broker,
    via: Via,
    id: &str,
    hub: &str,
    token: Option<&str>,
) -> rumqttc::v5::MqttOptions {
    use rumqttc::v5::MqttOptions;
    let mut o = match via {
        Via::Tcp => MqttOptions::new(id, b.tcp.ip().to_string(), b.tcp.port()),
        Via::WsQuery => MqttOptions::new(id, b.ws_url(hub, token), b.http.port()),
        Via::WsHeader => MqttOptions::new(id, b.ws_url(hub, None), b.http.port()),
    };
    match via {
        Via::Tcp => {
            o.set_credentials(hub, token.unwrap_or(""));
        }
        Via::WsQuery => {
            o.set_transport(rumqttc::Transport::Ws);
        }
        Via::WsHeader => {
            o.set_transport(rumqttc::Transport::Ws);
            if let Some(t) = token {
                let value = format!("Bearer {t}");
                o.set_request_modifier(move |mut req| {
                    let value = value.clone();
                    async move {
                        req.headers_mut()
                            .insert("Authorization", value.parse().expect("header value"));
                        req
                    }
                });
            }
        }
    }
    o.set_max_packet_size(Some(1 << 20));
    o
}

/// Generates the 3.1.1 and 5.0 wrappers, whose rumqttc APIs differ only in module paths.
macro_rules! client_wrapper {
    ($name:ident, $m:path, $pk:ident, $opts:path) => {
        pub struct $name {
            pub client: <$name as Types>::Client,
            pub connack: <$name as Types>::ConnAck,
            rx: mpsc::UnboundedReceiver<Result<$pk::Packet, String>>,
            stash: VecDeque<$pk::Packet>,
            task: JoinHandle<()>,
        }

        impl $name {
            /// Connects and waits for a successful CONNACK; panics otherwise.
            pub async fn connect(opts: $opts) -> $name {
                match Self::try_connect(opts).await {
                    Ok(c) => c,
                    Err(e) => panic!("{} connect failed: {e}", stringify!($name)),
                }
            }

            /// Connects; `Err` carries rumqttc's error text (e.g. a refused CONNACK's code).
            pub async fn try_connect(opts: $opts) -> Result<$name, String> {
                use $m as m;
                let (client, mut eventloop) = m::AsyncClient::new(opts, 64);
                let (tx, mut rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(async move {
                    loop {
                        match eventloop.poll().await {
                            Ok(m::Event::Incoming(p)) => {
                                if tx.send(Ok(p)).is_err() {
                                    break;
                                }
                            }
                            Ok(m::Event::Outgoing(_)) => {}
                            Err(e) => {
                                let _ = tx.send(Err(format!("{e:?}")));
                                break;
                            }
                        }
                    }
                });
                let first = tokio::time::timeout(IO_DEADLINE, rx.recv()).await;
                match first {
                    Ok(Some(Ok($pk::Packet::ConnAck(connack)))) => {
                        Ok($name { client, connack, rx, stash: VecDeque::new(), task })
                    }
                    Ok(Some(Ok(other))) => Err(format!("first packet was not CONNACK: {other:?}")),
                    Ok(Some(Err(e))) => Err(e),
                    Ok(None) => Err("event loop ended".into()),
                    Err(_) => Err(format!("no CONNACK within {IO_DEADLINE:?}")),
                }
            }

            /// The next incoming packet that `pick` accepts (others are kept for later calls).
            pub async fn next_where<T>(&mut self, what: &str, mut pick: impl FnMut(&$pk::Packet) -> Option<T>) -> T {
                if let Some(i) = self.stash.iter().position(|p| pick(p).is_some()) {
                    let p = self.stash.remove(i).expect("index from position");
                    return pick(&p).expect("matched above");
                }
                let deadline = tokio::time::Instant::now() + IO_DEADLINE;
                loop {
                    match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                        Ok(Some(Ok(p))) => {
                            if let Some(t) = pick(&p) {
                                return t;
                            }
                            if !matches!(p, $pk::Packet::PingResp { .. }) {
                                self.stash.push_back(p);
                            }
                        }
                        Ok(Some(Err(e))) => panic!("waiting for {what}: connection error {e}"),
                        Ok(None) => panic!("waiting for {what}: event loop ended"),
                        Err(_) => panic!("waiting for {what}: nothing within {IO_DEADLINE:?}; other packets: {:?}", self.stash),
                    }
                }
            }

            /// The next PUBLISH received.
            pub async fn recv(&mut self) -> <$name as Types>::Publish {
                self.next_where("a PUBLISH", |p| match p {
                    $pk::Packet::Publish(p) => Some(p.clone()),
                    _ => None,
                })
                .await
            }

            /// Subscribes to `topic` and returns the SUBACK.
            pub async fn subscribe(&mut self, topic: &str, qos: <$name as Types>::QoS) -> <$name as Types>::SubAck {
                self.client.subscribe(topic, qos).await.expect("request queued");
                self.next_where("SUBACK", |p| match p {
                    $pk::Packet::SubAck(s) => Some(s.clone()),
                    _ => None,
                })
                .await
            }

            /// Publishes without waiting for an ack.
            pub async fn publish(&self, topic: &str, qos: <$name as Types>::QoS, payload: &[u8]) {
                self.client.publish(topic, qos, false, payload.to_vec()).await.expect("request queued");
            }

            /// Waits for the connection to end (error or end of the event loop); returns the
            /// error text, e.g. rumqttc's report of a server DISCONNECT.
            pub async fn closed(&mut self) -> String {
                let deadline = tokio::time::Instant::now() + IO_DEADLINE;
                loop {
                    match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                        Ok(Some(Ok(p))) => self.stash.push_back(p),
                        Ok(Some(Err(e))) => return e,
                        Ok(None) => return "event loop ended".into(),
                        Err(_) => panic!("connection still open after {IO_DEADLINE:?}"),
                    }
                }
            }

            /// Sends DISCONNECT (normal) and waits for the event loop to end.
            pub async fn disconnect(mut self) {
                let _ = self.client.disconnect().await;
                let _ = self.closed().await;
            }

            /// Drops the socket without DISCONNECT: what the broker sees as an abnormal close.
            pub fn kill(self) {
                self.task.abort();
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.task.abort();
            }
        }
    };
}

/// Associated types per wrapper, so the macro can name them.
pub trait Types {
    type Client;
    type ConnAck;
    type Publish;
    type SubAck;
    type QoS;
}

impl Types for V4 {
    type Client = rumqttc::AsyncClient;
    type ConnAck = rumqttc::ConnAck;
    type Publish = rumqttc::Publish;
    type SubAck = rumqttc::SubAck;
    type QoS = rumqttc::QoS;
}

impl Types for V5 {
    type Client = rumqttc::v5::AsyncClient;
    type ConnAck = rumqttc::v5::mqttbytes::v5::ConnAck;
    type Publish = rumqttc::v5::mqttbytes::v5::Publish;
    type SubAck = rumqttc::v5::mqttbytes::v5::SubAck;
    type QoS = rumqttc::v5::mqttbytes::QoS;
}

/// Packet enums under one name each, so the macro can write `pk4::Packet::ConnAck(..)`.
mod pk4 {
    pub use rumqttc::Packet;
}
mod pk5 {
    pub use rumqttc::v5::mqttbytes::v5::Packet;
}

client_wrapper!(V4, rumqttc, pk4, rumqttc::MqttOptions);
client_wrapper!(V5, rumqttc::v5, pk5, rumqttc::v5::MqttOptions);

/// Short names for the QoS values of both APIs.
pub mod qos {
    pub const Q0: rumqttc::QoS = rumqttc::QoS::AtMostOnce;
    pub const Q1: rumqttc::QoS = rumqttc::QoS::AtLeastOnce;
    pub const Q2: rumqttc::QoS = rumqttc::QoS::ExactlyOnce;
    pub const V5Q0: rumqttc::v5::mqttbytes::QoS = rumqttc::v5::mqttbytes::QoS::AtMostOnce;
    pub const V5Q1: rumqttc::v5::mqttbytes::QoS = rumqttc::v5::mqttbytes::QoS::AtLeastOnce;
    pub const V5Q2: rumqttc::v5::mqttbytes::QoS = rumqttc::v5::mqttbytes::QoS::ExactlyOnce;
}
