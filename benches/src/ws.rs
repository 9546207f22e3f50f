//! Client side of RFC 6455, as small as a benchmark needs: the HTTP upgrade request and its
//! answer check, masked binary frames out, and an incremental de-framer for what the server sends
//! (unmasked binary/continuation frames whose payloads are streamed into the MQTT buffer, plus
//! ping/pong/close). Extensions are never offered, so there is nothing to negotiate.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::fmt;

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// WebSocket failures (handshake or framing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// The server did not answer 101; carries the status line and the start of the body.
    UpgradeRefused(String),
    /// The 101 answer was malformed or its accept key did not match ours.
    BadHandshake(&'static str),
    /// A frame a server must not send (masked, text, reserved bits, bad control frame).
    BadFrame(&'static str),
    /// The server sent a close frame with this status code (0 when none).
    Closed(u16),
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::UpgradeRefused(s) => write!(f, "WebSocket upgrade refused: {s}"),
            WsError::BadHandshake(s) => write!(f, "bad WebSocket handshake answer: {s}"),
            WsError::BadFrame(s) => write!(f, "bad WebSocket frame from server: {s}"),
            WsError::Closed(c) => write!(f, "server closed the WebSocket (code {c})"),
        }
    }
}

impl std::error::Error for WsError {}

/// `Sec-WebSocket-Accept` for a given `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(GUID);
    B64.encode(ctx.finish().as_ref())
}

/// A `Sec-WebSocket-Key` made from a per-connection seed (uniqueness, not secrecy, matters).
pub fn client_key(seed: u64) -> String {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&seed.to_le_bytes());
    raw[8..].copy_from_slice(
        &seed
            .rotate_left(29)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .to_le_bytes(),
    );
    B64.encode(raw)
}

/// The HTTP/1.1 upgrade request offering subprotocol `mqtt`.
pub fn upgrade_request(host: &str, path_and_query: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    )
    .into_bytes()
}

/// Checks the server's answer. `Ok(None)`: headers not complete yet; `Ok(Some(n))`: the
/// answer is a valid 101 and took `n` bytes (anything after it is already WebSocket data).
pub fn check_upgrade_response(buf: &[u8], key: &str) -> Result<Option<usize>, WsError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 16 * 1024 {
            return Err(WsError::BadHandshake("headers longer than 16 KiB"));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end])
        .map_err(|_| WsError::BadHandshake("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let code = status.split(' ').nth(1).unwrap_or("");
    if code != "101" {
        // Show the reason (e.g. hubmq's 401 body says why the token was refused).
        let body = String::from_utf8_lossy(&buf[end + 4..]);
        let body: String = body.chars().take(200).collect();
        return Err(WsError::UpgradeRefused(
            format!("{status} {body}").trim().to_string(),
        ));
    }
    let want = accept_key(key);
    let mut accept_ok = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("sec-websocket-accept") {
                accept_ok = value.trim() == want;
            }
        }
    }
    if !accept_ok {
        return Err(WsError::BadHandshake(
            "missing or wrong Sec-WebSocket-Accept",
        ));
    }
    Ok(Some(end + 4))
}

/// Appends one masked, final, binary frame carrying `payload`.
pub fn encode_masked_binary(out: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    out.push(0x82); // FIN + binary
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    // Mask 8 bytes at a time; the mask repeats every 4 bytes so an 8-byte word is two copies.
    let m = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let body = &mut out[start..];
    let mut chunks = body.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ m).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Appends a masked control frame (pong or close).
pub fn encode_masked_control(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    out.push(0x80 | payload.len().min(125) as u8);
    out.extend_from_slice(&mask);
    for (i, b) in payload.iter().take(125).enumerate() {
        out.push(b ^ mask[i & 3]);
    }
}

/// Incremental de-framer for server → client frames.
#[derive(Debug, Default)]
pub struct Deframer {
    /// Payload bytes of the current data frame not yet seen.
    remaining: u64,
    /// Payload of the last ping, to be answered with a pong by whoever owns the writer.
    pub pending_pong: Option<Vec<u8>>,
}

