//! Settings: built-in defaults, then `tocsin.toml` (or `--config PATH`), then `TOCSIN_*`
//! environment variables, then command-line flags. Every key is documented once, in
//! [`KEYS`], and printed by `tocsin config`.

use std::{path::Path, time::Duration};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub database_url: String,
    pub public_url: String,
    /// Base64 of 32 bytes; empty means `tocsin.key` (see `secret_key.rs`).
    pub secret_key: String,
    pub delivery: DeliveryConfig,
    pub smtp: SmtpConfig,
    pub notify: NotifyConfig,
    pub http: HttpConfig,
}

/// Limits of the HTTP API per caller (a token, or a logged-in person).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub max_connections: u32,
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    pub rate_limit: u32,
    pub rate_burst: u32,
    pub intake_rate_limit: u32,
    pub intake_rate_burst: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            rate_limit: 50,
            rate_burst: 200,
            intake_rate_limit: 20_000,
            intake_rate_burst: 40_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    pub allowed_networks: Vec<String>,
    #[serde(with = "durations")]
    pub retry_schedule: Vec<Duration>,
    pub concurrency: u32,
    pub per_url_concurrency: u32,
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: String,
    pub username: String,
    pub password: String,
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(with = "duration")]
    pub window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            database_url: "sqlite://tocsin.db".to_owned(),
            public_url: String::new(),
            secret_key: String::new(),
            delivery: DeliveryConfig::default(),
            smtp: SmtpConfig::default(),
            notify: NotifyConfig::default(),
            http: HttpConfig::default(),
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
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            tls: "starttls".to_owned(),
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
        "secret_key",
        "Key that seals webhook secrets, credential headers and URL passwords in the database (base64 of 32 bytes); empty means tocsin.key beside the SQLite file, generated on first start. Nodes on one PostgreSQL must share it.",
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
        "A request's headers must arrive within this; an idle keep-alive connection is closed after it too.",
    ),
    (
        "http.rate_limit",
        "API requests per second per token or person (past the burst: 429 with Retry-After); 0 for no limit.",
    ),
    ("http.rate_burst", "API requests a caller may make at once above the rate."),
    (
        "http.intake_rate_limit",
        "POST /v3/events per second per token, counted apart from other calls; 0 for no limit.",
    ),
    ("http.intake_rate_burst", "Events a token may post at once above that rate."),
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
}

impl Config {
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
        let defaults = defaults_table();
        let mut merged = defaults.clone();

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
            merge_file(&mut merged, &defaults, table, &origin, "")?;
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
            set_from_text(
                &mut merged,
                &defaults,
                &key,
                &text,
                &format!("environment variable {var}"),
            )?;
        }

        let flags = [
            ("listen", &overrides.listen),
            ("database_url", &overrides.database_url),
        ];
        for (key, value) in flags {
            if let Some(text) = value {
                set_from_text(&mut merged, &defaults, key, text, "command line")?;
            }
        }

        let config: Config = Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::BadValue {
                origin: "settings".to_owned(),
                key: "value".to_owned(),
                message: e.message().to_owned(),
            })?;
        config.check()?;
        Ok(config)
    }

    /// Rules the types alone do not express.
    fn check(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::BadValue {
            origin: "settings".to_owned(),
            key: key.to_owned(),
            message,
        };
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "listen",
                format!(
                    "must be an address and port like 127.0.0.1:8080, got \"{}\"",
                    self.listen
                ),
            ));
        }
        if !self.database_url.starts_with("sqlite:")
            && !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
        {
            return Err(bad(
                "database_url",
                "must start with sqlite:// or postgres://".to_owned(),
            ));
        }
        if !self.secret_key.is_empty() {
            crate::domain::sealing::SecretKey::from_base64(&self.secret_key)
                .map_err(|e| bad("secret_key", e))?;
        }
        if self.delivery.retry_schedule.is_empty() {
            return Err(bad(
                "delivery.retry_schedule",
                "must hold at least one duration, e.g. [\"10s\", \"1m\"]".to_owned(),
            ));
        }
        if self.delivery.concurrency == 0 || self.delivery.per_url_concurrency == 0 {
            return Err(bad(
                "delivery.concurrency",
                "and delivery.per_url_concurrency must be at least 1".to_owned(),
            ));
        }
        if self.http.max_connections == 0 || self.http.header_read_timeout.is_zero() {
            return Err(bad(
                "http.max_connections",
                "and http.header_read_timeout must be above 0".to_owned(),
            ));
        }
        if !["none", "starttls", "tls"].contains(&self.smtp.tls.as_str()) {
            return Err(bad(
                "smtp.tls",
                format!("must be none, starttls or tls, got \"{}\"", self.smtp.tls),
            ));
        }
        Ok(())
    }

    /// Where people reach this server, for links.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The text `tocsin config` prints: a valid tocsin.toml holding every default, each key
    /// preceded by its meaning and its environment variable.
    pub fn describe_defaults() -> String {
        let defaults = defaults_table();
        let mut out = String::from(
            "# tocsin settings and their defaults. Order: these defaults, then tocsin.toml\n# (or --config PATH), then TOCSIN_* environment variables, then flags.\n",
        );
        let mut section = "";
        for (key, meaning) in KEYS {
            let (sec, name) = key.rsplit_once('.').unwrap_or(("", key));
            if sec != section {
                out.push_str(&format!("\n[{sec}]\n"));
                section = sec;
            }
            let value = lookup(&defaults, key).expect("every documented key has a default");
            let env = format!("TOCSIN_{}", key.replace('.', "__").to_ascii_uppercase());
            out.push_str(&format!("# {meaning} ({env})\n{name} = {value}\n"));
        }
        out
    }
}

