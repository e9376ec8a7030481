//! The HTTP sink against in-process receivers that behave like Vector's `http_server` and
//! Fluent Bit's `http` input: batching and order, gzip, outages, slow and rude receivers,
//! refusals, credentials, shutdown; then the whole `run` through an outage mid-page, with the
//! checkpoint read while the receiver is down; `run` to an HTTPS receiver with a private CA
//! (trusted with `--http-ca-file`, untrusted, or unverified); and the shipper examples, parsed
//! and checked.

use crate::support::receiver::{Flavor, Receiver, Step, TestPki};
use secrecy::SecretString;
use serde_json::{json, Value};
use slack_audit_source::config::{Cli, Command, RunConfig, SinkConfig};
use slack_audit_source::shutdown::Shutdown;
use slack_audit_source::sink::http::config::{EnvSecrets, HttpArgs};
use slack_audit_source::sink::http::{Compression, HttpConfig, HttpSink};
use slack_audit_source::sink::{Batch, Error};
use std::time::Duration;

/// `n` documents with ids `E0000…`, each padded with `pad` bytes of message.
fn batch(n: usize, pad: usize) -> Batch {
    let mut b = Batch::new();
    for i in 0..n {
        b.push(&json!({"event": {"id": format!("E{i:04}")}, "message": "x".repeat(pad)}));
    }
    b
}

