//! Incidents whose lane lock another node holds: once intake has waited for one in vain
//! (`lock_timeout`), that incident's events are answered "send again" at once for a while
//! instead of each waiting as long again — and holding every event queued behind them, of
//! any incident. Then one is tried again. Pure, with the caller's clock.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::domain::ids::OrganizationId;

/// How long an incident counts as locked after a wait for its lock failed: about one
/// `lock_timeout`, so at most one write at a time waits on it.
pub const LOCKED_FOR: Duration = Duration::from_secs(3);

/// Why an event of a locked incident was not stored (its sender is told to send it again).
pub fn refusal(incident_id: &str) -> String {
    format!("incident {incident_id} is locked by another node's unfinished write")
}

#[derive(Debug, Default)]
pub struct LockedIncidents {
    until: HashMap<(OrganizationId, String), Instant>,
}

impl LockedIncidents {
    /// A write of this incident waited for its lock in vain at `now`.
    pub fn note(&mut self, organization_id: &OrganizationId, incident_id: &str, now: Instant) {
        self.until.retain(|_, until| *until > now);
        self.until.insert(
            (organization_id.clone(), incident_id.to_owned()),
            now + LOCKED_FOR,
        );
    }

    /// Whether an event of this incident should be answered at once rather than tried.
    pub fn is_locked(
        &self,
        organization_id: &OrganizationId,
        incident_id: &str,
        now: Instant,
    ) -> bool {
        // Asked of every event intake takes: nothing to look up (and no key to build) in
        // the usual case of no incident locked.
        if self.until.is_empty() {
            return false;
        }
        self.until
            .get(&(organization_id.clone(), incident_id.to_owned()))
            .is_some_and(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incident_is_skipped_for_a_while_then_tried_again() {
        let t0 = Instant::now();
        let org: OrganizationId = "org_1".into();
        let mut locked = LockedIncidents::default();
        assert!(!locked.is_locked(&org, "inc-1", t0));
        locked.note(&org, "inc-1", t0);
        assert!(locked.is_locked(&org, "inc-1", t0 + Duration::from_secs(1)));
        assert!(!locked.is_locked(&org, "inc-2", t0), "only that incident");
        assert!(
            !locked.is_locked(&"org_2".into(), "inc-1", t0),
            "of that organization"
        );
        assert!(
            !locked.is_locked(&org, "inc-1", t0 + LOCKED_FOR),
            "tried again after a while"
        );
        // Noting prunes what has run out.
        locked.note(&org, "inc-2", t0 + LOCKED_FOR);
        assert_eq!(locked.until.len(), 1);
    }
}
