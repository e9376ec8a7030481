//! Every metric, described in one place, and the helpers the pipeline calls to record them.
//!
//! STUB (issue 5): the recording helpers exist so the pipeline calls them from day one; the
//! Prometheus listener, `/healthz` and `/readyz` come with issue 5.

use crate::config::ConfigError;
use std::time::Duration;

/// Observability flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ObservabilityArgs {
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9090).
    #[arg(long, env = "SLACK_AUDIT_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Write every Slack request and response to NDJSON files here (token redacted).
    #[arg(long, env = "SLACK_AUDIT_TRACE_REQUESTS")]
    pub trace_requests: Option<std::path::PathBuf>,
}

/// Validated observability options.
#[derive(Debug, Clone, Default)]
pub struct ObservabilityConfig {
    /// The listener address.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The tracer directory.
    pub trace_requests: Option<std::path::PathBuf>,
}

impl ObservabilityConfig {
    /// Validates the flags.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the flag.
    pub fn from_args(args: &ObservabilityArgs) -> Result<ObservabilityConfig, ConfigError> {
        Ok(ObservabilityConfig {
            metrics_listen: args.metrics_listen.as_deref().map(|v| crate::config::parse_listen("metrics-listen", v)).transpose()?,
            trace_requests: args.trace_requests.clone(),
        })
    }
}

/// One request to Slack finished with `status` (a code, or an error kind).
pub fn slack_request(status: &str, elapsed: Duration) {
    metrics::counter!("slack_source_requests_total", "status" => status.to_string()).increment(1);
    metrics::histogram!("slack_source_request_duration_seconds").record(elapsed.as_secs_f64());
}

/// Slack asked us to wait.
pub fn rate_limited(wait: Duration) {
    metrics::counter!("slack_source_rate_limit_waits_total").increment(1);
    metrics::counter!("slack_source_rate_limit_wait_seconds_total").increment(wait.as_secs());
}

/// A request (to Slack or the sink) is being retried after an error of `kind`.
pub fn retried(stage: &'static str, kind: &'static str) {
    metrics::counter!("slack_source_retries_total", "stage" => stage, "kind" => kind).increment(1);
}

/// A page of `entries` arrived.
pub fn page_fetched(entries: usize) {
    metrics::counter!("slack_source_pages_total").increment(1);
    metrics::counter!("slack_source_events_received_total").increment(entries as u64);
}

/// A page's documents were delivered.
pub fn page_delivered(docs: &[serde_json::Value]) {
    metrics::counter!("slack_source_events_emitted_total").increment(docs.len() as u64);
}

/// The checkpoint was saved; `window_oldest` is the start of the window being read.
pub fn checkpoint_saved(window_oldest: i64) {
    let lag = chrono::Utc::now().timestamp() - window_oldest;
    metrics::gauge!("slack_source_checkpoint_lag_seconds").set(lag.max(0) as f64);
}

/// A poll (a chain, or the catch-up) completed.
pub fn poll_succeeded() {
    metrics::gauge!("slack_source_last_successful_poll_timestamp_seconds").set(chrono::Utc::now().timestamp() as f64);
}

/// Something went wrong in `stage`.
pub fn error(stage: &'static str, kind: &'static str) {
    metrics::counter!("slack_source_errors_total", "stage" => stage, "kind" => kind).increment(1);
}

/// One request to the HTTP receiver ended with `outcome` (`delivered`, `rejected`,
/// `interrupted`, or a retried kind such as `http_5xx`, `timeout`, `connect`), carrying
/// `events` documents and `bytes` of NDJSON before compression.
pub fn sink_batch(outcome: &'static str, events: usize, bytes: usize, elapsed: Duration) {
    metrics::counter!("slack_source_sink_requests_total", "outcome" => outcome).increment(1);
    metrics::histogram!("slack_source_sink_request_duration_seconds").record(elapsed.as_secs_f64());
    if outcome == "delivered" {
        metrics::counter!("slack_source_sink_events_sent_total").increment(events as u64);
        metrics::counter!("slack_source_sink_bytes_sent_total").increment(bytes as u64);
    }
}

/// A request the receiver may already have taken (after a timeout or a broken connection) is
/// being sent again: the documented at-least-once edge, made harmless by `event.id`.
pub fn sink_ambiguous_resend(events: usize) {
    metrics::counter!("slack_source_sink_ambiguous_resends_total").increment(1);
    metrics::counter!("slack_source_sink_ambiguous_resent_events_total").increment(events as u64);
}

/// Whether the HTTP receiver acknowledged the last request (1) or not (0). A down receiver
/// pauses polling (backpressure) but does not make the process unhealthy.
pub fn sink_receiver_up(up: bool) {
    metrics::gauge!("slack_source_sink_receiver_up").set(if up { 1.0 } else { 0.0 });
}
