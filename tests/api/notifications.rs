//! Failure e-mails over a real SMTP server.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::delivery::{event, incident, HOOKS};
use crate::helpers::binary::Server;
use crate::helpers::receiver::{Receiver, Reply};
use crate::helpers::smtp_server::SmtpServer;
use crate::helpers::{eventually, spawn_app_with, Backend, TestApp, TestDb};

fn smtp_settings(config: &mut tocsin::config::Config, port: u16, window: Duration) {
    config.smtp.host = "127.0.0.1".into();
    config.smtp.port = port;
    config.smtp.tls = tocsin::config::SmtpTls::None;
    config.smtp.from = "tocsin@test.local".into();
    config.public_url = "https://tocsin.example".into();
    config.notify.window = window;
}

/// A webhook whose URL always answers 422 and gives up after one attempt. (A 4xx: the URL
/// answers, so its circuit stays closed and every delivery fails at once, as these tests
/// of e-mail batching need; 5xx runs are the circuit breaker's, tested in `guarantees`.)
async fn failing_webhook(app: &TestApp, receiver: &Receiver, mail_ids: Value) -> String {
    receiver.respond("/down", |_, _| Reply::status(422));
    let body = json!({
        "name": "Pager bridge",
        "triggers": [{"event_class": "incident", "event_type": "triggered"}],
        "urls": [{"url": receiver.url("/down"), "method": "PUT"}],
        "is_all_teams_configured": true,
        "max_retry": 0,
        "mail_ids": mail_ids,
    });
    app.create_webhook(&body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn notifications(app: &TestApp, webhook_id: &str) -> Vec<Value> {
    let reply = app
        .owner(
            Method::GET,
            &format!("{HOOKS}/{webhook_id}/notifications"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["data"]["result"].as_array().unwrap().clone()
}

async fn one_failure_sends_one_email_to_every_address(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let Some(app) = spawn_app_with(backend, |c| {
        smtp_settings(c, smtp.port, Duration::from_secs(60))
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let id = failing_webhook(
        &app,
        &receiver,
        json!(["ops@example.com", "lead@example.com"]),
    )
    .await;
    app.ingest(&event("triggered", "t", incident("inc-42", "triggered")))
        .await;

    let mails = smtp.wait_for(1).await;
    let mail = &mails[0];
    let mut to = mail.to.clone();
    to.sort();
    assert_eq!(to, ["lead@example.com", "ops@example.com"]);
    assert!(
        mail.subject.contains("Pager bridge") && mail.subject.contains("1 failed delivery"),
        "{}",
        mail.subject
    );
    let delivery = app.logs(&id, "").await["result"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for needle in [
        "Pager bridge".to_owned(),
        receiver.url("/down"),
        "PUT".to_owned(),
        "incident.triggered".to_owned(),
        "inc-42".to_owned(),
        "inc-42 is on fire".to_owned(),
        "HTTP 422".to_owned(),
        "receiver says hi".to_owned(),
        format!("https://tocsin.example/v3/extensions/event-webhooks/{id}/logs/{delivery}"),
        "mail_ids".to_owned(),
    ] {
        assert!(
            mail.text.contains(&needle),
            "text has {needle}: {}",
            mail.text
        );
    }
    assert!(mail.html.contains("inc-42"), "and an HTML part");
    let list = eventually(
        "sent",
        || notifications(&app, &id),
        |l: &Vec<Value>| l.len() == 1 && l[0]["state"] == "sent",
    )
    .await;
    assert_eq!(list[0]["delivery_id"], delivery);
}

async fn failures_within_a_window_become_one_digest(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let Some(app) = spawn_app_with(backend, |c| {
        smtp_settings(c, smtp.port, Duration::from_secs(6))
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let id = failing_webhook(&app, &receiver, json!(["ops@example.com"])).await;
    app.ingest(&event("triggered", "t", incident("inc-0", "triggered")))
        .await;
    let first = smtp.wait_for(1).await;
    assert!(
        first[0].subject.contains("1 failed delivery"),
        "the first failure goes out promptly"
    );
    for i in 1..10 {
        app.ingest(&event(
            "triggered",
            "t",
            incident(&format!("inc-{i}"), "triggered"),
        ))
        .await;
    }
    let mails = smtp.wait_for(2).await;
    assert!(
        mails[1].subject.contains("9 failed deliveries"),
        "{}",
        mails[1].subject
    );
    for i in 1..10 {
        assert!(
            mails[1].text.contains(&format!("inc-{i} ")),
            "the digest lists inc-{i}"
        );
    }
    let list = eventually(
        "all sent",
        || notifications(&app, &id),
        |l: &Vec<Value>| l.len() == 10 && l.iter().all(|n| n["state"] == "sent"),
    )
    .await;
    assert_eq!(list.len(), 10);
    assert_eq!(smtp.mails().len(), 2, "two e-mails, not ten");
}

async fn emails_wait_for_smtp_to_come_back(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Some(app) =
        spawn_app_with(backend, |c| smtp_settings(c, port, Duration::from_secs(60))).await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let id = failing_webhook(&app, &receiver, json!(["ops@example.com"])).await;
    app.ingest(&event("triggered", "t", incident("inc-1", "triggered")))
        .await;
    let pending = eventually(
        "the send failed and is pending",
        || notifications(&app, &id),
        |l: &Vec<Value>| l.len() == 1 && l[0]["attempts"].as_u64() >= Some(1),
    )
    .await;
    assert_eq!(pending[0]["state"], "pending");
    assert!(
        pending[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{}",
        pending[0]
    );
    assert!(pending[0]["next_attempt_at"].is_string());

    let smtp = SmtpServer::start_on(port).await;
    let mails = smtp.wait_for(1).await;
    assert!(mails[0].text.contains("inc-1"));
    eventually(
        "sent",
        || notifications(&app, &id),
        |l: &Vec<Value>| l[0]["state"] == "sent",
    )
    .await;
}

/// A mail server that kept the message but whose `250 OK` was lost gets it again, as the
/// same message: the same `Message-ID`, so mail systems can drop the copy.
async fn an_e_mail_sent_again_keeps_its_message_id(backend: Backend) {
    let smtp = SmtpServer::start_losing_replies(1).await;
    let Some(app) = spawn_app_with(backend, |c| {
        smtp_settings(c, smtp.port, Duration::from_secs(1))
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let id = failing_webhook(&app, &receiver, json!(["ops@example.com"])).await;
    app.ingest(&event("triggered", "t", incident("inc-7", "triggered")))
        .await;
    let mails = smtp.wait_for(2).await;
    assert!(
        mails[0].message_id.ends_with("@test.local") && mails[0].message_id.len() > 20,
        "a Message-ID in tocsin's mail domain: {:?}",
        mails[0].message_id
    );
    assert_eq!(mails[0].message_id, mails[1].message_id);
    assert_eq!(mails[0].text, mails[1].text);
    eventually(
        "sent",
        || notifications(&app, &id),
        |l: &Vec<Value>| l.len() == 1 && l[0]["state"] == "sent",
    )
    .await;

    // Another failure is another message.
    app.ingest(&event("triggered", "t", incident("inc-8", "triggered")))
        .await;
    let mails = eventually(
        "the second failure's e-mail",
        || async { smtp.mails() },
        |m| m.len() >= 3,
    )
    .await;
    assert_ne!(mails[2].message_id, mails[0].message_id);
}

async fn without_smtp_notifications_are_skipped(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |_| {}).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let id = failing_webhook(&app, &receiver, json!(["ops@example.com"])).await;
    app.ingest(&event("triggered", "t", incident("inc-1", "triggered")))
        .await;
    let list = eventually(
        "skipped",
        || notifications(&app, &id),
        |l: &Vec<Value>| l.len() == 1 && l[0]["state"] == "skipped",
    )
    .await;
    assert!(
        list[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("SMTP is not configured"),
        "{}",
        list[0]
    );

    // A webhook without mail_ids records nothing.
    let quiet = failing_webhook(&app, &receiver, json!([])).await;
    app.ingest(&event("triggered", "t", incident("inc-2", "triggered")))
        .await;
    app.settled_logs(&quiet, 1).await;
    assert!(notifications(&app, &quiet).await.is_empty());
}

/// Waits for an e-mail whose subject contains `needle`.
async fn mail_about(smtp: &SmtpServer, needle: &str) -> crate::helpers::smtp_server::Mail {
    eventually(
        needle,
        || async { smtp.mails() },
        |mails| mails.iter().any(|m| m.subject.contains(needle)),
    )
    .await
    .into_iter()
    .find(|m| m.subject.contains(needle))
    .unwrap()
}

/// When a URL's circuit opens the failure addresses hear at once which URL, since when and
/// the last answer; when it answers again, that too.
async fn a_url_going_down_and_back_is_e_mailed(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let Some(app) = spawn_app_with(backend, |c| {
        smtp_settings(c, smtp.port, Duration::from_millis(100))
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let up = receiver.failing_until("/down", 503);
    app.create_webhook(&json!({
        "name": "Bridge", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
        "urls": [{"url": receiver.url("/down")}], "is_all_teams_configured": true,
        "max_retry": 0, "mail_ids": ["oncall@example.com"]
    }))
    .await;
    // Another webhook to the same URL, which sent nothing itself: its people hear too.
    app.create_webhook(&json!({
        "name": "Pager", "triggers": [{"event_class": "incident", "event_type": "resolved"}],
        "urls": [{"url": receiver.url("/down")}], "is_all_teams_configured": true,
        "mail_ids": ["pager@example.com"]
    }))
    .await;
    for i in 0..5 {
        app.ingest(&event(
            "triggered",
            "t",
            incident(&format!("inc-{i}"), "triggered"),
        ))
        .await;
    }
    let down = mail_about(&smtp, "a URL is not answering").await;
    for needle in [
        receiver.url("/down"),
        "stopped answering at".into(),
        "Last answer: HTTP 503".into(),
    ] {
        assert!(down.text.contains(&needle), "{needle} in {}", down.text);
    }
    // Parked behind the open circuit until a probe finds the URL back.
    app.ingest(&event("triggered", "t", incident("inc-late", "triggered")))
        .await;
    up.on();
    let back = mail_about(&smtp, "answers again").await;
    assert!(back.text.contains(&receiver.url("/down")), "{}", back.text);
    for subject in ["a URL is not answering", "answers again"] {
        eventually(
            "the other webhook's people hear of it",
            || async { smtp.mails() },
            |mails| {
                mails.iter().any(|m| {
                    m.subject.contains(subject)
                        && m.subject.contains("Pager")
                        && m.to.iter().any(|t| t.contains("pager@example.com"))
                })
            },
        )
        .await;
    }
}

/// A URL answering 410 Gone disables the webhook with the reason, cancels what waits, and
/// says so by e-mail; enabling it again clears the reason.
async fn a_410_gone_disables_the_webhook(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let Some(app) = spawn_app_with(backend, |c| {
        smtp_settings(c, smtp.port, Duration::from_millis(100))
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    // Answered a second late, so the later events are all in before the webhook goes.
    receiver.respond("/gone", |_, _| Reply {
        delay: Some(Duration::from_secs(1)),
        ..Reply::status(410)
    });
    let created = app
        .create_webhook(&json!({
            "name": "Old bridge", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": receiver.url("/gone")}], "is_all_teams_configured": true,
            "mail_ids": ["oncall@example.com"]
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    // Three events of one incident: the later two wait behind the first in its lane.
    for _ in 0..3 {
        app.ingest(&event("triggered", "t", incident("inc-gone", "triggered")))
            .await;
    }
    let mail = mail_about(&smtp, "was disabled").await;
    assert!(mail.text.contains("410 Gone"), "{}", mail.text);
    let hook = app.owner(Method::GET, &format!("{HOOKS}/{id}"), None).await;
    assert_eq!(hook.body["data"]["enabled"], false);
    assert!(hook.body["data"]["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("410 Gone"));
    let rows = app.settled_logs(&id, 3).await;
    let states: Vec<&str> = rows.iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(
        states.iter().filter(|s| **s == "cancelled").count(),
        2,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "failed").count(),
        1,
        "{states:?}"
    );
    assert_eq!(receiver.received("/gone").len(), 1, "nothing more was sent");

    let mut body = hook.body["data"].clone();
    body["enabled"] = json!(true);
    let put = app
        .owner(Method::PUT, &format!("{HOOKS}/{id}"), Some(&body))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert!(put.body["data"]["disabled_reason"].is_null());
}

/// A webhook whose every URL has failed without a success for `delivery.disable_after` is
/// disabled and its addresses told; one URL still delivering keeps a webhook on.
async fn webhooks_failing_everywhere_are_disabled_after_a_while(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let Some(app) = spawn_app_with(backend, |c| {
        smtp_settings(c, smtp.port, Duration::from_millis(100));
        c.delivery.disable_after = Duration::from_secs(2);
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    for path in ["/a", "/b", "/c"] {
        receiver.respond(path, |_, _| Reply::status(503));
    }
    let webhook = |name: &str, urls: [&str; 2]| {
        json!({
            "name": name, "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": urls.iter().map(|u| json!({"url": receiver.url(u)})).collect::<Vec<_>>(),
            "is_all_teams_configured": true, "max_retry": 1, "mail_ids": ["oncall@example.com"]
        })
    };
    let dead = app.create_webhook(&webhook("Dead", ["/a", "/b"])).await;
    let half = app.create_webhook(&webhook("Half", ["/c", "/d"])).await;
    app.ingest(&event("triggered", "t", incident("inc-1", "triggered")))
        .await;
    let mail = mail_about(&smtp, "\"Dead\" was disabled").await;
    assert!(mail.text.contains("every URL has failed"), "{}", mail.text);
    let get = |id: &Value| {
        let path = format!("{HOOKS}/{}", id.as_str().unwrap());
        let app = &app;
        async move { app.owner(Method::GET, &path, None).await.body["data"].clone() }
    };
    let dead = get(&dead["id"]).await;
    assert_eq!(dead["enabled"], false);
    assert!(dead["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("disable_after"));
    assert_eq!(
        get(&half["id"]).await["enabled"],
        true,
        "one URL still delivers"
    );
}

both_backends!(
    webhooks_failing_everywhere_are_disabled_after_a_while,
    a_url_going_down_and_back_is_e_mailed,
    a_410_gone_disables_the_webhook,
    one_failure_sends_one_email_to_every_address,
    failures_within_a_window_become_one_digest,
    emails_wait_for_smtp_to_come_back,
    an_e_mail_sent_again_keeps_its_message_id,
    without_smtp_notifications_are_skipped,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_without_smtp_warns_when_webhooks_have_mail_ids() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let server = Server::start(&db.url);
    let token = server.owner_token();
    let body = json!({"name": "w", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
        "urls": [{"url": "https://e.example/h"}], "is_all_teams_configured": true, "mail_ids": ["ops@example.com"]});
    let created = crate::helpers::http_client()
        .post(format!("{}{HOOKS}", server.url))
        .bearer_auth(&token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    assert!(
        !server.stderr().contains("SMTP is not configured"),
        "no webhook had mail_ids at the first start"
    );
    server.stop();
    let again = Server::start(&db.url);
    let stderr = eventually_stderr(&again, "SMTP is not configured").await;
    assert!(stderr.contains("WARN"), "{stderr}");
    again.stop();
}

async fn eventually_stderr(server: &Server, needle: &str) -> String {
    eventually(
        "the warning is logged",
        || async { server.stderr() },
        |s: &String| s.contains(needle),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_email_works_and_explains_failures() {
    let smtp = SmtpServer::start().await;
    let port = smtp.port.to_string();
    let run = |port: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["send-test-email", "--to", "ops@example.com"])
            .env("TOCSIN_SMTP__HOST", "127.0.0.1")
            .env("TOCSIN_SMTP__PORT", port)
            .env("TOCSIN_SMTP__TLS", "none")
            .env("TOCSIN_SMTP__FROM", "tocsin@test.local")
            .output()
            .unwrap()
    };
    let ok = tokio::task::spawn_blocking({
        let port = port.clone();
        move || run(port)
    })
    .await
    .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mails = smtp.wait_for(1).await;
    assert_eq!(mails[0].to, ["ops@example.com"]);
    assert!(mails[0].subject.contains("test e-mail"));

    let (_refusing, closed) = crate::helpers::refusing_port();
    let closed = closed.to_string();
    let failed = tokio::task::spawn_blocking(move || run(closed))
        .await
        .unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("nothing accepts connections") && stderr.contains("smtp.port"),
        "{stderr}"
    );
}
