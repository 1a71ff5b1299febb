//! Settings: built-in defaults, then `tocsin.toml` (or `--config PATH`), then `TOCSIN_*`
//! environment variables, then command-line flags (`layers.rs`). Every key is documented
//! once, in [`KEYS`], and printed by `tocsin config`; values are typed here, and every
//! problem is reported at once.

mod duration;
mod layers;

use std::{net::SocketAddr, path::Path, time::Duration};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use toml::Table;

pub use duration::{format_duration, parse_duration};
use layers::Layers;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(with = "address")]
    pub listen: SocketAddr,
    pub database_url: String,
    pub public_url: String,
    /// Base64 of 32 bytes; empty means `tocsin.key` (see `secret_key.rs`).
    pub secret_key: String,
    pub log_format: LogFormat,
    /// Where `/metrics` is also served without authentication; empty: off.
    pub metrics_listen: String,
    /// Threads running the async work; 0: see [`Config::async_workers`].
    pub worker_threads: u16,
    pub delivery: DeliveryConfig,
    pub smtp: SmtpConfig,
    pub notify: NotifyConfig,
    pub http: HttpConfig,
    pub retention: RetentionConfig,
}

/// How long finished work is kept; 0 keeps everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Finished deliveries (with their attempts, payloads and events no longer referred to).
    #[serde(with = "duration::one")]
    pub deliveries: Duration,
    /// Sent or skipped notifications and notices, audit entries, finished bulk retries.
    #[serde(with = "duration::one")]
    pub notifications_and_audit: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            deliveries: Duration::from_secs(30 * 24 * 3600),
            notifications_and_audit: Duration::from_secs(180 * 24 * 3600),
        }
    }
}

