//! [`Raw`], the byte-level MQTT client of the suite: plain TCP, or WebSocket after an upgrade
//! it performs itself (client frames masked, server frames reassembled into one MQTT byte
//! stream, pings answered, a Close frame recorded and answered). Reads take whole packets or
//! exact byte counts with a deadline, so a test can state what the wire must carry, byte for
//! byte, and that a connection must close. It shares no code with the broker.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::harness::{hex, read_http_response, read_some, ReadOutcome, IO_DEADLINE};

/// A byte-level MQTT client: over plain TCP, or over WebSocket after an upgrade it performs
/// itself (client frames masked, server frames reassembled into one MQTT byte stream).
pub struct Raw {
    stream: TcpStream,
    ws: bool,
    /// Undecoded bytes from the socket (WebSocket framing still on).
    wire: Vec<u8>,
    /// MQTT bytes received and not yet consumed.
    mqtt: Vec<u8>,
    /// The status code of a WebSocket Close frame from the server, once one arrived.
    pub close_code: Option<u16>,
    closed: bool,
    /// Deadline for each expected packet or close.
    pub deadline: Duration,
}

impl Raw {
    /// Plain MQTT over TCP.
    pub fn tcp(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let _ = stream.set_nodelay(true);
        Raw::over(stream, false)
    }

    /// WebSocket upgrade to `path_and_query` offering subprotocol `mqtt`, with `extra_headers`.
    /// `Ok` after a 101 whose accept key and subprotocol check out; `Err((status, body))` for
    /// any other answer.
    pub fn ws(
        addr: SocketAddr,
        path_and_query: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<Raw, (u16, String)> {
        let mut extra = String::new();
        for (k, v) in extra_headers {
            extra.push_str(&format!("{k}: {v}\r\n"));
        }
        let req = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n{extra}\r\n"
        );
        Raw::ws_request(addr, &req)
    }

    /// Sends a complete, caller-written upgrade request (key must be [`WS_KEY`]).
    pub fn ws_request(addr: SocketAddr, request: &str) -> Result<Raw, (u16, String)> {
        let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let _ = stream.set_nodelay(true);
        stream
            .write_all(request.as_bytes())
            .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
        let (status, head, rest) = read_http_response(&mut stream, IO_DEADLINE);
        if status != 101 {
            return Err((status, rest));
        }
        let header = |name: &str| -> Option<String> {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        assert_eq!(
            header("sec-websocket-accept").as_deref(),
            Some(ws_accept(WS_KEY).as_str()),
            "bad accept key in {head}"
        );
        assert_eq!(
            header("sec-websocket-protocol").as_deref(),
            Some("mqtt"),
            "subprotocol not echoed in {head}"
        );
        let mut raw = Raw::over(stream, true);
        raw.wire = rest.into_bytes();
        Ok(raw)
    }

    fn over(stream: TcpStream, ws: bool) -> Raw {
        Raw {
            stream,
            ws,
            wire: Vec::new(),
            mqtt: Vec::new(),
            close_code: None,
            closed: false,
            deadline: IO_DEADLINE,
        }
    }

    /// Sends MQTT bytes: as they are on TCP, as one masked binary frame on WebSocket.
    pub fn send(&mut self, bytes: &[u8]) {
        if self.ws {
            self.send_frame(true, OP_BINARY, bytes, true);
        } else {
            self.send_raw(bytes);
        }
    }

    /// Writes bytes to the socket with no framing at all.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        // A write may fail if the server already closed; the following expect reports that.
        let _ = self.stream.write_all(bytes);
    }

