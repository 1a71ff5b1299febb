//! How settings are layered: the defaults (a `Config` serialized to a TOML table), a file's
//! table laid over them, then single keys from environment variables and flags. Every key a
//! layer names must exist and have its default's type; each problem is collected with where
//! it came from, so one start reports them all.

use std::collections::HashMap;

use toml::{Table, Value};

use super::{Config, ConfigError, KEYS};

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

pub(super) fn defaults_table() -> Table {
    match Value::try_from(Config::default()).expect("defaults serialize") {
        Value::Table(t) => t,
        _ => unreachable!("a struct serializes to a table"),
    }
}

pub(super) fn lookup<'a>(table: &'a Table, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// Sets a leaf key in a table shaped like the defaults.
fn set(table: &mut Table, key: &str, value: Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("non-empty key");
    let mut table = table;
    for part in parts {
        table = table
            .get_mut(part)
            .and_then(Value::as_table_mut)
            .expect("defaults and target share their shape");
    }
    table.insert(last.to_owned(), value);
}

fn known_keys() -> String {
    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// Settings being layered, with where each key was last set and every problem so far.
pub(super) struct Layers {
    defaults: Table,
    merged: Table,
    origins: HashMap<String, String>,
    problems: Vec<ConfigError>,
}

impl Layers {
    pub(super) fn new() -> Self {
        let defaults = defaults_table();
        Self {
            merged: defaults.clone(),
            defaults,
            origins: HashMap::new(),
            problems: Vec::new(),
        }
    }

    /// Overlays a file's table; a key that does not exist, or whose value has another
    /// type than its default, is a problem named with its full path.
    pub(super) fn file(&mut self, incoming: Table, origin: &str) {
        self.file_section(incoming, origin, "");
    }

    fn file_section(&mut self, incoming: Table, origin: &str, prefix: &str) {
        for (key, value) in incoming {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let bad = |message: String| ConfigError::BadValue {
                origin: origin.to_owned(),
                key: path.clone(),
                message,
            };
            match (lookup(&self.defaults, &path).cloned(), value) {
                (None, _) => self.problems.push(ConfigError::UnknownKey {
                    origin: origin.to_owned(),
                    key: path.clone(),
                    known: known_keys(),
                }),
                (Some(Value::Table(_)), Value::Table(sub)) => self.file_section(sub, origin, &path),
                (Some(Value::Table(_)), _) => self
                    .problems
                    .push(bad("must be a section, written [name]".to_owned())),
                (Some(default), value) if !same_shape(&default, &value) => {
                    self.problems.push(bad(format!(
                        "must be {} like {default}, got {value}",
                        describe_type(&default)
                    )))
                }
                (Some(_), value) => {
                    set(&mut self.merged, &path, value);
                    self.origins.insert(path.clone(), origin.to_owned());
                }
            }
        }
    }

    /// Sets one key from text (an environment variable or a flag), typed like its default.
    /// Lists come as comma-separated text: `10s,1m,5m`.
    pub(super) fn text(&mut self, key: &str, text: &str, origin: &str) {
        let Some(default) = lookup(&self.defaults, key).filter(|v| !v.is_table()) else {
            self.problems.push(ConfigError::UnknownKey {
                origin: origin.to_owned(),
                key: key.to_owned(),
                known: known_keys(),
            });
            return;
        };
        let bad = |message: &str| ConfigError::BadValue {
            origin: origin.to_owned(),
            key: key.to_owned(),
            message: message.to_owned(),
        };
        let value = match default {
            Value::Integer(_) => match text.trim().parse() {
                Ok(n) => Value::Integer(n),
                Err(_) => return self.problems.push(bad("must be a whole number")),
            },
            Value::Boolean(_) => match text.trim().parse() {
                Ok(b) => Value::Boolean(b),
                Err(_) => return self.problems.push(bad("must be true or false")),
            },
            Value::Array(_) => Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ),
            _ => Value::String(text.to_owned()),
        };
        set(&mut self.merged, key, value);
        self.origins.insert(key.to_owned(), origin.to_owned());
    }

    /// The typed settings, or every problem: each key's value is tried alone against the
    /// defaults, so a bad value is named with its key and where it came from, and one bad
    /// key does not hide another.
    pub(super) fn finish(mut self) -> Result<Config, Vec<ConfigError>> {
        for (key, _) in KEYS {
            let Some(value) = lookup(&self.merged, key).cloned() else {
                continue;
            };
            let mut alone = self.defaults.clone();
            set(&mut alone, key, value);
            if let Err(e) = Value::Table(alone).try_into::<Config>() {
                self.problems.push(ConfigError::BadValue {
                    origin: self
                        .origins
                        .get(*key)
                        .cloned()
                        .unwrap_or_else(|| "settings".to_owned()),
                    key: (*key).to_owned(),
                    message: e.message().trim().to_owned(),
                });
            }
        }
        if !self.problems.is_empty() {
            return Err(self.problems);
        }
        Value::Table(self.merged)
            .try_into()
            .map_err(|e: toml::de::Error| {
                vec![ConfigError::BadValue {
                    origin: "settings".to_owned(),
                    key: "value".to_owned(),
                    message: e.message().to_owned(),
                }]
            })
    }
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