fn ids(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["event"]["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn expected_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("E{i:04}")).collect()
}

/// A sink to `url` with millisecond backoff, after `tweak`.
fn sink(url: &str, tweak: impl FnOnce(&mut HttpConfig)) -> HttpSink {
    let mut c = HttpConfig::for_url(url).expect("loopback URLs are accepted");
    c.backoff_min = Duration::from_millis(1);
    c.backoff_max = Duration::from_millis(5);
    tweak(&mut c);
    HttpSink::new(c).expect("the client builds")
}

#[tokio::test]
async fn batches_respect_both_limits_and_keep_order() {
    let rx = Receiver::start(Flavor::Vector, vec![]).await;
    let mut s = sink(&rx.url("/"), |c| c.max_events = 10);
    s.send(&batch(25, 10), &mut Shutdown::never())
        .await
        .unwrap();
    let sizes: Vec<usize> = rx.taken().iter().map(|d| d.docs.len()).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(ids(&rx.docs()), expected_ids(25));

    // By bytes: ~100-byte lines under a 1 KiB limit; a 3 KiB document goes alone.
    let rx = Receiver::start(Flavor::Vector, vec![]).await;
    let mut s = sink(&rx.url("/"), |c| c.max_bytes = 1024);
    let mut b = batch(15, 70);
    b.push(&json!({"event": {"id": "BIG"}, "message": "y".repeat(3000)}));
    b.push(&json!({"event": {"id": "AFTER"}}));
    s.send(&b, &mut Shutdown::never()).await.unwrap();
    let taken = rx.taken();
    for d in &taken {
        assert!(
            d.ndjson_bytes <= 1024 || d.docs.len() == 1,
            "a {}-byte request of {} documents",
            d.ndjson_bytes,
            d.docs.len()
        );
    }
    let big = taken
        .iter()
        .find(|d| ids(&d.docs).contains(&"BIG".to_string()))
        .expect("the big document arrived");
    assert_eq!(big.docs.len(), 1, "an oversized document goes alone");
    let mut want = expected_ids(15);
    want.extend(["BIG".to_string(), "AFTER".to_string()]);
    assert_eq!(ids(&rx.docs()), want);
    assert_eq!(s.stats().delivered as usize, taken.len());
}

#[tokio::test]
async fn gzip_round_trips_to_fluent_bit_and_201_is_an_acknowledgement() {
    let rx = Receiver::start(Flavor::FluentBit, vec![]).await;
    let mut s = sink(&rx.url("/slack.audit"), |c| {
        c.compression = Compression::Gzip
    });
    s.send(&batch(50, 200), &mut Shutdown::never())
        .await
        .unwrap();
    let taken = rx.taken();
    assert!(taken.iter().all(|d| d.headers["content-encoding"] == "gzip"
        && d.headers["content-type"] == "application/json"));
    assert_eq!(ids(&rx.docs()), expected_ids(50));
}

#[tokio::test]
async fn vector_takes_the_ndjson_content_type_and_fluent_bit_refuses_it_clearly() {
    let ndjson = |c: &mut HttpConfig| {
        c.content_type = reqwest::header::HeaderValue::from_static("application/x-ndjson")
    };
    let vector = Receiver::start(Flavor::Vector, vec![]).await;
    sink(&vector.url("/"), ndjson)
        .send(&batch(3, 0), &mut Shutdown::never())
        .await
        .unwrap();
    assert_eq!(vector.docs().len(), 3);

    let fluent = Receiver::start(Flavor::FluentBit, vec![]).await;
    let err = sink(&fluent.url("/slack.audit"), ndjson)
        .send(&batch(3, 0), &mut Shutdown::never())
        .await
        .unwrap_err();
    let Error::Rejected { url, status, .. } = &err else {
        panic!("expected Rejected, got {err:?}")
    };
    assert_eq!(
        (url.as_str(), *status),
        (fluent.url("/slack.audit").as_str(), 400)
    );
    let msg = err.to_string();
    assert!(
        msg.contains("invalid 'Content-Type'") && msg.contains("application/json"),
        "{msg}"
    );
    assert_eq!(fluent.seen(), 1, "a refusal is not retried");
}

/// 503s (one with Retry-After) and a 429 in the middle of a page, then recovery: every
/// document arrives exactly once, in order, and nothing counts as an ambiguous resend.
#[tokio::test]
async fn an_outage_mid_page_delivers_every_event_exactly_once() {
    let script = vec![
        Step::Take,
        Step::status(503, "down"),
        Step::Answer {
            status: 503,
            body: "down",
            retry_after: Some("0"),
        },
        Step::Answer {
            status: 429,
            body: "slow down",
            retry_after: Some("1"),
        },
        Step::status(502, "bad gateway"),
        Step::Take,
    ];
    let rx = Receiver::start(Flavor::Vector, script).await;
    let mut s = sink(&rx.url("/"), |c| c.max_events = 4);
    s.send(&batch(10, 0), &mut Shutdown::never()).await.unwrap();
    assert_eq!(ids(&rx.docs()), expected_ids(10));
    let stats = s.stats();
    assert_eq!(
        (stats.delivered, stats.retries, stats.ambiguous_resends),
        (3, 4, 0)
    );
}

/// The documented at-least-once edge: the receiver takes a request but answers after the
/// client's timeout; the resend duplicates exactly that request, and it is counted.
#[tokio::test]
async fn a_slow_receiver_times_out_then_succeeds_and_the_duplicate_is_counted() {
    let rx = Receiver::start(
        Flavor::FluentBit,
        vec![Step::Take, Step::TakeSlowly(Duration::from_secs(5))],
    )
    .await;
    let mut s = sink(&rx.url("/slack.audit"), |c| {
        c.max_events = 5;
        // Long enough for a loaded CI machine, short enough for a quick test.
        c.timeout = Duration::from_secs(1);
    });
    s.send(&batch(15, 0), &mut Shutdown::never()).await.unwrap();
    let got = ids(&rx.docs());
    let mut want = expected_ids(15);
    // Request 2 (E0005..E0009) was taken twice.
    want.splice(10..10, expected_ids(10)[5..10].iter().cloned());
    assert_eq!(got, want);
    assert_eq!(s.stats().ambiguous_resends, 1);
}

#[tokio::test]
async fn a_receiver_that_hangs_up_is_retried() {
    let rx = Receiver::start(Flavor::Vector, vec![Step::HangUp, Step::HangUp, Step::Take]).await;
    let mut s = sink(&rx.url("/"), |_| {});
    s.send(&batch(5, 0), &mut Shutdown::never()).await.unwrap();
    assert_eq!(ids(&rx.docs()), expected_ids(5));
    assert_eq!(s.stats().retries, 2);
}

#[tokio::test]
async fn a_bad_request_names_the_receiver_and_quotes_its_answer() {
    let rx = Receiver::start(
        Flavor::Vector,
        vec![
            Step::Take,
            Step::status(400, "field `event` has the wrong type\n"),
        ],
    )
    .await;
    let mut s = sink(&rx.url("/in?api_key=k3y-secret"), |c| c.max_events = 2);
    let err = s
        .send(&batch(6, 0), &mut Shutdown::never())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&rx.url("/in"))
            && msg.contains("HTTP 400")
            && msg.contains("field `event` has the wrong type"),
        "{msg}"
    );
    assert!(!msg.contains("k3y-secret"), "the query is not shown: {msg}");
    assert_eq!(err.kind(), "rejected");
    assert_eq!(rx.docs().len(), 2, "nothing after the refusal is sent");
}