    /// Sends one WebSocket frame (for framing tests: continuation, text, unmasked frames).
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8], masked: bool) {
        let frame = ws_frame(fin, opcode, payload, masked);
        self.send_raw(&frame);
    }

    /// Reads exactly `bytes.len()` MQTT bytes and compares them.
    pub fn expect(&mut self, bytes: &[u8]) {
        while self.mqtt.len() < bytes.len() {
            if let Err(why) = self.fill() {
                panic!(
                    "expected {} but {why}; got so far {}",
                    hex(bytes),
                    hex(&self.mqtt)
                );
            }
        }
        let got: Vec<u8> = self.mqtt.drain(..bytes.len()).collect();
        assert_eq!(hex(&got), hex(bytes), "unexpected bytes from the broker");
    }

    /// One whole MQTT packet (fixed header included), within the deadline.
    pub fn read_packet(&mut self) -> Vec<u8> {
        loop {
            if let Some(len) = complete_packet_len(&self.mqtt) {
                return self.mqtt.drain(..len).collect();
            }
            if let Err(why) = self.fill() {
                panic!(
                    "expected an MQTT packet but {why}; got so far {}",
                    hex(&self.mqtt)
                );
            }
        }
    }

    /// The next whole packet, or `None` once the connection has closed (EOF, reset or a
    /// WebSocket Close); panics if neither happens within the deadline.
    pub fn read_packet_if_any(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(len) = complete_packet_len(&self.mqtt) {
                return Some(self.mqtt.drain(..len).collect());
            }
            if let Err(why) = self.fill() {
                if self.closed {
                    return None;
                }
                panic!(
                    "expected a packet or a close but {why}; got so far {}",
                    hex(&self.mqtt)
                );
            }
        }
    }

    /// Like [`Raw::read_packet`], skipping PINGRESP.
    pub fn read_packet_skip_ping(&mut self) -> Vec<u8> {
        loop {
            let p = self.read_packet();
            if p[0] != 0xD0 {
                return p;
            }
        }
    }

    /// The connection must end (EOF, reset, or a WebSocket Close frame) within the deadline,
    /// with no further MQTT bytes.
    pub fn expect_closed(&mut self) {
        loop {
            if !self.mqtt.is_empty() {
                panic!(
                    "expected the connection to close, got MQTT bytes {}",
                    hex(&self.mqtt)
                );
            }
            if self.closed {
                return;
            }
            if let Err(why) = self.fill() {
                if self.closed {
                    continue;
                }
                panic!("expected the connection to close but {why}");
            }
        }
    }

    /// Reads one packet, requires a DISCONNECT with `reason` (v5), then the close.
    pub fn expect_disconnect(&mut self, reason: u8) {
        let p = self.read_packet_skip_ping();
        assert_eq!(
            p[0],
            0xE0,
            "expected DISCONNECT 0x{reason:02x}, got {}",
            hex(&p)
        );
        assert_eq!(
            crate::wire::disconnect_reason(&p),
            reason,
            "DISCONNECT reason in {}",
            hex(&p)
        );
        self.expect_closed();
    }

    /// Reads more from the socket into the MQTT buffer. `Err` says why nothing more will come.
    fn fill(&mut self) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if self.closed {
                return Err("the connection is closed".into());
            }
            if self.ws {
                match self.decode_frames() {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(e) => return Err(e),
                }
                if self.closed {
                    return Err(format!(
                        "the server sent WebSocket Close {:?}",
                        self.close_code
                    ));
                }
            } else if !self.wire.is_empty() {
                self.mqtt.append(&mut self.wire);
                return Ok(());
            }
            match read_some(&mut self.stream, &mut self.wire, start, self.deadline) {
                ReadOutcome::Data => {}
                ReadOutcome::Eof => {
                    self.closed = true;
                    return Err("the connection closed (EOF)".into());
                }
                ReadOutcome::Reset => {
                    self.closed = true;
                    return Err("the connection was reset".into());
                }
                ReadOutcome::Timeout => {
                    return Err(format!("nothing arrived within {:?}", self.deadline))
                }
            }
        }
    }

    /// Decodes whole server frames from `wire`. `Ok(true)` if MQTT bytes were added.
    fn decode_frames(&mut self) -> Result<bool, String> {
        let mut added = false;
        while let Some(ServerFrame {
            opcode,
            payload,
            used,
        }) = parse_server_frame(&self.wire)?
        {
            self.wire.drain(..used);
            match opcode {
                OP_BINARY | OP_CONTINUATION => {
                    added |= !payload.is_empty();
                    self.mqtt.extend_from_slice(&payload);
                }
                OP_CLOSE => {
                    self.close_code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    // Answer the close as RFC 6455 §5.5.1 asks; the server may already be gone.
                    self.send_frame(true, OP_CLOSE, &payload[..payload.len().min(2)], true);
                    self.closed = true;
                    return Ok(added);
                }
                OP_PING => self.send_frame(true, OP_PONG, &payload, true),
                OP_PONG => {}
                other => return Err(format!("the server sent WebSocket opcode {other:#x}")),
            }
        }
        Ok(added)
    }
}

