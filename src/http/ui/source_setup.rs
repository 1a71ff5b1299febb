//! What a person pastes into the tool that posts to a source: the steps and the snippet for
//! each kind, filled with the source's URL and, the one time it is shown, its token
//! (`<token>` afterwards). Also the help of the generic kind's expressions.

use minijinja::{context, Value as Ctx};

use crate::domain::source::SourceKind;

/// Stands for the token once it is no longer shown.
pub const TOKEN_PLACEHOLDER: &str = "<token>";

/// One step: what to do, and the value to type or paste there (with a copy button).
fn step(text: &str, value: Option<String>) -> Ctx {
    context! { text => text, value => value }
}

/// A note under the steps, with a piece of configuration written as code.
fn note(before: &str, code: &str, after: &str) -> Ctx {
    context! { before => before, code => code, after => after }
}

/// The setup of a `kind` source posting to `url` with `token`, for `source_setup.html`.
pub fn setup(kind: SourceKind, url: &str, token: &str) -> Ctx {
    let bearer = format!("Bearer {token}");
    let basic = || {
        note(
            "Where the tool offers only basic auth: any user name, and the token as the password.",
            "",
            "",
        )
    };
    match kind {
        SourceKind::Alertmanager => context! {
            title => "Add this receiver to alertmanager.yml",
            code_name => "alertmanager.yml",
            code => format!(
                "receivers:\n  - name: tocsin\n    webhook_configs:\n      - url: {url}\n        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            credentials: {token}\n"
            ),
            notes => vec![
                note("Then send alerts to it: set ", "receiver: tocsin", " on the route (or on a child route), and reload Alertmanager."),
                note("Instead of authorization, ", "basic_auth", " works too: any username, and the token as password."),
            ],
        },
        SourceKind::Grafana => context! {
            title => "Add a contact point in Grafana",
            steps => vec![
                step("In Grafana, open Alerting → Contact points → + Add contact point.", None),
                step("Integration:", Some("Webhook".to_owned())),
                step("URL:", Some(url.to_owned())),
                step("Optional Webhook settings → HTTP Method:", Some("POST".to_owned())),
                step("Authorization Header - Scheme:", Some("Bearer".to_owned())),
                step("Authorization Header - Credentials:", Some(token.to_owned())),
                step("Save the contact point and choose it in a notification policy.", None),
            ],
            notes => vec![basic()],
        },
        SourceKind::PagerDuty => context! {
            title => "Add a webhook subscription in PagerDuty",
            steps => vec![
                step("In PagerDuty, open Integrations → Generic Webhooks (v3) → New Webhook.", None),
                step("Webhook URL:", Some(url.to_owned())),
                step("Add custom header, name:", Some("Authorization".to_owned())),
                step("… and value:", Some(bearer)),
                step("Choose the scope (account, service or team) and the events to send: the incident events.", None),
                step("Add the webhook. PagerDuty shows its signing secret once: paste it into Signing secret below and save, and tocsin checks every payload's signature.", None),
            ],
        },
        SourceKind::Opsgenie => context! {
            title => "Add a Webhook integration in Opsgenie",
            steps => vec![
                step("In Opsgenie (or Jira Service Management → Operations), open Settings → Integrations → Add integration → Webhook.", None),
                step("Webhook URL:", Some(url.to_owned())),
                step("Add Alert Description and Add Alert Details: optional; turn them on and incidents carry them.", None),
                step("Custom headers, name:", Some("Authorization".to_owned())),
                step("… and value:", Some(bearer)),
                step("Save the integration and turn it on.", None),
            ],
        },
        SourceKind::Squadcast => context! {
            title => "Add an outgoing webhook in Squadcast",
            steps => vec![
                step("In Squadcast, add an outgoing webhook. URL:", Some(url.to_owned())),
                step("Header name:", Some("Authorization".to_owned())),
                step("… and value:", Some(bearer)),
                step("Choose the incident events to send, and save.", None),
            ],
        },
        SourceKind::Generic => context! {
            title => "Post JSON to this URL",
            code_name => "Try it with curl",
            code => format!(
                "curl -X POST {url} \\\n  -H 'Authorization: Bearer {token}' \\\n  -H 'Content-Type: application/json' \\\n  -d @payload.json\n"
            ),
            notes => vec![
                note("Point the tool's webhook at the URL with the header ", &format!("Authorization: Bearer {token}"), "."),
                basic(),
            ],
        },
    }
}

/// What a kind is for, on the page that offers them.
pub fn blurb(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Alertmanager => "Prometheus alerts: each alert group (or each alert) becomes an incident, resolved when the alerts resolve.",
        SourceKind::Grafana => "Grafana Alerting's webhook contact point: alert groups become incidents.",
        SourceKind::PagerDuty => "PagerDuty's Generic Webhooks (v3): its incidents and their changes, signature checked.",
        SourceKind::Opsgenie => "Opsgenie's (or Jira Service Management's) Webhook integration: alerts and their changes.",
        SourceKind::Squadcast => "Squadcast's own outgoing webhooks: its incident events, as they are.",
        SourceKind::Generic => "Any tool that posts JSON: you say with expressions where the id, status and title are.",
    }
}

/// The generic kind's expressions: setting, label, whether required, help, example.
pub const EXPRESSIONS: [(&str, &str, bool, &str, &str); 8] = [
    ("incident_id", "Incident id", true,
     "What names the incident: the same in every notification about it.",
     "payload.alert.id"),
    ("status", "Status", true,
     "Gives triggered, acknowledged, reassigned or resolved (firing, alerting, open, ack, ok and closed are understood too); anything else is ignored.",
     r#""resolved" if payload.state == "ok" else "triggered""#),
    ("message", "Message", true,
     "The incident's title.",
     "payload.title"),
    ("description", "Description", false,
     "Longer text; an object is kept as its JSON.",
     "payload.details"),
    ("service", "Service", false,
     "Its name as text, or an object with an id; \"generic\" when empty.",
     "payload.monitor.name"),
    ("alert_source", "Alert source", false,
     "What raised it; \"Generic\" when empty.",
     r#""Uptime checker""#),
    ("team", "Team", false,
     "Its id as text, or an object with an id; the source's team when empty.",
     "payload.team"),
    ("dedupe_key", "Deduplication key", false,
     "The notification's own id: one seen before is not a new event.",
     "payload.notification_id"),
];

/// [`EXPRESSIONS`] for the form, with what each holds now and its error.
pub fn expression_fields(
    settings: &serde_json::Value,
    errors: &std::collections::BTreeMap<String, String>,
) -> Vec<Ctx> {
    EXPRESSIONS
        .iter()
        .map(|(name, label, required, help, example)| {
            let field = format!("settings.{name}");
            context! {
                error => errors.get(&field),
                name => field,
                id => format!("settings-{name}"),
                label => *label,
                required => *required,
                help => *help,
                example => *example,
                value => settings[*name].as_str().unwrap_or_default(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_names_the_url_and_the_token() {
        for kind in SourceKind::ALL {
            let shown = setup(
                kind,
                "https://t.example/v3/sources/src_1/events",
                "tsrc_abc",
            );
            let text = format!("{shown:?}");
            assert!(
                text.contains("https://t.example/v3/sources/src_1/events"),
                "{kind}: {text}"
            );
            assert!(text.contains("tsrc_abc"), "{kind}: {text}");
        }
    }
}
