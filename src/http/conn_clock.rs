//! When a client connection must be closed for waiting too long: a pure clock over the
//! three phases of an HTTP/1 connection. hyper has one timer for "waiting for a request",
//! so it cannot tell a client dribbling its headers (cut off after
//! `http.header_read_timeout`) from a keep-alive connection resting between requests (kept
//! for `http.idle_timeout`); `serve.rs` feeds this clock from the socket and the service.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request is being read: from the connection's opening, or from the first byte after
    /// a rest, until its headers are complete.
    Reading { since: Instant },
    /// A request's headers arrived and it is being served: no deadline here (its body and
    /// answer have their own limits).
    Serving,
    /// The answer was given; the connection rests until the next request's first byte.
    Resting { since: Instant },
}

#[derive(Debug, Clone)]
pub struct ConnectionClock {
    header_read: Duration,
    idle: Duration,
    phase: Phase,
}

impl ConnectionClock {
    /// A connection just opened: its first request's headers are due within `header_read`
    /// (a client that connects and sends nothing is a slow client, not a resting one).
    pub fn new(opened: Instant, header_read: Duration, idle: Duration) -> Self {
        Self {
            header_read,
            idle,
            phase: Phase::Reading { since: opened },
        }
    }

    /// Bytes came from the client: a resting connection starts reading a request.
    pub fn bytes_arrived(&mut self, now: Instant) {
        if let Phase::Resting { .. } = self.phase {
            self.phase = Phase::Reading { since: now };
        }
    }

    /// A request's headers are complete and it is handed to the service.
    pub fn request_started(&mut self) {
        self.phase = Phase::Serving;
    }

    /// The service answered: the connection rests from now.
    pub fn answered(&mut self, now: Instant) {
        self.phase = Phase::Resting { since: now };
    }

    /// When the connection is to be closed if nothing changes; `None` while serving.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Reading { since } => Some(since + self.header_read),
            Phase::Serving => None,
            Phase::Resting { since } => Some(since + self.idle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADERS: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn a_new_connection_owes_its_headers_within_the_header_timeout() {
        let t0 = Instant::now();
        let mut clock = ConnectionClock::new(t0, HEADERS, IDLE);
        assert_eq!(clock.deadline(), Some(at(t0, 10)));
        // Dribbled bytes do not move the deadline: the whole head is due by then.
        clock.bytes_arrived(at(t0, 5));
        assert_eq!(clock.deadline(), Some(at(t0, 10)));
    }

    #[test]
    fn serving_has_no_deadline_and_resting_gets_the_idle_timeout() {
        let t0 = Instant::now();
        let mut clock = ConnectionClock::new(t0, HEADERS, IDLE);
        clock.request_started();
        assert_eq!(clock.deadline(), None);
        clock.answered(at(t0, 3));
        assert_eq!(clock.deadline(), Some(at(t0, 63)));
    }

    #[test]
    fn the_next_request_after_a_rest_owes_its_headers_from_its_first_byte() {
        let t0 = Instant::now();
        let mut clock = ConnectionClock::new(t0, HEADERS, IDLE);
        clock.request_started();
        clock.answered(at(t0, 1));
        clock.bytes_arrived(at(t0, 40));
        assert_eq!(clock.deadline(), Some(at(t0, 50)));
        // More bytes of the same head change nothing.
        clock.bytes_arrived(at(t0, 45));
        assert_eq!(clock.deadline(), Some(at(t0, 50)));
        clock.request_started();
        clock.answered(at(t0, 46));
        assert_eq!(clock.deadline(), Some(at(t0, 106)));
    }
}
