//! Raw API JSON → [`WebhookSpec`]. Every problem is collected with its field path, so a
//! caller learns everything to fix in one answer.

use serde_json::{Map, Value};

use super::{
    header::RESERVED_HEADERS, Header, Method, PayloadType, PayloadVersion, Trigger, TriggerType,
    WebhookSpec, WebhookUrl,
};
use crate::domain::{event_type::EventType, field_error::json_kind as kind, FieldError};

const MAX_URLS: usize = 10;
const MAX_HEADERS: usize = 20;
const MAX_MAIL_IDS: usize = 10;
pub const MAX_NAME: usize = 255;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_CUSTOM_PAYLOAD: usize = 64 * 1024;
const MAX_HEADER_NAME: usize = 256;
const MAX_HEADER_VALUE: usize = 8 * 1024;
/// Headers about the connection or the message's framing: the HTTP client sets them, and a
/// webhook that set them could desynchronise the request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "expect",
];
pub const MAX_TEAMS: usize = 1000;

/// The highest `rate_limit_per_second`: past it the limit means nothing.
const MAX_RATE: u64 = 10_000;

/// Fields of a response that clients send back unchanged on GET → edit → PUT.
pub const READ_ONLY: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "organization_id",
    "author_id",
    "author",
    "slug",
    "custom_payload_template_name",
    "disabled_reason",
];

/// The fields a webhook is configured with (create, replace).
pub const KNOWN: &[&str] = &[
    "name",
    "description",
    "triggers",
    "urls",
    "header",
    "filters",
    "max_retry",
    "timeout_seconds",
    "rate_limit_per_second",
    "enabled",
    "teams",
    "is_all_teams_configured",
    "mail_ids",
    "trigger_type",
    "payload_type",
    "version",
    "custom_payload",
    "custom_payload_template_slug",
    "language",
];

/// Parses a webhook from the configuration API's JSON body.
pub fn parse_spec(input: &Value) -> Result<WebhookSpec, Vec<FieldError>> {
    let Some(obj) = input.as_object() else {
        return Err(vec![FieldError::new(
            "body",
            format!("must be a JSON object, got {}", kind(input)),
        )]);
    };
    let mut p = Parser {
        obj,
        errors: Vec::new(),
    };
    p.reject_unknown_fields();

    let name = p.name();
    let description = p.string("description", MAX_DESCRIPTION).unwrap_or_default();
    let triggers = p.triggers();
    let urls = p.urls();
    let header = p.headers();
    let filters = p.filters();
    let max_retry = p.integer("max_retry", 0, 10, 3);
    let timeout_seconds = p.integer("timeout_seconds", 1, 30, 10);
    let rate_limit_per_second = p.rate("rate_limit_per_second");
    let enabled = p.boolean("enabled", true);
    let is_all_teams_configured = p.boolean("is_all_teams_configured", false);
    let teams = p.teams(is_all_teams_configured);
    let mail_ids = p.mail_ids();
    let trigger_type = p.choice(
        "trigger_type",
        &[
            ("automatic", TriggerType::Automatic),
            ("manual", TriggerType::Manual),
        ],
        TriggerType::Automatic,
    );
    let payload_type = p.choice(
        "payload_type",
        &[
            ("standard", PayloadType::Standard),
            ("custom", PayloadType::Custom),
        ],
        PayloadType::Standard,
    );
    let version = p.choice(
        "version",
        &[("v2", PayloadVersion::V2), ("v1", PayloadVersion::V1)],
        PayloadVersion::V2,
    );
    let custom_payload = p.string("custom_payload", MAX_CUSTOM_PAYLOAD);
    // Squadcast answers "" for these when unset; "" in means unset too.
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let custom_payload = non_empty(custom_payload);
    let custom_payload_template_slug =
        non_empty(p.string("custom_payload_template_slug", MAX_NAME));
    if payload_type == PayloadType::Custom
        && custom_payload.is_none()
        && custom_payload_template_slug.is_none()
    {
        p.error(
            "custom_payload",
            "is required when payload_type is \"custom\": give the template to send, or a preset in custom_payload_template_slug (slack, msteams, discord)",
        );
    }
    let language = non_empty(p.string("language", MAX_NAME));
    // v1 payloads exist only for the four incident events.
    if version == PayloadVersion::V1 && payload_type == PayloadType::Standard {
        for (i, t) in triggers.iter().enumerate() {
            if let Some(kind) = EventType::from_trigger(&t.event_class, &t.event_type) {
                if kind.v1_name.is_none() {
                    p.error(
                        format!("triggers[{i}]"),
                        format!(
                            "{}/{} is sent only in v2 payloads: set version to \"v2\", or keep to triggered, reassigned, acknowledged and resolved",
                            t.event_class, t.event_type
                        ),
                    );
                }
            }
        }
    }

    if !p.errors.is_empty() {
        return Err(p.errors);
    }
    Ok(WebhookSpec {
        name: name.unwrap_or_default(),
        description,
        triggers,
        urls,
        header,
        filters,
        max_retry,
        timeout_seconds,
        rate_limit_per_second,
        enabled,
        teams,
        is_all_teams_configured,
        mail_ids,
        trigger_type,
        payload_type,
        version,
        custom_payload,
        custom_payload_template_slug,
        language,
    })
}

