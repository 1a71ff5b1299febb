//! The rules a loaded configuration must keep that its types alone do not express, one
//! function per section; every broken rule is reported, each naming its key.

use std::{net::SocketAddr, time::Duration};

use super::{format_duration, Config, ConfigError};

/// More async workers than this is a typo, not a machine.
const MAX_WORKER_THREADS: u16 = 1024;
/// An event's answer waits up to `delivery.intake_linger`: beyond this it would be felt.
const MAX_INTAKE_LINGER: Duration = Duration::from_millis(100);
/// A lane's next delivery and a retry's schedule wait up to `delivery.record_linger`.
const MAX_RECORD_LINGER: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Attempts a retry schedule may list (the last wait repeats past them).
pub(super) const MAX_RETRY_SCHEDULE: usize = 100;

/// The problems found, collected by key.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn bad(&mut self, key: &str, message: String) {
        self.0.push(ConfigError::BadValue {
            origin: "settings".to_owned(),
            key: key.to_owned(),
            message,
        });
    }
}

/// Every rule, every section.
pub fn check(config: &Config) -> Result<(), Vec<ConfigError>> {
    let mut problems = Problems::default();
    top_level(config, &mut problems);
    delivery(config, &mut problems);
    ceilings(config, &mut problems);
    http(config, &mut problems);
    if problems.0.is_empty() {
        Ok(())
    } else {
        Err(problems.0)
    }
}

fn top_level(config: &Config, problems: &mut Problems) {
    if !config.database_url.starts_with("sqlite:")
        && !config.database_url.starts_with("postgres://")
        && !config.database_url.starts_with("postgresql://")
    {
        problems.bad(
            "database_url",
            "must start with sqlite:// or postgres://".to_owned(),
        );
    }
    if !config.metrics_listen.is_empty() && config.metrics_listen.parse::<SocketAddr>().is_err() {
        problems.bad(
            "metrics_listen",
            format!(
                "must be an address and port like 127.0.0.1:9090, or empty, got \"{}\"",
                config.metrics_listen
            ),
        );
    }
    if !config.secret_key.is_empty() {
        if let Err(e) = crate::domain::sealing::SecretKey::from_base64(&config.secret_key) {
            problems.bad("secret_key", e);
        }
    }
    if config.worker_threads > MAX_WORKER_THREADS {
        problems.bad(
            "worker_threads",
            format!(
                "must be at most {MAX_WORKER_THREADS} (0 means half the cores), got {}",
                config.worker_threads
            ),
        );
    }
}

fn delivery(config: &Config, problems: &mut Problems) {
    let d = &config.delivery;
    if d.retry_schedule.is_empty() {
        problems.bad(
            "delivery.retry_schedule",
            "must hold at least one duration, e.g. [\"10s\", \"1m\"]".to_owned(),
        );
    }
    if d.concurrency == 0 || d.per_url_concurrency == 0 {
        problems.bad(
            "delivery.concurrency",
            "and delivery.per_url_concurrency must be at least 1".to_owned(),
        );
    }
    if d.lease < Duration::from_secs(1) {
        problems.bad(
            "delivery.lease",
            "must be at least 1s, like 60s: a claim shorter than a round trip to the database is taken over while it is used".to_owned(),
        );
    }
    if d.max_age.is_zero() {
        problems.bad(
            "delivery.max_age",
            "must be above 0, like 24h: nothing should wait for ever".to_owned(),
        );
    }
    if d.retry_schedule.len() > MAX_RETRY_SCHEDULE {
        problems.bad(
            "delivery.retry_schedule",
            format!(
                "must hold at most {MAX_RETRY_SCHEDULE} durations, got {}",
                d.retry_schedule.len()
            ),
        );
    }
}

/// Past these a value is a slip of the unit (`10h` for `10s`), felt as a stop that hangs,
/// a delivery sent weeks late, a webhook never disabled.
fn ceilings(config: &Config, problems: &mut Problems) {
    let d = &config.delivery;
    let longest_retry = d.retry_schedule.iter().max().copied().unwrap_or_default();
    for (key, value, most, why) in [
        (
            "delivery.record_linger",
            d.record_linger,
            MAX_RECORD_LINGER,
            "a lane's next delivery waits it",
        ),
        (
            "delivery.intake_linger",
            d.intake_linger,
            MAX_INTAKE_LINGER,
            "every sender's answer waits it",
        ),
        (
            "delivery.lease",
            d.lease,
            10 * MINUTE,
            "a dead node's deliveries wait it out",
        ),
        (
            "delivery.shutdown_grace",
            d.shutdown_grace,
            10 * MINUTE,
            "a stop waits it for attempts in flight, each at most 30s",
        ),
        (
            "delivery.max_age",
            d.max_age,
            30 * DAY,
            "news of an incident older than that is no news",
        ),
        (
            "delivery.disable_after",
            d.disable_after,
            30 * DAY,
            "0 never disables",
        ),
        (
            "delivery.retry_schedule",
            longest_retry,
            DAY,
            "each wait between two attempts",
        ),
        (
            "notify.window",
            config.notify.window,
            DAY,
            "a digest of later failures waits it",
        ),
        (
            "http.header_read_timeout",
            config.http.header_read_timeout,
            5 * MINUTE,
            "a slow client holds a connection this long",
        ),
        (
            "http.idle_timeout",
            config.http.idle_timeout,
            60 * MINUTE,
            "a resting connection is held this long",
        ),
    ] {
        if value > most {
            problems.bad(
                key,
                format!(
                    "must be at most {} ({why}), got {}",
                    format_duration(most),
                    format_duration(value)
                ),
            );
        }
    }
}

fn http(config: &Config, problems: &mut Problems) {
    let h = &config.http;
    if h.max_connections == 0 || h.header_read_timeout.is_zero() || h.idle_timeout.is_zero() {
        problems.bad(
            "http.max_connections",
            "http.header_read_timeout and http.idle_timeout must be above 0".to_owned(),
        );
    }
}
