//! Request rate limits per caller: a token bucket per key (a token's or a person's id),
//! refilled continuously. Pure: the caller passes the time.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// Past this many keys, buckets that are full again are forgotten (memory stays bounded).
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: HashMap<String, (f64, Instant)>,
}

impl RateLimiter {
    /// `per_second` 0 means no limit.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Takes one request for `key` at `now`: `Ok` when allowed, else how long until one is.
    pub fn take(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        self.take_at_rate(key, self.per_second, self.burst, now)
    }

    /// The same with a rate and burst of the key's own (a webhook's per-URL limit).
    pub fn take_at_rate(
        &mut self,
        key: &str,
        per_second: f64,
        burst: f64,
        now: Instant,
    ) -> Result<(), Duration> {
        if per_second <= 0.0 {
            return Ok(());
        }
        let burst = burst.max(1.0);
        if self.buckets.len() >= MAX_KEYS && !self.buckets.contains_key(key) {
            let rate = per_second;
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = self.buckets.entry(key.to_owned()).or_insert((burst, now));
        let refilled = now.saturating_duration_since(*at).as_secs_f64() * per_second;
        *tokens = (*tokens + refilled).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_may_have_its_own_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(0, 1);
        assert_eq!(limiter.take("unlimited", start), Ok(()), "0: no limit");
        for _ in 0..4 {
            assert_eq!(limiter.take_at_rate("w\nu", 4.0, 4.0, start), Ok(()));
        }
        assert_eq!(
            limiter.take_at_rate("w\nu", 4.0, 4.0, start),
            Err(Duration::from_millis(250))
        );
        assert_eq!(
            limiter.take_at_rate("w\nu", 4.0, 4.0, start + Duration::from_millis(250)),
            Ok(())
        );
    }

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(2, 3);
        for _ in 0..3 {
            assert_eq!(limiter.take("a", start), Ok(()));
        }
        let wait = limiter.take("a", start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(limiter.take("b", start), Ok(()), "keys are independent");
        assert_eq!(
            limiter.take("a", start + Duration::from_millis(500)),
            Ok(())
        );
        assert!(limiter
            .take("a", start + Duration::from_millis(600))
            .is_err());
        // Refills to the burst, not beyond.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.take("a", later), Ok(()));
        }
        assert!(limiter.take("a", later).is_err());
    }

    #[test]
    fn zero_means_unlimited() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(0, 0);
        assert!((0..10_000).all(|_| limiter.take("a", now).is_ok()));
    }
}
