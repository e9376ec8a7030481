//! Backoff delays and the client-side request budget, shared by the Slack client and the HTTP sink.
//!
//! [`Backoff`] takes backon's exponential schedule (we use `backon`, not the unmaintained
//! `backoff` crate, RUSTSEC-2025-0012) and applies *full jitter* on top: each delay is drawn
//! uniformly from `[min, d]`, where `d` doubles from `min` up to `max`. backon's own jitter
//! adds up to `d` again, which is not full jitter; the floor at `min` keeps a storm of failures
//! from ever becoming a tight loop. `Backoff::reset` starts the schedule again after a success.
//!
//! `Budget` spaces requests evenly so that at most N go out in any minute.
//!
//! `parse_retry_after` reads a `Retry-After` header for both: it is peer input, so any
//! value parses without panic and the wait is capped by the caller's limit.

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use rand::Rng;
use std::time::Duration;
use tokio::time::Instant;

/// Exponential backoff with full jitter and a cap.
///
/// Schedule before jitter: `min, 2·min, 4·min, …, max, max, …` (never ends).
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    schedule: ExponentialBackoff,
    jitter: bool,
}

/// First retry delay for Slack and the sink.
pub(crate) const DEFAULT_MIN_DELAY: Duration = Duration::from_millis(500);
/// Longest retry delay: an outage is retried at least this often.
pub(crate) const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);

impl Backoff {
    /// A backoff from `min` doubling to `max`, with full jitter.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            schedule: Self::schedule(min, max),
            jitter: true,
        }
    }

    /// The same schedule without jitter: for tests of the schedule itself.
    #[cfg(test)]
    pub(crate) fn without_jitter(mut self) -> Backoff {
        self.jitter = false;
        self
    }

    fn schedule(min: Duration, max: Duration) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_factor(2.0)
            .without_max_times()
            .build()
    }

    /// Starts the schedule again from `min` (call after a success).
    pub(crate) fn reset(&mut self) {
        self.schedule = Self::schedule(self.min, self.max);
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(DEFAULT_MIN_DELAY, DEFAULT_MAX_DELAY)
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // backon's schedule is built without a limit, so it never ends; fall back to the cap
        // rather than trusting that forever.
        // Whole milliseconds: backon multiplies by an f32 factor and leaves residues.
        let d = self.schedule.next().unwrap_or(self.max).min(self.max);
        let d = Duration::from_millis(d.as_millis() as u64);
        if !self.jitter || d <= self.min {
            return Some(d);
        }
        let ms = rand::rng().random_range(self.min.as_millis()..=d.as_millis());
        Some(Duration::from_millis(ms as u64))
    }
}

/// Reads a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, leniently with a fraction
/// or an exponent, or an HTTP date. The wait is at most `cap`.
///
/// - garbage, a negative number or NaN: `None` (the caller uses its default wait);
/// - a number too large for a [`Duration`] (`1e20`, `18446744073709551616`) or `inf`: `cap`;
/// - a date in the past: zero; in the future: the time until it, at most `cap`.
pub(crate) fn parse_retry_after(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
    cap: Duration,
) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        // `Duration::from_secs_f64` panics past u64::MAX seconds; the fallible form does not.
        return Some(Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap)));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is RFC 2822 with the obsolete "GMT" zone.
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.with_timezone(&chrono::Utc).signed_duration_since(now);
    // A negative difference does not convert: the date is past, so wait nothing.
    Some(wait.to_std().map_or(Duration::ZERO, |d| d.min(cap)))
}

/// At most `per_minute` requests in any minute, evenly spaced (no bursts: Slack's budget is
/// shared by every app in the org, so we keep to our share smoothly).
#[derive(Debug)]
pub(crate) struct Budget {
    spacing: Duration,
    next: Option<Instant>,
}

impl Budget {
    /// A budget of `per_minute` requests (at least 1).
    pub(crate) fn per_minute(per_minute: u32) -> Budget {
        Budget {
            spacing: Duration::from_secs(60) / per_minute.max(1),
            next: None,
        }
    }

