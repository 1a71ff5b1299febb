//! When to try again: a pure function of the schedule, the attempt number, a random jitter
//! and the receiver's `Retry-After`.

use std::time::Duration;

/// Jitter spreads retries of many deliveries that failed together (±20 %).
pub const JITTER: f64 = 0.2;
/// A receiver may ask for a longer wait, but not for more than this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wait before retry number `retry` (1 for the first retry). `jitter` is a random
/// number in [-1, 1]; the schedule's last entry repeats.
pub fn retry_delay(
    schedule: &[Duration],
    retry: u32,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let base = schedule
        .get((retry.max(1) - 1) as usize)
        .or(schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(60));
    let factor = 1.0 + JITTER * jitter.clamp(-1.0, 1.0);
    let jittered = base.mul_f64(factor);
    match retry_after {
        Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
        None => jittered,
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    RetryIn(Duration),
    GiveUp,
}

/// `attempts` counts the attempt just made; at most `max_retry + 1` attempts are made.
pub fn verdict(
    succeeded: bool,
    retryable: bool,
    attempts: u32,
    max_retry: u8,
    delay: impl FnOnce(u32) -> Duration,
) -> Verdict {
    if succeeded {
        Verdict::Delivered
    } else if !retryable || attempts > max_retry as u32 {
        Verdict::GiveUp
    } else {
        Verdict::RetryIn(delay(attempts))
    }
}

/// `Retry-After` as seconds or an HTTP date, relative to `now` (Unix seconds).
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let date = time::PrimitiveDateTime::parse(value, &format).ok()?;
    let at = date.assume_utc().unix_timestamp();
    Some(Duration::from_secs(
        at.saturating_sub(now_unix).max(0) as u64
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn schedule_is_followed_and_its_last_entry_repeats() {
        let schedule = [s(10), s(60), s(300)];
        assert_eq!(retry_delay(&schedule, 1, 0.0, None), s(10));
        assert_eq!(retry_delay(&schedule, 3, 0.0, None), s(300));
        assert_eq!(retry_delay(&schedule, 9, 0.0, None), s(300));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let schedule = [s(100)];
        for i in 0..=200 {
            let j = i as f64 / 100.0 - 1.0;
            let d = retry_delay(&schedule, 1, j, None);
            assert!(d >= s(80) && d <= s(120), "{j}: {d:?}");
        }
        assert_eq!(
            retry_delay(&schedule, 1, 5.0, None),
            s(120),
            "out-of-range jitter is clamped"
        );
    }

    #[test]
    fn retry_after_lengthens_but_never_shortens_and_is_capped() {
        let schedule = [s(10)];
        assert_eq!(retry_delay(&schedule, 1, 0.0, Some(s(30))), s(30));
        assert_eq!(retry_delay(&schedule, 1, 0.0, Some(s(2))), s(10));
        assert_eq!(
            retry_delay(&schedule, 1, 0.0, Some(s(86_400))),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn attempts_stop_after_max_retry_plus_one() {
        let d = |_| s(1);
        assert_eq!(verdict(true, true, 1, 3, d), Verdict::Delivered);
        assert_eq!(verdict(false, true, 1, 3, d), Verdict::RetryIn(s(1)));
        assert_eq!(verdict(false, true, 3, 3, d), Verdict::RetryIn(s(1)));
        assert_eq!(verdict(false, true, 4, 3, d), Verdict::GiveUp);
        assert_eq!(verdict(false, true, 1, 0, d), Verdict::GiveUp);
        assert_eq!(
            verdict(false, false, 1, 3, d),
            Verdict::GiveUp,
            "not retryable"
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("2", 0), Some(s(2)));
        // Sun, 06 Nov 1994 08:49:37 GMT is 784111777.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_767),
            Some(s(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_800),
            Some(s(0))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }

    #[test]
    fn property_delay_is_bounded_for_any_input() {
        // A deterministic sweep over many combinations instead of a random property tester.
        let schedule = [s(10), s(60), s(300), s(900), s(1800), s(3600)];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let retry = (seed % 20) as u32 + 1;
            let jitter = ((seed >> 8) % 2001) as f64 / 1000.0 - 1.0;
            let after = ((seed >> 20) % 3).eq(&0).then(|| s((seed >> 24) % 10_000));
            let base = schedule[(retry as usize - 1).min(schedule.len() - 1)];
            let d = retry_delay(&schedule, retry, jitter, after);
            assert!(
                d >= base.mul_f64(0.8),
                "never much shorter than the schedule"
            );
            let upper = base.mul_f64(1.2).max(MAX_RETRY_AFTER);
            assert!(d <= upper, "never longer than the schedule or the cap");
            if let Some(a) = after {
                assert!(d >= a.min(MAX_RETRY_AFTER), "Retry-After honoured");
            }
        }
    }
}
