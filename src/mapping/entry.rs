//! One Slack audit entry (already parsed into a JSON object) → one ECS document.
//!
//! Works by taking the entry apart: each known key is removed and mapped, then whatever is
//! left (keys Slack adds later) is kept under `slack.audit.*`, so nothing is ever dropped
//! silently. Values are moved, not cloned. An odd value never stops the mapping: it is mapped
//! as far as it goes and a problem naming the field is added to `error.message`. This module
//! does no I/O and reads no clock; the fetch time arrives as text.

use super::categorize::categorize;
use super::geoip::GeoIp;
use super::timestamp::{self, Instant, Numeric};
use super::user_agent::UserAgents;
use super::{prune, url};
use serde_json::map::Entry;
use serde_json::{Map, Value};
use std::fmt::Display;
use std::net::IpAddr;

/// `ecs.version` of every document.
pub const ECS_VERSION: &str = "8.11.0";
/// `event.module`.
pub const MODULE: &str = "slack";
/// `event.dataset` and `data_stream.dataset`.
pub const DATASET: &str = "slack.audit";
/// The tag that says `event.original` is present.
pub const PRESERVE_TAG: &str = "preserve_original_event";

/// What every document gets regardless of its entry, computed once per [`super::Mapper`].
#[derive(Debug, Clone)]
pub struct Common {
    /// `tags` of a normal document (the preserve tag included when that option is on).
    pub tags: Vec<Value>,
    /// `tags` of a `pipeline_error` document (always with the preserve tag).
    pub error_tags: Vec<Value>,
    /// `data_stream` object.
    pub data_stream: Value,
    /// Whether `event.original` is kept on normal documents.
    pub preserve_original: bool,
}

/// The stateful helpers mapping borrows: user-agent and GeoIP caches.
pub struct Enrichers<'a> {
    /// User-agent parser.
    pub user_agents: &'a mut UserAgents,
    /// GeoIP/ASN databases.
    pub geoip: &'a mut GeoIp,
}

/// Maps one entry. `raw` is its text (for `event.original`), `created` the fetch time text.
pub fn map_entry(
    entry: Map<String, Value>,
    raw: &str,
    created: &str,
    common: &Common,
    enrich: Enrichers<'_>,
) -> Value {
    let mut doc = Doc::default();
    doc.map(entry, enrich);
    doc.finish(raw, created, common)
}

/// A `pipeline_error` document for input that is not an entry at all.
pub fn pipeline_error(raw: &str, message: String, created: &str, common: &Common) -> Value {
    let mut event = Map::new();
    event.insert("kind".into(), "pipeline_error".into());
    event.insert("original".into(), raw.into());
    event.insert("created".into(), created.into());
    event.insert("module".into(), MODULE.into());
    event.insert("dataset".into(), DATASET.into());
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), created.into());
    doc.insert("ecs".into(), serde_json::json!({ "version": ECS_VERSION }));
    doc.insert("event".into(), event.into());
    doc.insert("error".into(), serde_json::json!({ "message": [message] }));
    doc.insert("tags".into(), common.error_tags.clone().into());
    doc.insert("data_stream".into(), common.data_stream.clone());
    let mut doc = Value::Object(doc);
    prune::prune(&mut doc);
    doc
}

/// The document's parts while they are being filled.
#[derive(Default)]
struct Doc {
    timestamp: Option<String>,
    event: Map<String, Value>,
    user: Map<String, Value>,
    source: Map<String, Value>,
    related_user: Vec<Value>,
    related_ip: Vec<Value>,
    related_hash: Vec<Value>,
    user_agent: Option<Value>,
    url: Option<Map<String, Value>>,
    file_md5: Option<String>,
    audit: Map<String, Value>,
    problems: Vec<Value>,
}

impl Doc {
    fn map(&mut self, mut entry: Map<String, Value>, enrich: Enrichers<'_>) {
        if let Some(id) = entry.remove("id") {
            if let Some(id) = self.string(id, "id") {
                self.event.insert("id".into(), id.into());
            }
        }
        let action = entry
            .remove("action")
            .and_then(|a| self.string(a, "action"));
        self.categorize(action.as_deref().unwrap_or_default());
        if let Some(action) = action {
            self.event.insert("action".into(), action.into());
        }
        let date_create = entry.remove("date_create");
        if let Some(actor) = entry.remove("actor") {
            self.actor(actor);
        }
        let kind = entry.remove("entity").and_then(|e| self.entity(e));
        if let Some(context) = entry.remove("context") {
            self.context(context, enrich);
        }
        let action_ts = entry
            .remove("details")
            .and_then(|d| self.details(d, kind.as_deref()));
        self.timestamp(date_create, action_ts);
        // Whatever is left is new to us: keep it where Slack's own data lives.
        self.audit.extend(entry);
    }

