//! Operating it: `status` beside a running reader and on a stopped one, in words and as JSON,
//! and its errors, which are `run`'s.

use crate::support::{bin, entries, now, run_command};
use serde_json::Value;
use slack_audit_source::simulate::SimHandle;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

const TOKEN: &str = "xoxp-status-test-not-a-real-token";

async fn output(mut cmd: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .unwrap()
}

fn status(state: &Path, json: bool) -> std::process::Command {
    let mut cmd = bin();
    cmd.arg("status").arg("--state-dir").arg(state);
    if json {
        cmd.arg("--json");
    }
    cmd.env_remove("SLACK_AUDIT_STATE_DIR");
    cmd
}

async fn status_json(state: &Path) -> Value {
    let out = output(status(state, true)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_describes_a_caught_up_reader_in_words_and_json() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 25, now() - 3000, 2900));
    let dir = tempfile::tempdir().unwrap();
    let mut run = run_command(&mock.url(), dir.path(), &[]);
    run.arg("--once").env("SLACK_AUDIT_TOKEN", TOKEN);
    let out = output(run).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = output(status(dir.path(), false)).await;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for words in [
        "reader: not running",
        "window: none open",
        "delivered through ",
        "checkpoint written ",
        "analysis state: ",
    ] {
        assert!(text.contains(words), "{words:?} missing from:\n{text}");
    }

    let v = status_json(dir.path()).await;
    assert_eq!(v["reader_running"], false);
    assert_eq!(v["window"], Value::Null);
    assert!(v["analysis_state_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["analysis_users"].is_u64(), "{v}");
    // Caught up: behind by about the settle lag, certainly less than a minute or two.
    let behind = v["behind_seconds"].as_i64().unwrap();
    assert!((0..120).contains(&behind), "{v}");
    assert!(v["checkpoint_age_seconds"].as_i64().unwrap() < 120, "{v}");
}

/// Beside a running reader: the lock is not taken (the reader keeps running and checkpointing)
/// and its pid is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_running_reader_and_leaves_it_alone() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 40, now() - 3000, 2900));
    let dir = tempfile::tempdir().unwrap();
    let mut run = run_command(&mock.url(), dir.path(), &[]);
    run.args(["--interval", "1s"])
        .env("SLACK_AUDIT_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = run.spawn().unwrap();
    let cp = dir.path().join("checkpoint.json");
    let mut waited = Duration::ZERO;
    while !cp.exists() {
        assert!(waited < Duration::from_secs(60), "no checkpoint written");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    let v = status_json(dir.path()).await;
    assert_eq!(v["reader_running"], true, "{v}");
    assert_eq!(v["reader_pid"], child.id(), "{v}");
    let text = String::from_utf8(output(status(dir.path(), false)).await.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "reader: running, pid {} holds the lock",
            child.id()
        )),
        "{text}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the reader still runs after status looked"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let v = status_json(dir.path()).await;
    assert_eq!(v["reader_running"], false, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_missing_dir_or_a_corrupt_checkpoint_exits_2_as_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = output(status(&missing, false)).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot use state dir") && stderr.contains("nope"),
        "{stderr}"
    );
    assert!(!missing.exists(), "status creates nothing");

    std::fs::write(
        dir.path().join("checkpoint.json"),
        "{\"version\":1,\"next_oldest\":",
    )
    .unwrap();
    let from_status = output(status(dir.path(), true)).await;
    assert_eq!(from_status.status.code(), Some(2));
    assert!(from_status.stdout.is_empty());
    let mock = crate::support::slack().await;
    let mut run = run_command(&mock.url(), dir.path(), &[]);
    run.arg("--once").env("SLACK_AUDIT_TOKEN", TOKEN);
    let from_run = output(run).await;
    assert_eq!(from_run.status.code(), Some(2));
    // The error as both print it: from "checkpoint <path> is corrupt" to the end of its line.
    let message = |o: &Output| {
        let s = String::from_utf8_lossy(&o.stderr).to_string();
        let line = s
            .lines()
            .find(|l| l.contains("is corrupt"))
            .unwrap_or_else(|| panic!("{s}"));
        line[line.find("checkpoint ").unwrap()..].to_string()
    };
    assert_eq!(message(&from_status), message(&from_run));
}

/// A backfill of `pages` pages of ten, at two requests a second: long enough for a few
/// progress reports.
async fn slow_backfill(pages: usize) -> (SimHandle, tempfile::TempDir) {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", pages * 10, now() - 7000, 6900));
    (mock, tempfile::tempdir().unwrap())
}

fn slow_run(mock: &SimHandle, state: &Path) -> std::process::Command {
    let mut run = run_command(&mock.url(), state, &[]);
    run.args(["--once", "--max-requests-per-minute", "120"])
        .env("SLACK_AUDIT_TOKEN", TOKEN)
        .stdout(Stdio::null());
    run
}

/// On a terminal: one line, redrawn in place with `\r`, with the window, the position, the
/// events, the rate and an ETA; erased when the backfill is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_on_a_terminal_shows_one_redrawn_progress_line() {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mock, dir) = slow_backfill(8).await;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the integers given; no name, termios or
    // window size is asked for.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut run = slow_run(&mock, dir.path());
    run.stderr(Stdio::from(slave));
    let mut child = run.spawn().unwrap();
    drop(run); // our copy of the terminal's slave end: EOF on the master when the child exits
    let seen = tokio::task::spawn_blocking(move || {
        let mut master = std::fs::File::from(master);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // The master reads EIO once the last slave descriptor is closed: that is the end.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    })
    .await
    .unwrap();
    assert!(child.wait().unwrap().success());
    let seen = String::from_utf8_lossy(&seen);
    let draws = seen.matches("\r\x1b[Kbackfill ").count();
    assert!(draws >= 2, "the line is redrawn every second:\n{seen:?}");
    let line = seen
        .split("\r\x1b[K")
        .find(|l| l.starts_with("backfill "))
        .unwrap();
    for part in [" → ", "%", " events", "/s", "ETA "] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
    assert!(!line.contains('\n'), "one line, never scrolled: {line:?}");
}

/// Not a terminal: no `\r`, but an info log line per --progress-interval, with the figures as
/// JSON fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_into_a_pipe_logs_its_progress_as_fields() {
    let (mock, dir) = slow_backfill(8).await;
    let mut run = slow_run(&mock, dir.path());
    run.args(["--log-format", "json", "--progress-interval", "1s"]);
    let out = output(run).await;
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains('\r'), "{stderr}");
    let reports: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["percent"].is_string())
        .collect();
    assert!(reports.len() >= 2, "a report a second:\n{stderr}");
    let last = &reports[reports.len() - 1]["fields"];
    for field in ["oldest", "latest", "events", "events_per_second", "message"] {
        assert!(!last[field].is_null(), "{field} missing from {last}");
    }
    let percent: f64 = last["percent"].as_str().unwrap().parse().unwrap();
    assert!((0.0..=100.0).contains(&percent), "{last}");
}

