//! The engine's book of URLs: how many of each URL's deliveries it holds, whether the store
//! holds more of them parked, whether a refill is running, and each URL's circuit. Every
//! decision about a URL is made here, synchronously, and returned as a value (start or park
//! a delivery, which refills and probes to run); the engine carries them out. Times are
//! passed in, so every transition is tested without a clock or a runtime.

use std::{collections::HashMap, sync::Arc};

use tokio::sync::Semaphore;

use super::circuit::{Circuit, Gate, Health, MAX_COOLDOWN, PROBE_RECHECK};
use crate::domain::{delivery::url_key, Timestamp};

/// The book's bounds, from the delivery settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Calls in flight to one URL at once.
    pub per_url: usize,
    /// Deliveries of one URL held in memory; the rest are parked in the store.
    pub queue_per_url: usize,
    /// Deliveries held in memory over all URLs.
    pub in_flight: usize,
}

impl Limits {
    pub(super) fn new(concurrency: usize, per_url: usize) -> Self {
        Self {
            per_url,
            // Enough per URL to keep its connections busy between refills, and a small
            // share of the whole, so that a few hanging URLs cannot hold all the room.
            queue_per_url: (per_url * 8).max(32).min(concurrency / 2).max(per_url),
            in_flight: concurrency * 4,
        }
    }
}

/// One URL's entry.
struct Entry {
    /// Its own concurrency limit (handed to the jobs; waiting on it holds no shared room).
    permits: Arc<Semaphore>,
    /// Deliveries started and not yet finished.
    queued: usize,
    circuit: Circuit,
    /// The store may hold parked deliveries to this URL.
    has_parked: bool,
    /// Bumped at each park: a refill that comes back short clears `has_parked` only if
    /// nothing was parked while it ran.
    parked_gen: u64,
    refilling: bool,
}

impl Entry {
    fn new(per_url: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(per_url)),
            queued: 0,
            circuit: Circuit::default(),
            has_parked: false,
            parked_gen: 0,
            refilling: false,
        }
    }

    fn note_parked(&mut self) {
        self.has_parked = true;
        self.parked_gen += 1;
    }

    fn forgettable(&self) -> bool {
        self.queued == 0 && !self.has_parked && !self.refilling && self.circuit.is_pristine()
    }
}

/// What to do with a delivery about to start.
#[derive(Debug, Clone)]
pub(super) enum Admit {
    /// Start it (as the URL's probe when `probe`), within the URL's `permits`.
    Start {
        probe: bool,
        permits: Arc<Semaphore>,
    },
    /// Give it back to the store parked: the URL's queue is full or its circuit open.
    Park,
}

/// Parked deliveries to take back from the store for one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refill {
    pub url: String,
    pub limit: usize,
    /// The one delivery taken is the URL's circuit probe.
    pub probe: bool,
    generation: u64,
}

/// What an attempt did to its URL's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Attempted {
    pub probe_due: Option<Timestamp>,
    /// What the cluster's row of the URL's circuit must be told.
    pub cluster: ClusterWrite,
}

/// The cluster's side of an attempt: only the node whose circuit opened or closed writes the
/// row (and tells people), and a failed probe lengthens the row's cool-down. Most attempts
/// write nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClusterWrite {
    /// Opened here: the row is written with the first probe's time.
    Open {
        first_probe: Timestamp,
    },
    Close,
    /// This node's probe failed: the store doubles the cool-down and says when the next
    /// probe goes (to be passed to [`Book::defer_probe`]).
    ProbeFailed,
    Nothing,
}

/// The store's answer to this node's claim of a URL's one probe, in process time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProbeAnswer {
    Won,
    /// Not before this time: the cool-down runs, or another node's probe is out.
    Wait(Timestamp),
    /// The circuit is closed in the cluster.
    Closed,
}

