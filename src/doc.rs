//! One document as the analysis and the metrics read and annotate it, whatever holds it.
//!
//! The pipeline hands the analysis the borrowed tree of a document the mapping has just
//! written (`mapping::tree::Node`: one allocation per object, none per string); `analyze`,
//! the findings and the tests hand it `serde_json::Value`s. Building a `Value` for each
//! analysed document was about a fifth of a backfill's CPU time, for 7% of its entries (see
//! BENCHMARKS.md), so the readers are written once, against [`Doc`], and both kinds serve.
//!
//! A leaf: it imports nothing of this crate, so the metrics (below the mapping) and the
//! analysis (above it) share it.

use serde_json::{Map, Number, Value};

/// What a document holds at a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(&'a Number),
    /// A string.
    Str(&'a str),
    /// An array: its string items in order (items of other types are left out).
    Array(Vec<&'a str>),
    /// An object.
    Object,
}

/// A JSON document that can be read at a path of object keys and annotated.
pub trait Doc: From<Value> {
    /// What is at `path` (e.g. `["user", "id"]`); `None` when something on the way is
    /// missing or not an object.
    fn at(&self, path: &[&str]) -> Option<Field<'_>>;

    /// `path`'s value as JSON text, byte for byte as `serde_json` writes the same value as a
    /// `Value` (object keys sorted).
    fn json_at(&self, path: &[&str]) -> Option<String>;

    /// Sets `value` at `path`, creating objects on the way. Returns `false` (and changes
    /// nothing) when something on the way exists but is not an object: we annotate, never
    /// overwrite data.
    fn set(&mut self, path: &[&str], value: Value) -> bool;

    /// Whether the document is an object (anything else carries nothing to read).
    fn is_object(&self) -> bool {
        self.at(&[]).is_some_and(|f| f == Field::Object)
    }

    /// The string at `path`.
    fn str_at(&self, path: &[&str]) -> Option<&str> {
        match self.at(path)? {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The value at a path of object keys in a `Value`.
pub fn value_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.as_object()?.get(*key))
}

impl Doc for Value {
    fn at(&self, path: &[&str]) -> Option<Field<'_>> {
        Some(match value_at(self, path)? {
            Value::Null => Field::Null,
            Value::Bool(b) => Field::Bool(*b),
            Value::Number(n) => Field::Number(n),
            Value::String(s) => Field::Str(s),
            Value::Array(items) => Field::Array(items.iter().filter_map(Value::as_str).collect()),
            Value::Object(_) => Field::Object,
        })
    }

    fn json_at(&self, path: &[&str]) -> Option<String> {
        value_at(self, path).map(Value::to_string)
    }

    fn set(&mut self, path: &[&str], value: Value) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        // Objects are created only where a key is missing, and everything below a created
        // object is new, so a refusal always comes before any change.
        let mut cur = self;
        for key in parents {
            let Some(obj) = cur.as_object_mut() else {
                return false;
            };
            cur = obj
                .entry((*key).to_string())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        match cur.as_object_mut() {
            Some(obj) => {
                obj.insert((*last).to_string(), value);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_values_at_paths() {
        let doc =
            json!({"a": {"b": "x", "n": 7, "l": ["p", 1, "q"], "z": null, "t": true, "o": {}}});
        assert_eq!(doc.at(&["a", "b"]), Some(Field::Str("x")));
        assert_eq!(doc.str_at(&["a", "b"]), Some("x"));
        assert_eq!(doc.at(&["a", "n"]), Some(Field::Number(&7.into())));
        assert_eq!(doc.at(&["a", "l"]), Some(Field::Array(vec!["p", "q"])));
        assert_eq!(doc.at(&["a", "z"]), Some(Field::Null));
        assert_eq!(doc.at(&["a", "t"]), Some(Field::Bool(true)));
        assert_eq!(doc.at(&["a", "o"]), Some(Field::Object));
        assert_eq!(doc.at(&["a", "b", "c"]), None);
        assert_eq!(doc.at(&["missing"]), None);
        assert!(doc.is_object());
        assert!(!json!([1]).is_object());
        assert_eq!(doc.json_at(&["a", "l"]).as_deref(), Some(r#"["p",1,"q"]"#));
    }

    #[test]
    fn set_never_overwrites_a_non_object() {
        let mut doc = json!({"slack": "text"});
        assert!(!doc.set(&["slack", "audit", "x"], json!(1)));
        assert_eq!(doc, json!({"slack": "text"}));
        let mut doc = json!({});
        assert!(doc.set(&["slack", "audit", "x"], json!(1)));
        assert_eq!(doc, json!({"slack": {"audit": {"x": 1}}}));
        assert!(!json!(3).set(&["a"], json!(1)));
        assert!(!json!({}).set(&[], json!(1)));
    }
}
