//! Which webhooks an event goes to. One function, so that filters extend it in one place.

use super::{
    event::Event,
    webhook::{TriggerType, WebhookSpec},
};

/// A webhook fires for an event when it is enabled and automatic, one of its triggers is
/// the event's type, and its team scope covers the event's team.
pub fn fires_for(spec: &WebhookSpec, event: &Event) -> bool {
    spec.enabled
        && spec.trigger_type == TriggerType::Automatic
        && spec.triggers.iter().any(|t| {
            t.event_class == event.event_type.class && t.event_type == event.event_type.action
        })
        && (spec.is_all_teams_configured || spec.teams.iter().any(|t| t == event.team_id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        event::{parse_event, Tenant},
        webhook::parse_spec,
    };
    use serde_json::{json, Value};

    fn event(kind: &str, team: &str) -> Event {
        let body = json!({
            "type": kind, "team": {"id": team},
            "incident": {"id": "i", "message": "m", "status": "triggered",
                         "service": {"id": "s"}, "alert_source": {"id": "a"}}
        });
        parse_event(&body, Tenant { id: "o", name: "O" }).unwrap()
    }

    fn spec(patch: Value) -> WebhookSpec {
        let mut body = json!({
            "name": "w",
            "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": "https://e.example/h"}],
            "is_all_teams_configured": true
        });
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        parse_spec(&body).unwrap()
    }

    #[test]
    fn fires_only_when_every_condition_holds() {
        let triggered = event("incident.triggered", "t1");
        assert!(fires_for(&spec(json!({})), &triggered));
        assert!(!fires_for(
            &spec(json!({})),
            &event("incident.resolved", "t1")
        ));
        assert!(!fires_for(&spec(json!({"enabled": false})), &triggered));
        assert!(!fires_for(
            &spec(json!({"trigger_type": "manual"})),
            &triggered
        ));
        let scoped = spec(json!({"is_all_teams_configured": false, "teams": ["t2", "t1"]}));
        assert!(fires_for(&scoped, &triggered));
        assert!(!fires_for(&scoped, &event("incident.triggered", "t3")));
    }
}
