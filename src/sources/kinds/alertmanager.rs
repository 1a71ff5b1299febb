//! Prometheus Alertmanager's webhook (version 4) and Grafana Alerting's webhook contact
//! point, which shares its shape.
//!
//! One incident per alert group (`groupKey`) or per alert (`fingerprint`), as the source's
//! settings say. Alertmanager re-sends a firing group on every `repeat_interval` and when
//! alerts join it; each of those is read as a trigger, and the incident's state decides that
//! only the first is new.

use serde_json::{json, Map, Value};

use crate::{
    domain::{
        field_error::json_kind as kind,
        source::{AlertSettings, IncidentPer, SourceKind},
        Timestamp,
    },
    sources::{
        change::derived_id,
        change::{text_at, Change, Intent, Item, Refusal},
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Prometheus,
    Grafana,
}

impl Flavour {
    fn tool(self) -> &'static str {
        match self {
            Flavour::Prometheus => "Alertmanager",
            Flavour::Grafana => "Grafana",
        }
    }

    fn kind(self) -> SourceKind {
        match self {
            Flavour::Prometheus => SourceKind::Alertmanager,
            Flavour::Grafana => SourceKind::Grafana,
        }
    }

    fn id(self) -> &'static str {
        match self {
            Flavour::Prometheus => "prometheus",
            Flavour::Grafana => "grafana",
        }
    }

    fn alert_source(self) -> Value {
        let name = match self {
            Flavour::Prometheus => "Prometheus",
            Flavour::Grafana => "Grafana",
        };
        json!({"id": self.id(), "type": name, "short_name": self.id()})
    }
}

/// What only Grafana's notification carries: its org, and the legacy `title`, `state` and
/// `message` it keeps from its old alerting.
const GRAFANA_FIELDS: [&str; 4] = ["orgId", "title", "state", "message"];
/// What only Grafana's alerts carry.
const GRAFANA_ALERT_FIELDS: [&str; 4] = ["dashboardURL", "panelURL", "valueString", "silenceURL"];

/// The alerts of a body with an alert group's shape (`groupKey` and `alerts`).
fn group_shape(payload: &Value) -> Option<&Vec<Value>> {
    payload.get("groupKey").filter(|k| k.is_string())?;
    payload.get("alerts")?.as_array()
}

pub fn looks_like(payload: &Value) -> bool {
    group_shape(payload).is_some() && payload.get("version").and_then(Value::as_str) == Some("4")
}

pub fn looks_like_grafana(payload: &Value) -> bool {
    let Some(alerts) = group_shape(payload) else {
        return false;
    };
    GRAFANA_FIELDS.iter().any(|f| payload.get(f).is_some())
        || alerts
            .iter()
            .any(|a| GRAFANA_ALERT_FIELDS.iter().any(|f| a.get(f).is_some()))
}

pub fn read(
    flavour: Flavour,
    payload: &Value,
    settings: &AlertSettings,
) -> Result<Vec<Item>, Refusal> {
    let n = Notification::parse(flavour, payload)?;
    let Some(first) = n.alerts.first() else {
        return Ok(vec![Item::Ignored(
            "ignored: the notification holds no alerts".to_owned(),
        )]);
    };
    match settings.incident_per {
        IncidentPer::Group => Ok(vec![n.group(first, settings)?]),
        IncidentPer::Alert => n.alerts.iter().map(|a| n.alert(a, settings)).collect(),
    }
}

/// Labels or annotations: names to values (Alertmanager's `KV`); absent reads as empty.
#[derive(Debug, Clone, Copy)]
struct Pairs<'a>(Option<&'a Map<String, Value>>);

impl<'a> Pairs<'a> {
    fn parse(value: Option<&'a Value>, field: String) -> Result<Self, Refusal> {
        match value {
            None | Some(Value::Null) => Ok(Pairs(None)),
            Some(Value::Object(map)) => Ok(Pairs(Some(map))),
            Some(other) => Err(Refusal::new(
                field,
                format!(
                    "must be an object of names to values, like {{\"alertname\": \"InstanceDown\"}}, got {}",
                    kind(other)
                ),
            )),
        }
    }

    fn get(self, name: &str) -> Option<String> {
        self.0?.get(name).and_then(pair_text)
    }

    fn iter(self) -> impl Iterator<Item = (&'a str, String)> {
        self.0
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| pair_text(v).map(|t| (k.as_str(), t)))
    }
}

/// A value as label text. Prometheus treats an empty label as an absent one.
fn pair_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Firing,
    Resolved,
}

impl Status {
    fn parse(value: Option<&Value>, field: &str, what: &str) -> Result<Self, Refusal> {
        match value.and_then(Value::as_str) {
            Some("firing") => Ok(Status::Firing),
            Some("resolved") => Ok(Status::Resolved),
            _ => Err(Refusal::new(
                field,
                match value {
                    None | Some(Value::Null) => {
                        format!("is required: \"firing\" or \"resolved\", the state of {what}")
                    }
                    Some(other) => format!(
                        "must be \"firing\" or \"resolved\" (the state of {what}), got {other}"
                    ),
                },
            )),
        }
    }

