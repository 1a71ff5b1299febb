//! Several nodes on one database: what one node changes, the others act on, and losing a
//! node loses nothing.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tocsin::{
    catalog::Catalog,
    domain::{
        audit::{webhook_object, Actor, AuditEntry},
        organization::Organization,
        webhook::{parse_spec, Webhook},
    },
};

use crate::{
    both_backends,
    delivery::{event, hook, incident, HOOKS},
    helpers::{
        binary::Server,
        eventually, futures_join_all, http_client, minimal_webhook, open_store, patched,
        receiver::{Received, Receiver, Reply},
        Backend, TestDb, DEADLINE,
    },
};

/// A delivery claimed by a node whose cached webhooks predate the webhook (another node
/// created it a moment ago) is sent with the webhook read again, not left to its lease.
async fn a_webhook_made_by_another_node_is_read_when_its_delivery_comes(backend: Backend) {
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let org = Organization::new("Org");
    store.create_organization(&org).await.unwrap();
    let catalog = Catalog::new(store.clone());
    assert!(catalog.webhooks(&org.id).await.unwrap().webhooks.is_empty());
    // "Another node": a write straight to the store, which this catalog does not hear of.
    let made = Webhook::new(&org.id, "tok", parse_spec(&minimal_webhook("new")).unwrap());
    let audit = AuditEntry::new(
        &org.id,
        &Actor::cli(),
        "webhook.created",
        webhook_object(&made.id, "new"),
        Vec::new(),
    );
    store.insert_webhook(&made, &audit).await.unwrap();
    let found = catalog.webhook(&org.id, &made.id).await.unwrap();
    assert_eq!(found.map(|w| w.id), Some(made.id.clone()));
    assert!(catalog
        .webhook(&org.id, "whk_deleted_long_ago")
        .await
        .unwrap()
        .is_none());
}

both_backends!(a_webhook_made_by_another_node_is_read_when_its_delivery_comes);

