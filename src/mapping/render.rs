//! A [`Plan`] → the ECS document as JSON text, in one pass, empties left out.
//!
//! Also writes the `pipeline_error` document for input that is not an entry. The order of
//! fields does not matter to JSON consumers; it follows the field table for readability.

use super::entry::{Context, Details, Entity, Plan, KNOWN_TOP_LEVEL};
use super::geoip::GeoIp;
use super::json::{Open, Out};
use super::timestamp;
use super::tree::{Node, Obj};
use super::user_agent::UserAgents;

/// `ecs.version` of every document: events, and the findings the analysis writes.
pub(crate) const ECS_VERSION: &str = "8.11.0";
/// `event.module`.
pub(crate) const MODULE: &str = "slack";
/// `event.dataset` and `data_stream.dataset`.
pub(crate) const DATASET: &str = "slack.audit";
/// The tag that says `event.original` is present.
pub(crate) const PRESERVE_TAG: &str = "preserve_original_event";

/// What every document gets regardless of its entry, rendered once per [`super::Mapper`].
#[derive(Debug, Clone)]
pub(crate) struct Common {
    /// `tags` of a normal document as JSON (the preserve tag included when that option is on).
    pub(crate) tags: Option<String>,
    /// `tags` of a `pipeline_error` document as JSON (always with the preserve tag).
    pub(crate) error_tags: String,
    /// The `data_stream` object as JSON.
    pub(crate) data_stream: String,
    /// Whether `event.original` is kept on normal documents.
    pub(crate) preserve_original: bool,
}

/// The per-document inputs besides the plan.
pub(crate) struct Inputs<'a> {
    /// The entry's text, for `event.original`.
    pub(crate) raw: &'a str,
    /// The fetch time as text (`event.created`, and `@timestamp` when the entry has none).
    pub(crate) created: &'a str,
    /// Fixed parts.
    pub(crate) common: &'a Common,
    /// User-agent parser and cache.
    pub(crate) user_agents: &'a mut UserAgents,
    /// GeoIP databases and cache.
    pub(crate) geoip: &'a mut GeoIp,
}

/// Appends the document for `plan` to `buf`.
pub(crate) fn document(plan: &Plan<'_>, inp: Inputs<'_>, buf: &mut Vec<u8>) {
    let mut out = Out::new(buf);
    let mut doc = out.begin();
    let ts = plan.timestamp.map(timestamp::format);
    out.str_field(&mut doc, "@timestamp", ts.as_deref().unwrap_or(inp.created));
    nested(&mut out, &mut doc, "ecs", |out, ecs| {
        out.str_field(ecs, "version", ECS_VERSION)
    });
    event(&mut out, &mut doc, plan, &inp);
    user(&mut out, &mut doc, plan);
    related(&mut out, &mut doc, plan);
    source(&mut out, &mut doc, plan, inp.geoip);
    if let Some(ua) = plan.context.as_ref().and_then(|c| c.ua.as_deref()) {
        out.raw_field(&mut doc, "user_agent", inp.user_agents.render(ua));
    }
    if let Some(url) = plan.details.as_ref().and_then(|d| d.url.as_ref()) {
        nested(&mut out, &mut doc, "url", |out, u| {
            for (k, v) in url {
                out.value_field(u, k, v);
            }
        });
    }
    if let Some(md5) = plan
        .details
        .as_ref()
        .and_then(|d| d.md5.as_deref())
        .filter(|_| plan.is_file())
    {
        nested(&mut out, &mut doc, "file", |out, file| {
            nested(out, file, "hash", |out, hash| {
                out.str_field(hash, "md5", md5)
            });
        });
    }
    slack(&mut out, &mut doc, plan);
    if !plan.problems.is_empty() {
        let mark = out.key(&doc, "error");
        let mut error = out.begin();
        out.str_list_field(
            &mut error,
            "message",
            plan.problems.iter().map(String::as_str),
        );
        let wrote = out.end(error);
        out.keep(&mut doc, mark, wrote);
    }
    if let Some(tags) = &inp.common.tags {
        out.raw_field(&mut doc, "tags", tags);
    }
    out.raw_field(&mut doc, "data_stream", &inp.common.data_stream);
    out.end(doc);
}

