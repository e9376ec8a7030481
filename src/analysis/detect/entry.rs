//! What the engine reads of one raw Slack audit entry, read once per entry.
//!
//! Entries come from the API, from exports of other tools, or from hostile input: every field
//! may be absent or of the wrong type. Nothing here panics; an entry that lacks `id`, `entity`
//! or `date_create` is still read, and says what it lacked.

use super::model::KeyBy;
use crate::analysis::fields::stable_id;
use serde_json::Value;
use std::net::IpAddr;

/// Slack's stand-in actors: events without a person behind them, never keyed together.
pub const PLACEHOLDER_ACTORS: &[&str] = &["USLACKUSER", "USLACKSECURITY"];

/// A person named in an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    /// Slack user id.
    pub id: String,
    /// Email.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
}

/// The parts of an entry rules and findings use.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The entry.
    pub entry: &'a Value,
    /// `action` ("" when absent).
    pub action: &'a str,
    /// `id`, or `synthetic-<hash of the entry>`.
    pub id: String,
    /// Event time, Unix s: `date_create`, else `details.action_timestamp`.
    pub at: Option<i64>,
    /// `actor.user`.
    pub actor: Option<Person>,
    /// `entity.user`.
    pub target: Option<Person>,
    /// The entity's id, whatever its type.
    pub entity_id: Option<String>,
    /// `context.ip_address`, when it parses.
    pub ip: Option<IpAddr>,
    /// `context.ua`.
    pub ua: Option<&'a str>,
    /// `context.session_id` as text (Slack sends a number or a string).
    pub session: Option<String>,
    /// App ids in `context.app.id`, `entity.app.id`, `details.app_id`.
    pub apps: Vec<&'a str>,
    /// Whether an app triggered it (`context.app` present): its UA and IP are the app's.
    pub by_app: bool,
    /// Which of `id`, `entity`, `date_create` it lacked.
    pub missing: Vec<&'static str>,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.as_object()?.get(*key))
}

fn person(v: Option<&Value>) -> Option<Person> {
    let v = v?;
    Some(Person {
        id: text(v.get("id"))?,
        email: text(v.get("email")),
        name: text(v.get("name")),
    })
}

/// Unix seconds from `date_create`: a number, a numeric string, RFC 3339 or
/// `YYYY-MM-DD HH:MM:SS` (seen in other tools' exports).
fn date_create(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<f64>() {
                return Some(n as i64);
            }
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some(t.timestamp());
            }
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc().timestamp())
        }
        _ => None,
    }
}

/// `details.action_timestamp` (ms, or µs above 1e13) in seconds.
fn action_timestamp(v: Option<&Value>) -> Option<i64> {
    let n = match v? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    let secs = if n > 1e13 { n / 1e6 } else { n / 1e3 };
    secs.is_finite().then_some(secs as i64)
}

impl<'a> Facts<'a> {
    /// Reads an entry.
    pub fn read(entry: &'a Value) -> Facts<'a> {
        let mut missing = Vec::new();
        let id = match text(entry.get("id")) {
            Some(id) => id,
            None => {
                missing.push("id");
                // serde_json's maps are sorted, so the same entry always gives the same text.
                format!("synthetic-{}", stable_id(&[&entry.to_string()]))
            }
        };
        let entity = entry.get("entity").filter(|e| e.is_object());
        if entity.is_none() {
            missing.push("entity");
        }
        let dc = date_create(entry.get("date_create"));
        if dc.is_none() {
            missing.push("date_create");
        }
        let at = dc.or_else(|| action_timestamp(get(entry, &["details", "action_timestamp"])));
        let entity_id = entity.and_then(|e| {
            let ty = e.get("type")?.as_str()?;
            text(e.get(ty)?.get("id"))
        });
        let context_app = get(entry, &["context", "app"]).filter(|a| !a.is_null());
        let apps = [
            context_app.and_then(|a| a.get("id")),
            get(entry, &["entity", "app", "id"]),
            get(entry, &["details", "app_id"]),
        ]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
        Facts {
            action: entry.get("action").and_then(Value::as_str).unwrap_or(""),
            id,
            at,
            actor: person(get(entry, &["actor", "user"])),
            target: person(get(entry, &["entity", "user"])),
            entity_id,
            ip: get(entry, &["context", "ip_address"])
                .and_then(Value::as_str)
                .and_then(|s| s.trim().parse().ok()),
            ua: get(entry, &["context", "ua"])
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty()),
            session: text(get(entry, &["context", "session_id"])).filter(|s| s != "0"),
            apps,
            by_app: context_app.is_some(),
            missing,
            entry,
        }
    }

