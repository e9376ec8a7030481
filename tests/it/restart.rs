//! The built binary as a user runs it: exit codes, the token kept secret, the state-dir lock,
//! a corrupt checkpoint, a broken pipe, SIGTERM, and SIGKILL at random moments.

use crate::support::{counts, delivered_ids, delivered_ids_lenient, entries, now, run_command};
use slack_audit_source::simulate::{Reply, SimHandle};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use crate::support::TEST_TOKEN as TOKEN;

/// Runs the binary to completion off the async runtime (the simulator keeps serving meanwhile).
async fn output(mut cmd: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary starts"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fatal_error_exits_3_with_what_to_fix() {
    let cases = [
        ("invalid_authentication", "auditlogs:read"),
        ("missing_authentication", "token"),
        ("invalid_auth", "token"),
        ("not_authed", "token"),
        ("token_revoked", "revoked"),
        ("token_expired", "expired"),
        ("not_allowed_token_type", "xoxp"),
        ("missing_scope", "auditlogs:read"),
        ("user_not_authorized", "Owner"),
        (
            "team_not_authorized",
            "install it on the Enterprise organization",
        ),
        ("feature_not_enabled", "Enterprise Grid"),
        ("invalid_workspace", "Enterprise"),
        ("method_not_allowed", "not allow"),
        ("bad_endpoint", "--api-url"),
        ("invalid_action", "--action"),
    ];
    let mock = crate::support::slack().await;
    for (code, hint) in cases {
        mock.script([Reply::error(code)]);
        let dir = tempfile::tempdir().unwrap();
        let out = output(run_command(&mock.url(), dir.path(), &["--once"])).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{code}: {stderr}");
        assert!(
            stderr.contains(code) && stderr.contains(hint),
            "{code}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{code}: nothing on stdout");
    }
}

/// With every log level on and errors of every kind, the token shows up nowhere: not on
/// stderr, not on stdout, not in the state dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_appears_in_logs_output_or_state() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 15, now() - 1800, 1700));
    mock.script_at(0, Reply::status(500, "<html>oops</html>"));
    mock.script_at(1, Reply::rate_limited(0));
    mock.script_at(3, Reply::ok("{}"));
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_command(&mock.url(), dir.path(), &["--once", "--log-format", "json"]);
    cmd.env("SLACK_AUDIT_LOG", "trace");
    let out = output(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(delivered_ids(&out.stdout).len(), 15);
    let secret_part = "SECRET-abcdef0123456789";
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret_part));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret_part));
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&text).contains(secret_part));
    }
    // A fatal answer's message does not quote it either.
    mock.script([Reply::error("invalid_auth")]);
    let out = output(run_command(
        &mock.url(),
        tempfile::tempdir().unwrap().path(),
        &["--once"],
    ))
    .await;
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret_part));
    // Nor does a malformed token file.
    let tf = dir.path().join("token");
    std::fs::write(&tf, format!("{TOKEN} trailing words")).unwrap();
    let mut cmd = run_command(
        &mock.url(),
        tempfile::tempdir().unwrap().path(),
        &["--once", "--token-file"],
    );
    cmd.arg(&tf);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret_part));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_state_dir_exits_2() {
    let mock = crate::support::slack().await;
    let dir = tempfile::tempdir().unwrap();
    let mut first = run_command(&mock.url(), dir.path(), &["--interval", "1h"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    mock.wait_requests(1).await;
    let out = output(run_command(&mock.url(), dir.path(), &["--once"])).await;
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another slack-audit-source"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_is_a_clear_error_and_is_left_alone() {
    let mock = crate::support::slack().await;
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("checkpoint.json");
    std::fs::write(&cp, "{\"version\":1,\"next_oldest\":").unwrap();
    let out = output(run_command(&mock.url(), dir.path(), &["--once"])).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("checkpoint.json") && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&cp).unwrap(),
        "{\"version\":1,\"next_oldest\":"
    );
    assert!(
        mock.requests().is_empty(),
        "nothing fetched from a state it cannot trust"
    );
}

/// The shipper goes away: the write fails, the process stops, the checkpoint does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_pipe_stops_without_advancing_the_checkpoint() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 30, now() - 1800, 1700));
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_command(&mock.url(), dir.path(), &["--once"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take()); // the reading end is closed before anything is written
    let status = tokio::task::spawn_blocking(move || {
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (child.wait().unwrap(), err)
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(1), "{}", status.1);
    assert!(status.1.contains("stdout"), "{}", status.1);
    assert!(
        !dir.path().join("checkpoint.json").exists(),
        "no page was delivered, so no checkpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_cleanly_with_exit_0() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 20, now() - 1800, 1700));
    let dir = tempfile::tempdir().unwrap();
    let child = run_command(&mock.url(), dir.path(), &["--interval", "1h"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Caught up once the final page (2 pages of 10 + the end) has been served.
    mock.wait_requests(2).await;
    let out = tokio::task::spawn_blocking(move || {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let ids = delivered_ids(&out.stdout);
    assert!(counts(&ids).values().all(|n| *n == 1));
}

/// SIGKILL at random moments, many times, then a final catch-up: nothing is lost, and an id
/// repeats at most once per kill (the page in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
    use rand::Rng;
    let mock = crate::support::slack().await;
    let total = 3000;
    mock.insert(entries("k", total, now() - 3600, 3500));
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.ndjson");
    let state = dir.path().join("state");
    let kills = 20;
    let mut rng = rand::rng();
    for _ in 0..kills {
        let child = spawn_appending(&mock, &state, &out_path, &["--limit", "25"]);
        let delay = Duration::from_millis(rng.random_range(5..120));
        tokio::time::sleep(delay).await; // the randomness of the moment is the point of the test
        kill9(child).await;
    }
    let child = spawn_appending(&mock, &state, &out_path, &["--limit", "25", "--once"]);
    let status = tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(status.success());
    let (ids, torn) = delivered_ids_lenient(&std::fs::read(&out_path).unwrap_or_default());
    assert!(torn <= kills, "{torn} torn lines for {kills} kills");
    let c = counts(&ids);
    for i in 0..total {
        assert!(c.contains_key(&format!("k-{i}")), "k-{i} was lost");
    }
    let repeats: usize = c.values().map(|n| n - 1).sum();
    // Each kill can repeat at most the page in flight (a torn line's page comes again whole).
    assert!(repeats <= kills * 25, "{repeats} repeats for {kills} kills");
}

fn spawn_appending(mock: &SimHandle, state: &Path, out: &Path, extra: &[&str]) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .unwrap();
    run_command(&mock.url(), state, extra)
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn kill9(mut child: Child) {
    tokio::task::spawn_blocking(move || {
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
    })
    .await
    .unwrap();
}
