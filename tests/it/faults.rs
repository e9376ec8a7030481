//! Disk faults under the state dir: a full disk and a read-only remount stop the process with a
//! clear error, and once the fault clears a restart loses nothing.
//!
//! The state dir is a tiny tmpfs, which needs root (CI runs as root). Elsewhere the test says
//! why it did not run, and under `CI=true` it fails instead, so CI cannot silently skip it.

use crate::support::{counts, delivered_ids, entries, now, run_command};
use slack_audit_source::simulate::SimHandle;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then(|| Tmpfs(path.to_path_buf()))
    }
    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

async fn run_once(mock: &SimHandle, state: &Path, settle_lag: &str) -> Output {
    let mut cmd = run_command(&mock.url(), state, &[]);
    cmd.args(["--once", "--settle-lag", settle_lag])
        .env("SLACK_AUDIT_TOKEN", "xoxp-test");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_read_only_state_dir_stops_clearly_and_a_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let Some(fs) = Tmpfs::mount(&state, "256k") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (run as root)"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let mock = crate::support::slack().await;
    mock.insert(entries("a", 50, now() - 3000, 1000));
    let mut delivered = Vec::new();
    // The first window ends 20 minutes ago, so the events added next are ahead of it.
    let out = run_once(&mock, &state, "20m").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    delivered.extend(delivered_ids(&out.stdout));

    // Full: new events arrive, but the checkpoint cannot be written.
    mock.insert(entries("b", 50, now() - 1000, 900));
    let a_done = delivered.len();
    assert_eq!(a_done, 50);
    let filler = state.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 512 * 1024]); // fails part-way: the disk is full
    let out = run_once(&mock, &state, "1s").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("checkpoint") && stderr.contains("No space left"),
        "{stderr}"
    );
    delivered.extend(delivered_ids(&out.stdout));
    std::fs::remove_file(&filler).unwrap();

    // Read-only: refused at start, naming the state dir.
    fs.remount("ro");
    let out = run_once(&mock, &state, "1s").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("Read-only file system") && stderr.contains("state"),
        "{stderr}"
    );
    delivered.extend(delivered_ids(&out.stdout));
    fs.remount("rw");

    // Fault cleared: everything arrives; at most the page in hand at the fault came twice.
    let out = run_once(&mock, &state, "1s").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    delivered.extend(delivered_ids(&out.stdout));
    let c = counts(&delivered);
    for p in ["a", "b"] {
        for i in 0..50 {
            assert!(c.contains_key(&format!("{p}-{i}")), "{p}-{i} lost");
        }
    }
    let repeats: usize = c.values().map(|n| n - 1).sum();
    assert!(
        repeats <= 10,
        "{repeats} repeats; at most one page of 10 may repeat"
    );
}