#[tokio::test]
async fn credentials_and_headers_are_sent_but_never_shown() {
    let rx = Receiver::start(
        Flavor::Vector,
        vec![Step::Take, Step::status(401, "who are you?")],
    )
    .await;
    let args = HttpArgs {
        http_url: Some(rx.url("/")),
        http_batch_events: 1,
        http_batch_bytes: "1MiB".into(),
        http_content_type: "application/json".into(),
        http_timeout: "5s".into(),
        http_headers: vec!["X-Api-Key: hdr-s3cret".into()],
        ..HttpArgs::default()
    };
    let env = EnvSecrets {
        bearer_token: Some(SecretString::from("bearer-s3cret")),
        password: None,
    };
    let config = HttpConfig::from_args_with_env(&args, env).unwrap();
    let mut s = HttpSink::new(config).unwrap();
    let err = s
        .send(&batch(2, 0), &mut Shutdown::never())
        .await
        .unwrap_err();
    let taken = rx.taken();
    assert_eq!(taken[0].headers["authorization"], "Bearer bearer-s3cret");
    assert_eq!(taken[0].headers["x-api-key"], "hdr-s3cret");
    let shown = format!("{err} {err:?} {s:?}");
    assert!(
        shown.contains("who are you?") && shown.contains("hint"),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"), "a secret leaked: {shown}");

    // Basic auth, the password from a file.
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, "pw-s3cret\n").unwrap();
    let rx = Receiver::start(Flavor::FluentBit, vec![]).await;
    let args = HttpArgs {
        http_url: Some(rx.url("/slack.audit")),
        http_user: Some("shipper".into()),
        http_password_file: Some(pw),
        http_headers: vec![],
        ..args
    };
    let mut s =
        HttpSink::new(HttpConfig::from_args_with_env(&args, EnvSecrets::default()).unwrap())
            .unwrap();
    s.send(&batch(1, 0), &mut Shutdown::never()).await.unwrap();
    // base64("shipper:pw-s3cret")
    assert_eq!(
        rx.taken()[0].headers["authorization"],
        "Basic c2hpcHBlcjpwdy1zM2NyZXQ="
    );
    assert!(!format!("{s:?}").contains("s3cret"));
}

/// SIGTERM while the receiver is down: `send` stops waiting at once and reports the batch as
/// not acknowledged. The backoff is an hour, so only the shutdown can end the wait.
#[tokio::test]
async fn shutdown_during_an_outage_returns_interrupted_promptly() {
    let rx = Receiver::start(Flavor::Vector, vec![Step::Hold]).await;
    let mut s = sink(&rx.url("/"), |c| {
        c.backoff_min = Duration::from_secs(3600);
        c.backoff_max = Duration::from_secs(3600);
    });
    let (trigger, mut shutdown) = Shutdown::new();
    let sending = tokio::spawn(async move { s.send(&batch(3, 0), &mut shutdown).await });
    rx.wait_for_requests(1).await;
    trigger.trigger();
    let result = tokio::time::timeout(Duration::from_secs(2), sending)
        .await
        .expect("send returned within 2 s")
        .unwrap();
    assert!(matches!(result, Err(Error::Interrupted)), "{result:?}");
    assert!(rx.taken().is_empty());
}

#[tokio::test]
async fn retry_after_is_honoured_but_capped() {
    // An hour asked for; the cap (5 ms here, 60 s by default) wins.
    let rx = Receiver::start(
        Flavor::Vector,
        vec![Step::Answer {
            status: 429,
            body: "",
            retry_after: Some("3600"),
        }],
    )
    .await;
    let mut s = sink(&rx.url("/"), |_| {});
    tokio::time::timeout(
        Duration::from_secs(5),
        s.send(&batch(1, 0), &mut Shutdown::never()),
    )
    .await
    .expect("the cap applies")
    .unwrap();
    assert_eq!(rx.docs().len(), 1);
}

