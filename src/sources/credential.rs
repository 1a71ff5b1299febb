//! A source's credential as a request presents it (pure): `Authorization: Bearer <token>`,
//! or HTTP basic auth with the token as the password (Alertmanager's and Grafana's
//! `basic_auth`, for tools that can do nothing else).

use base64::{engine::general_purpose::STANDARD, Engine};

/// The token an `Authorization` header value carries, if any.
pub fn presented(authorization: Option<&str>) -> Option<String> {
    let value = authorization?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_user, password) = text.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_owned());
    }
    None
}

/// Whether `token` hashes to `hash`, compared without stopping at the first difference.
pub fn matches(token: &str, hash: &str) -> bool {
    let given = crate::domain::source::hash_token(token);
    given.len() == hash.len()
        && given
            .bytes()
            .zip(hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_both_carry_the_token() {
        assert_eq!(
            presented(Some("Bearer tsrc_abc")).as_deref(),
            Some("tsrc_abc")
        );
        assert_eq!(
            presented(Some("bearer  tsrc_abc ")).as_deref(),
            Some("tsrc_abc")
        );
        let basic = format!("Basic {}", STANDARD.encode("alertmanager:tsrc_abc"));
        assert_eq!(presented(Some(&basic)).as_deref(), Some("tsrc_abc"));
        let no_user = format!("Basic {}", STANDARD.encode(":tsrc_abc"));
        assert_eq!(presented(Some(&no_user)).as_deref(), Some("tsrc_abc"));
    }

    #[test]
    fn anything_else_carries_none() {
        for header in [
            None,
            Some(""),
            Some("Bearer "),
            Some("Token x"),
            Some("Basic !!!"),
        ] {
            assert_eq!(presented(header), None, "{header:?}");
        }
        let no_password = format!("Basic {}", STANDARD.encode("user:"));
        assert_eq!(presented(Some(&no_password)), None);
    }

    #[test]
    fn only_the_right_token_matches() {
        let hash = crate::domain::source::hash_token("tsrc_right");
        assert!(matches("tsrc_right", &hash));
        assert!(!matches("tsrc_wrong", &hash));
        assert!(!matches("", &hash));
    }
}
