//! Every metric, described in one place, and the helpers the pipeline calls to record them.
//!
//! The pipeline never names a metric itself: it calls a helper here (`page_fetched`,
//! `page_delivered`, `retried`, …) once per request, page or batch, so names, labels and
//! descriptions live in one file and label sets stay bounded (see `labels`). The helpers also
//! feed `health::HEALTH`, which `/readyz` reads.
//!
//! Nothing is exported unless `--metrics-listen` is given: `server::start_for_run` installs
//! the Prometheus recorder and serves `/metrics`, `/healthz` and `/readyz` on one listener.
//! Without a recorder the `metrics` macros are no-ops, so the helpers cost next to nothing.
//! Tests build a recorder with [`recorder_builder`] and record into it locally.

pub mod health;
pub(crate) mod labels;
pub mod server;

use crate::units::ConfigError;
use metrics::{describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::time::Duration;

/// Default size at which a request-trace file is rotated: large enough for a few full pages
/// (a 9,999-entry page is a few MiB), small enough that five files stay well under 100 MiB.
pub(crate) const DEFAULT_TRACE_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// Observability flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ObservabilityArgs {
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9090).
    #[arg(long, env = "SLACK_AUDIT_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<String>,
    /// Write every Slack request and response to NDJSON files here (token redacted). The
    /// bodies hold audit data: enable only while debugging.
    #[arg(long, env = "SLACK_AUDIT_TRACE_REQUESTS")]
    pub(crate) trace_requests: Option<std::path::PathBuf>,
    /// Rotate a request-trace file at this size (e.g. 10MiB, 512KiB); at most five files are kept.
    #[arg(long, env = "SLACK_AUDIT_TRACE_MAX_BYTES")]
    pub(crate) trace_max_bytes: Option<String>,
    /// While a backfill is behind and stderr is not a terminal, log its progress this often
    /// (on a terminal a progress line is redrawn every second instead).
    #[arg(long, env = "SLACK_AUDIT_PROGRESS_INTERVAL")]
    pub(crate) progress_interval: Option<String>,
}

/// Validated observability options.
#[derive(Debug, Clone)]
pub(crate) struct ObservabilityConfig {
    /// The listener address.
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
    /// The tracer directory.
    pub(crate) trace_requests: Option<std::path::PathBuf>,
    /// Size at which the tracer rotates its file.
    pub(crate) trace_max_bytes: u64,
    /// Period of the progress log line when stderr is not a terminal.
    pub(crate) progress_interval: Duration,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig {
            metrics_listen: None,
            trace_requests: None,
            trace_max_bytes: DEFAULT_TRACE_MAX_BYTES,
            progress_interval: crate::progress::DEFAULT_LOG_EVERY,
        }
    }
}

impl ObservabilityConfig {
    /// Validates the flags.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the flag.
    pub(crate) fn from_args(args: &ObservabilityArgs) -> Result<ObservabilityConfig, ConfigError> {
        let trace_max_bytes = match args.trace_max_bytes.as_deref() {
            None => DEFAULT_TRACE_MAX_BYTES,
            Some(v) => crate::units::parse_size("trace-max-bytes", v)?,
        };
        Ok(ObservabilityConfig {
            metrics_listen: args
                .metrics_listen
                .as_deref()
                .map(|v| crate::units::parse_listen("metrics-listen", v))
                .transpose()?,
            trace_requests: args.trace_requests.clone(),
            trace_max_bytes,
            progress_interval: match args.progress_interval.as_deref() {
                None => crate::progress::DEFAULT_LOG_EVERY,
                Some(v) => {
                    let d = crate::units::parse_duration("progress-interval", v)?;
                    if d < Duration::from_secs(1) {
                        return Err(ConfigError::Invalid {
                            flag: "progress-interval",
                            message: format!("{v} is below 1s"),
                        });
                    }
                    d
                }
            },
        })
    }
}

