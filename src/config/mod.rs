//! Settings: built-in defaults, then `tocsin.toml` (or `--config PATH`), then `TOCSIN_*`
//! environment variables, then command-line flags (`layers.rs`). Every key is documented
//! once, in [`KEYS`], and printed by `tocsin config`; values are typed here, and every
//! problem is reported at once.

mod check;
mod duration;
mod keys;
mod layers;

pub use keys::KEYS;

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
        check::check(&config).map_err(ConfigError::all)?;
        Ok(config)
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
        let many = vec!["\"1s\""; check::MAX_RETRY_SCHEDULE + 1].join(", ");
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
