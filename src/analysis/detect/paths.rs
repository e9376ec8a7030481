//! Field paths into a raw Slack audit entry, and the conditions rules put on them.
//!
//! A path is dotted keys in the Slack API's own shape (`details.new_scopes`,
//! `entity.app.scopes`, `context.ip_address`). Paths are checked at load against a catalogue
//! of what Slack documents (slack-audit-api.md §3 and the python SDK's models), so a typo is an
//! error that names the rule, rather than a rule that silently never matches. Keys whose value
//! is an open object (`details.new_value`, `details.inviter`, …) accept any sub-path.
//!
//! Conditions are data, never code: `equals`, `in`, `contains` and `adds_to` (a list gains an
//! element another list lacked), each optionally negated with `not = true`. A condition on a
//! field the entry lacks is false (and true when negated), whatever its kind.

use serde::Deserialize;
use serde_json::Value;

/// Top-level keys of an entry and what may follow them.
const ROOTS: &[&str] = &[
    "id",
    "action",
    "date_create",
    "actor",
    "entity",
    "context",
    "details",
];
/// `actor.user.*`, `entity.user.*` and the like.
const USER_KEYS: &[&str] = &["id", "name", "email", "team"];
/// Entity types Slack documents (the set grows; `entity.type` itself is always allowed).
const ENTITY_TYPES: &[&str] = &[
    "user",
    "workspace",
    "enterprise",
    "channel",
    "file",
    "app",
    "message",
    "huddle",
    "role",
    "usergroup",
    "workflow",
    "barrier",
    "workflow_v2",
    "account_type_role",
    "list",
];
/// Keys seen under any entity type.
const ENTITY_KEYS: &[&str] = &[
    "id",
    "name",
    "email",
    "team",
    "domain",
    "privacy",
    "is_shared",
    "is_org_shared",
    "teams_shared_with",
    "original_connected_channel_id",
    "scopes",
    "is_distributed",
    "is_directory_approved",
    "is_workflow_app",
    "filetype",
    "title",
    "channel",
    "timestamp",
    "primary_usergroup",
    "barriered_from_usergroups",
    "restricted_subjects",
    "date_created",
    "date_updated",
];
/// `context.*` keys; `location` and `app` have their own sub-keys.
const CONTEXT_KEYS: &[&str] = &["ua", "ip_address", "session_id"];
const LOCATION_KEYS: &[&str] = &["type", "id", "name", "domain"];
const APP_KEYS: &[&str] = &[
    "id",
    "name",
    "scopes",
    "scopes_bot",
    "creator",
    "team",
    "is_distributed",
    "is_directory_approved",
    "is_workflow_app",
];
/// `details.*` keys: the python SDK's `Details` model plus the anomaly fields.
const DETAILS_KEYS: &[&str] = &[
    "name",
    "new_value",
    "previous_value",
    "expires_on",
    "mobile_only",
    "web_only",
    "non_sso_only",
    "type",
    "is_workflow",
    "inviter",
    "kicker",
    "shared_to",
    "reason",
    "origin_team",
    "target_team",
    "is_internal_integration",
    "cleared_resolution",
    "app_owner_id",
    "bot_scopes",
    "new_scopes",
    "previous_scopes",
    "granular_bot_token",
    "scopes",
    "scopes_bot",
    "resolution",
    "app_previously_resolved",
    "admin_app_id",
    "bot_id",
    "installer_user_id",
    "approver_id",
    "approval_type",
    "app_previously_approved",
    "old_scopes",
    "channels",
    "permissions",
    "new_version_id",
    "trigger",
    "export_type",
    "export_start_ts",
    "export_end_ts",
    "barrier_id",
    "primary_usergroup_id",
    "barriered_from_usergroup_ids",
    "restricted_subjects",
    "duration",
    "desktop_app_browser_quit",
    "invite_id",
    "external_organization_id",
    "external_organization_name",
    "external_user_id",
    "external_user_email",
    "channel_id",
    "added_team_id",
    "is_token_rotation_enabled_app",
    "old_retention_policy",
    "new_retention_policy",
    "who_can_post",
    "can_thread",
    "is_external_limited",
    "exporting_team_id",
    "session_search_start",
    "deprecation_search_end",
    "is_error",
    "creator",
    "team",
    "app_id",
    "enable_at_here",
    "enable_at_channel",
    "can_huddle",
    "url_private",
    "shared_with",
    "initiated_by",
    "source_team",
    "destination_team",
    "action_timestamp",
    "location",
    "previous_ip_address",
    "previous_ua",
    "ip_address_details",
    "user_agent_change_details",
    "detected_client",
    "detected_os",
    "api_call_method",
    "md5_hash",
    "succeeded_users",
    "failed_users",
];
/// `details.*` keys whose value is an object of Slack's choosing: any sub-path is accepted.
const OPEN_DETAILS: &[&str] = &[
    "new_value",
    "previous_value",
    "inviter",
    "kicker",
    "old_retention_policy",
    "new_retention_policy",
    "who_can_post",
    "can_thread",
    "enable_at_here",
    "enable_at_channel",
    "can_huddle",
    "shared_with",
    "permissions",
];

