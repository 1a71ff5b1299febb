//! Identifiers: a short type prefix and a ULID (time-ordered, so ids sort by creation).

use rand::Rng;

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
    fn ids_are_unique_and_sort_by_time() {
        let a = new_id("x");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("x");
        assert_ne!(a, b);
        assert!(a < b, "{a} should sort before {b}");
    }
}
