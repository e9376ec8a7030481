//! One Slack audit entry (a parsed JSON object) → what its ECS document needs: the [`Plan`].
//!
//! Mapping runs in two steps. This module reads the entry once and decides everything: the
//! values of the ECS fields (borrowed from the entry where possible), which keys are renamed
//! or dropped, and every problem met on the way. [`super::render`] then writes the document in
//! one pass. Nothing is moved or copied out of the entry, which is why the split pays.
//!
//! Odd values never stop the mapping: a value is mapped as far as it goes and a problem naming
//! the field is added to `error.message`. Keys this module does not know are kept as they are.

use super::categorize::{categorize, Categorization};
use super::timestamp::{self, Instant, Numeric};
use super::tree::{Node, Obj};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt::Display;
use std::net::IpAddr;

/// Text taken from the entry as is, or made from a number that stood where text belongs.
pub(crate) type Text<'a> = Cow<'a, str>;

/// Top-level keys with a place in the field table; all others go to `slack.audit.*`.
pub(crate) const KNOWN_TOP_LEVEL: [&str; 7] = [
    "id",
    "date_create",
    "action",
    "actor",
    "entity",
    "context",
    "details",
];

/// Everything the document needs, decided from one entry.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// `error.message`, in the order met.
    pub(crate) problems: Vec<String>,
    /// `event.id`.
    pub(crate) id: Option<Text<'a>>,
    /// `event.action`.
    pub(crate) action: Option<Text<'a>>,
    /// `event.category/type/outcome`.
    pub(crate) category: Option<Categorization>,
    /// `@timestamp`; `None` means the fetch time.
    pub(crate) timestamp: Option<Instant>,
    /// `user.id`, `user.full_name`, `user.email`.
    pub(crate) user: [Option<Text<'a>>; 3],
    /// `actor`, written minus `user.{id,name,email}` as `slack.audit.actor`.
    pub(crate) actor: Option<&'a Obj<'a>>,
    /// `entity`, to write as `slack.audit.entity`.
    pub(crate) entity: Option<Entity<'a>>,
    /// `context`, to write as `slack.audit.context`.
    pub(crate) context: Option<Context<'a>>,
    /// `details`, to write as `slack.audit.details`.
    pub(crate) details: Option<Details<'a>>,
    /// The entry itself, for its unknown top-level keys.
    pub(crate) entry: Option<&'a Obj<'a>>,
}

/// The parts of `entity`.
#[derive(Debug)]
pub(crate) struct Entity<'a> {
    /// The whole `entity` object.
    pub(crate) all: &'a Obj<'a>,
    /// `entity.type` when it is a non-empty string.
    pub(crate) kind: Option<&'a str>,
    /// `entity.<kind>` when it is an object: flattened into `slack.audit.entity`.
    pub(crate) typed: Option<&'a Obj<'a>>,
    /// Keys of `entity` that clash with the flattened ones and are left out.
    pub(crate) clashing: Vec<&'a str>,
}

/// The parts of `context`.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    /// The whole `context` object.
    pub(crate) all: &'a Obj<'a>,
    /// `context.location` when it is an object.
    pub(crate) location: Option<&'a Obj<'a>>,
    /// `context.ua`, non-empty.
    pub(crate) ua: Option<Text<'a>>,
    /// `context.ip_address` when it is an IP address.
    pub(crate) ip: Option<(&'a str, IpAddr)>,
    /// `context.ip_address` when it is not an IP (kept as sent, not an error).
    pub(crate) ip_kept: Option<&'a Node<'a>>,
    /// `context.session_id` as text.
    pub(crate) session_id: Option<Text<'a>>,
    /// Keys of `context` that clash with `location`'s flattened ones and are left out.
    pub(crate) clashing: Vec<&'a str>,
}

