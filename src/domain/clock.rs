//! Two clocks, each for what it means.
//!
//! The **wall clock** is calendar time: what the store keeps and other nodes compare
//! (leases, a retry's due time, a circuit's next probe as the cluster knows it), what
//! people read, what `max_age` is measured from. Anyone may step it: NTP correcting a
//! drifted VM, an operator, a resumed snapshot.
//!
//! **Process time** is the wall clock as read when the process started, moved on by the
//! monotonic clock since: it never steps. Every wait this process decides alone runs on it
//! (a circuit's cool-down, its probe's turn, the poller's wake-ups, whether a lease it holds
//! still covers an attempt), so a clock stepped back ten minutes does not keep a recovered
//! URL's parked deliveries waiting ten minutes, and one stepped forward does not end a wait
//! early. Times cross between the two by the offset between them at that moment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Timestamp;

/// Where wall time comes from: the system's clock, or a test's.
type WallSource = dyn Fn() -> Timestamp + Send + Sync;

/// The two clocks of one process (cheap to clone; clones share the start).
#[derive(Clone)]
pub struct Clock {
    wall: Arc<WallSource>,
    start: Start,
}

/// The moment process time starts from: the wall clock and the monotonic clock read
/// together.
#[derive(Debug, Clone, Copy)]
struct Start {
    wall: Timestamp,
    mono: Instant,
}

impl Start {
    /// Process time at the monotonic instant `mono` (never before the start).
    fn at(self, mono: Instant) -> Timestamp {
        self.wall.plus(mono.saturating_duration_since(self.mono))
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock").field("start", &self.start).finish()
    }
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Self::with_wall(Timestamp::now)
    }

    /// A clock whose wall time comes from `wall` (tests step it); process time still runs
    /// on the monotonic clock.
    pub fn with_wall(wall: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        let start = Start {
            wall: wall(),
            mono: Instant::now(),
        };
        Self {
            wall: Arc::new(wall),
            start,
        }
    }

    /// The clocks of a process started now on the same wall clock (a restart, another node
    /// on this machine): its process time starts from the wall clock as it reads now.
    pub fn restarted(&self) -> Self {
        Self {
            wall: self.wall.clone(),
            start: Start {
                wall: self.wall(),
                mono: Instant::now(),
            },
        }
    }

    /// Calendar time, as stored and compared across nodes.
    pub fn wall(&self) -> Timestamp {
        (self.wall)()
    }

    /// Process time: for waits this process decides alone. Never steps.
    pub fn now(&self) -> Timestamp {
        self.start.at(Instant::now())
    }

    /// A wall time (read from the store) as process time.
    pub fn from_wall(&self, at: Timestamp) -> Timestamp {
        shift(at, self.wall(), self.now())
    }

    /// A process time as wall time (to store it for the other nodes).
    pub fn to_wall(&self, at: Timestamp) -> Timestamp {
        shift(at, self.now(), self.wall())
    }

    /// Deliveries made before this have been pending longer than `max_age`: only when both
    /// clocks agree, so a wall clock stepped forward expires nothing early. (One stepped
    /// back delays expiry by the step; late news is still news, lost news is not.)
    pub fn made_before_max_age(&self, max_age: Duration) -> Timestamp {
        oldest_cutoff(self.wall(), self.now(), max_age)
    }
}

/// `at`, read on a clock showing `from`, as read on one showing `to`.
fn shift(at: Timestamp, from: Timestamp, to: Timestamp) -> Timestamp {
    Timestamp::from_micros(
        at.as_micros()
            .saturating_add(to.as_micros().saturating_sub(from.as_micros())),
    )
}

fn oldest_cutoff(wall: Timestamp, process: Timestamp, max_age: Duration) -> Timestamp {
    wall.min(process).minus(max_age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    const MINUTE: i64 = 60_000_000;

    fn stepped() -> (Clock, Arc<AtomicI64>) {
        let offset = Arc::new(AtomicI64::new(0));
        let read = offset.clone();
        let clock = Clock::with_wall(move || {
            Timestamp::from_micros(1_000_000_000_000 + read.load(Ordering::SeqCst))
        });
        (clock, offset)
    }

    #[test]
    fn process_time_starts_at_the_wall_clock_and_ignores_its_steps() {
        let (clock, offset) = stepped();
        let before = clock.now();
        assert!((before.as_micros() - clock.wall().as_micros()).abs() < MINUTE);
        offset.store(-10 * MINUTE, Ordering::SeqCst);
        let after = clock.now();
        assert!(after >= before, "process time never goes back");
        assert!(after.as_micros() - before.as_micros() < MINUTE);
        assert_eq!(
            clock.wall().as_micros(),
            1_000_000_000_000 - 10 * MINUTE,
            "the wall clock did step"
        );
    }

    #[test]
    fn times_cross_between_the_clocks_by_their_offset() {
        let (clock, offset) = stepped();
        offset.store(-10 * MINUTE, Ordering::SeqCst);
        // A probe the cluster set for a second from (wall) now is a second from process now.
        let stored = clock.wall().plus(Duration::from_secs(1));
        let here = clock.from_wall(stored);
        let ahead = here.as_micros() - clock.now().as_micros();
        assert!((900_000..=1_000_000).contains(&ahead), "{ahead}");
        let back = clock.to_wall(here);
        assert!((back.as_micros() - stored.as_micros()).abs() < 100_000);
    }

    #[test]
    fn max_age_counts_only_what_both_clocks_agree_on() {
        let day = Duration::from_secs(24 * 3600);
        let process = Timestamp::from_micros(1_000 * MINUTE);
        // The wall clock jumped two days ahead: a delivery made a minute ago is not old.
        let wall = process.plus(2 * day);
        let cutoff = oldest_cutoff(wall, process, day);
        let minute_old = process.minus(Duration::from_secs(60));
        assert!(minute_old > cutoff, "not expired by the jump");
        let really_old = process.minus(day + Duration::from_secs(1));
        assert!(really_old < cutoff, "still expired when it is old");
        // Stepped back: the wall clock decides, later.
        let wall = process.minus(Duration::from_secs(600));
        assert_eq!(oldest_cutoff(wall, process, day), wall.minus(day));
    }
}