struct Parser<'a> {
    obj: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Parser<'a> {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// A field's value; `null` means absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        let obj: &'a Map<String, Value> = self.obj;
        obj.get(key).filter(|v| !v.is_null())
    }

    fn reject_unknown_fields(&mut self) {
        let unknown: Vec<String> = self
            .obj
            .keys()
            .filter(|k| !KNOWN.contains(&k.as_str()) && !READ_ONLY.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            if key == "secret" {
                self.error(
                    key,
                    "cannot be set: tocsin generates it; use POST /v3/extensions/event-webhooks/{id}/rotate-secret for a new one",
                );
            } else {
                self.error(
                    key,
                    format!("unknown field; known fields are {}", KNOWN.join(", ")),
                );
            }
        }
    }

    fn name(&mut self) -> Option<String> {
        match self.get("name") {
            None => {
                self.error("name", "is required");
                None
            }
            Some(_) => {
                let name = self.string("name", MAX_NAME)?;
                if name.trim().is_empty() {
                    self.error("name", "must not be blank");
                } else if crate::domain::text::has_hidden_controls(&name) {
                    self.error("name", crate::domain::text::HIDDEN_CONTROLS);
                }
                Some(name.trim().to_owned())
            }
        }
    }

    /// An optional string of at most `max` characters.
    fn string(&mut self, key: &str, max: usize) -> Option<String> {
        let value = self.get(key)?;
        let Some(text) = value.as_str() else {
            self.error(key, format!("must be a string, got {}", kind(value)));
            return None;
        };
        if text.chars().count() > max {
            self.error(key, format!("must be at most {max} characters"));
        }
        Some(text.to_owned())
    }

    fn integer(&mut self, key: &str, min: u8, max: u8, default: u8) -> u8 {
        let Some(value) = self.get(key) else {
            return default;
        };
        match crate::domain::json_text::whole_number(value) {
            Some(n) if n >= min as i64 && n <= max as i64 => n as u8,
            Some(n) => {
                self.error(key, format!("must be from {min} to {max}, got {n}"));
                default
            }
            None => {
                self.error(
                    key,
                    format!(
                        "must be a whole number from {min} to {max}, got {}",
                        kind(value)
                    ),
                );
                default
            }
        }
    }

    /// An optional calls-per-second limit: absent, null or 0 mean none.
    fn rate(&mut self, key: &str) -> Option<u32> {
        let value = self.get(key)?;
        match crate::domain::json_text::whole_number(value) {
            Some(0) => None,
            Some(n) if (1..=MAX_RATE as i64).contains(&n) => Some(n as u32),
            _ => {
                self.error(
                    key,
                    format!(
                        "must be a whole number of calls per second from 1 to {MAX_RATE}, or 0 or null for no limit, got {value}"
                    ),
                );
                None
            }
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                let message = format!("must be true or false, got {}", kind(other));
                self.error(key, message);
                default
            }
        }
    }

    fn choice<T: Copy>(&mut self, key: &str, options: &[(&str, T)], default: T) -> T {
        let allowed = options
            .iter()
            .map(|(name, _)| format!("\"{name}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        match self.get(key) {
            None => default,
            Some(Value::String(s)) => match options.iter().find(|(name, _)| name == s) {
                Some((_, v)) => *v,
                None => {
                    self.error(key, format!("must be {allowed}, got \"{s}\""));
                    default
                }
            },
            Some(other) => {
                let message = format!("must be {allowed}, got {}", kind(other));
                self.error(key, message);
                default
            }
        }
    }

    /// The elements of an optional array field (with their paths), or none after an error.
    fn array(&mut self, key: &str) -> Option<&'a [Value]> {
        let value = self.get(key)?;
        match value.as_array() {
            Some(items) => Some(items.as_slice()),
            None => {
                self.errors.push(FieldError::new(
                    key,
                    format!("must be an array, got {}", kind(value)),
                ));
                None
            }
        }
    }

    fn triggers(&mut self) -> Vec<Trigger> {
        let mut out: Vec<Trigger> = Vec::new();
        let Some(items) = self.array("triggers") else {
            if self.get("triggers").is_none() {
                self.error(
                    "triggers",
                    format!(
                        "is required: give at least one of {}",
                        EventType::known_triggers()
                    ),
                );
            }
            return out;
        };
        if items.is_empty() {
            self.error(
                "triggers",
                format!(
                    "must hold at least one trigger, e.g. {{\"event_class\": \"incident\", \"event_type\": \"triggered\"}}; known: {}",
                    EventType::known_triggers()
                ),
            );
        }
        let mut errors = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("triggers[{i}]");
            let class = item.get("event_class").and_then(Value::as_str);
            let action = item.get("event_type").and_then(Value::as_str);
            let (Some(class), Some(action)) = (class, action) else {
                errors.push(FieldError::new(
                    path,
                    "must be an object with string fields event_class and event_type",
                ));
                continue;
            };
            if let Some(key) = item
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "event_class" && *k != "event_type"))
            {
                errors.push(FieldError::new(
                    format!("{path}.{key}"),
                    "unknown field; a trigger has event_class and event_type",
                ));
                continue;
            }
            if EventType::from_trigger(class, action).is_none() {
                errors.push(FieldError::new(
                    path,
                    format!(
                        "unknown trigger {class}/{action}; known: {}",
                        EventType::known_triggers()
                    ),
                ));
                continue;
            }
            let trigger = Trigger {
                event_class: class.to_owned(),
                event_type: action.to_owned(),
            };
            // Duplicates collapse rather than fail: they mean the same thing.
            if !out.contains(&trigger) {
                out.push(trigger);
            }
        }
        self.errors.extend(errors);
        out
    }

    fn urls(&mut self) -> Vec<WebhookUrl> {
        let mut out = Vec::new();
        let Some(items) = self.array("urls") else {
            if self.get("urls").is_none() {
                self.error(
                    "urls",
                    "is required: give 1 to 10 entries like {\"url\": \"https://example.com/hook\", \"method\": \"POST\"}",
                );
            }
            return out;
        };
        if items.is_empty() || items.len() > MAX_URLS {
            let n = items.len();
            self.error(
                "urls",
                format!("must hold 1 to {MAX_URLS} entries, got {n}"),
            );
        }
        let mut errors = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(entry) = item.as_object() else {
                errors.push(FieldError::new(
                    format!("urls[{i}]"),
                    format!(
                        "must be an object like {{\"url\": \"https://…\", \"method\": \"POST\"}}, got {}",
                        kind(item)
                    ),
                ));
                continue;
            };
            let url = match entry.get("url") {
                Some(Value::String(s)) => match check_url(s) {
                    Ok(normalized) => Some(normalized),
                    Err(message) => {
                        errors.push(FieldError::new(format!("urls[{i}].url"), message));
                        None
                    }
                },
                None | Some(Value::Null) => {
                    errors.push(FieldError::new(format!("urls[{i}].url"), "is required"));
                    None
                }
                Some(other) => {
                    errors.push(FieldError::new(
                        format!("urls[{i}].url"),
                        format!("must be a string, got {}", kind(other)),
                    ));
                    None
                }
            };
            let method = match entry.get("method") {
                None | Some(Value::Null) => Some(Method::Post),
                Some(Value::String(s)) => match s.to_ascii_uppercase().as_str() {
                    "POST" => Some(Method::Post),
                    "PUT" => Some(Method::Put),
                    "PATCH" => Some(Method::Patch),
                    _ => {
                        errors.push(FieldError::new(
                            format!("urls[{i}].method"),
                            format!("must be POST, PUT or PATCH, got \"{s}\""),
                        ));
                        None
                    }
                },
                Some(other) => {
                    errors.push(FieldError::new(
                        format!("urls[{i}].method"),
                        format!("must be POST, PUT or PATCH, got {}", kind(other)),
                    ));
                    None
                }
            };
            for key in entry.keys().filter(|k| *k != "url" && *k != "method") {
                errors.push(FieldError::new(
                    format!("urls[{i}].{key}"),
                    "unknown field; an entry has only url and method",
                ));
            }
            if let (Some(url), Some(method)) = (url, method) {
                out.push(WebhookUrl { url, method });
            }
        }
        self.errors.extend(errors);
        out
    }

    fn headers(&mut self) -> Vec<Header> {
        let mut out: Vec<Header> = Vec::new();
        let Some(value) = self.get("header") else {
            return out;
        };
        let Some(map) = value.as_object() else {
            let message = format!(
                "must be an object of header names to string values, got {}",
                kind(value)
            );
            self.error("header", message);
            return out;
        };
        if map.len() > MAX_HEADERS {
            self.error(
                "header",
                format!("must hold at most {MAX_HEADERS} headers, got {}", map.len()),
            );
        }
        for (name, value) in map {
            let path = format!("header.{name}");
            if name.len() > MAX_HEADER_NAME {
                self.error(
                    path,
                    format!("name must be at most {MAX_HEADER_NAME} bytes"),
                );
                continue;
            }
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.error(
                    path,
                    "is not a valid HTTP header name: use letters, digits and !#$%&'*+-.^_`|~",
                );
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if HOP_BY_HOP.contains(&lower.as_str()) || lower.starts_with("proxy-") {
                self.error(
                    path,
                    "is a hop-by-hop or framing header, which the HTTP client manages: remove it",
                );
                continue;
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                self.error(
                    path,
                    format!(
                        "is set by tocsin itself and cannot be overridden (reserved: {})",
                        RESERVED_HEADERS.join(", ")
                    ),
                );
                continue;
            }
            let Some(text) = value.as_str() else {
                let message = format!("must be a string, got {}", kind(value));
                self.error(path, message);
                continue;
            };
            if text.contains(['\r', '\n', '\0']) {
                self.error(path, "must not contain CR, LF or NUL characters");
                continue;
            }
            if text.len() > MAX_HEADER_VALUE {
                self.error(
                    path,
                    format!("value must be at most {} KiB", MAX_HEADER_VALUE / 1024),
                );
                continue;
            }
            // What the message promises, exactly: HTTP would also take bytes above 0x7f.
            if !text
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
            {
                self.error(
                    path,
                    "must contain only visible ASCII characters, spaces and tabs",
                );
                continue;
            }
            if out.iter().any(|h| h.name.eq_ignore_ascii_case(name)) {
                self.error(path, "is given twice (header names ignore case)");
                continue;
            }
            out.push(Header {
                name: name.clone(),
                value: text.to_owned(),
            });
        }
        out
    }

    fn filters(&mut self) -> Option<Value> {
        let value = self.get("filters")?;
        if !value.is_object() {
            let message = format!(
                "must be an object like {{\"op\": \"and\", \"conditions\": […]}} or null, got {}",
                kind(value)
            );
            self.error("filters", message);
            return None;
        }
        Some(value.clone())
    }

    fn string_list(&mut self, key: &str, max: usize) -> Vec<String> {
        let Some(items) = self.array(key) else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        let mut out: Vec<String> = Vec::new();
        if items.len() > max {
            errors.push(FieldError::new(
                key,
                format!("must hold at most {max} entries, got {}", items.len()),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) if !s.trim().is_empty() => {
                    if !out.iter().any(|o| o == s.trim()) {
                        out.push(s.trim().to_owned());
                    }
                }
                _ => errors.push(FieldError::new(
                    format!("{key}[{i}]"),
                    format!("must be a non-empty string, got {}", kind(item)),
                )),
            }
        }
        self.errors.extend(errors);
        out
    }

    fn teams(&mut self, all_teams: bool) -> Vec<String> {
        let teams = self.string_list("teams", MAX_TEAMS);
        if !all_teams
            && teams.is_empty()
            && !self.errors.iter().any(|e| e.field.starts_with("teams"))
        {
            self.error(
                "teams",
                "the webhook would apply to no team: list team ids in `teams`, or set `is_all_teams_configured: true`",
            );
        }
        teams
    }

    fn mail_ids(&mut self) -> Vec<String> {
        let ids = self.string_list("mail_ids", MAX_MAIL_IDS);
        for (i, address) in ids.iter().enumerate() {
            if !is_email_address(address) {
                self.error(
                    format!("mail_ids[{i}]"),
                    format!("\"{address}\" is not an e-mail address like ops@example.com"),
                );
            }
        }
        ids
    }
}

