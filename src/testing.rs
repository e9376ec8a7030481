//! What the unit tests of several modules share: random JSON for their property tests.

use proptest::prelude::*;
use serde_json::Value;

/// Random JSON values of every kind, a few levels deep: strings of printable text or of the
/// characters JSON escapes or is built from, and objects whose keys come from `keys`.
pub(crate) fn json_value(
    keys: impl Strategy<Value = String> + Clone + 'static,
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,8}|[\"\\\\{}\\[\\],:\u{0}-\u{1f}é]{0,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
