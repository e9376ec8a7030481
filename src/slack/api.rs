//! Serde wire types for `GET /audit/v1/logs`, lenient on purpose.
//!
//! Slack's bodies vary (see docs/slack-api.md §3): `ok` may be absent or false on a 200,
//! `response_metadata` may be absent, `{}`, or carry `next_cursor: ""`, entries carry duplicate
//! keys and new attributes. So entries are kept as raw text (mapping reads them later) and
//! only the two fields the poller's checks and the pipeline's dedup need, `id` and
//! `date_create`, are read here ([`EntryKey`]), leniently.
//!
//! A [`Page`] keeps the response body as it came and the byte span of each entry in it: at
//! `--limit 9999` a body is about 15 MB, and a second, per-entry copy would double the memory
//! of every page held (see BENCHMARKS.md).

use crate::fnv::Fnv;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// Slack's own filters of `/logs` (`action`, `actor`, `entity`), as `run` validated them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// At most 30 action names.
    pub(crate) actions: Vec<String>,
    /// A user id.
    pub(crate) actor: Option<String>,
    /// An entity id.
    pub(crate) entity: Option<String>,
}

/// A `/logs` response body as Slack sends it; entries borrow from the body.
#[derive(Debug, Deserialize)]
pub(crate) struct LogsResponse<'a> {
    /// `true`, `false` or absent; not trusted on its own.
    #[serde(default)]
    pub(crate) ok: Option<Value>,
    /// The error code on a failed call; an empty string is no error.
    #[serde(default)]
    pub(crate) error: Option<Value>,
    /// The entries, newest first. Absent means the body is not a page at all.
    #[serde(default, borrow)]
    pub(crate) entries: Option<Vec<&'a RawValue>>,
    /// `{next_cursor}`, `{}` or absent.
    #[serde(default)]
    pub(crate) response_metadata: Option<Value>,
}

impl LogsResponse<'_> {
    /// The error code, when the body reports one (a non-empty `error`, or `ok: false` without one).
    pub(crate) fn error_code(&self) -> Option<String> {
        match self.error.as_ref() {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ if self.ok == Some(Value::Bool(false)) && self.entries.is_none() => {
                Some("unknown_error".into())
            }
            _ => None,
        }
    }

    /// The cursor for the next page; `None` for all three ways Slack says "done" (an empty
    /// `next_cursor`, `response_metadata: {}`, no `response_metadata`), and for `null`.
    ///
    /// # Errors
    ///
    /// A description of the value when `next_cursor` (or `response_metadata`) has another
    /// type: a number is not "done", so it must not end the chain silently.
    pub(crate) fn next_cursor(&self) -> Result<Option<String>, String> {
        let cursor = match &self.response_metadata {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(m)) => m.get("next_cursor"),
            Some(other) => {
                return Err(format!(
                    "response_metadata is {}, not an object",
                    describe(other)
                ))
            }
        };
        match cursor {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(c)) if c.is_empty() => Ok(None),
            Some(Value::String(c)) => Ok(Some(c.clone())),
            Some(other) => Err(format!("next_cursor is {}, not a string", describe(other))),
        }
    }
}

/// A JSON value's type and its start, for a message (bounded: a hostile value may be long).
fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let text: String = v.to_string().chars().take(40).collect();
    format!("{kind} ({text})")
}

/// One page of raw entries, newest first, and where to go next.
#[derive(Debug, Default)]
pub struct Page {
    /// The response body, checked once to be UTF-8, and shared with nothing else.
    body: String,
    /// Where each entry lies in `body`, in Slack's order.
    spans: Vec<std::ops::Range<usize>>,
    /// `None` when the chain ends.
    pub next_cursor: Option<String>,
}

impl Page {
    /// A page over `body`; `spans` are [`Page::spans`] of the entries parsed from it.
    pub(crate) fn new(
        body: String,
        spans: Vec<std::ops::Range<usize>>,
        next_cursor: Option<String>,
    ) -> Page {
        Page {
            body,
            spans,
            next_cursor,
        }
    }