/// Checks a webhook URL and returns it normalized (as it will be stored and called).
fn check_url(text: &str) -> Result<String, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    // The URL parser would quietly drop tabs and line breaks and read `\` as `/`: what is
    // stored must be what was meant, so such URLs are refused rather than repaired.
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() || *c == '\\' || c.is_whitespace())
    {
        return Err(format!(
            "must not contain {}: percent-encode it or remove it",
            match c {
                '\\' => "a backslash".to_owned(),
                ' ' => "spaces".to_owned(),
                c => format!("the control character U+{:04X}", c as u32),
            }
        ));
    }
    let url = url::Url::parse(text).map_err(|e| {
        format!("is not an absolute URL ({e}): write it like https://example.com/hook")
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("must use http or https, got \"{}\"", url.scheme()));
    }
    // `http:///h` parses with host `h`; a URL without a host between `//` and `/` is refused.
    let after_scheme = &text[url.scheme().len()..];
    let names_host = after_scheme
        .strip_prefix("://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !names_host || url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host, like https://example.com/hook".to_owned());
    }
    Ok(url.to_string())
}

/// A deliberately simple check: one `@`, something on each side, no spaces. Whether the
/// mailbox exists only the mail server can tell.
fn is_email_address(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    text.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "name": "Ops",
            "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": "https://example.com/hook", "method": "post"}],
            "is_all_teams_configured": true
        })
    }

    fn errors_for(patch: Value) -> Vec<FieldError> {
        let mut input = minimal();
        for (k, v) in patch.as_object().unwrap() {
            input[k] = v.clone();
        }
        parse_spec(&input).expect_err("should be rejected")
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn v1_webhooks_take_only_the_four_incident_events() {
        let note = json!([
            {"event_class": "incident", "event_type": "triggered"},
            {"event_class": "incident", "event_type": "incident_notes_created"}
        ]);
        let errors = errors_for(json!({"version": "v1", "triggers": note}));
        assert_eq!(fields(&errors), ["triggers[1]"]);
        assert!(errors[0].message.contains("only in v2"), "{errors:?}");
        let mut v2 = minimal();
        v2["triggers"] = note;
        let spec = parse_spec(&v2).expect("v2 sends every type");
        assert_eq!(spec.triggers.len(), 2);
    }

    #[test]
    fn minimal_webhook_gets_the_documented_defaults() {
        let spec = parse_spec(&minimal()).unwrap();
        assert_eq!(spec.max_retry, 3);
        assert_eq!(spec.timeout_seconds, 10);
        assert!(spec.enabled);
        assert_eq!(spec.version, PayloadVersion::V2);
        assert_eq!(spec.trigger_type, TriggerType::Automatic);
        assert_eq!(spec.payload_type, PayloadType::Standard);
        assert_eq!(spec.urls[0].method, Method::Post, "method is upper-cased");
    }

    #[test]
    fn duplicate_triggers_collapse() {
        let t = json!({"event_class": "incident", "event_type": "resolved"});
        let mut input = minimal();
        input["triggers"] = json!([t, t]);
        assert_eq!(parse_spec(&input).unwrap().triggers.len(), 1);
    }

    #[test]
    fn every_rule_names_its_field() {
        let cases = [
            (json!({"name": null}), "name"),
            (json!({"name": "x".repeat(256)}), "name"),
            (json!({"triggers": []}), "triggers"),
            (
                json!({"triggers": [{"event_class": "incident", "event_type": "exploded"}]}),
                "triggers[0]",
            ),
            (json!({"urls": []}), "urls"),
            (json!({"urls": [{"url": "ftp://x/y"}]}), "urls[0].url"),
            (
                json!({"urls": [{"url": "https://x/y", "method": "GET"}]}),
                "urls[0].method",
            ),
            (json!({"urls": [{"url": "/relative"}]}), "urls[0].url"),
            (json!({"header": {"Bad Name": "x"}}), "header.Bad Name"),
            (json!({"header": {"X-A": "a\r\nb"}}), "header.X-A"),
            (json!({"header": {"User-Agent": "me"}}), "header.User-Agent"),
            (json!({"max_retry": 11}), "max_retry"),
            (json!({"max_retry": "3"}), "max_retry"),
            (json!({"timeout_seconds": 0}), "timeout_seconds"),
            (json!({"enabled": "yes"}), "enabled"),
            (json!({"mail_ids": ["not-an-address"]}), "mail_ids[0]"),
            (json!({"is_all_teams_configured": false}), "teams"),
            (json!({"trigger_type": "sometimes"}), "trigger_type"),
            (json!({"payload_type": "custom"}), "custom_payload"),
            (json!({"version": "v3"}), "version"),
            (json!({"colour": "red"}), "colour"),
            (json!({"secret": "whsec_x"}), "secret"),
            (json!({"filters": "service is x"}), "filters"),
        ];
        for (patch, field) in cases {
            let errors = errors_for(patch.clone());
            assert!(
                fields(&errors).contains(&field),
                "{patch} should be rejected naming {field}, got {errors:?}"
            );
        }
    }

    #[test]
    fn urls_are_refused_unless_clean_and_stored_normalized() {
        for (bad, says) in [
            ("https://example.com/a\r\nX-Injected: 1", "U+000D"),
            ("https://example.com/\tpath", "U+0009"),
            ("https://example.com\\evil.example/", "backslash"),
            ("https://exa mple.com/", "spaces"),
            ("http:///h", "host"),
            ("https:/example.com", "host"),
            ("ftp://example.com/", "http or https"),
        ] {
            let err = check_url(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
        assert_eq!(
            check_url("HTTPS://Example.COM:443/Hook?x=1").unwrap(),
            "https://example.com/Hook?x=1"
        );
    }

    #[test]
    fn too_many_urls_headers_and_mail_ids_are_refused() {
        let urls: Vec<Value> = (0..11)
            .map(|i| json!({"url": format!("https://e.com/{i}")}))
            .collect();
        assert!(fields(&errors_for(json!({"urls": urls}))).contains(&"urls"));
        let header: Map<String, Value> = (0..21).map(|i| (format!("X-H{i}"), json!("v"))).collect();
        assert!(fields(&errors_for(json!({"header": header}))).contains(&"header"));
        let mails: Vec<String> = (0..11).map(|i| format!("a{i}@example.com")).collect();
        assert!(fields(&errors_for(json!({"mail_ids": mails}))).contains(&"mail_ids"));
    }

    #[test]
    fn read_only_fields_are_ignored_and_null_means_absent() {
        let mut input = minimal();
        input["id"] = json!("wh_1");
        input["slug"] = json!("ops");
        input["description"] = Value::Null;
        input["max_retry"] = Value::Null;
        let spec = parse_spec(&input).unwrap();
        assert_eq!(spec.description, "");
        assert_eq!(spec.max_retry, 3);
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let errors = errors_for(json!({"name": "", "max_retry": 99, "version": "v9"}));
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}
