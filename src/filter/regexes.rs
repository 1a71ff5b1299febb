//! Compiled regular expressions, one per pattern while any filter holds it: a compiled
//! regex takes about 13 KB, and many webhooks share a pattern (at 100,000 webhooks with
//! 1,000 patterns the catalog held 1.8 GB, almost all of it regexes compiled again and
//! again). Shared, a regex is also compiled once instead of once per webhook.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, Weak},
};

use regex::{Regex, RegexBuilder};

/// The most a compiled regex may take: one filter cannot hold a node's memory (the engine
/// runs in linear time regardless). The same for every pattern, so a pattern compiled
/// once is the same regex for every filter.
const MAX_REGEX_BYTES: usize = 256 * 1024;

/// Above this many patterns remembered, the forgotten ones are swept out.
const SWEEP_FROM: usize = 1024;

struct Shared {
    by_pattern: HashMap<String, Weak<Regex>>,
    sweep_at: usize,
}

fn shared() -> &'static Mutex<Shared> {
    static SHARED: OnceLock<Mutex<Shared>> = OnceLock::new();
    SHARED.get_or_init(|| {
        Mutex::new(Shared {
            by_pattern: HashMap::new(),
            sweep_at: SWEEP_FROM,
        })
    })
}

/// `pattern` compiled (within [`MAX_REGEX_BYTES`]), shared with every other filter holding
/// the same pattern.
pub fn compiled(pattern: &str) -> Result<Arc<Regex>, regex::Error> {
    if let Some(re) = lock().by_pattern.get(pattern).and_then(Weak::upgrade) {
        return Ok(re);
    }
    // Compiled outside the lock: it may take a millisecond.
    let re = Arc::new(
        RegexBuilder::new(pattern)
            .size_limit(MAX_REGEX_BYTES)
            .build()?,
    );
    let mut shared = lock();
    // Another thread may have compiled it meanwhile: keep one.
    if let Some(kept) = shared.by_pattern.get(pattern).and_then(Weak::upgrade) {
        return Ok(kept);
    }
    shared
        .by_pattern
        .insert(pattern.to_owned(), Arc::downgrade(&re));
    if shared.by_pattern.len() >= shared.sweep_at {
        shared.by_pattern.retain(|_, re| re.strong_count() > 0);
        shared.sweep_at = (2 * shared.by_pattern.len()).max(SWEEP_FROM);
    }
    Ok(re)
}

/// The map whole even if a thread panicked holding it (each change is one map operation).
fn lock() -> std::sync::MutexGuard<'static, Shared> {
    shared().lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pattern_is_compiled_once_while_held() {
        let a = compiled("^shared-test-[0-9]+$").unwrap();
        let b = compiled("^shared-test-[0-9]+$").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(b.is_match("shared-test-42"));
        let other = compiled("^shared-test-[a-z]+$").unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
    }

    #[test]
    fn a_pattern_no_filter_holds_is_forgotten() {
        let weak = Arc::downgrade(&compiled("^forgotten-[0-9]$").unwrap());
        assert!(weak.upgrade().is_none(), "nothing else keeps it alive");
        // Enough others to sweep: the forgotten pattern's entry goes.
        let held: Vec<_> = (0..SWEEP_FROM)
            .map(|i| compiled(&format!("^sweep-{i}$")).unwrap())
            .collect();
        assert!(!lock().by_pattern.contains_key("^forgotten-[0-9]$"));
        drop(held);
    }

    #[test]
    fn a_bad_pattern_is_an_error() {
        assert!(compiled("(").is_err());
        assert!(compiled("a{1000}{1000}").is_err(), "over the size limit");
    }
}