/// The parts of `details` that are renamed, decoded or dropped; the rest is written as is.
#[derive(Debug)]
pub(crate) struct Details<'a> {
    /// The whole `details` object.
    pub(crate) all: &'a Obj<'a>,
    /// Keep `action_timestamp` (only when it could not be read).
    pub(crate) keep_action_timestamp: bool,
    /// Keep `previous_ip_address` (only when it is an IP).
    pub(crate) keep_previous_ip: bool,
    /// `previous_ua`, written as `previous_user_agent`.
    pub(crate) previous_ua: Option<Text<'a>>,
    /// `md5_hash`, written as `md5`; also `related.hash` and maybe `file.hash.md5`.
    pub(crate) md5: Option<Text<'a>>,
    /// `succeeded_users` / `failed_users` decoded from a JSON string.
    pub(crate) decoded: Vec<(&'static str, Value)>,
    /// `url_private` split into URL parts.
    pub(crate) url: Option<Map<String, Value>>,
}

impl<'a> Plan<'a> {
    /// Reads `entry` and decides the whole document.
    pub(crate) fn read(entry: &'a Obj<'a>) -> Plan<'a> {
        let mut plan = Plan {
            entry: Some(entry),
            ..Plan::default()
        };
        plan.id = entry.get("id").and_then(|v| plan.text(v, "id"));
        plan.action = entry.get("action").and_then(|v| plan.text(v, "action"));
        plan.category = Some(categorize(plan.action.as_deref().unwrap_or_default()));
        if let Some(actor) = entry.get("actor") {
            plan.read_actor(actor);
        }
        if let Some(entity) = entry.get("entity") {
            plan.read_entity(entity);
        }
        if let Some(context) = entry.get("context") {
            plan.read_context(context);
        }
        let action_ts = entry.get("details").and_then(|d| plan.read_details(d));
        plan.read_timestamp(entry.get("date_create"), action_ts);
        plan
    }

    /// Whether `file.hash.md5` applies: the entity is a file.
    pub(crate) fn is_file(&self) -> bool {
        self.entity.as_ref().and_then(|e| e.kind) == Some("file")
    }

    fn problem(&mut self, field: &str, what: impl Display) {
        self.problems.push(format!("{field}: {what}"));
    }

    /// A string field: numbers and booleans are taken as their text (reported); containers
    /// cannot be, and are reported and left out.
    fn text(&mut self, v: &'a Node<'a>, field: &str) -> Option<Text<'a>> {
        match v {
            Node::Str(s) => Some(Cow::Borrowed(s.as_ref())),
            Node::Null => None,
            Node::Number(_) | Node::Bool(_) => {
                self.problem(
                    field,
                    format!("expected a string, got {}; kept as text", describe(v)),
                );
                Some(Cow::Owned(scalar_text(v)))
            }
            _ => {
                self.problem(
                    field,
                    format!("expected a string, got {}; left out", describe(v)),
                );
                None
            }
        }
    }

    /// An object field; anything else is reported (null is simply absent).
    fn object(&mut self, v: &'a Node<'a>, field: &str) -> Option<&'a Obj<'a>> {
        match v {
            Node::Object(m) => Some(m),
            Node::Null => None,
            other => {
                self.problem(
                    field,
                    format!("expected an object, got {}; left out", describe(other)),
                );
                None
            }
        }
    }

    /// `actor.user.{id,name,email}` → `user.*`; the rest of `actor` is written as is.
    fn read_actor(&mut self, actor: &'a Node<'a>) {
        let Some(actor) = self.object(actor, "actor") else {
            return;
        };
        self.actor = Some(actor);
        let Some(user) = actor.get("user").and_then(|u| self.object(u, "actor.user")) else {
            return;
        };
        for (slot, (key, field)) in [
            ("id", "actor.user.id"),
            ("name", "actor.user.name"),
            ("email", "actor.user.email"),
        ]
        .into_iter()
        .enumerate()
        {
            self.user[slot] = user.get(key).and_then(|v| self.text(v, field));
        }
    }

    /// `entity.type` and the sub-object it names, for every kind the same way.
    fn read_entity(&mut self, entity: &'a Node<'a>) {
        let Some(all) = self.object(entity, "entity") else {
            return;
        };
        let mut e = Entity {
            all,
            kind: None,
            typed: None,
            clashing: Vec::new(),
        };
        e.kind = match all.get("type") {
            Some(Node::Str(kind)) if !kind.is_empty() => Some(kind.as_ref()),
            Some(v @ (Node::Number(_) | Node::Bool(_) | Node::Array(_) | Node::Object(_))) => {
                self.problem(
                    "entity.type",
                    format!("expected a string, got {}; left out", describe(v)),
                );
                None
            }
            _ => None,
        };
        if let Some(kind) = e.kind {
            e.typed = all
                .get(kind)
                .and_then(|t| self.object(t, &format!("entity.{kind}")));
            if e.typed.is_some_and(|t| t.contains_key("entity_type")) {
                self.problem(
                    &format!("entity.{kind}.entity_type"),
                    "clashes with entity.type; entity.type kept",
                );
            }
            for key in all.keys().filter(|k| *k != "type" && *k != kind) {
                if key == "entity_type" || e.typed.is_some_and(|t| t.contains_key(key)) {
                    self.problem(
                        &format!("entity.{key}"),
                        format!("clashes with a field of the {kind} object; left out"),
                    );
                    e.clashing.push(key);
                }
            }
        }
        self.entity = Some(e);
    }

    /// `context`: location, user agent, IP address, session id; the rest is written as is.
    fn read_context(&mut self, context: &'a Node<'a>) {
        let Some(all) = self.object(context, "context") else {
            return;
        };
        let mut c = Context {
            all,
            location: None,
            ua: None,
            ip: None,
            ip_kept: None,
            session_id: None,
            clashing: Vec::new(),
        };
        c.location = all
            .get("location")
            .and_then(|l| self.object(l, "context.location"));
        c.ua = all
            .get("ua")
            .and_then(|v| self.text(v, "context.ua"))
            .filter(|ua| !ua.trim().is_empty());
        match all.get("ip_address") {
            Some(Node::Str(ip)) => match ip.parse::<IpAddr>() {
                Ok(addr) => c.ip = Some((ip.as_ref(), addr)),
                // Not an error (docs/mapping.md): keep what Slack sent, leave `source` out.
                Err(_) => c.ip_kept = all.get("ip_address"),
            },
            Some(v @ (Node::Number(_) | Node::Bool(_))) => c.ip_kept = Some(v),
            Some(v @ (Node::Array(_) | Node::Object(_))) => {
                self.problem(
                    "context.ip_address",
                    format!("expected a string, got {}; left out", describe(v)),
                );
            }
            Some(Node::Null) | None => {}
        }
        c.session_id = match all.get("session_id") {
            Some(Node::Str(s)) => Some(Cow::Borrowed(s.as_ref())),
            Some(Node::Number(n)) => Some(Cow::Owned(n.to_string())),
            Some(Node::Null) | None => None,
            Some(v) => {
                let what = format!(
                    "expected an integer or a string, got {}; left out",
                    describe(v)
                );
                self.problem("context.session_id", what);
                None
            }
        };
        if let Some(location) = c.location {
            for key in ["type", "id", "name", "domain"] {
                if all.contains_key(key) && location.contains_key(key) {
                    self.problem(
                        &format!("context.{key}"),
                        "clashes with context.location's field of that name; left out",
                    );
                    c.clashing.push(key);
                }
            }
        }
        self.context = Some(c);
    }

    /// `details`: Elastic's renames and drops, the JSON-in-string lists, `url_private`.
    /// Returns `action_timestamp` when it can be read.
    fn read_details(&mut self, details: &'a Node<'a>) -> Option<Instant> {
        let all = self.object(details, "details")?;
        let mut d = Details {
            all,
            keep_action_timestamp: false,
            keep_previous_ip: false,
            previous_ua: None,
            md5: None,
            decoded: Vec::new(),
            url: None,
        };
        let action_ts = all
            .get("action_timestamp")
            .and_then(|v| self.read_action_timestamp(v, &mut d));
        // An IP, or nothing: an empty or invalid previous address is left out without a problem.
        d.keep_previous_ip = matches!(all.get("previous_ip_address"), Some(Node::Str(ip)) if ip.parse::<IpAddr>().is_ok());
        d.previous_ua = all
            .get("previous_ua")
            .and_then(|v| self.text(v, "details.previous_ua"))
            .filter(|u| !u.is_empty());
        d.md5 = all
            .get("md5_hash")
            .and_then(|v| self.text(v, "details.md5_hash"))
            .filter(|m| !m.is_empty());
        for key in ["succeeded_users", "failed_users"] {
            if let Some(Node::Str(text)) = all.get(key).filter(|v| v.as_str() != Some("")) {
                // Slack sends these as a string holding JSON "for historical reasons".
                match serde_json::from_str::<Value>(text) {
                    Ok(list @ Value::Array(_)) => d.decoded.push((key, list)),
                    _ => self.problem(
                        &format!("details.{key}"),
                        "a string that is not a JSON list; kept as text",
                    ),
                }
            }
        }
        if let Some(Node::Str(u)) = all.get("url_private").filter(|v| v.as_str() != Some("")) {
            d.url = super::url::parts(u);
            if d.url.is_none() {
                self.problem("details.url_private", "not an absolute URL; url.* left out");
            }
        }
        self.details = Some(d);
        action_ts
    }

    /// Reads `details.action_timestamp`; a value that cannot be read stays in `details`.
    fn read_action_timestamp(&mut self, v: &Node<'_>, d: &mut Details<'a>) -> Option<Instant> {
        if v.is_null() {
            return None;
        }
        let parsed = timestamp::read_numeric(v);
        if let Some(Numeric::Quoted(_)) = parsed {
            self.problem(
                "details.action_timestamp",
                format!("expected a number, got {}; read it anyway", describe(v)),
            );
        }
        let instant = parsed.and_then(|(Numeric::Number(n) | Numeric::Quoted(n))| {
            timestamp::from_action_timestamp(n)
        });
        if instant.is_none() {
            let what = format!(
                "expected epoch milliseconds or microseconds, got {}; kept in details",
                describe(v)
            );
            self.problem("details.action_timestamp", what);
            d.keep_action_timestamp = true;
        }
        instant
    }

    /// `@timestamp`: `action_timestamp`, else `date_create`, else the fetch time (a problem).
    fn read_timestamp(&mut self, date_create: Option<&Node<'_>>, action_ts: Option<Instant>) {
        let from_date_create = match date_create {
            None | Some(Node::Null) => {
                if action_ts.is_none() {
                    self.problem(
                        "date_create",
                        "missing; @timestamp is the fetch time (event.created)",
                    );
                }
                None
            }
            Some(v) => {
                let parsed = timestamp::read_numeric(v);
                if let Some(Numeric::Quoted(_)) = parsed {
                    self.problem(
                        "date_create",
                        format!("expected a number, got {}; read it anyway", describe(v)),
                    );
                }
                let instant = parsed.and_then(|(Numeric::Number(n) | Numeric::Quoted(n))| {
                    timestamp::from_unix_seconds(n)
                });
                if instant.is_none() {
                    let fallback = if action_ts.is_some() {
                        "details.action_timestamp"
                    } else {
                        "the fetch time (event.created)"
                    };
                    self.problem(
                        "date_create",
                        format!(
                            "expected Unix seconds, got {}; @timestamp is {fallback}",
                            describe(v)
                        ),
                    );
                }
                instant
            }
        };
        self.timestamp = action_ts.or(from_date_create);
    }
}

/// The text of a number or boolean.
fn scalar_text(v: &Node<'_>) -> String {
    match v {
        Node::Number(n) => n.to_string(),
        Node::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// "a string (\"…\")", "an object", … for problem messages; long values are cut at 60 characters.
pub(crate) fn describe(v: &Node<'_>) -> String {
    let quote = |text: String| {
        let mut cut: String = text.chars().take(60).collect();
        if cut.len() < text.len() {
            cut.push('…');
        }
        cut
    };
    match v {
        Node::Null => "null".into(),
        Node::Bool(b) => format!("a boolean ({b})"),
        Node::Number(n) => format!("a number ({n})"),
        Node::Str(s) => format!("a string ({})", quote(format!("{s:?}"))),
        Node::Array(_) => "a list".into(),
        Node::Object(_) => "an object".into(),
    }
}
