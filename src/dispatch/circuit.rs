//! A circuit breaker per URL: after a run of failures the URL gets one probe at a time,
//! spaced by a growing cool-down, instead of one attempt per waiting delivery. Pure state
//! transitions over explicit times, so they are tested without a clock. Each node keeps its
//! own; the store's `circuits` rows make them agree across nodes (the engine adopts a
//! circuit another node opened, closes one another node's probe closed, and takes the time
//! of the next probe from the row: the book decides what to write and what a claim's
//! answer means, and `cluster.rs` carries it out).

use std::time::Duration;

use super::send::Outcome;
use crate::domain::Timestamp;

/// Consecutive failures that open the circuit.
pub const FAILURES_TO_OPEN: u32 = 5;
/// A probe time this far ahead was written under a wall clock since stepped back (no
/// cool-down is that long; the margin covers nodes' clocks a little apart).
const STALE_AFTER: Duration = Duration::from_secs(150);
/// The first cool-down; each failed probe doubles it, up to [`MAX_COOLDOWN`].
pub const FIRST_COOLDOWN: Duration = Duration::from_secs(1);
pub const MAX_COOLDOWN: Duration = Duration::from_secs(30);
/// A node that lost the probe to another asks again at least this often, in case that
/// node is gone (its claim runs out after `delivery.lease`).
pub const PROBE_RECHECK: Duration = Duration::from_millis(100);
/// A timeout that fired this much later than it was set for means the node itself stood
/// still (a pause, a VM stall), not that the URL hung.
const STALL_SLACK: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq)]
pub struct Circuit {
    failures: u32,
    /// Set while open; from this time on one probe may go.
    open_until: Option<Timestamp>,
    cooldown: Duration,
    probing: bool,
    /// When it opened (here, or when adopted from another node).
    opened_at: Option<Timestamp>,
}

impl Default for Circuit {
    fn default() -> Self {
        Self {
            failures: 0,
            open_until: None,
            cooldown: FIRST_COOLDOWN,
            probing: false,
            opened_at: None,
        }
    }
}

/// What to do with a delivery to this URL now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Closed: send.
    Send,
    /// The cool-down is over: send this one as the probe; others wait for its answer.
    Probe,
    /// Open, or a probe is out: park it.
    Hold,
}

/// How an attempt went, as far as the URL's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Delivered, or answered in a way retrying cannot change (a 4xx): the URL is up.
    Answered,
    /// Refused, timed out, 5xx, 429: the URL is failing.
    Failing,
    /// Says nothing about the URL (the address was refused by tocsin's own policy).
    Unknown,
}

impl Health {
    /// What an attempt, allowed `timeout`, says about its URL. One that timed out long
    /// after its timeout says nothing: the node was paused, and on waking every call in
    /// flight timed out at once — which opened a healthy URL's circuit.
    pub fn of(outcome: &Outcome, timeout: Duration) -> Health {
        let took = Duration::from_millis(outcome.attempt.duration_ms);
        match outcome.attempt.response_status {
            _ if outcome.succeeded => Health::Answered,
            _ if outcome.timed_out && took > timeout + STALL_SLACK => Health::Unknown,
            Some(429) => Health::Failing,
            Some(status) if status >= 500 => Health::Failing,
            Some(_) => Health::Answered,
            None if outcome.retryable => Health::Failing,
            None => Health::Unknown,
        }
    }
}

