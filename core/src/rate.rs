//! Token buckets for rate quotas (Event Grid §7: publishes, bytes, SUBSCRIBEs and CONNECTs per
//! second). Sans-I/O: the caller passes the time. A bucket holds at most one second's worth of
//! tokens (the burst) and refills continuously; a rate of 0 means "no limit".
//!
//! Tokens are kept in millionths so integer arithmetic refills exactly at any rate up to
//! billions per second without drift.

/// Millionths of a token per token.
const SCALE: u64 = 1_000_000;

/// A refilling allowance of `rate` units per second, bursting up to one second's worth.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Units per second; 0 = unlimited.
    rate: u64,
    /// Available, in millionths of a unit.
    micros: u64,
    /// Last refill, milliseconds on the caller's clock.
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket of `rate` units per second (0 = unlimited) at time `now_ms`.
    pub fn new(rate: u64, now_ms: u64) -> TokenBucket {
        TokenBucket {
            rate,
            micros: rate.saturating_mul(SCALE),
            last_ms: now_ms,
        }
    }

    pub fn unlimited() -> TokenBucket {
        TokenBucket::new(0, 0)
    }

    pub fn is_unlimited(&self) -> bool {
        self.rate == 0
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        if elapsed == 0 {
            return;
        }
        self.last_ms = now_ms;
        // rate units/s = rate * SCALE / 1000 micros per ms.
        let add = self
            .rate
            .saturating_mul(SCALE / 1000)
            .saturating_mul(elapsed);
        let cap = self.rate.saturating_mul(SCALE);
        self.micros = self.micros.saturating_add(add).min(cap);
    }

    /// Takes `n` units if available; false (nothing taken) otherwise. A single request larger
    /// than the whole burst is allowed once the bucket is full, so one big message can pass
    /// an otherwise idle limit rather than never.
    pub fn try_take(&mut self, n: u64, now_ms: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        self.refill(now_ms);
        let want = n.saturating_mul(SCALE);
        let cap = self.rate.saturating_mul(SCALE);
        if want <= self.micros {
            self.micros -= want;
            true
        } else if want > cap && self.micros == cap {
            self.micros = 0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_always_allows() {
        let mut b = TokenBucket::new(0, 0);
        assert!(b.is_unlimited());
        assert!((0..10_000).all(|_| b.try_take(1_000_000, 0)));
    }

    #[test]
    fn a_full_bucket_allows_one_seconds_burst_then_refuses() {
        let mut b = TokenBucket::new(5, 1000);
        assert!((0..5).all(|_| b.try_take(1, 1000)));
        assert!(!b.try_take(1, 1000));
        assert!(!b.try_take(1, 1100), "100 ms buys half a token at 5/s");
        assert!(b.try_take(1, 1200), "200 ms buys one");
        assert!(!b.try_take(1, 1200));
    }

    #[test]
    fn refill_is_capped_at_the_burst() {
        let mut b = TokenBucket::new(3, 0);
        assert!((0..3).all(|_| b.try_take(1, 0)));
        // An hour idle refills to 3, not 10,800.
        assert!((0..3).all(|_| b.try_take(1, 3_600_000)));
        assert!(!b.try_take(1, 3_600_000));
    }

    #[test]
    fn byte_budgets_take_many_units_at_once() {
        let mut b = TokenBucket::new(1000, 0);
        assert!(b.try_take(600, 0));
        assert!(!b.try_take(600, 0));
        assert!(b.try_take(600, 200), "200 ms add 200 to the 400 left");
    }

    #[test]
    fn an_oversized_request_passes_only_a_full_bucket() {
        let mut b = TokenBucket::new(100, 0);
        assert!(
            b.try_take(500, 0),
            "full bucket: one oversized request passes"
        );
        assert!(!b.try_take(500, 500), "half full: refused");
        assert!(b.try_take(500, 2000), "full again");
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let mut b = TokenBucket::new(1, 5000);
        assert!(b.try_take(1, 5000));
        assert!(!b.try_take(1, 1000));
        assert!(!b.try_take(1, 5500));
        assert!(b.try_take(1, 6000));
    }
}
