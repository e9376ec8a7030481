//! Reading the few ECS fields the analysis needs, on documents of any shape (writing is
//! [`Doc::set`]), and the small helpers around them: times, stable ids, user-agent globs.
//!
//! Documents come from the mapping, from `analyze`'s stdin or from older versions of this
//! binary, so every accessor tolerates a missing field or a value of the wrong type: it
//! answers `None` (or nothing) rather than failing. Nothing here panics. They read any
//! [`Doc`]: a `serde_json::Value`, or the tree the pipeline reads a written document into.

use crate::doc::{Doc, Field};
use crate::fnv::Fnv128;
use chrono::{DateTime, SecondsFormat, Utc};

/// A non-empty string at `path`; numbers are accepted too (ids sometimes arrive as numbers).
pub(crate) fn string(doc: &impl Doc, path: &[&str]) -> Option<String> {
    match doc.at(path)? {
        Field::Str(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Field::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An unsigned integer at `path`, from a number or a numeric string (`"16509"`, `"AS16509"`).
pub(crate) fn unsigned(doc: &impl Doc, path: &[&str]) -> Option<u64> {
    match doc.at(path)? {
        Field::Number(n) => n.as_u64(),
        Field::Str(s) => parse_asn(s),
        _ => None,
    }
}

/// `16509`, `"16509"` or `"AS16509"` as a number.
pub(crate) fn parse_asn(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t
        .strip_prefix("AS")
        .or_else(|| t.strip_prefix("as"))
        .unwrap_or(t);
    t.parse().ok()
}

/// `@timestamp` as a time; `None` when absent or not RFC 3339.
pub(crate) fn timestamp(doc: &impl Doc) -> Option<DateTime<Utc>> {
    let s = doc.str_at(&["@timestamp"])?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The anomaly's `slack.audit.details.reason`: an array of strings as Slack documents it, but
/// a single string or a JSON-encoded array (seen in transformed data) are read too.
pub(crate) fn reasons(doc: &impl Doc) -> Vec<String> {
    let mut out = Vec::new();
    match doc.at(&["slack", "audit", "details", "reason"]) {
        Some(Field::Array(items)) => out.extend(items.into_iter().map(str::to_string)),
        Some(Field::Str(s)) => match serde_json::from_str::<Vec<String>>(s) {
            Ok(list) => out.extend(list),
            Err(_) => out.extend(s.split(',').map(str::to_string)),
        },
        _ => {}
    }
    out.iter()
        .map(|r| r.trim().to_ascii_lowercase())
        .filter(|r| !r.is_empty())
        .collect()
}

/// RFC 3339 UTC with milliseconds, the format of `@timestamp` in docs/mapping.md.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A time from Unix milliseconds, clamped into chrono's range (never panics).
pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// FNV-1a, 128 bits, as 32 hex digits: a stable id from text. Stable across Rust versions and
/// platforms (unlike `DefaultHasher`), which matters because finding ids are document ids that
/// must come out the same after an upgrade and a replay.
pub(crate) fn stable_id(parts: &[&str]) -> String {
    let mut h = Fnv128::new();
    for (i, part) in parts.iter().enumerate() {
        // A separator byte that cannot occur in UTF-8 keeps ("ab","c") and ("a","bc") apart.
        if i > 0 {
            h.write(&[0xff]);
        }
        h.write(part.as_bytes());
    }
    format!("{:032x}", h.finish())
}

/// A glob over user-agent strings: `*` is any run of characters, `?` one character; matching
/// ignores ASCII case. Globs rather than regexes: a UA list is written by admins who paste
/// strings from logs, and a glob cannot be slow (no backtracking blow-up) or fail to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    pattern: String,
    chars: Vec<char>,
}

impl Glob {
    /// A glob from its text.
    pub(crate) fn new(pattern: &str) -> Glob {
        Glob {
            pattern: pattern.to_string(),
            chars: pattern.chars().map(|c| c.to_ascii_lowercase()).collect(),
        }
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `text` matches the whole pattern.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
        let p = &self.chars;
        // Linear-time wildcard matching: remember the last `*` and retry from there.
        let (mut ti, mut pi) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                ti += 1;
                pi += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn accessors_tolerate_any_shape() {
        let doc = json!({"user": "not an object", "slack": {"audit": {"details": {"reason": 7}}}, "@timestamp": 5});
        assert_eq!(string(&doc, &["user", "id"]), None);
        assert!(reasons(&doc).is_empty());
        assert_eq!(timestamp(&doc), None);
        assert_eq!(string(&json!([1, 2]), &["user", "id"]), None);
        assert_eq!(
            unsigned(
                &json!({"source": {"as": {"number": "AS16509"}}}),
                &["source", "as", "number"]
            ),
            Some(16509)
        );
    }

    #[test]
    fn reasons_read_array_string_and_json_string() {
        let r = |v: Value| reasons(&json!({"slack": {"audit": {"details": {"reason": v}}}}));
        assert_eq!(r(json!(["tor", "ASN"])), vec!["tor", "asn"]);
        assert_eq!(r(json!("tor")), vec!["tor"]);
        assert_eq!(r(json!("[\"tor\",\"asn\"]")), vec!["tor", "asn"]);
    }

    #[test]
    fn globs_match_whole_strings_ignoring_case() {
        let g = Glob::new("Slack/* (Android*)");
        assert!(g.matches("slack/23.04 (Android 13)"));
        assert!(!g.matches("Slack/23.04 (iPhone)"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a?c").matches("abc"));
        assert!(!Glob::new("a?c").matches("ac"));
        assert!(Glob::new("*b*b*").matches("abxbx"));
    }

    #[test]
    fn stable_ids_are_pinned() {
        assert_eq!(stable_id(&["a", "bc"]), stable_id(&["a", "bc"]));
        assert_ne!(stable_id(&["a", "bc"]), stable_id(&["ab", "c"]));
        assert_eq!(stable_id(&[]), "6c62272e07bb014262b821756295c58d");
    }
}
