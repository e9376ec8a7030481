//! Observability: metrics recorded by a real pipeline run, the health endpoints on their
//! listener, and the request tracer's redaction and rotation.
//!
//! Metrics are read from a recorder built here and installed for this thread only
//! (`metrics::with_local_recorder`), so parallel tests in this binary never share counters.
//! Health is judged with an injected clock instead of sleeping.

use secrecy::SecretString;
use slack_audit_source::config::Filters;
use slack_audit_source::metrics::health::Health;
use slack_audit_source::metrics::server::{self, Endpoints};
use slack_audit_source::shutdown::Shutdown;
use slack_audit_source::simulate::Reply;
use slack_audit_source::slack::client::{ClientConfig, Query, SlackClient, TokenSource};
use slack_audit_source::trace::{Tracer, MAX_FILES, TRACE_FILE};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The token the tests send; it must never reach a trace file.
const TOKEN: &str = "xoxp-1234-secret-test-token";

/// The simulator answering every request with `body`, and with the test's token in two
/// response headers (as a misbehaving proxy echoing the request's `Authorization` might), so
/// redaction of response headers is exercised.
async fn slack_serving(body: &str) -> slack_audit_source::simulate::SimHandle {
    let sim = crate::support::slack().await;
    let bearer = format!("Bearer {TOKEN}");
    sim.always(
        Reply::ok(body)
            .with_header("authorization", &bearer)
            .with_header("x-echo", &bearer),
    );
    sim
}

/// One page: a login, an anomaly with two documented reasons and one unknown, and an entry
/// that is not an object (a pipeline error).
fn page_body(now: i64) -> String {
    serde_json::json!({
        "entries": [
            {"id": "e1", "date_create": now - 60, "action": "user_login"},
            {"id": "e2", "date_create": now - 61, "action": "anomaly", "details": {"reason": ["tor", "asn", "not_a_reason"]}},
            "not an entry",
        ],
        "response_metadata": {"next_cursor": ""},
    })
    .to_string()
}

/// The metrics text after a `run --once` with `extra` flags against the simulator serving
/// [`page_body`].
fn scrape_after_run(extra: &[&str]) -> String {
    let recorder = slack_audit_source::metrics::recorder_builder().build_recorder();
    let handle = recorder.handle();
    let state = tempfile::tempdir().unwrap();
    // A current-thread runtime keeps every task on this thread, where the local recorder is.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        slack_audit_source::metrics::describe();
        rt.block_on(async {
            let api = slack_serving(&page_body(chrono::Utc::now().timestamp())).await;
            let mut flags = vec!["--initial-lookback", "5m", "--limit", "9999"];
            flags.extend_from_slice(extra);
            let config = crate::support::run_config(&api.url(), state.path(), &flags);
            let out = slack_audit_source::sink::stdout::SharedWriter::default();
            let overrides = slack_audit_source::Overrides::new().stdout(out);
            let run = slack_audit_source::run_with(config, overrides, std::future::pending());
            tokio::time::timeout(Duration::from_secs(10), run)
                .await
                .expect("run --once finishes")
                .expect("run succeeds");
        });
    });
    handle.render()
}