// ---------------------------------------------------------------------------------------
// The whole `run`, against the simulator serving ten events.

/// The cursor the simulator sent with page 1 (Ev9..Ev6): the checkpoint's cursor while page 2
/// is not yet acknowledged.
fn page_1_cursor(slack: &slack_audit_source::simulate::SimHandle) -> Option<String> {
    let first = slack.requests().into_iter().next()?;
    assert_eq!(first.entries, 4, "page 1 holds Ev9..Ev6");
    first.next_cursor
}

/// Ten events, `Ev0`…`Ev9`, ten seconds apart, starting ten minutes before `now`.
fn ten_events(now: i64) -> Vec<Value> {
    (0..10)
        .map(|i| json!({"id": format!("Ev{i}"), "date_create": now - 600 + i * 10, "action": "user_login", "actor": {"type": "user", "user": {"id": "U1"}}}))
        .collect()
}

/// `Ev9` … `Ev0`: every event once, in the order Slack pages them.
fn newest_first() -> Vec<String> {
    (0..10).rev().map(|i| format!("Ev{i}")).collect()
}

/// A Slack with [`ten_events`], a Fluent Bit receiver following `script`, and a `run --once`
/// config reading pages of four and sending requests of three: page 1 = Ev9..Ev6 (requests
/// Ev9-Ev7, Ev6), page 2 = Ev5..Ev2 (Ev5-Ev3, Ev2), page 3 = Ev1, Ev0.
struct RunSetup {
    /// The simulator serving the events (it runs until the test's runtime ends).
    slack: slack_audit_source::simulate::SimHandle,
    rx: Receiver,
    state: tempfile::TempDir,
    config: RunConfig,
    /// When the events were made.
    now: i64,
}

async fn run_setup(script: Vec<Step>, backoff: Duration) -> RunSetup {
    let rx = Receiver::start(Flavor::FluentBit, script).await;
    run_setup_with(rx, &[], backoff).await
}

/// As [`run_setup`], for a receiver started by the caller and with `extra` flags.
async fn run_setup_with(rx: Receiver, extra: &[&str], backoff: Duration) -> RunSetup {
    let now = chrono::Utc::now().timestamp();
    let slack = crate::support::simulator_with(ten_events(now)).await;
    let state = tempfile::tempdir().unwrap();
    let api_url = slack.url();
    let http_url = rx.url("/slack.audit");
    let mut flags = vec![
        "--initial-lookback",
        "1h",
        "--limit",
        "4",
        "--sink",
        "http",
        "--http-url",
        &http_url,
        "--http-batch-events",
        "3",
    ];
    flags.extend_from_slice(extra);
    let mut config = crate::support::run_config(&api_url, state.path(), &flags);
    let SinkConfig::Http(http) = &mut config.sink else {
        unreachable!("asked for --sink http")
    };
    http.backoff_min = backoff;
    http.backoff_max = backoff;
    RunSetup {
        slack,
        rx,
        state,
        config,
        now,
    }
}

fn read_checkpoint(state: &tempfile::TempDir) -> Value {
    let bytes =
        std::fs::read(state.path().join("checkpoint.json")).expect("a checkpoint was written");
    serde_json::from_slice(&bytes).expect("the checkpoint is JSON")
}

/// The checkpoint moved past every event: it closed the window the run read (which began
/// 510 s before `now`).
fn assert_caught_up(state: &tempfile::TempDir, now: i64) {
    let after = read_checkpoint(state);
    assert!(
        after["window"].is_null() && after["next_oldest"].as_i64() > Some(now - 510),
        "{after}"
    );
}

