//! The checkpoint: where reading stands, saved atomically after each delivered page.
//!
//! The file is versioned JSON (`{"version": 1, ...}`), pinned by golden tests. Saving writes
//! `checkpoint.json.tmp`, fsyncs it, renames it over `checkpoint.json` and fsyncs the
//! directory: the rename is atomic, so after a crash at any moment the stable file is either
//! the old checkpoint or the new one, never a mix. The temp file is *not* read at start: the
//! poller may write it before a page is delivered ([`CheckpointStore::prepare`]) and rename it
//! only after, so a leftover temp file describes a page that may never have been delivered.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The format this binary writes and reads.
pub const VERSION: u64 = 1;

/// Where reading stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The first second not yet covered by a finished window: the next window starts here.
    pub next_oldest: i64,
    /// The window being read, if one is open.
    #[serde(default)]
    pub window: Option<Window>,
    /// Ids delivered recently, by second, kept for `--overlap` (bounded by the overlap span).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recent: BTreeMap<i64, Vec<String>>,
    /// The analysis state as read at start, opaque here (JSON text). Not written from here:
    /// [`CheckpointStore::save_with`] serialises the live state straight into the file, and
    /// [`CheckpointStore::save`] writes this one.
    #[serde(default, skip_serializing)]
    pub analysis: Option<AnalysisState>,
    /// When this was saved (for people reading the file).
    pub updated_at: DateTime<Utc>,
}

/// The analysis state as JSON text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AnalysisState(pub Box<serde_json::value::RawValue>);

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
    pub chain_latest: i64,
    /// The next cursor of the chain; `None` before its first page.
    pub cursor: Option<String>,
    /// The oldest `date_create` delivered so far in the window.
    pub low: Option<i64>,
    /// The ids delivered at second `low`.
    pub ids_at_low: Vec<String>,
}

impl Window {
    /// How far the reader has come down this window, newest first: 0 before its first page,
    /// `(latest - low) / (latest - oldest)` after, 1 at `oldest`. Slack reads newest first, so
    /// this is the share of the window's time span already delivered.
    pub fn progress(&self) -> f64 {
        let Some(low) = self.low else { return 0.0 };
        let span = (self.latest - self.oldest).max(1) as f64;
        ((self.latest - low) as f64 / span).clamp(0.0, 1.0)
    }

    /// A fresh window `[oldest, latest]`, nothing read.
    pub fn open(oldest: i64, latest: i64) -> Window {
        Window {
            oldest,
            latest,
            chain_latest: latest,
            cursor: None,
            low: None,
            ids_at_low: Vec::new(),
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
}

impl Error {
    /// True when the user must act on the file (exit 2), rather than a passing I/O fault.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Corrupt { .. } | Error::UnknownVersion { .. })
    }
}

/// The checkpoint file in a state directory.
#[derive(Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
}

/// A checkpoint written to the temp file, not yet in place.
#[derive(Debug)]
#[must_use = "a prepared checkpoint takes effect only when committed"]
pub struct Prepared(());

impl CheckpointStore {
    /// The store in `dir` (which the caller has locked).
    pub fn new(dir: &Path) -> CheckpointStore {
        CheckpointStore {
            dir: dir.to_path_buf(),
            path: dir.join("checkpoint.json"),
            tmp: dir.join("checkpoint.json.tmp"),
        }
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the checkpoint; `None` on a first run.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`], [`Error::UnknownVersion`] or [`Error::Io`]; never a silent restart.
    pub fn load(&self) -> Result<Option<Checkpoint>, Error> {
        // See the module header: a leftover temp file is never trusted.
        let _ = std::fs::remove_file(&self.tmp);
        self.read()
    }

    /// Reads the checkpoint as [`CheckpointStore::load`] does, but touches nothing: `status`
    /// reads beside a running reader, whose temp file may be half written.
    ///
    /// # Errors
    ///
    /// As [`CheckpointStore::load`].
    pub fn read(&self) -> Result<Option<Checkpoint>, Error> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    op: "read",
                    path: self.path.clone(),
                    source,
                })
            }
        };
        decode(&bytes).map(Some).map_err(|e| match e {
            DecodeError::Version(version) => Error::UnknownVersion {
                path: self.path.clone(),
                version,
            },
            DecodeError::Corrupt(reason) => Error::Corrupt {
                path: self.path.clone(),
                reason,
            },
        })
    }

    /// Writes `cp` to the temp file and fsyncs it; [`CheckpointStore::commit`] puts it in place.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn prepare(&self, cp: &Checkpoint) -> Result<Prepared, Error> {
        self.prepare_with(cp, cp.analysis.as_ref())
    }

    /// [`CheckpointStore::prepare`] with `analysis` as the analysis state, serialised straight
    /// into the file: the state can be megabytes, and it is saved every page.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn prepare_with<A: Serialize>(
        &self,
        cp: &Checkpoint,
        analysis: Option<&A>,
    ) -> Result<Prepared, Error> {
        let io = |source| Error::Io {
            op: "write",
            path: self.tmp.clone(),
            source,
        };
        let f = std::fs::File::create(&self.tmp).map_err(io)?;
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, f);
        encode_into(&mut w, cp, analysis).map_err(io)?;
        let f = w.into_inner().map_err(|e| io(e.into_error()))?;
        // Without this fsync, a power loss after the rename could leave an empty file in place.
        f.sync_all().map_err(io)?;
        Ok(Prepared(()))
    }

    /// Renames the prepared checkpoint into place and fsyncs the directory.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn commit(&self, _prepared: Prepared) -> Result<(), Error> {
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
    pub fn save(&self, cp: &Checkpoint) -> Result<(), Error> {
        let p = self.prepare(cp)?;
        self.commit(p)
    }

    /// [`prepare_with`](Self::prepare_with) then [`commit`](Self::commit).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn save_with<A: Serialize>(
        &self,
        cp: &Checkpoint,
        analysis: Option<&A>,
    ) -> Result<(), Error> {
        let p = self.prepare_with(cp, analysis)?;
        self.commit(p)
    }
}

/// The bytes written for `cp` (with its own analysis state): its fields with `version` first.
pub fn encode(cp: &Checkpoint) -> Vec<u8> {
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
                ids_at_low: vec!["0123a45b-6c7d-8900-e12f-3456789gh0i1".into()],
            }),
            recent: BTreeMap::new(),
            analysis: None,
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