    fn intent(self) -> Intent {
        match self {
            Status::Firing => Intent::Trigger,
            Status::Resolved => Intent::Resolve,
        }
    }
}

struct Alert<'a> {
    index: usize,
    value: &'a Value,
    labels: Pairs<'a>,
    annotations: Pairs<'a>,
}

impl Alert<'_> {
    fn firing(&self) -> bool {
        text_at(self.value, "status") == Some("firing")
    }

    /// The alert's own key: Alertmanager's fingerprint, or, where a sender leaves it out,
    /// a hash of the sorted labels (what a fingerprint is made from).
    fn key(&self) -> String {
        if let Some(fingerprint) = text_at(self.value, "fingerprint") {
            return fingerprint.to_owned();
        }
        let mut labels: Vec<(&str, String)> = self.labels.iter().collect();
        labels.sort();
        let mut parts = vec!["labels"];
        for (name, value) in &labels {
            parts.push(name);
            parts.push(value);
        }
        derived_id(&parts)
    }
}

struct Notification<'a> {
    flavour: Flavour,
    payload: &'a Value,
    alerts: Vec<Alert<'a>>,
    group_labels: Pairs<'a>,
    common_labels: Pairs<'a>,
    common_annotations: Pairs<'a>,
}

impl<'a> Notification<'a> {
    fn parse(flavour: Flavour, payload: &'a Value) -> Result<Self, Refusal> {
        let tool = flavour.tool();
        let Some(body) = payload.as_object() else {
            return Err(Refusal::new(
                "body",
                format!(
                    "must be a JSON object, {tool}'s webhook notification like {}, got {}",
                    super::expects(flavour.kind()),
                    kind(payload)
                ),
            ));
        };
        let list = match body.get("alerts") {
            Some(Value::Array(list)) => list,
            None | Some(Value::Null) => {
                return Err(Refusal::new(
                    "alerts",
                    format!("is required: {tool}'s list of alerts, like [{{\"status\": \"firing\", \"labels\": {{...}}}}]"),
                ))
            }
            Some(other) => {
                return Err(Refusal::new(
                    "alerts",
                    format!(
                        "must be {tool}'s list of alerts, like [{{\"status\": \"firing\", \"labels\": {{...}}}}], got {}",
                        kind(other)
                    ),
                ))
            }
        };
        let alerts = list
            .iter()
            .enumerate()
            .map(|(index, value)| Self::alert_at(index, value))
            .collect::<Result<_, _>>()?;
        Ok(Notification {
            flavour,
            payload,
            alerts,
            group_labels: Pairs::parse(body.get("groupLabels"), "groupLabels".into())?,
            common_labels: Pairs::parse(body.get("commonLabels"), "commonLabels".into())?,
            common_annotations: Pairs::parse(
                body.get("commonAnnotations"),
                "commonAnnotations".into(),
            )?,
        })
    }

    fn alert_at(index: usize, value: &'a Value) -> Result<Alert<'a>, Refusal> {
        if !value.is_object() {
            return Err(Refusal::new(
                format!("alerts[{index}]"),
                format!(
                    "must be an object like {{\"status\": \"firing\", \"labels\": {{...}}, \"annotations\": {{...}}}}, got {}",
                    kind(value)
                ),
            ));
        }
        Ok(Alert {
            index,
            value,
            labels: Pairs::parse(value.get("labels"), format!("alerts[{index}].labels"))?,
            annotations: Pairs::parse(
                value.get("annotations"),
                format!("alerts[{index}].annotations"),
            )?,
        })
    }

    /// The group as one incident: its labels are the common and grouping ones, and what
    /// the group does not share is taken from its first firing alert (`first` when none is).
    fn group<'n>(
        &'n self,
        first: &'n Alert<'a>,
        settings: &AlertSettings,
    ) -> Result<Item, Refusal> {
        let key = text_at(self.payload, "groupKey").ok_or_else(|| {
            Refusal::new(
                "groupKey",
                format!(
                    "is required to keep one incident per alert group: the key {} names the group by, like \"{{}}:{{alertname=\\\"InstanceDown\\\"}}\"; or set the source's settings.incident_per to \"alert\" for one incident per alert",
                    self.flavour.tool()
                ),
            )
        })?;
        let status = Status::parse(self.payload.get("status"), "status", "the alert group")?;
        let mut labels: Vec<(&str, String)> = self.common_labels.iter().collect();
        for (name, value) in self.group_labels.iter() {
            if !labels.iter().any(|(n, _)| *n == name) {
                labels.push((name, value));
            }
        }
        let lead = self.alerts.iter().find(|a| a.firing()).unwrap_or(first);
        Ok(self.change(
            Facts {
                key: key.to_owned(),
                intent: status.intent(),
                labels,
                annotations: self.common_annotations,
                lead,
                alerts: &self.alerts,
                event_payload: self.payload,
            },
            settings,
        ))
    }