/// What becomes of the delivery that asked to be the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterClaim {
    /// It goes, as the cluster's probe.
    Probe,
    /// It goes as an ordinary delivery: the cluster's circuit closed meanwhile.
    Send,
    /// It is parked; the poller looks again at this time.
    ParkUntil(Timestamp),
}

/// What the poller is to do at a tick: start these refills (due probes first), be back by
/// `next_probe`, and claim at most `room` due deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tick {
    pub refills: Vec<Refill>,
    pub next_probe: Option<Timestamp>,
    pub room: usize,
}

/// A delivery's end, as the engine tells the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finished {
    /// Parked work of its URL to take back now that there is room.
    pub refill: Option<Refill>,
    /// Nothing is in flight any more (shutdown waits for this).
    pub idle: bool,
}

pub(super) struct Book {
    limits: Limits,
    urls: HashMap<String, Entry>,
    in_flight: usize,
    stopping: bool,
    /// The circuits open in the cluster as last read (by URL key: the next probe's time),
    /// and when: a URL this node meets anew starts with its circuit open if listed.
    cluster_open: HashMap<String, Timestamp>,
    cluster_read_at: Timestamp,
}

impl Book {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            limits,
            urls: HashMap::new(),
            in_flight: 0,
            stopping: false,
            cluster_open: HashMap::new(),
            cluster_read_at: Timestamp::from_micros(0),
        }
    }

    fn entry(&mut self, url: &str) -> &mut Entry {
        let per_url = self.limits.per_url;
        let (cluster_open, read_at) = (&self.cluster_open, self.cluster_read_at);
        self.urls.entry(url.to_owned()).or_insert_with(|| {
            let mut entry = Entry::new(per_url);
            // Entries come and go with each burst to a URL: hash only when a circuit is open.
            if !cluster_open.is_empty() {
                if let Some(&probe_at) = cluster_open.get(&url_key(url)) {
                    entry.circuit.adopt(probe_at, read_at);
                }
            }
            entry
        })
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Room for this many more deliveries in memory (0 once stopping).
    pub(super) fn room(&self) -> usize {
        if self.stopping {
            0
        } else {
            self.limits.in_flight.saturating_sub(self.in_flight)
        }
    }

    /// From now on nothing is refilled and there is no room.
    pub(super) fn stop(&mut self) {
        self.stopping = true;
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// URLs whose new deliveries intake should store parked: queue full or circuit open.
    pub(super) fn park_urls(&self) -> Vec<String> {
        self.urls
            .iter()
            .filter(|(_, e)| e.queued >= self.limits.queue_per_url || e.circuit.is_open())
            .map(|(url, _)| url.clone())
            .collect()
    }

    /// URLs whose circuit is open on this node, sorted (the cluster's are in the store).
    #[cfg(test)]
    fn open_circuits(&self) -> Vec<String> {
        let mut open: Vec<String> = self
            .urls
            .iter()
            .filter(|(_, e)| e.circuit.is_open())
            .map(|(url, _)| url.clone())
            .collect();
        open.sort();
        open
    }

    /// The store holds (newly) parked deliveries to `url`.
    pub(super) fn parked(&mut self, url: &str) {
        self.entry(url).note_parked();
    }

    /// A delivery to `url` is about to start; `probe` when a refill took it as the probe.
    pub(super) fn admit(&mut self, url: &str, probe: bool, now: Timestamp) -> Admit {
        let queue_limit = self.limits.queue_per_url;
        let entry = self.entry(url);
        let gate = if probe {
            Gate::Probe // the circuit chose it already
        } else {
            match entry.circuit.gate(now) {
                Gate::Send if entry.queued >= queue_limit => Gate::Hold,
                gate => gate,
            }
        };
        if gate == Gate::Hold {
            entry.note_parked();
            return Admit::Park;
        }
        entry.queued += 1;
        let permits = entry.permits.clone();
        self.in_flight += 1;
        Admit::Start {
            probe: gate == Gate::Probe,
            permits,
        }
    }

    /// Asked again when a started delivery's turn comes (it may have waited for permits
    /// while the circuit opened): `Send`, `Probe` (it became the probe) or `Hold` (it is
    /// to be parked; the book counts it parked already).
    pub(super) fn recheck(&mut self, url: &str, now: Timestamp) -> Gate {
        let Some(entry) = self.urls.get_mut(url) else {
            return Gate::Send;
        };
        let gate = entry.circuit.gate(now);
        if gate == Gate::Hold {
            entry.note_parked();
        }
        gate
    }

    /// An attempt's result for its URL's health: whether it opened or closed the circuit,
    /// and when the next probe may go if the circuit is open.
    pub(super) fn attempted(
        &mut self,
        url: &str,
        health: Health,
        was_probe: bool,
        now: Timestamp,
    ) -> Attempted {
        let entry = self.entry(url);
        let was_open = entry.circuit.is_open();
        let closed = entry.circuit.record(health, was_probe, now);
        let opened = !was_open && entry.circuit.is_open();
        let probe_due = entry.circuit.probe_due();
        let cluster = if opened {
            ClusterWrite::Open {
                first_probe: probe_due.unwrap_or(now),
            }
        } else if closed {
            ClusterWrite::Close
        } else if was_probe && health == Health::Failing {
            ClusterWrite::ProbeFailed
        } else {
            ClusterWrite::Nothing
        };
        Attempted { probe_due, cluster }
    }

    /// The store answered this node's claim of `url`'s probe. A wait is kept between
    /// [`PROBE_RECHECK`] (the other node may be gone; its claim runs out) and
    /// [`MAX_COOLDOWN`] (a time further ahead was written under a clock since stepped back).
    pub(super) fn probe_claimed(
        &mut self,
        url: &str,
        answer: ProbeAnswer,
        now: Timestamp,
    ) -> AfterClaim {
        match answer {
            ProbeAnswer::Won => AfterClaim::Probe,
            ProbeAnswer::Closed => {
                self.closed_by_cluster(url);
                AfterClaim::Send
            }
            ProbeAnswer::Wait(at) => {
                let at = at.max(now.plus(PROBE_RECHECK)).min(now.plus(MAX_COOLDOWN));
                self.defer_probe(url, at, now);
                AfterClaim::ParkUntil(at)
            }
        }
    }

    /// Everything due at `now`, decided under one lock.
    pub(super) fn tick(&mut self, now: Timestamp) -> Tick {
        let (mut refills, next_probe) = self.due_probes(now);
        refills.extend(self.refills());
        Tick {
            refills,
            next_probe,
            room: self.room(),
        }
    }

    /// A probe that did not go (nothing to send, webhook gone, lease lost, stopping).
    pub(super) fn probe_abandoned(&mut self, url: &str) {
        if let Some(entry) = self.urls.get_mut(url) {
            entry.circuit.probe_abandoned();
        }
    }

    /// The URL's next probe goes at `at` (another node's probe is out, or the cluster's
    /// cool-down says so); this node's probe, if it held the slot, did not go.
    pub(super) fn defer_probe(&mut self, url: &str, at: Timestamp, now: Timestamp) {
        self.entry(url).circuit.defer(at, now);
    }

    /// The cluster says the URL's circuit is closed although this node's probe holds the
    /// slot: the probe goes as an ordinary delivery and the URL's parked work may follow.
    fn closed_by_cluster(&mut self, url: &str) {
        if let Some(entry) = self.urls.get_mut(url) {
            entry.circuit = Default::default();
        }
    }

    /// Brings this node's circuits in line with the cluster's open ones (`open`: by URL key,
    /// the next probe's time), read at `read_at`: a URL open elsewhere waits here too, with
    /// the cluster's probe time; one closed elsewhere closes here (see
    /// [`Circuit::closed_elsewhere`]) and gets its parked work back: those refills are
    /// returned.
    pub(super) fn sync_circuits(
        &mut self,
        open: HashMap<String, Timestamp>,
        read_at: Timestamp,
        now: Timestamp,
    ) -> Vec<Refill> {
        let mut closed = Vec::new();
        for (url, entry) in &mut self.urls {
            match open.get(&url_key(url)) {
                Some(&probe_at) => entry.circuit.adopt(probe_at, now),
                None => {
                    if entry.circuit.closed_elsewhere(read_at) {
                        closed.push(url.clone());
                    }
                }
            }
        }
        self.cluster_open = open;
        self.cluster_read_at = read_at;
        closed
            .iter()
            .filter_map(|url| self.refill_if_room(url))
            .collect()
    }

    /// A started delivery is done with (sent, parked again, or dropped).
    pub(super) fn finished(&mut self, url: &str) -> Finished {
        self.in_flight = self.in_flight.saturating_sub(1);
        let mut refill = None;
        if let Some(entry) = self.urls.get_mut(url) {
            entry.queued = entry.queued.saturating_sub(1);
        }
        if self.urls.contains_key(url) {
            refill = self.refill_if_room(url);
            if self.urls.get(url).is_some_and(Entry::forgettable) {
                self.urls.remove(url);
            }
        }
        Finished {
            refill,
            idle: self.in_flight == 0,
        }
    }

    /// A refill of the URL's parked work, if it has some, none is running, its circuit is
    /// closed and its queue is at most half full; marks it running.
    fn refill_if_room(&mut self, url: &str) -> Option<Refill> {
        let global_room = self.room();
        let queue_limit = self.limits.queue_per_url;
        let entry = self.urls.get_mut(url)?;
        if !entry.has_parked
            || entry.refilling
            || entry.circuit.is_open()
            || entry.queued > queue_limit / 2
        {
            return None;
        }
        let limit = (queue_limit - entry.queued).min(global_room);
        if limit == 0 {
            return None;
        }
        entry.refilling = true;
        Some(Refill {
            url: url.to_owned(),
            limit,
            probe: false,
            generation: entry.parked_gen,
        })
    }

    /// Refills for every URL with parked work and room: a completion starts its own URL's
    /// refill, but room that frees up in the engine as a whole is noticed here.
    pub(super) fn refills(&mut self) -> Vec<Refill> {
        let waiting: Vec<String> = self
            .urls
            .iter()
            .filter(|(_, e)| e.has_parked && !e.refilling)
            .map(|(url, _)| url.clone())
            .collect();
        waiting
            .iter()
            .filter_map(|url| self.refill_if_room(url))
            .collect()
    }

    /// For each open circuit whose cool-down is over and that has parked work: a probe
    /// (one delivery taken back as the probe). Also the earliest cool-down still running.
    /// Without parked work the next delivery to arrive becomes the probe.
    fn due_probes(&mut self, now: Timestamp) -> (Vec<Refill>, Option<Timestamp>) {
        let mut next = None::<Timestamp>;
        let mut probes = Vec::new();
        for (url, entry) in &mut self.urls {
            let Some(due) = entry.circuit.probe_due() else {
                continue;
            };
            if due > now {
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            if !entry.has_parked || entry.refilling || entry.circuit.gate(now) != Gate::Probe {
                continue;
            }
            entry.refilling = true;
            probes.push(Refill {
                url: url.clone(),
                limit: 1,
                probe: true,
                generation: entry.parked_gen,
            });
        }
        (probes, next)
    }

    /// A refill came back with `taken` deliveries (`None`: it failed). Short means nothing
    /// more is parked, or what is waits behind an earlier delivery of its lane; while some
    /// of the URL's deliveries are in flight one of them may be that earlier delivery, so
    /// its completion tries again, otherwise the next rescan does.
    pub(super) fn refilled(&mut self, refill: &Refill, taken: Option<usize>) {
        let entry = self.entry(&refill.url);
        entry.refilling = false;
        if let Some(n) = taken {
            if n < refill.limit && entry.parked_gen == refill.generation && entry.queued == 0 {
                entry.has_parked = false;
            }
        }
        if refill.probe && taken.unwrap_or(0) == 0 {
            entry.circuit.probe_abandoned();
        }
        if entry.forgettable() {
            self.urls.remove(&refill.url);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::circuit::{FAILURES_TO_OPEN, FIRST_COOLDOWN};
    use super::*;

    const URL: &str = "https://a.example/hook";

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_micros(ms * 1000)
    }

    fn book() -> Book {
        Book::new(Limits {
            per_url: 2,
            queue_per_url: 4,
            in_flight: 10,
        })
    }

    fn started(admit: Admit) -> bool {
        matches!(admit, Admit::Start { probe: false, .. })
    }

    /// Opens the URL's circuit with failed attempts of started deliveries; the last one
    /// says it opened it.
    fn open_circuit(b: &mut Book, now: Timestamp) {
        for i in 1..=FAILURES_TO_OPEN {
            assert!(started(b.admit(URL, false, now)));
            let attempted = b.attempted(URL, Health::Failing, false, now);
            let opened = matches!(attempted.cluster, ClusterWrite::Open { .. });
            assert_eq!(opened, i == FAILURES_TO_OPEN, "attempt {i}");
            b.finished(URL);
        }
        assert_eq!(b.open_circuits(), vec![URL.to_owned()]);
    }

    #[test]
    fn the_cluster_opens_closes_and_times_probes() {
        let mut b = book();
        assert!(started(b.admit(URL, false, at(0))));
        b.finished(URL);
        // Open elsewhere: this node parks too, and probes when the cluster says.
        let open = HashMap::from([(url_key(URL), at(2000))]);
        assert!(b.sync_circuits(open, at(100), at(100)).is_empty());
        assert!(matches!(b.admit(URL, false, at(100)), Admit::Park));
        assert!(b.park_urls().contains(&URL.to_owned()));
        let (probes, next) = b.due_probes(at(1999));
        assert!(probes.is_empty());
        assert_eq!(next, Some(at(2000)));
        // Another node probes: wait for the time the store gives.
        b.defer_probe(URL, at(6000), at(2000));
        assert_eq!(b.due_probes(at(5999)).1, Some(at(6000)));
        // Closed elsewhere: the parked work comes back.
        let refills = b.sync_circuits(HashMap::new(), at(6100), at(6100));
        assert_eq!(refills.len(), 1);
        assert!(!refills[0].probe);
        assert!(b.open_circuits().is_empty());
        assert!(started(b.admit(URL, false, at(6200))));
    }

    #[test]
    fn a_url_met_after_the_read_starts_open_if_the_cluster_says_so() {
        let mut b = book();
        let open = HashMap::from([(url_key(URL), at(2000))]);
        b.sync_circuits(open, at(100), at(100));
        assert!(matches!(b.admit(URL, false, at(200)), Admit::Park));
        assert!(started(b.admit("https://other.example/", false, at(200))));
    }

    #[test]
    fn a_probe_found_closed_goes_as_an_ordinary_delivery() {
        let mut b = book();
        open_circuit(&mut b, at(0));
        b.parked(URL);
        let (probes, _) = b.due_probes(at(5000));
        assert!(probes[0].probe);
        b.closed_by_cluster(URL);
        assert!(b.open_circuits().is_empty());
        assert!(started(b.admit(URL, false, at(5001))));
    }

    #[test]
    fn only_opening_closing_and_a_failed_probe_are_told_to_the_cluster() {
        let mut b = book();
        for i in 1..=FAILURES_TO_OPEN {
            assert!(started(b.admit(URL, false, at(0))));
            let attempted = b.attempted(URL, Health::Failing, false, at(10));
            let expected = if i == FAILURES_TO_OPEN {
                ClusterWrite::Open {
                    first_probe: at(10).plus(FIRST_COOLDOWN),
                }
            } else {
                ClusterWrite::Nothing
            };
            assert_eq!(attempted.cluster, expected, "attempt {i}");
            b.finished(URL);
        }
        // A delivery already in flight fails while the circuit is open: nothing new.
        assert_eq!(
            b.attempted(URL, Health::Failing, false, at(20)).cluster,
            ClusterWrite::Nothing
        );
        b.parked(URL);
        let probe = b.tick(at(2000)).refills.pop().expect("the probe is due");
        assert!(probe.probe);
        assert_eq!(
            b.attempted(URL, Health::Failing, true, at(2100)).cluster,
            ClusterWrite::ProbeFailed
        );
        assert_eq!(
            b.attempted(URL, Health::Unknown, true, at(2200)).cluster,
            ClusterWrite::Nothing,
            "a probe that says nothing about the URL changes nothing"
        );
        assert_eq!(
            b.attempted(URL, Health::Answered, true, at(2300)).cluster,
            ClusterWrite::Close
        );
        assert_eq!(
            b.attempted(URL, Health::Answered, false, at(2400)).cluster,
            ClusterWrite::Nothing,
            "closed already"
        );
    }

    #[test]
    fn a_claimed_probe_goes_as_the_probe_or_plainly_or_waits_within_bounds() {
        let mut b = book();
        open_circuit(&mut b, at(0));
        assert_eq!(
            b.probe_claimed(URL, ProbeAnswer::Won, at(5000)),
            AfterClaim::Probe
        );
        // Another node's probe is out until 7 s: this one parks and looks again then.
        assert_eq!(
            b.probe_claimed(URL, ProbeAnswer::Wait(at(7000)), at(5000)),
            AfterClaim::ParkUntil(at(7000))
        );
        assert_eq!(b.tick(at(6999)).next_probe, Some(at(7000)));
        // A time already past would have every node ask at once, again and again: not
        // before PROBE_RECHECK.
        assert_eq!(
            b.probe_claimed(URL, ProbeAnswer::Wait(at(4000)), at(5000)),
            AfterClaim::ParkUntil(at(5000).plus(PROBE_RECHECK))
        );
        // A time past any cool-down (a stepped-back clock's): not after MAX_COOLDOWN.
        assert_eq!(
            b.probe_claimed(URL, ProbeAnswer::Wait(at(500_000)), at(5000)),
            AfterClaim::ParkUntil(at(5000).plus(MAX_COOLDOWN))
        );
        // Closed in the cluster: it goes as an ordinary delivery, and the circuit is closed.
        assert_eq!(
            b.probe_claimed(URL, ProbeAnswer::Closed, at(6000)),
            AfterClaim::Send
        );
        assert!(b.open_circuits().is_empty());
        assert!(started(b.admit(URL, false, at(6001))));
    }

    #[test]
    fn a_tick_gives_due_probes_then_refills_the_next_probe_and_the_room() {
        let mut b = book();
        open_circuit(&mut b, at(0));
        b.parked(URL);
        let other = "https://b.example/hook";
        b.parked(other);
        let early = b.tick(at(500));
        assert_eq!(early.next_probe, Some(at(1000)), "the cool-down runs");
        assert_eq!(
            early
                .refills
                .iter()
                .map(|r| (r.url.as_str(), r.probe))
                .collect::<Vec<_>>(),
            vec![(other, false)],
            "only the closed URL's parked work comes back"
        );
        assert_eq!(early.room, 10);
        let due = b.tick(at(1000));
        assert_eq!(
            due.refills
                .iter()
                .map(|r| (r.url.as_str(), r.probe))
                .collect::<Vec<_>>(),
            vec![(URL, true)],
            "the probe is due; the other URL's refill still runs"
        );
        assert_eq!(due.next_probe, None, "the probe is out");
        assert!(started(b.admit(other, false, at(1000))));
        assert_eq!(b.tick(at(1001)).room, 9);
        b.stop();
        let stopping = b.tick(at(1002));
        assert_eq!(stopping.room, 0);
    }

    #[test]
    fn limits_follow_the_settings() {
        let l = Limits::new(256, 8);
        assert_eq!((l.per_url, l.queue_per_url, l.in_flight), (8, 64, 1024));
        let small = Limits::new(4, 8);
        assert_eq!(
            small.queue_per_url, 8,
            "never below the URL's own concurrency"
        );
    }

    #[test]
    fn a_full_queue_parks_and_the_last_finish_refills_in_one_batch() {
        let mut b = book();
        for _ in 0..4 {
            assert!(started(b.admit(URL, false, at(0))));
        }
        assert_eq!(b.park_urls(), vec![URL.to_owned()]);
        assert!(matches!(b.admit(URL, false, at(0)), Admit::Park));
        assert_eq!(b.in_flight(), 4);
        // Over half full: no refill yet.
        assert_eq!(b.finished(URL).refill, None);
        let done = b.finished(URL);
        let refill = done.refill.expect("half empty: refill");
        assert_eq!((refill.limit, refill.probe), (2, false));
        assert!(!done.idle);
        assert!(b.park_urls().is_empty());
        // One refill at a time.
        assert_eq!(b.finished(URL).refill, None);
        assert!(b.refills().is_empty());
        b.refilled(&refill, Some(2));
        let again = b.refills();
        assert_eq!(again.len(), 1, "a full refill means more may wait");
        // Short while one is still queued: an earlier delivery of the lane may be in
        // flight, so parked work is still assumed.
        b.refilled(&again[0], Some(0));
        assert_eq!(b.refills().len(), 1);
    }

    #[test]
    fn a_short_refill_forgets_parked_work_unless_more_was_parked_meanwhile() {
        let mut b = book();
        b.parked(URL);
        let refill = b.refills().pop().unwrap();
        assert_eq!(refill.limit, 4);
        b.parked(URL); // intake parked another while the refill ran
        b.refilled(&refill, Some(1));
        let second = b.refills().pop().expect("the newer parked work is kept");
        b.refilled(&second, Some(0));
        assert!(b.refills().is_empty(), "short and nothing new: none parked");
        assert!(b.urls.is_empty(), "nothing left to remember");
    }

    #[test]
    fn a_failed_refill_keeps_the_parked_work() {
        let mut b = book();
        b.parked(URL);
        let refill = b.refills().pop().unwrap();
        b.refilled(&refill, None);
        assert_eq!(b.refills().len(), 1);
    }

    #[test]
    fn global_room_bounds_refills_and_admission() {
        let mut b = Book::new(Limits {
            per_url: 2,
            queue_per_url: 8,
            in_flight: 3,
        });
        for i in 0..3 {
            assert!(started(b.admit(
                &format!("https://{i}.example/"),
                false,
                at(0)
            )));
        }
        assert_eq!(b.room(), 0);
        b.parked(URL);
        assert!(b.refills().is_empty(), "no room anywhere");
        b.finished("https://0.example/");
        assert_eq!(b.refills()[0].limit, 1);
        b.stop();
        assert_eq!(b.room(), 0, "stopping: no room");
    }

    #[test]
    fn an_open_circuit_parks_then_probes_one_at_a_time() {
        let mut b = book();
        open_circuit(&mut b, at(0));
        assert!(matches!(b.admit(URL, false, at(1)), Admit::Park));
        assert!(b.refills().is_empty(), "no refills while open");
        let (probes, next) = b.due_probes(at(1));
        assert!(probes.is_empty());
        assert_eq!(next, Some(at(FIRST_COOLDOWN.as_millis() as i64)));

        let cooled = at(FIRST_COOLDOWN.as_millis() as i64);
        let (probes, _) = b.due_probes(cooled);
        assert_eq!(probes.len(), 1);
        assert!(probes[0].probe && probes[0].limit == 1);
        assert!(b.due_probes(cooled).0.is_empty(), "one probe at a time");
        b.refilled(&probes[0], Some(1));
        assert!(matches!(
            b.admit(URL, true, cooled),
            Admit::Start { probe: true, .. }
        ));
        assert!(
            matches!(b.admit(URL, false, cooled), Admit::Park),
            "others wait for the probe's answer"
        );
        let answered = b.attempted(URL, Health::Answered, true, cooled);
        assert_eq!(answered.cluster, ClusterWrite::Close);
        let refill = b.finished(URL).refill.expect("closed: parked work flows");
        assert!(!refill.probe);
        assert!(b.open_circuits().is_empty());
    }

    #[test]
    fn a_probe_that_finds_nothing_or_fails_to_go_frees_the_slot() {
        let mut b = book();
        open_circuit(&mut b, at(0));
        b.parked(URL);
        let cooled = at(FIRST_COOLDOWN.as_millis() as i64);
        let probe = b.due_probes(cooled).0.pop().unwrap();
        b.refilled(&probe, Some(0));
        assert!(
            b.due_probes(cooled).0.is_empty(),
            "nothing parked: the next delivery to arrive is the probe"
        );
        assert!(matches!(
            b.admit(URL, false, cooled),
            Admit::Start { probe: true, .. }
        ));
        b.probe_abandoned(URL);
        b.finished(URL);
        b.parked(URL);
        let probe = b.due_probes(cooled).0.pop().expect("parked again: a probe");
        b.refilled(&probe, None);
        let probe = b.due_probes(cooled).0.pop().expect("refill failed: again");
        b.refilled(&probe, Some(1));
        assert!(matches!(
            b.admit(URL, true, cooled),
            Admit::Start { probe: true, .. }
        ));
        assert!(b.due_probes(cooled).0.is_empty(), "the probe is out");
        b.probe_abandoned(URL);
        b.finished(URL);
        assert_eq!(
            b.due_probes(cooled).0.len(),
            1,
            "abandoned (webhook gone, lease lost): another may go"
        );
    }

    #[test]
    fn a_failed_probe_doubles_the_wait() {
        let mut b = book();
        open_circuit(&mut b, at(0));
        b.parked(URL);
        let cooled = at(FIRST_COOLDOWN.as_millis() as i64);
        let probe = b.due_probes(cooled).0.pop().unwrap();
        b.refilled(&probe, Some(1));
        b.admit(URL, true, cooled);
        let failed = b.attempted(URL, Health::Failing, true, cooled);
        assert_eq!(failed.cluster, ClusterWrite::ProbeFailed, "open already");
        let next = failed.probe_due;
        let doubled = cooled.plus(FIRST_COOLDOWN * 2);
        assert_eq!(next, Some(doubled));
        b.finished(URL);
        assert!(b.due_probes(cooled).0.is_empty());
        assert_eq!(b.due_probes(doubled).0.len(), 1);
    }

    #[test]
    fn a_delivery_that_waited_while_the_circuit_opened_is_parked_or_probes() {
        let mut b = book();
        assert!(started(b.admit(URL, false, at(0))));
        open_circuit(&mut b, at(0));
        assert_eq!(b.recheck(URL, at(1)), Gate::Hold);
        let cooled = at(FIRST_COOLDOWN.as_millis() as i64);
        assert_eq!(b.recheck(URL, cooled), Gate::Probe, "it becomes the probe");
        assert_eq!(b.recheck(URL, cooled), Gate::Hold);
        assert_eq!(b.recheck("https://other.example/", cooled), Gate::Send);
    }

    #[test]
    fn an_idle_healthy_url_is_forgotten_and_the_last_finish_says_idle() {
        let mut b = book();
        assert!(started(b.admit(URL, false, at(0))));
        b.attempted(URL, Health::Answered, false, at(0));
        let done = b.finished(URL);
        assert!(done.idle && done.refill.is_none());
        assert!(b.urls.is_empty());
        // A failing one is remembered (its failure count matters).
        b.admit(URL, false, at(0));
        b.attempted(URL, Health::Failing, false, at(0));
        b.finished(URL);
        assert_eq!(b.urls.len(), 1);
    }
}
