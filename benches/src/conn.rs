//! One benchmark client connection: TCP connect, optional WebSocket upgrade, CONNECT/CONNACK,
//! SUBSCRIBE/SUBACK, then a reader half that yields decoded packets from large batched reads
//! and a writer half that stages MQTT packets and sends them with one write (one WebSocket
//! frame) per flush. Buffers are reused, so the steady state allocates nothing per message.

use crate::codec::{self, Connect, DecodeError, Packet};
use crate::url::{BrokerUrl, Transport};
use crate::ws::{self, Deframer, WsError};
use std::fmt;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Bytes asked for per read: large, so a busy subscriber drains many packets per syscall.
const READ_CHUNK: usize = 64 * 1024;
/// How long the handshake steps (TCP, upgrade, CONNACK, SUBACK) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything that can end a benchmark connection.
#[derive(Debug)]
pub enum ClientError {
    Io(std::io::Error),
    Ws(WsError),
    Mqtt(DecodeError),
    /// CONNACK with a non-zero return code.
    ConnectRefused(u8),
    /// SUBACK failure (0x80) or an unexpected granted QoS.
    SubscribeRefused(u8),
    /// The broker closed the connection.
    Closed,
    /// A handshake step took longer than allowed.
    Timeout(&'static str),
    /// The broker sent a packet the generator did not expect at that point.
    Unexpected(&'static str),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
            ClientError::Ws(e) => write!(f, "{e}"),
            ClientError::Mqtt(e) => write!(f, "malformed MQTT from broker: {e}"),
            ClientError::ConnectRefused(c) => {
                let why = match c {
                    1 => "unacceptable protocol version",
                    2 => "identifier rejected",
                    3 => "server unavailable",
                    4 => "bad user name or password",
                    5 => "not authorized",
                    _ => "unknown code",
                };
                write!(f, "CONNACK refused the connection: {c} ({why})")
            }
            ClientError::SubscribeRefused(c) => {
                write!(f, "SUBACK refused the subscription: 0x{c:02x}")
            }
            ClientError::Closed => write!(f, "broker closed the connection"),
            ClientError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            ClientError::Unexpected(what) => write!(f, "unexpected packet: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}
impl From<WsError> for ClientError {
    fn from(e: WsError) -> Self {
        ClientError::Ws(e)
    }
}
impl From<DecodeError> for ClientError {
    fn from(e: DecodeError) -> Self {
        ClientError::Mqtt(e)
    }
}

/// How every connection of a run identifies itself.
#[derive(Debug, Clone)]
pub struct ClientOpts {
    pub url: BrokerUrl,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive_secs: u16,
}

/// Receiving half: raw socket bytes → (WebSocket payloads) → MQTT packets.
pub struct Reader {
    rd: OwnedReadHalf,
    /// WebSocket only: bytes read but not yet de-framed.
    raw: Vec<u8>,
    /// MQTT byte stream; `pos` marks what was already decoded.
    mqtt: Vec<u8>,
    pos: usize,
    deframer: Option<Deframer>,
}

impl Reader {
    /// Reads once (waiting if nothing is there). Errors with `Closed` at end of stream.
    pub async fn fill(&mut self) -> Result<usize, ClientError> {
        if self.pos > 0 {
            // Keep only the undecoded tail (at most one partial packet).
            self.mqtt.drain(..self.pos);
            self.pos = 0;
        }
        match &mut self.deframer {
            None => {
                self.mqtt.reserve(READ_CHUNK);
                let n = self.rd.read_buf(&mut self.mqtt).await?;
                if n == 0 {
                    return Err(ClientError::Closed);
                }
                Ok(n)
            }
            Some(d) => {
                self.raw.reserve(READ_CHUNK);
                let n = self.rd.read_buf(&mut self.raw).await?;
                if n == 0 {
                    return Err(ClientError::Closed);
                }
                let used = d.unframe(&self.raw, &mut self.mqtt)?;
                self.raw.drain(..used);
                Ok(n)
            }
        }
    }

    /// The next complete packet already buffered, if any.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ClientError> {
        match codec::decode(&self.mqtt[self.pos..])? {
            None => Ok(None),
            Some((p, used)) => {
                self.pos += used;
                Ok(Some(p))
            }
        }
    }

    /// A ping payload the server sent that still needs a pong.
    pub fn take_pong(&mut self) -> Option<Vec<u8>> {
        self.deframer.as_mut().and_then(|d| d.pending_pong.take())
    }
}

/// Sending half: stage packets into `buf`, then `flush` sends them in one write.
pub struct Writer {
    wr: OwnedWriteHalf,
    /// MQTT bytes staged for the next flush.
    pub buf: Vec<u8>,
    frame: Vec<u8>,
    ws: bool,
    mask_seed: u32,
}

impl Writer {
    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift32: masks only need to vary, not to be secret, for a loopback benchmark.
        let mut x = self.mask_seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_seed = x;
        x.to_ne_bytes()
    }

    /// Sends everything staged (one WebSocket frame when on WS).
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.ws {
            let mask = self.next_mask();
            self.frame.clear();
            ws::encode_masked_binary(&mut self.frame, &self.buf, mask);
            self.wr.write_all(&self.frame).await?;
        } else {
            self.wr.write_all(&self.buf).await?;
        }
        self.buf.clear();
        Ok(())
    }

    /// Answers a WebSocket ping.
    pub async fn pong(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        let mask = self.next_mask();
        self.frame.clear();
        ws::encode_masked_control(&mut self.frame, 0x0a, payload, mask);
        self.wr.write_all(&self.frame).await?;
        Ok(())
    }

    /// Sends DISCONNECT and shuts the socket down; errors are ignored (the run is over).
    pub async fn close(mut self) {
        self.buf.clear();
        codec::encode_disconnect(&mut self.buf);
        let _ = self.flush().await;
        let _ = self.wr.shutdown().await;
    }
}

async fn with_timeout<T>(
    what: &'static str,
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .map_err(|_| ClientError::Timeout(what))?
}

/// Opens a connection and completes CONNECT/CONNACK (clean session).
pub async fn connect(
    opts: &ClientOpts,
    client_id: &str,
    seed: u64,
) -> Result<(Reader, Writer), ClientError> {
    let stream = with_timeout("TCP connect", async {
        Ok(TcpStream::connect(opts.url.addr).await?)
    })
    .await?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let mut raw = Vec::new();
    let ws = opts.url.transport == Transport::Ws;
    if ws {
        let key = ws::client_key(seed);
        let req = ws::upgrade_request(&opts.url.host, &opts.url.path_and_query, &key);
        wr.write_all(&req).await?;
        let used = with_timeout("WebSocket upgrade", async {
            loop {
                raw.reserve(4096);
                if rd.read_buf(&mut raw).await? == 0 {
                    return Err(ClientError::Closed);
                }
                if let Some(n) = ws::check_upgrade_response(&raw, &key)? {
                    return Ok(n);
                }
            }
        })
        .await?;
        raw.drain(..used);
    }
    let mut reader = Reader {
        rd,
        raw: Vec::new(),
        mqtt: Vec::new(),
        pos: 0,
        deframer: if ws { Some(Deframer::default()) } else { None },
    };
    // Whatever followed the 101 is WebSocket data.
    if let Some(d) = &mut reader.deframer {
        let used = d.unframe(&raw, &mut reader.mqtt)?;
        raw.drain(..used);
        reader.raw = raw;
    }
    let mut writer = Writer {
        wr,
        buf: Vec::with_capacity(4096),
        frame: Vec::with_capacity(4096),
        ws,
        mask_seed: (seed as u32) | 1,
    };
    codec::encode_connect(
        &mut writer.buf,
        &Connect {
            client_id,
            username: opts.username.as_deref(),
            password: opts.password.as_deref().map(str::as_bytes),
            keep_alive_secs: opts.keep_alive_secs,
            clean_session: true,
        },
    );
    writer.flush().await?;
    with_timeout("CONNACK", async {
        loop {
            if let Some(p) = reader.next_packet()? {
                return match p {
                    Packet::ConnAck { code: 0, .. } => Ok(()),
                    Packet::ConnAck { code, .. } => Err(ClientError::ConnectRefused(code)),
                    _ => Err(ClientError::Unexpected("expected CONNACK")),
                };
            }
            reader.fill().await?;
        }
    })
    .await?;
    Ok((reader, writer))
}

/// Subscribes to one topic and waits for the SUBACK.
pub async fn subscribe(
    reader: &mut Reader,
    writer: &mut Writer,
    topic: &str,
    qos: u8,
) -> Result<(), ClientError> {
    codec::encode_subscribe(&mut writer.buf, 1, topic, qos);
    writer.flush().await?;
    with_timeout("SUBACK", async {
        loop {
            while let Some(p) = reader.next_packet()? {
                match p {
                    Packet::SubAck { pid: 1, code } if code <= 2 => return Ok(()),
                    Packet::SubAck { code, .. } => return Err(ClientError::SubscribeRefused(code)),
                    // Stray messages from an earlier run on a shared topic: ignore.
                    Packet::Publish { .. } | Packet::PingResp => {}
                    _ => return Err(ClientError::Unexpected("expected SUBACK")),
                }
            }
            reader.fill().await?;
        }
    })
    .await
}
