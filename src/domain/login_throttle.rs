//! Login throttling: after too many failed logins for one email within a window, further
//! attempts for it are refused until the window has passed; too many from one client
//! address only slow that address's attempts down. An address is often many people (an
//! office, everyone behind a reverse proxy): refusing it let ten made-up emails lock an
//! owner out of their own account. The per-email limit is what stops a guesser at one
//! account; the delay makes spraying many accounts from one address slow. The failures live
//! in the store, so every node behind a load balancer counts the same ones (counted per
//! node, N nodes gave a guesser N times the tries); the decision is pure: the caller passes
//! the failures and the time, so every rule is unit-tested without a clock.

use std::{collections::HashMap, time::Duration};

use super::Timestamp;

pub const MAX_FAILURES: usize = 10;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// What each failure from one address past [`MAX_FAILURES`] adds to the wait before that
/// address's next attempt is checked, up to [`MAX_ADDRESS_DELAY`].
pub const ADDRESS_STEP: Duration = Duration::from_millis(250);
pub const MAX_ADDRESS_DELAY: Duration = Duration::from_secs(5);

/// What to do with a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password now.
    Check,
    /// Check it after this wait: the client address has failed too often lately.
    Slowed(Duration),
    /// Refuse without a look at the password: the email has failed too often lately; it may
    /// come back after the wait.
    Refused(Duration),
}

/// The verdict on an attempt for `email_key` at `now`, given the failures of that email and
/// of the client address (`ip:…`), the attempt itself included (see [`refused`]).
pub fn judge(failures: &Failures, email_key: &str, now: Timestamp) -> Verdict {
    let (email, address): (Vec<_>, Vec<_>) =
        failures.iter().cloned().partition(|(k, _)| k == email_key);
    if let Some(wait) = refused(&email, now) {
        return Verdict::Refused(wait);
    }
    let since = now.minus(WINDOW);
    let mut by_address: HashMap<&str, usize> = HashMap::new();
    for (key, _) in address
        .iter()
        .filter(|(k, at)| k.starts_with("ip:") && *at > since)
    {
        *by_address.entry(key).or_default() += 1;
    }
    match by_address.into_values().max() {
        Some(n) if n > MAX_FAILURES => {
            Verdict::Slowed((ADDRESS_STEP * (n - MAX_FAILURES) as u32).min(MAX_ADDRESS_DELAY))
        }
        _ => Verdict::Check,
    }
}

/// Failures of some keys (`email:…` or `ip:…`), each with its time.
pub type Failures = [(String, Timestamp)];

/// `Some(wait)` when, before the attempt being made at `now`, a key among `failures` had
/// [`MAX_FAILURES`] failures within the window: the attempt is refused without checking
/// the password, and may come back after `wait` (at least a second). `failures` holds the
/// attempt itself too: the store counts each attempt as a failure before its password is
/// checked, so that guesses sent at once see each other (more than the limit at once then
/// refuses some that came first, never lets through more than the limit).
fn refused(failures: &Failures, now: Timestamp) -> Option<Duration> {
    let since = now.minus(WINDOW);
    let mut by_key: HashMap<&str, Vec<Timestamp>> = HashMap::new();
    for (key, at) in failures.iter().filter(|(_, at)| *at > since) {
        by_key.entry(key).or_default().push(*at);
    }
    by_key
        .into_values()
        .filter(|times| times.len() > MAX_FAILURES)
        .map(|mut times| {
            times.sort_unstable();
            // The failure whose leaving the window leaves the limit's worth before an
            // attempt made then.
            let leaving = times[times.len() - 1 - MAX_FAILURES];
            let micros = leaving.plus(WINDOW).as_micros() - now.as_micros();
            Duration::from_micros(micros.max(0) as u64)
        })
        .max()
        .map(|wait| wait.max(Duration::from_secs(1)))
}

/// The key an email's failures are counted under.
pub fn email_key(email: &str) -> String {
    format!("email:{}", super::user::email_key(email))
}