/// Upper bounds of the latency histograms, in seconds: Slack answers in tens of milliseconds
/// to a few seconds; a sink batch can wait out retries for much longer.
const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A Prometheus recorder builder with this crate's histogram buckets (without them the
/// exporter renders summaries, which cannot be aggregated across restarts).
pub fn recorder_builder() -> PrometheusBuilder {
    let mut builder = PrometheusBuilder::new();
    for name in [
        "slack_source_request_duration_seconds",
        "slack_source_sink_batch_duration_seconds",
        "slack_source_sink_request_duration_seconds",
    ] {
        builder = match builder.set_buckets_for_metric(Matcher::Full(name.into()), LATENCY_BUCKETS)
        {
            Ok(b) => b,
            // Only an empty bucket list is refused, and LATENCY_BUCKETS is not empty.
            Err(_) => PrometheusBuilder::new(),
        };
    }
    builder
}

/// The kind of a metric, for its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution of durations.
    Histogram,
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric the binary exports: name, kind and the help text `/metrics` shows. One table,
/// so a new metric cannot be exported without a description.
pub(crate) const METRICS: &[(&str, Kind, &str)] = &[
    ("slack_source_requests_total", Counter,
     "Requests sent to the Slack Audit Logs API, by HTTP status or error kind."),
    ("slack_source_request_duration_seconds", Histogram,
     "Time from sending a Slack request to reading the whole answer."),
    ("slack_source_rate_limit_waits_total", Counter,
     "Times Slack answered 429 and we waited for Retry-After."),
    ("slack_source_rate_limit_wait_seconds_total", Counter,
     "Seconds spent waiting for Slack's Retry-After, rounded up."),
    ("slack_source_retries_total", Counter,
     "Requests retried after a transient error, by stage (slack, sink) and error kind."),
    ("slack_source_pages_total", Counter,
     "Pages of audit entries received from Slack (empty pages included)."),
    ("slack_source_events_received_total", Counter,
     "Audit entries received from Slack, before duplicates are dropped."),
    ("slack_source_events_emitted_total", Counter,
     "Documents delivered to the sink, by event.action (known actions or other) and event.kind."),
    ("slack_source_pipeline_errors_total", Counter,
     "Delivered documents with event.kind pipeline_error: entries that could not be mapped."),
    ("slack_source_anomalies_total", Counter,
     "Slack anomaly events delivered, by details.reason (documented reasons or other); one event can count under several reasons."),
    ("slack_source_sink_batches_total", Counter,
     "Batches the sink accepted."),
    ("slack_source_sink_errors_total", Counter,
     "Failed sink delivery attempts, by error kind (retried ones included)."),
    ("slack_source_sink_batch_duration_seconds", Histogram,
     "Time to deliver one batch to the sink, retries included."),
    ("slack_source_sink_requests_total", Counter,
     "HTTP requests to the shipper, by outcome: delivered; retried (http_429, http_408, http_5xx, connect, timeout, transport); or given up (rejected, certificate, interrupted)."),
    ("slack_source_sink_request_duration_seconds", Histogram,
     "Time of one HTTP request to the shipper, until its answer."),
    ("slack_source_sink_events_sent_total", Counter,
     "Documents the HTTP receiver acknowledged with a 2xx."),
    ("slack_source_sink_bytes_sent_total", Counter,
     "Bytes (before compression) the HTTP receiver acknowledged."),
    ("slack_source_sink_ambiguous_resends_total", Counter,
     "HTTP requests sent again after a timeout or broken connection: the receiver may have them twice (harmless with event.id as document id)."),
    ("slack_source_sink_ambiguous_resent_events_total", Counter,
     "Documents in those ambiguous resends."),
    ("slack_source_sink_receiver_up", Gauge,
     "1 when the HTTP receiver acknowledged the last request, 0 while it is down (polling pauses)."),
    ("slack_source_checkpoint_lag_seconds", Gauge,
     "Seconds between the last checkpoint and the start of the window being read."),
    ("slack_source_backfill_progress_ratio", Gauge,
     "How far the reader has come down the window being read, newest first: 0 at its start, 1 once it is done."),
    ("slack_source_findings_total", Counter,
     "Findings delivered, by rule id and severity."),
    ("slack_source_last_successful_poll_timestamp_seconds", Gauge,
     "Unix time at which the last poll caught up with Slack."),
    ("slack_source_protocol_violations_total", Counter,
     "Slack answers that broke the Audit Logs protocol, by kind: cursor_not_a_string, cursor_repeated, no_progress, invalid_cursor_loop, cursor_back_in_time, entry_outside_window."),
    ("slack_source_slack_consecutive_failures", Gauge,
     "Failed Slack requests in a row (0 after a success); --once gives up at 8, the daemon keeps retrying."),
    ("slack_source_errors_total", Counter,
     "Errors that stopped or redirected the pipeline, by stage and kind."),
    ("slack_source_responses_total", Counter,
     "Response documents delivered (--respond), by action (session_invalidate, session_reset), outcome (success, failure, unknown: not called) and mode (plan, enforce)."),
    ("slack_source_responses_failing", Gauge,
     "1 while the last enforced response failed (Slack answered an error), 0 after one succeeds; /readyz says so too. Audit delivery goes on either way."),
    ("slack_source_build_info", Gauge,
     "Always 1; the version label says which build runs."),
];

