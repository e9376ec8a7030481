//! The checkpoint: where reading stands, saved atomically after each delivered page.
//!
//! The file is versioned JSON (`{"version": 1, ...}`), pinned by golden tests. Saving writes
//! `checkpoint.json.tmp`, fsyncs it, renames it over `checkpoint.json` and fsyncs the
//! directory: the rename is atomic, so after a crash at any moment the stable file is either
//! the old checkpoint or the new one, never a mix. The temp file is *not* read at start: a
//! crash can leave it half written, or written and never renamed into place, so only the
//! stable file counts.
//!
//! The file holds names, emails, IPs and file names: it is created 0600 whatever the umask.
//! [`CheckpointStore::load`] checks every value it reads against what a real run can write
//! (an impossible window would otherwise skip history silently) and proves the directory
//! writable, so that no page is delivered that could not be checkpointed.

pub(crate) mod response;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The format this binary writes and reads.
pub(crate) const VERSION: u64 = 1;

/// Where reading stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The first second not yet covered by a finished window: the next window starts here.
    pub next_oldest: i64,
    /// The window being read, if one is open.
    #[serde(default)]
    pub window: Option<Window>,
    /// Ids delivered recently, by second, kept for `--overlap` (bounded by the overlap span).
    /// Sets, probed once per entry; written as JSON arrays, sorted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recent: BTreeMap<i64, BTreeSet<String>>,
    /// The analysis state as read at start, opaque here (JSON text). Not written from here:
    /// [`CheckpointStore::save_with`] serialises the live state straight into the file, and
    /// [`CheckpointStore::save`] writes this one.
    #[serde(default, skip_serializing)]
    pub(crate) analysis: Option<AnalysisState>,
    /// The response stage's ledger (`--respond`): actions planned and not yet reported, their
    /// outcome so far, and the circuit breaker's memory. Absent when empty and in checkpoints
    /// written before the stage existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) response: Option<response::Ledger>,
    /// When this was saved (for people reading the file).
    pub(crate) updated_at: DateTime<Utc>,
}

/// The analysis state as JSON text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct AnalysisState(pub(crate) Box<serde_json::value::RawValue>);

impl PartialEq for AnalysisState {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// An open window and the chain being read in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Inclusive start (Unix seconds).
    pub oldest: i64,
    /// Inclusive end, fixed when the window opened; the next window starts at `latest + 1`.
    pub latest: i64,
    /// The end of the current chain's range: `latest`, or `low` for a re-read after
    /// `invalid_cursor`. Its cursors belong to `[oldest, chain_latest]`.
    pub(crate) chain_latest: i64,
    /// The next cursor of the chain; `None` before its first page.
    pub cursor: Option<String>,
    /// The oldest `date_create` delivered so far in the window.
    pub low: Option<i64>,
    /// The ids delivered at second `low`: a set (a burst second can hold tens of thousands),
    /// written as a sorted JSON array as it always was.
    pub(crate) ids_at_low: BTreeSet<String>,
}

impl Window {
    /// How far the reader has come down this window, newest first: 0 before its first page,
    /// `(latest - low) / (latest - oldest)` after, 1 at `oldest`. Slack reads newest first, so
    /// this is the share of the window's time span already delivered.
    pub(crate) fn progress(&self) -> f64 {
        let Some(low) = self.low else { return 0.0 };
        let span = (self.latest - self.oldest).max(1) as f64;
        ((self.latest - low) as f64 / span).clamp(0.0, 1.0)
    }

    /// A fresh window `[oldest, latest]`, nothing read.
    pub(crate) fn open(oldest: i64, latest: i64) -> Window {
        Window {
            oldest,
            latest,
            chain_latest: latest,
            cursor: None,
            low: None,
            ids_at_low: BTreeSet::new(),
        }
    }
}