    fn problem(&mut self, field: &str, what: impl Display) {
        self.problems.push(format!("{field}: {what}").into());
    }

    /// A string field: numbers and booleans are taken as their text (reported); containers
    /// cannot be, and are reported and dropped.
    fn string(&mut self, v: Value, field: &str) -> Option<String> {
        match v {
            Value::String(s) => Some(s),
            Value::Null => None,
            Value::Number(_) | Value::Bool(_) => {
                self.problem(
                    field,
                    format!("expected a string, got {}; kept as text", describe(&v)),
                );
                Some(v.to_string())
            }
            _ => {
                self.problem(
                    field,
                    format!("expected a string, got {}; left out", describe(&v)),
                );
                None
            }
        }
    }

    /// An object field; anything else is reported (null is simply absent).
    fn object(&mut self, v: Value, field: &str) -> Option<Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            Value::Null => None,
            other => {
                self.problem(
                    field,
                    format!("expected an object, got {}; left out", describe(&other)),
                );
                None
            }
        }
    }

    fn categorize(&mut self, action: &str) {
        let c = categorize(action);
        let list = |items: &[&str]| Value::Array(items.iter().map(|s| Value::from(*s)).collect());
        self.event.insert("category".into(), list(c.category));
        self.event.insert("type".into(), list(c.kind));
        if let Some(outcome) = c.outcome {
            self.event.insert("outcome".into(), outcome.into());
        }
    }

    /// `actor.user.{id,name,email}` → `user.*`; the rest of `actor` → `slack.audit.actor`.
    fn actor(&mut self, actor: Value) {
        let Some(mut actor) = self.object(actor, "actor") else {
            return;
        };
        if let Some(user) = actor.remove("user") {
            if let Some(mut user) = self.object(user, "actor.user") {
                let id = user
                    .remove("id")
                    .and_then(|v| self.string(v, "actor.user.id"));
                let name = user
                    .remove("name")
                    .and_then(|v| self.string(v, "actor.user.name"));
                let email = user
                    .remove("email")
                    .and_then(|v| self.string(v, "actor.user.email"));
                for (key, value) in [("id", id), ("full_name", name), ("email", email)] {
                    if let Some(value) = value {
                        if key != "full_name"
                            && !value.is_empty()
                            && !self.related_user.iter().any(|u| u == value.as_str())
                        {
                            self.related_user.push(value.clone().into());
                        }
                        self.user.insert(key.into(), value.into());
                    }
                }
                actor.insert("user".into(), user.into());
            }
        }
        self.audit.insert("actor".into(), actor.into());
    }

    /// `entity.type` + the sub-object it names → `slack.audit.entity.*`, for every kind.
    /// Returns the kind, which `details.md5_hash` needs.
    fn entity(&mut self, entity: Value) -> Option<String> {
        let mut entity = self.object(entity, "entity")?;
        let kind = entity
            .remove("type")
            .and_then(|t| self.string(t, "entity.type"))
            .filter(|k| !k.is_empty());
        let mut out = Map::new();
        if let Some(kind) = &kind {
            let field = format!("entity.{kind}");
            if let Some(sub) = entity.remove(kind).and_then(|s| self.object(s, &field)) {
                out = sub;
            }
            if out
                .insert("entity_type".into(), kind.as_str().into())
                .is_some()
            {
                self.problem(
                    &format!("{field}.entity_type"),
                    "clashes with entity.type; entity.type kept",
                );
            }
        }
        // Other sub-objects and unknown keys stay under their own names.
        for (key, value) in entity {
            match out.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(slot) => {
                    let field = format!("entity.{}", slot.key());
                    self.problem(
                        &field,
                        format!(
                            "clashes with a field of the {} object; left out",
                            kind.as_deref().unwrap_or("typed")
                        ),
                    );
                }
            }
        }
        self.audit.insert("entity".into(), out.into());
        kind
    }

    /// `context` → `user_agent.*`, `source.*`, `related.ip` and `slack.audit.context.*`.
    fn context(&mut self, context: Value, enrich: Enrichers<'_>) {
        let Some(mut context) = self.object(context, "context") else {
            return;
        };
        let mut out = Map::new();
        if let Some(location) = context.remove("location") {
            self.location(location, &mut out);
        }
        if let Some(ua) = context
            .remove("ua")
            .and_then(|v| self.string(v, "context.ua"))
        {
            if !ua.trim().is_empty() {
                self.user_agent = Some(enrich.user_agents.parse(&ua));
            }
        }
        if let Some(ip) = context.remove("ip_address") {
            self.ip_address(ip, &mut out, enrich.geoip);
        }
        if let Some(session) = context.remove("session_id") {
            self.session_id(session, &mut out);
        }
        for (key, value) in context {
            match out.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(slot) => {
                    let field = format!("context.{}", slot.key());
                    self.problem(
                        &field,
                        "clashes with context.location's field of that name; left out",
                    );
                }
            }
        }
        self.audit.insert("context".into(), out.into());
    }

    /// `location.{type,id,name,domain}` → `context.*`; other keys stay under `context.location`
    /// rather than clash with `context`'s own (both levels carry `new_attribute` in the SDK tests).
    fn location(&mut self, location: Value, out: &mut Map<String, Value>) {
        let Some(mut location) = self.object(location, "context.location") else {
            return;
        };
        for key in ["type", "id", "name", "domain"] {
            if let Some(v) = location.remove(key) {
                out.insert(key.into(), v);
            }
        }
        if !location.is_empty() {
            out.insert("location".into(), location.into());
        }
    }

    /// An IP fills `source.*`; anything else scalar is kept as sent. Not an error either way.
    fn ip_address(&mut self, ip: Value, out: &mut Map<String, Value>, geoip: &mut GeoIp) {
        match ip {
            Value::String(text) => match text.parse::<IpAddr>() {
                Ok(addr) => self.source_ip(text, addr, geoip),
                Err(_) => {
                    out.insert("ip_address".into(), text.into());
                }
            },
            v @ (Value::Number(_) | Value::Bool(_)) => {
                out.insert("ip_address".into(), v);
            }
            Value::Null => {}
            v => self.problem(
                "context.ip_address",
                format!("expected a string, got {}; left out", describe(&v)),
            ),
        }
    }

    /// Slack sends an integer, a string or null; the output is always a string.
    fn session_id(&mut self, session: Value, out: &mut Map<String, Value>) {
        match session {
            Value::String(s) => {
                out.insert("session_id".into(), s.into());
            }
            Value::Number(n) => {
                out.insert("session_id".into(), n.to_string().into());
            }
            Value::Null => {}
            v => self.problem(
                "context.session_id",
                format!(
                    "expected an integer or a string, got {}; left out",
                    describe(&v)
                ),
            ),
        }
    }

    fn source_ip(&mut self, ip: String, addr: IpAddr, geoip: &mut GeoIp) {
        let found = geoip.lookup(addr);
        if let Some(geo) = found.geo {
            self.source.insert("geo".into(), geo);
        }
        if let Some(asn) = found.asn {
            self.source.insert("as".into(), asn);
        }
        self.related_ip.push(ip.as_str().into());
        self.source.insert("address".into(), ip.as_str().into());
        self.source.insert("ip".into(), ip.into());
    }

    /// `details` → `slack.audit.details.*` with Elastic's renames; returns `action_timestamp`.
    fn details(&mut self, details: Value, entity_kind: Option<&str>) -> Option<Instant> {
        let mut d = self.object(details, "details")?;
        let action_ts = d
            .remove("action_timestamp")
            .and_then(|v| self.action_timestamp(v, &mut d));
        // An IP, or nothing: an empty or invalid previous address is left out without a problem.
        if let Some(Value::String(ip)) = d.remove("previous_ip_address") {
            if ip.parse::<IpAddr>().is_ok() {
                d.insert("previous_ip_address".into(), ip.into());
            }
        }
        if let Some(ua) = d
            .remove("previous_ua")
            .and_then(|v| self.string(v, "details.previous_ua"))
        {
            d.insert("previous_user_agent".into(), ua.into());
        }
        if let Some(md5) = d.remove("md5_hash") {
            self.md5_hash(md5, &mut d, entity_kind);
        }
        for key in ["succeeded_users", "failed_users"] {
            self.decode_json_list(&mut d, key);
        }
        match d.get("url_private") {
            Some(Value::String(u)) if !u.is_empty() => match url::parts(u) {
                Some(parts) => self.url = Some(parts),
                None => self.problem("details.url_private", "not an absolute URL; url.* left out"),
            },
            _ => {}
        }
        self.audit.insert("details".into(), d.into());
        action_ts
    }

    /// `md5_hash` → `details.md5` and `related.hash`, and `file.hash.md5` for a file entity.
    fn md5_hash(&mut self, md5: Value, d: &mut Map<String, Value>, entity_kind: Option<&str>) {
        let Some(md5) = self
            .string(md5, "details.md5_hash")
            .filter(|m| !m.is_empty())
        else {
            return;
        };
        self.related_hash.push(md5.as_str().into());
        if entity_kind == Some("file") {
            self.file_md5 = Some(md5.clone());
        }
        d.insert("md5".into(), md5.into());
    }

    /// Reads `details.action_timestamp`; a value that cannot be read goes back into `details`.
    fn action_timestamp(&mut self, v: Value, details: &mut Map<String, Value>) -> Option<Instant> {
        if v.is_null() {
            return None;
        }
        let parsed = timestamp::read_numeric(&v);
        if let Some(Numeric::Quoted(_)) = parsed {
            self.problem(
                "details.action_timestamp",
                format!("expected a number, got {}; read it anyway", describe(&v)),
            );
        }
        let instant = parsed.and_then(|(Numeric::Number(n) | Numeric::Quoted(n))| {
            timestamp::from_action_timestamp(n)
        });
        if instant.is_none() {
            self.problem(
                "details.action_timestamp",
                format!(
                    "expected epoch milliseconds or microseconds, got {}; kept in details",
                    describe(&v)
                ),
            );
            details.insert("action_timestamp".into(), v);
        }
        instant
    }

    /// Slack sends some lists as a string holding JSON ("for historical reasons"); decode them.
    fn decode_json_list(&mut self, d: &mut Map<String, Value>, key: &str) {
        let decoded = match d.get(key) {
            Some(Value::String(text)) if !text.is_empty() => {
                serde_json::from_str::<Value>(text).ok()
            }
            _ => return,
        };
        match decoded {
            Some(list @ Value::Array(_)) => {
                d.insert(key.into(), list);
            }
            _ => self.problem(
                &format!("details.{key}"),
                "a string that is not a JSON list; kept as text",
            ),
        }
    }

    /// `@timestamp`: `action_timestamp`, else `date_create`, else the fetch time (a problem).
    fn timestamp(&mut self, date_create: Option<Value>, action_ts: Option<Instant>) {
        let from_date_create = match date_create {
            None | Some(Value::Null) => {
                if action_ts.is_none() {
                    self.problem(
                        "date_create",
                        "missing; @timestamp is the fetch time (event.created)",
                    );
                }
                None
            }
            Some(v) => {
                let parsed = timestamp::read_numeric(&v);
                if let Some(Numeric::Quoted(_)) = parsed {
                    self.problem(
                        "date_create",
                        format!("expected a number, got {}; read it anyway", describe(&v)),
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
                            describe(&v)
                        ),
                    );
                }
                instant
            }
        };
        self.timestamp = action_ts.or(from_date_create).map(timestamp::format);
    }

    fn finish(self, raw: &str, created: &str, common: &Common) -> Value {
        let mut event = self.event;
        event.insert("kind".into(), "event".into());
        event.insert("module".into(), MODULE.into());
        event.insert("dataset".into(), DATASET.into());
        event.insert("created".into(), created.into());
        if common.preserve_original {
            event.insert("original".into(), raw.into());
        }
        let mut doc = Map::new();
        doc.insert(
            "@timestamp".into(),
            self.timestamp.unwrap_or_else(|| created.to_string()).into(),
        );
        doc.insert("ecs".into(), serde_json::json!({ "version": ECS_VERSION }));
        doc.insert("event".into(), event.into());
        doc.insert("user".into(), self.user.into());
        doc.insert("source".into(), self.source.into());
        let mut related = Map::new();
        related.insert("user".into(), self.related_user.into());
        related.insert("ip".into(), self.related_ip.into());
        related.insert("hash".into(), self.related_hash.into());
        doc.insert("related".into(), related.into());
        if let Some(ua) = self.user_agent {
            doc.insert("user_agent".into(), ua);
        }
        if let Some(url) = self.url {
            doc.insert("url".into(), url.into());
        }
        if let Some(md5) = self.file_md5 {
            doc.insert("file".into(), serde_json::json!({ "hash": { "md5": md5 } }));
        }
        doc.insert("slack".into(), serde_json::json!({ "audit": self.audit }));
        if !self.problems.is_empty() {
            doc.insert(
                "error".into(),
                serde_json::json!({ "message": self.problems }),
            );
        }
        doc.insert("tags".into(), common.tags.clone().into());
        doc.insert("data_stream".into(), common.data_stream.clone());
        let mut doc = Value::Object(doc);
        prune::prune(&mut doc);
        doc
    }
}

/// "a string \"…\"", "an object", … for problem messages; long values are cut at 60 characters.
pub fn describe(v: &Value) -> String {
    let quote = |text: String| {
        let mut cut: String = text.chars().take(60).collect();
        if cut.len() < text.len() {
            cut.push('…');
        }
        cut
    };
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({})", quote(format!("{s:?}"))),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}
