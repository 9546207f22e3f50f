//! The writer half of a connection: waits for output queued on the connection's
//! `ConnHandle`, encodes everything queued since the last write into one buffer (one binary
//! WebSocket frame on WS), and writes it with one call. This is where batching happens: a fan-out
//! that queued many packets for a connection costs it one write. It owns the socket's write half
//! and nothing else.

use std::rc::Rc;

use bytes::{BufMut, BytesMut};
use hubmq_core::message::Message;
use hubmq_core::mqtt::{self, Packet, ProtocolVersion, PubAck, QoS};
use hubmq_core::rate::TokenBucket;
use hubmq_core::session::OutItem;
use hubmq_metrics::DropReason;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};

use crate::io::ws;
use crate::worker::{ConnHandle, Out, Worker};

/// An outbound rate quota (Event Grid: deliveries per session per second, §7): PUBLISHes over
/// it stay queued until the buckets refill; nothing is dropped for it.
pub(crate) struct Pacer {
    pub messages: TokenBucket,
    pub bytes: TokenBucket,
}

impl Pacer {
    /// `None` when both rates are unlimited (0).
    pub(crate) fn new(messages: u32, bytes: u32, now_ms: u64) -> Option<Pacer> {
        (messages > 0 || bytes > 0).then(|| Pacer {
            messages: TokenBucket::new(u64::from(messages), now_ms),
            bytes: TokenBucket::new(u64::from(bytes), now_ms),
        })
    }

    fn admit(&mut self, cost: usize, now_ms: u64) -> bool {
        self.messages.try_take(1, now_ms) && self.bytes.try_take(cost as u64, now_ms)
    }
}

/// How long a throttled writer waits before trying again.
const PACE_RETRY: std::time::Duration = std::time::Duration::from_millis(5);

/// The writer task: waits for output, encodes everything queued into one buffer (one
/// WebSocket frame on WS), writes it, repeats. Ends after `Out::Close` or a write error.
pub(crate) async fn write_loop<W: AsyncWriteRent>(
    w: Rc<Worker>,
    h: Rc<ConnHandle>,
    mut io: W,
    mut pacer: Option<Pacer>,
) {
    let ws = h.transport.is_ws();
    // Allocated on first use and released after large batches: idle connections hold none.
    let mut wire = BytesMut::new();
    let mut body = BytesMut::new();
    loop {
        if h.out.borrow().is_empty() {
            h.wake_writer.wait().await;
            continue;
        }
        let mut close = false;
        let mut throttled = false;
        {
            let version = h.version.get();
            let max = h.client_max_packet.get() as usize;
            let now = w.now_ms();
            let mut ctr = w.counters.borrow_mut();
            let mut q = h.out.borrow_mut();
            loop {
                if let (Some(p), Some(Out::Item(OutItem::Publish { msg, .. }))) =
                    (pacer.as_mut(), q.front())
                {
                    if !p.admit(msg.cost(), now) {
                        throttled = true;
                        break;
                    }
                }
                let Some(o) = q.pop_front() else { break };
                let target = if ws { &mut body } else { &mut wire };
                match o {
                    Out::Packet(b) => target.extend_from_slice(&b),
                    Out::Item(OutItem::Publish {
                        msg,
                        qos,
                        pkid,
                        dup,
                    }) => {
                        // Keeps the queue estimate honest while a quota holds the rest back
                        // (it is reset to 0 whenever the queue drains).
                        h.out_bytes
                            .set(h.out_bytes.get().saturating_sub(msg.cost()));
                        if encode_delivery(target, &msg, qos, pkid, dup, version, max, now) {
                            ctr.messages_delivered[qos as usize] += 1;
                        } else {
                            ctr.dropped[DropReason::TooLarge.index()] += 1;
                        }
                    }
                    Out::Item(OutItem::PubRel(pkid)) => {
                        mqtt::encode(&Packet::PubRel(PubAck::new(pkid, 0)), version, target);
                    }
                    Out::WsFrame(f) => {
                        frame_into(&mut wire, &mut body);
                        wire.extend_from_slice(&f);
                    }
                    Out::Close => {
                        close = true;
                        break;
                    }
                }
                if wire.len() + body.len() >= 1 << 20 {
                    break;
                }
            }
            if q.is_empty() {
                h.out_bytes.set(0);
            }
        }
        if ws {
            frame_into(&mut wire, &mut body);
        }
        if !wire.is_empty() {
            let n = wire.len();
            let (res, buf) = io.write_all(wire).await;
            wire = buf;
            wire.clear();
            if wire.capacity() > 64 * 1024 {
                wire = BytesMut::new();
            }
            if body.capacity() > 64 * 1024 {
                body = BytesMut::new();
            }
            if res.is_err() {
                h.closing.set(true);
                h.kill.notify();
                return;
            }
            w.counters.borrow_mut().bytes_sent += n as u64;
        }
        if throttled && !close {
            // The rest waits for the quota; the reader side can still end the connection.
            tracing::trace!(conn = h.id, "outbound quota: deliveries delayed");
            w.counters.borrow_mut().deliveries_delayed += 1;
            let kill = h.clone();
            monoio::select! {
                _ = monoio::time::sleep(PACE_RETRY) => {}
                _ = kill.kill.wait() => {}
            }
            if h.closing.get() && h.out.borrow().is_empty() {
                return;
            }
            continue;
        }
        if close {
            if ws && !h.ws_close_sent.get() {
                let mut f = BytesMut::new();
                ws::encode_close(ws::CLOSE_NORMAL, "", &mut f);
                let _ = io.write_all(f).await;
            }
            let _ = io.shutdown().await;
            h.kill.notify();
            return;
        }
    }
}

/// Wraps `body` (MQTT bytes) into one binary WebSocket frame appended to `wire`.
fn frame_into(wire: &mut BytesMut, body: &mut BytesMut) {
    if body.is_empty() {
        return;
    }
    let (hdr, n) = ws::frame_header(ws::Opcode::Binary, body.len());
    wire.extend_from_slice(&hdr[..n]);
    wire.extend_from_slice(body);
    body.clear();
}

/// Appends one PUBLISH for this connection. Uses the message's shared encoding unless the
/// delivery needs its own (DUP, remaining expiry). False when the client's Maximum Packet Size
/// forbids it (the message is then discarded for this client [MQTT-3.1.2-25]).
#[allow(clippy::too_many_arguments)]
fn encode_delivery(
    out: &mut BytesMut,
    msg: &Message,
    qos: QoS,
    pkid: u16,
    dup: bool,
    version: ProtocolVersion,
    max: usize,
    now: u64,
) -> bool {
    let owned;
    let parts = match msg.expires_at_ms {
        Some(at) if version == ProtocolVersion::V5 => {
            // Never more than the publisher asked for, whatever the rounding.
            let original = msg.props.message_expiry.unwrap_or(u32::MAX);
            let remaining = (at.saturating_sub(now).div_ceil(1000) as u32).min(original);
            owned = msg.encode_fresh(version, qos, dup, Some(remaining));
            &owned
        }
        _ if dup => {
            owned = msg.encode_fresh(version, qos, dup, None);
            &owned
        }
        _ => msg.encoded(version, qos),
    };
    let id_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let len = parts.head.len() + id_len + parts.props.len() + parts.payload.len();
    if len > max {
        return false;
    }
    out.reserve(len);
    out.extend_from_slice(&parts.head);
    if id_len > 0 {
        out.put_u16(pkid);
    }
    out.extend_from_slice(&parts.props);
    out.extend_from_slice(&parts.payload);
    true
}
