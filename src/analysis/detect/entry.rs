//! What the engine reads of one raw Slack audit entry, read once per entry.
//!
//! Entries come from the API, from exports of other tools, or from hostile input: every field
//! may be absent or of the wrong type. Nothing here panics; an entry that lacks `id`, `entity`
//! or `date_create` is still read, and says what it lacked.

use super::model::{KeyBy, Matcher};
use crate::analysis::fields::stable_id;
use serde_json::Value;
use std::borrow::Cow;
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

/// A person as an entry names them, borrowed from the entry where possible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonRef<'a> {
    /// Slack user id.
    pub id: Cow<'a, str>,
    /// Email.
    pub email: Option<Cow<'a, str>>,
    /// Display name.
    pub name: Option<Cow<'a, str>>,
}

impl PersonRef<'_> {
    /// An owned copy, for a finding.
    pub fn to_person(&self) -> Person {
        Person {
            id: self.id.to_string(),
            email: self.email.as_ref().map(|e| e.to_string()),
            name: self.name.as_ref().map(|n| n.to_string()),
        }
    }
}

/// What the engine reads of an entry that is not at hand as a JSON value: the fields the
/// mapper has already read, borrowed. Only for entries with an `id` and an integer
/// `date_create`, and only when [`super::Detector::needs_entry`] is false for their action
/// (no rule that looks at it reads more than these).
#[derive(Debug, Clone, Copy, Default)]
pub struct Light<'a> {
    /// `action`.
    pub action: &'a str,
    /// `id`, trimmed, non-empty.
    pub id: &'a str,
    /// `date_create`, Unix seconds.
    pub at: i64,
    /// Whether `entity` is an object.
    pub has_entity: bool,
    /// `actor.user.id`, `.email`, `.name`, trimmed, non-empty.
    pub actor: [Option<&'a str>; 3],
    /// `context.ip_address`, when it parses.
    pub ip: Option<IpAddr>,
    /// `context.ua`, non-blank.
    pub ua: Option<&'a str>,
    /// `context.session_id` as text, trimmed, not "0".
    pub session: Option<&'a str>,
    /// `context.app` is present and not null.
    pub by_app: bool,
}

/// The parts of an entry rules and findings use.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The entry, when it is at hand as a value (conditions read it).
    pub entry: Option<&'a Value>,
    /// `action` ("" when absent).
    pub action: &'a str,
    /// `id`, or `synthetic-<hash of the entry>`.
    pub id: Cow<'a, str>,
    /// Event time, Unix s: `date_create`, else `details.action_timestamp`.
    pub at: Option<i64>,
    /// `actor.user`.
    pub actor: Option<PersonRef<'a>>,
    /// `entity.user`.
    pub target: Option<PersonRef<'a>>,
    /// The entity's id, whatever its type.
    pub entity_id: Option<Cow<'a, str>>,
    /// `context.ip_address`, when it parses.
    pub ip: Option<IpAddr>,
    /// `context.ua`.
    pub ua: Option<&'a str>,
    /// `context.session_id` as text (Slack sends a number or a string).
    pub session: Option<Cow<'a, str>>,
    /// App ids in `context.app.id`, `entity.app.id`, `details.app_id`.
    pub apps: Vec<&'a str>,
    /// Whether an app triggered it (`context.app` present): its UA and IP are the app's.
    pub by_app: bool,
    /// Which of `id`, `entity`, `date_create` it lacked.
    pub missing: Vec<&'static str>,
}

fn text(v: Option<&Value>) -> Option<Cow<'_, str>> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(Cow::Borrowed(s.trim())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.as_object()?.get(*key))
}