/// Another node's writes (created, changed, deleted) reach this node's catalog as the
/// webhooks written since its snapshot: the changed one is read again, the deleted one is
/// gone, the new one is there in the store's order, and the rest are the very same parsed
/// webhooks as before (shared, not read or parsed again).
async fn another_nodes_webhook_changes_are_read_alone(backend: Backend) {
    let Some((store, db)) = open_store(backend).await else {
        return;
    };
    let org = Organization::new("Org");
    store.create_organization(&org).await.unwrap();
    let audit = |id: &tocsin::domain::ids::WebhookId, action: &str| {
        AuditEntry::new(
            &org.id,
            &Actor::cli(),
            action,
            webhook_object(id, "w"),
            Vec::new(),
        )
    };
    let mut made = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let webhook = Webhook::new(&org.id, "tok", parse_spec(&minimal_webhook(name)).unwrap());
        store
            .insert_webhook(&webhook, &audit(&webhook.id, "webhook.created"))
            .await
            .unwrap();
        made.push(webhook);
    }
    let catalog = Catalog::new(store.clone());
    let before = catalog.webhooks(&org.id).await.unwrap();
    let names = |s: &tocsin::catalog::Snapshot| -> Vec<String> {
        s.webhooks
            .iter()
            .map(|w| w.webhook.spec.name.clone())
            .collect()
    };
    assert_eq!(names(&before), ["a", "b", "c", "d"]);

    // "Another node": straight to the store. One changed, one deleted, one created.
    let spec = parse_spec(&patched(
        minimal_webhook("b, renamed"),
        json!({"enabled": false}),
    ))
    .unwrap();
    store
        .update_webhook(
            &org.id,
            &made[1].id,
            &spec,
            tocsin::domain::Timestamp::now(),
            &audit(&made[1].id, "webhook.updated"),
        )
        .await
        .unwrap()
        .expect("updated");
    assert!(store
        .delete_webhook(&org.id, &made[2].id, &audit(&made[2].id, "webhook.deleted"))
        .await
        .unwrap());
    let created = Webhook::new(&org.id, "tok", parse_spec(&minimal_webhook("e")).unwrap());
    store
        .insert_webhook(&created, &audit(&created.id, "webhook.created"))
        .await
        .unwrap();
    // What a notification from that node does.
    catalog.invalidate(&org.id);

    let after = catalog.webhooks(&org.id).await.unwrap();
    assert_eq!(names(&after), ["a", "b, renamed", "d", "e"]);
    assert!(!after.get(made[1].id.as_str()).unwrap().webhook.spec.enabled);
    assert!(
        after.get(made[2].id.as_str()).is_none(),
        "the deleted one is gone"
    );
    for kept in [0, 3] {
        let id = made[kept].id.as_str();
        let (old, new) = (&before.webhooks, &after.webhooks);
        let old = old.iter().find(|w| w.webhook.id.as_str() == id).unwrap();
        let new = new.iter().find(|w| w.webhook.id.as_str() == id).unwrap();
        assert!(
            std::sync::Arc::ptr_eq(old, new),
            "{} is the same parsed webhook, not read again",
            made[kept].spec.name
        );
    }

    // A change alone (nothing deleted): read as such, and a second look finds nothing new.
    let spec = parse_spec(&minimal_webhook("a, renamed")).unwrap();
    store
        .update_webhook(
            &org.id,
            &made[0].id,
            &spec,
            tocsin::domain::Timestamp::now(),
            &audit(&made[0].id, "webhook.updated"),
        )
        .await
        .unwrap()
        .expect("updated");
    catalog.invalidate(&org.id);
    let last = catalog.webhooks(&org.id).await.unwrap();
    assert_eq!(names(&last), ["a, renamed", "b, renamed", "d", "e"]);
    catalog.invalidate(&org.id);
    let again = catalog.webhooks(&org.id).await.unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&last, &again),
        "nothing changed: the same snapshot"
    );

    // A write by code that knows nothing of the catalog (a node of an older version during
    // an upgrade): the row and the organization's version, as such code wrote them. The
    // store's triggers mark the row all the same.
    write_as_an_older_node(
        &db.url,
        "UPDATE webhooks SET disabled_reason = 'written by an older node' WHERE id = $1",
        made[1].id.as_str(),
        &org.id,
    )
    .await;
    catalog.invalidate(&org.id);
    let seen = catalog.webhooks(&org.id).await.unwrap();
    let reason = seen
        .get(made[1].id.as_str())
        .unwrap()
        .webhook
        .disabled_reason
        .clone();
    assert_eq!(reason.as_deref(), Some("written by an older node"));

    // A deletion older than the store remembers (its last 1,000 versions, pruned by the
    // next deletion): the count tells, and the ids are read.
    assert!(store
        .delete_webhook(&org.id, &made[3].id, &audit(&made[3].id, "webhook.deleted"))
        .await
        .unwrap());
    for round in 0..1000 {
        let spec = parse_spec(&minimal_webhook(&format!("e, round {round}"))).unwrap();
        let at = tocsin::domain::Timestamp::now();
        store
            .update_webhook(
                &org.id,
                &created.id,
                &spec,
                at,
                &audit(&created.id, "webhook.updated"),
            )
            .await
            .unwrap()
            .expect("updated");
    }
    assert!(store
        .delete_webhook(&org.id, &made[0].id, &audit(&made[0].id, "webhook.deleted"))
        .await
        .unwrap());
    catalog.invalidate(&org.id);
    let long_after = catalog.webhooks(&org.id).await.unwrap();
    assert_eq!(names(&long_after), ["b, renamed", "e, round 999"]);

    // A row written so that it cannot be opened (a damaged sealed secret) is left out, as a
    // full read leaves it out, not kept as it was.
    write_as_an_older_node(
        &db.url,
        "UPDATE webhooks SET secret = 'tsk1.damaged' WHERE id = $1",
        made[1].id.as_str(),
        &org.id,
    )
    .await;
    catalog.invalidate(&org.id);
    let damaged = catalog.webhooks(&org.id).await.unwrap();
    assert_eq!(names(&damaged), ["e, round 999"]);
}

