//! The delivery queue's own rules, straight against each backend, one named case each over
//! one fixture: leases hide work from claims until released or expired, renewals need the
//! holding claim, results need the lease, parked work waits for its URL, a repeated
//! producer id stores nothing, a probe takes untried work first.

use std::sync::Arc;

use tocsin::{
    domain::{
        audit::{webhook_object, Actor, AuditEntry},
        delivery::{Attempt, AttemptResult, Delivery, DeliveryState, NewDelivery},
        event::Event,
        ids::DeliveryId,
        organization::Organization,
        webhook::{parse_spec, Webhook},
        Timestamp,
    },
    store::{Accepted, Admission, Lease, LogQuery, Store},
};

use crate::{
    both_backends,
    helpers::{delivery_of, incident_event, minimal_webhook, open_store, Backend, TestDb},
};

/// An organization with one webhook on a fresh store, and two nodes: `node-a`, to which
/// intake leases (`mine`), and `node-b`, whose poller claims (`other`).
struct Queue {
    store: Arc<dyn Store>,
    _db: TestDb,
    org: Organization,
    hook: Webhook,
    /// A minute ahead: no lease or park runs out during a case.
    far: Timestamp,
    mine: Lease,
    other: Lease,
}

impl Queue {
    async fn open(backend: Backend) -> Option<Queue> {
        let (store, db) = open_store(backend).await?;
        let org = Organization::new("Org");
        store.create_organization(&org).await.unwrap();
        let hook = Webhook::new(&org.id, "tok", parse_spec(&minimal_webhook("q")).unwrap());
        let entry = AuditEntry::new(
            &org.id,
            &Actor::cli(),
            "webhook.created",
            webhook_object(&hook.id, "q"),
            Vec::new(),
        );
        store.insert_webhook(&hook, &entry).await.unwrap();
        let far = Timestamp::now().plus(std::time::Duration::from_secs(60));
        let lease = |owner: &str| Lease {
            owner: owner.into(),
            until: far,
        };
        Some(Queue {
            store,
            _db: db,
            org,
            hook,
            far,
            mine: lease("node-a"),
            other: lease("node-b"),
        })
    }

    fn event(&self, incident: &str) -> Event {
        incident_event(&self.org.id, incident, None)
    }

    fn delivery(&self, event: &Event) -> NewDelivery {
        delivery_of(event, &self.hook.id, "https://receiver.example/hook")
    }

    /// Intake's admission: leased to `lease` (none: stored unleased), parking `park`.
    fn admit(&self, lease: Option<&Lease>, park: &[&str]) -> Admission {
        Admission {
            lease: lease.cloned(),
            park_urls: park.iter().map(|u| u.to_string()).collect(),
            park_until: self.far,
        }
    }

    /// Each event with one delivery, accepted under `admission`: the events and deliveries
    /// in order, and the store's answers.
    async fn accept(
        &self,
        incidents: &[&str],
        admission: &Admission,
    ) -> (Vec<NewDelivery>, Vec<Accepted>) {
        let items: Vec<(Event, Vec<NewDelivery>)> = incidents
            .iter()
            .map(|i| {
                let e = self.event(i);
                let d = self.delivery(&e);
                (e, vec![d])
            })
            .collect();
        let answers = self.store.accept_events(&items, admission).await.unwrap();
        (
            items.into_iter().map(|(_, mut d)| d.remove(0)).collect(),
            answers,
        )
    }

    /// What `node-b`'s poller claims now.
    async fn claim_due(&self) -> Vec<DeliveryId> {
        ids(self
            .store
            .claim_due(&self.other, Timestamp::now(), 10)
            .await
            .unwrap())
    }

    async fn claim_parked(&self, url: &str, limit: u32, probe: bool) -> Vec<DeliveryId> {
        ids(self
            .store
            .claim_parked(&self.other, url, limit, probe)
            .await
            .unwrap())
    }

    async fn stored(&self, id: &DeliveryId) -> (Delivery, Vec<Attempt>) {
        self.store
            .delivery(&self.org.id, &self.hook.id, id)
            .await
            .unwrap()
            .unwrap()
    }
}

fn ids(deliveries: Vec<Delivery>) -> Vec<DeliveryId> {
    deliveries.into_iter().map(|d| d.id).collect()
}

fn answered(id: &DeliveryId, status: u16, state: DeliveryState) -> AttemptResult {
    AttemptResult {
        delivery_id: id.clone(),
        attempt: Attempt {
            number: 1,
            started_at: Timestamp::now(),
            response_status: Some(status),
            ..Attempt::default()
        },
        state,
        next_attempt_at: None,
        notify: false,
    }
}

