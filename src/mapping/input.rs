//! The one reader of JSON input, for `map` and `analyze`: JSON lines, several values on a line
//! (concatenated JSON), and pretty-printed values across lines, mixed freely.
//!
//! It streams: memory holds one line, or one multi-line value, at a time, each capped at
//! [`MAX_VALUE_BYTES`]. A line is read, then the values on it are taken one after the other.
//! When a value is cut off at the end of a line that ends in `{` or `[` (how pretty printers
//! start one), the following lines are collected by bracket depth until it closes. If that
//! value then fails to parse, or never closes, or grows past the cap, its lines are read again
//! one by one without opening another value, so a truncated value costs its own lines and never
//! the values after it.
//!
//! What is not JSON comes out as [`Piece::Bad`]: the bytes from where the bad value starts to
//! the end of its line (the whole line when nothing before it on the line was good), with the
//! line and column, so the caller can say where and carry on. What the values mean (an entry,
//! an API response, an ECS document) is the caller's business.

use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::io::{self, BufRead, Read};

/// The longest line, or multi-line value, held in memory. 9,999 pretty-printed entries (the
/// API's page limit) fit comfortably.
pub(crate) const MAX_VALUE_BYTES: usize = 256 << 20;

/// How much of an over-long line [`Piece::Bad`] keeps (the rest is read and dropped).
const KEPT_OF_LONG_LINE: usize = 4096;

/// One thing read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// One complete JSON value, its text exactly as read, without surrounding whitespace.
    Json {
        /// The value's text.
        text: &'a str,
        /// The line it starts on, from 1.
        line: usize,
    },
    /// Bytes that are not JSON (or not UTF-8), up to the end of their line.
    Bad {
        /// What is wrong.
        fault: Fault,
        /// The bytes, without the line break.
        bytes: &'a [u8],
        /// Their line, from 1.
        line: usize,
        /// The column (byte, from 1) where the bad value starts.
        column: usize,
        /// What is wrong, for a person.
        reason: String,
    },
}

/// What is wrong with a [`Piece::Bad`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// UTF-8 that is not JSON (its bytes are valid UTF-8).
    NotJson,
    /// A line that is not UTF-8.
    NotUtf8,
    /// A line longer than [`MAX_VALUE_BYTES`]: only its start is kept.
    TooLong,
}

/// A line waiting to be read again: its number, its bytes, and its whole-line fault if any.
type ReplayLine = (usize, Vec<u8>, Option<(Fault, String)>);

/// The streaming reader; call [`Reader::next_piece`] until it returns `None`.
#[derive(Debug)]
pub(crate) struct Reader<R> {
    input: R,
    /// The current line, without its line break.
    line: Vec<u8>,
    /// Its number, from 1.
    line_no: usize,
    /// The next line's number.
    next_line_no: usize,
    /// How much of `line` is consumed.
    at: usize,
    /// True once a value was taken from `line` (a later failure keeps only its own bytes).
    took_one: bool,
    /// False while re-reading a failed multi-line value.
    may_open: bool,
    /// Why the current line is bad as a whole (not UTF-8, or cut at the cap); it is reported
    /// once, whole.
    whole_line_bad: Option<(Fault, String)>,
    /// Lines of a failed multi-line value, to read again one by one, with their whole-line
    /// fault if they have one.
    replay: VecDeque<ReplayLine>,
    /// The multi-line value being collected, newline-joined; empty when none is open.
    block: Vec<u8>,
    block_line: usize,
    depth: Depth,
    /// The closed multi-line value to hand out next.
    ready: Option<(usize, String)>,
    eof: bool,
}

impl<R: BufRead> Reader<R> {
    /// A reader of `input`.
    pub(crate) fn new(input: R) -> Reader<R> {
        Reader {
            input,
            line: Vec::with_capacity(4096),
            line_no: 0,
            next_line_no: 1,
            at: 0,
            took_one: false,
            may_open: true,
            whole_line_bad: None,
            replay: VecDeque::new(),
            block: Vec::new(),
            block_line: 0,
            depth: Depth::default(),
            ready: None,
            eof: false,
        }
    }

