//! A borrowed JSON tree for reading entries: strings point into the input unless they hold
//! escapes, and objects are small vectors kept in input order.
//!
//! Why not `serde_json::Value`: an entry is read once and thrown away, and `Value` spends most
//! of that time allocating a `String` per key and value and a B-tree per object, then freeing
//! them. This tree allocates one vector per object or array. Duplicate keys keep the first
//! position and the last value, which is what `Value` (and Elasticsearch) would show.
//!
//! The pipeline also reads each document it hands the analysis back into this tree, which the
//! analysis annotates ([`Doc`]) and the sink writes. Written out, an object's keys are sorted,
//! so the text is byte for byte what the same `Value` gives.

use crate::doc::{Doc, Field};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// One JSON value read from an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Any number.
    Number(Number),
    /// A string, borrowed from the input when it has no escapes.
    Str(Cow<'a, str>),
    /// A list.
    Array(Vec<Node<'a>>),
    /// An object.
    Object(Obj<'a>),
}

/// An object's members in input order, keys unique.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Obj<'a> {
    members: Vec<(Cow<'a, str>, Node<'a>)>,
}

/// Objects larger than this get a hash index while being read, so duplicate detection stays
/// linear on hostile input.
const LINEAR_SCAN_LIMIT: usize = 32;

impl<'a> Obj<'a> {
    /// The value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of `key`, to change it.
    fn get_mut(&mut self, key: &str) -> Option<&mut Node<'a>> {
        self.members
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Sets `key` to `value`, in place when the key is there, else at the end.
    fn insert(&mut self, key: &str, value: Node<'a>) {
        match self.get_mut(key) {
            Some(v) => *v = value,
            None => self.members.push((Cow::Owned(key.to_string()), value)),
        }
    }

    /// The value of `key`, an empty object added at the end first when the key is missing.
    fn get_or_insert_object(&mut self, key: &str) -> &mut Node<'a> {
        let i = match self.members.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.members
                    .push((Cow::Owned(key.to_string()), Node::Object(Obj::default())));
                self.members.len() - 1
            }
        };
        &mut self.members[i].1
    }

    /// Whether `key` is present.
    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Members in input order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Node<'a>)> {
        self.members.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Keys in input order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(k, _)| k.as_ref())
    }

    /// Number of members.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }
}

/// `(key, value)` pairs of one member.
type Member<'a> = (Cow<'a, str>, Node<'a>);

impl<'o, 'a> IntoIterator for &'o Obj<'a> {
    type Item = (&'o str, &'o Node<'a>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'o, Member<'a>>,
        fn(&'o Member<'a>) -> (&'o str, &'o Node<'a>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.members.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<'a> Node<'a> {
    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// True for `null`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// Converts to a `serde_json::Value` (tests and rare paths only).
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::Str(s) => Value::String(s.to_string()),
            Node::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Object(obj) => Value::Object(
                obj.iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

impl Node<'_> {
    /// The node at a path of object keys.
    fn get_path(&self, path: &[&str]) -> Option<&Self> {
        path.iter().try_fold(self, |node, key| match node {
            Node::Object(obj) => obj.get(key),
            _ => None,
        })
    }
}

impl From<Value> for Node<'_> {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(b),
            Value::Number(n) => Node::Number(n),
            Value::String(s) => Node::Str(Cow::Owned(s)),
            Value::Array(items) => Node::Array(items.into_iter().map(Node::from).collect()),
            Value::Object(map) => Node::Object(Obj {
                members: map
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Node::from(v)))
                    .collect(),
            }),
        }
    }
}

impl Doc for Node<'_> {
    fn at(&self, path: &[&str]) -> Option<Field<'_>> {
        Some(match self.get_path(path)? {
            Node::Null => Field::Null,
            Node::Bool(b) => Field::Bool(*b),
            Node::Number(n) => Field::Number(n),
            Node::Str(s) => Field::Str(s),
            Node::Array(items) => Field::Array(items.iter().filter_map(Node::as_str).collect()),
            Node::Object(_) => Field::Object,
        })
    }

    fn json_at(&self, path: &[&str]) -> Option<String> {
        // Writing to a String cannot fail: no I/O, and keys are strings.
        self.get_path(path)
            .and_then(|node| serde_json::to_string(node).ok())
    }

    fn set(&mut self, path: &[&str], value: Value) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        // As for a `Value`: objects are created only where a key is missing, so a refusal
        // always comes before any change.
        let mut cur = self;
        for key in parents {
            let Node::Object(obj) = cur else {
                return false;
            };
            cur = obj.get_or_insert_object(key);
        }
        match cur {
            Node::Object(obj) => {
                obj.insert(last, Node::from(value));
                true
            }
            _ => false,
        }
    }
}