/// Why the checkpoint cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing failed (permissions, a full or read-only disk).
    #[error("cannot {op} checkpoint {}: {source}; nothing is lost: free space or fix the state dir and restart (the last page is delivered again)", path.display())]
    Io {
        /// "read" or "write".
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a checkpoint we can read.
    #[error("checkpoint {} is corrupt: {reason}; fix or move it away (moving it restarts from --initial-lookback and repeats events)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Written by another version.
    #[error("checkpoint {} has version {version}, this binary reads version {VERSION}; run the version that wrote it", path.display())]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// What it says.
        version: String,
    },
    /// Something other than a regular file is where the checkpoint should be.
    #[error("checkpoint {} is {what}, not a file; move it away or point --state-dir elsewhere", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What is there instead ("a directory", "a symlink to a missing file"...).
        what: String,
    },
}

impl Error {
    /// True when the user must act on the file (exit 2), rather than a passing I/O fault.
    pub(crate) fn is_config(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. } | Error::UnknownVersion { .. } | Error::NotAFile { .. }
        )
    }
}

/// The first second of Slack's audit logs (2018-03-01T00:00:00Z): no checkpoint points before it.
pub(crate) const AUDIT_LOGS_EPOCH: i64 = 1_519_862_400;
/// How far past the local clock a checkpoint's seconds may be: another node's clock may run
/// ahead of this one, but not by a day.
pub(crate) const FUTURE_TOLERANCE: i64 = 86_400;
/// Most ids one list of the checkpoint may hold (the ids at one second). A burst second of a
/// real org holds thousands; a million is a file that was not written by us.
pub(crate) const MAX_IDS: usize = 1_000_000;
/// Longest id accepted (Slack's are 36-character UUIDs).
pub(crate) const MAX_ID_LEN: usize = 256;

/// The checkpoint file in a state directory.
#[derive(Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    /// The write buffer, kept from one checkpoint to the next: one is written every page, and
    /// allocating and freeing 64 KiB each time showed in profiles (glibc consolidates its free
    /// lists on every free that large).
    scratch: std::sync::Mutex<Vec<u8>>,
}

/// A checkpoint written to the temp file, not yet in place.
#[derive(Debug)]
#[must_use = "a prepared checkpoint takes effect only when committed"]
pub(crate) struct Prepared(());

