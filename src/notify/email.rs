//! What a failure e-mail says: which webhook, which deliveries failed and why, where to
//! look, and how to stop these e-mails. Pure text building.

use crate::domain::notification::FailureReport;

/// At most this many failures are listed one by one; the rest are counted.
pub const MAX_LISTED: usize = 20;
const BODY_LINES: usize = 5;

pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn compose(
    webhook_name: &str,
    webhook_id: &str,
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    fn failure(i: usize) -> FailureReport {
        FailureReport {
            notification_id: format!("ntf_{i}"),
            delivery_id: format!("msg_{i}"),
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
        let e = compose("Ops", "wh_1", "https://tocsin.example", &[failure(1)]);
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
    fn lists_twenty_then_counts_the_rest() {
        let failures: Vec<FailureReport> = (0..25).map(failure).collect();
        let e = compose("Ops", "wh_1", "http://t", &failures);
        assert!(e.subject.contains("25 failed deliveries"));
        assert!(
            e.text.contains("inc-19") && !e.text.contains("inc-20 "),
            "only the first 20 listed"
        );
        assert!(e.text.contains("and 5 more"));
    }
}
