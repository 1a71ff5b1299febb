//! Browser sessions and one-time links: random secrets handed out once and stored only as
//! hashes, and the pure rules for when a session ends.

use crate::domain::ids::OrganizationId;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Timestamp;

/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// And this long after login, however active.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Last-seen times are written at most this often per session: a page view is not a write.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// How long a setup link works.
pub const SETUP_LINK_VALID: Duration = Duration::from_secs(24 * 3600);

/// 256 random bits, URL-safe base64 (43 characters): a session id or a setup code.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored instead of the secret. The secrets are 256-bit random values, so a plain
/// SHA-256 suffices (nothing to brute-force), and every node of a cluster can look it up.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a presented cookie or code has the shape [`new_secret`] makes (checked before
/// any lookup, so junk never reaches the database).
pub fn looks_like_secret(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

type HmacSha256 = Hmac<Sha256>;

fn csrf_mac(session_secret: &str) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(session_secret.as_bytes()).expect("HMAC takes any key");
    mac.update(b"tocsin csrf v1");
    mac
}

/// The session's CSRF token, derived from its secret: nothing more to store, the same on
/// every node, and useless without the cookie it belongs to.
pub fn csrf_token(session_secret: &str) -> String {
    let tag = csrf_mac(session_secret).finalize().into_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
}

/// Compares a presented CSRF token with the session's in constant time.
pub fn csrf_matches(session_secret: &str, presented: &str) -> bool {
    let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(presented.trim()) else {
        return false;
    };
    csrf_mac(session_secret).verify_slice(&tag).is_ok()
}

/// A stored session (by the hash of its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub user_id: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

/// What to do with a session presented at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    /// Valid; record the time it was seen (at most every [`TOUCH_EVERY`]).
    Valid { touch: bool },
    /// Idle too long, or past its absolute lifetime: delete it and ask for a login.
    Expired,
}

impl Session {
    pub fn new(id_hash: String, user_id: &str, now: Timestamp) -> Self {
        Self {
            id_hash,
            user_id: user_id.to_owned(),
            created_at: now,
            last_seen_at: now,
        }
    }

    pub fn check(&self, now: Timestamp) -> SessionCheck {
        if now >= self.last_seen_at.plus(IDLE_TIMEOUT)
            || now >= self.created_at.plus(ABSOLUTE_TIMEOUT)
        {
            return SessionCheck::Expired;
        }
        SessionCheck::Valid {
            touch: now >= self.last_seen_at.plus(TOUCH_EVERY),
        }
    }
}

/// A one-time link that lets a person set their password. With a user, it is that
/// person's invitation or password reset; without one (the first start's), whoever opens
/// it creates the account, with `role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupLink {
    pub code_hash: String,
    pub organization_id: OrganizationId,
    pub user_id: Option<String>,
    pub role: super::user::Role,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// A fresh link: the code to hand out once, and what is stored.
pub fn new_setup_link(
    organization_id: &OrganizationId,
    user_id: Option<&str>,
    role: super::user::Role,
    now: Timestamp,
) -> (String, SetupLink) {
    let code = new_secret();
    let link = SetupLink {
        code_hash: hash_secret(&code),
        organization_id: organization_id.clone(),
        user_id: user_id.map(str::to_owned),
        role,
        created_at: now,
        expires_at: now.plus(SETUP_LINK_VALID),
        used_at: None,
    };
    (code, link)
}

/// Why a setup link does not work, in words for the page that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    Unknown,
    Used,
    Expired,
}

impl LinkProblem {
    pub fn message(self) -> &'static str {
        match self {
            LinkProblem::Unknown => "This setup link is not valid. Check that it was copied whole, or ask an administrator for a new one.",
            LinkProblem::Used => "This setup link has already been used. Log in with the password you chose, or ask an administrator for a new link.",
            LinkProblem::Expired => "This setup link has expired (links work for 24 hours). Ask an administrator for a new one.",
        }
    }
}

impl SetupLink {
    pub fn check(&self, now: Timestamp) -> Result<(), LinkProblem> {
        if self.used_at.is_some() {
            Err(LinkProblem::Used)
        } else if now >= self.expires_at {
            Err(LinkProblem::Expired)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn sessions_end_when_idle_or_old_and_touch_at_most_every_minute() {
        let start = Timestamp::from_micros(1_000 * HOUR);
        let mut s = Session::new("h".into(), "usr_1", start);
        assert_eq!(s.check(start), SessionCheck::Valid { touch: false });
        let later = Timestamp::from_micros(start.as_micros() + 61_000_000);
        assert_eq!(s.check(later), SessionCheck::Valid { touch: true });
        let idle = Timestamp::from_micros(start.as_micros() + 12 * HOUR);
        assert_eq!(s.check(idle), SessionCheck::Expired);
        // Active every 11 hours: still ends 7 days after login.
        s.last_seen_at = Timestamp::from_micros(start.as_micros() + 7 * 24 * HOUR - HOUR);
        assert!(matches!(
            s.check(Timestamp::from_micros(
                start.as_micros() + 7 * 24 * HOUR - 1
            )),
            SessionCheck::Valid { .. }
        ));
        assert_eq!(
            s.check(Timestamp::from_micros(start.as_micros() + 7 * 24 * HOUR)),
            SessionCheck::Expired
        );
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let a = new_secret();
        let b = new_secret();
        assert!(looks_like_secret(&a));
        assert!(!looks_like_secret("short"));
        assert!(csrf_matches(&a, &csrf_token(&a)));
        assert!(!csrf_matches(&b, &csrf_token(&a)));
        assert!(!csrf_matches(&a, ""));
        assert!(!csrf_matches(&a, "not base64 !"));
        assert_ne!(csrf_token(&a), hash_secret(&a));
    }

    #[test]
    fn setup_links_work_once_and_for_a_day() {
        let now = Timestamp::from_micros(1_000 * HOUR);
        let (code, mut link) =
            new_setup_link(&"org".into(), None, super::super::user::Role::Owner, now);
        assert_eq!(link.code_hash, hash_secret(&code));
        assert_eq!(link.check(now), Ok(()));
        assert_eq!(
            link.check(Timestamp::from_micros(now.as_micros() + 24 * HOUR)),
            Err(LinkProblem::Expired)
        );
        link.used_at = Some(now);
        assert_eq!(link.check(now), Err(LinkProblem::Used));
    }
}
