//! The registry of event types: one table, so that more kinds (notes, tags, priority) can
//! be added as data.

/// One event type tocsin can receive and deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventType {
    /// `event_class` in a webhook trigger, and `event.resource` in the v2 payload.
    pub class: &'static str,
    /// `event_type` in a webhook trigger.
    pub action: &'static str,
    /// The v2 name, `incident.triggered`.
    pub name: &'static str,
    /// The v1 name, `incident_triggered`.
    pub v1_name: &'static str,
}

pub const EVENT_TYPES: &[EventType] = &[
    EventType {
        class: "incident",
        action: "triggered",
        name: "incident.triggered",
        v1_name: "incident_triggered",
    },
    EventType {
        class: "incident",
        action: "reassigned",
        name: "incident.reassigned",
        v1_name: "incident_reassigned",
    },
    EventType {
        class: "incident",
        action: "acknowledged",
        name: "incident.acknowledged",
        v1_name: "incident_acknowledged",
    },
    EventType {
        class: "incident",
        action: "resolved",
        name: "incident.resolved",
        v1_name: "incident_resolved",
    },
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
            .find(|t| t.name == name || t.v1_name == name)
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
}
