//! Password hashing: Argon2id with OWASP's parameters, salted per password, in the PHC
//! string format (so the parameters travel with each hash and can be raised later).

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use rand::RngCore;

/// Argon2id, 19 MiB, 2 passes, 1 lane: OWASP's recommended minimum, and the crate's default.
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

/// The PHC string to store. Costs tens of milliseconds of CPU on purpose: call it off the
/// async workers.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters hashes any password")
        .to_string()
}

/// Whether `password` is the one behind `stored`. The comparison is constant-time; an
/// unreadable stored hash matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends the same work as checking a real password, for logins whose email matches no
/// one, so the time taken does not tell whether an account exists.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash_password("tocsin dummy password for timing"));
    let _ = verify_password(password, stored);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password_and_are_salted() {
        let a = hash_password("plum orbit candle ferry");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert!(verify_password("plum orbit candle ferry", &a));
        assert!(!verify_password("plum orbit candle ferrY", &a));
        assert_ne!(a, hash_password("plum orbit candle ferry"));
        assert!(!verify_password("anything", "not a hash"));
    }
}
