//! Whether intake can commit, for readiness: how long its writes have been stuck — the
//! batch in flight since it began, or a run of failed batches since the first of them
//! began (a success ends the run). A node whose intake waits on a lock held by a frozen
//! peer, or cannot reach its database, is alive but not ready: its load balancer should
//! send senders elsewhere. Pure, with the caller's clock.

use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Stall {
    in_flight_since: Option<Instant>,
    failing_since: Option<Instant>,
}

impl Stall {
    pub fn batch_started(&mut self, now: Instant) {
        self.in_flight_since = Some(now);
    }

    /// The batch begun last ended: every event stored, or not.
    pub fn batch_ended(&mut self, stored: bool) {
        let began = self.in_flight_since.take();
        if stored {
            self.failing_since = None;
        } else if let Some(began) = began {
            self.failing_since.get_or_insert(began);
        }
    }

    /// How long intake has been unable to commit at `now`; `None` while it commits.
    pub fn stuck_for(&self, now: Instant) -> Option<Duration> {
        [self.failing_since, self.in_flight_since]
            .into_iter()
            .flatten()
            .min()
            .map(|since| now.saturating_duration_since(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_from_the_first_failing_batch_until_one_commits() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut stall = Stall::default();
        assert_eq!(stall.stuck_for(at(0)), None);
        stall.batch_started(at(0));
        assert_eq!(stall.stuck_for(at(300)), Some(Duration::from_millis(300)));
        stall.batch_ended(true);
        assert_eq!(stall.stuck_for(at(400)), None, "committed");
        // A batch waits on a lock and fails; the next waits too: stuck since the first.
        stall.batch_started(at(1000));
        stall.batch_ended(false);
        assert_eq!(stall.stuck_for(at(4000)), Some(Duration::from_millis(3000)));
        stall.batch_started(at(4000));
        assert_eq!(stall.stuck_for(at(6000)), Some(Duration::from_millis(5000)));
        stall.batch_ended(false);
        assert_eq!(stall.stuck_for(at(7000)), Some(Duration::from_millis(6000)));
        stall.batch_started(at(7000));
        stall.batch_ended(true);
        assert_eq!(stall.stuck_for(at(7001)), None, "a commit ends the run");
    }
}