/// Appends a `pipeline_error` document: `raw` is not an entry, `message` says why.
pub(crate) fn pipeline_error(
    raw: &str,
    message: &str,
    created: &str,
    common: &Common,
    buf: &mut Vec<u8>,
) {
    let mut out = Out::new(buf);
    let mut doc = out.begin();
    out.str_field(&mut doc, "@timestamp", created);
    nested(&mut out, &mut doc, "ecs", |out, ecs| {
        out.str_field(ecs, "version", ECS_VERSION)
    });
    let mark = out.key(&doc, "event");
    let mut event = out.begin();
    if let Some(id) = recover_id(raw) {
        // Whoever investigates the error can find the entry in Slack's own export.
        out.str_field(&mut event, "id", id);
    }
    out.str_field(&mut event, "kind", "pipeline_error");
    out.str_field(&mut event, "original", raw);
    out.str_field(&mut event, "created", created);
    out.str_field(&mut event, "module", MODULE);
    out.str_field(&mut event, "dataset", DATASET);
    let wrote = out.end(event);
    out.keep(&mut doc, mark, wrote);
    let mark = out.key(&doc, "error");
    let mut error = out.begin();
    out.str_list_field(&mut error, "message", [message]);
    let wrote = out.end(error);
    out.keep(&mut doc, mark, wrote);
    out.raw_field(&mut doc, "tags", &common.error_tags);
    out.raw_field(&mut doc, "data_stream", &common.data_stream);
    out.end(doc);
}

