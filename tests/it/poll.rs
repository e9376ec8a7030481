//! The `run` pipeline in-process against the simulator (with scripted replies): paging, the window, retries,
//! empty pages, glitches, restarts and `invalid_cursor` recovery.

use crate::support::{counts, delivered_ids, entries, entry, now};
use slack_audit_source::checkpoint::{Checkpoint, CheckpointStore};
use slack_audit_source::config::RunConfig;
use slack_audit_source::retry::Backoff;
use slack_audit_source::shutdown::Shutdown;
use slack_audit_source::simulate::{Reply, SimHandle};
use slack_audit_source::sink::stdout::SharedWriter;
use slack_audit_source::Overrides;
use std::path::Path;
use std::time::Duration;

/// A `run --once` in process: its config and where its stdout goes.
pub struct TestRun {
    /// The configuration.
    pub config: RunConfig,
    /// Its stdout.
    pub out: SharedWriter,
}

/// A `run --once` against `mock`, writing into `out`; `extra` flags override.
pub fn config(mock: &SimHandle, dir: &Path, out: &SharedWriter, extra: &[&str]) -> TestRun {
    TestRun {
        config: crate::support::run_config(&mock.url(), dir, extra),
        out: out.clone(),
    }
}

/// What tests replace in a run: the stdout writer and a fast Slack backoff.
pub fn overrides(out: &SharedWriter) -> Overrides {
    Overrides::new().stdout(out.clone()).slack_backoff(fast())
}

/// Runs to completion with a fast backoff, as `--once` does.
pub async fn run_once(run: TestRun) -> Result<(), slack_audit_source::Error> {
    slack_audit_source::run_with(run.config, overrides(&run.out), std::future::pending()).await
}

fn fast() -> Backoff {
    Backoff::new(Duration::from_millis(1), Duration::from_millis(5))
}

fn checkpoint(dir: &Path) -> Checkpoint {
    CheckpointStore::new(dir)
        .load()
        .expect("readable checkpoint")
        .expect("a checkpoint exists")
}

fn assert_exactly_once(out: &SharedWriter, want: usize) {
    let ids = delivered_ids(&out.contents());
    let dups: Vec<_> = counts(&ids).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    assert_eq!(ids.len(), want, "delivered {} of {want}", ids.len());
}

#[tokio::test]
async fn pages_through_many_pages_delivering_each_entry_once() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 95, now() - 1800, 1700));
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    run_once(config(&mock, dir.path(), &out, &[]))
        .await
        .unwrap();
    assert_exactly_once(&out, 95);
    assert!(
        mock.requests().len() >= 10,
        "95 entries at limit 10 need at least 10 pages"
    );
    let cp = checkpoint(dir.path());
    assert!(
        cp.window.is_none(),
        "the chain ended, so the window is closed"
    );
    assert!(
        cp.next_oldest > now() - 5,
        "next window starts after the one read: {}",
        cp.next_oldest
    );
}

#[tokio::test]
async fn the_window_is_resent_with_every_cursor_and_the_cursor_is_url_encoded() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 40, now() - 1800, 1700));
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    run_once(config(
        &mock,
        dir.path(),
        &out,
        &[
            "--action",
            "user_login,file_downloaded",
            "--actor",
            "U0123ABCD",
        ],
    ))
    .await
    .unwrap();
    let reqs = mock.requests();
    let first = &reqs[0];
    assert!(!first.params().contains_key("cursor"));
    assert!(
        first.params()["latest"].parse::<i64>().unwrap() < now(),
        "never the current second"
    );
    assert_eq!(
        first.authorization.as_deref(),
        Some(format!("Bearer {}", crate::support::TEST_TOKEN).as_str())
    );
    for r in &reqs[1..] {
        assert_eq!(r.params()["oldest"], first.params()["oldest"]);
        assert_eq!(r.params()["latest"], first.params()["latest"]);
        assert_eq!(r.params()["action"], "user_login,file_downloaded");
        assert_eq!(r.params()["actor"], "U0123ABCD");
        let cursor = &r.params()["cursor"];
        assert!(
            cursor.ends_with('='),
            "the simulator's cursors are padded: {cursor}"
        );
        assert!(
            r.query.contains("%3D") && !r.query.contains("=&") && !r.query.ends_with("=="),
            "cursor not encoded: {}",
            r.query
        );
    }
}

#[tokio::test]
async fn every_empty_page_variant_is_a_normal_page() {
    for body in [
        r#"{"ok":true,"entries":[],"response_metadata":{"next_cursor":""}}"#,
        r#"{"ok":true,"entries":[],"response_metadata":{}}"#,
        r#"{"entries":[]}"#,
    ] {
        let mock = crate::support::slack().await;
        mock.script([Reply::ok(body)]);
        let dir = tempfile::tempdir().unwrap();
        let out = SharedWriter::default();
        run_once(config(&mock, dir.path(), &out, &[]))
            .await
            .unwrap();
        assert!(out.contents().is_empty(), "{body}");
        assert_eq!(
            mock.requests().len(),
            1,
            "{body}: one request ends the chain"
        );
        assert!(checkpoint(dir.path()).window.is_none(), "{body}");
    }
    // An empty page that still carries a cursor continues the chain.
    let mock = crate::support::slack().await;
    mock.script([
        Reply::ok(r#"{"entries":[],"response_metadata":{"next_cursor":"bmV4dA=="}}"#),
        Reply::ok(r#"{"entries":[]}"#),
    ]);
    let dir = tempfile::tempdir().unwrap();
    run_once(config(&mock, dir.path(), &SharedWriter::default(), &[]))
        .await
        .unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].params()["cursor"], "bmV4dA==");
}