    /// How long the next request would have to wait now.
    #[cfg(test)]
    pub(crate) fn wait_time(&self) -> Duration {
        self.next
            .map(|n| n.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    /// Waits until a request may go out, and books it.
    pub(crate) async fn acquire(&mut self) {
        let now = Instant::now();
        let at = self.next.map_or(now, |n| n.max(now));
        tokio::time::sleep_until(at).await;
        self.next = Some(at + self.spacing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn schedule_doubles_to_the_cap_and_stays() {
        let b = Backoff::new(ms(500), ms(4000)).without_jitter();
        let got: Vec<Duration> = b.take(7).collect();
        assert_eq!(
            got,
            vec![
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(4000),
                ms(4000),
                ms(4000)
            ]
        );
    }

    #[test]
    fn reset_starts_again_from_min() {
        let mut b = Backoff::new(ms(100), ms(10_000)).without_jitter();
        b.next();
        b.next();
        assert_eq!(b.next(), Some(ms(400)));
        b.reset();
        assert_eq!(b.next(), Some(ms(100)));
    }

    #[test]
    fn full_jitter_stays_between_min_and_the_schedule() {
        let b = Backoff::new(ms(100), ms(1600));
        let schedule = [100, 200, 400, 800, 1600, 1600, 1600, 1600];
        for (d, cap) in b.take(8).zip(schedule) {
            assert!(
                d >= ms(100) && d <= ms(cap),
                "{d:?} outside [100ms, {cap}ms]"
            );
        }
        // Jitter really varies: 200 draws from [100, 1600] are not all equal.
        let mut b = Backoff::new(ms(100), ms(1600));
        for _ in 0..5 {
            b.next();
        }
        let draws: std::collections::HashSet<Duration> =
            (0..200).filter_map(|_| b.next()).collect();
        assert!(draws.len() > 10);
    }

    #[test]
    fn retry_after_of_any_size_is_capped_never_a_panic() {
        // Whole seconds, as HTTP dates are.
        let now = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap();
        let cap = Duration::from_secs(300);
        for huge in ["1e20", "18446744073709551616", "inf", "+Infinity", "1e308"] {
            assert_eq!(parse_retry_after(huge, now, cap), Some(cap), "{huge}");
        }
        assert_eq!(
            parse_retry_after(" 7 ", now, cap),
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse_retry_after("1.5", now, cap), Some(ms(1500)));
        for bad in ["", "soon", "-3", "-inf", "NaN", "1,5", "0x10"] {
            assert_eq!(parse_retry_after(bad, now, cap), None, "{bad:?}");
        }
        let past = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(parse_retry_after(past, now, cap), Some(Duration::ZERO));
        let soon = (now + chrono::Duration::seconds(120)).to_rfc2822();
        assert_eq!(
            parse_retry_after(&soon, now, cap),
            Some(Duration::from_secs(120))
        );
        let far = "Fri, 31 Dec 9999 23:59:59 GMT";
        assert_eq!(parse_retry_after(far, now, cap), Some(cap));
        assert_eq!(
            parse_retry_after("1e20", now, Duration::MAX),
            Some(Duration::MAX)
        );
    }

    proptest! {
        #[test]
        fn any_retry_after_parses_within_the_cap(
            v in prop_oneof![
                ".{0,40}",
                "[+-]?[0-9]{1,40}(\\.[0-9]{0,10})?([eE][+-]?[0-9]{1,4})?",
                proptest::num::f64::ANY.prop_map(|f| f.to_string()),
                proptest::num::u64::ANY.prop_map(|n| format!("{n}000000")),
            ],
            cap_secs in 0u64..100_000,
        ) {
            let cap = Duration::from_secs(cap_secs);
            if let Some(d) = parse_retry_after(&v, chrono::Utc::now(), cap) {
                prop_assert!(d <= cap, "{v:?} gave {d:?} over {cap:?}");
            }
            // Without a cap the sink's own clamp applies; the parse must still not panic.
            let _ = parse_retry_after(&v, chrono::Utc::now(), Duration::MAX);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn budget_spaces_requests_evenly() {
        let mut budget = Budget::per_minute(20);
        let start = Instant::now();
        for _ in 0..4 {
            budget.acquire().await;
        }
        // Three gaps of 3 s: the fourth request goes out 9 s after the first.
        assert_eq!(Instant::now() - start, Duration::from_secs(9));
        assert_eq!(budget.wait_time(), Duration::from_secs(3));
    }
}
