//! The worker's own tasks: the inbox (messages from peers), the peer waker (one cross-thread
//! wake-up per batch sent), the command channel (takeover, jobs, shutdown) and the 100 ms timer (delayed wills, offline expiry, metrics flush).

use std::rc::Rc;
use std::time::Instant;

use hubmq_core::ids::SessionIdx;

use super::{Command, ConnHandle, Worker};
use crate::mesh::{CoreMsg, Route};

impl Worker {
    /// Drains the cross-core queues forever.
    pub async fn inbox_task(self: Rc<Self>) {
        let mesh = &self.shared.mesh;
        loop {
            let n = mesh.drain(self.id, 4096, |m| match m {
                CoreMsg::Deliver { to, msg } => match to.route() {
                    Route::Group(group) => self.deliver_local(group, &msg),
                    Route::Topic { hub, exact } => self.eg_deliver_local(hub, exact, &msg),
                },
            });
            if n > 0 {
                // Let the writers flush what this batch queued before taking more.
                crate::io::notify::yield_now().await;
                continue;
            }
            std::future::poll_fn(|cx| {
                mesh.register(self.id, cx.waker());
                if mesh.has_input(self.id) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
        }
    }

    /// Wakes the peers this worker handed messages to, once per batch: it runs when the task
    /// that published (a reader, the REST API, the inbox) yields.
    pub async fn peer_waker_task(self: Rc<Self>) {
        loop {
            self.wake_peers.wait().await;
            self.wake_pending_peers();
        }
    }

    /// Serves cold-path commands from other threads.
    pub async fn command_task(self: Rc<Self>) {
        let rx = self.shared.mesh.commands(self.id);
        while let Ok(cmd) = rx.recv_async().await {
            match cmd {
                Command::Takeover { key, keep, reply } => {
                    let t = self.hand_over(&key, keep);
                    if reply.send(t).is_err() {
                        // The new owner gave up waiting (see `attach`): what it would have
                        // resumed is gone with this answer.
                        tracing::warn!(worker = self.id.0, client = %key.1, "session takeover answered too late; session state dropped");
                    }
                }
                Command::Run(job) => job(&self),
                Command::Shutdown => {
                    self.shutdown_connections();
                    self.accept_gate.stop();
                    self.drain_connections().await;
                    // Returning ends the worker's runtime and thread (see `server::worker_main`).
                    return;
                }
            }
        }
    }

    /// After a shutdown command: waits until every connection closed (their writers flushed
    /// what was queued, DISCONNECT last) or the grace period ran out.
    async fn drain_connections(&self) {
        let deadline = Instant::now() + self.shared.control.grace();
        while self.connections.get() > 0 && Instant::now() < deadline {
            monoio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let left = self.connections.get();
        if left > 0 {
            tracing::warn!(
                worker = self.id.0,
                connections = left,
                "shutdown grace period over; closing anyway"
            );
        }
        self.counters.borrow_mut().flush();
    }

    /// Every 100 ms: expire offline sessions, fire delayed wills; every second flush metrics.
    pub async fn timer_task(self: Rc<Self>) {
        let mut last_flush = 0u64;
        loop {
            monoio::time::sleep(std::time::Duration::from_millis(100)).await;
            self.shared.control.heartbeats.beat(self.id);
            let now = self.now_ms();
            self.tick(now);
            if now >= last_flush + 1000 {
                last_flush = now;
                let queued: usize = self
                    .st
                    .borrow()
                    .slots
                    .iter()
                    .flatten()
                    .filter_map(|s| s.conn.as_ref())
                    .map(|c| c.out_bytes.get())
                    .sum();
                let mut c = self.counters.borrow_mut();
                c.outbound_queue_bytes = queued as i64;
                c.flush();
            }
        }
    }

    /// The timed rules at `now` (broker-clock ms): fires the wills whose delay ran out and
    /// removes the offline sessions whose expiry passed.
    pub(crate) fn tick(&self, now: u64) {
        let mut expired = Vec::new();
        let mut wills = Vec::new();
        {
            let mut st = self.st.borrow_mut();
            for (i, s) in st.slots.iter_mut().enumerate() {
                let Some(s) = s.as_mut() else { continue };
                if matches!(s.pending_will, Some((_, _, at)) if now >= at) {
                    if let Some((m, g, _)) = s.pending_will.take() {
                        wills.push((s.key.0, m, g));
                    }
                }
                if matches!(s.expires_at_ms, Some(at) if now >= at) {
                    expired.push(SessionIdx(i as u32));
                }
            }
        }
        for (hub, m, g) in wills {
            self.publish_in(hub, &g, m);
        }
        for idx in expired {
            tracing::debug!(worker = self.id.0, "offline session expired");
            self.remove_session(idx, now);
        }
    }

    /// Disconnects every client with 0x8B (server shutting down).
    pub fn shutdown_connections(&self) {
        let conns: Vec<Rc<ConnHandle>> = self
            .st
            .borrow()
            .slots
            .iter()
            .flatten()
            .filter_map(|s| s.conn.clone())
            .collect();
        for c in conns {
            c.end(crate::ending::ServerEnd::ShuttingDown);
        }
    }
}
