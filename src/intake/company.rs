//! Whether an intake batch waits for company before it commits: a pure decision, fed the
//! arrival times of events, with the clock passed in.
//!
//! Every commit costs about the same whatever it holds (a dozen pages written, thread
//! hand-offs), so at saturation hundreds of events share one, but at ordinary rates each
//! event pays for one alone. Waiting briefly for the next event shares it, at the cost of
//! the wait in latency. So a batch waits, up to the wait from its first event's arrival,
//! only when that is likely to pay:
//! - events come at a rate that brings between half an event and four within one wait
//!   (the last tenth of a second's count): at 1,000 events/s and the default 2 ms wait,
//!   two: yes; at 200/s, 0.4: a wait would rarely catch one; above four, commits are
//!   slower than arrivals and batches form by themselves (a wait would only idle the
//!   writer while senders wait for their answers);
//! - the batch holds one event (more: it formed by itself);
//! - the last wait caught company, or the last batch did not wait. A sender that posts one
//!   event at a time, each after the answer to the last, on a fast link, would otherwise
//!   keep every batch waiting for an event that cannot come until the wait ends; this way
//!   at most every other of its events waits.

use std::time::Duration;

use tokio::time::Instant;

/// Arrivals are counted over windows this long; the last whole one gives the rate.
const WINDOW: Duration = Duration::from_millis(100);
/// Events expected within one wait, at least and at most, for a batch to wait.
const LEAST_COMPANY: f64 = 0.5;
const MOST_COMPANY: f64 = 4.0;

#[derive(Debug)]
pub(crate) struct Company {
    /// The longest a batch waits; zero never.
    wait: Duration,
    /// The window being counted, and its arrivals so far.
    window_start: Option<Instant>,
    counting: u32,
    /// Arrivals per second over the last whole window, if one has passed.
    rate: Option<f64>,
    /// The last batch waited and caught nothing.
    last_wait_in_vain: bool,
}

impl Company {
    pub(crate) fn new(wait: Duration) -> Self {
        Self {
            wait,
            window_start: None,
            counting: 0,
            rate: None,
            last_wait_in_vain: false,
        }
    }

    /// An event arrived.
    pub(crate) fn arrived(&mut self, at: Instant) {
        let start = *self.window_start.get_or_insert(at);
        let since = at.saturating_duration_since(start);
        if since >= WINDOW {
            // The window just ended held `counting`; a longer silence means fewer per
            // window (none in the ones that passed empty).
            let windows = since.as_secs_f64() / WINDOW.as_secs_f64();
            self.rate = Some(if windows < 2.0 {
                f64::from(self.counting) / WINDOW.as_secs_f64()
            } else {
                0.0
            });
            self.window_start = Some(at);
            self.counting = 0;
        }
        self.counting += 1;
    }

    /// Until when a batch that holds `held` events, the first of which arrived at
    /// `first`, waits for more; `None`: commit now.
    pub(crate) fn wait_until(&self, first: Instant, held: usize) -> Option<Instant> {
        let expected = self.rate? * self.wait.as_secs_f64();
        (!self.wait.is_zero()
            && held == 1
            && (LEAST_COMPANY..=MOST_COMPANY).contains(&expected)
            && !self.last_wait_in_vain)
            .then(|| first + self.wait)
    }

