//! Extra headers: which ones carry credentials, and how their values are shown.

use super::Header;

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
/// do GET → edit → PUT without ever seeing credentials.
pub fn restore_masked(incoming: &mut [Header], stored: &[Header]) {
    for header in incoming.iter_mut() {
        if !is_credential_header(&header.name) {
            continue;
        }
        let previous = stored
            .iter()
            .find(|old| old.name.eq_ignore_ascii_case(&header.name));
        if let Some(old) = previous {
            if header.value == mask_value(&old.value) {
                header.value = old.value.clone();
            }
        }
    }
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
        restore_masked(&mut incoming, &stored);
        assert_eq!(incoming[0].value, "Bearer abcdefgh1234");
        assert_eq!(
            incoming[1].value, "****",
            "not a credential header: taken as given"
        );
        let mut changed = [h("Authorization", "Bearer new-value-9999")];
        restore_masked(&mut changed, &stored);
        assert_eq!(changed[0].value, "Bearer new-value-9999");
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
