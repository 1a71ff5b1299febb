//! What tocsin counts for Prometheus (`GET /metrics`). One registry for the process; the
//! code that does the work counts it here. Labels take a few known values each (event
//! types, outcomes, results, states): never ids or URLs, whose number has no bound.

use std::sync::{atomic::AtomicI64, LazyLock};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
        info::Info,
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

pub struct Metrics {
    registry: Registry,
    events: Family<TypeLabel, Counter>,
    deliveries: Family<OutcomeLabel, Counter>,
    attempts: Family<ResultLabel, Counter>,
    attempt_duration: Histogram,
    intake_duration: Histogram,
    intake_batch: Histogram,
    notifications: Family<StateLabel, Counter>,
    pub pending: Gauge<i64, AtomicI64>,
    pub parked: Gauge<i64, AtomicI64>,
    pub circuits_open: Gauge<i64, AtomicI64>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The values of `result` on `tocsin_attempts_total`.
const RESULTS: [&str; 7] = [
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "timeout",
    "connection",
    "refused",
];

/// An attempt's `result` label. A receiver that sent a status line and then stalled has not
/// answered: its attempt failed as a timeout, whatever the status said (it counted as
/// `2xx` before).
fn attempt_result(status: Option<u16>, error: Option<&str>) -> &'static str {
    match (status, error) {
        (_, Some(e)) if e.ends_with("(timeout)") => "timeout",
        (Some(200..=299), _) => "2xx",
        (Some(300..=399), _) => "3xx",
        (Some(400..=499), _) => "4xx",
        (Some(_), _) => "5xx",
        (None, Some(e)) if e.contains("timed out") || e.contains("timeout") => "timeout",
        (None, Some(e)) if e.starts_with("refused") => "refused",
        (None, _) => "connection",
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let events = Family::<TypeLabel, Counter>::default();
        registry.register(
            "tocsin_events",
            "Events accepted at the intake, by type",
            events.clone(),
        );
        let deliveries = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "tocsin_deliveries",
            "Deliveries finished, by outcome (succeeded, failed, cancelled, expired)",
            deliveries.clone(),
        );
        let attempts = Family::<ResultLabel, Counter>::default();
        registry.register(
            "tocsin_attempts",
            "HTTP calls made, by result (2xx, 4xx, 5xx, timeout, connection, refused)",
            attempts.clone(),
        );
        // 1 ms to ~65 s.
        let attempt_duration = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "tocsin_attempt_duration_seconds",
            "Time of each HTTP call to a receiver",
            attempt_duration.clone(),
        );
        // 0.1 ms to ~3 s.
        let intake_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 15));
        registry.register(
            "tocsin_intake_duration_seconds",
            "Time from receiving an event to its 202 (committed)",
            intake_duration.clone(),
        );
        // 1 to 256 (a batch's most).
        let intake_batch = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "tocsin_intake_batch_events",
            "Events stored per intake commit (group commit; see delivery.intake_linger)",
            intake_batch.clone(),
        );
        let notifications = Family::<StateLabel, Counter>::default();
        registry.register(
            "tocsin_notifications",
            "Failure e-mails and notices, by how they ended (sent, skipped, failed)",
            notifications.clone(),
        );
        let pending = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "tocsin_deliveries_pending",
            "Deliveries not finished (in the database, all nodes)",
            pending.clone(),
        );
        let parked = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "tocsin_deliveries_parked",
            "Pending deliveries waiting parked behind a full queue or an open circuit",
            parked.clone(),
        );
        let circuits_open = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "tocsin_circuits_open",
            "URLs whose circuit is open, for the whole cluster (every node reports the same)",
            circuits_open.clone(),
        );
        registry.register(
            "tocsin_build",
            "The running version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        // Every label value known up front, at zero: a series exists before its first
        // count, so rates and alerts see 0 rather than nothing.
        for t in crate::domain::event_type::EVENT_TYPES {
            let _ = events.get_or_create(&TypeLabel {
                r#type: t.name.to_owned(),
            });
        }
        for outcome in ["succeeded", "failed", "cancelled", "expired"] {
            let _ = deliveries.get_or_create(&OutcomeLabel { outcome });
        }
        for result in RESULTS {
            let _ = attempts.get_or_create(&ResultLabel { result });
        }
        for state in ["sent", "skipped", "failed"] {
            let _ = notifications.get_or_create(&StateLabel { state });
        }
        Self {
            registry,
            events,
            deliveries,
            attempts,
            attempt_duration,
            intake_duration,
            intake_batch,
            notifications,
            pending,
            parked,
            circuits_open,
        }
    }

    pub fn event(&self, event_type: &str) {
        self.events
            .get_or_create(&TypeLabel {
                r#type: event_type.to_owned(),
            })
            .inc();
    }

    /// `outcome`: succeeded, failed, cancelled or expired.
    pub fn deliveries_finished(&self, outcome: &'static str, n: u64) {
        if n > 0 {
            self.deliveries
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(n);
        }
    }

    pub fn attempt(&self, status: Option<u16>, error: Option<&str>, seconds: f64) {
        let result = attempt_result(status, error);
        self.attempts.get_or_create(&ResultLabel { result }).inc();
        self.attempt_duration.observe(seconds);
    }

    pub fn intake(&self, seconds: f64) {
        self.intake_duration.observe(seconds);
    }

    /// An intake commit of `events`.
    pub fn intake_batch(&self, events: usize) {
        self.intake_batch.observe(events as f64);
    }

    /// `state`: sent, skipped or failed (an SMTP failure; it is tried again).
    pub fn notifications_finished(&self, state: &'static str, n: u64) {
        if n > 0 {
            self.notifications
                .get_or_create(&StateLabel { state })
                .inc_by(n);
        }
    }

    /// The text format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::attempt_result;

    #[test]
    fn an_answer_that_stalled_after_its_status_is_a_timeout() {
        let stalled =
            "answered 200 OK but the rest of the answer did not come within 10 s (timeout)";
        assert_eq!(attempt_result(Some(200), Some(stalled)), "timeout");
        assert_eq!(attempt_result(Some(200), None), "2xx");
        assert_eq!(
            attempt_result(
                Some(302),
                Some("redirects are not followed: answer 302 Found to https://x/timeout")
            ),
            "3xx"
        );
        assert_eq!(attempt_result(Some(503), None), "5xx");
        assert_eq!(
            attempt_result(None, Some("no answer within 10 s (timeout)")),
            "timeout"
        );
        assert_eq!(
            attempt_result(None, Some("refused to connect to 10.0.0.1")),
            "refused"
        );
        assert_eq!(attempt_result(None, Some("connection reset")), "connection");
    }
}
