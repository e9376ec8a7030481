//! A small JSON writer that leaves empty values out as it writes.
//!
//! Documents are written straight to bytes instead of being built as `serde_json::Value`
//! trees: building, pruning, serialising and dropping a tree cost three times the mapping
//! itself. Elastic drops `null`, `""`, `{}` and `[]` at any depth; here a field is written
//! optimistically and cut off again (`Vec::truncate`) when its value turns out to be empty, so
//! `{"a": {"b": [""]}}` disappears bottom-up exactly as a pruning pass would remove it.

use super::tree::Node;
use serde_json::Value;

/// An object or array being written: where it started and how many members it kept.
#[derive(Debug)]
pub(crate) struct Open {
    start: usize,
    kept: usize,
}

/// Appends JSON to a byte buffer, eliding empty values.
pub(crate) struct Out<'b> {
    buf: &'b mut Vec<u8>,
}

impl<'b> Out<'b> {
    /// A writer appending to `buf`.
    pub(crate) fn new(buf: &'b mut Vec<u8>) -> Out<'b> {
        Out { buf }
    }

    /// Opens an object.
    pub(crate) fn begin(&mut self) -> Open {
        self.open(b'{')
    }

    /// Opens an array.
    pub(crate) fn begin_array(&mut self) -> Open {
        self.open(b'[')
    }

    fn open(&mut self, bracket: u8) -> Open {
        let start = self.buf.len();
        self.buf.push(bracket);
        Open { start, kept: 0 }
    }

    /// Closes an object; an empty one is removed. True when something was written.
    pub(crate) fn end(&mut self, open: Open) -> bool {
        self.close(open, b'}')
    }

    /// Closes an array; an empty one is removed. True when something was written.
    pub(crate) fn end_array(&mut self, open: Open) -> bool {
        self.close(open, b']')
    }

    fn close(&mut self, open: Open, bracket: u8) -> bool {
        if open.kept == 0 {
            self.buf.truncate(open.start);
            return false;
        }
        self.buf.push(bracket);
        true
    }

    /// Writes `"key":` and returns the mark to pass to [`Out::keep`].
    pub(crate) fn key(&mut self, open: &Open, key: &str) -> usize {
        let mark = self.buf.len();
        if open.kept > 0 {
            self.buf.push(b',');
        }
        self.string(key);
        self.buf.push(b':');
        mark
    }

    /// Starts an array element; returns the mark to pass to [`Out::keep`].
    pub(crate) fn element(&mut self, open: &Open) -> usize {
        let mark = self.buf.len();
        if open.kept > 0 {
            self.buf.push(b',');
        }
        mark
    }

    /// Keeps the member written since `mark` if `wrote`, else removes it.
    pub(crate) fn keep(&mut self, open: &mut Open, mark: usize, wrote: bool) {
        if wrote {
            open.kept += 1;
        } else {
            self.buf.truncate(mark);
        }
    }

    /// `"key": "value"` unless `value` is empty.
    pub(crate) fn str_field(&mut self, open: &mut Open, key: &str, value: &str) {
        if !value.is_empty() {
            self.key(open, key);
            self.string(value);
            open.kept += 1;
        }
    }

    /// `"key": value`, pruned, unless the pruned value is empty.
    pub(crate) fn value_field(&mut self, open: &mut Open, key: &str, value: &Value) {
        let mark = self.key(open, key);
        let wrote = self.value(value);
        self.keep(open, mark, wrote);
    }

    /// `"key": <raw>` where `raw` is already valid, non-empty JSON.
    pub(crate) fn raw_field(&mut self, open: &mut Open, key: &str, raw: &str) {
        self.key(open, key);
        self.buf.extend_from_slice(raw.as_bytes());
        open.kept += 1;
    }

    /// `"key": ["a", "b"]` from string items, empty items and an empty list left out.
    pub(crate) fn str_list_field<'s>(
        &mut self,
        open: &mut Open,
        key: &str,
        items: impl IntoIterator<Item = &'s str>,
    ) {
        let mark = self.key(open, key);
        let mut list = self.begin_array();
        for item in items {
            if !item.is_empty() {
                self.element(&list);
                self.string(item);
                list.kept += 1;
            }
        }
        let wrote = self.end_array(list);
        self.keep(open, mark, wrote);
    }

    /// A JSON string, escaped.
    pub(crate) fn string(&mut self, s: &str) {
        // Most strings need no escaping; checking that first is several times cheaper than
        // serde_json's byte-by-byte escaper, which handles the rest (writing to a Vec cannot
        // fail). The set is serde_json's: control characters, quote and backslash.
        if !needs_escape(s.as_bytes()) {
            self.buf.reserve(s.len() + 2);
            self.buf.push(b'"');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(b'"');
        } else {
            let _ = serde_json::to_writer(&mut *self.buf, s);
        }
    }