/// Unlabelled counters that start at 0 in the first scrape, so `increase()` and absence alerts
/// work from the start instead of after the first event.
const ZERO_AT_START: &[&str] = &[
    "slack_source_rate_limit_waits_total",
    "slack_source_rate_limit_wait_seconds_total",
    "slack_source_pages_total",
    "slack_source_events_received_total",
    "slack_source_pipeline_errors_total",
    "slack_source_sink_batches_total",
];

/// Describes every metric to the current recorder. Call once after installing it.
pub fn describe() {
    for &(name, kind, help) in METRICS {
        match kind {
            Counter => describe_counter!(name, help),
            Gauge => describe_gauge!(name, help),
            Histogram => describe_histogram!(name, help),
        }
    }
    metrics::gauge!("slack_source_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for &name in ZERO_AT_START {
        metrics::counter!(name).increment(0);
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// One request to Slack finished with `status` (a code, or an error kind).
pub(crate) fn slack_request(status: &str, elapsed: Duration) {
    metrics::counter!("slack_source_requests_total", "status" => labels::status(status))
        .increment(1);
    metrics::histogram!("slack_source_request_duration_seconds").record(elapsed.as_secs_f64());
}

/// Slack asked us to wait.
pub(crate) fn rate_limited(wait: Duration) {
    metrics::counter!("slack_source_rate_limit_waits_total").increment(1);
    // Rounded up, so that sub-second waits still show in the total.
    metrics::counter!("slack_source_rate_limit_wait_seconds_total")
        .increment(wait.as_secs_f64().ceil() as u64);
    health::HEALTH.rate_limited(unix_now(), wait);
}

/// A request (to Slack or the sink) is being retried after an error of `kind`.
pub(crate) fn retried(stage: &'static str, kind: &'static str) {
    metrics::counter!("slack_source_retries_total", "stage" => stage, "kind" => kind).increment(1);
    if stage == "sink" {
        metrics::counter!("slack_source_sink_errors_total", "kind" => kind).increment(1);
        health::HEALTH.sink_failed(kind);
    }
}

/// A page of `entries` arrived.
pub(crate) fn page_fetched(entries: usize) {
    metrics::counter!("slack_source_pages_total").increment(1);
    metrics::counter!("slack_source_events_received_total").increment(entries as u64);
}

/// A page's documents were delivered: counts them by action and kind, pipeline errors, and
/// anomaly reasons, with one counter update per label per page.
#[cfg(test)]
pub(crate) fn page_delivered(docs: &[serde_json::Value]) {
    page_delivered_tally(&labels::Tally::of(docs));
}

/// As [`page_delivered`], from counts gathered while the page was written.
pub(crate) fn page_delivered_tally(tally: &labels::Tally) {
    for (action, kind, n) in tally.emitted() {
        metrics::counter!("slack_source_events_emitted_total", "action" => action, "kind" => kind)
            .increment(n);
    }
    if tally.pipeline_errors > 0 {
        metrics::counter!("slack_source_pipeline_errors_total").increment(tally.pipeline_errors);
    }
    for (reason, n) in tally.reasons() {
        metrics::counter!("slack_source_anomalies_total", "reason" => reason).increment(n);
    }
    for (rule, severity, n) in tally.findings() {
        metrics::counter!("slack_source_findings_total", "rule" => rule.to_string(), "severity" => severity)
            .increment(n);
    }
    // Slack answered and the sink took the page: that is progress, even mid-backfill.
    health::HEALTH.page_delivered(unix_now());
}

/// The sink accepted a batch of `events` documents after `elapsed` (retries included).
pub(crate) fn sink_batch(events: usize, elapsed: Duration) {
    if events == 0 {
        // Nothing was sent: an empty page never reaches the shipper.
        return;
    }
    metrics::counter!("slack_source_sink_batches_total").increment(1);
    metrics::histogram!("slack_source_sink_batch_duration_seconds").record(elapsed.as_secs_f64());
    health::HEALTH.sink_accepted();
}

/// The checkpoint was saved; `window_oldest` is the start of the window being read and
/// `progress` how far the reader has come down it (0 to 1, 1 once the window is done).
pub(crate) fn checkpoint_saved(window_oldest: i64, progress: f64) {
    let lag = unix_now() - window_oldest;
    metrics::gauge!("slack_source_checkpoint_lag_seconds").set(lag.max(0) as f64);
    metrics::gauge!("slack_source_backfill_progress_ratio").set(progress);
}

/// A poll (a chain, or the catch-up) completed.
pub(crate) fn poll_succeeded() {
    let now = unix_now();
    metrics::gauge!("slack_source_last_successful_poll_timestamp_seconds").set(now as f64);
    health::HEALTH.poll_succeeded(now);
}

/// Slack broke the protocol in a way labelled `kind` (a bounded set, see `describe`).
pub(crate) fn protocol_violation(kind: &'static str) {
    metrics::counter!("slack_source_protocol_violations_total", "kind" => kind).increment(1);
}

/// `n` Slack requests in a row have failed (0: the last one succeeded).
pub(crate) fn slack_failing(n: u32) {
    metrics::gauge!("slack_source_slack_consecutive_failures").set(f64::from(n));
}

/// A response document was delivered: `action`, `outcome` and `mode` are bounded names.
pub(crate) fn response_reported(action: &'static str, outcome: &'static str, mode: &'static str) {
    metrics::counter!("slack_source_responses_total", "action" => action, "outcome" => outcome, "mode" => mode).increment(1);
}

/// An enforced response ended: `ok`, or Slack's error code (kept out of the labels: it is
/// Slack's text, unbounded; `/readyz` shows it).
pub(crate) fn response_enforced(ok: bool, error: Option<&str>) {
    metrics::gauge!("slack_source_responses_failing").set(if ok { 0.0 } else { 1.0 });
    health::HEALTH.response_outcome(error.filter(|_| !ok));
}

/// Something went wrong in `stage`.
pub(crate) fn error(stage: &'static str, kind: &'static str) {
    metrics::counter!("slack_source_errors_total", "stage" => stage, "kind" => kind).increment(1);
    if stage == "sink" {
        metrics::counter!("slack_source_sink_errors_total", "kind" => kind).increment(1);
        health::HEALTH.sink_failed(kind);
    }
}

/// One HTTP request to the shipper ended with `outcome` (`delivered`, a retried failure such as `http_5xx`, or `rejected`...).
pub(crate) fn sink_request(outcome: &'static str, events: usize, bytes: usize, elapsed: Duration) {
    metrics::counter!("slack_source_sink_requests_total", "outcome" => outcome).increment(1);
    metrics::histogram!("slack_source_sink_request_duration_seconds").record(elapsed.as_secs_f64());
    if outcome == "delivered" {
        metrics::counter!("slack_source_sink_events_sent_total").increment(events as u64);
        metrics::counter!("slack_source_sink_bytes_sent_total").increment(bytes as u64);
    }
}

/// A request the receiver may already have taken (after a timeout or a broken connection) is
/// being sent again: the documented at-least-once edge, made harmless by `event.id`.
pub(crate) fn sink_ambiguous_resend(events: usize) {
    metrics::counter!("slack_source_sink_ambiguous_resends_total").increment(1);
    metrics::counter!("slack_source_sink_ambiguous_resent_events_total").increment(events as u64);
}

/// Whether the HTTP receiver acknowledged the last request (1) or not (0). A down receiver
/// pauses polling (backpressure) but does not make the process unhealthy.
pub(crate) fn sink_receiver_up(up: bool) {
    metrics::gauge!("slack_source_sink_receiver_up").set(if up { 1.0 } else { 0.0 });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(f: impl FnOnce()) -> String {
        let recorder = recorder_builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            f();
        });
        handle.render()
    }

    #[test]
    fn page_delivered_counts_by_bounded_labels_once_per_page() {
        let docs = vec![
            json!({"event": {"action": "user_login", "kind": "event"}}),
            json!({"event": {"action": "user_login", "kind": "event"}}),
            json!({"event": {"action": "some_brand_new_action", "kind": "event"}}),
            json!({"event": {"kind": "pipeline_error"}}),
            json!({"event": {"action": "anomaly", "kind": "event"}, "slack": {"audit": {"details": {"reason": ["asn", "ip_address", "made_up"]}}}}),
            json!({"event": {"action": "anomaly_correlation", "kind": "alert"}, "rule": {"id": "scraping"}, "slack": {"audit": {"analysis": {"severity": "high"}}}}),
        ];
        let text = render(|| page_delivered(&docs));
        assert!(
            text.contains(r#"slack_source_findings_total{rule="scraping",severity="high"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"slack_source_events_emitted_total{action="user_login",kind="event"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"slack_source_events_emitted_total{action="other",kind="event"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"slack_source_events_emitted_total{action="other",kind="pipeline_error"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("slack_source_pipeline_errors_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"slack_source_anomalies_total{reason="asn"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"slack_source_anomalies_total{reason="other"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn every_helper_records_a_described_metric() {
        let text = render(|| {
            slack_request("200", Duration::from_millis(30));
            rate_limited(Duration::from_millis(300));
            retried("slack", "server_error");
            page_fetched(3);
            sink_batch(3, Duration::from_millis(5));
            checkpoint_saved(0, 0.25);
            poll_succeeded();
            error("slack", "invalid_cursor");
        });
        for name in [
            "slack_source_requests_total",
            "slack_source_request_duration_seconds_bucket",
            "slack_source_rate_limit_wait_seconds_total 1",
            "slack_source_retries_total",
            "slack_source_pages_total 1",
            "slack_source_events_received_total 3",
            "slack_source_sink_batches_total 1",
            "slack_source_checkpoint_lag_seconds",
            "slack_source_backfill_progress_ratio 0.25",
            "slack_source_last_successful_poll_timestamp_seconds",
            "slack_source_errors_total",
            "# HELP slack_source_requests_total",
            "# HELP slack_source_backfill_progress_ratio",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }

    #[test]
    fn the_table_describes_each_metric_once() {
        let mut names = std::collections::BTreeSet::new();
        for &(name, _, help) in METRICS {
            assert!(names.insert(name), "{name} described twice");
            assert!(name.starts_with("slack_source_"), "{name}");
            assert!(
                help.ends_with('.') && !help.contains('\n'),
                "{name}: {help:?}"
            );
        }
        assert_eq!(METRICS.len(), 30);
        for &name in ZERO_AT_START {
            assert!(
                METRICS.iter().any(|&(n, k, _)| n == name && k == Counter),
                "{name} starts at 0, so it is a described counter"
            );
        }
    }

    #[test]
    fn trace_max_bytes_defaults_and_parses() {
        let c = ObservabilityConfig::from_args(&ObservabilityArgs::default()).unwrap();
        assert_eq!(c.trace_max_bytes, DEFAULT_TRACE_MAX_BYTES);
        let args = ObservabilityArgs {
            trace_max_bytes: Some("512KiB".into()),
            ..Default::default()
        };
        assert_eq!(
            ObservabilityConfig::from_args(&args)
                .unwrap()
                .trace_max_bytes,
            512 * 1024
        );
    }
}
