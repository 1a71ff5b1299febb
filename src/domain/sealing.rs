//! Secrets at rest: webhook signing secrets, credential header values and URL passwords are
//! stored sealed with AES-256-GCM under the installation's secret key, so a copy of the
//! database (a backup, a stolen disk) gives none of them away. Pure: the key comes from
//! the caller, nothing here reads files.
//!
//! A sealed value is `tsk1.` followed by base64url(nonce ‖ ciphertext ‖ tag); the characters
//! are all allowed in a URL's user information, so a sealed password stays inside its URL.
//! Each value is bound to where it belongs (its webhook and field) as associated data, so
//! a sealed value copied to another row does not open. URL passwords use a nonce derived
//! from the value (a synthetic IV): deliveries are found by their URL, so one URL must
//! always seal the same way; that tells only which stored URLs are equal.

use crate::domain::ids::WebhookId;
use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::webhook::{is_credential_header, PreviousSecret, Webhook, WebhookSpec};

const PREFIX: &str = "tsk1.";
const NONCE_LEN: usize = 12;
const URL_PASSWORD: &str = "url-password";

/// The installation's 32-byte key.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id())
    }
}

impl SecretKey {
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// From its base64 form (standard or URL-safe alphabet, padded or not); the error says
    /// what was wrong without repeating the value.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| "is not base64; make one with `openssl rand -base64 32`".to_owned())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "must be 32 bytes in base64, got {} bytes; make one with `openssl rand -base64 32`",
                b.len()
            )
        })?;
        Ok(Self(bytes))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// A short public name of the key (not secret), for telling keys apart in messages.
    pub fn id(&self) -> String {
        hex::encode(&self.derive(b"tocsin key id")[..4])
    }

    fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }
}

/// Seals and opens values under one key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    nonce_key: [u8; 32],
    key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("a sealed value does not open with key {0}: the database was sealed with another key")]
    WrongKey(String),
    #[error("a sealed value is damaged")]
    Damaged,
}

impl Sealer {
    pub fn new(key: &SecretKey) -> Self {
        // Separate keys for encryption and for deriving nonces, both from the one secret.
        let cipher = Aes256Gcm::new(&key.derive(b"tocsin aes-256-gcm").into());
        Self {
            cipher,
            nonce_key: key.derive(b"tocsin synthetic nonce"),
            key_id: key.id(),
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }

    /// Seals with a random nonce; `place` names where the value belongs.
    pub fn seal(&self, place: &str, value: &str) -> String {
        self.seal_with(rand::random(), place, value)
    }

    /// Seals so that the same value in the same place always gives the same text.
    pub fn seal_fixed(&self, place: &str, value: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.nonce_key).expect("any key length");
        mac.update(place.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&digest[..NONCE_LEN]);
        self.seal_with(nonce, place, value)
    }

    fn seal_with(&self, nonce: [u8; NONCE_LEN], place: &str, value: &str) -> String {
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: place.as_bytes(),
                },
            )
            .expect("AES-GCM seals any value of this size");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Opens a sealed value. A value that is not sealed is an error too: every value in a
    /// sealed place is sealed once the database has a key.
    pub fn open(&self, place: &str, sealed: &str) -> Result<String, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::Damaged)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Damaged)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SealError::Damaged);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| SealError::WrongKey(self.key_id.clone()))?;
        String::from_utf8(plain).map_err(|_| SealError::Damaged)
    }

    /// A URL with its password sealed (URLs without one are returned as they are).
    pub fn seal_url(&self, url: &str) -> String {
        self.map_url_password(url, |p| Ok(self.seal_fixed(URL_PASSWORD, p)))
            .expect("sealing cannot fail")
    }

    /// A URL with its sealed password opened.
    pub fn open_url(&self, url: &str) -> Result<String, SealError> {
        self.map_url_password(url, |p| {
            if Self::is_sealed(p) {
                self.open(URL_PASSWORD, p)
            } else {
                Ok(p.to_owned())
            }
        })
    }

    fn map_url_password(
        &self,
        url: &str,
        change: impl FnOnce(&str) -> Result<String, SealError>,
    ) -> Result<String, SealError> {
        // Only a URL with user information can carry a password; most have none.
        if !url.contains('@') {
            return Ok(url.to_owned());
        }
        let Ok(mut parsed) = url::Url::parse(url) else {
            return Ok(url.to_owned());
        };
        let Some(password) = parsed.password().map(str::to_owned) else {
            return Ok(url.to_owned());
        };
        let changed = change(&password)?;
        parsed
            .set_password(Some(&changed))
            .map_err(|_| SealError::Damaged)?;
        Ok(parsed.to_string())
    }

    /// The stored form of a webhook: its signing secret, credential header values and URL
    /// passwords sealed.
    pub fn seal_webhook(&self, webhook: &Webhook) -> Webhook {
        Webhook {
            spec: self.seal_spec(&webhook.id, &webhook.spec),
            secret: self.seal_secret(&webhook.id, &webhook.secret),
            previous_secret: webhook.previous_secret.as_ref().map(|p| PreviousSecret {
                secret: self.seal_previous_secret(&webhook.id, &p.secret),
                until: p.until,
            }),
            ..webhook.clone()
        }
    }

    pub fn seal_secret(&self, webhook_id: &WebhookId, secret: &str) -> String {
        self.seal(&secret_place(webhook_id), secret)
    }

    pub fn seal_previous_secret(&self, webhook_id: &WebhookId, secret: &str) -> String {
        self.seal(&previous_secret_place(webhook_id), secret)
    }

    /// A webhook's settings with credential header values and URL passwords sealed.
    pub fn seal_spec(&self, webhook_id: &WebhookId, spec: &WebhookSpec) -> WebhookSpec {
        let mut sealed = spec.clone();
        for header in &mut sealed.header {
            if is_credential_header(&header.name) {
                header.value = self.seal(&header_place(webhook_id), &header.value);
            }
        }
        for url in &mut sealed.urls {
            url.url = self.seal_url(&url.url);
        }
        sealed
    }

    /// A webhook as read from the store, opened. Values that are not sealed (written before
    /// the database had a key) are taken as they are; opening the database seals them.
    pub fn open_webhook(&self, mut webhook: Webhook) -> Result<Webhook, SealError> {
        let id = webhook.id.clone();
        let open = |place: &str, value: &mut String| -> Result<(), SealError> {
            if Self::is_sealed(value) {
                *value = self.open(place, value)?;
            }
            Ok(())
        };
        open(&secret_place(&id), &mut webhook.secret)?;
        if let Some(previous) = &mut webhook.previous_secret {
            open(&previous_secret_place(&id), &mut previous.secret)?;
        }
        for header in &mut webhook.spec.header {
            if is_credential_header(&header.name) {
                open(&header_place(&id), &mut header.value)?;
            }
        }
        for url in &mut webhook.spec.urls {
            url.url = self.open_url(&url.url)?;
        }
        Ok(webhook)
    }
}

