//! The registry of event types: one table of every event Squadcast's webhooks send (see
//! `tests/fixtures/squadcast-samples/v2/`), with the resource each is about and which
//! payload versions send it.

/// One event type tocsin can receive and deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventType {
    /// `event_class` in a webhook trigger: `incident` for every type Squadcast sends.
    pub class: &'static str,
    /// `event_type` in a webhook trigger: the v2 name after `incident.`.
    pub action: &'static str,
    /// The v2 name, `incident.triggered`.
    pub name: &'static str,
    /// The v1 name (`incident_triggered`); v1 payloads exist only for the four incident
    /// events.
    pub v1_name: Option<&'static str>,
    /// `event.resource` and `data.resource_type` in the v2 payload.
    pub resource: &'static str,
    /// How the pages name it, within its resource.
    pub label: &'static str,
}

impl EventType {
    /// Whether the event carries a resource of its own (a note, task, channel, SLO
    /// violation, status page update) beside the incident. For incident and tag events the
    /// incident is the resource.
    pub fn has_resource(&self) -> bool {
        !matches!(self.resource, "incident" | "incident_tags")
    }

    /// The resource as the pages title it.
    pub fn resource_title(&self) -> &'static str {
        match self.resource {
            "incident" => "Incident",
            "incident_tags" => "Tags",
            "incident_notes" => "Notes",
            "incident_task" => "Tasks",
            "communication_channel" => "Communication channels",
            "slo_violating_incident" => "SLO violations",
            "statuspage" => "Status page",
            other => other,
        }
    }

    /// What `resource` holds, for messages and the README.
    pub fn resource_description(&self) -> &'static str {
        match self.resource {
            "incident_notes" => "the note",
            "incident_task" => "the task list",
            "communication_channel" => "the communication channel",
            "slo_violating_incident" => "the SLO violation",
            "statuspage" => "the status page update",
            _ => "the incident",
        }
    }
}

const fn incident(
    action: &'static str,
    name: &'static str,
    v1: &'static str,
    label: &'static str,
) -> EventType {
    EventType {
        class: "incident",
        action,
        name,
        v1_name: Some(v1),
        resource: "incident",
        label,
    }
}

const fn about(
    resource: &'static str,
    action: &'static str,
    name: &'static str,
    label: &'static str,
) -> EventType {
    EventType {
        class: "incident",
        action,
        name,
        v1_name: None,
        resource,
        label,
    }
}

pub const EVENT_TYPES: &[EventType] = &[
    incident(
        "triggered",
        "incident.triggered",
        "incident_triggered",
        "Triggered",
    ),
    incident(
        "reassigned",
        "incident.reassigned",
        "incident_reassigned",
        "Reassigned",
    ),
    incident(
        "acknowledged",
        "incident.acknowledged",
        "incident_acknowledged",
        "Acknowledged",
    ),
    incident(
        "resolved",
        "incident.resolved",
        "incident_resolved",
        "Resolved",
    ),
    about(
        "incident_tags",
        "tags_updated",
        "incident.tags_updated",
        "Tags updated",
    ),
    about(
        "incident_notes",
        "incident_notes_created",
        "incident.incident_notes_created",
        "Note added",
    ),
    about(
        "incident_notes",
        "incident_notes_updated",
        "incident.incident_notes_updated",
        "Note edited",
    ),
    about(
        "incident_notes",
        "incident_notes_deleted",
        "incident.incident_notes_deleted",
        "Note deleted",
    ),
    about(
        "incident_notes",
        "incident_notes_starred",
        "incident.incident_notes_starred",
        "Note starred",
    ),
    about(
        "incident_notes",
        "incident_notes_unstarred",
        "incident.incident_notes_unstarred",
        "Note unstarred",
    ),
    about(
        "incident_task",
        "incident_task_created",
        "incident.incident_task_created",
        "Task added",
    ),
    about(
        "incident_task",
        "incident_task_updated",
        "incident.incident_task_updated",
        "Task edited",
    ),
    about(
        "incident_task",
        "incident_task_deleted",
        "incident.incident_task_deleted",
        "Task deleted",
    ),
    about(
        "incident_task",
        "incident_task_completed",
        "incident.incident_task_completed",
        "Task completed",
    ),
    about(
        "incident_task",
        "incident_task_uncompleted",
        "incident.incident_task_uncompleted",
        "Task reopened",
    ),
    about(
        "communication_channel",
        "communication_channel_created",
        "incident.communication_channel_created",
        "Channel added",
    ),
    about(
        "communication_channel",
        "communication_channel_updated",
        "incident.communication_channel_updated",
        "Channel edited",
    ),
    about(
        "communication_channel",
        "communication_channel_deleted",
        "incident.communication_channel_deleted",
        "Channel removed",
    ),
    about(
        "slo_violating_incident",
        "slo_violating_incident_created",
        "incident.slo_violating_incident_created",
        "SLO violated",
    ),
    about(
        "slo_violating_incident",
        "slo_violating_incident_error_budget_spent_updated",
        "incident.slo_violating_incident_error_budget_spent_updated",
        "Error budget spent",
    ),
    about(
        "slo_violating_incident",
        "slo_violating_incident_false_positive_marked",
        "incident.slo_violating_incident_false_positive_marked",
        "Marked false positive",
    ),
    about(
        "slo_violating_incident",
        "slo_violating_incident_false_positive_unmarked",
        "incident.slo_violating_incident_false_positive_unmarked",
        "Unmarked false positive",
    ),
    about(
        "statuspage",
        "statuspage_updated",
        "incident.statuspage_updated",
        "Status page updated",
    ),
];