    /// Where each of `entries`, parsed from `body` (they borrow from it), lies in it.
    ///
    /// An entry that does not lie inside `body` cannot come from serde's borrowing parse; it
    /// is kept as an empty entry (mapped to a `pipeline_error`) rather than trusted.
    pub(crate) fn spans(body: &[u8], entries: &[&RawValue]) -> Vec<std::ops::Range<usize>> {
        let base = body.as_ptr() as usize;
        entries
            .iter()
            .map(|raw| {
                let start = (raw.get().as_ptr() as usize).wrapping_sub(base);
                let end = start.saturating_add(raw.get().len());
                if end <= body.len() {
                    start..end
                } else {
                    0..0
                }
            })
            .collect()
    }

    /// A page holding a copy of each entry of `body`, one after another: for a body that is
    /// not UTF-8 outside its entries, whose `spans` serde checked to be UTF-8.
    pub(crate) fn copied(
        body: &[u8],
        spans: &[std::ops::Range<usize>],
        next_cursor: Option<String>,
    ) -> Page {
        let mut text = String::with_capacity(spans.iter().map(|r| r.len()).sum());
        let spans = spans
            .iter()
            .map(|r| {
                let start = text.len();
                let entry = body.get(r.clone()).unwrap_or_default();
                text.push_str(std::str::from_utf8(entry).unwrap_or_default());
                start..text.len()
            })
            .collect();
        Page::new(text, spans, next_cursor)
    }

    /// How many entries the page holds.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True for a page without entries.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The i-th entry's text, as Slack sent it; `None` past the end.
    pub(crate) fn entry(&self, i: usize) -> Option<&str> {
        // A span off a character boundary cannot come from serde's parse; were it to, the
        // entry would be empty (a `pipeline_error`), not a panic.
        Some(
            self.body
                .get(self.spans.get(i)?.clone())
                .unwrap_or_default(),
        )
    }

    /// The entries' texts in Slack's order.
    pub(crate) fn entries(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.entry(i).unwrap_or_default())
    }
}

/// The two fields of an entry the poller and the pipeline need: a stable identity and its
/// second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryKey {
    /// `id`, or a hash of the raw bytes when Slack sent none (so dedup still works).
    pub(crate) id: String,
    /// `date_create` in Unix seconds; `None` when absent or unreadable.
    pub(crate) date_create: Option<i64>,
}

impl EntryKey {
    /// Reads `id` and `date_create` from a raw entry, never failing.
    ///
    /// Almost every entry is read by a scan of its top level ([`EntryKey::read_plain`]);
    /// anything that scan does not accept is read by serde, which defines the answer.
    pub(crate) fn read(raw: &str) -> EntryKey {
        EntryKey::read_plain(raw).unwrap_or_else(|| EntryKey::read_general(raw))
    }