/// The key a client address's failures are counted under (`ip:` is what the store pairs
/// an email's attempts with, see `AccountStore::login_failures`).
pub fn address_key(ip: std::net::IpAddr) -> String {
    format!("ip:{ip}")
}

/// `Some(wait)` when `key` is locked at `now`: an attempt made then would be refused, and
/// may come back after `wait`. `failures` are the store's, without an attempt of `now`
/// (what an owner sees on the users page: the rule of [`refused`], asked without trying).
pub fn locked(key: &str, failures: &Failures, now: Timestamp) -> Option<Duration> {
    let mut with_attempt: Vec<(String, Timestamp)> =
        failures.iter().filter(|(k, _)| k == key).cloned().collect();
    with_attempt.push((key.to_owned(), now));
    refused(&with_attempt, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(failures: &mut Vec<(String, Timestamp)>, keys: &[&str], at: Timestamp) {
        failures.extend(keys.iter().map(|k| ((*k).to_owned(), at)));
    }

    /// The failures of `keys` with an attempt at `at` added, as the store returns them.
    fn attempt(
        failures: &[(String, Timestamp)],
        keys: &[&str],
        at: Timestamp,
    ) -> Vec<(String, Timestamp)> {
        let mut seen: Vec<(String, Timestamp)> = failures
            .iter()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .cloned()
            .collect();
        failed(&mut seen, keys, at);
        seen
    }

    #[test]
    fn ten_failures_lock_the_key_until_the_window_passes() {
        let start = Timestamp::from_micros(1_000_000_000_000);
        let at = |s: u64| start.plus(Duration::from_secs(s));
        let mut failures = Vec::new();
        for i in 0..9 {
            failed(&mut failures, &["email:a", "ip:1"], at(i));
        }
        assert_eq!(
            refused(&attempt(&failures, &["email:a", "ip:1"], at(9)), at(9)),
            None
        );
        failed(&mut failures, &["email:a", "ip:1"], at(9));
        let wait = refused(&attempt(&failures, &["email:a"], at(10)), at(10)).expect("locked");
        assert_eq!(wait, WINDOW - Duration::from_secs(10));
        assert!(matches!(
            judge(
                &attempt(&failures, &["email:a", "ip:2"], at(10)),
                "email:a",
                at(10)
            ),
            Verdict::Refused(_)
        ));
        // Another email from the same address is only slowed; from another address, not even.
        assert_eq!(
            judge(
                &attempt(&failures, &["email:b", "ip:1"], at(10)),
                "email:b",
                at(10)
            ),
            Verdict::Slowed(ADDRESS_STEP)
        );
        assert_eq!(
            judge(
                &attempt(&failures, &["email:b", "ip:2"], at(10)),
                "email:b",
                at(10)
            ),
            Verdict::Check
        );
        // Once the first failure leaves the window, nine remain: allowed again.
        let later = start.plus(WINDOW);
        assert!(refused(&attempt(&failures, &["email:a"], later), later).is_none());
    }

    #[test]
    fn the_wait_is_for_the_tenth_latest_failure_and_at_least_a_second() {
        let start = Timestamp::from_micros(1_000_000_000_000);
        let mut failures = Vec::new();
        // Twelve failures a minute apart, in no particular order.
        for i in (0..12).rev() {
            failed(
                &mut failures,
                &["email:a"],
                start.plus(Duration::from_secs(60 * i)),
            );
        }
        let now = start.plus(Duration::from_secs(60 * 12));
        // The tenth latest is at minute 2: it leaves the window at minute 17.
        assert_eq!(
            refused(&attempt(&failures, &["email:a"], now), now),
            Some(Duration::from_secs(5 * 60))
        );
        let just_before = start
            .plus(WINDOW)
            .plus(Duration::from_secs(2 * 60))
            .minus(Duration::from_millis(1));
        assert_eq!(
            refused(&attempt(&failures, &["email:a"], just_before), just_before),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_key_is_locked_while_an_attempt_would_be_refused() {
        let start = Timestamp::from_micros(1_000_000_000_000);
        let at = |s: u64| start.plus(Duration::from_secs(s));
        let mut failures = Vec::new();
        for i in 0..9 {
            failed(&mut failures, &["email:a", "ip:1"], at(i));
        }
        // Nine failures: the tenth attempt is still allowed, so not locked.
        assert_eq!(locked("email:a", &failures, at(9)), None);
        failed(&mut failures, &["email:a", "ip:1"], at(9));
        // Ten: locked until the first leaves the window; another key is not.
        assert_eq!(
            locked("email:a", &failures, at(10)),
            Some(WINDOW - Duration::from_secs(10))
        );
        assert_eq!(locked("email:b", &failures, at(10)), None);
        // The address's failures do not lock the email, only its own.
        let address_only: Vec<_> = failures
            .iter()
            .filter(|(k, _)| k == "ip:1")
            .cloned()
            .collect();
        assert_eq!(locked("email:a", &address_only, at(10)), None);
        assert!(locked("ip:1", &address_only, at(10)).is_some());
        assert_eq!(locked("email:a", &failures, start.plus(WINDOW)), None);
        assert_eq!(email_key("  Ann@Example.COM "), "email:ann@example.com");
    }

    #[test]
    fn an_address_over_the_limit_is_slowed_never_refused() {
        let start = Timestamp::from_micros(1_000_000_000_000);
        let at = |s: u64| start.plus(Duration::from_secs(s));
        let mut failures = Vec::new();
        // Ten made-up emails from one office address (behind one proxy, everyone's).
        for i in 0..10 {
            let email = format!("email:made-up-{i}");
            failed(&mut failures, &[email.as_str(), "ip:office"], at(i));
        }
        // The owner's own attempt from there: checked, a little later, never refused.
        let own = attempt(&failures, &["email:owner", "ip:office"], at(20));
        assert_eq!(
            judge(&own, "email:owner", at(20)),
            Verdict::Slowed(ADDRESS_STEP)
        );
        // A sprayer keeps going: each failure past the limit adds a step, up to the most.
        for i in 0..40 {
            let email = format!("email:more-{i}");
            failed(&mut failures, &[email.as_str(), "ip:office"], at(30 + i));
        }
        let next = attempt(&failures, &["email:owner", "ip:office"], at(80));
        assert_eq!(
            judge(&next, "email:owner", at(80)),
            Verdict::Slowed(MAX_ADDRESS_DELAY)
        );
        // Another address, and the same one once the window has passed, go at once.
        let home = attempt(&failures, &["email:owner", "ip:home"], at(80));
        assert_eq!(judge(&home, "email:owner", at(80)), Verdict::Check);
        let later = start.plus(WINDOW).plus(Duration::from_secs(80));
        let quiet = attempt(&failures, &["email:owner", "ip:office"], later);
        assert_eq!(judge(&quiet, "email:owner", later), Verdict::Check);
        // The email's own limit still refuses, whatever the address.
        let mut own_failures = Vec::new();
        for i in 0..10 {
            failed(&mut own_failures, &["email:owner", "ip:home"], at(i));
        }
        let eleventh = attempt(&own_failures, &["email:owner", "ip:home"], at(11));
        assert!(matches!(
            judge(&eleventh, "email:owner", at(11)),
            Verdict::Refused(_)
        ));
    }

    #[test]
    fn guesses_sent_at_once_see_each_other() {
        let now = Timestamp::from_micros(1_000_000_000_000);
        let mut failures = Vec::new();
        for _ in 0..5 {
            failed(
                &mut failures,
                &["email:a"],
                now.minus(Duration::from_secs(60)),
            );
        }
        // Six more at once, each counted before any password is checked: every one of them
        // sees eleven, so none goes through (five of them would have been allowed one at a
        // time, but never more than the limit).
        for _ in 0..6 {
            failed(&mut failures, &["email:a"], now);
        }
        assert!(refused(&failures, now).is_some());
    }
}
