//! The stored form of a webhook's settings (the `spec` column): private to the store and
//! versioned, so the domain's `WebhookSpec` can change without making rows unreadable. A
//! field added later gets a default here (rows written before it lack it); a change of
//! meaning gets a new version, read by its own arm of [`from_text`]. Rows written before
//! the version number existed are version 1.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::webhook::{
    Header, PayloadType, PayloadVersion, Trigger, TriggerType, WebhookSpec, WebhookUrl,
};

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StoredV1 {
    #[serde(default = "version_1")]
    v: u32,
    name: String,
    #[serde(default)]
    description: String,
    triggers: Vec<Trigger>,
    urls: Vec<WebhookUrl>,
    #[serde(default)]
    header: Vec<Header>,
    #[serde(default)]
    filters: Option<Value>,
    #[serde(default = "default_max_retry")]
    max_retry: u8,
    #[serde(default = "default_timeout")]
    timeout_seconds: u8,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    teams: Vec<String>,
    #[serde(default)]
    is_all_teams_configured: bool,
    #[serde(default)]
    mail_ids: Vec<String>,
    #[serde(default = "automatic")]
    trigger_type: TriggerType,
    #[serde(default = "standard")]
    payload_type: PayloadType,
    #[serde(default = "v2")]
    version: PayloadVersion,
    #[serde(default)]
    custom_payload: Option<String>,
    #[serde(default)]
    custom_payload_template_slug: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate_limit_per_second: Option<u32>,
}

fn version_1() -> u32 {
    1
}
fn default_max_retry() -> u8 {
    3
}
fn default_timeout() -> u8 {
    10
}
fn yes() -> bool {
    true
}
fn automatic() -> TriggerType {
    TriggerType::Automatic
}
fn standard() -> PayloadType {
    PayloadType::Standard
}
fn v2() -> PayloadVersion {
    PayloadVersion::V2
}

pub(super) fn to_text(spec: &WebhookSpec) -> String {
    let s = spec.clone();
    let stored = StoredV1 {
        v: VERSION,
        name: s.name,
        description: s.description,
        triggers: s.triggers,
        urls: s.urls,
        header: s.header,
        filters: s.filters,
        max_retry: s.max_retry,
        timeout_seconds: s.timeout_seconds,
        enabled: s.enabled,
        teams: s.teams,
        is_all_teams_configured: s.is_all_teams_configured,
        mail_ids: s.mail_ids,
        trigger_type: s.trigger_type,
        payload_type: s.payload_type,
        version: s.version,
        custom_payload: s.custom_payload,
        custom_payload_template_slug: s.custom_payload_template_slug,
        language: s.language,
        rate_limit_per_second: s.rate_limit_per_second,
    };
    serde_json::to_string(&stored).expect("a stored webhook always serializes")
}

pub(super) fn from_text(text: &str) -> Result<WebhookSpec, String> {
    let version = serde_json::from_str::<Value>(text)
        .map_err(|e| e.to_string())?
        .get("v")
        .map_or(Some(1), Value::as_u64);
    match version {
        Some(1) => {
            let s: StoredV1 = serde_json::from_str(text).map_err(|e| e.to_string())?;
            Ok(WebhookSpec {
                name: s.name,
                description: s.description,
                triggers: s.triggers,
                urls: s.urls,
                header: s.header,
                filters: s.filters,
                max_retry: s.max_retry,
                timeout_seconds: s.timeout_seconds,
                enabled: s.enabled,
                teams: s.teams,
                is_all_teams_configured: s.is_all_teams_configured,
                mail_ids: s.mail_ids,
                trigger_type: s.trigger_type,
                payload_type: s.payload_type,
                version: s.version,
                custom_payload: s.custom_payload,
                custom_payload_template_slug: s.custom_payload_template_slug,
                language: s.language,
                rate_limit_per_second: s.rate_limit_per_second,
            })
        }
        other => Err(format!(
            "stored form version {} is newer than this tocsin reads ({VERSION}): run the newer version",
            other.map_or_else(|| "?".to_owned(), |v| v.to_string())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::webhook::Method;

    /// A row as tocsin 0.1 wrote it (before the version number), and as it writes it now:
    /// both must keep loading into the same settings.
    const WRITTEN_BEFORE_VERSIONS: &str = r#"{"name":"Ops","description":"d","triggers":[{"event_class":"incident","event_type":"triggered"}],"urls":[{"url":"https://a.example/h","method":"PUT"}],"header":[{"name":"X-Team","value":"sre"}],"filters":{"op":"and","conditions":[{"op":"is","lhs":"service","rhs":"svc"}]},"max_retry":5,"timeout_seconds":20,"enabled":false,"teams":["t1"],"is_all_teams_configured":false,"mail_ids":["ops@example.com"],"trigger_type":"manual","payload_type":"custom","version":"v1","custom_payload":"{}","custom_payload_template_slug":null,"language":null}"#;
    const WRITTEN_NOW: &str = r#"{"v":1,"name":"Ops","description":"d","triggers":[{"event_class":"incident","event_type":"triggered"}],"urls":[{"url":"https://a.example/h","method":"PUT"}],"header":[{"name":"X-Team","value":"sre"}],"filters":{"op":"and","conditions":[{"op":"is","lhs":"service","rhs":"svc"}]},"max_retry":5,"timeout_seconds":20,"enabled":false,"teams":["t1"],"is_all_teams_configured":false,"mail_ids":["ops@example.com"],"trigger_type":"manual","payload_type":"custom","version":"v1","custom_payload":"{}","custom_payload_template_slug":null,"language":null}"#;

    fn expected() -> WebhookSpec {
        WebhookSpec {
            name: "Ops".into(),
            description: "d".into(),
            triggers: vec![Trigger {
                event_class: "incident".into(),
                event_type: "triggered".into(),
            }],
            urls: vec![WebhookUrl {
                url: "https://a.example/h".into(),
                method: Method::Put,
            }],
            header: vec![Header {
                name: "X-Team".into(),
                value: "sre".into(),
            }],
            filters: Some(
                serde_json::json!({"op": "and", "conditions": [{"op": "is", "lhs": "service", "rhs": "svc"}]}),
            ),
            max_retry: 5,
            timeout_seconds: 20,
            enabled: false,
            teams: vec!["t1".into()],
            is_all_teams_configured: false,
            mail_ids: vec!["ops@example.com".into()],
            trigger_type: TriggerType::Manual,
            payload_type: PayloadType::Custom,
            version: PayloadVersion::V1,
            custom_payload: Some("{}".into()),
            custom_payload_template_slug: None,
            language: None,
            rate_limit_per_second: None,
        }
    }

    #[test]
    fn rows_written_by_earlier_and_current_versions_load() {
        assert_eq!(from_text(WRITTEN_BEFORE_VERSIONS).unwrap(), expected());
        assert_eq!(from_text(WRITTEN_NOW).unwrap(), expected());
        assert_eq!(to_text(&expected()), WRITTEN_NOW, "today's stored form");
    }

    #[test]
    fn missing_fields_take_the_documented_defaults_and_new_versions_are_named() {
        let spec = from_text(
            r#"{"name":"n","triggers":[],"urls":[{"url":"https://a.example/","method":"POST"}]}"#,
        )
        .unwrap();
        assert_eq!((spec.max_retry, spec.timeout_seconds), (3, 10));
        assert!(spec.enabled);
        assert_eq!(spec.trigger_type, TriggerType::Automatic);
        assert_eq!(spec.version, PayloadVersion::V2);
        let err = from_text(r#"{"v":2,"name":"n"}"#).unwrap_err();
        assert!(err.contains("version 2"), "{err}");
    }
}
