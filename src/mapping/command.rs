//! The `map` command: Slack audit entries on stdin → ECS documents (NDJSON) on stdout.
//!
//! Accepted input, mixed freely:
//! - NDJSON entries, one per line (what `run` hands the mapper);
//! - API response objects with `entries[]`, one per line: each entry becomes a document;
//! - a pretty-printed (multi-line) entry or response, e.g. a saved `GET /logs` body.
//!
//! Exactly one document per entry, in input order; a line that is not JSON becomes one
//! `pipeline_error` document. A line is parsed once: only a failure that says "the value goes
//! on" (serde_json's end-of-input error) on a line ending in `{` or `[` starts a multi-line
//! value, collected by bracket depth until it closes. If that value then fails to parse, or
//! never closes, its lines are replayed one by one, so a truncated entry costs its own
//! document and never the ones after it.

use super::tree::Node;
use super::{DocKind, Mapper};
use chrono::{DateTime, SubsecRound, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::io::{self, BufRead, Write};

/// A multi-line value longer than this is given up on and replayed line by line.
/// 9,999 pretty-printed entries (the API's page limit) fit comfortably.
const MAX_BLOCK_BYTES: usize = 256 << 20;

/// Documents are written into one buffer and handed to the writer in chunks of about this size.
const FLUSH_BYTES: usize = 256 << 10;

/// Counts from one run of [`map_stream`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Documents written.
    pub documents: u64,
    /// Of which `pipeline_error` documents.
    pub pipeline_errors: u64,
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
/// `now` gives the fetch time for `event.created`; it is read once per input line.
///
/// # Errors
///
/// Reading `input` or writing `out` failed.
pub fn map_stream<R: BufRead, W: Write>(
    mapper: &mut Mapper,
    mut input: R,
    out: &mut W,
    mut now: impl FnMut() -> DateTime<Utc>,
) -> io::Result<Stats> {
    let mut s = Stream {
        mapper,
        out,
        stats: Stats::default(),
        block: Vec::new(),
        depth: Depth::default(),
        pending: Vec::with_capacity(FLUSH_BYTES + 8192),
    };
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        // Millisecond resolution, like the output, so a burst of lines shares one text.
        let at = now().trunc_subsecs(3);
        s.push_line(trim_newline(&line), at)?;
    }
    if !s.block.is_empty() {
        s.replay_block(now().trunc_subsecs(3))?;
    }
    s.out.write_all(&s.pending)?;
    Ok(s.stats)
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

struct Stream<'a, W> {
    mapper: &'a mut Mapper,
    out: &'a mut W,
    stats: Stats,
    /// Lines of an open multi-line value, newline-joined; empty when none is open.
    block: Vec<u8>,
    depth: Depth,
    /// Documents written but not yet handed to `out`.
    pending: Vec<u8>,
}

impl<W: Write> Stream<'_, W> {
    fn push_line(&mut self, line: &[u8], at: DateTime<Utc>) -> io::Result<()> {
        if !self.block.is_empty() {
            self.block.extend_from_slice(line);
            self.block.push(b'\n');
            return match self.depth.scan(line) {
                Scan::Open if self.block.len() <= MAX_BLOCK_BYTES => Ok(()),
                Scan::Closed => {
                    let block = std::mem::take(&mut self.block);
                    match std::str::from_utf8(&block) {
                        Ok(text) if serde_json::from_str::<&RawValue>(text).is_ok() => {
                            self.value_text(text, at, false)
                        }
                        _ => {
                            self.block = block;
                            self.replay_block(at)
                        }
                    }
                }
                Scan::Open | Scan::Broken => self.replay_block(at),
            };
        }
        self.line(line, at, true)
    }

    /// One line outside any block. `may_open` is false while replaying a failed block.
    fn line(&mut self, line: &[u8], at: DateTime<Utc>, may_open: bool) -> io::Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        match std::str::from_utf8(line) {
            Ok(text) => self.value_text(text, at, may_open),
            Err(e) => {
                let text = String::from_utf8_lossy(line);
                let message = format!("entry: not UTF-8 ({e})");
                let kind = self
                    .mapper
                    .write_not_an_entry(&text, &message, at, &mut self.pending);
                self.written(kind)
            }
        }
    }

    /// A complete JSON text: a response (each entry mapped) or an entry.
    fn value_text(&mut self, text: &str, at: DateTime<Utc>, may_open: bool) -> io::Result<()> {
        if let Some(entries) = response_entries(text) {
            for raw in entries {
                let kind = self.mapper.write_entry(raw.get(), at, &mut self.pending);
                self.written(kind)?;
            }
            return Ok(());
        }
        let kind = match serde_json::from_str::<Node>(text) {
            Ok(Node::Object(entry)) => {
                self.mapper
                    .write_object(&entry, text, at, &mut self.pending)
            }
            Err(e) if may_open && e.is_eof() && opens_value(text) => {
                self.depth = Depth::default();
                if self.depth.scan(text.as_bytes()) == Scan::Open {
                    self.block.extend_from_slice(text.as_bytes());
                    self.block.push(b'\n');
                    return Ok(());
                }
                let message = format!("entry: not JSON ({e})");
                self.mapper
                    .write_not_an_entry(text, &message, at, &mut self.pending)
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
        self.written(kind)
    }

    /// The open block did not make one value: map its lines one by one instead.
    fn replay_block(&mut self, at: DateTime<Utc>) -> io::Result<()> {
        let block = std::mem::take(&mut self.block);
        for line in block.split(|b| *b == b'\n') {
            self.line(line, at, false)?;
        }
        Ok(())
    }

    /// Ends the document just written to `pending`, and flushes a full chunk.
    fn written(&mut self, kind: DocKind) -> io::Result<()> {
        self.pending.push(b'\n');
        self.stats.documents += 1;
        if kind == DocKind::PipelineError {
            self.stats.pipeline_errors += 1;
        }
        if self.pending.len() >= FLUSH_BYTES {
            self.out.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// A line ending in `{` or `[` is how pretty printers start a multi-line value.
fn opens_value(text: &str) -> bool {
    text.trim_end().ends_with(['{', '['])
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

/// Bracket depth across the lines of a multi-line value, skipping brackets inside strings.
#[derive(Debug, Default)]
struct Depth {
    depth: i64,
}

#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// More lines are needed.
    Open,
    /// The value closed at the end of this line.
    Closed,
    /// Not a value: a string runs past the end of a line, or a bracket closes too early.
    Broken,
}

impl Depth {
    fn scan(&mut self, line: &[u8]) -> Scan {
        let (mut in_string, mut escaped) = (false, false);
        for &b in line {
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth < 0 {
                        return Scan::Broken;
                    }
                }
                _ => {}
            }
        }
        match (in_string, self.depth) {
            // JSON strings cannot hold a raw newline: this is a cut-off line, not a block.
            (true, _) => Scan::Broken,
            (false, 0) => Scan::Closed,
            _ => Scan::Open,
        }
    }
}