    /// The key of the common entry, read without building anything: an object whose keys
    /// hold no escapes, with at most one `id`, a non-empty string without escapes, and at
    /// most one `date_create`, an integer without sign, fraction or exponent. `None` for
    /// anything else (or text that is not valid JSON, which the page's parse already
    /// refused), which [`EntryKey::read_general`] answers.
    ///
    /// Why: serde's reading of the key walks every member's value and builds a `Value`
    /// for the two it keeps; it was a tenth of a backlog's instructions (BENCHMARKS.md).
    fn read_plain(raw: &str) -> Option<EntryKey> {
        let b = raw.as_bytes();
        let mut i = skip_ws(b, 0);
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let (mut id, mut date_create, mut has_date) = (None, None, false);
        if b.get(i) == Some(&b'}') {
            i += 1;
        } else {
            loop {
                let (key, end) = plain_string(raw, i)?;
                i = skip_ws(b, end);
                if b.get(i) != Some(&b':') {
                    return None;
                }
                i = skip_ws(b, i + 1);
                match key {
                    "id" if id.is_none() => {
                        let (value, end) = plain_string(raw, i)?;
                        if value.is_empty() {
                            return None;
                        }
                        id = Some(value);
                        i = end;
                    }
                    "date_create" if !has_date => {
                        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                        // 18 digits always fit an i64; longer, and fractions, go to serde.
                        if digits == 0 || digits > 18 {
                            return None;
                        }
                        date_create = raw[i..i + digits].parse::<i64>().ok();
                        has_date = true;
                        i += digits;
                    }
                    "id" | "date_create" => return None,
                    _ => i = skip_value(b, i)?,
                }
                i = skip_ws(b, i);
                match b.get(i) {
                    Some(b',') => i = skip_ws(b, i + 1),
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        if skip_ws(b, i) != b.len() {
            return None;
        }
        Some(EntryKey {
            id: id.map_or_else(|| hashed_id(raw), str::to_string),
            date_create,
        })
    }

    /// Reads `id` and `date_create` with serde: the definition of the key.
    fn read_general(raw: &str) -> EntryKey {
        #[derive(Deserialize)]
        struct Head {
            #[serde(default)]
            id: Option<Value>,
            #[serde(default)]
            date_create: Option<Value>,
        }
        // A duplicated `id` key or a non-object entry fails this parse; the entry still
        // gets a key from its bytes, and mapping reports the problem in the document.
        let head: Option<Head> = serde_json::from_str(raw).ok();
        let (id, date) = head.map(|h| (h.id, h.date_create)).unwrap_or((None, None));
        let id = match id {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => hashed_id(raw),
        };
        let date_create = date.and_then(|d| match d {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
            _ => None,
        });
        EntryKey { id, date_create }
    }
}

/// The id of an entry that has no usable one: a hash of its bytes, so dedup still works.
fn hashed_id(raw: &str) -> String {
    format!("sha:{:016x}", Fnv::hash(raw.as_bytes()))
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The index of the first `"` or `\\` at or after `i`, eight bytes at a time (SWAR): the
/// strings of an entry are short, too short for `memchr`'s setup to pay.
fn quote_or_backslash(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte's high bit set where that byte of `v` is zero; exact for the lowest such byte,
    // which is the one used.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    while let Some(chunk) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().ok()?);
        let hits = zero(v ^ (ONES * u64::from(b'"'))) | zero(v ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|n| i + n)
}

/// The string starting at `i` (its opening quote) and the index after it, when it holds no
/// escape; `None` otherwise.
fn plain_string(raw: &str, i: usize) -> Option<(&str, usize)> {
    let b = raw.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let end = quote_or_backslash(b, i + 1)?;
    if b[end] != b'"' {
        return None;
    }
    Some((raw.get(i + 1..end)?, end + 1))
}

/// The index after the string starting at `i` (its opening quote), escapes and all.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut i = i + 1;
    loop {
        i = quote_or_backslash(b, i)?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        // A backslash: it and the byte it escapes (a `\u` escape's digits are plain bytes).
        i += 2;
    }
}

/// The index after the JSON value starting at `i`, for valid JSON; `None` when the text ends
/// first.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let (mut i, mut depth) = (i, 0usize);
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        // A number, `true`, `false` or `null`: up to what follows it.
        _ => Some(
            b[i..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .map_or(b.len(), |n| i + n),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> LogsResponse<'_> {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn every_end_of_chain_spelling_is_done() {
        for body in [
            r#"{"entries":[],"response_metadata":{"next_cursor":""}}"#,
            r#"{"entries":[],"response_metadata":{}}"#,
            r#"{"entries":[]}"#,
            r#"{"entries":[],"response_metadata":null}"#,
            r#"{"entries":[],"response_metadata":{"next_cursor":null}}"#,
        ] {
            assert_eq!(parse(body).next_cursor(), Ok(None), "{body}");
        }
        assert_eq!(
            parse(r#"{"entries":[],"response_metadata":{"next_cursor":"ab=="}}"#).next_cursor(),
            Ok(Some("ab==".to_string()))
        );
    }

    #[test]
    fn a_cursor_that_is_not_a_string_is_an_error_not_the_end() {
        for (body, says) in [
            (
                r#"{"entries":[],"response_metadata":{"next_cursor":12345}}"#,
                "a number (12345)",
            ),
            (
                r#"{"entries":[],"response_metadata":{"next_cursor":["a"]}}"#,
                "an array",
            ),
            (
                r#"{"entries":[],"response_metadata":"abc"}"#,
                "response_metadata is a string",
            ),
        ] {
            let err = parse(body).next_cursor().unwrap_err();
            assert!(err.contains(says), "{body}: {err}");
        }
    }

    #[test]
    fn error_code_reads_ok_false_and_ignores_empty_error() {
        assert_eq!(
            parse(r#"{"ok":false,"error":"invalid_cursor"}"#)
                .error_code()
                .as_deref(),
            Some("invalid_cursor")
        );
        assert_eq!(
            parse(r#"{"ok":false,"error":"","entries":[]}"#).error_code(),
            None
        );
        assert_eq!(
            parse(r#"{"ok":false}"#).error_code().as_deref(),
            Some("unknown_error")
        );
        assert_eq!(parse(r#"{"ok":true,"entries":[]}"#).error_code(), None);
    }

    #[test]
    fn odd_entries_never_break_the_page() {
        let body = r#"{"entries":[
            {"id":"a","date_create":1,"context":{"session_id":123}},
            {"id":"b","date_create":"2","details":{"x":1,"x":2}},
            {"date_create":3},
            "not an object",
            {"id":"c","id":"d","date_create":4}
        ]}"#;
        let r = parse(body);
        let keys: Vec<EntryKey> = r
            .entries
            .unwrap()
            .iter()
            .map(|e| EntryKey::read(e.get()))
            .collect();
        assert_eq!(
            keys[0],
            EntryKey {
                id: "a".into(),
                date_create: Some(1)
            }
        );
        assert_eq!(
            keys[1],
            EntryKey {
                id: "b".into(),
                date_create: Some(2)
            }
        );
        assert!(keys[2].id.starts_with("sha:") && keys[2].date_create == Some(3));
        assert!(keys[3].id.starts_with("sha:") && keys[3].date_create.is_none());
        // A duplicated id cannot be trusted either way: hashed, and stable.
        assert_eq!(
            keys[4].id,
            EntryKey::read(r#"{"id":"c","id":"d","date_create":4}"#).id
        );
    }

    #[test]
    fn a_common_entry_is_read_by_the_scan_as_serde_reads_it() {
        let entry = r#"{"id":"e30b","date_create":1796680303,"action":"user_login",
            "actor":{"type":"user","user":{"id":"W1","name":"A \"B\" \\ C"}},
            "entity":{"type":"app","app":{"scopes":["a","b"],"is_distributed":true,"n":-1.5e3}},
            "context":{"ua":"Mozilla/5.0 {[(\"}]} \\","session_id":1733516583391},"details":null}"#;
        let plain = EntryKey::read_plain(entry).expect("the common shape is scanned");
        assert_eq!(plain, EntryKey::read_general(entry));
        assert_eq!(plain.id, "e30b");
        assert_eq!(plain.date_create, Some(1796680303));
        // Keys anywhere in the object, with whitespace around everything, and none at all.
        for raw in [
            " { \"x\" : [ 1 , { \"id\" : \"inner\" } ] , \"date_create\" : 7 , \"id\" : \"k\" } ",
            r#"{"date_create":0}"#,
            "{}",
        ] {
            assert_eq!(
                EntryKey::read_plain(raw),
                Some(EntryKey::read_general(raw)),
                "{raw}"
            );
        }
    }

    /// Hostile sizes: the scan walks nesting without recursion and strings without copying,
    /// so a deep or huge member costs time in proportion to its bytes, never stack.
    #[test]
    fn deep_and_huge_members_are_stepped_over() {
        let deep = format!(
            r#"{{"x":{}{},"id":"k","date_create":5,"s":"{}"}}"#,
            "[{\"a\":".repeat(200_000),
            "1}]".repeat(200_000),
            "\\\"".repeat(100_000)
        );
        assert_eq!(
            EntryKey::read_plain(&deep),
            Some(EntryKey {
                id: "k".into(),
                date_create: Some(5)
            })
        );
        // Cut short: not a key the scan can vouch for.
        assert_eq!(EntryKey::read_plain(&deep[..deep.len() / 2]), None);
    }

    #[test]
    fn what_the_scan_does_not_accept_goes_to_serde() {
        for raw in [
            r#"{"id":"c","id":"d","date_create":4}"#,
            r#"{"id":"a","date_create":4,"date_create":5}"#,
            r#"{"\u0069d":"a","date_create":4}"#,
            r#"{"id":"a\nb","date_create":4}"#,
            r#"{"id":12,"date_create":4}"#,
            r#"{"id":"","date_create":4}"#,
            r#"{"id":"a","date_create":4.5}"#,
            r#"{"id":"a","date_create":-4}"#,
            r#"{"id":"a","date_create":"4"}"#,
            r#"{"id":"a","date_create":1e3}"#,
            r#"{"id":"a","date_create":12345678901234567890}"#,
            r#"["id","a"]"#,
            r#""not an object""#,
            "",
        ] {
            assert_eq!(EntryKey::read_plain(raw), None, "{raw}");
            assert_eq!(EntryKey::read(raw), EntryKey::read_general(raw), "{raw}");
        }
    }

    mod props {
        use super::super::EntryKey;
        use proptest::prelude::*;
        use serde_json::Value;

        fn json_value() -> impl Strategy<Value = Value> {
            crate::testing::json_value("(id|date_create|[a-z\"\\\\]{0,4})")
        }

        /// A top-level member: a key (often `id` or `date_create`, maybe repeated or escaped)
        /// and its value.
        fn member() -> impl Strategy<Value = (String, Value)> {
            let key = prop_oneof![
                Just("id".to_string()),
                Just("date_create".to_string()),
                "[a-z\"\\\\]{0,5}",
            ];
            let value = prop_oneof![
                "[a-z0-9\\-]{0,12}".prop_map(Value::from),
                (0i64..4_000_000_000).prop_map(Value::from),
                json_value(),
            ];
            (key, value)
        }

        proptest! {
            /// Whatever the scan answers is what serde answers, whatever the spacing.
            #[test]
            fn the_scan_agrees_with_serde(
                members in prop::collection::vec(member(), 0..6),
                spaced in any::<bool>(),
                escaped_key in any::<bool>(),
            ) {
                let sep = if spaced { " \n\t" } else { "" };
                let mut raw = format!("{sep}{{{sep}");
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        raw.push_str(&format!("{sep},{sep}"));
                    }
                    let key = if escaped_key && k == "id" {
                        "\"\\u0069d\"".to_string()
                    } else {
                        serde_json::to_string(k).unwrap()
                    };
                    let value = if spaced {
                        serde_json::to_string_pretty(v).unwrap()
                    } else {
                        v.to_string()
                    };
                    raw.push_str(&format!("{key}{sep}:{sep}{value}"));
                }
                raw.push_str(&format!("{sep}}}{sep}"));
                let general = EntryKey::read_general(&raw);
                if let Some(plain) = EntryKey::read_plain(&raw) {
                    prop_assert_eq!(plain, general, "{}", raw);
                }
                prop_assert_eq!(EntryKey::read(&raw), EntryKey::read_general(&raw));
            }
        }
    }
}
