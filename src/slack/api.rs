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
    /// The response body, shared with nothing else.
    body: bytes::Bytes,
    /// Where each entry lies in `body`, in Slack's order.
    spans: Vec<std::ops::Range<usize>>,
    /// `None` when the chain ends.
    pub next_cursor: Option<String>,
}

impl Page {
    /// A page over `body`, whose `entries` were parsed from it (they borrow from it).
    ///
    /// An entry that does not lie inside `body` cannot come from serde's borrowing parse; it
    /// is kept as an empty entry (mapped to a `pipeline_error`) rather than trusted.
    pub(crate) fn from_body(
        body: bytes::Bytes,
        entries: &[&RawValue],
        next_cursor: Option<String>,
    ) -> Page {
        let base = body.as_ptr() as usize;
        let spans = entries
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
            .collect();
        Page {
            body,
            spans,
            next_cursor,
        }
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
        let span = self.spans.get(i)?.clone();
        // serde checked every entry is UTF-8 when it borrowed it; this cannot fail, and if it
        // did the entry would become a `pipeline_error`, not a panic.
        Some(std::str::from_utf8(self.body.get(span)?).unwrap_or_default())
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
    pub(crate) fn read(raw: &str) -> EntryKey {
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
            _ => format!("sha:{:016x}", Fnv::hash(raw.as_bytes())),
        };
        let date_create = date.and_then(|d| match d {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
            _ => None,
        });
        EntryKey { id, date_create }
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
}