    /// A batch was committed: `waited` says whether it waited, `caught` how many events
    /// the wait added.
    pub(crate) fn committed(&mut self, waited: bool, caught: usize) {
        self.last_wait_in_vain = waited && caught == 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// `n` events `every` apart from `start`, each arrived; returns the last one's time.
    fn arrivals(company: &mut Company, start: Instant, every: Duration, n: u32) -> Instant {
        let mut at = start;
        for i in 0..n {
            at = start + every * i;
            company.arrived(at);
        }
        at
    }

    #[test]
    fn nothing_waits_before_a_whole_window_was_counted() {
        let mut company = Company::new(MS);
        let last = arrivals(&mut company, Instant::now(), MS, 99);
        assert_eq!(company.wait_until(last, 1), None);
        let last = arrivals(&mut company, last + MS, MS, 2);
        assert_eq!(company.wait_until(last, 1), Some(last + MS));
    }

    #[test]
    fn events_a_millisecond_apart_wait_from_the_first_event_s_arrival() {
        let mut company = Company::new(MS);
        let last = arrivals(&mut company, Instant::now(), MS, 250);
        assert_eq!(company.wait_until(last, 1), Some(last + MS));
        // The deadline counts from the first event's arrival, not from now.
        let earlier = last - Duration::from_micros(400);
        assert_eq!(company.wait_until(earlier, 1), Some(earlier + MS));
    }

    #[test]
    fn sparse_events_do_not_wait() {
        // 200 events/s: 5 ms apart, a 1 ms wait would catch one a fifth of the time.
        let mut company = Company::new(MS);
        let last = arrivals(&mut company, Instant::now(), 5 * MS, 100);
        assert_eq!(company.wait_until(last, 1), None);
        // 500/s: half an event per wait, the least that waits.
        let mut company = Company::new(MS);
        let last = arrivals(&mut company, Instant::now(), 2 * MS, 200);
        assert!(company.wait_until(last, 1).is_some());
    }

    #[test]
    fn saturation_does_not_wait() {
        // 10,000 events/s: batches form by themselves.
        let mut company = Company::new(MS);
        let last = arrivals(
            &mut company,
            Instant::now(),
            Duration::from_micros(100),
            3000,
        );
        assert_eq!(company.wait_until(last, 1), None);
        // About 3,300/s, three per wait: below the most that waits (four).
        let mut company = Company::new(MS);
        let last = arrivals(
            &mut company,
            Instant::now(),
            Duration::from_micros(300),
            1000,
        );
        assert!(company.wait_until(last, 1).is_some());
    }

    #[test]
    fn a_batch_of_several_does_not_wait() {
        let mut company = Company::new(MS);
        let last = arrivals(&mut company, Instant::now(), MS, 250);
        assert_eq!(company.wait_until(last, 2), None);
        assert!(company.wait_until(last, 1).is_some());
    }

    #[test]
    fn no_wait_when_it_is_zero() {
        let mut company = Company::new(Duration::ZERO);
        let last = arrivals(&mut company, Instant::now(), MS, 250);
        assert_eq!(company.wait_until(last, 1), None);
    }

    #[test]
    fn a_pause_ends_the_waiting_and_traffic_brings_it_back() {
        let mut company = Company::new(MS);
        let last = arrivals(&mut company, Instant::now(), MS, 250);
        assert!(company.wait_until(last, 1).is_some());
        let later = last + Duration::from_secs(2);
        company.arrived(later);
        assert_eq!(
            company.wait_until(later, 1),
            None,
            "two windows passed empty"
        );
        let last = arrivals(&mut company, later + MS, MS, 250);
        assert!(company.wait_until(last, 1).is_some());
    }

    #[test]
    fn a_wait_in_vain_is_not_tried_on_the_next_batch() {
        let mut company = Company::new(MS);
        let last = arrivals(&mut company, Instant::now(), MS, 250);
        assert!(company.wait_until(last, 1).is_some());
        company.committed(true, 0);
        assert_eq!(company.wait_until(last, 1), None, "the wait caught nothing");
        company.committed(false, 0);
        assert!(
            company.wait_until(last, 1).is_some(),
            "a batch that did not wait lets the next one try again"
        );
        company.committed(true, 1);
        assert!(
            company.wait_until(last, 1).is_some(),
            "a wait that caught company is tried again"
        );
    }

    #[test]
    fn arrivals_handed_over_out_of_order_count_without_moving_time_back() {
        let mut company = Company::new(MS);
        let start = Instant::now() + Duration::from_secs(1);
        let last = arrivals(&mut company, start, MS, 250);
        // Stamped just before the last but queued after it.
        company.arrived(last - Duration::from_micros(10));
        assert!(company.wait_until(last, 1).is_some());
    }
}
