//! A Slack that lies, breaks or attacks: huge `Retry-After`, gzip bombs and oversized bodies,
//! redirects, endless errors under `--once`, and cursor chains that make no sense. Whatever
//! it answers, the run ends, nothing of the window is dropped silently, and the checkpoint
//! never moves past a page that was not delivered.

use crate::poll::{config, run_once};
use crate::support::{delivered_ids, entries, entry, now, run_command};
use serde_json::{json, Value};
use slack_audit_source::checkpoint::CheckpointStore;
use slack_audit_source::simulate::{Reply, SimHandle};
use slack_audit_source::sink::stdout::SharedWriter;
use std::time::Duration;

/// A page body with these entries and this `next_cursor` value.
fn page(entries: &[Value], cursor: Value) -> String {
    json!({"ok": true, "entries": entries, "response_metadata": {"next_cursor": cursor}})
        .to_string()
}

/// Fails instead of hanging when a run does not end (virtual time in the paused tests, where
/// a `Retry-After` of 300 s passes in an instant).
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(600), f)
        .await
        .expect("the run ends, whatever Slack answers")
}

/// Runs `--once` against the simulator `mock` until it fails, asserts exit code 1, and returns the message.
async fn fails_with_exit_1(mock: &SimHandle, state: &std::path::Path) -> String {
    let err = bounded(run_once(config(mock, state, &SharedWriter::default(), &[])))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 1, "{msg}");
    msg
}

/// `Retry-After` beyond what a `Duration` holds is the 300 s cap, on a 429 and on a 200.
#[tokio::test(start_paused = true)]
async fn retry_after_of_any_size_is_capped_not_a_panic() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 5, now() - 1800, 1700));
    mock.script_at(
        0,
        Reply::status(429, r#"{"ok":false,"error":"ratelimited"}"#)
            .with_header("retry-after", "1e20"),
    );
    mock.script_at(
        1,
        Reply::ok(&page(&[entry("h", now() - 100, "user_login")], json!("")))
            .with_header("retry-after", "18446744073709551616"),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    let started = tokio::time::Instant::now();
    bounded(run_once(config(&mock, dir.path(), &out, &[])))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(300) && waited < Duration::from_secs(310),
        "waited {waited:?}"
    );
    assert_eq!(delivered_ids(&out.contents()), vec!["h".to_string()]);
}