    /// The next value or bad stretch; `None` at the end of the input.
    ///
    /// # Errors
    ///
    /// Reading the input failed.
    pub(crate) fn next_piece(&mut self) -> io::Result<Option<Piece<'_>>> {
        loop {
            if let Some((line, text)) = self.ready.take() {
                // Parked in `line` so the returned text can borrow from self.
                self.line = text.into_bytes();
                self.at = self.line.len();
                self.took_one = true;
                let text = std::str::from_utf8(&self.line).map_err(io::Error::other)?;
                return Ok(Some(Piece::Json { text, line }));
            }
            let rest_start = self.at + skip_whitespace(&self.line[self.at..]);
            if rest_start >= self.line.len() {
                if !self.fetch_line()? {
                    return Ok(None);
                }
                continue;
            }
            if let Some((fault, reason)) = self.whole_line_bad.take() {
                self.at = self.line.len();
                return Ok(Some(self.bad(0, fault, reason)));
            }
            // The line is UTF-8 (checked when read), so any suffix at a value boundary is too.
            let text = std::str::from_utf8(&self.line[rest_start..]).map_err(io::Error::other)?;
            let mut values = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
            match values.next() {
                Some(Ok(raw)) => {
                    let (start, end) = span(text, raw.get());
                    self.at = rest_start + values.byte_offset();
                    self.took_one = true;
                    let (from, to) = (rest_start + start, rest_start + end);
                    let text =
                        std::str::from_utf8(&self.line[from..to]).map_err(io::Error::other)?;
                    return Ok(Some(Piece::Json {
                        text,
                        line: self.line_no,
                    }));
                }
                Some(Err(e)) => {
                    if self.may_open && e.is_eof() && opens_value(text) {
                        let mut depth = Depth::default();
                        if depth.scan(text.as_bytes()) == Scan::Open {
                            self.depth = depth;
                            self.block_line = self.line_no;
                            self.block.clear();
                            self.block.extend_from_slice(text.as_bytes());
                            self.block.push(b'\n');
                            self.at = self.line.len();
                            self.collect_block()?;
                            continue;
                        }
                    }
                    self.at = self.line.len();
                    let from = if self.took_one { rest_start } else { 0 };
                    return Ok(Some(self.bad(
                        from,
                        Fault::NotJson,
                        format!("not JSON ({e})"),
                    )));
                }
                None => {
                    self.at = self.line.len();
                }
            }
        }
    }

    /// A [`Piece::Bad`] for `line[from..]`.
    fn bad(&self, from: usize, fault: Fault, reason: String) -> Piece<'_> {
        let column = from + skip_whitespace(&self.line[from..]) + 1;
        Piece::Bad {
            fault,
            bytes: &self.line[from..],
            line: self.line_no,
            column,
            reason,
        }
    }

    /// Collects the lines of the open multi-line value until it closes (then `ready` holds
    /// it), breaks, grows past the cap, or the input ends (then its lines go to `replay`).
    fn collect_block(&mut self) -> io::Result<()> {
        loop {
            if !self.fetch_line()? {
                return self.give_up_block();
            }
            if let Some(bad) = self.whole_line_bad.take() {
                // Not part of a value: the block fails, and this line is read again after it.
                let line = std::mem::take(&mut self.line);
                let no = self.line_no;
                self.give_up_block()?;
                self.replay.push_back((no, line, Some(bad)));
                return Ok(());
            }
            self.block.extend_from_slice(&self.line);
            self.block.push(b'\n');
            self.at = self.line.len();
            match self.depth.scan(&self.line) {
                Scan::Open if self.block.len() <= MAX_VALUE_BYTES => {}
                Scan::Closed => {
                    let block = std::mem::take(&mut self.block);
                    let parsed = std::str::from_utf8(&block)
                        .ok()
                        .filter(|t| serde_json::from_str::<&RawValue>(t).is_ok());
                    if let Some(text) = parsed {
                        self.ready = Some((self.block_line, text.trim().to_string()));
                        return Ok(());
                    }
                    self.block = block;
                    return self.give_up_block();
                }
                Scan::Open | Scan::Broken => return self.give_up_block(),
            }
        }
    }

    /// The open value did not make one: its lines are read again one by one.
    fn give_up_block(&mut self) -> io::Result<()> {
        let block = std::mem::take(&mut self.block);
        let mut lines: Vec<ReplayLine> = block
            .strip_suffix(b"\n")
            .unwrap_or(&block)
            .split(|b| *b == b'\n')
            .enumerate()
            .map(|(i, l)| (self.block_line + i, l.to_vec(), None))
            .collect();
        // Ahead of anything already waiting: they came first.
        while let Some(l) = lines.pop() {
            self.replay.push_front(l);
        }
        self.line.clear();
        self.at = 0;
        Ok(())
    }

    /// Makes the next line current (a replayed one first); false at the end of the input.
    fn fetch_line(&mut self) -> io::Result<bool> {
        self.at = 0;
        self.took_one = false;
        self.whole_line_bad = None;
        if let Some((no, line, bad)) = self.replay.pop_front() {
            self.line = line;
            self.line_no = no;
            self.may_open = false;
            self.whole_line_bad = bad;
            return Ok(true);
        } else {
            if self.eof {
                return Ok(false);
            }
            self.line.clear();
            let limit = (MAX_VALUE_BYTES + 1) as u64;
            let n = (&mut self.input)
                .take(limit)
                .read_until(b'\n', &mut self.line)?;
            if n == 0 {
                self.eof = true;
                return Ok(false);
            }
            self.line_no = self.next_line_no;
            self.next_line_no += 1;
            self.may_open = self.replay.is_empty();
            if self.line.last() == Some(&b'\n') {
                self.line.pop();
            } else if self.line.len() > MAX_VALUE_BYTES {
                self.line.truncate(KEPT_OF_LONG_LINE);
                self.skip_rest_of_line()?;
                self.whole_line_bad = Some((
                    Fault::TooLong,
                    format!(
                        "a line longer than {} MiB: not read (its first {KEPT_OF_LONG_LINE} bytes are kept)",
                        MAX_VALUE_BYTES >> 20
                    ),
                ));
                return Ok(true);
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
        }
        if let Err(e) = std::str::from_utf8(&self.line) {
            self.whole_line_bad = Some((Fault::NotUtf8, format!("not UTF-8 ({e})")));
        }
        Ok(true)
    }

    /// Reads and drops input up to and including the next line break.
    fn skip_rest_of_line(&mut self) -> io::Result<()> {
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            match buf.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.input.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = buf.len();
                    self.input.consume(n);
                }
            }
        }
    }
}