async fn store_queue_intake_leases_all_but_a_lanes_later_deliveries(backend: Backend) {
    let Some(q) = Queue::open(backend).await else {
        return;
    };
    let (d, answers) = q
        .accept(&["inc-1", "inc-1", "inc-2"], &q.admit(Some(&q.mine), &[]))
        .await;
    assert_eq!(answers[0].leased, vec![d[0].id.clone()]);
    assert!(
        answers[1].leased.is_empty(),
        "behind an earlier delivery of its lane"
    );
    assert_eq!(answers[2].leased, vec![d[2].id.clone()]);
    let latest = q.store.latest_incident_event(&q.org.id, "inc-1").await;
    assert_eq!(latest.unwrap().unwrap().id, d[1].event_id);
    assert!(
        q.claim_due().await.is_empty(),
        "leased, or waiting for its lane"
    );
}

async fn store_queue_only_the_holding_claim_renews(backend: Backend) {
    let Some(q) = Queue::open(backend).await else {
        return;
    };
    let (d, _) = q.accept(&["inc-1"], &q.admit(Some(&q.mine), &[])).await;
    let later = q.far.plus(std::time::Duration::from_secs(1));
    let renew = |lease: Lease, until: Timestamp| {
        let store = q.store.clone();
        let id = d[0].id.clone();
        async move { store.renew_lease(&id, &lease, until).await.unwrap() }
    };
    assert!(
        !renew(q.other.clone(), later).await,
        "only the holder renews"
    );
    assert!(renew(q.mine.clone(), later).await);
    // `mine` names the lease as first claimed; it now runs to `later`. A job holding the old
    // expiry stands for a lease that ran out and was claimed again (same owner, new expiry):
    // it must not renew, or two attempts of one delivery would send.
    assert!(
        !renew(
            q.mine.clone(),
            later.plus(std::time::Duration::from_secs(1))
        )
        .await,
        "a lease is renewed only by the claim that holds it"
    );
    let renewed = Lease {
        owner: q.mine.owner.clone(),
        until: later,
    };
    assert!(renew(renewed, later).await);
}

async fn store_queue_results_need_the_lease_and_move_the_lane_on(backend: Backend) {
    let Some(q) = Queue::open(backend).await else {
        return;
    };
    let (d, _) = q
        .accept(&["inc-1", "inc-1"], &q.admit(Some(&q.mine), &[]))
        .await;
    let delivered = || [answered(&d[0].id, 200, DeliveryState::Succeeded)];
    q.store
        .record_attempts("node-b", &delivered())
        .await
        .unwrap();
    let (still, attempts) = q.stored(&d[0].id).await;
    assert_eq!(
        still.state,
        DeliveryState::Pending,
        "a result without the lease changes nothing"
    );
    assert_eq!(attempts.len(), 1, "but the attempt is recorded");
    assert!(q.claim_due().await.is_empty(), "the lane waits");
    q.store
        .record_attempts("node-a", &delivered())
        .await
        .unwrap();
    assert_eq!(q.stored(&d[0].id).await.0.state, DeliveryState::Succeeded);
    assert_eq!(
        q.claim_due().await,
        vec![d[1].id.clone()],
        "the lane moved on: the incident's second delivery is claimable"
    );
    // A lease given back (a node stopping) makes its delivery claimable at once.
    assert_eq!(q.store.release_leases("node-b").await.unwrap(), 1);
    assert_eq!(q.claim_due().await, vec![d[1].id.clone()]);
    // Cancelling takes what is pending and leaves what is finished as it is.
    let cancelled = q
        .store
        .cancel_pending(&q.org.id, &q.hook.id, Timestamp::now());
    assert_eq!(cancelled.await.unwrap(), 1);
    assert_eq!(q.stored(&d[1].id).await.0.state, DeliveryState::Cancelled);
    assert_eq!(q.stored(&d[0].id).await.0.state, DeliveryState::Succeeded);
}

