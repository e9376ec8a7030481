//! The `analyze` command: try the rules on exported history.
//!
//! Reads raw Slack entries or our ECS documents on stdin — NDJSON, concatenated or
//! pretty-printed JSON, or whole API responses with `entries[]` — and prints the findings as
//! NDJSON (`--all`: the annotated documents too). Each API response is one page, as `run` would
//! see it; loose documents are grouped in pages of [`BATCH`]. Input is streamed through
//! `map`'s reader ([`crate::mapping::input`]): one value in memory at a time.
//!
//! `analyze` never acts. With `--respond plan` it prints, after each finding that would act,
//! the response document `run --respond plan` would deliver for it: the plan is made by the
//! response stage, handed in as a [`Plan`] so that the analysis does not depend on it.
//!
//! Input is bytes, not text: a line that is not JSON (or not UTF-8) becomes one
//! `pipeline_error` document (printed with `--all`) and a warning naming its line and column,
//! and reading goes on after it, as in `map`.

use super::{AnalysisConfig, AnalyzeArgs, Analyzer};
use crate::mapping::input::{Piece, Reader};
use crate::mapping::{Mapper, MappingConfig};
use crate::units::ConfigError;
use chrono::Utc;
use serde_json::Value;
use std::io::Write;
use std::path::Path;

/// Loose documents per page.
pub(crate) const BATCH: usize = 1000;

/// What a response plan adds after a finding: the documents it pushes.
pub(crate) type Plan = Box<dyn FnMut(&Value, &mut Vec<Value>)>;

/// The `analyze` command.
///
/// # Errors
///
/// Bad options or files; an unreadable `--state`; stdin or stdout failing.
pub async fn run_analyze(args: AnalyzeArgs) -> Result<(), crate::Error> {
    run_analyze_with(args, |_| None).await
}

