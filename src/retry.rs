//! Backoff delays and the client-side request budget, shared by the Slack client and the HTTP sink.
//!
//! [`Backoff`] takes backon's exponential schedule (we use `backon`, not the unmaintained
//! `backoff` crate, RUSTSEC-2025-0012) and applies *full jitter* on top: each delay is drawn
//! uniformly from `[min, d]`, where `d` doubles from `min` up to `max`. backon's own jitter
//! adds up to `d` again, which is not full jitter; the floor at `min` keeps a storm of failures
//! from ever becoming a tight loop. [`Backoff::reset`] starts the schedule again after a success.
//!
//! [`Budget`] spaces requests evenly so that at most N go out in any minute.

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
pub const DEFAULT_MIN_DELAY: Duration = Duration::from_millis(500);
/// Longest retry delay: an outage is retried at least this often.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);

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
    pub fn without_jitter(mut self) -> Backoff {
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
    pub fn reset(&mut self) {
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

/// At most `per_minute` requests in any minute, evenly spaced (no bursts: Slack's budget is
/// shared by every app in the org, so we keep to our share smoothly).
#[derive(Debug)]
pub struct Budget {
    spacing: Duration,
    next: Option<Instant>,
}

impl Budget {
    /// A budget of `per_minute` requests (at least 1).
    pub fn per_minute(per_minute: u32) -> Budget {
        Budget {
            spacing: Duration::from_secs(60) / per_minute.max(1),
            next: None,
        }
    }

    /// How long the next request would have to wait now.
    pub fn wait_time(&self) -> Duration {
        self.next
            .map(|n| n.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    /// Waits until a request may go out, and books it.
    pub async fn acquire(&mut self) {
        let now = Instant::now();
        let at = self.next.map_or(now, |n| n.max(now));
        tokio::time::sleep_until(at).await;
        self.next = Some(at + self.spacing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
