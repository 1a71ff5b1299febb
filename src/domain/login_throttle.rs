//! Login throttling: after too many failed logins for one email or from one client address
//! within a window, further attempts are refused until the window has passed. Pure: the
//! caller passes the time, so every rule is unit-tested without a clock.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

pub const MAX_FAILURES: usize = 10;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Past this many tracked keys the oldest quiet ones are dropped; memory stays bounded
/// even when an attacker invents addresses.
const MAX_KEYS: usize = 100_000;

/// Failures per key (`email:…` or `ip:…`), oldest first, each within the window.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: HashMap<String, VecDeque<Instant>>,
}

impl LoginThrottle {
    /// `Some(wait)` when any of `keys` has had [`MAX_FAILURES`] failures within the window:
    /// the attempt is refused without checking the password, and may come back after `wait`.
    pub fn refused(&mut self, keys: &[&str], now: Instant) -> Option<Duration> {
        keys.iter()
            .filter_map(|key| {
                let list = self.failures.get_mut(*key)?;
                prune(list, now);
                (list.len() >= MAX_FAILURES).then(|| {
                    let oldest = list[list.len() - MAX_FAILURES];
                    (oldest + WINDOW).saturating_duration_since(now)
                })
            })
            .max()
            .map(|wait| wait.max(Duration::from_secs(1)))
    }

    pub fn record_failure(&mut self, keys: &[&str], now: Instant) {
        if self.failures.len() >= MAX_KEYS {
            self.failures.retain(|_, list| {
                prune(list, now);
                !list.is_empty()
            });
            if self.failures.len() >= MAX_KEYS {
                self.failures.clear();
            }
        }
        for key in keys {
            let list = self.failures.entry((*key).to_owned()).or_default();
            prune(list, now);
            list.push_back(now);
            // Only the last MAX_FAILURES matter for the decision.
            while list.len() > MAX_FAILURES {
                list.pop_front();
            }
        }
    }

    /// A successful login clears its email's failures (not the address's: one good
    /// password must not reset a guesser's count for other accounts).
    pub fn record_success(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

fn prune(list: &mut VecDeque<Instant>, now: Instant) {
    while list
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        list.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_lock_the_key_until_the_window_passes() {
        let start = Instant::now();
        let mut t = LoginThrottle::default();
        for i in 0..9 {
            t.record_failure(&["email:a", "ip:1"], start + Duration::from_secs(i));
        }
        assert_eq!(
            t.refused(&["email:a", "ip:1"], start + Duration::from_secs(9)),
            None
        );
        t.record_failure(&["email:a", "ip:1"], start + Duration::from_secs(9));
        let wait = t
            .refused(&["email:a"], start + Duration::from_secs(10))
            .expect("locked");
        assert_eq!(wait, WINDOW - Duration::from_secs(10));
        // Another email from the same address is refused too; another address for a fresh
        // email is not.
        assert!(t
            .refused(&["email:b", "ip:1"], start + Duration::from_secs(10))
            .is_some());
        assert!(t
            .refused(&["email:b", "ip:2"], start + Duration::from_secs(10))
            .is_none());
        // Once the first failure leaves the window, nine remain: allowed again.
        assert!(t.refused(&["email:a"], start + WINDOW).is_none());
    }

    #[test]
    fn success_clears_the_email_but_not_the_address() {
        let now = Instant::now();
        let mut t = LoginThrottle::default();
        for _ in 0..10 {
            t.record_failure(&["email:a", "ip:1"], now);
        }
        t.record_success("email:a");
        assert!(t.refused(&["email:a"], now).is_none());
        assert!(t.refused(&["ip:1"], now).is_some());
    }

    #[test]
    fn memory_stays_bounded() {
        let now = Instant::now();
        let mut t = LoginThrottle::default();
        for i in 0..(MAX_KEYS + 10) {
            t.record_failure(&[&format!("ip:{i}")], now);
        }
        assert!(t.failures.len() <= MAX_KEYS);
    }
}
