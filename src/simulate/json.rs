//! A tiny append-only JSON writer for generated entries.
//!
//! The generator makes up to a million entries at start; building a `serde_json::Value` per
//! entry and serialising it costs several times more than appending text. Keys are literals
//! from this module's callers; values go through [`push_str`], which escapes when needed.

use std::fmt::Write as _;

/// Compact JSON text under construction. Commas are placed by looking at the previous byte,
/// so callers only say what comes next.
#[derive(Debug, Default)]
pub(crate) struct Json {
    buf: String,
}

impl Json {
    /// An empty writer with room for a typical entry.
    pub(crate) fn new() -> Json {
        Json {
            buf: String::with_capacity(640),
        }
    }

    /// The text written so far.
    pub(crate) fn finish(self) -> String {
        self.buf
    }

    fn sep(&mut self) {
        if !matches!(
            self.buf.as_bytes().last(),
            None | Some(b'{') | Some(b'[') | Some(b':')
        ) {
            self.buf.push(',');
        }
    }

    fn key(&mut self, k: &str) {
        self.sep();
        self.buf.push('"');
        self.buf.push_str(k);
        self.buf.push_str("\":");
    }

    /// Opens the top-level object or an object inside an array.
    pub(crate) fn begin(&mut self) {
        self.sep();
        self.buf.push('{');
    }

    /// `"k":{`.
    pub(crate) fn obj(&mut self, k: &str) {
        self.key(k);
        self.buf.push('{');
    }

    /// Closes an object.
    pub(crate) fn end(&mut self) {
        self.buf.push('}');
    }

    /// `"k":[`.
    pub(crate) fn arr(&mut self, k: &str) {
        self.key(k);
        self.buf.push('[');
    }

    /// Closes an array.
    pub(crate) fn end_arr(&mut self) {
        self.buf.push(']');
    }

    /// `"k":"v"`.
    pub(crate) fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        push_str(&mut self.buf, v);
    }

    /// `"k":n`.
    pub(crate) fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        let _ = write!(self.buf, "{v}");
    }

    /// `"k":true|false`.
    pub(crate) fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
    }

    /// `"k":null`.
    pub(crate) fn null(&mut self, k: &str) {
        self.key(k);
        self.buf.push_str("null");
    }

    /// `"k":[..strings..]`.
    pub(crate) fn strs(&mut self, k: &str, items: &[&str]) {
        self.arr(k);
        for item in items {
            self.item(item);
        }
        self.end_arr();
    }

    /// A string inside an array.
    pub(crate) fn item(&mut self, v: &str) {
        self.sep();
        push_str(&mut self.buf, v);
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_str(buf: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push('"');
        buf.push_str(s);
        buf.push('"');
    } else {
        // Rare (generated values are plain); serde_json knows every escape.
        buf.push_str(&serde_json::Value::from(s).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_compact_json() {
        let mut j = Json::new();
        j.begin();
        j.str("a", "x\"y\\z\n");
        j.obj("b");
        j.int("n", -3);
        j.bool("t", true);
        j.null("z");
        j.end();
        j.strs("r", &["p", "q"]);
        j.arr("e");
        j.end_arr();
        j.arr("o");
        j.begin();
        j.end();
        j.begin();
        j.end();
        j.end_arr();
        j.end();
        let text = j.finish();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["a"], "x\"y\\z\n");
        assert_eq!(v["b"]["n"], -3);
        assert_eq!(v["r"][1], "q");
        assert_eq!(v["o"].as_array().unwrap().len(), 2);
    }
}
