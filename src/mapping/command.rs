//! The `map` command: Slack audit entries on stdin → ECS documents (NDJSON) on stdout.
//!
//! Accepted input, mixed freely:
//! - NDJSON entries, one per line (what `run` hands the mapper);
//! - API response objects with `entries[]`, one per line: each entry becomes a document;
//! - a pretty-printed (multi-line) entry or response, e.g. a saved `GET /logs` body.
//!
//! - several values on one line (concatenated JSON).
//!
//! The input is read by `super::input::Reader`, the reader `analyze` uses too: memory holds
//! one line or one multi-line value at a time. Exactly one document per entry, in input order;
//! a line (or the rest of a line) that is not JSON becomes one `pipeline_error` document, and a
//! truncated multi-line value costs its own lines and never the entries after it.

use super::input::{Fault, Piece, Reader};
use super::tree::Node;
use super::{DocKind, Mapper};
use chrono::{DateTime, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::io::{self, BufRead, Write};

/// Documents are written into one buffer and handed to the writer in chunks of about this size.
const FLUSH_BYTES: usize = 256 << 10;

/// Counts from one run of [`map_stream`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Documents written.
    pub documents: u64,
    /// Of which `pipeline_error` documents.
    pub(crate) pipeline_errors: u64,
}

/// The `map` command: entries on stdin, documents on stdout.
///
/// # Errors
///
/// Unreadable or wrong-kind databases, an invalid namespace ([`crate::Error::Config`]); stdin
/// unreadable or stdout closed ([`crate::Error::Sink`]).
pub async fn run_map(args: super::MapArgs) -> Result<(), crate::Error> {
    let mut mapper = Mapper::new(&super::MappingConfig::from_args(&args.mapping)?)?;
    let stdin = io::stdin().lock();
    let input = io::BufReader::with_capacity(1 << 20, stdin);
    // Unbuffered: map_stream hands over whole chunks of documents already.
    let mut out = io::stdout().lock();
    // Blocking I/O on purpose: `map` is a filter with nothing else to run concurrently.
    let stats = map_stream(&mut mapper, input, &mut out, Utc::now)
        .and_then(|stats| out.flush().map(|()| stats))
        .map_err(|e| crate::Error::Sink(crate::sink::Error::Stdout(e)))?;
    tracing::debug!(
        documents = stats.documents,
        pipeline_errors = stats.pipeline_errors,
        "map finished"
    );
    Ok(())
}

/// Maps everything `input` holds into `out`, one NDJSON document per entry.
///
/// `now` gives the fetch time for `event.created`; it is read once per value (or bad line)
/// read, so a response's entries share one.
///
/// # Errors
///
/// Reading `input` or writing `out` failed.
pub fn map_stream<R: BufRead, W: Write>(
    mapper: &mut Mapper,
    input: R,
    out: &mut W,
    mut now: impl FnMut() -> DateTime<Utc>,
) -> io::Result<Stats> {
    let mut s = Stream {
        mapper,
        stats: Stats::default(),
        pending: Vec::with_capacity(FLUSH_BYTES + 8192),
    };
    let mut reader = Reader::new(input);
    while let Some(piece) = reader.next_piece()? {
        // Millisecond resolution, like the output, so a burst of values shares one text.
        let at = now().trunc_subsecs(3);
        match piece {
            Piece::Json { text, .. } => s.value_text(text, at),
            // Parsed again as an entry, so its message is the entry parser's own.
            Piece::Bad {
                fault: Fault::NotJson,
                bytes,
                ..
            } => s.value_text(&String::from_utf8_lossy(bytes), at),
            Piece::Bad { bytes, reason, .. } => {
                let text = String::from_utf8_lossy(bytes);
                let message = format!("entry: {reason}");
                let kind = s
                    .mapper
                    .write_not_an_entry(&text, &message, at, &mut s.pending);
                s.written(kind)
            }
        }
        if s.pending.len() >= FLUSH_BYTES {
            out.write_all(&s.pending)?;
            s.pending.clear();
        }
    }
    out.write_all(&s.pending)?;
    Ok(s.stats)
}

struct Stream<'a> {
    mapper: &'a mut Mapper,
    stats: Stats,
    /// Documents written but not yet handed to `out`.
    pending: Vec<u8>,
}

impl Stream<'_> {
    /// A JSON text (or a bad stretch, which the entry parser then refuses): a response (each
    /// entry mapped) or an entry.
    fn value_text(&mut self, text: &str, at: DateTime<Utc>) {
        if let Some(entries) = response_entries(text) {
            for raw in entries {
                let kind = self.mapper.write_entry(raw.get(), at, &mut self.pending);
                self.written(kind);
            }
            return;
        }
        let kind = match serde_json::from_str::<Node>(text) {
            Ok(Node::Object(entry)) => {
                self.mapper
                    .write_object(&entry, text, at, &mut self.pending)
            }
            Ok(other) => {
                let message = format!(
                    "entry: expected a JSON object, got {}",
                    super::entry::describe(&other)
                );
                self.mapper
                    .write_not_an_entry(text, &message, at, &mut self.pending)
            }
            Err(e) => {
                let message = format!("entry: not JSON ({e})");
                self.mapper
                    .write_not_an_entry(text, &message, at, &mut self.pending)
            }
        };
        self.written(kind);
    }

    /// Ends the document just written to `pending`.
    fn written(&mut self, kind: DocKind) {
        self.pending.push(b'\n');
        self.stats.documents += 1;
        if kind == DocKind::PipelineError {
            self.stats.pipeline_errors += 1;
        }
    }
}

/// The entries of an API response object, borrowed from `text`; `None` for anything else.
///
/// Only texts that mention `"entries"` are probed, so entry lines are parsed once. An object
/// with both `entries` and `action` is an entry that happens to carry an `entries` key.
fn response_entries(text: &str) -> Option<Vec<&RawValue>> {
    #[derive(Deserialize)]
    struct Response<'a> {
        #[serde(borrow)]
        entries: Option<Vec<&'a RawValue>>,
        action: Option<serde::de::IgnoredAny>,
    }
    if !text.contains("\"entries\"") {
        return None;
    }
    match serde_json::from_str::<Response<'_>>(text) {
        Ok(Response {
            entries: Some(entries),
            action: None,
        }) => Some(entries),
        _ => None,
    }
}
