//! The cluster's side of the URLs' circuits, carried out: the store's `circuits` rows are
//! read into the book, written when this node's circuit opens or closes, and asked for the
//! one probe per URL. What to write and what an answer means is the book's decision.

use std::{sync::Arc, time::Duration};

use super::{
    book::Refill,
    book::{ClusterWrite, ProbeAnswer},
    circuit::{Health, FIRST_COOLDOWN, MAX_COOLDOWN},
    job::Job,
    send::Outcome,
    shared::Inner,
};
use crate::{
    domain::{
        delivery::{url_key, Attempt},
        notification::{Notice, NoticeKind},
        webhook::Webhook,
    },
    store::ProbeClaim,
};

/// What a claim renewed before an attempt covers at most: the longest timeout (30 s) and
/// 30 s more.
pub(super) const LONGEST_ATTEMPT_COVER: Duration = Duration::from_secs(60);

/// Claims the URL's probe in the store, the answer in process time; `None` when the store
/// cannot say now.
pub(super) async fn claim_probe(inner: &Inner, url: &str) -> Option<ProbeAnswer> {
    let now = inner.clock.wall();
    // The claim covers the longest probe (its attempt's cover) whatever `delivery.lease`
    // says, and every node's claims are of one length: the store tells a stale claim by it.
    let length = inner.lease_length.max(LONGEST_ATTEMPT_COVER);
    match inner
        .store
        .claim_probe(&url_key(url), &inner.owner, now, now.plus(length))
        .await
    {
        Ok(ProbeClaim::Won) => Some(ProbeAnswer::Won),
        Ok(ProbeClaim::Closed) => Some(ProbeAnswer::Closed),
        Ok(ProbeClaim::Wait(at)) => Some(ProbeAnswer::Wait(inner.clock.from_wall(at))),
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim the URL's probe; trying again later");
            None
        }
    }
}

/// Reads the circuits open in the cluster and brings this node's in line; the refills of
/// the URLs closed elsewhere, to start.
pub(super) async fn sync_circuits(inner: &Inner) -> Vec<Refill> {
    let read_at = inner.clock.now();
    let open = match inner.store.open_circuits().await {
        // The cluster's probe times are wall times: the book's are process times.
        Ok(open) => open
            .into_iter()
            .map(|(key, probe_at)| (key, inner.clock.from_wall(probe_at)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the cluster's open circuits; trying again");
            return Vec::new();
        }
    };
    inner.book().sync_circuits(open, read_at, inner.clock.now())
}

/// Tells the book how an attempt (allowed `timeout`) went for its URL, and carries out what
/// it decides for the cluster: the row written, the next probe timed, people told.
pub(super) async fn attempted(
    inner: &Arc<Inner>,
    job: &Job,
    webhook: &Webhook,
    outcome: &Outcome,
    was_probe: bool,
    timeout: Duration,
) {
    let health = Health::of(outcome, timeout);
    let attempted = inner
        .book()
        .attempted(&job.url, health, was_probe, inner.clock.now());
    // Only the node that opens or closes the cluster's circuit tells people.
    let tell = match attempted.cluster {
        ClusterWrite::Open { first_probe } => {
            tracing::warn!(url = ?job.url, "the URL stopped answering; its deliveries wait and one probe at a time goes");
            let (first_probe, now) = (inner.clock.to_wall(first_probe), inner.clock.wall());
            let key = url_key(&job.url);
            let write = inner
                .store
                .open_circuit(&key, first_probe, FIRST_COOLDOWN, now);
            written(write.await).then(|| (NoticeKind::Outage, last_answer(&outcome.attempt)))
        }
        ClusterWrite::Close => {
            tracing::info!(url = ?job.url, "the URL answers again; its parked deliveries follow");
            let key = url_key(&job.url);
            written(inner.store.close_circuit(&key).await)
                .then(|| (NoticeKind::Recovered, String::new()))
        }
        ClusterWrite::ProbeFailed => {
            probe_failed(inner, &job.url).await;
            None
        }
        ClusterWrite::Nothing => None,
    };
    if let Some(at) = attempted.probe_due {
        inner.wakeup.at(at);
    }
    if let Some((kind, detail)) = tell {
        tell_people(inner, job, webhook, kind, detail).await;
    }
}

/// Whether a write to the cluster's circuits changed it (this node opened or closed the
/// circuit); a failed write changes nothing and is logged.
fn written(write: crate::store::StoreResult<bool>) -> bool {
    write.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot record the URL's circuit for the other nodes");
        false
    })
}

/// This node's probe failed: the cluster's cool-down doubles, and the next probe goes when
/// the store says.
async fn probe_failed(inner: &Inner, url: &str) {
    let wall = inner.clock.wall();
    if let Ok(Some(at)) = inner
        .store
        .probe_failed(&url_key(url), wall, MAX_COOLDOWN)
        .await
    {
        let (at, now) = (inner.clock.from_wall(at), inner.clock.now());
        inner.book().defer_probe(url, at, now);
        inner.wakeup.at(at);
    }
}

/// Everyone whose webhook sends to the URL hears that it stopped or started answering, not
/// only the webhook whose delivery happened to open or close the circuit.
async fn tell_people(
    inner: &Inner,
    job: &Job,
    webhook: &Webhook,
    kind: NoticeKind,
    detail: String,
) {
    let notices: Vec<Notice> = webhooks_sending_to(inner, job, webhook)
        .await
        .iter()
        .filter(|w| !w.spec.mail_ids.is_empty())
        .map(|w| Notice::new(&w.organization_id, &w.id, kind, &job.url, detail.clone()))
        .collect();
    let store = inner.store.clone();
    tokio::spawn(async move {
        for notice in notices {
            if let Err(e) = store.insert_notice(&notice).await {
                tracing::warn!(error = %e, "could not record the notice about the URL");
            }
        }
    });
}

/// The organization's webhooks with `job`'s URL among theirs (the job's own at least, also
/// when the catalog cannot be read).
async fn webhooks_sending_to(inner: &Inner, job: &Job, own: &Webhook) -> Vec<Webhook> {
    let mut found = vec![own.clone()];
    match inner.catalog.webhooks(&job.organization_id).await {
        Ok(snapshot) => found.extend(
            snapshot
                .webhooks
                .iter()
                .map(|c| &c.webhook)
                .filter(|w| w.id != own.id && w.spec.urls.iter().any(|u| u.url == job.url))
                .cloned(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the webhooks sharing the URL; telling its own only")
        }
    }
    found
}

/// "Last answer: HTTP 503." or "Last error: …." for a notice.
fn last_answer(attempt: &Attempt) -> String {
    match (attempt.response_status, &attempt.error) {
        (Some(status), _) => format!("Last answer: HTTP {status}."),
        (None, Some(error)) => format!("Last error: {error}."),
        (None, None) => String::new(),
    }
}