impl Deframer {
    /// Consumes as much of `raw` as possible, appending data-frame payloads to `out`.
    /// Returns how many bytes of `raw` were used; the rest is an incomplete header or control
    /// frame to keep for the next call.
    pub fn unframe(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Result<usize, WsError> {
        let mut pos = 0;
        while pos < raw.len() {
            if self.remaining > 0 {
                let n = (raw.len() - pos).min(self.remaining.min(usize::MAX as u64) as usize);
                out.extend_from_slice(&raw[pos..pos + n]);
                pos += n;
                self.remaining -= n as u64;
                continue;
            }
            let rest = &raw[pos..];
            let [b0, b1, ..] = *rest else { break };
            if b0 & 0x70 != 0 {
                return Err(WsError::BadFrame("reserved bits set"));
            }
            if b1 & 0x80 != 0 {
                return Err(WsError::BadFrame("server frame is masked"));
            }
            let (len, hdr) = match b1 & 0x7f {
                126 => match rest.get(2..4) {
                    Some(b) => (u16::from_be_bytes([b[0], b[1]]) as u64, 4),
                    None => break,
                },
                127 => match rest.get(2..10) {
                    Some(b) => {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(b);
                        (u64::from_be_bytes(a), 10)
                    }
                    None => break,
                },
                l => (l as u64, 2),
            };
            let opcode = b0 & 0x0f;
            match opcode {
                0 | 2 => {
                    pos += hdr;
                    self.remaining = len;
                }
                1 => return Err(WsError::BadFrame("text frame")),
                8..=10 => {
                    if len > 125 || b0 & 0x80 == 0 {
                        return Err(WsError::BadFrame("oversized or fragmented control frame"));
                    }
                    let Some(payload) = rest.get(hdr..hdr + len as usize) else {
                        break;
                    };
                    match opcode {
                        8 => {
                            let code = match payload {
                                [a, b, ..] => u16::from_be_bytes([*a, *b]),
                                _ => 0,
                            };
                            return Err(WsError::Closed(code));
                        }
                        9 => self.pending_pong = Some(payload.to_vec()),
                        _ => {} // unsolicited pong: ignore
                    }
                    pos += hdr + len as usize;
                }
                _ => return Err(WsError::BadFrame("unknown opcode")),
            }
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn upgrade_request_offers_mqtt_subprotocol() {
        let r = String::from_utf8(upgrade_request("127.0.0.1:8080", "/x?a=1", "k")).unwrap();
        assert!(r.starts_with("GET /x?a=1 HTTP/1.1\r\n"));
        assert!(r.contains("Sec-WebSocket-Protocol: mqtt\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn accepts_valid_101_and_reports_leftover_offset() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\
                     sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x82\x00";
        let n = check_upgrade_response(resp, key).unwrap().unwrap();
        assert_eq!(&resp[n..], b"\x82\x00");
        assert_eq!(check_upgrade_response(&resp[..20], key), Ok(None));
    }

    #[test]
    fn reports_refused_upgrade_with_body() {
        let resp = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 7\r\n\r\nexpired";
        match check_upgrade_response(resp, "k") {
            Err(WsError::UpgradeRefused(s)) => assert!(s.contains("401") && s.contains("expired")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_wrong_accept_key() {
        let resp = b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert!(matches!(
            check_upgrade_response(resp, "k"),
            Err(WsError::BadHandshake(_))
        ));
    }

    fn unmask(frame: &[u8]) -> Vec<u8> {
        let (mask_at, len) = match frame[1] & 0x7f {
            126 => (4, u16::from_be_bytes([frame[2], frame[3]]) as usize),
            l => (2, l as usize),
        };
        let mask = &frame[mask_at..mask_at + 4];
        frame[mask_at + 4..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i & 3])
            .collect::<Vec<_>>()[..len]
            .to_vec()
    }

    #[test]
    fn masks_small_and_medium_binary_frames() {
        for len in [0usize, 5, 8, 13, 125, 126, 300] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            encode_masked_binary(&mut out, &payload, [1, 2, 3, 4]);
            assert_eq!(out[0], 0x82);
            assert!(out[1] & 0x80 != 0, "client frames are masked");
            assert_eq!(unmask(&out), payload, "len {len}");
        }
    }

    #[test]
    fn deframer_streams_payload_across_reads() {
        let mut wire = vec![0x82, 126, 0x01, 0x00]; // 256-byte binary frame
        wire.extend((0..=255u8).collect::<Vec<_>>());
        wire.extend([0x82, 2, b'a', b'b']);
        let mut d = Deframer::default();
        let mut out = Vec::new();
        let mut kept: Vec<u8> = Vec::new();
        // Feed one byte at a time, keeping what the de-framer did not use.
        for b in wire {
            kept.push(b);
            let used = d.unframe(&kept, &mut out).unwrap();
            kept.drain(..used);
        }
        assert!(kept.is_empty());
        assert_eq!(out.len(), 258);
        assert_eq!(&out[256..], b"ab");
    }

    #[test]
    fn deframer_handles_ping_and_close() {
        let mut d = Deframer::default();
        let mut out = Vec::new();
        let used = d
            .unframe(&[0x89, 1, b'p', 0x82, 1, b'x'], &mut out)
            .unwrap();
        assert_eq!(used, 6);
        assert_eq!(d.pending_pong.as_deref(), Some(&b"p"[..]));
        assert_eq!(out, b"x");
        assert_eq!(
            d.unframe(&[0x88, 2, 0x03, 0xe8], &mut out),
            Err(WsError::Closed(1000))
        );
    }

    #[test]
    fn deframer_rejects_masked_and_text_frames() {
        let mut d = Deframer::default();
        let mut out = Vec::new();
        assert!(matches!(
            d.unframe(&[0x82, 0x81, 0, 0, 0, 0, 1], &mut out),
            Err(WsError::BadFrame(_))
        ));
        assert!(matches!(
            d.unframe(&[0x81, 1, b'a'], &mut out),
            Err(WsError::BadFrame(_))
        ));
    }
}
