//! A webhook: what to send, where, and when. Built only through [`parse::parse_spec`].

mod header;
mod parse;

pub use header::{
    is_credential_header, mask_url, mask_value, origin, restore_masked, restore_masked_url,
    RESERVED_HEADERS,
};
pub use parse::{
    parse_spec, KNOWN as FIELDS, MAX_CUSTOM_PAYLOAD, MAX_DESCRIPTION, MAX_NAME, MAX_TEAMS,
    MAX_URL_LEN, READ_ONLY as READ_ONLY_FIELDS,
};

use crate::domain::ids::{OrganizationId, WebhookId};
use serde::{Deserialize, Serialize};

use super::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerType {
    Automatic,
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadType {
    Standard,
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadVersion {
    V1,
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "PATCH")]
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub event_class: String,
    pub event_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookUrl {
    pub url: String,
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Everything a user configures on a webhook, valid by construction. (How it is stored is
/// the store's own, versioned form: `store/sql/stored_webhook.rs`; `Serialize` is for the
/// audit log's view.)
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookSpec {
    pub name: String,
    pub description: String,
    pub triggers: Vec<Trigger>,
    pub urls: Vec<WebhookUrl>,
    pub header: Vec<Header>,
    /// Stored as given; the filter module parses it.
    pub filters: Option<serde_json::Value>,
    pub max_retry: u8,
    pub timeout_seconds: u8,
    pub enabled: bool,
    pub teams: Vec<String>,
    pub is_all_teams_configured: bool,
    pub mail_ids: Vec<String>,
    pub trigger_type: TriggerType,
    pub payload_type: PayloadType,
    pub version: PayloadVersion,
    pub custom_payload: Option<String>,
    pub custom_payload_template_slug: Option<String>,
    pub language: Option<String>,
    /// At most this many calls per second to each of its URLs; waiting for a slot is
    /// neither an attempt nor a failure.
    pub rate_limit_per_second: Option<u32>,
}

/// A stored webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: WebhookId,
    pub organization_id: OrganizationId,
    pub slug: String,
    pub author_id: String,
    pub spec: WebhookSpec,
    /// The Standard Webhooks signing secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, still signing (beside the current one) until
    /// its grace period ends, so receivers can switch without dropping deliveries.
    pub previous_secret: Option<PreviousSecret>,
    /// Why tocsin disabled it (a URL answered 410 Gone); cleared when enabled again.
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Webhook {
    pub fn new(organization_id: &OrganizationId, author_id: &str, spec: WebhookSpec) -> Self {
        let now = Timestamp::now();
        Self {
            id: super::ids::WebhookId::generate(),
            organization_id: organization_id.clone(),
            slug: slugify(&spec.name),
            author_id: author_id.to_owned(),
            spec,
            secret: new_secret(),
            previous_secret: None,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PreviousSecret {
    pub secret: String,
    pub until: Timestamp,
}

impl Webhook {
    /// The secrets that sign a delivery made at `now`: the current one, and the previous
    /// one while its grace period lasts.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let Some(previous) = self.previous_secret.as_ref().filter(|p| p.until > now) {
            secrets.push(&previous.secret);
        }
        secrets
    }
}

/// A Standard Webhooks secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    use base64::Engine;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The webhook's fields as the audit log compares them: one entry per setting, and one per
/// extra header (`header.<Name>`), so a change names the header it touched. The signing
/// secret is not among them.
pub fn audit_view(spec: &WebhookSpec) -> serde_json::Map<String, serde_json::Value> {
    let mut view = match serde_json::to_value(spec) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    view.remove("header");
    for h in &spec.header {
        view.insert(
            format!("header.{}", h.name),
            serde_json::Value::String(h.value.clone()),
        );
    }
    view
}

/// How the audit log shows a value of [`audit_view`]: credential headers masked.
pub fn audit_mask(field: &str, value: &serde_json::Value) -> serde_json::Value {
    if field == "urls" {
        if let serde_json::Value::Array(urls) = value {
            let masked = urls
                .iter()
                .map(|u| {
                    let mut u = u.clone();
                    if let Some(text) = u.get("url").and_then(serde_json::Value::as_str) {
                        u["url"] = serde_json::Value::String(mask_url(text));
                    }
                    u
                })
                .collect();
            return serde_json::Value::Array(masked);
        }
    }
    match (field.strip_prefix("header."), value) {
        (Some(name), serde_json::Value::String(v)) if is_credential_header(name) => {
            serde_json::Value::String(mask_value(v))
        }
        _ => value.clone(),
    }
}

/// `My Ops Hook!` → `my-ops-hook`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() {
            slug.extend(c.to_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "webhook".to_owned()
    } else {
        slug.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_words_joined_by_dashes() {
        assert_eq!(slugify("My Ops  Hook!"), "my-ops-hook");
        assert_eq!(slugify("!!!"), "webhook");
    }

    #[test]
    fn secrets_are_prefixed_and_random() {
        let a = new_secret();
        assert!(a.starts_with("whsec_"));
        assert_eq!(a.len(), 6 + 44);
        assert_ne!(a, new_secret());
    }
}