/// [`run_analyze`] with a response plan, built from the analysis options in force.
///
/// # Errors
///
/// As [`run_analyze`].
pub(crate) async fn run_analyze_with(
    args: AnalyzeArgs,
    respond: impl FnOnce(&AnalysisConfig) -> Option<Plan>,
) -> Result<(), crate::Error> {
    let io = |e: std::io::Error| crate::Error::Sink(crate::sink::Error::Stdout(e));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.print_default_rules {
        out.write_all(super::rules::DEFAULT_RULES.as_bytes())
            .and_then(|()| out.flush())
            .map_err(io)?;
        return Ok(());
    }
    let config = AnalysisConfig::from_args(&args.analysis)?;
    let mut mapper = Mapper::new(&MappingConfig::from_args(&args.mapping)?)?;
    let saved = match &args.state {
        Some(path) => load_state(path)?,
        None => None,
    };
    let mut analyzer = Analyzer::with_geoip(&config, saved.as_ref(), Some(mapper.geoip()))?;
    let mut plan = respond(&config);
    let mut responses = Vec::new();
    // Documents and the raw entries among them (the detection rules read raw entries: an ECS
    // document given as input reaches them only through its `event.original`).
    let mut emit = |(docs, raws): &mut (Vec<Value>, Vec<Value>)| -> std::io::Result<()> {
        let before = docs.len();
        analyzer.process(docs);
        let items: Vec<super::detect::Item<'_>> =
            raws.iter().map(super::detect::Item::Entry).collect();
        let detections = analyzer.detect(&items);
        let from = if args.all { 0 } else { before };
        for d in docs[from..].iter().chain(&detections) {
            serde_json::to_writer(&mut out, d)?;
            out.write_all(b"\n")?;
            if let Some(plan) = plan.as_mut() {
                plan(d, &mut responses);
                for r in responses.drain(..) {
                    serde_json::to_writer(&mut out, &r)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        docs.clear();
        raws.clear();
        Ok(())
    };
    let mut loose = (Vec::new(), Vec::new());
    let stdin = std::io::stdin().lock();
    let mut reader = Reader::new(std::io::BufReader::with_capacity(1 << 20, stdin));
    loop {
        let piece = reader
            .next_piece()
            .map_err(|source| crate::Error::ReadFile {
                path: "stdin".into(),
                source,
            })?;
        let Some(piece) = piece else { break };
        match item(piece) {
            Item::Page(entries) => {
                emit(&mut loose).map_err(io)?;
                let mut page = (Vec::new(), Vec::new());
                for e in entries {
                    to_document(&mut mapper, e, &mut page);
                }
                emit(&mut page).map_err(io)?;
            }
            Item::Doc(v) => to_document(&mut mapper, v, &mut loose),
            Item::Garbage {
                line,
                column,
                bytes,
                reason,
            } => {
                tracing::warn!(
                    line,
                    column,
                    "stdin line {line}, column {column}: {reason}: it becomes a pipeline_error document (printed with --all)"
                );
                loose.0.push(mapper.map_entry_bytes(&bytes, Utc::now()));
            }
        }
        if loose.0.len() >= BATCH {
            emit(&mut loose).map_err(io)?;
        }
    }
    emit(&mut loose).map_err(io)?;
    out.flush().map_err(io)?;
    if let (Some(path), Some(state)) = (&args.state, analyzer.state()) {
        save_state(path, &state)?;
    }
    Ok(())
}

/// One thing read from stdin.
#[derive(Debug, PartialEq)]
enum Item {
    /// An API response's (or a JSON array's) entries: one page.
    Page(Vec<Value>),
    /// One entry or document.
    Doc(Value),
    /// Bytes that are not JSON (or not UTF-8), up to the end of their line.
    Garbage {
        /// Its line number, from 1.
        line: usize,
        /// Where on the line the bad value starts, from 1.
        column: usize,
        /// The bytes, without the line break.
        bytes: Vec<u8>,
        /// What is wrong.
        reason: String,
    },
}

/// What a piece of input is to `analyze`.
fn item(piece: Piece<'_>) -> Item {
    match piece {
        Piece::Json { text, line } => match serde_json::from_str::<Value>(text) {
            Ok(v) => classify(v),
            // Valid JSON that serde_json still refuses (nested past its depth limit).
            Err(e) => Item::Garbage {
                line,
                column: 1,
                bytes: text.as_bytes().to_vec(),
                reason: format!("not readable JSON ({e})"),
            },
        },
        Piece::Bad {
            bytes,
            line,
            column,
            reason,
            ..
        } => Item::Garbage {
            line,
            column,
            bytes: bytes.to_vec(),
            reason,
        },
    }
}

fn classify(v: Value) -> Item {
    match v {
        Value::Array(entries) => Item::Page(entries),
        Value::Object(mut o) if o.get("entries").is_some_and(Value::is_array) => {
            match o.remove("entries") {
                Some(Value::Array(entries)) => Item::Page(entries),
                _ => Item::Page(Vec::new()),
            }
        }
        other => Item::Doc(other),
    }
}

/// An ECS document as it is; anything else through the mapping (which turns non-objects into
/// `pipeline_error` documents). Appended to `into.0`; a raw entry (an object, or an ECS
/// document's `event.original`) also to `into.1`, for the detection rules.
fn to_document(mapper: &mut Mapper, v: Value, into: &mut (Vec<Value>, Vec<Value>)) {
    let is_ecs = v.get("ecs").is_some()
        || v.get("event")
            .and_then(|e| e.get("action").or_else(|| e.get("kind")))
            .is_some();
    if is_ecs {
        // A document that kept its raw entry (`--preserve-original-event`, as `demo` does)
        // hands it to the detection rules, as `run` did.
        if let Some(raw) = v
            .pointer("/event/original")
            .and_then(Value::as_str)
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .filter(Value::is_object)
        {
            into.1.push(raw);
        }
        into.0.push(v);
    } else {
        into.0.push(mapper.map_entry(&v.to_string(), Utc::now()));
        if v.is_object() {
            into.1.push(v);
        }
    }
}

fn load_state(path: &Path) -> Result<Option<Value>, ConfigError> {
    let bad = |m: String| ConfigError::Invalid {
        flag: "state",
        message: format!("{}: {m}", path.display()),
    };
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| bad(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Writes the state next to its final name, then renames it: a crash leaves the old file.
fn save_state(path: &Path, state: &Value) -> Result<(), ConfigError> {
    let bad = |m: String| ConfigError::Invalid {
        flag: "state",
        message: format!("{}: {m}", path.display()),
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let text = serde_json::to_vec(state).map_err(|e| bad(e.to_string()))?;
    // The state holds names and emails: readable by its owner only, whatever the umask.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = std::fs::remove_file(&tmp);
    options
        .open(&tmp)
        .and_then(|mut f| f.write_all(&text))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every item of `input`.
    fn items(input: &[u8]) -> Vec<Item> {
        let mut reader = Reader::new(input);
        let mut out = Vec::new();
        while let Some(piece) = reader.next_piece().unwrap() {
            out.push(item(piece));
        }
        out
    }

    #[test]
    fn input_layouts_are_all_read() {
        let input =
            "{\"a\":1}\n{\n  \"entries\": [{\"b\":2}]\n}\nnot json at all\n[{\"c\":3}] {\"d\":4}\n";
        let got = items(input.as_bytes());
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], Item::Doc(json!({"a": 1})));
        assert_eq!(got[1], Item::Page(vec![json!({"b": 2})]));
        assert!(
            matches!(&got[2], Item::Garbage { line: 5, column: 1, bytes, .. } if bytes == b"not json at all"),
            "{:?}",
            got[2]
        );
        assert_eq!(got[3], Item::Page(vec![json!({"c": 3})]));
        assert_eq!(got[4], Item::Doc(json!({"d": 4})));
        assert_eq!(items(b"  \n").len(), 0);
        assert!(matches!(
            &items(b"{\"x\": tru")[..],
            [Item::Garbage { line: 1, bytes, .. }] if bytes == b"{\"x\": tru"
        ));
    }

    #[test]
    fn the_state_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        save_state(&path, &json!({"version": 1})).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_state(&path).unwrap(), Some(json!({"version": 1})));
    }

    #[test]
    fn a_line_of_bad_bytes_is_one_item_and_reading_goes_on() {
        let input = b"{\"a\":1}\n{\"id\":\"e2\",\"x\":\"\xff\xfe\"}\r\n\n{\"b\":2}\n";
        let got = items(input);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], Item::Doc(json!({"a": 1})));
        assert!(
            matches!(&got[1], Item::Garbage { line: 2, bytes, reason, .. }
                if bytes == b"{\"id\":\"e2\",\"x\":\"\xff\xfe\"}" && reason.starts_with("not UTF-8")),
            "{:?}",
            got[1]
        );
        assert_eq!(got[2], Item::Doc(json!({"b": 2})));
    }
}