/// A body padded to 8 MiB of whitespace: valid JSON holding an entry that must not pass.
fn padded_page(id: &str, pad: usize) -> Vec<u8> {
    let mut body = format!(
        r#"{{"ok":true,"entries":[{}]"#,
        entry(id, now() - 100, "user_login")
    )
    .into_bytes();
    body.resize(body.len() + pad, b' ');
    body.extend_from_slice(br#","response_metadata":{"next_cursor":""}}"#);
    body
}

/// A gzip bomb (8 MiB decoded from a few KiB) and a plain oversized body are refused at the
/// cap and retried like a 5xx; the next answer is delivered.
#[tokio::test]
async fn oversized_answers_are_refused_at_the_cap_and_retried() {
    for reply in [
        Reply::gzip(&padded_page("bomb", 8 << 20)),
        Reply::bytes(padded_page("bomb", 2 << 20)),
    ] {
        let gzip = !reply.headers.is_empty();
        assert!(reply.body.len() < (64 << 10) || !gzip, "a bomb is small");
        let mock = crate::support::slack().await;
        mock.insert(entries("e", 5, now() - 1800, 1700));
        mock.script_at(0, reply);
        let dir = tempfile::tempdir().unwrap();
        let out = SharedWriter::default();
        bounded(run_once(config(
            &mock,
            dir.path(),
            &out,
            &["--max-response-bytes", "1MiB"],
        )))
        .await
        .unwrap();
        let ids = delivered_ids(&out.contents());
        assert!(!ids.contains(&"bomb".to_string()), "gzip {gzip}: {ids:?}");
        assert_eq!(ids.len(), 5, "gzip {gzip}: {ids:?}");
        assert!(mock.requests().len() >= 2, "gzip {gzip}: retried");
    }
}

/// A 3xx is a configuration error: exit 3 naming the `Location`, and it is not followed
/// (the redirect target would answer with a page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_exits_3_with_its_location_and_is_not_followed() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 5, now() - 1800, 1700));
    mock.script_at(
        0,
        Reply::status(302, "").with_header("location", "/audit/v1/logs?redirected=1"),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_command(&mock.url(), dir.path(), &[]);
    cmd.arg("--once")
        .env("SLACK_AUDIT_TOKEN", "xoxp-test-token")
        .env_remove("SLACK_AUDIT_TOKEN_FILE");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("redirected=1") && stderr.contains("--api-url"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(mock.requests().len(), 1, "the redirect was not followed");
}

/// Under `--once`, answers that are retried forever by the daemon give up after a bounded
/// number of attempts, with exit 1 and the last error named.
#[tokio::test]
async fn once_gives_up_on_endless_bad_answers_with_exit_1() {
    let mut invalid_utf8 = br#"{"ok":true,"entries":[{"id":""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#"","date_create":1}]}"#);
    let cases = [
        (Reply::error("weird_glitch"), "weird_glitch"),
        (Reply::ok("{}"), "without an entries array"),
        (Reply::ok("<html>glitch</html>"), "not JSON"),
        (Reply::bytes(invalid_utf8), "not JSON"),
        (
            Reply::ok(&page(&[], json!(12345))),
            "next_cursor is a number (12345)",
        ),
        (Reply::status(503, "<html>down</html>"), "HTTP 503"),
    ];
    for (reply, says) in cases {
        let mock = crate::support::slack().await;
        mock.always(reply);
        let dir = tempfile::tempdir().unwrap();
        let msg = fails_with_exit_1(&mock, dir.path()).await;
        assert!(
            msg.contains(says) && msg.contains("--once"),
            "{says}: {msg}"
        );
        assert_eq!(mock.requests().len(), 8, "{says}: bounded attempts");
    }
}

/// A number as `next_cursor` is not the end of the chain: the request is retried, and when
/// Slack then sends a real cursor the rest of the chain is read.
#[tokio::test]
async fn a_cursor_that_is_not_a_string_is_retried_not_taken_as_the_end() {
    let mock = crate::support::slack().await;
    let t = now() - 600;
    let first = [entry("a", t, "user_login")];
    mock.script([
        Reply::ok(&page(&first, json!(12345))),
        Reply::ok(&page(&first, json!("c1="))),
        Reply::ok(&page(&[entry("b", t - 10, "user_login")], json!(""))),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    bounded(run_once(config(&mock, dir.path(), &out, &[])))
        .await
        .unwrap();
    assert_eq!(
        delivered_ids(&out.contents()),
        vec!["a".to_string(), "b".to_string()]
    );
    assert_eq!(mock.requests()[2].params()["cursor"], "c1=");
}

/// A cursor that goes back in time: the second page holds 120 entries newer than what the
/// first delivered. The run stops with exit 1 naming the violation; nothing of that page goes
/// out, and the checkpoint stays at the first page (so a restart meets it again).
#[tokio::test]
async fn a_cursor_back_in_time_stops_without_moving_the_checkpoint() {
    let mock = crate::support::slack().await;
    let t = now() - 3000;
    let first: Vec<Value> = (0..3)
        .map(|i| entry(&format!("old-{i}"), t - i, "user_login"))
        .collect();
    let newer: Vec<Value> = (0..120)
        .map(|i| entry(&format!("new-{i}"), t + 100 + i, "user_login"))
        .collect();
    mock.script([
        Reply::ok(&page(&first, json!("c1="))),
        Reply::ok(&page(&newer, json!("c2="))),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    let err = bounded(run_once(config(&mock, dir.path(), &out, &[])))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 1, "{msg}");
    assert!(
        msg.contains("cursor_back_in_time") && msg.contains("holds 120 dated after"),
        "{msg}"
    );
    assert_eq!(delivered_ids(&out.contents()).len(), 3);
    let cp = CheckpointStore::new(dir.path()).load().unwrap().unwrap();
    let w = cp.window.expect("the window stays open");
    assert_eq!(w.cursor.as_deref(), Some("c1="));
    assert_eq!(w.low, Some(t - 2));
}

/// Entries dated outside the range asked for are delivered, with a warning, not dropped.
#[tokio::test]
async fn entries_outside_the_window_are_delivered_not_dropped() {
    let mock = crate::support::slack().await;
    mock.script([Reply::ok(&page(
        &[
            entry("future", now() + 3600, "user_login"),
            entry("inside", now() - 600, "user_login"),
            entry("ancient", now() - 30 * 86_400, "user_login"),
        ],
        json!(""),
    ))]);
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    bounded(run_once(config(&mock, dir.path(), &out, &[])))
        .await
        .unwrap();
    let mut ids = delivered_ids(&out.contents());
    ids.sort();
    assert_eq!(ids, vec!["ancient", "future", "inside"]);
    let cp = CheckpointStore::new(dir.path()).load().unwrap().unwrap();
    assert!(cp.window.is_none(), "the chain ended");
}

/// The same cursor again and again: fetched again a few times, the chain restarted once,
/// then the run stops (exit 1). `--once` ends.
#[tokio::test(start_paused = true)]
async fn the_same_cursor_forever_ends_with_an_error() {
    let mock = crate::support::slack().await;
    mock.always(Reply::ok(&page(&[], json!("same="))));
    let dir = tempfile::tempdir().unwrap();
    let msg = fails_with_exit_1(&mock, dir.path()).await;
    assert!(msg.contains("cursor_repeated"), "{msg}");
    let firsts = mock
        .requests()
        .iter()
        .filter(|r| !r.params().contains_key("cursor"))
        .count();
    assert_eq!(firsts, 2, "the chain was restarted once");
}

/// Endless distinct cursors that read nothing: the chain is restarted once, then the run
/// stops (exit 1).
#[tokio::test(start_paused = true)]
async fn endless_empty_pages_end_with_an_error() {
    let mock = crate::support::slack().await;
    mock.script((0..300).map(|i| Reply::ok(&page(&[], json!(format!("c{i}="))))));
    let dir = tempfile::tempdir().unwrap();
    let msg = fails_with_exit_1(&mock, dir.path()).await;
    assert!(msg.contains("no_progress"), "{msg}");
    assert_eq!(
        mock.requests().len(),
        200,
        "a hundred pages, a restart, a hundred pages"
    );
}

/// An error answer is read to a few KiB only: the 1 MiB body of a 503 does not reach the
/// request trace, which records the body as it was read.
#[tokio::test]
async fn error_bodies_are_read_to_a_few_kib() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 3, now() - 1800, 1700));
    let mut big = b"<html>".to_vec();
    big.resize(1 << 20, b'x');
    mock.script_at(0, Reply::bytes(big).with_status(503));
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    let out = SharedWriter::default();
    bounded(run_once(config(
        &mock,
        &dir.path().join("state"),
        &out,
        &["--trace-requests", traces.to_str().unwrap()],
    )))
    .await
    .unwrap();
    assert_eq!(delivered_ids(&out.contents()).len(), 3);
    let traced: u64 = std::fs::read_dir(&traces)
        .unwrap()
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum();
    assert!(traced > 0 && traced < 64 << 10, "traced {traced} bytes");
}