fn person(v: Option<&Value>) -> Option<PersonRef<'_>> {
    let v = v?;
    Some(PersonRef {
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
                Cow::Owned(format!("synthetic-{}", stable_id(&[&entry.to_string()])))
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
            entry: Some(entry),
        }
    }

    /// Reads what the mapper read. Without the entry, the target, the entity's id and the
    /// app ids are unknown: [`super::Detector::needs_entry`] sends entries whose rules read
    /// them the other way.
    pub fn light(l: &Light<'a>) -> Facts<'a> {
        let missing = if l.has_entity {
            Vec::new()
        } else {
            vec!["entity"]
        };
        Facts {
            entry: None,
            action: l.action,
            id: Cow::Borrowed(l.id),
            at: Some(l.at),
            actor: l.actor[0].map(|id| PersonRef {
                id: Cow::Borrowed(id),
                email: l.actor[1].map(Cow::Borrowed),
                name: l.actor[2].map(Cow::Borrowed),
            }),
            target: None,
            entity_id: None,
            ip: l.ip,
            ua: l.ua,
            session: l.session.map(Cow::Borrowed),
            apps: Vec::new(),
            by_app: l.by_app,
            missing,
        }
    }

    /// Whether an entry matches, read from its facts: without the entry at hand only the
    /// conditions on `action` can be tested ([`Matcher::action_only`]), and others fail.
    pub(crate) fn matches(&self, m: &Matcher) -> bool {
        let f = self;
        if !(m.actions.is_empty() || m.actions.contains(f.action)) {
            return false;
        }
        match f.entry {
            Some(entry) => m.conditions(entry),
            None => {
                m.action_only()
                    && m.all.iter().all(|c| c.holds_action(f.action))
                    && (m.any.is_empty() || m.any.iter().any(|c| c.holds_action(f.action)))
            }
        }
    }

    /// This entry as remembered evidence, at time `at`.
    pub fn ev(&self, at: i64) -> super::state::Ev {
        let mut ev = super::state::Ev::default();
        self.ev_into(at, &mut ev);
        ev
    }

    /// [`Facts::ev`] written over `into`, reusing its buffers: newest-first input replaces a
    /// held earliest event with almost every entry, and this costs no allocation then.
    pub fn ev_into(&self, at: i64, into: &mut super::state::Ev) {
        into.at = at;
        into.id.clear();
        into.id.push_str(&self.id);
        match self.ip {
            Some(ip) => ip_into(ip, into.ip.get_or_insert_with(String::new)),
            None => into.ip = None,
        }
        match self.session.as_deref() {
            Some(session) => {
                let text = into.session.get_or_insert_with(String::new);
                text.clear();
                text.push_str(session);
            }
            None => into.session = None,
        }
    }

    /// The actor's id unless it is one of Slack's placeholders.
    pub fn person_actor(&self) -> Option<&PersonRef<'a>> {
        self.actor
            .as_ref()
            .filter(|a| !PLACEHOLDER_ACTORS.contains(&a.id.as_ref()))
    }

    /// The value of a key for this entry, if it has one; borrowed unless it is an IP.
    pub fn key(&self, by: KeyBy) -> Option<Cow<'_, str>> {
        let b = Cow::Borrowed;
        match by {
            KeyBy::Actor => self.person_actor().map(|a| b(a.id.as_ref())),
            KeyBy::Target => self
                .target
                .as_ref()
                .map(|t| b(t.id.as_ref()))
                .or_else(|| self.entity_id.as_deref().map(b)),
            KeyBy::Ip => self.ip.map(|ip| Cow::Owned(ip.to_string())),
            KeyBy::Session => self.session.as_deref().map(b),
            KeyBy::Entity => self.entity_id.as_deref().map(b),
            KeyBy::Event => Some(b(self.id.as_ref())),
        }
    }
}

/// Writes `ip` over `out` as `Display` writes it; an IPv4 address (most of them) without the
/// formatting machinery, which costs more than the rest of remembering an event.
pub fn ip_into(ip: IpAddr, out: &mut String) {
    out.clear();
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(_) => {
            let _ = std::fmt::Write::write_fmt(out, format_args!("{ip}"));
        }
    }
}

#[cfg(test)]
/// `ip` as a network: its /16 (IPv4) or /48 (IPv6), written as a CIDR.
pub fn prefix(ip: IpAddr) -> String {
    let mut out = String::new();
    prefix_into(ip, &mut out);
    out
}

/// [`prefix`] into `out` (cleared first), so a reused buffer costs no allocation.
pub fn prefix_into(ip: IpAddr, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    let _ = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            write!(out, "{}.{}.0.0/16", o[0], o[1])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            write!(out, "{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    };
}

#[cfg(test)]
/// A user agent with its version numbers blanked, so that the desktop app updating itself
/// mid-session is not "a new user agent".
pub fn normalise_ua(ua: &str) -> String {
    let mut out = String::with_capacity(ua.len());
    normalise_ua_into(ua, &mut out);
    out
}

/// [`normalise_ua`] into `out` (cleared first).
pub fn normalise_ua_into(ua: &str, out: &mut String) {
    out.clear();
    let ua = ua.trim();
    let b = ua.as_bytes();
    // Copied a run at a time: digits are ASCII, so every cut falls between characters.
    let (mut from, mut i) = (0, 0);
    while i < b.len() {
        if b[i].is_ascii_digit() {
            out.push_str(&ua[from..i]);
            out.push('#');
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            from = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&ua[from..]);
    out.make_ascii_lowercase();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The normalisation as first written, a character at a time: the reference.
    fn normalise_by_char(ua: &str) -> String {
        let mut out = String::new();
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

    #[test]
    fn user_agents_normalise_with_versions_folded() {
        assert_eq!(
            normalise_ua(" Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/131.0.0.0 "),
            "mozilla/#.# (macintosh; intel mac os x #_#_#) chrome/#.#.#.#"
        );
        assert_eq!(
            normalise_ua("Slack/24.12.10.0 (Android 15; Pixel 8 Pro)"),
            "slack/#.#.#.# (android #; pixel # pro)"
        );
        assert_eq!(normalise_ua("12ab34"), "#ab#");
        assert_eq!(normalise_ua("ÉCLAIR١٢ X"), "Éclair١٢ x");
        assert_eq!(normalise_ua(""), "");
    }

    proptest::proptest! {
        #[test]
        fn user_agent_normalisation_matches_the_reference(ua in "[ a-zA-Z0-9./;()_É١😀-]{0,40}") {
            proptest::prop_assert_eq!(normalise_ua(&ua), normalise_by_char(&ua));
        }
    }

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
    fn an_ip_is_written_as_display_writes_it() {
        let mut out = String::from("left over");
        for text in [
            "0.0.0.0",
            "9.10.99.100",
            "203.0.113.255",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            ip_into(ip, &mut out);
            assert_eq!(out, ip.to_string());
        }
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
        let s = |v: Value| {
            Facts::read(&json!({"context": {"session_id": v}}))
                .session
                .map(std::borrow::Cow::into_owned)
        };
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