fn secret_place(webhook_id: &WebhookId) -> String {
    format!("webhook/{webhook_id}/secret")
}

fn previous_secret_place(webhook_id: &WebhookId) -> String {
    format!("webhook/{webhook_id}/previous-secret")
}

fn header_place(webhook_id: &WebhookId) -> String {
    format!("webhook/{webhook_id}/header")
}

/// What the database keeps to tell whether a key is the one it was sealed with.
pub const KEY_CHECK_PLACE: &str = "key-check";
pub const KEY_CHECK_VALUE: &str = "tocsin";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::webhook::{parse_spec, Webhook};
    use serde_json::json;

    fn sealer() -> Sealer {
        Sealer::new(&SecretKey::generate())
    }

    #[test]
    fn values_open_only_with_their_key_and_in_their_place() {
        let s = sealer();
        let sealed = s.seal("webhook/wh_1/secret", "whsec_abc");
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            s.seal("webhook/wh_1/secret", "whsec_abc"),
            "random nonce"
        );
        assert_eq!(s.open("webhook/wh_1/secret", &sealed).unwrap(), "whsec_abc");
        assert!(matches!(
            s.open("webhook/wh_2/secret", &sealed),
            Err(SealError::WrongKey(_))
        ));
        assert!(matches!(
            sealer().open("webhook/wh_1/secret", &sealed),
            Err(SealError::WrongKey(_))
        ));
        let mut tampered = sealed.clone();
        tampered.push('A');
        assert!(s.open("webhook/wh_1/secret", &tampered).is_err());
        assert_eq!(s.open("x", "plain"), Err(SealError::Damaged));
    }

    #[test]
    fn url_passwords_seal_the_same_way_every_time_and_stay_in_the_url() {
        let s = sealer();
        let url = "https://user:p%40ss@hooks.example/in?x=1";
        let sealed = s.seal_url(url);
        assert_eq!(sealed, s.seal_url(url));
        assert!(sealed.starts_with("https://user:tsk1."), "{sealed}");
        assert!(sealed.ends_with("@hooks.example/in?x=1"), "{sealed}");
        assert!(!sealed.contains("p%40ss"));
        assert_eq!(s.open_url(&sealed).unwrap(), url);
        assert_ne!(
            sealed,
            s.seal_url("https://user:other@hooks.example/in?x=1")
        );
        for plain in ["https://hooks.example/a", "https://user@hooks.example/a"] {
            assert_eq!(s.seal_url(plain), plain);
            assert_eq!(s.open_url(plain).unwrap(), plain);
        }
    }

    #[test]
    fn a_webhook_is_stored_with_its_three_kinds_of_secret_sealed() {
        let spec = parse_spec(&json!({
            "name": "w", "triggers": [{"event_class": "incident", "event_type": "triggered"}],
            "urls": [{"url": "https://u:pw-123@a.example/"}, {"url": "https://b.example/"}],
            "is_all_teams_configured": true,
            "header": {"Authorization": "Bearer t0ken", "X-Team": "sre"}
        }))
        .unwrap();
        let mut webhook = Webhook::new(&"org".into(), "tok", spec);
        webhook.previous_secret = Some(crate::domain::webhook::PreviousSecret {
            secret: "whsec_previous-one".into(),
            until: crate::domain::Timestamp::from_micros(1),
        });
        let s = sealer();
        let stored = s.seal_webhook(&webhook);
        let text = format!("{stored:?}");
        for secret in [
            webhook.secret.as_str(),
            "Bearer t0ken",
            "pw-123",
            "whsec_previous-one",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("sre") && text.contains("https://b.example/"));
        assert_eq!(s.open_webhook(stored.clone()).unwrap(), webhook);
        assert_eq!(
            s.open_webhook(webhook.clone()).unwrap(),
            webhook,
            "not yet sealed"
        );
        let mut moved = stored;
        moved.id = "wh_other".into();
        assert!(s.open_webhook(moved).is_err(), "bound to its webhook");
    }

    #[test]
    fn keys_parse_from_base64_and_say_what_is_wrong() {
        let key = SecretKey::generate();
        let again = SecretKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(again.id(), key.id());
        assert!(SecretKey::from_base64("not base64!")
            .unwrap_err()
            .contains("base64"));
        assert!(SecretKey::from_base64("c2hvcnQ=")
            .unwrap_err()
            .contains("got 5 bytes"));
        assert_ne!(SecretKey::generate().id(), key.id());
    }
}