    /// This entry as remembered evidence, at time `at`.
    pub fn ev(&self, at: i64) -> super::state::Ev {
        super::state::Ev {
            at,
            id: self.id.clone(),
            ip: self.ip.map(|ip| ip.to_string()),
            session: self.session.clone(),
        }
    }

    /// The actor's id unless it is one of Slack's placeholders.
    pub fn person_actor(&self) -> Option<&Person> {
        self.actor
            .as_ref()
            .filter(|a| !PLACEHOLDER_ACTORS.contains(&a.id.as_str()))
    }

    /// The value of a key for this entry, if it has one.
    pub fn key(&self, by: KeyBy) -> Option<String> {
        match by {
            KeyBy::Actor => self.person_actor().map(|a| a.id.clone()),
            KeyBy::Target => self
                .target
                .as_ref()
                .map(|t| t.id.clone())
                .or_else(|| self.entity_id.clone()),
            KeyBy::Ip => self.ip.map(|ip| ip.to_string()),
            KeyBy::Session => self.session.clone(),
            KeyBy::Entity => self.entity_id.clone(),
            KeyBy::Event => Some(self.id.clone()),
        }
    }
}

/// `ip` as a network: its /16 (IPv4) or /48 (IPv6), written as a CIDR.
pub fn prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.0.0/16", o[0], o[1])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// A user agent with its version numbers blanked, so that the desktop app updating itself
/// mid-session is not "a new user agent".
pub fn normalise_ua(ua: &str) -> String {
    let mut out = String::with_capacity(ua.len());
    let mut in_digits = false;
    for c in ua.trim().chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bare_entry_says_what_it_lacked() {
        let e = json!({"action": "user_login", "actor": {"user": {"id": "U1"}}});
        let f = Facts::read(&e);
        assert_eq!(f.missing, vec!["id", "entity", "date_create"]);
        assert!(f.id.starts_with("synthetic-"));
        assert_eq!(
            f.id,
            Facts::read(&e.clone()).id,
            "the synthetic id is stable"
        );
        assert_eq!(f.at, None);
    }

    #[test]
    fn times_and_sessions_in_every_shape() {
        let f = |v: Value| Facts::read(&json!({"date_create": v})).at;
        assert_eq!(f(json!(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(f(json!("1700000000")), Some(1_700_000_000));
        assert_eq!(f(json!("2023-02-24 18:34:18")), Some(1_677_263_658));
        assert_eq!(f(json!([1])), None);
        let e = json!({"details": {"action_timestamp": 1_644_428_253_989_994_i64}});
        assert_eq!(Facts::read(&e).at, Some(1_644_428_253));
        let s = |v: Value| Facts::read(&json!({"context": {"session_id": v}})).session;
        assert_eq!(s(json!(1656410836837_i64)), Some("1656410836837".into()));
        assert_eq!(s(json!("847288190092")), Some("847288190092".into()));
        assert_eq!(s(json!(null)), None);
    }

    #[test]
    fn networks_and_agents() {
        assert_eq!(prefix("203.0.113.9".parse().unwrap()), "203.0.0.0/16");
        assert_eq!(
            prefix("2001:db8:1:2::1".parse().unwrap()),
            "2001:db8:1::/48"
        );
        assert_eq!(
            normalise_ua("Slack/4.36.140 Chrome/118"),
            normalise_ua("Slack/4.37.1 Chrome/119")
        );
        assert_ne!(
            normalise_ua("Slack/4.36"),
            normalise_ua("python-requests/2.31")
        );
    }
}
