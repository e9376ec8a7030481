//! `status`: where the reader of a state directory stands, in words or as one JSON object.
//!
//! It reads the checkpoint without taking the state dir's lock, so it works beside a running
//! reader: the checkpoint is replaced by a rename, so a read sees the old file or the new one,
//! never half of one. It writes nothing (not even the leftover temp file `run` removes, which
//! a running reader may be writing). Whether a reader holds the lock comes from the kernel's
//! own table of `flock`s (`/proc/locks`), which shows the holder's pid without touching the lock.

use crate::checkpoint::{Checkpoint, CheckpointStore};
use chrono::{DateTime, TimeZone, Utc};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The state directory of the reader to describe (as given to `run`).
    #[arg(long, env = "SLACK_AUDIT_STATE_DIR", default_value = crate::statedir::DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
    /// One JSON object on stdout instead of sentences.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Prints the status of `args.state_dir` on stdout.
///
/// # Errors
///
/// A missing state dir or one that cannot be read (`crate::statedir::Error::Io`, exit 2), a
/// corrupt checkpoint (the same error `run` gives, exit 2), or a failed write to stdout.
pub fn run_status(args: &StatusArgs) -> Result<(), crate::Error> {
    let report = Report::read(&args.state_dir, Utc::now())?;
    let text = if args.json {
        format!("{}\n", report.to_json())
    } else {
        report.to_text()
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| crate::sink::Error::Stdout(e).into())
}

/// What `status` found.
#[derive(Debug)]
pub(crate) struct Report {
    /// The state directory.
    pub(crate) state_dir: PathBuf,
    /// When the report was made.
    pub(crate) now: DateTime<Utc>,
    /// The checkpoint, or `None` before the first page was delivered.
    pub(crate) checkpoint: Option<Checkpoint>,
    /// When `checkpoint.json` was last written (its modification time).
    pub(crate) written_at: Option<DateTime<Utc>>,
    /// The pid of the process holding the state dir's lock, if one does.
    pub(crate) reader_pid: Option<u32>,
    /// Bytes of the analysis state in the checkpoint.
    pub(crate) analysis_bytes: usize,
    /// Users the analysis state tracks (windows or baselines).
    pub(crate) analysis_users: usize,
}