    fn alert<'n>(
        &'n self,
        alert: &'n Alert<'a>,
        settings: &AlertSettings,
    ) -> Result<Item, Refusal> {
        let status = Status::parse(
            alert.value.get("status"),
            &format!("alerts[{}].status", alert.index),
            "the alert",
        )?;
        Ok(self.change(
            Facts {
                key: alert.key(),
                intent: status.intent(),
                labels: alert.labels.iter().collect(),
                annotations: alert.annotations,
                lead: alert,
                alerts: std::slice::from_ref(alert),
                event_payload: alert.value,
            },
            settings,
        ))
    }

    fn change(&self, facts: Facts<'a, '_>, settings: &AlertSettings) -> Item {
        let grafana = |field: &str| match self.flavour {
            Flavour::Grafana => text_at(self.payload, field).map(str::to_owned),
            Flavour::Prometheus => None,
        };
        let message = facts
            .annotation("summary")
            .or_else(|| facts.label("alertname"))
            .or_else(|| grafana("title"))
            .unwrap_or_else(|| facts.key.clone());
        let description = facts
            .annotation("description")
            .or_else(|| grafana("message"));
        let service = facts
            .own_label(&settings.service_label)
            .or_else(|| facts.own_label("job"))
            .or_else(|| text_at(self.payload, "receiver").map(str::to_owned))
            .unwrap_or_else(|| self.flavour.id().to_owned());
        let lead = facts.lead.value;
        let external = text_at(self.payload, "externalURL");

        let mut incident = Map::new();
        incident.insert("message".into(), Value::String(message));
        if let Some(d) = description {
            incident.insert("description".into(), Value::String(d));
        }
        if let Some(url) = text_at(lead, "generatorURL").or(external) {
            incident.insert("url".into(), Value::String(url.to_owned()));
        }
        incident.insert("service".into(), json!({"id": service, "name": service}));
        incident.insert("alert_source".into(), self.flavour.alert_source());
        if let Some(start) = earliest_start(facts.alerts) {
            incident.insert("created_at".into(), Value::String(start.to_owned()));
        }
        let tags: Map<String, Value> = facts
            .labels
            .iter()
            .map(|(name, value)| ((*name).to_owned(), json!({"value": value, "color": ""})))
            .collect();
        incident.insert("tags".into(), Value::Object(tags));
        incident.insert("links".into(), Value::Object(links(lead, external)));
        incident.insert("event_payload".into(), facts.event_payload.clone());
        incident.insert("event_count".into(), json!(facts.alerts.len()));

        let mut change = Change::new(facts.key.clone(), facts.intent, incident);
        change.team = facts
            .own_label(&settings.team_label)
            .map(|team| json!({"id": team, "name": team}));
        Item::Change(Box::new(change))
    }
}

/// What one incident is read from, whether it is a group or a single alert.
struct Facts<'a, 'n> {
    key: String,
    intent: Intent,
    /// The incident's own labels: the group's common ones, or the alert's.
    labels: Vec<(&'a str, String)>,
    /// The incident's own annotations: the group's common ones, or the alert's.
    annotations: Pairs<'a>,
    /// The alert whose links stand for the incident, and whose annotations and labels fill
    /// in what the group does not share.
    lead: &'n Alert<'a>,
    alerts: &'n [Alert<'a>],
    event_payload: &'a Value,
}

