//! Login throttling: after too many failed logins for one email or from one client address
//! within a window, further attempts are refused until the window has passed. The failures
//! live in the store, so every node behind a load balancer counts the same ones (counted per
//! node, N nodes gave a guesser N times the tries); the decision is pure: the caller passes
//! the failures and the time, so every rule is unit-tested without a clock.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    time::Duration,
};

use super::Timestamp;

pub const MAX_FAILURES: usize = 10;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failures of some keys (`email:…` or `ip:…`), each with its time.
pub type Failures = [(String, Timestamp)];

/// `Some(wait)` when, before the attempt being made at `now`, a key among `failures` had
/// [`MAX_FAILURES`] failures within the window: the attempt is refused without checking
/// the password, and may come back after `wait` (at least a second). `failures` holds the
/// attempt itself too: the store counts each attempt as a failure before its password is
/// checked, so that guesses sent at once see each other (more than the limit at once then
/// refuses some that came first, never lets through more than the limit).
pub fn refused(failures: &Failures, now: Timestamp) -> Option<Duration> {
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

/// How long the person with `email_key` is locked out at `now`: by their email's own
/// failures, or by those of an address their attempts came from (an attempt's rows share
/// its time), which refuses them just the same. `failures` hold the email's and those
/// addresses' failures (the store's [`login_failures`]), without an attempt of `now`.
///
/// [`login_failures`]: crate::store::AccountStore::login_failures
pub fn locked_out(email_key: &str, failures: &Failures, now: Timestamp) -> Option<Duration> {
    let times: HashSet<Timestamp> = failures
        .iter()
        .filter(|(k, _)| k == email_key)
        .map(|(_, at)| *at)
        .collect();
    let mut keys: BTreeSet<&str> = failures
        .iter()
        .filter(|(k, at)| k.starts_with("ip:") && times.contains(at))
        .map(|(k, _)| k.as_str())
        .collect();
    keys.insert(email_key);
    keys.into_iter()
        .filter_map(|k| locked(k, failures, now))
        .max()
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
        // Another email from the same address is refused too; another address for a fresh
        // email is not.
        assert!(refused(&attempt(&failures, &["email:b", "ip:1"], at(10)), at(10)).is_some());
        assert!(refused(&attempt(&failures, &["email:b", "ip:2"], at(10)), at(10)).is_none());
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
    fn a_person_is_locked_out_by_an_address_their_attempts_came_from() {
        let start = Timestamp::from_micros(1_000_000_000_000);
        let at = |s: u64| start.plus(Duration::from_secs(s));
        let mut failures = Vec::new();
        // Five of ann's tries and five at other emails, all from one office address, and
        // one of ann's from home.
        for i in 0..5 {
            failed(&mut failures, &["email:ann", "ip:office"], at(i));
            failed(&mut failures, &["email:bo", "ip:office"], at(10 + i));
        }
        failed(&mut failures, &["email:ann", "ip:home"], at(20));
        let now = at(30);
        assert_eq!(locked("email:ann", &failures, now), None, "six of her own");
        assert_eq!(
            locked_out("email:ann", &failures, now),
            Some(WINDOW - Duration::from_secs(30)),
            "the office address she tried from is locked"
        );
        assert!(locked_out("email:bo", &failures, now).is_some());
        assert_eq!(locked_out("email:cy", &failures, now), None, "no tries");
        // Ann's tries taken back from the office (an unlock): nobody is locked out.
        let unlocked: Vec<_> = failures
            .iter()
            .filter(|(k, t)| k != "email:ann" && !(k == "ip:office" && *t < at(5)))
            .filter(|(k, t)| !(k == "ip:home" && *t == at(20)))
            .cloned()
            .collect();
        assert_eq!(locked_out("email:bo", &unlocked, now), None);
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