impl Report {
    /// Reads `state_dir` as of `now`.
    ///
    /// # Errors
    ///
    /// As [`run_status`].
    pub(crate) fn read(state_dir: &Path, now: DateTime<Utc>) -> Result<Report, crate::Error> {
        let dir_error = |source| crate::statedir::Error::Io {
            path: state_dir.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(state_dir).map_err(dir_error)?;
        if !meta.is_dir() {
            return Err(dir_error(std::io::Error::other("not a directory")).into());
        }
        let store = CheckpointStore::new(state_dir);
        let checkpoint = store.inspect()?;
        let written_at = std::fs::metadata(store.path())
            .and_then(|m| m.modified())
            .ok()
            .map(DateTime::<Utc>::from);
        let (analysis_bytes, analysis_users) = checkpoint
            .as_ref()
            .and_then(|cp| cp.analysis.as_ref())
            .map(|a| (a.0.get().len(), users_tracked(a.0.get())))
            .unwrap_or((0, 0));
        Ok(Report {
            state_dir: state_dir.to_path_buf(),
            now,
            reader_pid: lock_holder(&state_dir.join("state.lock")),
            checkpoint,
            written_at,
            analysis_bytes,
            analysis_users,
        })
    }

    /// The first second not yet delivered in full: everything before it is delivered.
    fn complete_before(&self) -> Option<i64> {
        let cp = self.checkpoint.as_ref()?;
        Some(cp.window.as_ref().map_or(cp.next_oldest, |w| w.oldest))
    }

    /// The report as one JSON object (`--json`).
    pub(crate) fn to_json(&self) -> Value {
        let cp = self.checkpoint.as_ref();
        let window = cp.and_then(|c| c.window.as_ref()).map(|w| {
            json!({
                "oldest": rfc3339(w.oldest),
                "latest": rfc3339(w.latest),
                "low": w.low.map(rfc3339),
                "progress_ratio": w.progress(),
                "cursor_pending": w.cursor.is_some(),
            })
        });
        let complete_before = self.complete_before();
        json!({
            "state_dir": self.state_dir.display().to_string(),
            "checkpoint": cp.is_some(),
            "window": window,
            "delivered_through": complete_before.map(|s| rfc3339(s - 1)),
            "behind_seconds": complete_before.map(|s| (self.now.timestamp() - s).max(0)),
            "checkpoint_written_at": self.written_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "checkpoint_age_seconds": self.written_at.map(|t| (self.now - t).num_seconds().max(0)),
            "reader_running": self.reader_pid.is_some(),
            "reader_pid": self.reader_pid,
            "analysis_state_bytes": self.analysis_bytes,
            "analysis_users": self.analysis_users,
            "responses_pending": self.responses_pending(),
        })
    }

    /// Response actions planned and not yet reported (`--respond`): a crash left them, or
    /// the reader is making their calls.
    fn responses_pending(&self) -> usize {
        self.checkpoint
            .as_ref()
            .and_then(|c| c.response.as_ref())
            .map_or(0, |r| r.actions.len())
    }

    /// The report in sentences.
    pub(crate) fn to_text(&self) -> String {
        let mut out = format!("state dir {}\n", self.state_dir.display());
        out.push_str(&match self.reader_pid {
            Some(pid) => format!("reader: running, pid {pid} holds the lock\n"),
            None => "reader: not running (nobody holds the lock)\n".into(),
        });
        let Some(cp) = &self.checkpoint else {
            out.push_str(
                "checkpoint: none yet; the first run starts --initial-lookback before now\n",
            );
            return out;
        };
        match &cp.window {
            Some(w) => {
                out.push_str(&format!(
                    "window: {} to {} ({}), {:.1}% read",
                    rfc3339(w.oldest),
                    rfc3339(w.latest),
                    span(w.latest - w.oldest + 1),
                    w.progress() * 100.0
                ));
                match w.low {
                    Some(low) => {
                        out.push_str(&format!(", newest first, down to {}\n", rfc3339(low)))
                    }
                    None => out.push_str(", no page delivered in it yet\n"),
                }
            }
            None => out.push_str("window: none open; the last one is done\n"),
        }
        if let Some(before) = self.complete_before() {
            out.push_str(&format!(
                "delivered through {}, {} behind now\n",
                rfc3339(before - 1),
                span((self.now.timestamp() - before).max(0))
            ));
        }
        if let Some(t) = self.written_at {
            out.push_str(&format!(
                "checkpoint written {} ({} ago)\n",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                span((self.now - t).num_seconds().max(0))
            ));
        }
        out.push_str(&format!(
            "analysis state: {}, {} user(s) tracked\n",
            bytes(self.analysis_bytes),
            self.analysis_users
        ));
        let pending = self.responses_pending();
        if pending > 0 {
            out.push_str(&format!(
                "responses: {pending} action(s) planned and not yet reported (the reader takes them up when it runs)\n"
            ));
        }
        out
    }
}

/// The users named in the analysis state: the actors with a window or a baseline. Read without building the state (it can be megabytes).
fn users_tracked(state: &str) -> usize {
    #[derive(Deserialize, Default)]
    struct Users {
        #[serde(default)]
        windows: BTreeMap<String, IgnoredAny>,
        #[serde(default)]
        baselines: BTreeMap<String, IgnoredAny>,
    }
    let users: Users = serde_json::from_str(state).unwrap_or_default();
    let all: BTreeSet<&String> = users.windows.keys().chain(users.baselines.keys()).collect();
    all.len()
}

/// The pid holding an `flock` on `path`, from `/proc/locks` (device and inode of the file),
/// without taking or testing the lock: a test lock could make a starting reader see the
/// directory as busy.
fn lock_holder(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, meta.dev(), meta.ino())
}

/// The `FLOCK` entry of `/proc/locks` for the file `(dev, ino)`, if any.
fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    // glibc's encoding of a device number.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let want = format!("{major:02x}:{minor:02x}:{ino}");
    locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; a blocked waiter's line has "->".
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") || fields.contains(&"->") {
            return None;
        }
        (fields.get(5) == Some(&want.as_str()))
            .then(|| fields.get(4)?.parse().ok())
            .flatten()
    })
}

fn rfc3339(secs: i64) -> String {
    Utc.timestamp_opt(secs, 0).single().map_or_else(
        || secs.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// A span of seconds, as the progress line says it.
fn span(secs: i64) -> String {
    crate::units::compact_duration(std::time::Duration::from_secs(secs.max(0) as u64))
}

fn bytes(n: usize) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_holder_is_found_by_device_and_inode() {
        let dev = (253u64 << 8) | 1; // fd:01
        let locks = "1: POSIX  ADVISORY  WRITE 99 fd:01:42 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 1234 fd:01:42 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 777 fd:01:42 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 555 fd:01:43 0 EOF\n";
        assert_eq!(holder_in(locks, dev, 42), Some(1234));
        assert_eq!(holder_in(locks, dev, 44), None);
        assert_eq!(holder_in(locks, dev + 1, 42), None);
    }

    #[test]
    fn users_are_counted_once_across_windows_and_baselines() {
        let state =
            r#"{"version":1,"windows":{"U1":{},"U2":{}},"baselines":{"U2":{"tor":{}},"U3":{}}}"#;
        assert_eq!(users_tracked(state), 3);
        assert_eq!(users_tracked("not json"), 0);
    }
}
