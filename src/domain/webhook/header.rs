//! Extra headers: which ones carry credentials, and how their values are shown.

use super::Header;
use crate::domain::FieldError;

/// Headers tocsin sets itself; a webhook may not override them.
pub const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Whether a header's value is a credential that responses and logs must not show.
pub fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization"
        || name == "proxy-authorization"
        || name == "cookie"
        || name == "set-cookie"
        || ["token", "key", "secret", "password", "auth"]
            .iter()
            .any(|word| name.contains(word))
}

/// Shows only the last 4 characters, and nothing of values so short that 4 characters
/// would give most of them away.
pub fn mask_value(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 12 {
        "****".to_owned()
    } else {
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("****{tail}")
    }
}

/// A PUT that sends back the masked value it was shown keeps the stored secret: clients
/// do GET → edit → PUT without ever seeing credentials. But a credential is only kept for
/// the receivers it was entered for: when `origins_changed` (a URL now points somewhere
/// it did not), a masked value must be entered again, else anyone allowed to edit could
/// send the stored secret to a server of their choosing. The error names each header.
pub fn restore_masked(
    incoming: &mut [Header],
    stored: &[Header],
    origins_changed: bool,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    for header in incoming.iter_mut() {
        if !is_credential_header(&header.name) {
            continue;
        }
        let previous = stored
            .iter()
            .find(|old| old.name.eq_ignore_ascii_case(&header.name));
        if let Some(old) = previous {
            if header.value == mask_value(&old.value) {
                if origins_changed {
                    errors.push(FieldError::new(
                        format!("header.{}", header.name),
                        "is shown masked, and the webhook's URLs now point to another server: enter the credential again (it is not sent to a new destination unseen)",
                    ));
                } else {
                    header.value = old.value.clone();
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `scheme://host:port` of a URL, for telling whether a change sends elsewhere.
pub fn origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| url.to_owned())
}

/// A URL with its password (`https://user:secret@host/`) shown as `****`.
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A URL sent back masked, unchanged, keeps its stored password.
pub fn restore_masked_url(incoming: &str, stored: &[&str]) -> String {
    stored
        .iter()
        .find(|old| mask_url(old) == incoming && mask_url(old) != **old)
        .map_or_else(|| incoming.to_owned(), |old| (*old).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> Header {
        Header {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn masked_values_sent_back_keep_the_stored_secret() {
        let stored = [
            h("Authorization", "Bearer abcdefgh1234"),
            h("X-Team", "ops"),
        ];
        let mut incoming = [h("authorization", "****1234"), h("X-Team", "****")];
        restore_masked(&mut incoming, &stored, false).unwrap();
        assert_eq!(incoming[0].value, "Bearer abcdefgh1234");
        assert_eq!(
            incoming[1].value, "****",
            "not a credential header: taken as given"
        );
        let mut changed = [h("Authorization", "Bearer new-value-9999")];
        restore_masked(&mut changed, &stored, true).unwrap();
        assert_eq!(
            changed[0].value, "Bearer new-value-9999",
            "a new value is taken"
        );
    }

    #[test]
    fn masked_values_do_not_follow_a_url_to_another_server() {
        let stored = [h("Authorization", "Bearer abcdefgh1234")];
        let mut incoming = [h("Authorization", "****1234")];
        let errors = restore_masked(&mut incoming, &stored, true).unwrap_err();
        assert_eq!(errors[0].field, "header.Authorization");
        assert_eq!(incoming[0].value, "****1234", "not restored");
        assert_eq!(origin("https://a.example/x?y"), "https://a.example");
        assert_eq!(
            origin("https://a.example:443/"),
            origin("https://A.example/other")
        );
        assert_ne!(origin("https://a.example/"), origin("http://a.example/"));
    }

    #[test]
    fn url_passwords_are_masked_and_kept_when_sent_back() {
        let stored = "https://ops:s3cret-pass@hooks.example/in";
        let shown = mask_url(stored);
        assert_eq!(shown, "https://ops:****@hooks.example/in");
        assert_eq!(restore_masked_url(&shown, &[stored]), stored);
        assert_eq!(
            mask_url("https://hooks.example/in"),
            "https://hooks.example/in"
        );
        assert_eq!(
            restore_masked_url("https://ops:****@elsewhere.example/in", &[stored]),
            "https://ops:****@elsewhere.example/in",
            "a masked password is never moved to another URL"
        );
    }

    #[test]
    fn credential_headers_are_recognised_in_any_case() {
        for name in [
            "Authorization",
            "proxy-authorization",
            "X-Api-Key",
            "X-AUTH-TOKEN",
            "Client-Secret",
            "x-password",
            "Cookie",
            "set-cookie",
        ] {
            assert!(is_credential_header(name), "{name}");
        }
        assert!(!is_credential_header("X-Team"));
    }

    #[test]
    fn masking_keeps_only_the_last_four_characters() {
        assert_eq!(mask_value("Bearer abcdefgh1234"), "****1234");
        assert_eq!(mask_value("short"), "****");
    }
}
