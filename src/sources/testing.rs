//! What the readers' and the decisions' unit tests share: a source, a payload's items
//! decided on kept states, and the one event or skip that came of it.

use std::collections::HashMap;

use serde_json::Value;

use super::{
    change::Item,
    translate::{decide_all, Outcome},
};
use crate::domain::{
    event::{event_from_members, Event, Tenant},
    ids::{OrganizationId, SourceId},
    source::{IncidentState, Source, SourceKind, SourceSettings, SourceSpec},
    Timestamp,
};

/// A source of `kind` in organization `org_1`, with its settings and default team.
pub fn source(kind: SourceKind, settings: SourceSettings, team: Option<Value>) -> Source {
    Source {
        id: SourceId::from(format!("src_{kind}")),
        organization_id: OrganizationId::from("org_1"),
        spec: SourceSpec {
            name: kind.label().into(),
            kind,
            description: String::new(),
            enabled: true,
            team,
            settings,
        },
        token_hash: String::new(),
        created_at: Timestamp::from_micros(0),
        updated_at: Timestamp::from_micros(0),
    }
}

/// Decides `items` on `states` and keeps in `states` what the events leave, as the store
/// would after the payload.
pub fn deliver(
    source: &Source,
    items: Vec<Item>,
    states: &mut HashMap<String, IncidentState>,
) -> Vec<Outcome> {
    let out = decide_all(source, items, states, Timestamp::from_micros(1));
    for o in &out {
        if let Outcome::Event(made) = o {
            if let Some(next) = &made.next {
                states.insert(next.key.clone(), next.clone());
            }
        }
    }
    out
}

/// The one event `out` holds, parsed as `POST /v3/events` parses it.
pub fn event(out: &[Outcome]) -> Event {
    let [Outcome::Event(made)] = out else {
        panic!("not one event: {out:?}")
    };
    event_from_members(
        made.members.clone(),
        Tenant {
            id: "org_1",
            name: "Acme",
        },
    )
    .unwrap_or_else(|e| panic!("invalid event {}: {e:?}", made.members.body()))
}

/// Why the one outcome of `out` was skipped.
pub fn skipped(out: &[Outcome]) -> &str {
    match out {
        [Outcome::Ignored(why)] => why,
        other => panic!("not one skip: {other:?}"),
    }
}
