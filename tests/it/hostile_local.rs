//! The built binary against hostile local conditions: peers flooding the metrics port under a
//! low descriptor limit, secret files that are devices or FIFOs, a permissive umask, impossible
//! or misplaced checkpoints, an unwritable state dir, a config file holding a secret, and bad
//! bytes on `analyze`'s stdin.

use crate::support::receiver::{Flavor, Receiver, Step};
use crate::support::{bin, counts, delivered_ids, entries, now, run_command};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// Runs the binary to completion; a run that hangs fails the test instead of hanging it.
async fn output(cmd: std::process::Command) -> Output {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("the binary starts");
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the binary finished within 60 s")
        .expect("the binary ran")
}

fn sigterm(pid: u32) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
}

/// 400 connections that send half a request, under a 256-descriptor limit: `/healthz` keeps
/// answering, and the poller still delivers and checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_flood_under_a_low_descriptor_limit_takes_nothing_down() {
    let mock = crate::support::slack().await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = run_command(
        &mock.url(),
        dir.path(),
        &["--interval", "1s", "--metrics-listen", &listen],
    );
    // SAFETY: setrlimit is async-signal-safe and touches only the child being started.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    // The listener is bound before the first poll.
    mock.wait_requests(1).await;

    let mut peers = Vec::new();
    for _ in 0..400 {
        let Ok(mut s) = tokio::net::TcpStream::connect(&listen).await else {
            continue;
        };
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
        peers.push(s);
    }
    assert!(peers.len() >= 300, "{} connections opened", peers.len());

    let healthz = async {
        let mut s = tokio::net::TcpStream::connect(&listen).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer).await;
        answer
    };
    let answer = tokio::time::timeout(Duration::from_secs(30), healthz)
        .await
        .expect("/healthz answers during the flood");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");

    // Events that arrive during the flood are delivered and checkpointed.
    mock.insert(entries("flood", 5, now(), 1));
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    let delivered = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
            if delivered_ids(&out).len() >= 5 {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        delivered,
        Ok(true),
        "the events were delivered during the flood"
    );
    sigterm(child.id().unwrap());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(counts(&delivered_ids(&out)).values().all(|n| *n == 1));
    let cp = std::fs::read_to_string(dir.path().join("checkpoint.json")).unwrap();
    assert!(cp.contains("\"version\": 1"), "{cp}");
    drop(peers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 5, now() - 1800, 1700));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut cmd = run_command(&mock.url(), &state, &["--once"]);
    // SAFETY: umask is async-signal-safe and touches only the child being started.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let out = output(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(delivered_ids(&out.stdout).len(), 5);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("checkpoint.json")), 0o600);
    assert_eq!(mode(&state.join("state.lock")), 0o600);
}

