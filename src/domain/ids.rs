//! Identifiers: a short type prefix and a ULID (time-ordered, so ids sort by creation), and
//! one type per kind of id that travels together, so that an organization's id cannot be
//! passed where a webhook's is expected (they are all text, and functions take several).

use rand::Rng;

/// A type for one kind of id: text underneath (stored, serialized and formatted as the
/// text), read as `&str` where text is wanted, but not interchangeable with another kind.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default,
            serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new id with this kind's prefix.
            pub fn generate() -> Self {
                Self(new_id($prefix))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// An organization (tenant): every other row belongs to one.
    OrganizationId,
    "org"
);
id_type!(
    /// A webhook of an organization.
    WebhookId,
    "wh"
);
id_type!(
    /// A delivery of an event to one URL; also its `webhook-id` header.
    DeliveryId,
    "msg"
);

id_type!(
    /// An event source of an organization: where an alerting or incident tool posts.
    SourceId,
    "src"
);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new id such as `wh_01JD9Z6V4N8Q3T0M2K5R7X1C9B`: 48 bits of milliseconds, 80 random bits.
pub fn new_id(prefix: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let random: u128 = rand::rng().random::<u128>() & ((1u128 << 80) - 1);
    let mut value = (millis & ((1u128 << 48) - 1)) << 80 | random;
    let mut out = [0u8; 26];
    for slot in out.iter_mut().rev() {
        *slot = CROCKFORD[(value & 31) as usize];
        value >>= 5;
    }
    let mut id = String::with_capacity(prefix.len() + 27);
    id.push_str(prefix);
    id.push('_');
    id.push_str(std::str::from_utf8(&out).expect("alphabet is ASCII"));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_fixed_length() {
        let id = new_id("wh");
        assert!(id.starts_with("wh_"));
        assert_eq!(id.len(), 3 + 26);
    }

    #[test]
    fn id_types_carry_their_prefix_and_read_as_text() {
        let org = OrganizationId::generate();
        assert!(org.starts_with("org_"), "{org}");
        assert_eq!(org.as_str(), format!("{org}"));
        assert_eq!(
            serde_json::to_string(&WebhookId::from("wh_1")).unwrap(),
            "\"wh_1\""
        );
        assert_eq!(DeliveryId::from("msg_1"), "msg_1");
    }

    #[test]
    fn ids_are_unique_and_sort_by_time() {
        let a = new_id("x");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("x");
        assert_ne!(a, b);
        assert!(a < b, "{a} should sort before {b}");
    }
}
