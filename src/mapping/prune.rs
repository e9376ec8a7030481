//! The last step of every document: drop `null`, `""`, `{}` and `[]` at any depth, as
//! Elastic's pipeline does, so an empty value never reaches an index as a real value.
//!
//! Containers are emptied bottom-up first, so `{"a": {"b": [""]}}` disappears entirely.

use serde_json::Value;

/// True for the values that are dropped.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Removes empty values inside `v` (not `v` itself), recursively.
pub fn prune(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.values_mut().for_each(prune);
            map.retain(|_, v| !is_empty(v));
        }
        Value::Array(items) => {
            items.iter_mut().for_each(prune);
            items.retain(|v| !is_empty(v));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_empties_at_any_depth() {
        let mut v = json!({"a": null, "b": "", "c": {}, "d": [], "e": {"f": [""], "g": [{}, null]},
                           "h": 0, "i": false, "j": " ", "k": [1, "", {"l": null}]});
        prune(&mut v);
        assert_eq!(v, json!({"h": 0, "i": false, "j": " ", "k": [1]}));
    }
}