impl Circuit {
    /// Whether the circuit is open or half-open: new deliveries to the URL are parked.
    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }

    /// Healthy and forgotten: nothing worth keeping for this URL.
    pub fn is_pristine(&self) -> bool {
        *self == Circuit::default()
    }

    /// When a probe may go, if the circuit is open and none is out.
    pub fn probe_due(&self) -> Option<Timestamp> {
        self.open_until.filter(|_| !self.probing)
    }

    /// Decides for one delivery about to be sent at `now`.
    pub fn gate(&mut self, now: Timestamp) -> Gate {
        match self.open_until {
            None => Gate::Send,
            Some(until) if now >= until && !self.probing => {
                self.probing = true;
                Gate::Probe
            }
            Some(_) => Gate::Hold,
        }
    }

    /// A probe that could not go (nothing to send): another may be tried.
    pub fn probe_abandoned(&mut self) {
        self.probing = false;
    }

    /// The next probe goes at `at`, not before (another node probes meanwhile, or the
    /// cluster's cool-down says so). A time further ahead than any cool-down (and a margin)
    /// was written under a wall clock since stepped back: the probe is due now, and the store's
    /// claim decides whether it goes. (Clamping it instead would push the probe out again
    /// at every read of the cluster's circuits.) Opens the circuit if it was closed.
    pub fn defer(&mut self, at: Timestamp, now: Timestamp) {
        if !self.is_open() {
            self.failures = self.failures.max(FAILURES_TO_OPEN);
            self.opened_at = Some(now);
        }
        let stale = at > now.plus(STALE_AFTER);
        self.open_until = Some(if stale { now } else { at });
        self.probing = false;
    }

    /// Another node opened the URL's circuit: deliveries wait here too, and the next probe
    /// goes at `probe_at`. A probe of this node's in flight keeps its slot.
    pub fn adopt(&mut self, probe_at: Timestamp, now: Timestamp) {
        if !self.probing {
            self.defer(probe_at, now);
        }
    }

    /// The cluster holds no open circuit for the URL as read at `read_at`: another node's
    /// probe was answered. Closes this one unless it opened after the read (its row may not
    /// have been written yet) or its own probe is out. True when it closed.
    pub fn closed_elsewhere(&mut self, read_at: Timestamp) -> bool {
        let opened_before_read = self.opened_at.is_some_and(|at| at < read_at);
        if self.is_open() && opened_before_read && !self.probing {
            *self = Circuit::default();
            true
        } else {
            false
        }
    }

    /// Takes an attempt's result; true when it closed the circuit (parked work may flow).
    pub fn record(&mut self, health: Health, was_probe: bool, now: Timestamp) -> bool {
        match health {
            Health::Unknown => {
                if was_probe {
                    self.probing = false;
                }
                false
            }
            Health::Answered => {
                let was_open = self.is_open();
                *self = Circuit::default();
                was_open
            }
            Health::Failing => {
                self.failures = self.failures.saturating_add(1);
                if was_probe {
                    self.probing = false;
                    self.cooldown = (self.cooldown * 2).min(MAX_COOLDOWN);
                    self.open_until = Some(now.plus(self.cooldown));
                } else if !self.is_open() && self.failures >= FAILURES_TO_OPEN {
                    self.open_until = Some(now.plus(self.cooldown));
                    self.opened_at = Some(now);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_micros(ms * 1000)
    }

    fn failed(status: Option<u16>, error: &str, took_ms: u64) -> Outcome {
        Outcome {
            timed_out: error.ends_with("(timeout)"),
            attempt: crate::domain::delivery::Attempt {
                response_status: status,
                error: Some(error.to_owned()),
                duration_ms: took_ms,
                ..Default::default()
            },
            succeeded: false,
            retryable: true,
            retry_after: None,
        }
    }

    #[test]
    fn a_timeout_long_past_its_time_says_nothing_about_the_url() {
        let timeout = Duration::from_secs(10);
        let hung = failed(None, "no answer within 10 s (timeout)", 10_010);
        assert_eq!(Health::of(&hung, timeout), Health::Failing, "the URL hung");
        let woke = failed(None, "no answer within 10 s (timeout)", 25_000);
        assert_eq!(
            Health::of(&woke, timeout),
            Health::Unknown,
            "the node was paused"
        );
        let stalled = failed(
            Some(200),
            "answered 200 OK but the rest of the answer did not come within 10 s (timeout)",
            40_000,
        );
        assert_eq!(Health::of(&stalled, timeout), Health::Unknown);
        let refused = failed(None, "connection refused", 25_000);
        assert_eq!(
            Health::of(&refused, timeout),
            Health::Failing,
            "not a timeout"
        );
        assert_eq!(
            Health::of(&failed(Some(503), "", 25_000), timeout),
            Health::Failing
        );
    }

    #[test]
    fn an_answer_says_the_url_is_up_and_a_refusal_by_policy_says_nothing() {
        let timeout = Duration::from_secs(10);
        let mut ok = failed(Some(200), "", 5);
        ok.succeeded = true;
        ok.attempt.error = None;
        assert_eq!(Health::of(&ok, timeout), Health::Answered);
        assert_eq!(
            Health::of(&failed(Some(404), "", 5), timeout),
            Health::Answered,
            "a 4xx answer: retrying cannot change it, but the URL is up"
        );
        assert_eq!(
            Health::of(&failed(Some(429), "", 5), timeout),
            Health::Failing
        );
        let mut blocked = failed(None, "the address is not allowed", 0);
        blocked.retryable = false;
        assert_eq!(Health::of(&blocked, timeout), Health::Unknown);
    }

    #[test]
    fn opens_after_a_run_of_failures_and_not_before() {
        let mut c = Circuit::default();
        for i in 0..FAILURES_TO_OPEN - 1 {
            c.record(Health::Failing, false, at(i as i64));
            assert_eq!(c.gate(at(10)), Gate::Send, "after {} failures", i + 1);
        }
        c.record(Health::Answered, false, at(10));
        for _ in 0..FAILURES_TO_OPEN - 1 {
            c.record(Health::Failing, false, at(20));
        }
        assert_eq!(c.gate(at(30)), Gate::Send, "an answer restarts the count");
        c.record(Health::Failing, false, at(30));
        assert!(c.is_open());
        assert_eq!(c.gate(at(31)), Gate::Hold);
        assert_eq!(c.probe_due(), Some(at(30 + 1000)));
    }

    #[test]
    fn one_probe_at_a_time_with_a_growing_cooldown() {
        let mut c = Circuit::default();
        for _ in 0..FAILURES_TO_OPEN {
            c.record(Health::Failing, false, at(0));
        }
        assert_eq!(c.gate(at(999)), Gate::Hold, "cooling down");
        assert_eq!(c.gate(at(1000)), Gate::Probe);
        assert_eq!(c.gate(at(1001)), Gate::Hold, "the probe is out");
        assert_eq!(c.probe_due(), None);
        c.record(Health::Failing, true, at(1100));
        assert_eq!(c.probe_due(), Some(at(1100 + 2000)), "doubled");
        assert_eq!(c.gate(at(3099)), Gate::Hold);
        assert_eq!(c.gate(at(3100)), Gate::Probe);
        for _ in 0..10 {
            c.record(Health::Failing, true, at(5000));
            c.gate(at(i64::MAX / 2000));
        }
        c.record(Health::Failing, true, at(5000));
        assert_eq!(
            c.probe_due(),
            Some(at(5000 + MAX_COOLDOWN.as_millis() as i64)),
            "capped"
        );
    }

    #[test]
    fn an_answered_probe_closes_and_forgets() {
        let mut c = Circuit::default();
        for _ in 0..FAILURES_TO_OPEN {
            c.record(Health::Failing, false, at(0));
        }
        assert_eq!(c.gate(at(1000)), Gate::Probe);
        assert!(c.record(Health::Answered, true, at(1001)), "closed");
        assert!(c.is_pristine());
        assert_eq!(c.gate(at(1002)), Gate::Send);
        assert!(!c.record(Health::Answered, false, at(1003)), "was not open");
    }

    #[test]
    fn another_nodes_circuit_is_adopted_deferred_and_closed() {
        let mut c = Circuit::default();
        c.adopt(at(500), at(100));
        assert!(c.is_open(), "adopted: deliveries wait here too");
        assert_eq!(c.gate(at(499)), Gate::Hold);
        assert_eq!(c.gate(at(500)), Gate::Probe);
        // This node's probe is out: adopting again leaves it alone, and so does a read
        // that found no row.
        c.adopt(at(9000), at(600));
        assert_eq!(c.probe_due(), None, "still probing");
        assert!(!c.closed_elsewhere(at(700)));
        // Another node probes: this one waits for the time the cluster says.
        c.defer(at(2000), at(700));
        assert_eq!(c.gate(at(1999)), Gate::Hold);
        assert_eq!(c.probe_due(), Some(at(2000)));
        // A read from before the circuit opened says nothing about it.
        assert!(!c.closed_elsewhere(at(50)));
        assert!(c.is_open());
        assert!(c.closed_elsewhere(at(800)), "answered elsewhere");
        assert!(c.is_pristine());
        assert!(!c.closed_elsewhere(at(900)), "closed already");
    }

    #[test]
    fn a_probe_time_further_ahead_than_any_cooldown_is_due() {
        // The cluster's probe time was written under a wall clock since stepped back ten
        // minutes: it reads ten minutes ahead, but no cool-down is that long.
        let mut c = Circuit::default();
        c.adopt(at(100 + 600_000), at(100));
        assert!(c.is_open());
        assert_eq!(c.gate(at(100)), Gate::Probe);
        // Read again a second later, it is still due: not pushed out at every read.
        c.record(Health::Unknown, true, at(150));
        c.adopt(at(1100 + 600_000), at(1100));
        assert_eq!(c.gate(at(1100)), Gate::Probe);
        // The longest cool-down, and a margin more, is a wait like any other.
        let longest = 2000 + STALE_AFTER.as_millis() as i64;
        c.record(Health::Unknown, true, at(1200));
        c.adopt(at(longest), at(2000));
        assert_eq!(c.gate(at(longest - 1)), Gate::Hold);
        assert_eq!(c.gate(at(longest)), Gate::Probe);
    }

    #[test]
    fn a_circuit_opened_here_after_the_read_stays_open() {
        let mut c = Circuit::default();
        for _ in 0..FAILURES_TO_OPEN {
            c.record(Health::Failing, false, at(1000));
        }
        assert!(
            !c.closed_elsewhere(at(999)),
            "its row may not be written yet"
        );
        assert!(c.is_open());
        assert!(c.closed_elsewhere(at(1001)));
    }

    #[test]
    fn an_abandoned_or_uninformative_probe_frees_the_slot() {
        let mut c = Circuit::default();
        for _ in 0..FAILURES_TO_OPEN {
            c.record(Health::Failing, false, at(0));
        }
        assert_eq!(c.gate(at(1000)), Gate::Probe);
        c.probe_abandoned();
        assert_eq!(c.gate(at(1000)), Gate::Probe);
        c.record(Health::Unknown, true, at(1000));
        assert!(c.is_open(), "still open");
        assert_eq!(c.gate(at(1000)), Gate::Probe);
    }
}