/// Limits of the HTTP API per caller (a token, or a logged-in person).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub max_connections: u32,
    #[serde(with = "duration::one")]
    pub header_read_timeout: Duration,
    #[serde(with = "duration::one")]
    pub idle_timeout: Duration,
    pub rate_limit: u32,
    pub rate_burst: u32,
    pub intake_rate_limit: u32,
    pub intake_rate_burst: u32,
    /// One organization's API calls and pages, all its tokens and people together.
    pub organization_rate_limit: u32,
    pub organization_rate_burst: u32,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` name the client.
    #[serde(with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            rate_limit: 50,
            rate_burst: 200,
            intake_rate_limit: 20_000,
            intake_rate_burst: 40_000,
            organization_rate_limit: 200,
            organization_rate_burst: 800,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    #[serde(with = "networks")]
    pub allowed_networks: Vec<IpNet>,
    #[serde(with = "duration::list")]
    pub retry_schedule: Vec<Duration>,
    pub concurrency: u32,
    pub per_url_concurrency: u32,
    #[serde(with = "duration::one")]
    pub shutdown_grace: Duration,
    /// A delivery still pending this long after it was made fails as expired.
    #[serde(with = "duration::one")]
    pub max_age: Duration,
    /// A webhook whose every URL has failed this long without a success is disabled; 0
    /// never.
    #[serde(with = "duration::one")]
    pub disable_after: Duration,
    /// How long the recorder waits for more attempt results to commit with one it has;
    /// 0 commits each batch at once.
    #[serde(with = "duration::one")]
    pub record_linger: Duration,
    /// How long a batch of one received event may wait for company before it commits,
    /// when events come often (see `intake/company.rs`); 0 never waits.
    #[serde(with = "duration::one")]
    pub intake_linger: Duration,
    /// How long a node's claim on a delivery lasts: what a dead node's work waits before
    /// another takes it. An attempt's claim always covers its timeout and 30 s more.
    #[serde(with = "duration::one")]
    pub lease: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: String,
    pub password: String,
    pub from: String,
}

/// How `tocsin serve` writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line: timestamp, level, target, message and fields.
    Json,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (port 25, or a local relay).
    None,
    /// Plain, then upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl SmtpTls {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::Starttls => "starttls",
            SmtpTls::Tls => "tls",
        }
    }
}

impl std::fmt::Display for SmtpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(with = "duration::one")]
    pub window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://tocsin.db".to_owned(),
            public_url: String::new(),
            secret_key: String::new(),
            log_format: LogFormat::Text,
            metrics_listen: String::new(),
            worker_threads: 0,
            delivery: DeliveryConfig::default(),
            smtp: SmtpConfig::default(),
            notify: NotifyConfig::default(),
            http: HttpConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self {
            allowed_networks: Vec::new(),
            retry_schedule: vec![
                Duration::from_secs(10),
                minutes(1),
                minutes(5),
                minutes(15),
                minutes(30),
                minutes(60),
            ],
            concurrency: 256,
            per_url_concurrency: 8,
            shutdown_grace: Duration::from_secs(10),
            max_age: Duration::from_secs(24 * 3600),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            record_linger: Duration::from_millis(20),
            lease: Duration::from_secs(60),
            intake_linger: Duration::from_millis(2),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: String::new(),
            password: String::new(),
            from: String::new(),
        }
    }
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// More async workers than this is a typo, not a machine.
const MAX_WORKER_THREADS: u16 = 1024;
/// An event's answer waits up to `delivery.intake_linger`: beyond this it would be felt.
const MAX_INTAKE_LINGER: Duration = Duration::from_millis(100);
/// A lane's next delivery and a retry's schedule wait up to `delivery.record_linger`.
const MAX_RECORD_LINGER: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Attempts a retry schedule may list (the last wait repeats past them).
const MAX_RETRY_SCHEDULE: usize = 100;

/// Every key with its one-line meaning. `tocsin config` prints these; a unit test keeps
/// this list and the struct in step.
pub const KEYS: &[(&str, &str)] = &[
    ("listen", "Address and port the HTTP API listens on."),
    (
        "database_url",
        "sqlite://PATH (embedded, created if missing) or postgres://USER@HOST/DB.",
    ),
    (
        "public_url",
        "Address people use to reach tocsin, for links in e-mails; empty means http://<listen>.",
    ),
    (
        "log_format",
        "text, or json for one JSON object per line (timestamp, level, target, fields); the level follows RUST_LOG.",
    ),
    (
        "metrics_listen",
        "Address and port serving GET /metrics without authentication, for Prometheus (keep it private); empty: off. /metrics on listen always needs the read ability.",
    ),
    (
        "secret_key",
        "Key that seals webhook secrets, credential headers and URL passwords in the database (base64 of 32 bytes); empty means tocsin.key beside the SQLite file, generated on first start. Nodes on one PostgreSQL must share it.",
    ),
    (
        "worker_threads",
        "Threads running the async work (HTTP, matching, rendering, sending); 0 means half the machine's cores, at least one, leaving the rest to the database and the network.",
    ),
    (
        "delivery.allowed_networks",
        "CIDRs that webhooks may reach although private or loopback, e.g. [\"10.0.0.0/8\"].",
    ),
    (
        "delivery.retry_schedule",
        "Waits before retry 1, 2, …; the last repeats. Durations like 10s, 5m, 1h.",
    ),
    (
        "delivery.concurrency",
        "Most HTTP calls in flight at once, over all URLs.",
    ),
    (
        "delivery.per_url_concurrency",
        "Most HTTP calls in flight at once to one URL.",
    ),
    (
        "delivery.shutdown_grace",
        "On SIGTERM, how long attempts in flight may finish before their leases are given back.",
    ),
    (
        "delivery.max_age",
        "A delivery still pending this long after it was made (retrying, parked behind an open circuit or its lane) fails as expired, and is e-mailed like any failure.",
    ),
    (
        "delivery.disable_after",
        "A webhook whose every URL has failed this long without one success is disabled (and its failure addresses told); 0s never.",
    ),
    (
        "delivery.record_linger",
        "How long attempt results wait for company before they are written (one commit for many at low rates; 0s writes each at once); a lane's next delivery may start that much later (at most 1s).",
    ),
    (
        "delivery.lease",
        "How long a node's claim on a delivery lasts: a node that dies mid-attempt has its deliveries taken over by another this long after its claim (an attempt's claim always covers its timeout and 30s more); at least 1s, at most 10m.",
    ),
    (
        "delivery.intake_linger",
        "How long a received event may wait for the next one so that both are stored in one commit; only when the last tenth of a second's rate brings half an event to four within one wait (250 to 2,000 events/s at 2ms), and not right after a wait that caught none; the sender's answer waits that much longer (0s never waits; at most 100ms).",
    ),
    (
        "smtp.host",
        "SMTP server for failure e-mails; empty means e-mails are recorded, not sent.",
    ),
    (
        "smtp.port",
        "SMTP port: 587 for starttls, 465 for tls, 25 for none.",
    ),
    ("smtp.tls", "none, starttls or tls."),
    (
        "smtp.username",
        "SMTP user name; empty means no authentication.",
    ),
    ("smtp.password", "SMTP password."),
    ("smtp.from", "From address of failure e-mails."),
    (
        "notify.window",
        "At most one failure e-mail per webhook in this window; later failures wait for a digest.",
    ),
    (
        "http.max_connections",
        "Most open client connections; past it new ones are closed at once.",
    ),
    (
        "http.header_read_timeout",
        "A request's headers must arrive within this (from the connection's opening or the request's first byte).",
    ),
    (
        "http.idle_timeout",
        "A keep-alive connection resting between requests is closed after this.",
    ),
    (
        "http.rate_limit",
        "API requests per second per token or person (past the burst: 429 with Retry-After); 0 for no limit.",
    ),
    ("http.rate_burst", "API requests a caller may make at once above the rate."),
    (
        "http.trusted_proxies",
        "CIDRs of the reverse proxies in front of tocsin, e.g. [\"10.0.0.0/8\"]: from them, X-Forwarded-For (else Forwarded) names the client whose failed logins are counted. Empty: the connection's address is the client.",
    ),
    (
        "http.intake_rate_limit",
        "POST /v3/events per second per token, counted apart from other calls; 0 for no limit.",
    ),
    ("http.intake_rate_burst", "Events a token may post at once above that rate."),
    (
        "http.organization_rate_limit",
        "API requests and pages per second for one organization, all its tokens and people together (each also has http.rate_limit); 0 for no limit.",
    ),
    (
        "http.organization_rate_burst",
        "What an organization may request at once above that rate.",
    ),
    (
        "retention.deliveries",
        "Finished deliveries older than this are deleted, with their attempts, payloads and events nothing else refers to; 0s keeps everything.",
    ),
    (
        "retention.notifications_and_audit",
        "Sent or skipped notifications and notices, audit entries and finished bulk retries older than this are deleted; 0s keeps everything.",
    ),
];

/// Values from the command line, applied last.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_path: Option<std::path::PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("{origin}: unknown key `{key}`; known keys: {known}")]
    UnknownKey {
        origin: String,
        key: String,
        known: String,
    },
    #[error("{origin}: `{key}` {message}")]
    BadValue {
        origin: String,
        key: String,
        message: String,
    },
    /// Several of the above, one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Problems(Vec<ConfigError>),
}

impl ConfigError {
    fn all(mut problems: Vec<ConfigError>) -> Self {
        if problems.len() == 1 {
            problems.remove(0)
        } else {
            ConfigError::Problems(problems)
        }
    }
}

impl Config {
    /// The text `tocsin config` prints: a valid tocsin.toml holding every default, each key
    /// preceded by its meaning and its environment variable.
    pub fn describe_defaults() -> String {
        layers::describe_defaults()
    }

    /// Loads settings in the documented order from the process environment.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        Self::load_from(overrides, std::env::vars(), Path::new("tocsin.toml"))
    }

    /// The same, with the environment and the default file name given (for tests).
    pub fn load_from(
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
        default_file: &Path,
    ) -> Result<Config, ConfigError> {
        let mut layers = Layers::new();
        let file = match &overrides.config_path {
            Some(path) => Some(path.as_path()),
            None => default_file.exists().then_some(default_file),
        };
        if let Some(path) = file {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: origin.clone(),
                source,
            })?;
            let table: Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: origin.clone(),
                    message: e.message().to_owned(),
                })?;
            layers.file(table, &origin);
        }

        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("TOCSIN_"))
            .collect();
        env.sort();
        for (var, text) in env {
            let key = var["TOCSIN_".len()..]
                .to_ascii_lowercase()
                .replace("__", ".");
            layers.text(&key, &text, &format!("environment variable {var}"));
        }

        let flags = [
            ("listen", &overrides.listen),
            ("database_url", &overrides.database_url),
        ];
        for (key, value) in flags {
            if let Some(text) = value {
                layers.text(key, text, "command line");
            }
        }

        let config = layers.finish().map_err(ConfigError::all)?;
        config.check().map_err(ConfigError::all)?;
        Ok(config)
    }

    /// Rules the types alone do not express; every broken one is reported.
    fn check(&self) -> Result<(), Vec<ConfigError>> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| {
            problems.push(ConfigError::BadValue {
                origin: "settings".to_owned(),
                key: key.to_owned(),
                message,
            })
        };
        if !self.database_url.starts_with("sqlite:")
            && !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
        {
            bad(
                "database_url",
                "must start with sqlite:// or postgres://".to_owned(),
            );
        }
        if !self.metrics_listen.is_empty() && self.metrics_listen.parse::<SocketAddr>().is_err() {
            bad(
                "metrics_listen",
                format!(
                    "must be an address and port like 127.0.0.1:9090, or empty, got \"{}\"",
                    self.metrics_listen
                ),
            );
        }
        if !self.secret_key.is_empty() {
            if let Err(e) = crate::domain::sealing::SecretKey::from_base64(&self.secret_key) {
                bad("secret_key", e);
            }
        }
        if self.worker_threads > MAX_WORKER_THREADS {
            bad(
                "worker_threads",
                format!(
                    "must be at most {MAX_WORKER_THREADS} (0 means half the cores), got {}",
                    self.worker_threads
                ),
            );
        }
        if self.delivery.retry_schedule.is_empty() {
            bad(
                "delivery.retry_schedule",
                "must hold at least one duration, e.g. [\"10s\", \"1m\"]".to_owned(),
            );
        }
        if self.delivery.concurrency == 0 || self.delivery.per_url_concurrency == 0 {
            bad(
                "delivery.concurrency",
                "and delivery.per_url_concurrency must be at least 1".to_owned(),
            );
        }
        if self.delivery.lease < Duration::from_secs(1) {
            bad(
                "delivery.lease",
                "must be at least 1s, like 60s: a claim shorter than a round trip to the database is taken over while it is used".to_owned(),
            );
        }
        if self.delivery.max_age.is_zero() {
            bad(
                "delivery.max_age",
                "must be above 0, like 24h: nothing should wait for ever".to_owned(),
            );
        }
        if self.delivery.retry_schedule.len() > MAX_RETRY_SCHEDULE {
            bad(
                "delivery.retry_schedule",
                format!(
                    "must hold at most {MAX_RETRY_SCHEDULE} durations, got {}",
                    self.delivery.retry_schedule.len()
                ),
            );
        }
        // Past these a value is a slip of the unit (`10h` for `10s`), felt as a stop that
        // hangs, a delivery sent weeks late, a webhook never disabled.
        let d = &self.delivery;
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
                self.notify.window,
                DAY,
                "a digest of later failures waits it",
            ),
            (
                "http.header_read_timeout",
                self.http.header_read_timeout,
                5 * MINUTE,
                "a slow client holds a connection this long",
            ),
            (
                "http.idle_timeout",
                self.http.idle_timeout,
                60 * MINUTE,
                "a resting connection is held this long",
            ),
        ] {
            if value > most {
                bad(
                    key,
                    format!(
                        "must be at most {} ({why}), got {}",
                        format_duration(most),
                        format_duration(value)
                    ),
                );
            }
        }
        if self.http.max_connections == 0
            || self.http.header_read_timeout.is_zero()
            || self.http.idle_timeout.is_zero()
        {
            bad(
                "http.max_connections",
                "http.header_read_timeout and http.idle_timeout must be above 0".to_owned(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// How many async worker threads `serve` starts: `worker_threads`, or when that is 0
    /// half of `cores`, at least one. The other half is left to the work beside them:
    /// SQLite's writer thread or a PostgreSQL server on the same machine, and the kernel's
    /// network work. On two cores one worker costs a sixth less CPU per event than two at
    /// 1,000 events/s, at no higher p99 and no less throughput (BENCHMARKS.md): two
    /// workers mostly wake each other.
    pub fn async_workers(&self, cores: usize) -> usize {
        match self.worker_threads {
            0 => (cores / 2).max(1),
            n => usize::from(n),
        }
    }

    /// Where people reach this server, for links.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }
}

/// `listen`: an address and port, with a message that shows one.
mod address {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::SocketAddr;

    pub fn serialize<S: Serializer>(a: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(a)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(d)?;
        text.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "must be an address and port like 127.0.0.1:8080, got \"{text}\""
            ))
        })
    }
}

/// `delivery.allowed_networks` and `http.trusted_proxies`: CIDRs, or single addresses (a
/// /32 or /128).
mod networks {
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::IpAddr;

    pub fn serialize<S: Serializer>(list: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        serde::de::Error::custom(format!(
                            "\"{text}\" is not a CIDR like 10.0.0.0/8"
                        ))
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layers::defaults_table;
    use toml::Value;

    fn load(
        file: Option<&str>,
        env: &[(&str, &str)],
        overrides: Overrides,
    ) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tocsin.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load_from(&overrides, env, &path)
    }

    #[test]
    fn defaults_apply_without_file_env_or_flags() {
        assert_eq!(
            load(None, &[], Overrides::default()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn later_sources_win_file_then_env_then_flags() {
        let file = "listen = \"127.0.0.1:1000\"\ndatabase_url = \"sqlite://file.db\"\n[delivery]\nconcurrency = 7\n";
        let env = [
            ("TOCSIN_DATABASE_URL", "sqlite://env.db"),
            ("TOCSIN_DELIVERY__RETRY_SCHEDULE", "1s, 2m"),
            ("PATH", "/bin"),
        ];
        let flags = Overrides {
            database_url: Some("sqlite://flag.db".into()),
            ..Default::default()
        };
        let c = load(Some(file), &env, flags).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:1000", "from the file");
        assert_eq!(c.delivery.concurrency, 7, "from the file");
        assert_eq!(
            c.database_url, "sqlite://flag.db",
            "flags beat env and file"
        );
        assert_eq!(
            c.delivery.retry_schedule,
            vec![Duration::from_secs(1), Duration::from_secs(120)],
            "from the environment"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load(
            Some("[delivery]\nconcurency = 3\n"),
            &[],
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`delivery.concurency`"), "{err}");
        let err = load(None, &[("TOCSIN_LISTNE", "x")], Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("TOCSIN_LISTNE"), "{err}");
        assert!(err.to_string().contains("`listne`"), "{err}");
    }

    #[test]
    fn bad_values_are_explained() {
        let err = load(None, &[("TOCSIN_SMTP__PORT", "lots")], Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("smtp.port"), "{err}");
        let err = load(Some("[smtp]\nport = \"x\"\n"), &[], Overrides::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("`smtp.port` must be a whole number"),
            "{err}"
        );
        let err = load(
            Some("[notify]\nwindow = \"soon\"\n"),
            &[],
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
        let err = load(Some("listen = \"nowhere\"\n"), &[], Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_origin() {
        let err = load(
            Some("listen = \"nowhere\"\n[smtp]\ntls = \"ssl\"\nport = \"x\"\n[delivery]\nallowed_networks = [\"10.0.0.0/8\", \"intranet\"]\n"),
            &[
                ("TOCSIN_NOTIFY__WINDOW", "soon"),
                ("TOCSIN_LISTNE", "x"),
                ("TOCSIN_DATABASE_URL", "mysql://db"),
            ],
            Overrides::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        for expected in [
            "`listen` must be an address and port like 127.0.0.1:8080, got \"nowhere\"",
            "`smtp.tls` unknown variant `ssl`",
            "`smtp.port` must be a whole number",
            "\"intranet\" is not a CIDR",
            "environment variable TOCSIN_NOTIFY__WINDOW: `notify.window`",
            "unknown key `listne`",
        ] {
            assert!(text.contains(expected), "{expected} in:\n{text}");
        }
        assert_eq!(text.lines().count(), 6, "one line per problem:\n{text}");
        // The rules across keys run once the values are typed, also all at once.
        let err = load(
            None,
            &[
                ("TOCSIN_DATABASE_URL", "mysql://db"),
                ("TOCSIN_DELIVERY__CONCURRENCY", "0"),
            ],
            Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(err.to_string().lines().count(), 2, "{err}");
    }

    #[test]
    fn the_waits_for_company_are_bounded() {
        let err = load(
            None,
            &[
                ("TOCSIN_DELIVERY__INTAKE_LINGER", "1s"),
                ("TOCSIN_DELIVERY__RECORD_LINGER", "1h"),
            ],
            Overrides::default(),
        )
        .unwrap_err();
        for expected in [
            "`delivery.intake_linger` must be at most 100ms (every sender's answer waits it), got 1s",
            "`delivery.record_linger` must be at most 1s (a lane's next delivery waits it), got 1h",
        ] {
            assert!(err.to_string().contains(expected), "{expected} in:\n{err}");
        }
        let c = load(
            None,
            &[("TOCSIN_DELIVERY__INTAKE_LINGER", "0s")],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.delivery.intake_linger, Duration::ZERO);
    }

    #[test]
    fn every_duration_setting_is_bounded() {
        let err = load(
            Some("[delivery]\nretry_schedule = [\"10s\", \"2d\", \"1m\"]\n"),
            &[
                ("TOCSIN_DELIVERY__SHUTDOWN_GRACE", "10h"),
                ("TOCSIN_DELIVERY__MAX_AGE", "31d"),
                ("TOCSIN_DELIVERY__DISABLE_AFTER", "365d"),
                ("TOCSIN_NOTIFY__WINDOW", "25h"),
                ("TOCSIN_HTTP__HEADER_READ_TIMEOUT", "1h"),
                ("TOCSIN_HTTP__IDLE_TIMEOUT", "2h"),
            ],
            Overrides::default(),
        )
        .unwrap_err();
        for expected in [
            "`delivery.shutdown_grace` must be at most 10m (a stop waits it for attempts in flight, each at most 30s), got 10h",
            "`delivery.max_age` must be at most 30d (news of an incident older than that is no news), got 31d",
            "`delivery.disable_after` must be at most 30d (0 never disables), got 365d",
            "`delivery.retry_schedule` must be at most 1d (each wait between two attempts), got 2d",
            "`notify.window` must be at most 1d (a digest of later failures waits it), got 25h",
            "`http.header_read_timeout` must be at most 5m (a slow client holds a connection this long), got 1h",
            "`http.idle_timeout` must be at most 1h (a resting connection is held this long), got 2h",
        ] {
            assert!(err.to_string().contains(expected), "{expected} in:\n{err}");
        }
        // At the limits, all is taken.
        let c = load(
            Some("[delivery]\nretry_schedule = [\"1d\"]\n"),
            &[
                ("TOCSIN_DELIVERY__SHUTDOWN_GRACE", "10m"),
                ("TOCSIN_DELIVERY__MAX_AGE", "30d"),
                ("TOCSIN_DELIVERY__DISABLE_AFTER", "30d"),
                ("TOCSIN_NOTIFY__WINDOW", "1d"),
                ("TOCSIN_HTTP__HEADER_READ_TIMEOUT", "5m"),
                ("TOCSIN_HTTP__IDLE_TIMEOUT", "1h"),
            ],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.delivery.max_age, Duration::from_secs(30 * 24 * 3600));
        let many = vec!["\"1s\""; MAX_RETRY_SCHEDULE + 1].join(", ");
        let err = load(
            Some(&format!("[delivery]\nretry_schedule = [{many}]\n")),
            &[],
            Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("`delivery.retry_schedule` must hold at most 100 durations, got 101"),
            "{err}"
        );
    }

    #[test]
    fn values_are_typed() {
        let c = load(
            Some("[smtp]\ntls = \"tls\"\n[delivery]\nallowed_networks = [\"10.0.0.0/8\", \"192.0.2.7\"]\n"),
            &[],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.smtp.tls, SmtpTls::Tls);
        assert_eq!(
            c.delivery.allowed_networks,
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "192.0.2.7/32".parse().unwrap()
            ]
        );
    }

    #[test]
    fn an_explicit_config_path_must_exist() {
        let overrides = Overrides {
            config_path: Some("/nonexistent/tocsin.toml".into()),
            ..Default::default()
        };
        assert!(matches!(
            load(None, &[], overrides),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn worker_threads_default_to_half_the_cores() {
        let auto = Config::default();
        assert_eq!(auto.async_workers(1), 1);
        assert_eq!(auto.async_workers(2), 1);
        assert_eq!(auto.async_workers(3), 1);
        assert_eq!(auto.async_workers(8), 4);
        let set = Config {
            worker_threads: 3,
            ..Config::default()
        };
        assert_eq!(set.async_workers(2), 3);
        let env = [("TOCSIN_WORKER_THREADS", "5000")];
        let message = load(None, &env, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("worker_threads") && message.contains("at most 1024"),
            "{message}"
        );
    }

    #[test]
    fn every_key_is_documented_and_every_documented_key_exists() {
        fn leaves(table: &Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in table {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    Value::Table(t) => leaves(t, &path, out),
                    _ => out.push(path),
                }
            }
        }
        let mut actual = Vec::new();
        leaves(&defaults_table(), "", &mut actual);
        let mut documented: Vec<String> = KEYS.iter().map(|(k, _)| k.to_string()).collect();
        actual.sort();
        documented.sort();
        assert_eq!(actual, documented);
    }

    #[test]
    fn printed_defaults_are_a_loadable_config_file() {
        let text = Config::describe_defaults();
        assert!(text.contains("TOCSIN_DELIVERY__ALLOWED_NETWORKS"));
        assert_eq!(
            load(Some(&text), &[], Overrides::default()).unwrap(),
            Config::default()
        );
    }
}
