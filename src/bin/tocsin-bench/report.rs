//! The report: a table for people, JSON for files.

use std::{collections::HashSet, time::Instant};

use serde_json::{json, Value};

use super::{load::Outcome, receiver::Arrival};

pub struct Inputs<'a> {
    pub scenario: String,
    pub backend: &'a str,
    pub events: usize,
    pub expected: usize,
    pub intake: &'a Outcome,
    /// Where end-to-end time starts: the first post, or (backlog) the receiver coming up.
    pub drain_started: Instant,
    pub arrivals: &'a [Arrival],
    pub baseline: Option<f64>,
    pub peak_rss_mb: f64,
    pub pile_up_rss_mb: Option<f64>,
    pub cpu_seconds: f64,
    /// From the first post to the last arrival.
    pub cpu_seconds_during_load: f64,
    /// PostgreSQL's, over the same time, when it runs on this machine.
    pub postgres_cpu_seconds_during_load: Option<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn build(i: Inputs<'_>) -> Value {
    let mut seen = HashSet::new();
    let mut latencies = Vec::new();
    for a in i.arrivals {
        if !seen.insert(a.webhook_id.as_str()) {
            continue;
        }
        let index = a
            .event
            .strip_prefix("bench-")
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(sent) = index.and_then(|n| i.intake.sent.get(n)) {
            latencies.push(a.at.saturating_duration_since(*sent).as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let distinct = seen.len();
    let duplicates = i.arrivals.len() - distinct;
    let missing = i.expected.saturating_sub(distinct);
    let last = i
        .arrivals
        .iter()
        .map(|a| a.at)
        .max()
        .unwrap_or(i.drain_started);
    let e2e_seconds = last
        .saturating_duration_since(i.drain_started)
        .as_secs_f64()
        .max(1e-9);
    let deliveries_per_s = distinct as f64 / e2e_seconds;
    json!({
        "scenario": i.scenario,
        "backend": i.backend,
        "events": i.events,
        "deliveries_expected": i.expected,
        "deliveries_received": i.arrivals.len(),
        "deliveries_distinct": distinct,
        "duplicates": duplicates,
        "missing": missing,
        "complete": missing == 0 && duplicates == 0,
        "intake_events_per_s": i.intake.per_second(),
        "end_to_end_deliveries_per_s": deliveries_per_s,
        "end_to_end_seconds": e2e_seconds,
        "baseline_requests_per_s": i.baseline,
        "ratio_to_baseline": i.baseline.map(|b| deliveries_per_s / b),
        "latency_ms": {
            "p50": percentile(&latencies, 50.0),
            "p90": percentile(&latencies, 90.0),
            "p99": percentile(&latencies, 99.0),
            "max": latencies.last().copied().unwrap_or(0.0),
        },
        "tocsin_peak_rss_mb": i.peak_rss_mb,
        "tocsin_peak_rss_mb_during_pile_up": i.pile_up_rss_mb,
        "tocsin_cpu_seconds": i.cpu_seconds,
        "tocsin_cpu_ms_per_event": i.cpu_seconds_during_load * 1000.0 / i.events.max(1) as f64,
        "postgresql_cpu_ms_per_event": i
            .postgres_cpu_seconds_during_load
            .map(|s| s * 1000.0 / i.events.max(1) as f64),
    })
}

pub fn table(r: &Value) -> String {
    let num = |v: &Value| v.as_f64().map_or("-".to_owned(), |n| format!("{n:.1}"));
    // CPU per event is a fraction of a millisecond.
    let ms = |v: &Value| v.as_f64().map_or("-".to_owned(), |n| format!("{n:.3}"));
    let rows = [
        (
            "scenario",
            format!(
                "{} on {}",
                r["scenario"].as_str().unwrap_or(""),
                r["backend"].as_str().unwrap_or("")
            ),
        ),
        ("events", r["events"].to_string()),
        (
            "deliveries",
            format!(
                "{} expected, {} distinct received, {} missing, {} duplicates",
                r["deliveries_expected"], r["deliveries_distinct"], r["missing"], r["duplicates"]
            ),
        ),
        ("intake events/s", num(&r["intake_events_per_s"])),
        (
            "end-to-end deliveries/s",
            num(&r["end_to_end_deliveries_per_s"]),
        ),
        (
            "raw baseline requests/s",
            num(&r["baseline_requests_per_s"]),
        ),
        (
            "ratio to baseline",
            r["ratio_to_baseline"]
                .as_f64()
                .map_or("-".into(), |x| format!("{:.0} %", x * 100.0)),
        ),
        (
            "latency p50 / p90 / p99 / max (ms)",
            format!(
                "{} / {} / {} / {}",
                num(&r["latency_ms"]["p50"]),
                num(&r["latency_ms"]["p90"]),
                num(&r["latency_ms"]["p99"]),
                num(&r["latency_ms"]["max"])
            ),
        ),
        ("tocsin peak RSS (MB)", num(&r["tocsin_peak_rss_mb"])),
        (
            "tocsin peak RSS during pile-up (MB)",
            num(&r["tocsin_peak_rss_mb_during_pile_up"]),
        ),
        ("tocsin CPU seconds", num(&r["tocsin_cpu_seconds"])),
        (
            "tocsin CPU per event, under load (ms)",
            ms(&r["tocsin_cpu_ms_per_event"]),
        ),
        (
            "PostgreSQL CPU per event, under load (ms)",
            ms(&r["postgresql_cpu_ms_per_event"]),
        ),
        (
            "every delivery exactly once",
            if r["complete"] == true {
                "yes".into()
            } else {
                "NO".into()
            },
        ),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
