//! A leased delivery as the engine carries it, from intake or a claim to its attempt.

use std::sync::Arc;

use crate::{
    domain::{
        delivery::{Attempt, Delivery, NewDelivery},
        ids::{DeliveryId, OrganizationId, WebhookId},
        webhook::Method,
        Timestamp,
    },
    store::Lease,
};

/// One delivery sent by [`super::Engine::send_now`], with its one attempt.
#[derive(Debug, Clone)]
pub struct SentNow {
    pub delivery_id: DeliveryId,
    pub url: String,
    pub method: Method,
    pub attempt: Attempt,
    pub succeeded: bool,
}

/// A leased delivery, ready to attempt.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery_id: DeliveryId,
    pub organization_id: OrganizationId,
    pub webhook_id: WebhookId,
    pub url: String,
    pub method: Method,
    pub payload: Arc<str>,
    /// Attempts already made.
    pub attempts: u32,
    pub lease_until: Timestamp,
    /// Until when this node counts on the lease, in process time (see [`crate::domain::clock::Clock`]): set as
    /// the engine takes the job, so a wall clock stepped back cannot stretch the lease here
    /// while the other nodes see it run out.
    pub(super) held_until: Option<Timestamp>,
    /// Taken from the store as its URL's circuit probe.
    pub probe: bool,
}

impl Job {
    pub fn from_new(d: &NewDelivery, lease: &Lease) -> Self {
        Self {
            delivery_id: d.id.clone(),
            organization_id: d.organization_id.clone(),
            webhook_id: d.webhook_id.clone(),
            url: d.url.clone(),
            method: d.method,
            payload: d.payload.clone(),
            attempts: 0,
            lease_until: lease.until,
            held_until: None,
            probe: false,
        }
    }

    pub(super) fn from_claimed(d: Delivery, lease: &Lease, probe: bool) -> Self {
        Self {
            delivery_id: d.id,
            organization_id: d.organization_id,
            webhook_id: d.webhook_id,
            url: d.url,
            method: d.method,
            payload: Arc::from(d.payload),
            attempts: d.attempts,
            lease_until: lease.until,
            held_until: None,
            probe,
        }
    }
}