#[tokio::test]
async fn a_200_without_entries_mid_chain_is_retried_not_taken_as_the_end() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 50, now() - 1800, 1700));
    mock.script_at(2, Reply::ok("{}"));
    mock.script_at(
        3,
        Reply::ok(r#"{"ok":true,"response_metadata":{"next_cursor":""}}"#),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    run_once(config(&mock, dir.path(), &out, &[]))
        .await
        .unwrap();
    assert_exactly_once(&out, 50);
}

#[tokio::test]
async fn server_errors_html_and_truncated_bodies_are_retried() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 30, now() - 1800, 1700));
    mock.script_at(
        0,
        Reply::status(500, "<html><body>Internal error</body></html>"),
    );
    mock.script_at(2, Reply::ok(r#"{"ok":true,"entries":[{"id":"trunc"#));
    mock.script_at(3, Reply::status(502, "<html>bad gateway</html>"));
    mock.script_at(4, Reply::status(408, ""));
    mock.script_at(5, Reply::ok("<html>You've found a glitch</html>"));
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    run_once(config(&mock, dir.path(), &out, &[]))
        .await
        .unwrap();
    assert_exactly_once(&out, 30);
}

/// Paused time: the 30 s `Retry-After` is waited in virtual time, and measured.
#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 5, now() - 1800, 1700));
    mock.script_at(0, Reply::rate_limited(30));
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    let started = tokio::time::Instant::now();
    run_once(config(&mock, dir.path(), &out, &[]))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "waited only {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "waited {:?}",
        started.elapsed()
    );
    assert_exactly_once(&out, 5);
}

/// Stops after some pages, then restarts: the same window, the saved cursor, no gap, no repeat.
#[tokio::test]
async fn a_restart_mid_chain_resumes_the_cursor_without_gap_or_duplicate() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 100, now() - 1800, 1700));
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    stop_after_requests(&mock, config(&mock, dir.path(), &out, &[]), 4).await;
    let cp = checkpoint(dir.path());
    let w = cp
        .window
        .clone()
        .expect("stopped mid-chain, so a window is open");
    assert!(w.cursor.is_some());
    let before = mock.requests().len();
    run_once(config(&mock, dir.path(), &out, &[]))
        .await
        .unwrap();
    let resumed = &mock.requests()[before];
    assert_eq!(resumed.params()["cursor"], w.cursor.unwrap());
    assert_eq!(resumed.params()["latest"], w.latest.to_string());
    assert_exactly_once(&out, 100);
}

/// After a restart Slack refuses the saved cursor: the window is re-read below `low`, and
/// what was delivered at `low` is skipped.
#[tokio::test]
async fn invalid_cursor_rereads_below_what_was_delivered() {
    let mock = crate::support::slack().await;
    let base = now() - 1800;
    mock.insert(entries("e", 60, base, 600));
    // Two same-second groups so `low` holds several ids.
    mock.insert((0..4).map(|i| entry(&format!("burst-{i}"), base + 300, "file_downloaded")));
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    stop_after_requests(&mock, config(&mock, dir.path(), &out, &[]), 3).await;
    let w = checkpoint(dir.path()).window.expect("a window is open");
    let low = w.low.expect("pages were delivered");
    mock.invalidate_cursors();
    let before = mock.requests().len();
    run_once(config(&mock, dir.path(), &out, &[]))
        .await
        .unwrap();
    let reqs = mock.requests();
    assert!(
        reqs[before].params().contains_key("cursor"),
        "first tries the saved cursor"
    );
    let reread = &reqs[before + 1];
    assert!(!reread.params().contains_key("cursor"));
    assert_eq!(
        reread.params()["latest"],
        low.to_string(),
        "the re-read chain is [oldest, low]"
    );
    assert_eq!(reread.params()["oldest"], w.oldest.to_string());
    assert_exactly_once(&out, 64);
    // The next window still starts after the original window, not after `low`.
    let next_window = reqs[before..]
        .iter()
        .find(|r| r.params()["oldest"] != w.oldest.to_string());
    if let Some(r) = next_window {
        assert_eq!(r.params()["oldest"], (w.latest + 1).to_string());
    }
    assert!(checkpoint(dir.path()).next_oldest > w.latest);
}