/// The receiver goes down at the second request of page 2: the checkpoint read during the
/// outage records page 1 only and does not move; after recovery every event has arrived
/// exactly once, in Slack's order.
#[tokio::test]
async fn run_delivers_each_event_once_through_an_outage_and_checkpoints_only_acknowledged_pages() {
    let RunSetup {
        rx,
        state,
        config,
        now,
        slack,
    } = run_setup(
        vec![Step::Take, Step::Take, Step::Take, Step::Hold],
        Duration::from_millis(10),
    )
    .await;
    let running = tokio::spawn(slack_audit_source::run(config, std::future::pending()));

    // Three taken, then three refused while held: the poller is stuck inside page 2.
    rx.wait_for_requests(6).await;
    let during = read_checkpoint(&state);
    let window = &during["window"];
    assert_eq!(
        window["cursor"].as_str(),
        page_1_cursor(&slack).as_deref(),
        "the next page to read is page 2: {during}"
    );
    assert_eq!(
        window["low"],
        now - 600 + 6 * 10,
        "nothing of page 2 is recorded: {during}"
    );
    assert_eq!(window["ids_at_low"], json!(["Ev6"]));
    assert_eq!(
        ids(&rx.docs()),
        ["Ev9", "Ev8", "Ev7", "Ev6", "Ev5", "Ev4", "Ev3"]
    );
    rx.wait_for_requests(9).await;
    assert_eq!(
        read_checkpoint(&state),
        during,
        "the checkpoint does not move while the receiver is down"
    );

    rx.release();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("run finishes once the receiver is back")
        .unwrap()
        .unwrap();
    assert_eq!(
        ids(&rx.docs()),
        newest_first(),
        "every event exactly once, newest first"
    );
    assert_caught_up(&state, now);
}

/// Shutdown while the receiver is down (and the next retry an hour away): `run` returns at
/// once, the page in flight unacknowledged and the checkpoint still at the last whole page.
#[tokio::test]
async fn run_stops_promptly_on_shutdown_during_an_outage_without_moving_the_checkpoint() {
    let RunSetup {
        rx,
        state,
        config,
        slack,
        ..
    } = run_setup(
        vec![Step::Take, Step::Take, Step::Take, Step::Hold],
        Duration::from_secs(3600),
    )
    .await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(slack_audit_source::run(config, async move {
        let _ = stopped.await;
    }));
    rx.wait_for_requests(4).await;
    let _ = stop.send(());
    let result = tokio::time::timeout(Duration::from_secs(2), running)
        .await
        .expect("run returned within 2 s")
        .unwrap();
    // A SIGTERM during an outage is a clean shutdown (exit 0), not a failure.
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        read_checkpoint(&state)["window"]["cursor"].as_str(),
        page_1_cursor(&slack).as_deref(),
        "page 2 was not acknowledged as a whole"
    );
}

// ---------------------------------------------------------------------------------------
// HTTPS to a receiver whose certificate comes from a private CA (made per test by TestPki).

/// The CA given with `--http-ca-file`: every event arrives once over https, the checkpoint
/// moves past them, and no handshake was refused.
#[tokio::test]
async fn run_delivers_over_https_to_a_receiver_trusted_with_its_ca_file() {
    let pki = TestPki::new();
    let certs = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(certs.path());
    let rx = Receiver::start_tls(Flavor::FluentBit, vec![], &pki).await;
    assert!(rx.url("/").starts_with("https://"), "{}", rx.url("/"));
    let RunSetup {
        rx,
        state,
        config,
        now,
        slack: _slack,
    } = run_setup_with(
        rx,
        &["--http-ca-file", ca.to_str().unwrap()],
        Duration::from_millis(10),
    )
    .await;
    tokio::time::timeout(
        Duration::from_secs(20),
        slack_audit_source::run(config, std::future::pending()),
    )
    .await
    .expect("run --once finishes")
    .unwrap();
    assert_eq!(ids(&rx.docs()), newest_first(), "every event exactly once");
    assert_eq!(rx.handshake_failures(), 0);
    assert_caught_up(&state, now);
}