    /// Any value, with empty members removed at every depth. False (and nothing written)
    /// when the value itself is empty.
    pub(crate) fn value(&mut self, v: &Value) -> bool {
        match v {
            Value::Null => false,
            Value::String(s) if s.is_empty() => false,
            Value::String(s) => {
                self.string(s);
                true
            }
            Value::Bool(b) => {
                self.buf
                    .extend_from_slice(if *b { b"true" } else { b"false" });
                true
            }
            Value::Number(n) => {
                let _ = serde_json::to_writer(&mut *self.buf, n);
                true
            }
            Value::Array(items) => {
                let mut list = self.begin_array();
                for item in items {
                    let mark = self.element(&list);
                    let wrote = self.value(item);
                    self.keep(&mut list, mark, wrote);
                }
                self.end_array(list)
            }
            Value::Object(map) => {
                let mut obj = self.begin();
                for (k, v) in map {
                    self.value_field(&mut obj, k, v);
                }
                self.end(obj)
            }
        }
    }

    /// `"key": node`, pruned, unless the pruned node is empty.
    pub(crate) fn node_field(&mut self, open: &mut Open, key: &str, node: &Node<'_>) {
        let mark = self.key(open, key);
        let wrote = self.node(node);
        self.keep(open, mark, wrote);
    }

    /// A node of an entry, with empty members removed at every depth; like [`Out::value`].
    pub(crate) fn node(&mut self, v: &Node<'_>) -> bool {
        match v {
            Node::Null => false,
            Node::Str(s) if s.is_empty() => false,
            Node::Str(s) => {
                self.string(s);
                true
            }
            Node::Bool(b) => {
                self.buf
                    .extend_from_slice(if *b { b"true" } else { b"false" });
                true
            }
            Node::Number(n) => {
                let _ = serde_json::to_writer(&mut *self.buf, n);
                true
            }
            Node::Array(items) => {
                let mut list = self.begin_array();
                for item in items {
                    let mark = self.element(&list);
                    let wrote = self.node(item);
                    self.keep(&mut list, mark, wrote);
                }
                self.end_array(list)
            }
            Node::Object(obj) => {
                let mut o = self.begin();
                for (k, v) in obj.iter() {
                    self.node_field(&mut o, k, v);
                }
                self.end(o)
            }
        }
    }
}

/// Whether any byte is a control character, `"` or `\\`; eight bytes at a time (SWAR).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Sets a byte's high bit where that byte of `v` is below `n` (exact for n <= 128, and a
    // zero byte is "below 1"); no false negatives, which is all correctness needs here.
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS;
    let special = |v: u64| {
        below(v, 0x20)
            | below(v ^ (ONES * u64::from(b'"')), 1)
            | below(v ^ (ONES * u64::from(b'\\')), 1)
            != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if special(u64::from_le_bytes(word)) {
            return true;
        }
    }
    // The last bytes as one more word, padded with a byte that needs no escape: most keys
    // and many values are shorter than eight bytes.
    let rest = chunks.remainder();
    let mut word = [b'a'; 8];
    word[..rest.len()].copy_from_slice(rest);
    special(u64::from_le_bytes(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(v: &Value) -> String {
        let mut buf = Vec::new();
        Out::new(&mut buf).value(v);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn drops_empties_at_any_depth() {
        let v = json!({"a": null, "b": "", "c": {}, "d": [], "e": {"f": [""], "g": [{}, null]},
                       "h": 0, "i": false, "j": " ", "k": [1, "", {"l": null}, "x"]});
        let out: Value = serde_json::from_str(&written(&v)).unwrap();
        assert_eq!(out, json!({"h": 0, "i": false, "j": " ", "k": [1, "x"]}));
    }

    #[test]
    fn an_all_empty_value_writes_nothing() {
        assert_eq!(written(&json!({"a": {"b": [""]}})), "");
        assert_eq!(written(&json!([[], {}])), "");
    }

    #[test]
    fn nodes_are_pruned_like_values() {
        let text = r#"{"a":{"b":[""]},"c":[1,null,{}],"d":"x","e":false}"#;
        let node: Node = serde_json::from_str(text).unwrap();
        let mut buf = Vec::new();
        Out::new(&mut buf).node(&node);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            r#"{"c":[1],"d":"x","e":false}"#
        );
    }

    #[test]
    fn escape_check_finds_every_special_byte_at_every_position() {
        for len in 0..20 {
            assert!(!needs_escape(&vec![b'a'; len]));
            for pos in 0..len {
                for special in [0u8, 0x1f, b'"', b'\\'] {
                    let mut bytes = vec![b'a'; len];
                    bytes[pos] = special;
                    assert!(needs_escape(&bytes), "{len} {pos} {special}");
                }
            }
        }
        assert!(!needs_escape("Zürich ~ \u{7f} é".as_bytes()));
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(
            written(&json!({"k\"": "a\nb\u{1}"})),
            r#"{"k\"":"a\nb\u0001"}"#
        );
    }

    #[test]
    fn commas_survive_elided_members() {
        let mut buf = Vec::new();
        let mut out = Out::new(&mut buf);
        let mut obj = out.begin();
        out.str_field(&mut obj, "a", "");
        out.value_field(&mut obj, "b", &json!([]));
        out.str_field(&mut obj, "c", "x");
        out.value_field(&mut obj, "d", &json!({"e": null}));
        out.str_list_field(&mut obj, "f", ["", "y"]);
        assert!(out.end(obj));
        assert_eq!(String::from_utf8(buf).unwrap(), r#"{"c":"x","f":["y"]}"#);
    }
}
