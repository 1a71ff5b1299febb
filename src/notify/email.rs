//! What a failure e-mail says: which webhook, which deliveries failed and why, where to
//! look, and how to stop these e-mails. Pure text building.

use crate::domain::ids::WebhookId;
use crate::domain::notification::{FailureReport, Notice, NoticeKind};

/// At most this many failures are listed one by one; the rest are counted.
pub const MAX_LISTED: usize = 20;
const BODY_LINES: usize = 5;

pub struct Email {
    /// The left part of its `Message-ID`: the same for every try at sending the same
    /// notifications, so a copy sent again after a lost `250 OK` is known as the same
    /// message; `None` lets each send have its own.
    pub key: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A key naming a set of notifications, whatever their order: a SHA-256 of their ids.
pub fn batch_key<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    use sha2::{Digest, Sha256};
    let mut ids: Vec<&str> = ids.collect();
    ids.sort_unstable();
    let mut hash = Sha256::new();
    for id in ids {
        hash.update(id.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("tocsin.{hex}")
}

pub fn compose(
    webhook_name: &str,
    webhook_id: &WebhookId,
    public_url: &str,
    failures: &[FailureReport],
) -> Email {
    let n = failures.len();
    let subject = format!(
        "[tocsin] Webhook \"{webhook_name}\": {n} failed {}",
        if n == 1 { "delivery" } else { "deliveries" }
    );
    let mut text = format!(
        "Webhook \"{webhook_name}\" ({webhook_id}) could not deliver {n} {}.\n\n",
        if n == 1 { "event" } else { "events" }
    );
    let mut html = format!(
        "<p>Webhook <b>{}</b> ({}) could not deliver {n} {}.</p>\n",
        escape(webhook_name),
        escape(webhook_id),
        if n == 1 { "event" } else { "events" }
    );
    html.push_str("<ol>\n");
    for f in failures.iter().take(MAX_LISTED) {
        let link = format!(
            "{public_url}/v3/extensions/event-webhooks/{webhook_id}/logs/{}",
            f.delivery_id
        );
        let answer = answer(f);
        text.push_str(&format!(
            "- {} {}\n  event: {} for incident {} ({})\n  attempts: {}, last at {}\n  {}\n  log: {}\n\n",
            f.method,
            crate::domain::webhook::mask_url(&f.url),
            f.event_type,
            f.incident_id,
            f.incident_message,
            f.attempts,
            f.failed_at.to_rfc3339(),
            answer.replace('\n', "\n  "),
            link
        ));
        html.push_str(&format!(
            "<li><p><b>{} {}</b><br>event {} for incident {} ({})<br>attempts: {}, last at {}</p><pre>{}</pre><p><a href=\"{}\">delivery log</a></p></li>\n",
            escape(&f.method),
            escape(&crate::domain::webhook::mask_url(&f.url)),
            escape(&f.event_type),
            escape(&f.incident_id),
            escape(&f.incident_message),
            f.attempts,
            f.failed_at.to_rfc3339(),
            escape(&answer),
            escape(&link)
        ));
    }
    html.push_str("</ol>\n");
    if n > MAX_LISTED {
        let rest = format!("…and {} more failed deliveries: see the webhook's logs at {public_url}/v3/extensions/event-webhooks/{webhook_id}/logs?state=failed\n\n", n - MAX_LISTED);
        text.push_str(&rest);
        html.push_str(&format!("<p>{}</p>\n", escape(&rest)));
    }
    let footer = format!(
        "You get this e-mail because your address is in the mail_ids of webhook {webhook_id}. \
         To change or stop these e-mails, edit mail_ids: PUT {public_url}/v3/extensions/event-webhooks/{webhook_id}. \
         At most one such e-mail is sent per webhook per notify.window; later failures are gathered into the next one."
    );
    text.push_str(&format!("--\n{footer}\n"));
    html.push_str(&format!("<hr><p><small>{}</small></p>\n", escape(&footer)));
    Email {
        key: Some(batch_key(
            failures.iter().map(|f| f.notification_id.as_str()),
        )),
        subject,
        text,
        html,
    }
}

/// An e-mail about a webhook as a whole: a URL stopped answering or answers again, or tocsin
/// disabled the webhook. `waiting` is how many of its deliveries are pending now.
pub fn compose_notices(
    webhook_name: &str,
    webhook_id: &WebhookId,
    public_url: &str,
    notices: &[Notice],
    waiting: u64,
) -> Email {
    let worst = notices
        .iter()
        .map(|n| n.kind)
        .max_by_key(|k| match k {
            NoticeKind::Disabled => 2,
            NoticeKind::Outage => 1,
            NoticeKind::Recovered => 0,
        })
        .unwrap_or(NoticeKind::Outage);
    // The latest word on each URL decides whether it is down or back.
    let last = notices.last().map_or(worst, |n| n.kind);
    let subject = match (worst, last) {
        (NoticeKind::Disabled, _) => format!("[tocsin] Webhook \"{webhook_name}\" was disabled"),
        (_, NoticeKind::Recovered) => {
            format!("[tocsin] Webhook \"{webhook_name}\": its URL answers again")
        }
        _ => format!("[tocsin] Webhook \"{webhook_name}\": a URL is not answering"),
    };
    let mut text = format!("Webhook \"{webhook_name}\" ({webhook_id}):\n\n");
    let mut html = format!(
        "<p>Webhook <b>{}</b> ({}):</p>\n<ul>\n",
        escape(webhook_name),
        escape(webhook_id)
    );
    for n in notices {
        let line = match n.kind {
            NoticeKind::Outage => format!(
                "{} stopped answering at {}. {} Its deliveries wait, and one is tried at a time until it answers.",
                n.url,
                n.created_at.to_rfc3339(),
                n.detail
            ),
            NoticeKind::Recovered => format!(
                "{} answers again since {}; what waited for it is being delivered, in order.",
                n.url,
                n.created_at.to_rfc3339()
            ),
            NoticeKind::Disabled => format!(
                "tocsin disabled this webhook at {}: {} Its pending deliveries were cancelled; enable it again once the receiver exists.",
                n.created_at.to_rfc3339(),
                n.detail
            ),
        };
        text.push_str(&format!("- {line}\n"));
        html.push_str(&format!("<li>{}</li>\n", escape(&line)));
    }
    html.push_str("</ul>\n");
    let now = format!(
        "Pending deliveries of this webhook now: {waiting}. Logs: {public_url}/v3/extensions/event-webhooks/{webhook_id}/logs\n\n"
    );
    text.push('\n');
    text.push_str(&now);
    html.push_str(&format!("<p>{}</p>\n", escape(&now)));
    let footer = format!(
        "You get this e-mail because your address is in the mail_ids of webhook {webhook_id}. \
         To change or stop these e-mails, edit mail_ids: PUT {public_url}/v3/extensions/event-webhooks/{webhook_id}. \
         At most one e-mail is sent per webhook per notify.window; later news is gathered into the next one."
    );
    text.push_str(&format!("--\n{footer}\n"));
    html.push_str(&format!("<hr><p><small>{}</small></p>\n", escape(&footer)));
    Email {
        key: Some(batch_key(notices.iter().map(|n| n.id.as_str()))),
        subject,
        text,
        html,
    }
}

/// The receiver's answer (status and the first lines of its body), or the error in words.
fn answer(f: &FailureReport) -> String {
    match (f.last_status, &f.last_error) {
        (Some(status), _) => {
            let body: Vec<&str> = f
                .last_body
                .as_deref()
                .unwrap_or("")
                .lines()
                .take(BODY_LINES)
                .collect();
            if body.iter().all(|l| l.trim().is_empty()) {
                format!("answer: HTTP {status}")
            } else {
                format!("answer: HTTP {status}\n{}", body.join("\n"))
            }
        }
        (None, Some(error)) => format!("error: {error}"),
        (None, None) => "error: unknown".to_owned(),
    }
}

/// An invitation: the person's setup link, who sent it, and how long it works.
pub fn compose_invite(name: &str, invited_by: &str, link: &str) -> Email {
    let subject = format!("[tocsin] {invited_by} invited you to tocsin");
    let text = format!(
        "Hello {name},\n\n{invited_by} invited you to tocsin, which sends webhooks for incidents.\n\n\
         Set your password here (the link works once, for 24 hours):\n{link}\n\n\
         If you did not expect this, ignore it: nothing happens without the link.\n"
    );
    let html = format!(
        "<p>Hello {},</p><p>{} invited you to tocsin, which sends webhooks for incidents.</p>\
         <p><a href=\"{link}\">Set your password</a> (the link works once, for 24 hours):<br><code>{link}</code></p>\
         <p><small>If you did not expect this, ignore it: nothing happens without the link.</small></p>\n",
        escape(name),
        escape(invited_by),
        link = escape(link),
    );
    Email {
        key: None,
        subject,
        text,
        html,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invitation_carries_the_link_and_escapes_names() {
        let mail = compose_invite("<Jo>", "Ann", "https://tocsin.example/setup/abc");
        assert!(mail.text.contains("https://tocsin.example/setup/abc"));
        assert!(mail.text.contains("Hello <Jo>"), "plain text as typed");
        assert!(mail.html.contains("Hello &lt;Jo&gt;"), "{}", mail.html);
        assert!(mail
            .html
            .contains(r#"href="https://tocsin.example/setup/abc""#));
        assert_eq!(mail.subject, "[tocsin] Ann invited you to tocsin");
    }
    use crate::domain::Timestamp;

    fn failure(i: usize) -> FailureReport {
        FailureReport {
            notification_id: format!("ntf_{i}"),
            delivery_id: format!("msg_{i}").into(),
            url: "https://hooks.example/x".into(),
            method: "POST".into(),
            event_type: "incident.triggered".into(),
            incident_id: format!("inc-{i}"),
            incident_message: "CPU <high>".into(),
            attempts: 4,
            last_status: Some(503),
            last_body: Some("upstream down\nline 2\n".into()),
            last_error: None,
            failed_at: Timestamp::from_micros(1_795_766_400_000_000),
        }
    }

    #[test]
    fn says_what_failed_why_and_where_to_look() {
        let e = compose(
            "Ops",
            &"wh_1".into(),
            "https://tocsin.example",
            &[failure(1)],
        );
        assert_eq!(e.subject, "[tocsin] Webhook \"Ops\": 1 failed delivery");
        for needle in [
            "https://hooks.example/x",
            "incident.triggered",
            "inc-1",
            "HTTP 503",
            "upstream down",
            "https://tocsin.example/v3/extensions/event-webhooks/wh_1/logs/msg_1",
            "mail_ids",
        ] {
            assert!(e.text.contains(needle), "{needle} in text");
        }
        assert!(e.html.contains("CPU &lt;high&gt;"), "escaped in HTML");
    }

    #[test]
    fn the_same_notifications_make_the_same_message_id() {
        let a = compose(
            "Ops",
            &"wh_1".into(),
            "https://t",
            &[failure(1), failure(2)],
        );
        let again = compose(
            "Ops",
            &"wh_1".into(),
            "https://t",
            &[failure(2), failure(1)],
        );
        let other = compose(
            "Ops",
            &"wh_1".into(),
            "https://t",
            &[failure(1), failure(3)],
        );
        assert_eq!(a.key, again.key, "a retried send is the same message");
        assert_ne!(a.key, other.key);
        let key = a.key.unwrap();
        assert!(key.starts_with("tocsin.") && key.len() == 39, "{key}");
    }

    #[test]
    fn notices_say_which_url_since_when_and_what_waits() {
        let mut down = Notice::new(
            &"o".into(),
            &"wh_1".into(),
            NoticeKind::Outage,
            "https://u:secret@hooks.example/x",
            "Last error: HTTP 503.".into(),
        );
        down.created_at = Timestamp::from_micros(1_795_766_400_000_000);
        let e = compose_notices("Ops", &"wh_1".into(), "https://t", &[down.clone()], 7);
        assert_eq!(
            e.subject,
            "[tocsin] Webhook \"Ops\": a URL is not answering"
        );
        for needle in [
            "https://u:****@hooks.example/x",
            "stopped answering at 2026",
            "HTTP 503",
            "now: 7",
        ] {
            assert!(e.text.contains(needle), "{needle} in {}", e.text);
        }
        assert!(!e.text.contains("secret"));
        let back = Notice::new(
            &"o".into(),
            &"wh_1".into(),
            NoticeKind::Recovered,
            "https://hooks.example/x",
            String::new(),
        );
        let e = compose_notices("Ops", &"wh_1".into(), "https://t", &[down.clone(), back], 0);
        assert!(e.subject.contains("answers again"), "{}", e.subject);
        let gone = Notice::new(
            &"o".into(),
            &"wh_1".into(),
            NoticeKind::Disabled,
            "https://hooks.example/x",
            "it answered 410 Gone.".into(),
        );
        let e = compose_notices("Ops", &"wh_1".into(), "https://t", &[down, gone], 0);
        assert!(e.subject.ends_with("was disabled"), "{}", e.subject);
        assert!(e.text.contains("410 Gone"));
    }

    #[test]
    fn lists_twenty_then_counts_the_rest() {
        let failures: Vec<FailureReport> = (0..25).map(failure).collect();
        let e = compose("Ops", &"wh_1".into(), "http://t", &failures);
        assert!(e.subject.contains("25 failed deliveries"));
        assert!(
            e.text.contains("inc-19") && !e.text.contains("inc-20 "),
            "only the first 20 listed"
        );
        assert!(e.text.contains("and 5 more"));
    }
}