/// `run --once --sink http` of the built binary to `rx` (a Slack with [`ten_events`] is
/// started for it), with `extra` flags. Returns the outcome, the state dir and when the events
/// were made. Waited for asynchronously, so the servers keep answering meanwhile; a binary
/// still running after 30 s is killed and fails the test.
async fn run_binary(
    rx: &Receiver,
    extra: &[&str],
) -> (std::process::Output, tempfile::TempDir, i64) {
    let now = chrono::Utc::now().timestamp();
    let slack = crate::support::simulator_with(ten_events(now)).await;
    let state = tempfile::tempdir().unwrap();
    let mut cmd = crate::support::run_command(&slack.url(), state.path(), &[]);
    cmd.args(["--once", "--sink", "http", "--http-url"])
        .arg(rx.url("/slack.audit"))
        .args(extra)
        .env("SLACK_AUDIT_TOKEN", "xoxp-test")
        .env_remove("SLACK_AUDIT_TOKEN_FILE")
        .env_remove("SLACK_AUDIT_HTTP_CA_FILE")
        .env_remove("SLACK_AUDIT_HTTP_INSECURE_SKIP_VERIFY");
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the binary exits within 30 s")
    .expect("the binary starts");
    (output, state, now)
}

/// No CA file: the certificate cannot be verified. That never mends by retrying, so the
/// process stops at the first attempt (exit 1) with an error naming the receiver, the reason
/// and the flag to use; nothing reached the receiver and the checkpoint did not move.
#[tokio::test]
async fn an_untrusted_certificate_stops_the_run_at_once_with_a_hint() {
    let pki = TestPki::new();
    let rx = Receiver::start_tls(Flavor::FluentBit, vec![], &pki).await;
    let (out, state, _) = run_binary(&rx, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&rx.url("/slack.audit"))
            && stderr.contains("TLS certificate that cannot be verified")
            && stderr.contains("UnknownIssuer")
            && stderr.contains("--http-ca-file"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("did not acknowledge the batch"),
        "a certificate failure is not retried: {stderr}"
    );
    assert!(out.stdout.is_empty(), "no data on stdout with --sink http");
    rx.wait_for_handshake_failures(1).await;
    assert_eq!(rx.handshake_failures(), 1, "one attempt, no retries");
    assert_eq!(rx.seen(), 0, "no request got through the handshake");
    assert!(
        !state.path().join("checkpoint.json").exists(),
        "no page was delivered, so no checkpoint was written"
    );
}