/// `demo` with no flags: the story plays, the demo stops by itself with exit 0 and a summary
/// on stderr, and the `analyze` command it gives shows the same findings again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_ends_by_itself_with_a_summary_and_a_way_to_see_the_findings_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = bin();
    demo.arg("demo")
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = demo.spawn().unwrap();
    let pid = child.id();
    // A watchdog instead of a hang if the demo never stops: the story plays in under a minute.
    let watchdog = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(240)).await;
        // SAFETY: kill(2) on the child's pid, which is ours until we reap it.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    watchdog.abort();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("demo: done."), "{stderr}");
    // Its two runs share one process: a rule that is off is said so once.
    assert_eq!(
        stderr
            .matches("slack.detect.login_new_country is off")
            .count(),
        1,
        "{stderr}"
    );
    let findings: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|d| d["event"]["kind"] == "alert")
        .collect();
    assert!(!findings.is_empty(), "the story's finding is delivered");
    let rule = findings[0]["rule"]["id"].as_str().unwrap();
    assert!(
        stderr.contains(&format!("  {rule} (")),
        "findings by rule: {stderr}"
    );
    let command = stderr
        .lines()
        .find_map(|l| l.split("Show the findings again:").nth(1))
        .unwrap_or_else(|| panic!("no analyze command in {stderr}"))
        .trim()
        .to_string();
    let documents = command.split(" < ").nth(1).unwrap();
    assert!(Path::new(documents).starts_with(tmp.path()), "{command}");
    let again = output({
        let mut analyze = bin();
        analyze
            .arg("analyze")
            .stdin(std::fs::File::open(documents).unwrap());
        analyze
    })
    .await;
    assert_eq!(again.status.code(), Some(0));
    let again: Vec<Value> = String::from_utf8_lossy(&again.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The same findings: the same rules about the same users. (Their ids may differ: analyze
    // sees the whole story at once, so a finding can cite more contributing events than it
    // did when it fired mid-stream, and its id hashes that evidence.)
    let found = |docs: &[Value]| {
        let mut v: Vec<_> = docs
            .iter()
            .map(|d| (d["rule"]["id"].clone(), d["user"]["id"].clone()))
            .collect();
        v.sort_by_key(|p| p.0.to_string() + &p.1.to_string());
        v
    };
    assert_eq!(found(&again), found(&findings), "the same findings");
}
