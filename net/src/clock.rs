//! The broker clock: milliseconds since one process-wide zero, so an instant computed on one
//! worker (a message's expiry, a will's due time) means the same on another. Unit tests run a
//! manual clock instead and move it by hand, so every timed rule (will delay, session expiry,
//! message expiry, quotas) is tested without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub struct Clock {
    epoch: Instant,
    /// Set: a manual clock at this many milliseconds (tests).
    manual: Option<AtomicU64>,
}

impl Clock {
    /// The real monotonic clock, starting at 0 now.
    pub fn real() -> Clock {
        Clock {
            epoch: Instant::now(),
            manual: None,
        }
    }

    /// A clock that only moves when told to.
    #[cfg(test)]
    pub fn manual(start_ms: u64) -> Clock {
        Clock {
            epoch: Instant::now(),
            manual: Some(AtomicU64::new(start_ms)),
        }
    }

    #[inline]
    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(ms) => ms.load(Ordering::Relaxed),
            None => self.epoch.elapsed().as_millis() as u64,
        }
    }

    /// Moves a manual clock forward (no effect on the real one).
    #[cfg(test)]
    pub fn advance(&self, ms: u64) {
        if let Some(m) = &self.manual {
            m.fetch_add(ms, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = Clock::manual(5);
        assert_eq!(c.now_ms(), 5);
        c.advance(995);
        assert_eq!(c.now_ms(), 1000);
    }

    #[test]
    fn the_real_clock_does_not_go_back() {
        let c = Clock::real();
        let a = c.now_ms();
        assert!(c.now_ms() >= a);
        c.advance(10_000);
        assert!(c.now_ms() < 10_000);
    }
}