/// The fixed `Sec-WebSocket-Key` [`Raw`] sends (RFC 6455 §1.3's sample nonce).
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// `base64(sha1(key + GUID))` (RFC 6455 §4.2.2).
pub fn ws_accept(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    STANDARD.encode(ctx.finish().as_ref())
}

/// Encodes one frame; `masked` uses a fixed non-zero mask (the value does not matter to tests).
pub fn ws_frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            f.push(mask_bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(mask_bit | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// One decoded server frame and how many bytes of the buffer it used.
struct ServerFrame {
    opcode: u8,
    payload: Vec<u8>,
    used: usize,
}

/// One complete server frame at the start of `buf`, `None` if more bytes are needed.
/// FIN is not reported: MQTT bytes form one stream, so fragmentation does not matter here.
fn parse_server_frame(buf: &[u8]) -> Result<Option<ServerFrame>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let opcode = buf[0] & 0x0F;
    if buf[1] & 0x80 != 0 {
        return Err("the server sent a masked frame (RFC 6455 §5.1 forbids it)".into());
    }
    let (len, mut at) = match buf[1] & 0x7F {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        126 | 127 => return Ok(None),
        n => (n as usize, 2),
    };
    if buf.len() < at + len {
        return Ok(None);
    }
    let payload = buf[at..at + len].to_vec();
    at += len;
    Ok(Some(ServerFrame {
        opcode,
        payload,
        used: at,
    }))
}

/// Length of the first whole MQTT packet in `buf`, if it is all there.
fn complete_packet_len(buf: &[u8]) -> Option<usize> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let b = *buf.get(1 + i)?;
        remaining |= ((b & 0x7F) as usize) << (7 * i);
        if b & 0x80 == 0 {
            let total = 2 + i + remaining;
            return (buf.len() >= total).then_some(total);
        }
    }
    panic!(
        "the broker sent a remaining length longer than 4 bytes: {}",
        hex(buf)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc6455_example() {
        assert_eq!(ws_accept(WS_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn masked_frame_round_trips_through_the_mask() {
        let f = ws_frame(true, OP_BINARY, b"abc", true);
        assert_eq!(&f[..2], &[0x82, 0x83]);
        let mask = &f[2..6];
        let unmasked: Vec<u8> = f[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(unmasked, b"abc");
    }

    #[test]
    fn parses_a_server_close_frame() {
        let f = parse_server_frame(&[0x88, 0x02, 0x03, 0xEB])
            .expect("valid")
            .expect("complete");
        assert_eq!(
            (f.opcode, f.payload, f.used),
            (OP_CLOSE, vec![0x03, 0xEB], 4)
        );
        assert!(parse_server_frame(&[0x82, 0x05, 1])
            .expect("valid")
            .is_none());
    }

    #[test]
    fn packet_length_needs_the_whole_packet() {
        assert_eq!(complete_packet_len(&[0x20, 0x02, 0x00]), None);
        assert_eq!(
            complete_packet_len(&[0x20, 0x02, 0x00, 0x00, 0xD0]),
            Some(4)
        );
    }
}