async fn store_queue_parked_work_waits_and_comes_back_by_url_oldest_first(backend: Backend) {
    let Some(q) = Queue::open(backend).await else {
        return;
    };
    let (d, _) = q.accept(&["inc-1", "inc-2"], &q.admit(None, &[])).await;
    let url = d[0].url.clone();
    assert_eq!(q.claim_due().await, vec![d[0].id.clone(), d[1].id.clone()]);
    // Given back without an attempt, out of claim_due's sight until its time.
    let both = [d[1].id.clone(), d[0].id.clone()];
    q.store.park("node-b", &both, q.far).await.unwrap();
    assert!(q.claim_due().await.is_empty(), "parked until their time");
    assert_eq!(q.store.parked_urls().await.unwrap(), vec![url.clone()]);
    assert_eq!(
        q.claim_parked(&url, 1, false).await,
        vec![d[0].id.clone()],
        "oldest first"
    );
    assert_eq!(
        q.stored(&d[0].id).await.0.attempts,
        0,
        "parking is not an attempt"
    );
    assert!(
        q.claim_parked("https://elsewhere.example/", 10, false)
            .await
            .is_empty(),
        "by URL"
    );
    // A parked delivery whose time came is an ordinary due delivery.
    let first = std::slice::from_ref(&d[0].id);
    q.store
        .park("node-b", first, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(q.claim_due().await, vec![d[0].id.clone()]);
    assert_eq!(q.claim_parked(&url, 10, false).await, vec![d[1].id.clone()]);
    assert!(q.store.parked_urls().await.unwrap().is_empty());
    assert_eq!(q.store.release_leases("node-b").await.unwrap(), 2);
    let cancelled = q
        .store
        .cancel_pending(&q.org.id, &q.hook.id, Timestamp::now());
    assert_eq!(cancelled.await.unwrap(), 2);
    let all = LogQuery {
        limit: 10,
        ..LogQuery::default()
    };
    let logs = q
        .store
        .list_deliveries(&q.org.id, &q.hook.id, &all)
        .await
        .unwrap();
    let shown: Vec<(DeliveryId, DeliveryState)> =
        logs.into_iter().map(|(_, d)| (d.id, d.state)).collect();
    assert_eq!(
        shown,
        [
            (d[1].id.clone(), DeliveryState::Cancelled),
            (d[0].id.clone(), DeliveryState::Cancelled)
        ],
        "newest first"
    );
}

async fn store_queue_a_repeated_producer_id_stores_nothing(backend: Backend) {
    let Some(q) = Queue::open(backend).await else {
        return;
    };
    let keyed = |incident: &str| incident_event(&q.org.id, incident, Some("producer-1"));
    let (original, repeat) = (keyed("inc-3"), keyed("inc-4"));
    let none = q.admit(None, &[]);
    let items = [(original.clone(), vec![q.delivery(&original)])];
    let first = q.store.accept_events(&items, &none).await.unwrap();
    let items = [(
        repeat.clone(),
        vec![q.delivery(&repeat), q.delivery(&repeat)],
    )];
    let second = q.store.accept_events(&items, &none).await.unwrap();
    assert!(!first[0].duplicate && second[0].duplicate);
    assert_eq!(
        (second[0].event_id.as_str(), second[0].deliveries),
        (original.id.as_str(), 1),
        "answered as the first time"
    );
    let stored = q.store.latest_incident_event(&q.org.id, "inc-4").await;
    assert!(stored.unwrap().is_none(), "nothing of the repeat stored");
}

async fn store_queue_intake_parks_where_told_and_a_probe_takes_untried_work_first(
    backend: Backend,
) {
    let Some(q) = Queue::open(backend).await else {
        return;
    };
    let (tried, answers) = q.accept(&["inc-5"], &q.admit(Some(&q.mine), &[])).await;
    let tried = &tried[0];
    assert_eq!(answers[0].leased, vec![tried.id.clone()]);
    let failed_once = AttemptResult {
        next_attempt_at: Some(Timestamp::now()),
        ..answered(&tried.id, 503, DeliveryState::Pending)
    };
    q.store
        .record_attempts("node-a", &[failed_once])
        .await
        .unwrap();
    let park_here = q.admit(Some(&q.mine), &[&tried.url]);
    let (fresh, answers) = q.accept(&["inc-6"], &park_here).await;
    let fresh = &fresh[0];
    assert!(answers[0].leased.is_empty(), "parked, not leased");
    let due = q.claim_due().await;
    assert!(
        due.contains(&tried.id) && !due.contains(&fresh.id),
        "the parked one is out of sight: {due:?}"
    );
    let tried_again = std::slice::from_ref(&tried.id);
    q.store.park("node-b", tried_again, q.far).await.unwrap();
    assert_eq!(
        q.claim_parked(&fresh.url, 1, true).await,
        vec![fresh.id.clone()],
        "never attempted first"
    );
    assert_eq!(
        q.claim_parked(&fresh.url, 1, false).await,
        vec![tried.id.clone()]
    );
}

both_backends!(
    store_queue_intake_leases_all_but_a_lanes_later_deliveries,
    store_queue_only_the_holding_claim_renews,
    store_queue_results_need_the_lease_and_move_the_lane_on,
    store_queue_parked_work_waits_and_comes_back_by_url_oldest_first,
    store_queue_a_repeated_producer_id_stores_nothing,
    store_queue_intake_parks_where_told_and_a_probe_takes_untried_work_first,
);