impl EventType {
    /// Looks up a trigger's `{event_class, event_type}`.
    pub fn from_trigger(class: &str, action: &str) -> Option<&'static EventType> {
        EVENT_TYPES
            .iter()
            .find(|t| t.class == class && t.action == action)
    }

    /// Looks up an intake `type`, accepting the v2 (`incident.triggered`) or v1
    /// (`incident_triggered`) spelling.
    pub fn from_name(name: &str) -> Option<&'static EventType> {
        EVENT_TYPES
            .iter()
            .find(|t| t.name == name || t.v1_name == Some(name))
    }

    /// Every type grouped by resource (its title), in the registry's order: how the pages
    /// list them.
    pub fn by_resource() -> Vec<(&'static str, Vec<&'static EventType>)> {
        let mut groups: Vec<(&'static str, Vec<&'static EventType>)> = Vec::new();
        for t in EVENT_TYPES {
            match groups
                .iter_mut()
                .find(|(title, _)| *title == t.resource_title())
            {
                Some((_, types)) => types.push(t),
                None => groups.push((t.resource_title(), vec![t])),
            }
        }
        groups
    }

    /// Every `event_type` of a trigger (its `event_class` is always `incident`).
    pub fn trigger_actions() -> Vec<&'static str> {
        EVENT_TYPES.iter().map(|t| t.action).collect()
    }

    /// The allowed `event_class`/`event_type` pairs, for error messages.
    pub fn known_triggers() -> String {
        EVENT_TYPES
            .iter()
            .map(|t| format!("{}/{}", t.class, t.action))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_find_the_same_type() {
        let v2 = EventType::from_name("incident.acknowledged").unwrap();
        let v1 = EventType::from_name("incident_acknowledged").unwrap();
        assert_eq!(v1, v2);
        assert_eq!(
            EventType::from_trigger("incident", "acknowledged"),
            Some(v2)
        );
        assert!(EventType::from_name("incident.exploded").is_none());
    }

    #[test]
    fn types_group_by_resource_in_the_registrys_order() {
        let groups = EventType::by_resource();
        let titles: Vec<&str> = groups.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            titles,
            [
                "Incident",
                "Tags",
                "Notes",
                "Tasks",
                "Communication channels",
                "SLO violations",
                "Status page"
            ]
        );
        assert_eq!(groups[0].1.len(), 4);
        let flat: Vec<&str> = groups
            .iter()
            .flat_map(|(_, ts)| ts.iter().map(|t| t.name))
            .collect();
        let all: Vec<&str> = EVENT_TYPES.iter().map(|t| t.name).collect();
        assert_eq!(flat, all);
    }

    #[test]
    fn the_table_holds_squadcasts_23_types_each_once_and_consistent() {
        assert_eq!(EVENT_TYPES.len(), 23);
        let mut names: Vec<&str> = EVENT_TYPES.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 23, "names are distinct");
        for t in EVENT_TYPES {
            assert_eq!(t.name, format!("{}.{}", t.class, t.action));
            assert_eq!(t.v1_name.is_some(), t.resource == "incident", "{}", t.name);
        }
        let with_resource = EVENT_TYPES.iter().filter(|t| t.has_resource()).count();
        assert_eq!(with_resource, 18);
        assert_eq!(
            EventType::from_name("incident.tags_updated").map(|t| t.resource),
            Some("incident_tags")
        );
    }
}