impl Facts<'_, '_> {
    fn own_label(&self, name: &str) -> Option<String> {
        self.labels
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    fn label(&self, name: &str) -> Option<String> {
        self.own_label(name).or_else(|| self.lead.labels.get(name))
    }

    fn annotation(&self, name: &str) -> Option<String> {
        self.annotations
            .get(name)
            .or_else(|| self.lead.annotations.get(name))
    }
}

/// The links a receiver may show: those the notification gives, Grafana's included.
fn links(alert: &Value, external_url: Option<&str>) -> Map<String, Value> {
    let mut links = Map::new();
    let mut add = |name: &str, url: Option<&str>| {
        if let Some(url) = url {
            links.insert(name.to_owned(), Value::String(url.to_owned()));
        }
    };
    add("generator_url", text_at(alert, "generatorURL"));
    add("external_url", external_url);
    add("silence_url", text_at(alert, "silenceURL"));
    add("dashboard_url", text_at(alert, "dashboardURL"));
    add("panel_url", text_at(alert, "panelURL"));
    add("image_url", text_at(alert, "imageURL"));
    links
}

/// When the incident began: the earliest `startsAt`, as written.
fn earliest_start<'a>(alerts: &[Alert<'a>]) -> Option<&'a str> {
    alerts
        .iter()
        .filter_map(|a| {
            let text = text_at(a.value, "startsAt")?;
            Some((Timestamp::parse_rfc3339(text)?, text))
        })
        .min_by_key(|(at, _)| *at)
        .map(|(_, text)| text)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::{
        domain::{
            event::{event_from_members, Tenant},
            ids::{OrganizationId, SourceId},
            source::{IncidentState, Source, SourceSettings, SourceSpec},
        },
        sources::translate::{decide_all, Outcome},
    };

    const AM_FIRING: &str =
        include_str!("../../../tests/fixtures/sources/alertmanager/firing-group.json");
    const AM_RESOLVED: &str =
        include_str!("../../../tests/fixtures/sources/alertmanager/resolved-group.json");
    const AM_MIXED: &str =
        include_str!("../../../tests/fixtures/sources/alertmanager/one-resolved-one-firing.json");
    const GF_FIRING: &str = include_str!("../../../tests/fixtures/sources/grafana/firing.json");
    const GF_RESOLVED: &str = include_str!("../../../tests/fixtures/sources/grafana/resolved.json");
    const GF_DASHBOARD: &str =
        include_str!("../../../tests/fixtures/sources/grafana/firing-with-dashboard.json");
    const SQUADCAST: &str =
        include_str!("../../../tests/fixtures/squadcast-samples/v2/incident-triggered.json");

    fn load(text: &str) -> Value {
        serde_json::from_str(text).expect("fixtures are JSON")
    }

    fn per(incident_per: IncidentPer) -> AlertSettings {
        AlertSettings {
            incident_per,
            ..AlertSettings::default()
        }
    }

    fn changes(flavour: Flavour, payload: &Value, settings: &AlertSettings) -> Vec<Change> {
        read(flavour, payload, settings)
            .expect("read")
            .into_iter()
            .map(|item| match item {
                Item::Change(c) => *c,
                Item::Ignored(why) => panic!("ignored: {why}"),
            })
            .collect()
    }

    /// The one change a notification makes in group mode.
    fn group(flavour: Flavour, payload: &Value) -> Change {
        let mut all = changes(flavour, payload, &AlertSettings::default());
        assert_eq!(all.len(), 1, "one change per notification");
        all.remove(0)
    }

    fn refused(flavour: Flavour, payload: &Value, settings: &AlertSettings) -> Refusal {
        read(flavour, payload, settings).expect_err("refused")
    }

    #[test]
    fn a_firing_group_is_one_trigger_keyed_by_its_group_key() {
        let c = group(Flavour::Prometheus, &load(AM_FIRING));
        assert_eq!(c.key, "{}:{alertname=\"InstanceDown\", job=\"node\"}");
        assert_eq!(c.intent, Intent::Trigger);
        let g = group(Flavour::Grafana, &load(GF_FIRING));
        assert_eq!((g.key.as_str(), g.intent), ("{}:{}", Intent::Trigger));
    }

    #[test]
    fn a_resolved_group_resolves_the_same_key() {
        let firing = group(Flavour::Prometheus, &load(AM_FIRING));
        let resolved = group(Flavour::Prometheus, &load(AM_RESOLVED));
        assert_eq!(resolved.intent, Intent::Resolve);
        assert_eq!(resolved.key, firing.key);
        let g = group(Flavour::Grafana, &load(GF_RESOLVED));
        assert_eq!((g.key.as_str(), g.intent), ("{}:{}", Intent::Resolve));
    }

    #[test]
    fn a_group_with_a_resolved_alert_still_firing_is_a_trigger() {
        // The state then finds the group open: a re-notification, not a new event.
        let c = group(Flavour::Prometheus, &load(AM_MIXED));
        assert_eq!(c.intent, Intent::Trigger);
    }

    #[test]
    fn ids_and_timestamp_are_left_to_the_state() {
        for c in changes(
            Flavour::Prometheus,
            &load(AM_MIXED),
            &per(IncidentPer::Alert),
        )
        .into_iter()
        .chain([group(Flavour::Grafana, &load(GF_FIRING))])
        {
            assert_eq!((c.incident_id, c.event_id, c.timestamp), (None, None, None));
            assert!(c.exact.is_none() && c.organization.is_none() && c.resource.is_none());
        }
    }

    #[test]
    fn the_message_is_the_common_summary_else_the_first_firing_alerts() {
        let mut payload = load(AM_MIXED);
        // No summary is common to the group: the first firing alert's (node-2; node-1 resolved).
        assert_eq!(
            group(Flavour::Prometheus, &payload).incident["message"],
            "Instance node-2.example.org:9100 down"
        );
        payload["commonAnnotations"] = json!({"summary": "Instances down"});
        assert_eq!(
            group(Flavour::Prometheus, &payload).incident["message"],
            "Instances down"
        );
        // A resolved group has no firing alert: its first alert speaks for it.
        assert_eq!(
            group(Flavour::Prometheus, &load(AM_RESOLVED)).incident["message"],
            "Instance node-1.example.org:9100 down"
        );
    }

    #[test]
    fn without_a_summary_the_message_is_the_alertname_then_grafanas_title() {
        let mut payload = load(AM_FIRING);
        for alert in payload["alerts"].as_array_mut().unwrap() {
            alert["annotations"]
                .as_object_mut()
                .unwrap()
                .remove("summary");
        }
        assert_eq!(
            group(Flavour::Prometheus, &payload).incident["message"],
            "InstanceDown"
        );
        payload["commonLabels"]
            .as_object_mut()
            .unwrap()
            .remove("alertname");
        payload["groupLabels"]
            .as_object_mut()
            .unwrap()
            .remove("alertname");
        assert_eq!(
            group(Flavour::Prometheus, &payload).incident["message"],
            "InstanceDown",
            "the first alert's alertname"
        );

        let mut grafana = load(GF_FIRING);
        assert_eq!(
            group(Flavour::Grafana, &grafana).incident["message"],
            "This alert was triggered for zone us-1"
        );
        for alert in grafana["alerts"].as_array_mut().unwrap() {
            alert["annotations"]
                .as_object_mut()
                .unwrap()
                .remove("summary");
        }
        assert_eq!(
            group(Flavour::Grafana, &grafana).incident["message"],
            "High memory usage"
        );
        for alert in grafana["alerts"].as_array_mut().unwrap() {
            alert["labels"].as_object_mut().unwrap().remove("alertname");
        }
        assert_eq!(
            group(Flavour::Grafana, &grafana).incident["message"],
            "[FIRING:2]  (blue)"
        );
        // Alertmanager has no title; its message is then the incident's key.
        grafana["alerts"][0]["labels"] = json!({});
        let am = group(Flavour::Prometheus, &grafana);
        assert_eq!(am.incident["message"], am.key.as_str());
    }

    #[test]
    fn the_description_is_the_annotation_then_grafanas_message() {
        assert_eq!(
            group(Flavour::Prometheus, &load(AM_FIRING)).incident["description"],
            "node-1.example.org:9100 of job node has been down for more than 5 minutes."
        );
        let mut grafana = load(GF_FIRING);
        assert_eq!(
            group(Flavour::Grafana, &grafana).incident["description"],
            "The system has high memory usage"
        );
        for alert in grafana["alerts"].as_array_mut().unwrap() {
            alert["annotations"] = json!({});
        }
        let c = group(Flavour::Grafana, &grafana);
        assert!(c.incident["description"]
            .as_str()
            .unwrap()
            .starts_with("**Firing**\n\nLabels:"));
        let mut am = load(AM_FIRING);
        for alert in am["alerts"].as_array_mut().unwrap() {
            alert["annotations"] = json!({});
        }
        assert!(!group(Flavour::Prometheus, &am)
            .incident
            .contains_key("description"));
    }

    #[test]
    fn the_service_is_the_service_label_then_job_then_the_receiver() {
        let mut payload = load(AM_FIRING);
        assert_eq!(
            group(Flavour::Prometheus, &payload).incident["service"],
            json!({"id": "node", "name": "node"}),
            "job"
        );
        payload["commonLabels"]["service"] = json!("checkout");
        assert_eq!(
            group(Flavour::Prometheus, &payload).incident["service"],
            json!({"id": "checkout", "name": "checkout"})
        );
        // Grafana's example has neither label: its contact point names the service.
        assert_eq!(
            group(Flavour::Grafana, &load(GF_FIRING)).incident["service"],
            json!({"id": "My Super Webhook", "name": "My Super Webhook"})
        );
        let mut bare = load(GF_FIRING);
        bare.as_object_mut().unwrap().remove("receiver");
        assert_eq!(
            group(Flavour::Grafana, &bare).incident["service"]["id"],
            "grafana"
        );
    }

    #[test]
    fn the_service_and_team_labels_are_the_sources_settings() {
        let mut payload = load(AM_FIRING);
        payload["commonLabels"]["app"] = json!("billing");
        payload["commonLabels"]["owner"] = json!("payments");
        payload["commonLabels"]["team"] = json!("ignored");
        let settings = AlertSettings {
            incident_per: IncidentPer::Group,
            service_label: "app".into(),
            team_label: "owner".into(),
        };
        let c = changes(Flavour::Prometheus, &payload, &settings).remove(0);
        assert_eq!(
            c.incident["service"],
            json!({"id": "billing", "name": "billing"})
        );
        assert_eq!(c.team, Some(json!({"id": "payments", "name": "payments"})));
    }

    #[test]
    fn the_team_is_the_team_label_else_the_sources() {
        assert_eq!(
            group(Flavour::Grafana, &load(GF_FIRING)).team,
            Some(json!({"id": "blue", "name": "blue"}))
        );
        assert_eq!(group(Flavour::Prometheus, &load(AM_FIRING)).team, None);
    }

    #[test]
    fn labels_become_tags() {
        let c = group(Flavour::Prometheus, &load(AM_FIRING));
        assert_eq!(
            c.incident["tags"],
            json!({
                "alertname": {"value": "InstanceDown", "color": ""},
                "job": {"value": "node", "color": ""},
                "severity": {"value": "page", "color": ""}
            })
        );
        let mut payload = load(AM_FIRING);
        payload["groupLabels"]["cluster"] = json!("eu-west");
        let tags = &group(Flavour::Prometheus, &payload).incident["tags"];
        assert_eq!(tags["cluster"]["value"], "eu-west", "group labels too");
        // Grafana groups by an empty alertname here: an empty label is no label.
        let g = group(Flavour::Grafana, &load(GF_DASHBOARD));
        assert_eq!(
            g.incident["tags"],
            json!({"alertname": {"value": "alert1", "color": ""}, "lbl1": {"value": "val1", "color": ""}})
        );
        let alert = changes(
            Flavour::Prometheus,
            &load(AM_FIRING),
            &per(IncidentPer::Alert),
        )
        .remove(1);
        assert_eq!(
            alert.incident["tags"]["instance"]["value"],
            "node-2.example.org:9100"
        );
        assert_eq!(alert.incident["tags"].as_object().unwrap().len(), 4);
    }

    #[test]
    fn links_are_kept() {
        let c = group(Flavour::Prometheus, &load(AM_FIRING));
        let generator = "http://prometheus.example.org:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1";
        assert_eq!(c.incident["url"], generator);
        assert_eq!(
            c.incident["links"],
            json!({"generator_url": generator, "external_url": "http://alertmanager.example.org:9093"})
        );
        let g = group(Flavour::Grafana, &load(GF_DASHBOARD));
        assert_eq!(
            g.incident["links"],
            json!({
                "generator_url": "http://localhost/test?orgId=1",
                "external_url": "http://localhost",
                "silence_url": "http://localhost/alerting/silence/new?alertmanager=grafana&matcher=alertname%3Dalert1&matcher=lbl1%3Dval1&orgId=1",
                "dashboard_url": "http://localhost/d/abcd?orgId=1",
                "panel_url": "http://localhost/d/abcd?orgId=1&viewPanel=efgh"
            })
        );
        // Grafana's documented example leaves its dashboard and panel URLs empty.
        let links = &group(Flavour::Grafana, &load(GF_FIRING)).incident["links"];
        assert!(links.get("dashboard_url").is_none() && links.get("panel_url").is_none());
        assert!(links["silence_url"]
            .as_str()
            .unwrap()
            .contains("zone%3Dus-1"));

        let mut payload = load(AM_FIRING);
        for alert in payload["alerts"].as_array_mut().unwrap() {
            alert.as_object_mut().unwrap().remove("generatorURL");
        }
        let c = group(Flavour::Prometheus, &payload);
        assert_eq!(c.incident["url"], "http://alertmanager.example.org:9093");
        assert!(c.incident["links"].get("generator_url").is_none());
    }

    #[test]
    fn created_at_is_the_earliest_start() {
        let c = group(Flavour::Prometheus, &load(AM_FIRING));
        // The second alert started first.
        assert_eq!(c.incident["created_at"], "2024-05-14T09:10:01.27Z");
        let g = group(Flavour::Grafana, &load(GF_FIRING));
        assert_eq!(g.incident["created_at"], "2021-10-12T09:51:03.157076+02:00");
        let alerts = changes(
            Flavour::Prometheus,
            &load(AM_FIRING),
            &per(IncidentPer::Alert),
        );
        assert_eq!(alerts[0].incident["created_at"], "2024-05-14T09:12:31.512Z");
    }

    #[test]
    fn the_event_payload_is_the_notification_or_the_alert() {
        let payload = load(AM_FIRING);
        let c = group(Flavour::Prometheus, &payload);
        assert_eq!(c.incident["event_payload"], payload);
        assert_eq!(c.incident["event_count"], 2);
        let alerts = changes(Flavour::Prometheus, &payload, &per(IncidentPer::Alert));
        assert_eq!(alerts[1].incident["event_payload"], payload["alerts"][1]);
        assert_eq!(alerts[1].incident["event_count"], 1);
    }

    #[test]
    fn the_alert_source_is_the_flavours() {
        assert_eq!(
            group(Flavour::Prometheus, &load(AM_FIRING)).incident["alert_source"],
            json!({"id": "prometheus", "type": "Prometheus", "short_name": "prometheus"})
        );
        assert_eq!(
            group(Flavour::Grafana, &load(GF_FIRING)).incident["alert_source"],
            json!({"id": "grafana", "type": "Grafana", "short_name": "grafana"})
        );
    }

    #[test]
    fn per_alert_each_alert_is_its_own_incident_with_its_own_status() {
        let c = changes(
            Flavour::Prometheus,
            &load(AM_MIXED),
            &per(IncidentPer::Alert),
        );
        let read: Vec<(&str, Intent)> = c.iter().map(|c| (c.key.as_str(), c.intent)).collect();
        assert_eq!(
            read,
            [
                ("3b15fd163d36582e", Intent::Resolve),
                ("bd3a9ef8e04a6a8e", Intent::Trigger)
            ]
        );
        assert_eq!(
            c[1].incident["message"],
            "Instance node-2.example.org:9100 down"
        );
        assert_eq!(
            c[1].incident["description"],
            "node-2.example.org:9100 of job node has been down for more than 5 minutes."
        );
        let g = changes(Flavour::Grafana, &load(GF_FIRING), &per(IncidentPer::Alert));
        let keys: Vec<&str> = g.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["c6eadffa33fcdf37", "bc97ff14869b13e3"]);
        assert_eq!(
            g[1].incident["message"],
            "This alert was triggered for zone eu-1"
        );
    }

    #[test]
    fn an_alert_without_a_fingerprint_is_keyed_by_its_sorted_labels() {
        let mut payload = load(GF_FIRING);
        for alert in payload["alerts"].as_array_mut().unwrap() {
            alert.as_object_mut().unwrap().remove("fingerprint");
        }
        let keys = |p: &Value| -> Vec<String> {
            changes(Flavour::Grafana, p, &per(IncidentPer::Alert))
                .into_iter()
                .map(|c| c.key)
                .collect()
        };
        let first = keys(&payload);
        assert_ne!(first[0], first[1], "different labels, different incidents");
        payload["alerts"][0]["labels"] =
            json!({"zone": "us-1", "team": "blue", "alertname": "High memory usage"});
        assert_eq!(keys(&payload), first, "the labels' order does not matter");
    }

    #[test]
    fn unreadable_notifications_are_refused_naming_the_field() {
        let group_mode = AlertSettings::default();
        let alert_mode = per(IncidentPer::Alert);
        let r = refused(Flavour::Prometheus, &json!([1]), &group_mode);
        assert_eq!((r.status, r.field.as_str()), (422, "body"));
        assert!(r.message.contains("must be a JSON object") && r.message.contains("groupKey"));

        let r = refused(
            Flavour::Prometheus,
            &json!({"status": "firing"}),
            &group_mode,
        );
        assert_eq!(r.field, "alerts");
        assert_eq!(
            r.message,
            "is required: Alertmanager's list of alerts, like [{\"status\": \"firing\", \"labels\": {...}}]"
        );
        let r = refused(Flavour::Grafana, &json!({"alerts": {}}), &group_mode);
        assert_eq!(r.field, "alerts");
        assert!(
            r.message.contains("Grafana's list of alerts") && r.message.ends_with("got an object")
        );

        let mut payload = load(AM_FIRING);
        payload["alerts"][1] = json!("down");
        let r = refused(Flavour::Prometheus, &payload, &group_mode);
        assert_eq!(r.field, "alerts[1]");
        assert!(r.message.ends_with("got a string"));

        let mut payload = load(AM_FIRING);
        payload["alerts"][0]["labels"] = json!(["job"]);
        assert_eq!(
            refused(Flavour::Prometheus, &payload, &group_mode).field,
            "alerts[0].labels"
        );
        let mut payload = load(AM_FIRING);
        payload["commonLabels"] = json!("job=node");
        assert_eq!(
            refused(Flavour::Prometheus, &payload, &group_mode).field,
            "commonLabels"
        );

        let mut payload = load(AM_FIRING);
        payload.as_object_mut().unwrap().remove("groupKey");
        let r = refused(Flavour::Prometheus, &payload, &group_mode);
        assert_eq!(r.field, "groupKey");
        assert!(r.message.contains("incident_per"), "{}", r.message);
        assert_eq!(
            read(Flavour::Prometheus, &payload, &alert_mode)
                .unwrap()
                .len(),
            2,
            "per alert, no group key is needed"
        );

        let mut payload = load(AM_FIRING);
        payload["status"] = json!("pending");
        let r = refused(Flavour::Prometheus, &payload, &group_mode);
        assert_eq!(r.field, "status");
        assert!(
            r.message.contains("\"firing\" or \"resolved\"")
                && r.message.ends_with("got \"pending\"")
        );
        payload.as_object_mut().unwrap().remove("status");
        assert!(refused(Flavour::Prometheus, &payload, &group_mode)
            .message
            .starts_with("is required"));

        let mut payload = load(AM_FIRING);
        payload["alerts"][1]["status"] = json!("inactive");
        let r = refused(Flavour::Prometheus, &payload, &alert_mode);
        assert_eq!(r.field, "alerts[1].status");
    }

    #[test]
    fn a_notification_without_alerts_is_ignored() {
        let mut payload = load(AM_FIRING);
        payload["alerts"] = json!([]);
        for settings in [AlertSettings::default(), per(IncidentPer::Alert)] {
            assert_eq!(
                read(Flavour::Prometheus, &payload, &settings).unwrap(),
                [Item::Ignored(
                    "ignored: the notification holds no alerts".into()
                )]
            );
        }
    }

    #[test]
    fn the_shapes_are_told_apart() {
        for text in [AM_FIRING, AM_RESOLVED, AM_MIXED] {
            let p = load(text);
            assert!(looks_like(&p) && !looks_like_grafana(&p));
            assert_eq!(super::super::recognise(&p), Some(SourceKind::Alertmanager));
        }
        for text in [GF_FIRING, GF_RESOLVED, GF_DASHBOARD] {
            let p = load(text);
            assert!(looks_like_grafana(&p) && !looks_like(&p));
            assert_eq!(super::super::recognise(&p), Some(SourceKind::Grafana));
        }
        let squadcast = load(SQUADCAST);
        assert!(!looks_like(&squadcast) && !looks_like_grafana(&squadcast));
        // Grafana's legacy fields are to be dropped; its alerts still tell it apart.
        let mut p = load(GF_FIRING);
        for f in GRAFANA_FIELDS {
            p.as_object_mut().unwrap().remove(f);
        }
        assert!(looks_like_grafana(&p));
    }

    fn source(kind: SourceKind, settings: AlertSettings) -> Source {
        Source {
            id: SourceId::from("src_1"),
            organization_id: OrganizationId::from("org_1"),
            spec: SourceSpec {
                name: "alerts".into(),
                kind,
                description: String::new(),
                enabled: true,
                team: Some(json!({"id": "t1", "name": "SRE"})),
                settings: SourceSettings::Alerts(settings),
            },
            token_hash: String::new(),
            created_at: Timestamp::from_micros(0),
            updated_at: Timestamp::from_micros(0),
        }
    }

    /// Decides `payload` against `states` and checks that each event is one intake accepts.
    fn events(
        flavour: Flavour,
        payload: &Value,
        settings: AlertSettings,
        states: &HashMap<String, IncidentState>,
    ) -> Vec<(Value, Option<IncidentState>)> {
        let src = source(flavour.kind(), settings.clone());
        let items = read(flavour, payload, &settings).expect("read");
        decide_all(&src, items, states, Timestamp::from_micros(1))
            .into_iter()
            .filter_map(|outcome| match outcome {
                Outcome::Event(made) => {
                    let tenant = Tenant {
                        id: "org_1",
                        name: "Acme",
                    };
                    event_from_members(made.members.clone(), tenant).expect("a valid event");
                    Some((made.members.body(), made.next))
                }
                Outcome::Ignored(_) => None,
            })
            .collect()
    }

    #[test]
    fn every_fixture_makes_valid_events() {
        let none = HashMap::new();
        for (flavour, text) in [
            (Flavour::Prometheus, AM_FIRING),
            (Flavour::Prometheus, AM_MIXED),
            (Flavour::Grafana, GF_FIRING),
            (Flavour::Grafana, GF_DASHBOARD),
        ] {
            let payload = load(text);
            let made = events(flavour, &payload, AlertSettings::default(), &none);
            assert_eq!(made.len(), 1, "a group is one incident");
            assert_eq!(made[0].0["type"], "incident.triggered");
            let per_alert = events(flavour, &payload, per(IncidentPer::Alert), &none);
            let firing = payload["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["status"] == "firing")
                .count();
            assert_eq!(
                per_alert.len(),
                firing,
                "each firing alert its own incident"
            );
        }
    }

    #[test]
    fn a_group_fires_then_resolves_as_one_incident() {
        for (flavour, firing, resolved) in [
            (Flavour::Prometheus, AM_FIRING, AM_RESOLVED),
            (Flavour::Grafana, GF_FIRING, GF_RESOLVED),
        ] {
            let none = HashMap::new();
            let settings = AlertSettings::default();
            let (triggered, next) =
                events(flavour, &load(firing), settings.clone(), &none).remove(0);
            let state = next.expect("state kept");
            let states = HashMap::from([(state.key.clone(), state)]);
            assert!(
                events(flavour, &load(firing), settings.clone(), &states).is_empty(),
                "a re-notification is not a new event"
            );
            let (body, _) = events(flavour, &load(resolved), settings, &states).remove(0);
            assert_eq!(body["type"], "incident.resolved");
            assert_eq!(body["incident"]["id"], triggered["incident"]["id"]);
            assert_eq!(body["incident"]["status"], "resolved");
            assert_eq!(triggered["team"], body["team"]);
        }
    }
}