/// Written as `serde_json` writes a `Value`: object keys sorted (keys are unique).
impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => serializer.serialize_unit(),
            Node::Bool(b) => serializer.serialize_bool(*b),
            Node::Number(n) => n.serialize(serializer),
            Node::Str(s) => serializer.serialize_str(s),
            Node::Array(items) => serializer.collect_seq(items),
            Node::Object(obj) => {
                let mut sorted: Vec<&Member<'_>> = obj.members.iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                let mut map = serializer.serialize_map(Some(sorted.len()))?;
                for (k, v) in sorted {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        // JSON text cannot hold NaN or infinity, so this is always Some.
        Ok(Number::from_f64(v).map_or(Node::Null, Node::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Node<'de>)> = Vec::with_capacity(8);
        let mut index: Option<HashMap<String, usize>> = None;
        while let Some(Key(key)) = map.next_key()? {
            let value: Node<'de> = map.next_value()?;
            let existing = match &index {
                Some(index) => index.get(key.as_ref()).copied(),
                None => members.iter().position(|(k, _)| *k == key),
            };
            match existing {
                Some(i) => members[i].1 = value,
                None => {
                    if let Some(index) = &mut index {
                        index.insert(key.to_string(), members.len());
                    }
                    members.push((key, value));
                    if index.is_none() && members.len() > LINEAR_SCAN_LIMIT {
                        index = Some(
                            members
                                .iter()
                                .enumerate()
                                .map(|(i, (k, _))| (k.to_string(), i))
                                .collect(),
                        );
                    }
                }
            }
        }
        Ok(Node::Object(Obj { members }))
    }
}

/// An object key, borrowed when it has no escapes (serde's `Cow` impl always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_like_serde_json_value() {
        let text = r#"{"a":[1,-2,3.5,true,null,"x\ny"],"b":{"c":"d"},"e":18446744073709551615}"#;
        let node: Node = serde_json::from_str(text).unwrap();
        assert_eq!(
            node.to_value(),
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
    }

    #[test]
    fn writes_as_a_value_would_with_keys_sorted() {
        let text = r#"{"z":{"b":[1,2.5,"a\u0000\"b",{"y":null,"x":true}],"a":-3},"m":"é","a":{}}"#;
        let node: Node = serde_json::from_str(text).unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&node).unwrap(), value.to_string());
        assert_eq!(Node::from(value.clone()).to_value(), value);
        assert_eq!(node.json_at(&["z"]), value.json_at(&["z"]));
    }

    #[test]
    fn reads_and_sets_like_a_value() {
        let text = r#"{"slack":{"audit":{"details":{"reason":["a",1,"b"]}}},"user":"x","n":5}"#;
        let mut node: Node = serde_json::from_str(text).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(text).unwrap();
        for path in [
            &["slack", "audit", "details", "reason"][..],
            &["user"],
            &["user", "id"],
            &["n"],
            &["slack"],
            &["missing"],
        ] {
            assert_eq!(node.at(path), value.at(path), "{path:?}");
        }
        assert!(node.is_object());
        for (path, v) in [
            (&["slack", "audit", "analysis", "reasons"][..], json!(["x"])),
            (&["slack", "audit", "analysis", "allowlisted"], json!(false)),
            (&["slack", "audit", "analysis", "reasons"], json!(["y"])),
            (&["user", "id"], json!("refused")),
            (&["n", "x"], json!(1)),
            (&["fresh", "path"], json!({"k": [1]})),
            (&[], json!(1)),
        ] {
            assert_eq!(node.set(path, v.clone()), value.set(path, v), "{path:?}");
        }
        assert_eq!(serde_json::to_string(&node).unwrap(), value.to_string());
        assert!(!Node::Null.set(&["a"], json!(1)));
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let node: Node = serde_json::from_str(r#"{"plain":"abc","escaped":"a\"b"}"#).unwrap();
        let Node::Object(obj) = node else {
            panic!("an object")
        };
        assert!(matches!(
            obj.get("plain"),
            Some(Node::Str(Cow::Borrowed("abc")))
        ));
        assert!(matches!(obj.get("escaped"), Some(Node::Str(Cow::Owned(_)))));
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_in_the_first_place() {
        let node: Node = serde_json::from_str(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        let Node::Object(obj) = node else {
            panic!("an object")
        };
        assert_eq!(obj.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(obj.get("a").unwrap().to_value(), json!(3));
    }

    #[test]
    fn large_objects_with_duplicates_stay_correct() {
        let mut text = String::from("{");
        for i in 0..100 {
            text.push_str(&format!("\"k{}\":{i},", i % 50));
        }
        text.push_str("\"end\":0}");
        let Node::Object(obj) = serde_json::from_str::<Node>(&text).unwrap() else {
            panic!("an object")
        };
        assert_eq!(obj.len(), 51);
        assert_eq!(obj.get("k7").unwrap().to_value(), json!(57));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        fn json_value() -> impl Strategy<Value = Value> {
            crate::testing::json_value("[a-zA-Z_@.é]{0,6}")
        }

        /// `v` as JSON text with every object's keys in reverse order, so a tree read from it
        /// has to sort them to write what the value writes.
        fn reversed(v: &Value, out: &mut String) {
            match v {
                Value::Array(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        reversed(item, out);
                    }
                    out.push(']');
                }
                Value::Object(map) => {
                    out.push('{');
                    for (i, (k, item)) in map.iter().rev().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&Value::from(k.as_str()).to_string());
                        out.push(':');
                        reversed(item, out);
                    }
                    out.push('}');
                }
                other => out.push_str(&other.to_string()),
            }
        }

        proptest! {
            /// What the pipeline writes for an analysed document is what writing the same
            /// document as a `Value` gave, before and after an annotation.
            #[test]
            fn a_tree_writes_and_annotates_as_a_value_does(
                v in json_value(),
                path in prop::collection::vec("[a-c]", 0..4),
                annotation in json_value(),
            ) {
                let mut text = String::new();
                reversed(&v, &mut text);
                let mut node: Node = serde_json::from_str(&text).unwrap();
                let mut value: Value = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(serde_json::to_string(&node).unwrap(), value.to_string());
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                prop_assert_eq!(node.at(&path), value.at(&path));
                prop_assert_eq!(node.json_at(&path), value.json_at(&path));
                prop_assert_eq!(
                    node.set(&path, annotation.clone()),
                    value.set(&path, annotation)
                );
                prop_assert_eq!(serde_json::to_string(&node).unwrap(), value.to_string());
            }
        }
    }
}