/// `--http-insecure-skip-verify`: delivered without the CA, after a warning at start.
#[tokio::test]
async fn skip_verify_delivers_without_the_ca_and_warns_at_start() {
    let pki = TestPki::new();
    let rx = Receiver::start_tls(Flavor::FluentBit, vec![], &pki).await;
    let (out, state, now) = run_binary(&rx, &["--http-insecure-skip-verify"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warning = stderr
        .lines()
        .position(|l| l.contains("WARN") && l.contains("--http-insecure-skip-verify"))
        .unwrap_or_else(|| panic!("no warning about skipping verification: {stderr}"));
    assert!(
        stderr
            .lines()
            .nth(warning)
            .unwrap()
            .contains("NOT verified"),
        "{stderr}"
    );
    assert_eq!(ids(&rx.docs()), newest_first(), "every event exactly once");
    assert_eq!(rx.handshake_failures(), 0);
    assert_caught_up(&state, now);
}

/// A `--http-ca-file` that is missing, or holds no certificate (here a private key), is a
/// configuration error: exit 2 before anything is sent, naming the flag and the file.
#[tokio::test]
async fn a_bad_ca_file_is_a_config_error_naming_the_file() {
    let rx = Receiver::start_tls(Flavor::FluentBit, vec![], &TestPki::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let key_only = dir.path().join("key-only.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(&key_only, key.serialize_pem()).unwrap();
    for (file, why) in [
        (&missing, "No such file"),
        (&key_only, "no certificate found"),
    ] {
        let (out, _, _) = run_binary(&rx, &["--http-ca-file", file.to_str().unwrap()]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--http-ca-file")
                && stderr.contains(&file.display().to_string())
                && stderr.contains(why),
            "{stderr}"
        );
    }
    assert_eq!(
        (rx.seen(), rx.handshake_failures()),
        (0, 0),
        "nothing was sent"
    );
}

// ---------------------------------------------------------------------------------------
// The shipper examples: parsed, and their key settings checked, so they cannot rot.

fn example(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn yaml(path: &str) -> serde_norway::Value {
    serde_norway::from_str(&example(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Fluent Bit's classic format: `[SECTION]` then `Key Value` lines; keys compared lower-case.
fn fluent_bit_sections(path: &str) -> Vec<(String, std::collections::HashMap<String, String>)> {
    let mut sections: Vec<(String, std::collections::HashMap<String, String>)> = Vec::new();
    for line in example(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((name.to_ascii_uppercase(), Default::default()));
        } else {
            let (k, v) = line
                .split_once(char::is_whitespace)
                .unwrap_or_else(|| panic!("{path}: {line:?} is not 'Key Value'"));
            let (_, map) = sections
                .last_mut()
                .unwrap_or_else(|| panic!("{path}: {line:?} before any section"));
            map.insert(k.to_ascii_lowercase(), v.trim().to_string());
        }
    }
    sections
}

fn section<'a>(
    sections: &'a [(String, std::collections::HashMap<String, String>)],
    kind: &str,
    name: &str,
) -> &'a std::collections::HashMap<String, String> {
    sections
        .iter()
        .find(|(k, m)| k == kind && m.get("name").map(String::as_str) == Some(name))
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("no [{kind}] named {name}"))
}

/// Fluent Bit's es output reads `Id_Key` as a record accessor: `event.id` would look up a
/// top-level key with a dot in its name; `$event['id']` reaches into the object.
const FLUENT_BIT_ID_KEY: &str = "$event['id']";

#[test]
fn vector_examples_keep_their_key_settings() {
    let exec = yaml("vector/exec.yaml");
    let src = &exec["sources"]["slack_audit"];
    assert_eq!(src["type"], "exec");
    assert_eq!(src["mode"], "streaming");
    assert_eq!(
        src["include_stderr"], false,
        "diagnostics on stderr must not become events"
    );
    assert_eq!(src["decoding"]["codec"], "json");
    assert_eq!(src["framing"]["method"], "newline_delimited");
    let cmd: Vec<&str> = src["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(cmd.contains(&"run") && !cmd.contains(&"--once"), "{cmd:?}");

    let http = yaml("vector/http_server.yaml");
    let src = &http["sources"]["slack_audit"];
    assert_eq!(src["type"], "http_server");
    assert_eq!(src["framing"]["method"], "newline_delimited");
    assert_eq!(src["decoding"]["codec"], "json");
    assert_eq!(src["method"], "POST");

    assert!(
        exec["data_dir"].as_str().is_some_and(|d| !d.is_empty()),
        "exec.yaml: a disk buffer needs data_dir"
    );
    assert_eq!(exec["sinks"]["elasticsearch"]["buffer"]["type"], "disk");
    for (name, doc, added) in [
        (
            "exec.yaml",
            &exec,
            &["command", "pid", "stream", "source_type", "timestamp"][..],
        ),
        (
            "http_server.yaml",
            &http,
            &["path", "source_type", "timestamp"][..],
        ),
    ] {
        let es = &doc["sinks"]["elasticsearch"];
        assert_eq!(es["type"], "elasticsearch", "{name}");
        // The sink deletes its id_key field from the document: it must be a scratch copy
        // of event.id made by the remap, never event.id itself.
        let id_key = es["id_key"].as_str().expect("an id_key");
        assert_ne!(id_key, "event.id", "{name}: the sink would delete event.id");
        let remap = doc["transforms"][es["inputs"][0].as_str().unwrap()]["source"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: the sink's input is not a remap"));
        assert!(
            remap.contains(&format!(".{id_key} = .event.id")),
            "{name}: the remap does not copy event.id to {id_key}"
        );
        for field in added {
            assert!(
                remap.contains(&format!("del(.{field})")),
                "{name}: the remap keeps {field}"
            );
        }
        assert_eq!(
            es["bulk"]["action"], "index",
            "{name}: a resent document must overwrite itself, not fail"
        );
        assert_eq!(
            es["request_retry_partial"], true,
            "{name}: items failed with 429 or 5xx inside a 200 must be retried"
        );
        assert_eq!(
            es["api_version"], "v8",
            "{name}: auto needs the monitor privilege"
        );
        // Every input of the sink exists.
        for input in es["inputs"].as_sequence().unwrap() {
            let input = input.as_str().unwrap();
            assert!(
                !doc["sources"][input].is_null() || !doc["transforms"][input].is_null(),
                "{name}: unknown input {input}"
            );
        }
    }
    assert_eq!(
        http["sinks"]["elasticsearch"]["acknowledgements"]["enabled"], true,
        "the source answers only once Elasticsearch has the events"
    );
}

#[test]
fn fluent_bit_examples_keep_their_key_settings() {
    let http = yaml("fluent-bit/http.yaml");
    let input = &http["pipeline"]["inputs"][0];
    assert_eq!(input["name"], "http");
    assert_eq!(input["buffer_max_size"], "4M");
    let output = &http["pipeline"]["outputs"][0];
    assert_eq!(output["name"], "es");
    assert_eq!(output["id_key"], FLUENT_BIT_ID_KEY);
    assert_eq!(
        output["write_operation"], "index",
        "the default, create, retries a chunk of repeats forever"
    );
    assert_eq!(output["retry_limit"], "no_limits");
    assert_ne!(
        output["time_key"], "@timestamp",
        "es would add a second @timestamp"
    );

    let exec = fluent_bit_sections("fluent-bit/exec.conf");
    let input = section(&exec, "INPUT", "exec");
    assert!(
        input["command"].contains("run --once"),
        "{}",
        input["command"]
    );
    assert_eq!(input["parser"], "json");
    let parsers = fluent_bit_sections("fluent-bit/parsers.conf");
    assert_eq!(section(&parsers, "PARSER", "json")["format"], "json");
    let service = exec
        .iter()
        .find(|(k, _)| k == "SERVICE")
        .map(|(_, m)| m)
        .expect("a [SERVICE] section");
    assert_eq!(service["parsers_file"], "parsers.conf");

    let stdin = fluent_bit_sections("fluent-bit/stdin.conf");
    section(&stdin, "INPUT", "stdin");
    for (name, conf) in [("exec.conf", &exec), ("stdin.conf", &stdin)] {
        let es = section(conf, "OUTPUT", "es");
        assert_eq!(es["id_key"], FLUENT_BIT_ID_KEY, "{name}");
        assert_eq!(es["write_operation"], "index", "{name}");
        assert_eq!(es["retry_limit"], "no_limits", "{name}");
        assert!(
            es.get("time_key").is_some_and(|k| k != "@timestamp"),
            "{name}: es would add a second @timestamp"
        );
    }
}

#[test]
fn the_shippers_guide_names_every_example() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/shippers.md"),
    )
    .unwrap();
    for f in [
        "vector/exec.yaml",
        "vector/http_server.yaml",
        "fluent-bit/http.yaml",
        "fluent-bit/exec.conf",
        "fluent-bit/stdin.conf",
    ] {
        assert!(
            guide.contains(f),
            "docs/shippers.md does not mention examples/{f}"
        );
    }
    // The URLs the docs give must be the ones the examples listen on.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let http = yaml("vector/http_server.yaml");
    let src = &http["sources"]["slack_audit"];
    let vector_url = format!(
        "http://{}{}",
        src["address"].as_str().unwrap(),
        src["path"].as_str().unwrap()
    );
    for (name, text) in [("README.md", &readme), ("docs/shippers.md", &guide)] {
        assert!(
            text.contains(&format!("--http-url {vector_url}")),
            "{name} does not give {vector_url} for examples/vector/http_server.yaml"
        );
        assert!(
            !text.contains("--http-url http://127.0.0.1:8080/ "),
            "{name} gives a URL the http_server example answers 404 to"
        );
    }
    for doc in [
        "README.md",
        "docs/kubernetes.md",
        "helm/slack-audit-source/values.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        assert!(
            !text.contains("cli-contract.md"),
            "{doc} cites a file the repository does not have"
        );
    }
}

/// `HttpArgs` keeps header values out of `Debug`, since `RunArgs` derives it.
#[test]
fn run_args_debug_hides_header_values() {
    let argv = [
        "slack-audit-source",
        "run",
        "--sink",
        "http",
        "--http-url",
        "http://127.0.0.1:1/",
        "--http-header",
        "X-Api-Key: hdr-s3cret",
    ];
    let Command::Run(args) = <Cli as clap::Parser>::try_parse_from(argv).unwrap().command else {
        unreachable!("asked for run")
    };
    assert!(!format!("{args:?}").contains("s3cret"));
}