/// A window of `i64::MIN..i64::MAX` would be sent to Slack as is and close with nothing
/// delivered: it is refused before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_checkpoint_exits_2_before_any_request() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 5, now() - 1800, 1700));
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"{{"version": 1, "next_oldest": {}, "window": {{"oldest": -9223372036854775808, "latest": 9223372036854775807, "chain_latest": 9223372036854775807, "cursor": null, "low": null, "ids_at_low": []}}, "updated_at": "2026-11-21T08:00:00Z"}}"#,
        now() - 3600
    );
    std::fs::write(dir.path().join("checkpoint.json"), &body).unwrap();
    let out = output(run_command(&mock.url(), dir.path(), &["--once"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("window.oldest = -9223372036854775808"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(mock.requests().is_empty());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("checkpoint.json")).unwrap(),
        body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_or_a_dangling_symlink_as_checkpoint_exits_2() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 5, now() - 1800, 1700));
    for (make, want) in [
        (
            &(|p: &Path| std::fs::create_dir(p).unwrap()) as &dyn Fn(&Path),
            "a directory",
        ),
        (
            &|p: &Path| std::os::unix::fs::symlink(p.with_file_name("elsewhere"), p).unwrap(),
            "a symlink to a missing file",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        make(&dir.path().join("checkpoint.json"));
        let out = output(run_command(&mock.url(), dir.path(), &["--once"])).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{want}: {stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(out.stdout.is_empty(), "{want}: nothing delivered");
    }
}

/// A state dir where the checkpoint cannot be written: found at start, before any page goes
/// out (today the page was delivered, then the write failed, and it came again next run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_state_dir_delivers_nothing() {
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 5, now() - 1800, 1700));
    let dir = tempfile::tempdir().unwrap();
    // The temp file's path taken by a directory: writes fail even as root.
    std::fs::create_dir(dir.path().join("checkpoint.json.tmp")).unwrap();
    let out = output(run_command(&mock.url(), dir.path(), &["--once"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("checkpoint.json.tmp"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing delivered: {stderr}");
}

/// A token file that is a device, a FIFO or too large is refused at start with exit 2, naming
/// the file; nothing is read from `/dev/zero` and nothing waits on the FIFO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_files_that_are_not_small_regular_files_exit_2() {
    let mock = crate::support::slack().await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let large = dir.path().join("large");
    std::fs::write(&large, vec![b'x'; 70_000]).unwrap();
    for (file, want) in [
        (Path::new("/dev/zero"), "device"),
        (fifo.as_path(), "FIFO"),
        (large.as_path(), "at most 65536 bytes"),
    ] {
        let mut cmd = run_command(&mock.url(), &dir.path().join("state"), &["--once"]);
        cmd.arg("--token-file").arg(file);
        let out = output(cmd).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", file.display());
        assert!(
            stderr.contains(&*file.to_string_lossy()) && stderr.contains(want),
            "{stderr}"
        );
    }
    // The sink's credentials go through the same checks.
    let mut cmd = run_command(&mock.url(), &dir.path().join("state"), &["--once"]);
    cmd.args(["--sink", "http", "--http-url", "http://127.0.0.1:9/"])
        .arg("--http-bearer-token-file")
        .arg(&fifo);
    let out = output(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("FIFO"), "{stderr}");
    assert!(mock.requests().is_empty());
}

/// A header secret written in the config file is used, and never copied into the process
/// environment (where `/proc/PID/environ` and every child would see it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_secret_takes_effect_and_stays_out_of_the_environment() {
    const SECRET: &str = "cfg-file-secret-5f0e9a";
    let mock = crate::support::slack().await;
    mock.insert(entries("e", 3, now() - 1800, 1700));
    // The batch is taken and its answer held for an hour: the process waits meanwhile.
    let rx = Receiver::start(
        Flavor::Vector,
        vec![Step::TakeSlowly(Duration::from_secs(3600))],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "sink = \"http\"\nhttp_url = \"{}\"\nhttp_timeout = \"1h\"\nhttp_header = [\"X-Api-Key: {SECRET}\"]\n",
            rx.url("/")
        ),
    )
    .unwrap();
    let mut cmd = run_command(&mock.url(), &dir.path().join("state"), &["--once"]);
    cmd.arg("--config").arg(&config);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    rx.wait_for_requests(1).await;
    let pid = child.id().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        !environ
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "the config file's secret is in /proc/{pid}/environ"
    );
    assert!(
        !environ
            .split(|b| *b == 0)
            .any(|kv| kv.starts_with(b"SLACK_AUDIT_HTTP")),
        "no file value became an environment variable"
    );
    let taken = rx.taken();
    assert_eq!(
        taken[0].headers.get("x-api-key").unwrap().to_str().unwrap(),
        SECRET,
        "the file's header was sent"
    );
    sigterm(pid);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One line of bad bytes: one `pipeline_error` (keeping the entry's id), a warning with the
/// line number, and the lines after it still analysed.
#[test]
fn analyze_reads_past_bad_bytes() {
    let good = |id: &str| serde_json::to_vec(&crate::support::entry(id, now() - 60, "user_login"));
    let mut input = good("a-1").unwrap();
    input.extend_from_slice(b"\n{\"id\":\"bad-2\",\"action\":\"user_login\",\"x\":\"\xff\xfe\"}\n");
    input.extend_from_slice(&good("c-3").unwrap());
    input.push(b'\n');
    let mut child = bin()
        .args(["analyze", "--all"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let docs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 3, "{docs:#?}");
    assert_eq!(docs[0]["event"]["id"], "a-1");
    assert_eq!(docs[1]["event"]["kind"], "pipeline_error");
    assert_eq!(docs[1]["event"]["id"], "bad-2");
    assert_eq!(docs[2]["event"]["id"], "c-3");
    assert!(
        stderr.contains("line 2") && stderr.contains("not UTF-8"),
        "{stderr}"
    );
}
