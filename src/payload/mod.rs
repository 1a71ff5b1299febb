//! What a receiver gets: Squadcast's v1 and v2 bodies, custom templates and chat presets,
//! and the Standard Webhooks signature. Pure functions, no I/O.

pub mod presets;
pub mod samples;
mod signature;
mod squadcast;
pub mod template;

pub use signature::{sign, sign_all};
pub use squadcast::{render_v1, render_v2};

use crate::domain::{
    event::Event,
    webhook::{PayloadType, PayloadVersion, Webhook, WebhookSpec},
};

/// The body for one webhook, rendered once per event and shared by all its URLs. A custom
/// template that fails gives the reason, which fails the delivery (never the process).
pub fn render(webhook: &Webhook, event: &Event) -> Result<String, String> {
    let spec = &webhook.spec;
    match spec.payload_type {
        PayloadType::Standard => {
            let text = match spec.version {
                PayloadVersion::V2 => serde_json::to_string(&render_v2(event)),
                PayloadVersion::V1 => serde_json::to_string(&render_v1(event)),
            };
            Ok(text.expect("JSON values always serialize"))
        }
        PayloadType::Custom => {
            let source = custom_source(spec)
                .ok_or("the webhook has no custom_payload and no known preset")?;
            let context = template::context(event, &webhook.id, &spec.name);
            template::render(&source, &context).map_err(|e| format!("custom payload template: {e}"))
        }
    }
}

/// The template a custom webhook renders: its own `custom_payload`, else the preset its
/// `custom_payload_template_slug` names.
pub fn custom_source(spec: &WebhookSpec) -> Option<String> {
    match (&spec.custom_payload, &spec.custom_payload_template_slug) {
        (Some(own), _) => Some(own.clone()),
        (None, Some(slug)) => presets::preset(slug).map(presets::source),
        (None, None) => None,
    }
}

/// Squadcast's own triggered sample, used to try templates before they are saved and to
/// show what each preset produces.
pub fn sample_event() -> Event {
    let triggered =
        crate::domain::event_type::EventType::from_name("incident.triggered").expect("known");
    samples::event_of(triggered, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn rendered(slug: &str, kind: &str, url: Option<&str>) -> Value {
        let mut event = sample_event();
        event.event_type = crate::domain::event_type::EventType::from_name(kind).unwrap();
        event
            .incident
            .insert("status".into(), json!(kind.trim_start_matches("incident.")));
        match url {
            Some(u) => event.incident.insert("url".into(), json!(u)),
            None => event.incident.shift_remove("url"),
        };
        let preset = presets::preset(slug).unwrap();
        let out = template::render(
            &presets::source(preset),
            &template::context(&event, "wh_1", "Ops"),
        )
        .unwrap();
        serde_json::from_str(&out).unwrap()
    }

    #[test]
    fn presets_produce_each_tools_message_for_every_incident_event() {
        for kind in [
            "incident.triggered",
            "incident.reassigned",
            "incident.acknowledged",
            "incident.resolved",
        ] {
            for url in [Some("https://app.example/incident/1"), None] {
                let status = kind.trim_start_matches("incident.").to_uppercase();
                let slack = rendered("slack", kind, url);
                assert!(slack["text"].as_str().unwrap().contains(&status), "{slack}");
                assert!(slack["attachments"][0]["color"]
                    .as_str()
                    .unwrap()
                    .starts_with('#'));
                assert_eq!(
                    slack["attachments"][0]
                        .get("title_link")
                        .and_then(Value::as_str),
                    url
                );

                let teams = rendered("msteams", kind, url);
                assert_eq!(teams["@type"], "MessageCard");
                assert!(teams["title"].as_str().unwrap().contains(&status));
                assert_eq!(teams["themeColor"].as_str().unwrap().len(), 6);
                assert_eq!(teams.get("potentialAction").is_some(), url.is_some());

                let discord = rendered("discord", kind, url);
                assert!(discord["content"].as_str().unwrap().contains(&status));
                assert!(discord["embeds"][0]["color"].as_u64().unwrap() > 0);
                assert_eq!(discord["embeds"][0].get("url").and_then(Value::as_str), url);
            }
        }
    }

    #[test]
    fn custom_templates_see_the_v2_data_and_the_webhook() {
        let mut spec = crate::domain::webhook::parse_spec(&json!({
            "name": "Custom", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": "https://e.example"}], "is_all_teams_configured": true,
            "payload_type": "custom",
            "custom_payload": "{\"hook\": {{ webhook.name }}, \"team\": {{ team.name }}, \"id\": {{ incident.id }}, \"type\": {{ event.type }}}"
        })).unwrap();
        let webhook = Webhook::new(&"org".into(), "tok", spec.clone());
        let out: Value = serde_json::from_str(&render(&webhook, &sample_event()).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"hook": "Custom", "team": "Yash", "id": "633e670ae998089239c9f293", "type": "incident.triggered"})
        );
        spec.custom_payload = Some("{{ incident.nope.deeper }}".into());
        let broken = Webhook::new(&"org".into(), "tok", spec);
        assert!(render(&broken, &sample_event()).is_err());
    }
}
