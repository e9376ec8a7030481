//! What `/readyz` answers: has the pipeline made progress recently, and does the sink accept?
//!
//! The recording helpers in [`crate::metrics`] update the process-wide `HEALTH`; the server
//! reads it with a clock it is given, so tests judge staleness with an injected time instead
//! of sleeping. Lock-free atomics for the timestamps: they are written once per page.
//!
//! Progress means a caught-up poll or a delivered page (a long backfill never "catches up"
//! for hours, yet it is healthy). A 429 is Slack answering, so its `Retry-After` wait is
//! excused: it counts as progress until the wait ends. Empty windows deliver empty pages
//! and count too.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The health the running pipeline reports.
pub(crate) static HEALTH: Health = Health::new();

/// Progress and sink state, shared between the pipeline and the health endpoints.
#[derive(Debug)]
pub struct Health {
    /// Unix seconds of the last poll or page that succeeded; 0 means never.
    last_ok: AtomicI64,
    /// Unix seconds until which a rate-limit wait excuses the lack of progress.
    excused_until: AtomicI64,
    /// False while the sink is refusing batches.
    sink_ok: AtomicBool,
    /// Why the sink last failed (a bounded error kind).
    sink_error: Mutex<&'static str>,
    /// Slack's error for the last enforced response, while responses are failing.
    response_error: Mutex<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// Nothing has happened yet: not ready.
    pub const fn new() -> Health {
        Health {
            last_ok: AtomicI64::new(0),
            excused_until: AtomicI64::new(0),
            sink_ok: AtomicBool::new(true),
            sink_error: Mutex::new(""),
            response_error: Mutex::new(None),
        }
    }

    /// A poll caught up at `now`.
    pub fn poll_succeeded(&self, now: i64) {
        self.last_ok.fetch_max(now, Ordering::Relaxed);
    }

    /// A page was delivered at `now` (the sink accepted it, or it was empty).
    pub(crate) fn page_delivered(&self, now: i64) {
        self.last_ok.fetch_max(now, Ordering::Relaxed);
        self.sink_accepted();
    }

    /// Slack asked for a pause of `wait` at `now`.
    pub fn rate_limited(&self, now: i64, wait: Duration) {
        let until = now.saturating_add(wait.as_secs_f64().ceil() as i64);
        self.excused_until.fetch_max(until, Ordering::Relaxed);
        // Slack did answer: credentials and network work, so this counts as contact.
        self.last_ok.fetch_max(now, Ordering::Relaxed);
    }

    /// The sink acknowledged a batch.
    pub(crate) fn sink_accepted(&self) {
        self.sink_ok.store(true, Ordering::Relaxed);
    }

    /// The sink refused or failed a batch with an error of `kind`.
    pub fn sink_failed(&self, kind: &'static str) {
        *self.sink_error.lock().unwrap_or_else(|p| p.into_inner()) = kind;
        self.sink_ok.store(false, Ordering::Relaxed);
    }

    /// The last enforced response failed with Slack's `error` (bounded by the caller), or
    /// succeeded (`None`).
    pub(crate) fn response_outcome(&self, error: Option<&str>) {
        *self
            .response_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = error.map(str::to_string);
    }

    /// Ready at `now` if progress is at most `stale_after` old (or excused) and the sink is
    /// accepting.
    ///
    /// # Errors
    ///
    /// A short reason, served as the 503 body.
    pub(crate) fn readiness(&self, now: i64, stale_after: Duration) -> Result<(), String> {
        if !self.sink_ok.load(Ordering::Relaxed) {
            let kind = *self.sink_error.lock().unwrap_or_else(|p| p.into_inner());
            return Err(format!("the sink is refusing batches ({kind})"));
        }
        // Audit delivery goes on while responses fail; readiness says so, so that someone
        // looks (a missing scope or a revoked admin token does not fix itself).
        if let Some(e) = &*self
            .response_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            return Err(format!("responses are failing: Slack answered {e} to the last enforced action (see docs/response.md); audit events are still delivered"));
        }
        let last = self.last_ok.load(Ordering::Relaxed);
        if last == 0 {
            return Err("no successful poll yet".into());
        }
        let age = now.saturating_sub(last);
        let limit = stale_after.as_secs() as i64;
        if age > limit && now > self.excused_until.load(Ordering::Relaxed) {
            return Err(format!(
                "last successful poll {age}s ago (more than {limit}s)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: Duration = Duration::from_secs(180);

    #[test]
    fn not_ready_before_any_poll() {
        let h = Health::new();
        assert_eq!(
            h.readiness(1_000, STALE).unwrap_err(),
            "no successful poll yet"
        );
    }

    #[test]
    fn ready_after_a_poll_until_it_is_stale() {
        let h = Health::new();
        h.poll_succeeded(1_000);
        assert!(h.readiness(1_180, STALE).is_ok());
        assert!(h.readiness(1_181, STALE).unwrap_err().contains("181s ago"));
    }

    #[test]
    fn a_rate_limit_wait_is_healthy_until_it_ends() {
        let h = Health::new();
        h.poll_succeeded(1_000);
        h.rate_limited(1_170, Duration::from_secs(600));
        assert!(h.readiness(1_700, STALE).is_ok());
        assert!(h.readiness(1_771, STALE).is_err());
    }

    #[test]
    fn a_failing_sink_is_not_ready_until_it_accepts_again() {
        let h = Health::new();
        h.page_delivered(1_000);
        h.sink_failed("server_error");
        assert!(h
            .readiness(1_001, STALE)
            .unwrap_err()
            .contains("server_error"));
        h.sink_accepted();
        assert!(h.readiness(1_001, STALE).is_ok());
    }

    #[test]
    fn failing_responses_are_not_ready_until_one_succeeds() {
        let h = Health::new();
        h.page_delivered(1_000);
        h.response_outcome(Some("missing_scope"));
        let e = h.readiness(1_001, STALE).unwrap_err();
        assert!(
            e.contains("responses are failing") && e.contains("missing_scope"),
            "{e}"
        );
        h.response_outcome(None);
        assert!(h.readiness(1_001, STALE).is_ok());
    }
}