fn defaults_table() -> Table {
    match Value::try_from(Config::default()).expect("defaults serialize") {
        Value::Table(t) => t,
        _ => unreachable!("a struct serializes to a table"),
    }
}

fn lookup<'a>(table: &'a Table, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

fn known_keys() -> String {
    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// Overlays a file's table, refusing keys that do not exist (with their full path).
fn merge_file(
    target: &mut Table,
    defaults: &Table,
    incoming: Table,
    origin: &str,
    prefix: &str,
) -> Result<(), ConfigError> {
    for (key, value) in incoming {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let unknown = || ConfigError::UnknownKey {
            origin: origin.to_owned(),
            key: path.clone(),
            known: known_keys(),
        };
        match (defaults.get(&key), value) {
            (None, _) => return Err(unknown()),
            (Some(Value::Table(sub_defaults)), Value::Table(sub)) => {
                let Some(Value::Table(sub_target)) = target.get_mut(&key) else {
                    unreachable!("defaults and target share their shape")
                };
                merge_file(sub_target, sub_defaults, sub, origin, &path)?;
            }
            (Some(Value::Table(_)), _) => {
                return Err(ConfigError::BadValue {
                    origin: origin.to_owned(),
                    key: path,
                    message: "must be a section, written [name]".to_owned(),
                })
            }
            (Some(default), value) => {
                if !same_shape(default, &value) {
                    return Err(ConfigError::BadValue {
                        origin: origin.to_owned(),
                        key: path,
                        message: format!(
                            "must be {} like {default}, got {value}",
                            describe_type(default)
                        ),
                    });
                }
                target.insert(key, value);
            }
        }
    }
    Ok(())
}

/// Whether a file's value has the type of the key's default (lists: of strings).
fn same_shape(default: &Value, value: &Value) -> bool {
    match (default, value) {
        (Value::Array(_), Value::Array(items)) => items.iter().all(Value::is_str),
        _ => default.type_str() == value.type_str(),
    }
}

fn describe_type(default: &Value) -> &'static str {
    match default {
        Value::Integer(_) => "a whole number",
        Value::Boolean(_) => "true or false",
        Value::Array(_) => "a list of strings",
        _ => "a string",
    }
}

/// Sets one key from text (an environment variable or a flag), typed like its default.
fn set_from_text(
    target: &mut Table,
    defaults: &Table,
    key: &str,
    text: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    let default = lookup(defaults, key)
        .filter(|v| !v.is_table())
        .ok_or_else(|| ConfigError::UnknownKey {
            origin: origin.to_owned(),
            key: key.to_owned(),
            known: known_keys(),
        })?;
    let bad = |message: &str| ConfigError::BadValue {
        origin: origin.to_owned(),
        key: key.to_owned(),
        message: message.to_owned(),
    };
    let value = match default {
        Value::Integer(_) => Value::Integer(
            text.trim()
                .parse()
                .map_err(|_| bad("must be a whole number"))?,
        ),
        Value::Boolean(_) => Value::Boolean(
            text.trim()
                .parse()
                .map_err(|_| bad("must be true or false"))?,
        ),
        // Lists come as comma-separated text: `10s,1m,5m`.
        Value::Array(_) => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        _ => Value::String(text.to_owned()),
    };
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("non-empty key");
    let mut table = target;
    for part in parts {
        table = table
            .get_mut(part)
            .and_then(Value::as_table_mut)
            .expect("defaults and target share their shape");
    }
    table.insert(last.to_owned(), value);
    Ok(())
}

/// Parses `250ms`, `10s`, `5m`, `1h` (and a bare number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a duration like 10s, 5m or 1h"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "\"{text}\" has an unknown unit: use ms, s, m, h or d"
            ))
        }
    };
    Ok(Duration::from_millis(n.saturating_mul(unit_ms)))
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

mod durations {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|d| super::format_duration(*d)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|t| super::parse_duration(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.listen, "127.0.0.1:1000", "from the file");
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

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5 fortnights").is_err());
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }
}