/// Where `value` (a subslice of `text`) lies in `text`.
fn span(text: &str, value: &str) -> (usize, usize) {
    let start = value.as_ptr() as usize - text.as_ptr() as usize;
    (start, start + value.len())
}

fn skip_whitespace(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len())
}

/// A line ending in `{` or `[` is how pretty printers start a multi-line value.
fn opens_value(text: &str) -> bool {
    text.trim_end().ends_with(['{', '['])
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every piece of `input`, owned: (line, column or 0, text).
    fn pieces(input: &[u8]) -> Vec<(usize, usize, String)> {
        let mut r = Reader::new(input);
        let mut out = Vec::new();
        while let Some(p) = r.next_piece().unwrap() {
            out.push(match p {
                Piece::Json { text, line } => (line, 0, text.to_string()),
                Piece::Bad {
                    bytes,
                    line,
                    column,
                    ..
                } => (line, column, String::from_utf8_lossy(bytes).into_owned()),
            });
        }
        out
    }

    fn json(line: usize, text: &str) -> (usize, usize, String) {
        (line, 0, text.to_string())
    }

    #[test]
    fn lines_concatenated_and_pretty_values_are_all_read() {
        let input = b"{\"a\":1}\n{\n  \"entries\": [{\"b\":2}]\n}\nnot json at all\n[{\"c\":3}] {\"d\":4}\n";
        assert_eq!(
            pieces(input),
            vec![
                json(1, "{\"a\":1}"),
                json(2, "{\n  \"entries\": [{\"b\":2}]\n}"),
                (5, 1, "not json at all".into()),
                json(6, "[{\"c\":3}]"),
                json(6, "{\"d\":4}"),
            ]
        );
        assert!(pieces(b"  \n\r\n").is_empty());
    }

    #[test]
    fn a_bad_value_after_a_good_one_keeps_only_its_own_bytes() {
        assert_eq!(
            pieces(b"{\"a\":1}  junk {\"b\":2}\n{\"c\":3}"),
            vec![
                json(1, "{\"a\":1}"),
                (1, 10, "junk {\"b\":2}".into()),
                json(2, "{\"c\":3}"),
            ]
        );
    }

    #[test]
    fn a_truncated_value_costs_its_own_lines_only() {
        let input = b"{\"id\":\"cut\",\"actor\":{\n{\"a\":1}\n{\"b\":2}\n";
        let got = pieces(input);
        assert_eq!(got[0], (1, 1, "{\"id\":\"cut\",\"actor\":{".into()));
        assert_eq!(&got[1..], &[json(2, "{\"a\":1}"), json(3, "{\"b\":2}")]);
        // Cut inside a string: not a multi-line value at all.
        assert_eq!(
            pieces(b"{\"id\":\"cu\n{\"a\":1}\n"),
            vec![(1, 1, "{\"id\":\"cu".into()), json(2, "{\"a\":1}")]
        );
        // Never closed: every line comes back, in order.
        assert_eq!(
            pieces(b"[\n{\"a\":1}\n"),
            vec![(1, 1, "[".into()), json(2, "{\"a\":1}")]
        );
    }

    #[test]
    fn a_line_of_bad_bytes_is_one_piece_naming_its_line() {
        let input = b"{\"a\":1}\n{\"id\":\"e2\",\"x\":\"\xff\xfe\"}\r\n\n{\"b\":2}\n";
        let mut r = Reader::new(&input[..]);
        assert!(matches!(
            r.next_piece().unwrap(),
            Some(Piece::Json { line: 1, .. })
        ));
        match r.next_piece().unwrap() {
            Some(Piece::Bad {
                fault,
                bytes,
                line,
                reason,
                ..
            }) => {
                assert_eq!(fault, Fault::NotUtf8);
                assert_eq!(bytes, b"{\"id\":\"e2\",\"x\":\"\xff\xfe\"}");
                assert_eq!(line, 2);
                assert!(reason.starts_with("not UTF-8"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.next_piece().unwrap(),
            Some(Piece::Json { line: 4, .. })
        ));
        assert!(r.next_piece().unwrap().is_none());
    }

    #[test]
    fn a_bad_line_inside_a_pretty_value_ends_it_and_is_read_after_it() {
        let input = b"{\n\"a\": \xff\n}\n{\"b\":2}\n";
        let got = pieces(input);
        assert_eq!(got[0], (1, 1, "{".into()));
        assert_eq!(got[1].0, 2);
        assert_eq!(got[2], (3, 1, "}".into()));
        assert_eq!(got[3], json(4, "{\"b\":2}"));
    }

    #[test]
    fn the_error_names_the_column() {
        let mut r = Reader::new(&b"   {\"x\": tru"[..]);
        match r.next_piece().unwrap() {
            Some(Piece::Bad {
                line,
                column,
                reason,
                bytes,
                fault: Fault::NotJson,
            }) => {
                assert_eq!((line, column), (1, 4));
                assert_eq!(bytes, b"   {\"x\": tru");
                assert!(reason.starts_with("not JSON ("), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
