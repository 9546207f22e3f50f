//! A connection's clocks without the clock: the deadline for CONNECT, the keep-alive and the
//! expiry of the credentials, as one small state machine. The connection's I/O driver asks it
//! what to wait for (`next`), tells it about traffic and CONNECT with the time it read, and asks
//! which rule ran out when the wait ends. Time is passed in, so every rule is unit-tested.

use std::time::{Duration, Instant};

/// Which clock ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No CONNECT within the connect timeout: closed without an answer.
    Connect,
    /// Nothing received for 1.5 × the keep-alive [MQTT-3.1.2-22].
    KeepAlive,
    /// The token (or a webhook's answer) stopped being valid without a re-authentication.
    Credentials,
}

#[derive(Debug, Clone)]
pub struct ConnTimers {
    /// Until CONNECT is accepted.
    connect_by: Option<Instant>,
    /// After CONNECT: the negotiated keep-alive, `None` for 0 (no keep-alive).
    keep_alive: Option<Duration>,
    /// After CONNECT: when the keep-alive runs out unless something arrives.
    idle_by: Option<Instant>,
    credentials_until: Option<Instant>,
}

impl ConnTimers {
    /// A connection accepted at `now` that must send CONNECT within `connect_timeout`.
    pub fn new(now: Instant, connect_timeout: Duration) -> ConnTimers {
        ConnTimers {
            connect_by: Some(now + connect_timeout),
            keep_alive: None,
            idle_by: None,
            credentials_until: None,
        }
    }

    /// CONNECT accepted at `now` with this keep-alive (seconds; 0 = none).
    pub fn connected(&mut self, now: Instant, keep_alive_secs: u16) {
        self.connect_by = None;
        self.keep_alive =
            (keep_alive_secs > 0).then(|| Duration::from_millis(u64::from(keep_alive_secs) * 1500));
        self.traffic(now);
    }

    /// Bytes arrived at `now`. Before CONNECT they do not extend the connect deadline (a
    /// client trickling a CONNECT in one byte at a time still has to finish in time).
    pub fn traffic(&mut self, now: Instant) {
        if self.connect_by.is_none() {
            self.idle_by = self.keep_alive.map(|k| now + k);
        }
    }

    /// The credentials are valid until `until` (`None`: no expiry, e.g. a certificate).
    pub fn credentials_until(&mut self, until: Option<Instant>) {
        self.credentials_until = until;
    }

    /// The earliest deadline and what it is; `None` when nothing can run out.
    pub fn next(&self) -> Option<(Instant, Expiry)> {
        [
            self.credentials_until.map(|t| (t, Expiry::Credentials)),
            self.connect_by.map(|t| (t, Expiry::Connect)),
            self.idle_by.map(|t| (t, Expiry::KeepAlive)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(t, _)| *t)
    }

    /// What ran out at `now`, if anything. Expired credentials win over a keep-alive that ran
    /// out at the same time: the client is told the reason it can act on.
    pub fn expired(&self, now: Instant) -> Option<Expiry> {
        if self.credentials_until.is_some_and(|t| now >= t) {
            return Some(Expiry::Credentials);
        }
        if self.connect_by.is_some_and(|t| now >= t) {
            return Some(Expiry::Connect);
        }
        if self.idle_by.is_some_and(|t| now >= t) {
            return Some(Expiry::KeepAlive);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn connect_must_arrive_in_time_whatever_trickles_in() {
        let t0 = Instant::now();
        let mut t = ConnTimers::new(t0, 10 * S);
        t.traffic(t0 + 9 * S);
        assert_eq!(t.expired(t0 + 9 * S), None);
        assert_eq!(t.next(), Some((t0 + 10 * S, Expiry::Connect)));
        assert_eq!(t.expired(t0 + 10 * S), Some(Expiry::Connect));
    }

    #[test]
    fn keep_alive_is_one_and_a_half_times_and_traffic_resets_it() {
        let t0 = Instant::now();
        let mut t = ConnTimers::new(t0, 10 * S);
        t.connected(t0 + S, 10);
        assert_eq!(
            t.next(),
            Some((t0 + 16 * S, Expiry::KeepAlive)),
            "[MQTT-3.1.2-22]"
        );
        assert_eq!(t.expired(t0 + 15 * S), None, "the connect deadline is gone");
        t.traffic(t0 + 15 * S);
        assert_eq!(t.expired(t0 + 29 * S), None);
        assert_eq!(t.expired(t0 + 30 * S), Some(Expiry::KeepAlive));
    }

    #[test]
    fn keep_alive_zero_never_runs_out() {
        let t0 = Instant::now();
        let mut t = ConnTimers::new(t0, 10 * S);
        t.connected(t0, 0);
        assert_eq!(t.next(), None);
        assert_eq!(t.expired(t0 + 100_000 * S), None);
    }

    #[test]
    fn credentials_expire_first_and_can_be_renewed() {
        let t0 = Instant::now();
        let mut t = ConnTimers::new(t0, 10 * S);
        t.connected(t0, 60);
        t.credentials_until(Some(t0 + 30 * S));
        assert_eq!(t.next(), Some((t0 + 30 * S, Expiry::Credentials)));
        // AUTH 0x19 with a new token before the old one expired.
        t.credentials_until(Some(t0 + 300 * S));
        assert_eq!(t.next(), Some((t0 + 90 * S, Expiry::KeepAlive)));
        t.traffic(t0 + 89 * S);
        t.traffic(t0 + 178 * S);
        t.traffic(t0 + 267 * S);
        assert_eq!(t.expired(t0 + 300 * S), Some(Expiry::Credentials));
    }

    #[test]
    fn at_the_same_instant_credentials_win() {
        let t0 = Instant::now();
        let mut t = ConnTimers::new(t0, 10 * S);
        t.connected(t0, 10);
        t.credentials_until(Some(t0 + 15 * S));
        assert_eq!(t.expired(t0 + 15 * S), Some(Expiry::Credentials));
    }
}