both_backends!(another_nodes_webhook_changes_are_read_alone);

/// `sql` (one statement on webhook `id`) and the organization's version moved, in one
/// transaction on a connection of its own, as code that knows nothing of the catalog (a
/// node of an older version) writes a webhook.
async fn write_as_an_older_node(
    url: &str,
    sql: &str,
    id: &str,
    organization_id: &tocsin::domain::ids::OrganizationId,
) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let mut tx = Connection::begin(&mut conn).await.unwrap();
    sqlx::query(sql)
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE organizations SET webhooks_version = webhooks_version + 1 WHERE id = $1")
        .bind(organization_id.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    conn.close().await.unwrap();
}

/// Requests that find an organization's webhooks unread (or stale) wait for one read of
/// them instead of each reading and parsing them: all get the one snapshot.
async fn requests_at_once_share_one_read_of_the_webhooks(backend: Backend) {
    let Some((store, _db)) = open_store(backend).await else {
        return;
    };
    let org = Organization::new("Org");
    store.create_organization(&org).await.unwrap();
    for name in ["a", "b", "c"] {
        let webhook = Webhook::new(&org.id, "tok", parse_spec(&minimal_webhook(name)).unwrap());
        let audit = AuditEntry::new(
            &org.id,
            &Actor::cli(),
            "webhook.created",
            webhook_object(&webhook.id, name),
            Vec::new(),
        );
        store.insert_webhook(&webhook, &audit).await.unwrap();
    }
    let catalog = std::sync::Arc::new(Catalog::new(store.clone()));
    let reads = (0..8).map(|_| {
        let (catalog, org) = (catalog.clone(), org.id.clone());
        tokio::spawn(async move { catalog.webhooks(&org).await.unwrap() })
    });
    let snapshots: Vec<_> = futures_join_all(reads)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(snapshots[0].webhooks.len(), 3);
    for s in &snapshots {
        assert!(std::sync::Arc::ptr_eq(s, &snapshots[0]), "one read, shared");
    }
}

both_backends!(requests_at_once_share_one_read_of_the_webhooks);

/// Two transactions writing webhooks of one organization at once take their versions in
/// commit order: the second's row is marked with the version its own bump makes, so a
/// catalog that read the version between the two commits still reads the second's row.
/// (The trigger locks the organization's row when the webhook is written; without that,
/// the second would read the version before the first's bump and be marked one too low.)
async fn concurrent_webhook_writes_take_versions_in_commit_order(backend: Backend) {
    use sqlx::Connection;
    let Some((store, db)) = open_store(backend).await else {
        return;
    };
    let org = Organization::new("Org");
    store.create_organization(&org).await.unwrap();
    let audit = |id: &tocsin::domain::ids::WebhookId| {
        AuditEntry::new(
            &org.id,
            &Actor::cli(),
            "webhook.updated",
            webhook_object(id, "w"),
            Vec::new(),
        )
    };
    let mut made = Vec::new();
    for name in ["first", "second"] {
        let webhook = Webhook::new(&org.id, "tok", parse_spec(&minimal_webhook(name)).unwrap());
        store
            .insert_webhook(&webhook, &audit(&webhook.id))
            .await
            .unwrap();
        made.push(webhook);
    }
    sqlx::any::install_default_drivers();
    // The first writer: its webhook written, its bump not yet made, its transaction open.
    let mut first = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let mut tx = Connection::begin(&mut first).await.unwrap();
    sqlx::query("UPDATE webhooks SET disabled_reason = 'first' WHERE id = $1")
        .bind(made[0].id.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
    // The second writer, through the store, meanwhile.
    let second = {
        let (store, org, id) = (store.clone(), org.id.clone(), made[1].id.clone());
        let spec = parse_spec(&minimal_webhook("second, changed")).unwrap();
        let entry = audit(&id);
        tokio::spawn(async move {
            store
                .update_webhook(&org, &id, &spec, tocsin::domain::Timestamp::now(), &entry)
                .await
        })
    };
    let watcher = sqlx::AnyPool::connect(&db.url).await.unwrap();
    eventually(
        "the second writer waiting for the first",
        || {
            let watcher = watcher.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    // This test's database only: other tests run beside it.
                    "SELECT COUNT(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE NOT l.granted AND a.datname = current_database()",
                )
                .fetch_one(&watcher)
                .await
                .unwrap()
            }
        },
        |waiting| *waiting > 0,
    )
    .await;
    sqlx::query("UPDATE organizations SET webhooks_version = webhooks_version + 1 WHERE id = $1")
        .bind(org.id.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    second.await.unwrap().unwrap().expect("updated");
    let version: i64 =
        sqlx::query_scalar("SELECT webhooks_version FROM organizations WHERE id = $1")
            .bind(org.id.as_str())
            .fetch_one(&watcher)
            .await
            .unwrap();
    let marked = |id: &str| {
        sqlx::query_scalar::<_, i64>("SELECT changed_version FROM webhooks WHERE id = $1")
            .bind(id.to_owned())
    };
    let first_mark = marked(made[0].id.as_str())
        .fetch_one(&watcher)
        .await
        .unwrap();
    let second_mark = marked(made[1].id.as_str())
        .fetch_one(&watcher)
        .await
        .unwrap();
    assert_eq!(
        (first_mark, second_mark),
        (version - 1, version),
        "each row marked with the version its own transaction's bump made"
    );
}

