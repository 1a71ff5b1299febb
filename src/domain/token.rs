//! API tokens: long random strings shown once, stored as a SHA-256 hash, carrying abilities.

use crate::domain::ids::OrganizationId;
use rand::{distr::Alphanumeric, Rng};
use sha2::{Digest, Sha256};

use super::Timestamp;

pub const TOKEN_PREFIX: &str = "tocsin_";
const TOKEN_RANDOM_LEN: usize = 43; // 43 base62 characters ≈ 256 bits

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ability {
    Read,
    ManageWebhooks,
    Ingest,
    /// Everything, including abilities added later.
    Admin,
}

impl Ability {
    pub const ALL: [Ability; 4] = [
        Ability::Read,
        Ability::ManageWebhooks,
        Ability::Ingest,
        Ability::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Ability::Read => "read",
            Ability::ManageWebhooks => "manage-webhooks",
            Ability::Ingest => "ingest",
            Ability::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text.trim())
    }

    /// What it allows, in a person's words (shown where a token's abilities are chosen).
    pub fn description(self) -> &'static str {
        match self {
            Ability::Read => "see webhooks, sources, logs, incidents and the audit log",
            Ability::ManageWebhooks => {
                "create, change and delete webhooks and event sources, resend and test deliveries"
            }
            Ability::Ingest => "post events to /v3/events (what an incident platform needs)",
            Ability::Admin => "everything, people and tokens included",
        }
    }

    /// Parses `read,manage-webhooks`; the error names the unknown ability.
    pub fn parse_list(text: &str) -> Result<Vec<Ability>, String> {
        let mut out = Vec::new();
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let ability = Self::parse(part).ok_or_else(|| {
                format!(
                    "unknown ability `{}`: use any of {}",
                    part.trim(),
                    Self::ALL.map(|a| a.as_str()).join(", ")
                )
            })?;
            if !out.contains(&ability) {
                out.push(ability);
            }
        }
        if out.is_empty() {
            return Err(format!(
                "no abilities given: use any of {}",
                Self::ALL.map(|a| a.as_str()).join(", ")
            ));
        }
        out.sort();
        Ok(out)
    }

    pub fn join(abilities: &[Ability]) -> String {
        abilities
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A stored token. The plaintext is never kept; `hash` identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub organization_id: OrganizationId,
    pub name: String,
    pub abilities: Vec<Ability>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// After this the token no longer works; `None` for never.
    pub expires_at: Option<Timestamp>,
    /// Recorded at most once a minute.
    pub last_used_at: Option<Timestamp>,
    /// The person behind it: who made it, or who made the token that made it. `None` for
    /// the command line's and the first start's (the operator's). Disabling or deleting
    /// that person revokes it.
    pub created_by: Option<TokenCreator>,
}

/// A token's person: their id, and their e-mail when the token was made (kept for lists
/// after the person is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCreator {
    pub user_id: String,
    pub email: String,
}

/// `last_used_at` is written at most this often per token: using a token is not a write.
pub const LAST_USED_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl ApiToken {
    pub fn allows(&self, ability: Ability) -> bool {
        self.abilities.contains(&ability) || self.abilities.contains(&Ability::Admin)
    }

    /// Whether the token works at `now`: not revoked, not expired.
    pub fn usable_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }

    /// `active`, `expired` or `revoked`.
    pub fn status(&self, now: Timestamp) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if !self.usable_at(now) {
            "expired"
        } else {
            "active"
        }
    }

    /// Whether `last_used_at` is stale enough to be written again.
    pub fn due_for_use_record(&self, now: Timestamp) -> bool {
        self.last_used_at
            .is_none_or(|at| now >= at.plus(LAST_USED_EVERY))
    }
}

/// A freshly made token: the stored record plus the plaintext to show once.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token: ApiToken,
    pub plaintext: String,
    pub hash: String,
}

impl NewToken {
    pub fn generate(organization_id: &OrganizationId, name: &str, abilities: Vec<Ability>) -> Self {
        let random: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(TOKEN_RANDOM_LEN)
            .map(char::from)
            .collect();
        let plaintext = format!("{TOKEN_PREFIX}{random}");
        let hash = hash_token(&plaintext);
        Self {
            token: ApiToken {
                id: super::ids::new_id("tok"),
                organization_id: organization_id.clone(),
                name: name.to_owned(),
                abilities,
                created_at: Timestamp::now(),
                revoked_at: None,
                expires_at: None,
                last_used_at: None,
                created_by: None,
            },
            plaintext,
            hash,
        }
    }
}

/// Tokens are 256-bit random values, so a plain SHA-256 is enough: there is nothing to
/// brute-force, and lookup by hash stays a single indexed query.
pub fn hash_token(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// Whether a presented string has the shape of a tocsin token (checked before any lookup).
pub fn looks_like_token(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == TOKEN_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_hash_consistently() {
        let t = NewToken::generate(&"org_1".into(), "ci", vec![Ability::Read]);
        assert!(looks_like_token(&t.plaintext));
        assert_eq!(hash_token(&t.plaintext), t.hash);
        assert_ne!(t.plaintext, t.hash);
        assert!(!looks_like_token("tocsin_short"));
        assert!(!looks_like_token(&t.plaintext.replace("tocsin_", "other_")));
    }

    #[test]
    fn ability_lists_parse_and_name_unknown_entries() {
        assert_eq!(
            Ability::parse_list("manage-webhooks, read").unwrap(),
            vec![Ability::Read, Ability::ManageWebhooks]
        );
        let err = Ability::parse_list("read,write").unwrap_err();
        assert!(err.contains("`write`"), "{err}");
        assert!(Ability::parse_list("").is_err());
    }

    #[test]
    fn admin_allows_everything() {
        let mut t = NewToken::generate(&"o".into(), "n", vec![Ability::Admin]).token;
        assert!(Ability::ALL.iter().all(|a| t.allows(*a)));
        t.abilities = vec![Ability::Read];
        assert!(t.allows(Ability::Read));
        assert!(!t.allows(Ability::ManageWebhooks));
    }
}