/// The entry's `id` when the text of a broken entry still shows it: the top-level object's
/// `"id": "…"` member (Slack writes it first, so a truncated or corrupted entry usually
/// keeps it), a plain string of 1..=128 bytes without escapes. Ids of nested objects (the
/// actor's, the entity's) are never taken.
pub(crate) fn recover_id(raw: &str) -> Option<&str> {
    let b = raw.as_bytes();
    // One flag per open container: true for an object.
    let mut stack: Vec<bool> = Vec::new();
    let mut key_next = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c @ (b'{' | b'[') => {
                stack.push(c == b'{');
                key_next = stack == [true];
            }
            b'}' | b']' => {
                stack.pop();
                key_next = false;
            }
            b',' => key_next = stack == [true],
            b'"' => {
                let end = string_end(b, i)?;
                if key_next && &b[i + 1..end] == b"id" {
                    let mut j = end + 1;
                    while b.get(j).is_some_and(u8::is_ascii_whitespace) {
                        j += 1;
                    }
                    if b.get(j) != Some(&b':') {
                        return None;
                    }
                    j += 1;
                    while b.get(j).is_some_and(u8::is_ascii_whitespace) {
                        j += 1;
                    }
                    if b.get(j) != Some(&b'"') {
                        return None;
                    }
                    let close = string_end(b, j)?;
                    let id = raw.get(j + 1..close)?;
                    let plain = (1..=128).contains(&id.len()) && !id.contains(['\\', '\u{fffd}']);
                    return plain.then_some(id);
                }
                key_next = false;
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the quote closing the string that opens at `open`.
fn string_end(b: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Writes `"key": { … }` with `fill` writing the members; left out when nothing is kept.
fn nested(
    out: &mut Out<'_>,
    parent: &mut Open,
    key: &str,
    fill: impl FnOnce(&mut Out<'_>, &mut Open),
) {
    let mark = out.key(parent, key);
    let mut obj = out.begin();
    fill(out, &mut obj);
    let wrote = out.end(obj);
    out.keep(parent, mark, wrote);
}

fn event(out: &mut Out<'_>, doc: &mut Open, plan: &Plan<'_>, inp: &Inputs<'_>) {
    nested(out, doc, "event", |out, ev| {
        out.str_field(ev, "id", plan.id.as_deref().unwrap_or_default());
        out.str_field(ev, "action", plan.action.as_deref().unwrap_or_default());
        out.str_field(ev, "kind", "event");
        out.str_field(ev, "module", MODULE);
        out.str_field(ev, "dataset", DATASET);
        out.str_field(ev, "created", inp.created);
        if let Some(c) = plan.category {
            out.str_list_field(ev, "category", c.category.iter().copied());
            out.str_list_field(ev, "type", c.kind.iter().copied());
            out.str_field(ev, "outcome", c.outcome.unwrap_or_default());
        }
        if inp.common.preserve_original {
            out.str_field(ev, "original", inp.raw);
        }
    });
}

fn user(out: &mut Out<'_>, doc: &mut Open, plan: &Plan<'_>) {
    nested(out, doc, "user", |out, u| {
        for (key, value) in ["id", "full_name", "email"].into_iter().zip(&plan.user) {
            out.str_field(u, key, value.as_deref().unwrap_or_default());
        }
    });
}

fn related(out: &mut Out<'_>, doc: &mut Open, plan: &Plan<'_>) {
    nested(out, doc, "related", |out, r| {
        let id = plan.user[0].as_deref().unwrap_or_default();
        let email = plan.user[2].as_deref().unwrap_or_default();
        // id then email, without duplicates.
        let users = [id, if email == id { "" } else { email }];
        out.str_list_field(r, "user", users);
        let ip = plan
            .context
            .as_ref()
            .and_then(|c| c.ip)
            .map_or("", |(text, _)| text);
        out.str_list_field(r, "ip", [ip]);
        let hash = plan
            .details
            .as_ref()
            .and_then(|d| d.md5.as_deref())
            .unwrap_or_default();
        out.str_list_field(r, "hash", [hash]);
    });
}

fn source(out: &mut Out<'_>, doc: &mut Open, plan: &Plan<'_>, geoip: &mut GeoIp) {
    let Some((text, addr)) = plan.context.as_ref().and_then(|c| c.ip) else {
        return;
    };
    nested(out, doc, "source", |out, s| {
        out.str_field(s, "ip", text);
        out.str_field(s, "address", text);
        let found = geoip.lookup(addr);
        if let Some(geo) = &found.geo {
            out.raw_field(s, "geo", geo);
        }
        if let Some(asn) = &found.asn {
            out.raw_field(s, "as", asn);
        }
    });
}

fn slack(out: &mut Out<'_>, doc: &mut Open, plan: &Plan<'_>) {
    nested(out, doc, "slack", |out, slack| {
        nested(out, slack, "audit", |out, audit| {
            if let Some(actor) = plan.actor {
                nested(out, audit, "actor", |out, a| write_actor(out, a, actor));
            }
            if let Some(entity) = &plan.entity {
                nested(out, audit, "entity", |out, e| write_entity(out, e, entity));
            }
            if let Some(context) = &plan.context {
                nested(out, audit, "context", |out, c| {
                    write_context(out, c, context)
                });
            }
            if let Some(details) = &plan.details {
                nested(out, audit, "details", |out, d| {
                    write_details(out, d, details)
                });
            }
            for (key, value) in plan.entry.into_iter().flatten() {
                if !KNOWN_TOP_LEVEL.contains(&key) {
                    out.node_field(audit, key, value);
                }
            }
        });
    });
}

/// `actor` minus `user.{id,name,email}` (a `user` that is not an object was reported).
fn write_actor(out: &mut Out<'_>, a: &mut Open, actor: &Obj<'_>) {
    for (key, value) in actor {
        match (key, value) {
            ("user", Node::Object(user)) => nested(out, a, "user", |out, u| {
                for (k, v) in user
                    .iter()
                    .filter(|(k, _)| !matches!(*k, "id" | "name" | "email"))
                {
                    out.node_field(u, k, v);
                }
            }),
            ("user", _) => {}
            _ => out.node_field(a, key, value),
        }
    }
}

/// The typed sub-object flattened, `entity_type`, then the other keys of `entity`.
fn write_entity(out: &mut Out<'_>, e: &mut Open, entity: &Entity<'_>) {
    for (key, value) in entity.typed.into_iter().flatten() {
        if key != "entity_type" {
            out.node_field(e, key, value);
        }
    }
    if let Some(kind) = entity.kind {
        out.str_field(e, "entity_type", kind);
    }
    for (key, value) in entity.all {
        let skip = key == "type" || Some(key) == entity.kind || entity.clashing.contains(&key);
        if !skip {
            out.node_field(e, key, value);
        }
    }
}

/// `location.{type,id,name,domain}` flattened, other `location` keys under `location`,
/// `session_id` as text, a non-IP `ip_address` as sent, then the other keys of `context`.
fn write_context(out: &mut Out<'_>, c: &mut Open, context: &Context<'_>) {
    const FLAT: [&str; 4] = ["type", "id", "name", "domain"];
    if let Some(location) = context.location {
        for key in FLAT {
            if let Some(v) = location.get(key) {
                out.node_field(c, key, v);
            }
        }
        nested(out, c, "location", |out, l| {
            for (k, v) in location.iter().filter(|(k, _)| !FLAT.contains(k)) {
                out.node_field(l, k, v);
            }
        });
    }
    out.str_field(
        c,
        "session_id",
        context.session_id.as_deref().unwrap_or_default(),
    );
    if let Some(ip) = context.ip_kept {
        out.node_field(c, "ip_address", ip);
    }
    for (key, value) in context.all {
        let k = key;
        let handled = matches!(k, "location" | "ua" | "ip_address" | "session_id");
        if !handled && !context.clashing.contains(&k) {
            out.node_field(c, key, value);
        }
    }
}

/// `details` as sent, with Elastic's renames (`previous_ua` → `previous_user_agent`,
/// `md5_hash` → `md5`), `action_timestamp` and bad previous addresses dropped, lists decoded.
fn write_details(out: &mut Out<'_>, d: &mut Open, details: &Details<'_>) {
    for (key, value) in details.all {
        match key {
            "action_timestamp" if !details.keep_action_timestamp => {}
            "previous_ip_address" if !details.keep_previous_ip => {}
            "previous_ua" | "md5_hash" => {}
            "previous_user_agent" if details.previous_ua.is_some() => {}
            "md5" if details.md5.is_some() => {}
            k => match details.decoded.iter().find(|(name, _)| *name == k) {
                Some((_, list)) => out.value_field(d, key, list),
                None => out.node_field(d, key, value),
            },
        }
    }
    out.str_field(
        d,
        "previous_user_agent",
        details.previous_ua.as_deref().unwrap_or_default(),
    );
    out.str_field(d, "md5", details.md5.as_deref().unwrap_or_default());
}