impl CheckpointStore {
    /// The store in `dir` (which the caller has locked).
    pub fn new(dir: &Path) -> CheckpointStore {
        CheckpointStore {
            dir: dir.to_path_buf(),
            path: dir.join("checkpoint.json"),
            tmp: dir.join("checkpoint.json.tmp"),
            scratch: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The checkpoint file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the checkpoint; `None` on a first run.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`], [`Error::UnknownVersion`] or [`Error::Io`]; never a silent restart.
    pub fn load(&self) -> Result<Option<Checkpoint>, Error> {
        self.load_at(chrono::Utc::now().timestamp())
    }

    /// [`CheckpointStore::load`] with the clock given (values are checked against `now`).
    ///
    /// # Errors
    ///
    /// As [`CheckpointStore::load`].
    pub(crate) fn load_at(&self, now: i64) -> Result<Option<Checkpoint>, Error> {
        // See the module header: a leftover temp file is never trusted.
        match std::fs::remove_file(&self.tmp) {
            Ok(()) => {
                tracing::info!(path = %self.tmp.display(), "removed a checkpoint temp file left by an earlier run")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    op: "write",
                    path: self.tmp.clone(),
                    source,
                })
            }
        }
        self.probe()?;
        self.inspect_at(now)
    }

    /// Reads and checks the checkpoint as [`CheckpointStore::load`] does, but touches
    /// nothing: `status` reads beside a running reader, whose temp file may be half written.
    ///
    /// # Errors
    ///
    /// As [`CheckpointStore::load`], but for the writability probe.
    pub(crate) fn inspect(&self) -> Result<Option<Checkpoint>, Error> {
        self.inspect_at(chrono::Utc::now().timestamp())
    }

    fn inspect_at(&self, now: i64) -> Result<Option<Checkpoint>, Error> {
        let bytes = match self.read() {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e),
        };
        let cp = decode(&bytes).map_err(|e| match e {
            DecodeError::Version(version) => Error::UnknownVersion {
                path: self.path.clone(),
                version,
            },
            DecodeError::Corrupt(reason) => Error::Corrupt {
                path: self.path.clone(),
                reason,
            },
        })?;
        validate(&cp, now).map_err(|reason| Error::Corrupt {
            path: self.path.clone(),
            reason,
        })?;
        Ok(Some(cp))
    }

    /// The file's bytes; `None` when nothing is there. A directory, a dangling symlink or a
    /// device where the file should be is an error: taking it for "no checkpoint" would
    /// restart from `--initial-lookback` and repeat (or skip) history.
    fn read(&self) -> Result<Option<Vec<u8>>, Error> {
        let not_a_file = |what: &str| Error::NotAFile {
            path: self.path.clone(),
            what: what.to_string(),
        };
        let io = |source| Error::Io {
            op: "read",
            path: self.path.clone(),
            source,
        };
        let link = match std::fs::symlink_metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io(source)),
        };
        let meta = if link.file_type().is_symlink() {
            match std::fs::metadata(&self.path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(not_a_file("a symlink to a missing file"))
                }
                Err(source) => return Err(io(source)),
            }
        } else {
            link
        };
        if meta.is_dir() {
            return Err(not_a_file("a directory"));
        }
        if !meta.is_file() {
            return Err(not_a_file("a special file (a device, FIFO or socket)"));
        }
        std::fs::read(&self.path).map(Some).map_err(io)
    }

    /// Writes, fsyncs and removes the temp file: the directory takes a checkpoint before any
    /// page is delivered.
    fn probe(&self) -> Result<(), Error> {
        let io = |source| Error::Io {
            op: "write",
            path: self.tmp.clone(),
            source,
        };
        let mut f = create_private(&self.tmp).map_err(io)?;
        f.write_all(b"{}\n")
            .and_then(|()| f.sync_all())
            .map_err(io)?;
        drop(f);
        std::fs::remove_file(&self.tmp).map_err(io)
    }

    /// Writes `cp` to the temp file and fsyncs it; [`CheckpointStore::commit`] puts it in place.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    #[cfg(test)]
    pub(crate) fn prepare(&self, cp: &Checkpoint) -> Result<Prepared, Error> {
        self.prepare_with(cp, cp.analysis.as_ref())
    }

    /// [`CheckpointStore::prepare`] with `analysis` as the analysis state, serialised straight
    /// into the file: the state can be megabytes, and it is saved every page.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub(crate) fn prepare_with<A: Serialize>(
        &self,
        cp: &Checkpoint,
        analysis: Option<&A>,
    ) -> Result<Prepared, Error> {
        let io = |source| Error::Io {
            op: "write",
            path: self.tmp.clone(),
            source,
        };
        // A poisoned lock only means a panic mid-write: the buffer is cleared before use.
        let mut buf = self
            .scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        buf.clear();
        buf.reserve(WRITE_BUFFER);
        let mut f = create_private(&self.tmp).map_err(io)?;
        let mut w = Buffered {
            file: &mut f,
            buf: &mut buf,
        };
        encode_into(&mut w, cp, analysis).map_err(io)?;
        w.flush().map_err(io)?;
        // Without this fsync, a power loss after the rename could leave an empty file in place.
        f.sync_all().map_err(io)?;
        Ok(Prepared(()))
    }

    /// Renames the prepared checkpoint into place and fsyncs the directory.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub(crate) fn commit(&self, _prepared: Prepared) -> Result<(), Error> {
        let io = |source| Error::Io {
            op: "write",
            path: self.path.clone(),
            source,
        };
        std::fs::rename(&self.tmp, &self.path).map_err(io)?;
        // The rename lives in the directory's entry table: fsync the directory so that the
        // new name survives a power loss too.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    /// [`prepare`](Self::prepare) then [`commit`](Self::commit).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    #[cfg(test)]
    pub(crate) fn save(&self, cp: &Checkpoint) -> Result<(), Error> {
        let p = self.prepare(cp)?;
        self.commit(p)
    }

    /// [`prepare_with`](Self::prepare_with) then [`commit`](Self::commit).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub(crate) fn save_with<A: Serialize>(
        &self,
        cp: &Checkpoint,
        analysis: Option<&A>,
    ) -> Result<(), Error> {
        let p = self.prepare_with(cp, analysis)?;
        self.commit(p)
    }
}

/// The bytes written for `cp` (with its own analysis state): its fields with `version` first.
#[cfg(test)]
pub(crate) fn encode(cp: &Checkpoint) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing to a Vec fails only if serialising does, and a Checkpoint is plain data.
    let _ = encode_into(&mut bytes, cp, cp.analysis.as_ref());
    bytes
}

/// Writes `cp` with `analysis` as its analysis state: `version` first, the analysis last.
///
/// The checkpoint's own fields are pretty-printed for people reading the file; the analysis
/// state, which can be megabytes and is rewritten every page, goes on one compact line (a
/// third smaller, and a third less to write each page).
fn encode_into<W: Write, A: Serialize>(
    w: &mut W,
    cp: &Checkpoint,
    analysis: Option<&A>,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Versioned<'a> {
        version: u64,
        #[serde(flatten)]
        cp: &'a Checkpoint,
    }
    let head = serde_json::to_vec_pretty(&Versioned {
        version: VERSION,
        cp,
    })?;
    match analysis {
        None => w.write_all(&head)?,
        Some(analysis) => {
            // `head` is a pretty object ending in "\n}": reopen it for one more field.
            let open = head.strip_suffix(b"\n}").unwrap_or(&head);
            w.write_all(open)?;
            w.write_all(b",\n  \"analysis\": ")?;
            serde_json::to_writer(&mut *w, analysis)?;
            w.write_all(b"\n}")?;
        }
    }
    w.write_all(b"\n")
}

/// Bytes written to the checkpoint file are gathered in this many before each write.
const WRITE_BUFFER: usize = 64 * 1024;

/// A `BufWriter` over a buffer that outlives it (see `CheckpointStore::scratch`).
struct Buffered<'a> {
    file: &'a mut std::fs::File,
    buf: &'a mut Vec<u8>,
}

impl Write for Buffered<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.write_all(data).map(|()| data.len())
    }

    // The serialiser writes token by token: the common case, room in the buffer, is one copy.
    #[inline]
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.buf.len() + data.len() > WRITE_BUFFER {
            self.flush()?;
        }
        if data.len() >= WRITE_BUFFER {
            self.file.write_all(data)
        } else {
            self.buf.extend_from_slice(data);
            Ok(())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.write_all(self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// Creates (or truncates) `path` readable by its owner only, whatever the umask.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Checks that `cp` could have been written by a run at or before `now`; the reason says which
/// value is impossible and why.
pub(crate) fn validate(cp: &Checkpoint, now: i64) -> Result<(), String> {
    let newest = now.saturating_add(FUTURE_TOLERANCE);
    let in_range = |name: &str, v: i64| {
        if (AUDIT_LOGS_EPOCH..=newest).contains(&v) {
            Ok(())
        } else {
            Err(format!(
                "{name} = {v} is outside [{AUDIT_LOGS_EPOCH} (2018-03-01, when audit logs begin), {newest} (now + 1 day)]"
            ))
        }
    };
    in_range("next_oldest", cp.next_oldest)?;
    if let Some(w) = &cp.window {
        in_range("window.oldest", w.oldest)?;
        in_range("window.latest", w.latest)?;
        if w.oldest > w.latest {
            return Err(format!(
                "window.oldest = {} is after window.latest = {}",
                w.oldest, w.latest
            ));
        }
        if !(w.oldest..=w.latest).contains(&w.chain_latest) {
            return Err(format!(
                "window.chain_latest = {} is outside the window [{}, {}]",
                w.chain_latest, w.oldest, w.latest
            ));
        }
        if let Some(low) = w.low {
            if !(w.oldest..=w.latest).contains(&low) {
                return Err(format!(
                    "window.low = {low} is outside the window [{}, {}]",
                    w.oldest, w.latest
                ));
            }
        }
        check_ids("window.ids_at_low", w.ids_at_low.len(), w.ids_at_low.iter())?;
    }
    if cp.recent.len() > MAX_IDS {
        return Err(format!(
            "recent holds {} seconds, more than {MAX_IDS}",
            cp.recent.len()
        ));
    }
    for (ts, ids) in &cp.recent {
        in_range("a second in recent", *ts)?;
        check_ids("recent", ids.len(), ids.iter())?;
    }
    if let Some(r) = &cp.response {
        r.validate()?;
    }
    Ok(())
}

fn check_ids<'a>(
    name: &str,
    len: usize,
    mut ids: impl Iterator<Item = &'a String>,
) -> Result<(), String> {
    if len > MAX_IDS {
        return Err(format!("{name} holds {len} ids, more than {MAX_IDS}"));
    }
    match ids.find(|id| id.is_empty() || id.len() > MAX_ID_LEN) {
        Some(id) => Err(format!(
            "{name} holds an id of {} bytes (ids are 1..={MAX_ID_LEN} bytes)",
            id.len()
        )),
        None => Ok(()),
    }
}

enum DecodeError {
    Version(String),
    Corrupt(String),
}

fn decode(bytes: &[u8]) -> Result<Checkpoint, DecodeError> {
    // The version alone first (the rest skipped, not built), then the checkpoint straight from
    // the bytes: a tree of values would cost several times a large analysis state.
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        version: Option<Value>,
    }
    let head: Head = serde_json::from_slice(bytes)
        .map_err(|e| DecodeError::Corrupt(format!("not JSON ({e})")))?;
    // serde would read a struct from an array too, by position.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::Corrupt("not a JSON object".into()));
    }
    match head.version {
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        Some(other) => return Err(DecodeError::Version(other.to_string())),
        None => return Err(DecodeError::Corrupt("no \"version\" field".into())),
    }
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_how_far_low_has_come_down_from_latest() {
        let mut w = Window::open(1_000, 2_000);
        assert_eq!(w.progress(), 0.0);
        w.low = Some(2_000);
        assert_eq!(w.progress(), 0.0);
        w.low = Some(1_750);
        assert_eq!(w.progress(), 0.25);
        w.low = Some(1_000);
        assert_eq!(w.progress(), 1.0);
        // A one-second window, and a low Slack should never have sent: still within 0..=1.
        assert_eq!(
            Window {
                low: Some(5),
                ..Window::open(5, 5)
            }
            .progress(),
            0.0
        );
        w.low = Some(0);
        assert_eq!(w.progress(), 1.0);
    }

    fn sample() -> Checkpoint {
        Checkpoint {
            next_oldest: 1_700_000_000,
            window: Some(Window {
                oldest: 1_700_000_000,
                latest: 1_700_003_600,
                chain_latest: 1_700_003_600,
                cursor: Some("dXNlcjpVMEc5V0ZYTlo=".into()),
                low: Some(1_700_002_000),
                ids_at_low: ["0123a45b-6c7d-8900-e12f-3456789gh0i1".to_string()].into(),
            }),
            recent: BTreeMap::new(),
            analysis: None,
            response: None,
            updated_at: DateTime::parse_from_rfc3339("2026-11-21T08:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    const GOLDEN: &str = r#"{
  "version": 1,
  "next_oldest": 1700000000,
  "window": {
    "oldest": 1700000000,
    "latest": 1700003600,
    "chain_latest": 1700003600,
    "cursor": "dXNlcjpVMEc5V0ZYTlo=",
    "low": 1700002000,
    "ids_at_low": [
      "0123a45b-6c7d-8900-e12f-3456789gh0i1"
    ]
  },
  "updated_at": "2026-11-21T08:00:00Z"
}
"#;

    #[test]
    fn serialisation_is_pinned() {
        assert_eq!(String::from_utf8(encode(&sample())).unwrap(), GOLDEN);
    }

    #[test]
    fn deserialisation_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("checkpoint.json"), GOLDEN).unwrap();
        assert_eq!(
            CheckpointStore::new(dir.path()).load().unwrap(),
            Some(sample())
        );
    }

    /// The response ledger rides in the checkpoint and is checked at load; a checkpoint
    /// written before it (the golden file above) loads without one.
    #[test]
    fn the_response_ledger_round_trips_and_an_impossible_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        let mut cp = sample();
        let text = r#"{"taken":[1700000000],"actions":[{"id":"r1","finding_id":"f1","rule_id":"x","kind":"session_reset","user":{"id":"U1"},"timestamp":"2023-11-14T22:13:20.000Z","at":1700000000,"act":true,"calls_done":0}]}"#;
        cp.response = Some(serde_json::from_str(text).unwrap());
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp.clone()));
        let mut bad = cp;
        if let Some(r) = bad.response.as_mut() {
            r.actions[0].calls_done = 2;
        }
        store.save(&bad).unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("calls done"), "{e}");
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        store.save(&sample()).unwrap();
        assert_eq!(store.load().unwrap(), Some(sample()));
        assert!(!dir.path().join("checkpoint.json.tmp").exists());
    }

    #[test]
    fn a_prepared_but_uncommitted_checkpoint_is_ignored_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        store.save(&sample()).unwrap();
        let mut next = sample();
        next.next_oldest += 99;
        let _never_committed = store.prepare(&next).unwrap();
        assert_eq!(store.load().unwrap(), Some(sample()));
    }

    #[test]
    fn corrupt_and_unknown_versions_are_clear_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        for (body, want) in [
            ("{not json", "corrupt"),
            ("{}", "corrupt"),
            (r#"{"version":1,"next_oldest":"x"}"#, "corrupt"),
            (r#"{"version":7}"#, "version 7"),
            // serde reads structs from arrays by position; a checkpoint is an object.
            (
                r#"[1, 1700000000, null, {}, null, "2026-11-21T08:00:00Z"]"#,
                "corrupt",
            ),
        ] {
            std::fs::write(store.path(), body).unwrap();
            let err = store.load().unwrap_err();
            assert!(err.is_config());
            let msg = err.to_string();
            assert!(
                msg.contains(want) && msg.contains("checkpoint.json"),
                "{body}: {msg}"
            );
        }
    }

    #[test]
    fn impossible_values_are_refused_at_load_saying_which() {
        let now = 1_800_000_000;
        let with = |f: &dyn Fn(&mut Checkpoint)| {
            let mut cp = sample();
            f(&mut cp);
            validate(&cp, now)
        };
        assert_eq!(with(&|_| {}), Ok(()));
        fn w(cp: &mut Checkpoint) -> &mut Window {
            cp.window.as_mut().unwrap()
        }
        for (case, want) in [
            (
                with(&|cp| {
                    w(cp).oldest = i64::MIN;
                    w(cp).latest = i64::MAX;
                    w(cp).chain_latest = i64::MAX;
                }),
                "window.oldest",
            ),
            (with(&|cp| w(cp).latest = now + 2 * 86_400), "window.latest"),
            (with(&|cp| w(cp).oldest = w(cp).latest + 1), "is after"),
            (
                with(&|cp| w(cp).chain_latest = w(cp).latest + 1),
                "chain_latest",
            ),
            (with(&|cp| w(cp).low = Some(w(cp).oldest - 1)), "window.low"),
            (with(&|cp| cp.next_oldest = now + 86_401), "next_oldest"),
            (with(&|cp| cp.next_oldest = 0), "next_oldest"),
            (
                with(&|cp| w(cp).ids_at_low = vec!["x".repeat(300)].into_iter().collect()),
                "300 bytes",
            ),
            (
                with(&|cp| w(cp).ids_at_low = (0..=MAX_IDS).map(|i| i.to_string()).collect()),
                "more than",
            ),
            (
                with(&|cp| {
                    cp.recent.insert(-5, Default::default());
                }),
                "recent",
            ),
        ] {
            let reason = case.unwrap_err();
            assert!(reason.contains(want), "{want}: {reason}");
        }
        // Through load: exit 2 (a config error) naming the file and the value.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("checkpoint.json"),
            GOLDEN.replace("\"oldest\": 1700000000", "\"oldest\": -9223372036854775808"),
        )
        .unwrap();
        let err = CheckpointStore::new(dir.path()).load().unwrap_err();
        assert!(err.is_config());
        let msg = err.to_string();
        assert!(
            msg.contains("checkpoint.json") && msg.contains("window.oldest = -9223372036854775808"),
            "{msg}"
        );
    }

    #[test]
    fn a_directory_or_a_dangling_symlink_is_no_checkpoint_but_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        std::fs::create_dir(store.path()).unwrap();
        let err = store.load().unwrap_err();
        assert!(
            err.is_config() && err.to_string().contains("a directory"),
            "{err}"
        );
        std::fs::remove_dir(store.path()).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), store.path()).unwrap();
        let err = store.load().unwrap_err();
        assert!(
            err.is_config() && err.to_string().contains("symlink to a missing file"),
            "{err}"
        );
        // A symlink to a real checkpoint is read through.
        std::fs::write(dir.path().join("gone"), GOLDEN).unwrap();
        assert_eq!(store.load().unwrap(), Some(sample()));
    }

    #[test]
    fn files_are_private_and_a_leftover_temp_file_is_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        let tmp = dir.path().join("checkpoint.json.tmp");
        std::fs::write(&tmp, "half a page").unwrap();
        assert_eq!(store.load().unwrap(), None);
        assert!(!tmp.exists());
        store.save(&sample()).unwrap();
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_unwritable_state_dir_fails_at_load_before_any_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        store.save(&sample()).unwrap();
        // A temp path that cannot be written (works as root too, unlike permissions).
        std::fs::create_dir(dir.path().join("checkpoint.json.tmp")).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("checkpoint.json.tmp"), "{err}");
    }

    #[test]
    fn the_analysis_state_is_written_from_the_live_value_and_read_back_as_text() {
        #[derive(Serialize)]
        struct Live {
            version: u32,
            windows: BTreeMap<String, u32>,
        }
        let live = Live {
            version: 1,
            windows: [("U1".to_string(), 3)].into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        store.save_with(&sample(), Some(&live)).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        // Still `version` first, with the state after everything else.
        assert!(text.starts_with("{\n  \"version\": 1,"), "{text}");
        assert!(
            text.find("\"analysis\"") > text.find("\"updated_at\""),
            "{text}"
        );
        let loaded = store.load().unwrap().unwrap();
        let state: Value = serde_json::from_str(loaded.analysis.as_ref().unwrap().0.get()).unwrap();
        assert_eq!(
            state,
            serde_json::json!({"version": 1, "windows": {"U1": 3}})
        );
        // What was loaded saves back unchanged, state included.
        store.save(&loaded).unwrap();
        assert_eq!(store.load().unwrap().unwrap(), loaded);
        // Without a state, no key at all.
        store.save_with::<Live>(&sample(), None).unwrap();
        assert!(!std::fs::read_to_string(store.path())
            .unwrap()
            .contains("analysis"));
    }
}