/// Proves the helpers the pipeline calls record every metric named in the docs, with the
/// bounded labels, after a real `run --once` against the simulator.
#[test]
fn a_pipeline_run_records_the_described_metrics() {
    let text = scrape_after_run(&[]);
    for expected in [
        r#"slack_source_requests_total{status="200"} 1"#,
        "slack_source_request_duration_seconds_bucket",
        "slack_source_pages_total 1",
        "slack_source_events_received_total 3",
        r#"slack_source_events_emitted_total{action="user_login",kind="event"} 1"#,
        r#"slack_source_events_emitted_total{action="anomaly",kind="event"} 1"#,
        r#"slack_source_events_emitted_total{action="other",kind="pipeline_error"} 1"#,
        "slack_source_pipeline_errors_total 1",
        r#"slack_source_anomalies_total{reason="tor"} 1"#,
        r#"slack_source_anomalies_total{reason="asn"} 1"#,
        r#"slack_source_anomalies_total{reason="other"} 1"#,
        "slack_source_sink_batches_total 1",
        "slack_source_sink_batch_duration_seconds_bucket",
        "slack_source_checkpoint_lag_seconds",
        "slack_source_last_successful_poll_timestamp_seconds",
        "# HELP slack_source_events_emitted_total",
        "# HELP slack_source_anomalies_total",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
}

/// Anomaly reasons are counted with the analysis off too (anomalies then skip the analysis
/// but still go through the path that reads their reasons).
#[test]
fn anomaly_reasons_are_counted_without_the_analysis() {
    let text = scrape_after_run(&["--no-analysis"]);
    for expected in [
        r#"slack_source_anomalies_total{reason="tor"} 1"#,
        r#"slack_source_anomalies_total{reason="other"} 1"#,
        r#"slack_source_events_emitted_total{action="anomaly",kind="event"} 1"#,
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
}

/// A server on 127.0.0.1:0 over a private `Health`, with a clock the test moves.
async fn health_server(
    shutdown: Shutdown,
) -> (server::MetricsServer, &'static Health, Arc<AtomicI64>) {
    let health: &'static Health = Box::leak(Box::new(Health::new()));
    let now = Arc::new(AtomicI64::new(1_800_000_000));
    let clock = now.clone();
    let endpoints = Endpoints {
        handle: slack_audit_source::metrics::recorder_builder()
            .build_recorder()
            .handle(),
        health,
        stale_after: server::stale_after(Duration::from_secs(60)),
        clock: Arc::new(move || clock.load(Ordering::Relaxed)),
    };
    let srv = server::start("127.0.0.1:0".parse().unwrap(), endpoints, shutdown)
        .await
        .unwrap();
    (srv, health, now)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn healthz_is_ok_and_readyz_follows_progress_and_staleness() {
    let (trigger, shutdown) = Shutdown::new();
    let (srv, health, now) = health_server(shutdown).await;
    let addr = srv.local_addr();
    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: no successful poll yet\n")
    );

    health.poll_succeeded(now.load(Ordering::Relaxed));
    assert_eq!(get(addr, "/readyz").await.0, 200);

    // Three intervals of 60 s pass with no progress: stale.
    now.fetch_add(181, Ordering::Relaxed);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("181s ago"), "{body}");

    // A rate-limit wait is Slack answering: ready again, for as long as the wait.
    health.rate_limited(now.load(Ordering::Relaxed), Duration::from_secs(30));
    assert_eq!(get(addr, "/readyz").await.0, 200);

    health.sink_failed("rejected");
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("sink"), "{body}");

    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(addr, "/nope").await.0, 404);

    // Shutdown closes the listener.
    trigger.trigger();
    let closed = async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(2), closed)
        .await
        .expect("the listener stops on shutdown");
}

fn trace_text(dir: &std::path::Path) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        all.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    all
}

/// Proves the token never reaches the trace: not from the `Authorization` header echoed back,
/// not from a token-shaped cursor in the URL, not from a token quoted in the body.
#[tokio::test]
async fn tracer_redacts_the_token_in_headers_url_and_body() {
    let body = format!(r#"{{"entries":[],"note":"leaked {TOKEN} and xapp-1-A0-99"}}"#);
    let api = slack_serving(&body).await;
    let dir = tempfile::tempdir().unwrap();
    let tracer = Tracer::open(dir.path(), 1 << 20).unwrap();
    let mut client = SlackClient::new(ClientConfig {
        api_url: api.url().parse().unwrap(),
        token: TokenSource::fixed(SecretString::from(TOKEN)).unwrap(),
        max_rpm: 1000,
        request_timeout: Duration::from_secs(5),
        tracer: Some(tracer),
        max_response_bytes: 64 << 20,
        give_up_after: None,
    })
    .unwrap();
    let filters = Filters::default();
    let q = Query {
        oldest: 1_700_000_000,
        latest: 1_700_000_100,
        limit: 10,
        cursor: Some("xoxb-cursor-shaped-77"),
        filters: &filters,
    };
    client.fetch_page(&q).await.unwrap();

    let text = trace_text(dir.path());
    assert!(!text.contains("secret-test-token"), "{text}");
    assert!(!text.contains("cursor-shaped-77"), "{text}");
    assert!(!text.contains("A0-99"), "{text}");
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["headers"]["authorization"], "[REDACTED]");
    assert_eq!(line["headers"]["x-echo"], "Bearer xoxp-[REDACTED]");
    assert_eq!(
        (line["method"].as_str(), line["status"].as_u64()),
        (Some("GET"), Some(200))
    );
    assert!(
        line["url"]
            .as_str()
            .unwrap()
            .contains("cursor=xoxb-%5BREDACTED%5D")
            || line["url"]
                .as_str()
                .unwrap()
                .contains("cursor=xoxb-[REDACTED]"),
        "{line}"
    );
    assert_eq!(
        line["body"]["note"],
        "leaked xoxp-[REDACTED] and xapp-[REDACTED]"
    );
}

#[test]
fn tracer_rotates_by_size_and_keeps_at_most_five_files() {
    let dir = tempfile::tempdir().unwrap();
    let tracer = Tracer::open(dir.path(), 600).unwrap();
    let url = url::Url::parse("https://api.slack.com/audit/v1/logs").unwrap();
    let body = format!(r#"{{"entries":[],"pad":"{}"}}"#, "x".repeat(200));
    for _ in 0..40 {
        tracer.record(
            &url,
            200,
            &reqwest::header::HeaderMap::new(),
            body.as_bytes(),
        );
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), MAX_FILES, "{names:?}");
    assert!(names.contains(&TRACE_FILE.to_string()), "{names:?}");
    for name in &names {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(text.len() <= 600, "{name} is {} bytes", text.len());
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("every line is whole JSON");
        }
    }
}