/// A validated dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath {
    text: String,
    keys: Vec<String>,
}

impl FieldPath {
    /// Parses and checks a path against the catalogue.
    ///
    /// # Errors
    ///
    /// The path and what is unknown in it.
    pub(crate) fn parse(text: &str) -> Result<FieldPath, String> {
        let keys: Vec<String> = text.trim().split('.').map(str::to_string).collect();
        if keys.iter().any(String::is_empty) {
            return Err(format!(
                "{text:?} is not a dotted path (e.g. details.new_scopes)"
            ));
        }
        let k: Vec<&str> = keys.iter().map(String::as_str).collect();
        let known = match k.as_slice() {
            [root] => ["id", "action", "date_create"].contains(root),
            ["actor", "type"] | ["entity", "type"] => true,
            ["actor", "user", key] => USER_KEYS.contains(key),
            ["entity", ty, key] => ENTITY_TYPES.contains(ty) && ENTITY_KEYS.contains(key),
            ["context", key] => CONTEXT_KEYS.contains(key),
            ["context", "location", key] => LOCATION_KEYS.contains(key),
            ["context", "app", key] => APP_KEYS.contains(key),
            ["details", key] => DETAILS_KEYS.contains(key),
            ["details", key, ..] => OPEN_DETAILS.contains(key),
            _ => false,
        };
        if !known {
            let hint = if ROOTS.contains(&k[0]) {
                format!("no such key under {:?} in Slack's entry shape", k[0])
            } else {
                format!("paths start with one of {}", ROOTS.join(", "))
            };
            return Err(format!("unknown field path {text:?}: {hint}"));
        }
        Ok(FieldPath {
            text: text.trim().to_string(),
            keys,
        })
    }

    /// The value at this path in `entry`, if any (`null` counts as absent).
    pub(crate) fn get<'a>(&self, entry: &'a Value) -> Option<&'a Value> {
        let v = self
            .keys
            .iter()
            .try_fold(entry, |v, key| v.as_object()?.get(key))?;
        (!v.is_null()).then_some(v)
    }
}

/// A condition as written in the rules file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConditionSpec {
    field: String,
    #[serde(default)]
    equals: Option<toml::Value>,
    #[serde(default, rename = "in")]
    in_: Option<Vec<toml::Value>>,
    #[serde(default)]
    contains: Option<toml::Value>,
    #[serde(default)]
    adds_to: Option<String>,
    #[serde(default)]
    not: bool,
}

/// What a condition tests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    /// The value (a string is compared ignoring ASCII case).
    Equals(Value),
    /// Any of these values.
    In(Vec<Value>),
    /// A list holding the value, or a string holding it as a substring (ignoring case).
    Contains(Value),
    /// The list at `field` has an element the list at this path lacks (an absent or empty
    /// list there lacks everything).
    AddsTo(FieldPath),
}

/// A validated condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    field: FieldPath,
    test: Test,
    not: bool,
}

impl Condition {
    /// Validates a condition; `at` names the rule and key for messages.
    ///
    /// # Errors
    ///
    /// Unknown paths, no test or more than one.
    pub(crate) fn build(spec: &ConditionSpec, at: &str) -> Result<Condition, String> {
        let field = FieldPath::parse(&spec.field).map_err(|e| format!("{at}: field: {e}"))?;
        let json = |v: &toml::Value| -> Result<Value, String> {
            serde_json::to_value(v).map_err(|e| format!("{at}: {e}"))
        };
        let mut tests = Vec::new();
        if let Some(v) = &spec.equals {
            tests.push(Test::Equals(json(v)?));
        }
        if let Some(list) = &spec.in_ {
            if list.is_empty() {
                return Err(format!("{at}: `in` is empty, so the condition never holds"));
            }
            tests.push(Test::In(list.iter().map(json).collect::<Result<_, _>>()?));
        }
        if let Some(v) = &spec.contains {
            tests.push(Test::Contains(json(v)?));
        }
        if let Some(p) = &spec.adds_to {
            let other = FieldPath::parse(p).map_err(|e| format!("{at}: adds_to: {e}"))?;
            tests.push(Test::AddsTo(other));
        }
        if tests.len() != 1 {
            return Err(format!(
                "{at}: give exactly one of equals, in, contains, adds_to (found {})",
                tests.len()
            ));
        }
        Ok(Condition {
            field,
            test: tests.remove(0),
            not: spec.not,
        })
    }

    /// Whether the condition reads `action` alone (and can be tested on it without the entry).
    pub(crate) fn on_action(&self) -> bool {
        self.field.keys.len() == 1
            && self.field.keys[0] == "action"
            && !matches!(self.test, Test::AddsTo(_))
    }

