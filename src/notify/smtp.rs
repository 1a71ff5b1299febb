//! Sending over SMTP (lettre), with an explicit TLS choice and operator-friendly errors.

use std::time::Duration;

use lettre::{
    message::{Mailbox, MultiPart},
    transport::smtp::authentication::Credentials,
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use super::email::Email;
use crate::config::{SmtpConfig, SmtpTls};

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    config: SmtpConfig,
}

impl Mailer {
    /// `None` when no SMTP host is configured.
    pub fn new(config: &SmtpConfig) -> anyhow::Result<Option<Mailer>> {
        if config.host.is_empty() {
            return Ok(None);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let host = config.host.as_str();
        let builder = match config.tls {
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder.port(config.port).timeout(Some(TIMEOUT));
        if !config.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.username.clone(),
                config.password.clone(),
            ));
        }
        let from_text = if config.from.is_empty() {
            "tocsin <tocsin@localhost>"
        } else {
            config.from.as_str()
        };
        let from: Mailbox = from_text
            .parse()
            .map_err(|e| anyhow::anyhow!("smtp.from \"{from_text}\" is not an address: {e}"))?;
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
            config: config.clone(),
        }))
    }

    pub async fn send(&self, to: &[String], email: &Email) -> Result<(), String> {
        let message_id = email
            .key
            .as_ref()
            .map(|key| format!("<{key}@{}>", self.from.email.domain()));
        let mut message = Message::builder()
            .from(self.from.clone())
            .message_id(message_id)
            .subject(email.subject.clone());
        for address in to {
            let mailbox: Mailbox = address
                .parse()
                .map_err(|e| format!("\"{address}\" is not an address: {e}"))?;
            message = message.to(mailbox);
        }
        let message = message
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| format!("cannot build the e-mail: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| self.explain(&e))
    }

    /// The error and its likely cause in plain words.
    pub fn explain(&self, error: &lettre::transport::smtp::Error) -> String {
        let mut chain = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            let text = s.to_string();
            if !chain.contains(&text) {
                chain.push_str(": ");
                chain.push_str(&text);
            }
            source = s.source();
        }
        let c = &self.config;
        let lower = chain.to_lowercase();
        let hint = if lower.contains("refused") {
            format!("nothing accepts connections at {}:{}: check smtp.host and smtp.port, and that the mail server runs", c.host, c.port)
        } else if error
            .status()
            .is_some_and(|s| [530, 534, 535].contains(&u16::from(s)))
            || lower.contains("authentication")
        {
            "the server refused the login: check smtp.username and smtp.password".to_owned()
        } else if error.is_tls()
            || lower.contains("tls")
            || lower.contains("certificate")
            || lower.contains("handshake")
            || error.is_timeout()
        {
            let mode = match (c.tls, c.port) {
                (SmtpTls::Starttls | SmtpTls::None, 465) => {
                    " Port 465 usually means implicit TLS: set smtp.tls = \"tls\".".to_owned()
                }
                (SmtpTls::Tls, 587 | 25) => format!(
                    " Port {} usually means STARTTLS: set smtp.tls = \"starttls\".",
                    c.port
                ),
                _ => String::new(),
            };
            format!(
                "the connection or its TLS handshake failed (smtp.tls = \"{}\", port {}).{mode}",
                c.tls, c.port
            )
        } else if lower.contains("resolve")
            || lower.contains("lookup")
            || lower.contains("name or service")
        {
            format!("the host name {} does not resolve: check smtp.host", c.host)
        } else {
            "see the server's answer above".to_owned()
        };
        format!("{chain} — {hint}")
    }
}