/// A burst of more than `limit` entries in one second, on both sides of a window boundary.
#[tokio::test]
async fn a_same_second_burst_larger_than_limit_at_a_window_boundary() {
    let mock = crate::support::slack().await;
    let t = now();
    // 25 entries in each of the seconds around where the first window will end.
    for s in (t - 8)..=(t - 2) {
        mock.insert((0..25).map(|i| entry(&format!("b{s}-{i}"), s, "file_downloaded")));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    run_once(config(&mock, dir.path(), &out, &["--settle-lag", "5s"]))
        .await
        .unwrap();
    let boundary = checkpoint(dir.path()).next_oldest - 1;
    assert!(
        (t - 8..=t - 2).contains(&boundary),
        "the first window ended inside the bursts at {boundary}"
    );
    // The second run reads the rest up to now − 1.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    run_once(config(&mock, dir.path(), &out, &[]))
        .await
        .unwrap();
    assert_exactly_once(&out, 7 * 25);
}

/// Runs `run` until the mock has served `n` requests, then shuts down (finishing the page
/// in hand, as SIGTERM does).
pub async fn stop_after_requests(mock: &SimHandle, run: TestRun, n: usize) {
    let (trigger, mut shutdown) = Shutdown::new();
    let task = tokio::spawn(slack_audit_source::run_with(
        run.config,
        overrides(&run.out),
        async move { shutdown.wait().await },
    ));
    mock.wait_requests(n).await;
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops promptly")
        .unwrap()
        .unwrap();
}

/// An event dated behind a window that was already read (Slack indexed it late): caught by
/// `--overlap`, missed without it, and nothing else repeated either way.
#[tokio::test]
async fn overlap_catches_late_events_that_are_missed_without_it() {
    for (overlap, caught) in [("0s", false), ("2m", true)] {
        let mock = crate::support::slack().await;
        mock.insert(entries("e", 20, now() - 600, 590));
        let dir = tempfile::tempdir().unwrap();
        let out = SharedWriter::default();
        run_once(config(&mock, dir.path(), &out, &["--overlap", overlap]))
            .await
            .unwrap();
        let first_end = checkpoint(dir.path()).next_oldest - 1;
        // Indexed late: dated inside the window already read, visible only now.
        mock.insert([entry("late", first_end - 30, "file_downloaded")]);
        tokio::time::sleep(Duration::from_millis(1100)).await; // a new second for the next window
        run_once(config(&mock, dir.path(), &out, &["--overlap", overlap]))
            .await
            .unwrap();
        let ids = delivered_ids(&out.contents());
        assert_eq!(
            ids.contains(&"late".to_string()),
            caught,
            "overlap {overlap}"
        );
        assert_exactly_once(&out, if caught { 21 } else { 20 });
        let cp = checkpoint(dir.path());
        if caught {
            assert!(
                !cp.recent.is_empty(),
                "ids within the overlap span are remembered"
            );
            assert!(
                cp.recent.keys().all(|ts| *ts >= cp.next_oldest - 120 - 1),
                "memory bounded by the span: {:?}",
                cp.recent.keys()
            );
        } else {
            assert!(cp.recent.is_empty());
        }
    }
}

/// A rotated token file takes effect on the next request, without a restart.
#[tokio::test]
async fn a_rotated_token_file_is_used_without_a_restart() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 50, now() - 1800, 1700));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "xoxp-first\n").unwrap();
    let tf = token.to_string_lossy().to_string();
    let state = dir.path().join("state");
    let cfg = config(
        &mock,
        &state,
        &SharedWriter::default(),
        &["--token-file", &tf, "--max-requests-per-minute", "120"],
    );
    let task = tokio::spawn(run_once(cfg));
    mock.wait_requests(2).await;
    std::fs::write(&token, "xoxp-second\n").unwrap();
    task.await.unwrap().unwrap();
    let auth: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.authorization.clone().unwrap_or_default())
        .collect();
    assert_eq!(auth[0], "Bearer xoxp-first");
    assert_eq!(auth.last().unwrap(), "Bearer xoxp-second", "{auth:?}");
}

/// `invalid_range` is clamped and retried, not fatal.
#[tokio::test(start_paused = true)]
async fn invalid_range_is_clamped_and_retried() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 12, now() - 1800, 1700));
    mock.script_at(0, Reply::error("invalid_range"));
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    run_once(config(&mock, dir.path(), &out, &[]))
        .await
        .unwrap();
    assert_exactly_once(&out, 12);
    let reqs = mock.requests();
    assert!(reqs[1].params()["latest"].parse::<i64>().unwrap() < now());
}

/// One page larger than the poller's chunk (1,000 entries) goes out in several sink writes
/// and one checkpoint: every entry once, newest first.
#[tokio::test]
async fn a_page_larger_than_a_chunk_is_delivered_whole_and_in_order() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 2500, now() - 3000, 2900));
    let dir = tempfile::tempdir().unwrap();
    let out = SharedWriter::default();
    run_once(config(&mock, dir.path(), &out, &["--limit", "9999"]))
        .await
        .unwrap();
    assert_exactly_once(&out, 2500);
    assert_eq!(mock.requests().len(), 1, "one page");
    let ids = delivered_ids(&out.contents());
    assert_eq!(ids.first().unwrap(), "e-2499", "newest first");
    assert_eq!(ids.last().unwrap(), "e-0");
}