    /// [`Condition::holds`] for an entry whose `action` is `action` (non-empty), for a
    /// condition [`Condition::on_action`]; the same answer, without the entry.
    pub(crate) fn holds_action(&self, action: &str) -> bool {
        // Trimmed once: a rule that takes any action asks this of every entry.
        let trimmed = action.trim();
        let str_same = |want: &Value| match want {
            Value::String(b) => trimmed.eq_ignore_ascii_case(b.trim()),
            Value::Number(n) => trimmed == n.to_string(),
            _ => false,
        };
        let raw = match &self.test {
            Test::Equals(want) => str_same(want),
            Test::In(list) => list.iter().any(str_same),
            Test::Contains(want) => contains(&Value::String(action.to_string()), want),
            Test::AddsTo(_) => false,
        };
        raw != self.not
    }

    /// Whether `entry` satisfies the condition.
    pub(crate) fn holds(&self, entry: &Value) -> bool {
        let raw = match self.field.get(entry) {
            None => false,
            Some(v) => match &self.test {
                Test::Equals(want) => same(v, want),
                Test::In(list) => list.iter().any(|w| same(v, w)),
                Test::Contains(want) => contains(v, want),
                Test::AddsTo(other) => {
                    let before = list(other.get(entry));
                    list(Some(v))
                        .iter()
                        .any(|x| !before.iter().any(|b| same(x, b)))
                }
            },
        };
        raw != self.not
    }
}

/// Strings compare ignoring ASCII case and surrounding space; numbers by value, also against
/// a numeric string (Slack sends some ids either way).
fn same(v: &Value, want: &Value) -> bool {
    match (v, want) {
        (Value::String(a), Value::String(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            s.trim() == n.to_string()
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => v == want,
    }
}

fn contains(v: &Value, want: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|x| same(x, want)),
        Value::String(s) => {
            // A JSON-encoded list inside a string (seen for several list fields) is a list.
            if let Ok(items) = serde_json::from_str::<Vec<Value>>(s) {
                return items.iter().any(|x| same(x, want));
            }
            want.as_str()
                .is_some_and(|w| s.to_ascii_lowercase().contains(&w.to_ascii_lowercase()))
        }
        _ => false,
    }
}

/// A list field as items: an array, a JSON-encoded array in a string, or a comma-separated
/// string (scopes are sometimes sent as `"chat:write,admin"`).
fn list(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) => match serde_json::from_str::<Vec<Value>>(s) {
            Ok(items) => items,
            Err(_) => s
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|x| Value::String(x.to_string()))
                .collect(),
        },
        Some(other) => vec![other.clone()],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(text: &str) -> Result<Condition, String> {
        let spec: ConditionSpec = toml::from_str(text).map_err(|e| e.to_string())?;
        Condition::build(&spec, "rule \"r\": all[0]")
    }

    #[test]
    fn unknown_paths_are_errors_naming_the_path() {
        let e = cond("field = 'details.new_scope'\ncontains = 'admin'").unwrap_err();
        assert!(
            e.contains("rule \"r\"") && e.contains("details.new_scope"),
            "{e}"
        );
        assert!(cond("field = 'detail.x'\nequals = 1")
            .unwrap_err()
            .contains("paths start"));
        assert!(cond("field = 'details.new_value.anything.deep'\nequals = 1").is_ok());
        assert!(cond("field = 'entity.app.scopes'\ncontains = 'admin'").is_ok());
    }

    #[test]
    fn exactly_one_test() {
        assert!(cond("field = 'action'")
            .unwrap_err()
            .contains("exactly one"));
        assert!(cond("field = 'action'\nequals = 'a'\ncontains = 'b'")
            .unwrap_err()
            .contains("exactly one"));
    }

    #[test]
    fn each_test_holds_and_fails() {
        let e = json!({"action": "App_Scopes_Expanded", "details": {
            "new_scopes": ["chat:write", "admin"], "previous_scopes": ["chat:write"],
            "bot_scopes": "[\"admin.users:write\"]", "name": "x"}});
        assert!(cond("field = 'action'\nequals = 'app_scopes_expanded'")
            .unwrap()
            .holds(&e));
        assert!(cond("field = 'action'\nin = ['a', 'app_scopes_expanded']")
            .unwrap()
            .holds(&e));
        assert!(cond("field = 'details.new_scopes'\ncontains = 'admin'")
            .unwrap()
            .holds(&e));
        assert!(!cond("field = 'details.bot_scopes'\ncontains = 'admin'")
            .unwrap()
            .holds(&e));
        assert!(
            cond("field = 'details.new_scopes'\nadds_to = 'details.previous_scopes'")
                .unwrap()
                .holds(&e)
        );
        assert!(
            !cond("field = 'details.previous_scopes'\nadds_to = 'details.new_scopes'")
                .unwrap()
                .holds(&e)
        );
        // Absent: false, and true when negated.
        assert!(!cond("field = 'details.type'\nequals = 'x'")
            .unwrap()
            .holds(&e));
        assert!(cond("field = 'details.type'\nequals = 'x'\nnot = true")
            .unwrap()
            .holds(&e));
    }
}