crate::postgres_only!(concurrent_webhook_writes_take_versions_in_commit_order);

/// Incidents `i` with `i % FLAKY == 0` have the first attempt of each delivery refused.
const FLAKY: usize = 4;
const INCIDENTS: usize = 50;
const ROUNDS: [&str; 4] = ["triggered", "reassigned", "acknowledged", "resolved"];
/// How long after a process's death the receiver may still be reading what it wrote.
const ARRIVAL_LAG: Duration = Duration::from_secs(1);

/// Three `tocsin serve` processes on one PostgreSQL; events of 50 incidents go round-robin
/// to them, four rounds, each event posted after its incident's previous one was accepted.
/// The receiver refuses some first attempts and answers the second round's slowly; after
/// two rounds, a node is killed with SIGKILL while one of its requests waits for its answer.
/// Then: that delivery is sent again once its lease has run out, every accepted event's
/// delivery arrives with success, each incident's deliveries arrive in order (every attempt
/// of one before any of the next), and no delivery is answered 200 twice unless its first
/// success came before the kill (in flight on the killed node, its result unrecorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_work_and_lose_nothing_to_a_kill() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    // One key for the three, as an operator sets it; without it the first node would write
    // `tocsin.key` into the working directory (the source tree).
    let key = crate::helpers::test_key().to_base64();
    // Claims last 10 s instead of a minute: what waits for a dead node's lease is then the
    // attempt's own cover (its 3 s timeout and 30 s more), not the setting.
    let settings = [
        ("TOCSIN_DELIVERY__ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("TOCSIN_DELIVERY__RETRY_SCHEDULE", "1s"),
        ("TOCSIN_DELIVERY__LEASE", "10s"),
        ("TOCSIN_SECRET_KEY", key.as_str()),
    ];
    let first = Server::start_with(&db.url, &settings);
    let token = first.owner_token();
    let mut nodes = vec![
        first,
        Server::start_with(&db.url, &settings),
        Server::start_with(&db.url, &settings),
    ];
    let receiver = Receiver::start().await;
    receiver.respond("/h", |request, before| {
        let body = request.json();
        let incident = body["data"]["resource_data"]["id"].as_str().unwrap_or("");
        let index: usize = incident
            .trim_start_matches("inc-")
            .parse()
            .unwrap_or(usize::MAX);
        let id = request.header("webhook-id");
        let seen = before.iter().any(|r| r.header("webhook-id") == id);
        // The second round's first attempts are answered slowly, so that a node can be
        // killed while it waits for one (see `a_node_waiting_for_an_answer`).
        let slow = body["event"]["type"] == format!("incident.{}", ROUNDS[1]) && !seen;
        Reply {
            delay: Some(Duration::from_millis(if slow { 2000 } else { 30 })),
            ..Reply::status(if index % FLAKY == 0 && !seen {
                503
            } else {
                200
            })
        }
    });
    let client = http_client();
    let post = |base: String, path: &str, body: Value| {
        let (client, token, url) = (client.clone(), token.clone(), format!("{base}{path}"));
        async move { crate::helpers::binary::post_json(&client, url, &token, &body).await }
    };
    let created = post(
        nodes[0].url.clone(),
        HOOKS,
        patched(
            hook("cluster", json!([{"url": receiver.url("/h")}])),
            json!({"max_retry": 10, "timeout_seconds": 3}),
        ),
    )
    .await;
    assert_eq!(created.0, 201, "{}", created.1);

    let mut killed = None;
    for (round, kind) in ROUNDS.iter().enumerate() {
        if round == 2 {
            let (node, in_flight) = a_node_waiting_for_an_answer(&db.url, &nodes, &receiver).await;
            nodes.remove(node).kill();
            killed = Some((Instant::now(), in_flight));
        }
        let posts = (0..INCIDENTS).map(|i| {
            let node = &nodes[(i + round) % nodes.len()];
            post(
                node.url.clone(),
                "/v3/events",
                event(kind, "t", incident(&format!("inc-{i}"), kind)),
            )
        });
        for (status, body) in futures_join_all(posts).await {
            assert_eq!(status, 202, "{body}");
            assert_eq!(body["data"]["deliveries"], 1, "{body}");
        }
    }
    let (killed_at, in_flight) = killed.unwrap();

    // Every delivery answered 200 at least once. The killed node's leases run out (33 s for
    // one in the middle of an attempt) before its deliveries are taken over.
    let expected = INCIDENTS * ROUNDS.len();
    let deadline = Instant::now() + Duration::from_secs(33) + DEADLINE * 2;
    let got = loop {
        let got = receiver.received("/h");
        let succeeded: HashSet<&str> = answered_200(&got)
            .map(|(r, _)| r.header("webhook-id"))
            .collect();
        if succeeded.len() >= expected {
            break got;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of {expected} deliveries succeeded",
            succeeded.len()
        );
        receiver.wait_for_within("/h", got.len() + 1, left).await;
    };
    for node in nodes {
        node.stop();
    }
    // The request the killed node was waiting on went again, from another node, once its
    // lease had run out: not before (renewed before its attempt to cover the 3 s timeout and
    // 30 s more, at most a few seconds before the kill; 25 s leaves room for that), and not
    // never.
    let sent_again: Vec<Duration> = got
        .iter()
        .filter(|r| r.header("webhook-id") == in_flight && r.at > killed_at)
        .map(|r| r.at.duration_since(killed_at))
        .collect();
    assert!(
        !sent_again.is_empty() && sent_again[0] >= Duration::from_secs(25),
        "{in_flight}, in flight on the killed node, was sent again at {sent_again:?} after the \
         kill: it should have waited for its lease to run out"
    );

    // Order per incident: the round of each request, in arrival order, never goes back.
    let mut rounds_seen: HashMap<String, Vec<usize>> = HashMap::new();
    for r in &got {
        let body = r.json();
        let incident = body["data"]["resource_data"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let kind = body["event"]["type"].as_str().unwrap();
        let round = ROUNDS
            .iter()
            .position(|k| kind == format!("incident.{k}"))
            .unwrap();
        rounds_seen.entry(incident).or_default().push(round);
    }
    assert_eq!(rounds_seen.len(), INCIDENTS);
    for (incident, rounds) in &rounds_seen {
        assert!(
            rounds.windows(2).all(|w| w[0] <= w[1]),
            "{incident}: deliveries out of order: {rounds:?}"
        );
    }

    // Sent twice only what was in flight on the killed node. The receiver stamps a request
    // once it has read it, so one the killed node wrote just before it died can be stamped
    // just after; a second after the kill no request of it is left unread.
    let sent_by_the_killed_node_until = killed_at + ARRIVAL_LAG;
    let mut first_success: HashMap<&str, Instant> = HashMap::new();
    for (r, _) in answered_200(&got) {
        let id = r.header("webhook-id");
        if let Some(first) = first_success.get(id) {
            assert!(
                *first < sent_by_the_killed_node_until,
                "{id} was answered 200 at {:?} and again at {:?} after the kill: the first \
                 came from a node still alive",
                first.duration_since(killed_at),
                r.at.duration_since(killed_at)
            );
        } else {
            first_success.insert(id, r.at);
        }
    }
}

/// Waits until a node holds a second-round delivery whose first attempt the receiver got
/// less than a second ago, and so answers only in more than a second: killed now, that node
/// dies with the request unanswered and its lease left behind, which others must wait out.
/// Returns the node's index and the delivery's id. Killing a node picked in advance could
/// fall in a moment when it held nothing, or only a request about to be answered, and the
/// test would prove nothing (it did, in CI and here).
async fn a_node_waiting_for_an_answer(
    url: &str,
    nodes: &[Server],
    receiver: &Receiver,
) -> (usize, String) {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let sql = format!(
        "SELECT id, lease_owner FROM deliveries \
         WHERE state = 'pending' AND lease_owner IS NOT NULL AND event_type = 'incident.{}'",
        ROUNDS[1]
    );
    let names: Vec<String> = nodes.iter().map(Server::node).collect();
    let found = eventually(
        "a node waiting for the answer to a slow second-round request",
        || async {
            let held: Vec<(String, String)> = sqlx::query_as(&sql).fetch_all(&pool).await.unwrap();
            let got = receiver.received("/h");
            let waiting = |id: &str| {
                let mut attempts = got.iter().filter(|r| r.header("webhook-id") == id);
                let first = attempts.next();
                attempts.next().is_none()
                    && first.is_some_and(|r| r.at.elapsed() < Duration::from_secs(1))
            };
            held.into_iter()
                .find(|(id, _)| waiting(id))
                .and_then(|(id, owner)| Some((names.iter().position(|n| *n == owner)?, id)))
        },
        Option::is_some,
    )
    .await;
    pool.close().await;
    found.unwrap()
}

/// The requests the receiver answered 200, with their position: the receiver refuses the
/// first attempt of a delivery of a flaky incident, and answers everything else.
fn answered_200(got: &[Received]) -> impl Iterator<Item = (&Received, usize)> {
    let mut seen = HashSet::new();
    got.iter()
        .enumerate()
        .filter(move |(_, r)| {
            let id = r.header("webhook-id").to_owned();
            let index: usize = r.json()["data"]["resource_data"]["id"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches("inc-")
                .parse()
                .unwrap_or(usize::MAX);
            let first = seen.insert(id);
            !(index % FLAKY == 0 && first)
        })
        .map(|(i, r)| (r, i))
}

/// Rows of `notices` of one kind, read straight from the database.
async fn notices_of(url: &str, kind: &str) -> i64 {
    let pool = sqlx::postgres::PgPool::connect(url).await.unwrap();
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM notices WHERE kind = $1")
        .bind(kind)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// Two nodes with deliveries to one dead URL: the cluster keeps one circuit for it, so the
/// URL gets one stream of probes (spaced by the growing cool-down, never two close
/// together as two nodes' own circuits would send), one outage notice and, once it answers,
/// one recovery notice; then every parked delivery on both nodes goes.
/// (PostgreSQL only: one SQLite file serves one node.)
async fn a_dead_url_gets_one_probe_stream_from_the_cluster(backend: Backend) {
    let Some(a) = crate::helpers::spawn_app(backend).await else {
        return;
    };
    let b = a.another_node().await;
    let receiver = Receiver::start().await;
    let up = receiver.failing_until("/down", 503);
    // A password in the URL: pages name the URL, never the password.
    let url = receiver
        .url("/down")
        .replace("http://", "http://bridge:hunter2@");
    let created = a
        .create_webhook(&patched(
            hook("down", json!([{ "url": url }])),
            json!({"mail_ids": ["oncall@example.com"]}),
        ))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    // Both nodes take events, so both hold deliveries to the dead URL.
    for i in 0..20 {
        let on = if i % 2 == 0 { &a } else { &b };
        let reply = on
            .owner(
                reqwest::Method::POST,
                "/v3/events",
                Some(&event(
                    "triggered",
                    "t",
                    incident(&format!("inc-{i}"), "triggered"),
                )),
            )
            .await;
        assert_eq!(reply.status, 202);
        assert_eq!(reply.body["data"]["deliveries"], 1, "{}", reply.body);
    }
    // The circuit is open for the cluster; from a second and a half on, only probes go.
    crate::helpers::eventually(
        "the cluster's circuit opens",
        || async { a.store.open_circuits().await.unwrap().len() },
        |open| *open == 1,
    )
    .await;
    let opened = Instant::now();
    let settled = opened + Duration::from_millis(1500);
    let probes = crate::helpers::eventually(
        "three probes after the circuit opened",
        || async {
            receiver
                .received("/down")
                .into_iter()
                .filter(|r| r.at >= settled)
                .map(|r| r.at)
                .collect::<Vec<_>>()
        },
        |times| {
            times.len() >= 2
                && times.last().unwrap().duration_since(settled) >= Duration::from_secs(5)
        },
    )
    .await;
    for pair in probes.windows(2) {
        assert!(
            pair[1].duration_since(pair[0]) >= Duration::from_millis(900),
            "two probes {:?} apart: {probes:?}",
            pair[1].duration_since(pair[0])
        );
    }
    assert_eq!(
        notices_of(&a.db.url, "outage").await,
        1,
        "one outage notice"
    );

    // A node that never called the URL shows it down too, on the overview and the list.
    let c = a.another_node().await;
    crate::helpers::visitor::person(&c, "ops@example.com", "viewer").await;
    let mut visitor = crate::helpers::visitor::Visitor::new(&c);
    visitor.login_ok("ops@example.com").await;
    let overview = visitor.get("/").await;
    let down = overview
        .text
        .split("URLs not answering")
        .nth(1)
        .expect("the overview lists URLs not answering");
    assert!(
        down.contains("circuit open") && down.contains("/down") && down.contains("****"),
        "{down}"
    );
    assert!(
        !overview.text.contains("hunter2"),
        "the password stays hidden"
    );
    let list = visitor.get("/webhooks").await;
    assert!(list.text.contains("circuit open"), "{}", list.text);
    // Its metrics count the cluster's circuit as well.
    let metrics = crate::helpers::http_client()
        .get(format!("{}/metrics", c.address))
        .bearer_auth(&c.owner_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "tocsin_circuits_open 1"),
        "{metrics}"
    );

    up.on();
    let rows = a.settled_logs(&id, 20).await;
    assert!(rows.iter().all(|r| r["state"] == "succeeded"), "{rows:?}");
    crate::helpers::eventually(
        "the circuit is closed for the cluster",
        || async { a.store.open_circuits().await.unwrap().len() },
        |open| *open == 0,
    )
    .await;
    assert_eq!(
        notices_of(&a.db.url, "recovered").await,
        1,
        "one recovery notice"
    );
    assert_eq!(notices_of(&a.db.url, "outage").await, 1);
}

crate::postgres_only!(a_dead_url_gets_one_probe_stream_from_the_cluster);
