//! Raw Slack audit entry + fetch time → one ECS document, at parity with Elastic's Slack
//! integration 1.24.0 (docs/mapping.md) and stricter about bad input.
//!
//! Pure: no I/O and no clock inside [`Mapper::map_entry`]; the fetch time is passed in. What is
//! loaded once lives in the [`Mapper`]: the user-agent rules and their cache, and the optional
//! GeoIP databases. Every input gives exactly one document and never a panic: an entry with
//! odd values is mapped as far as it goes with each problem in `error.message`; input that is
//! not a JSON object becomes a `pipeline_error` document carrying `event.original`.
//!
//! - `entry`: the field table: reads an entry once into a `entry::Plan`.
//! - `render`: writes the plan as the document's JSON text; `json` leaves empties out.
//! - `categorize`: `event.action` → `event.category/type/outcome`.
//! - `timestamp`, `url`, `user_agent`, `geoip`: one field family each.
//! - [`command`]: the `map` command (NDJSON or API responses on stdin, documents on stdout).
//!
//! Documents are written as text and parsed into a `Value` only for callers that want one
//! ([`Mapper::map_entry`]); the `map` command writes the text straight out. See `json.rs` for
//! why this beats building `Value` trees.

pub(crate) mod categorize;
pub mod command;
pub(crate) mod entry;
pub(crate) mod geoip;
pub(crate) mod input;
pub(crate) mod json;
pub(crate) mod render;
#[cfg(test)]
pub(crate) mod testdb;
pub(crate) mod timestamp;
pub mod tree;
pub(crate) mod url;
pub(crate) mod user_agent;

pub use command::run_map;

use crate::units::ConfigError;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::path::PathBuf;

/// `--tags` when none are given, spelled as the flag takes it.
pub(crate) const DEFAULT_TAGS: &str = "forwarded,slack-audit";
/// `--namespace` when none is given: Fleet's and Elastic Agent's default.
pub(crate) const DEFAULT_NAMESPACE: &str = "default";

/// Mapping flags shared by `map` and `run`; `Default` is every flag at its default.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct MappingArgs {
    /// MaxMind-format city database (GeoLite2-City, GeoIP2-City or compatible) for
    /// source.geo.*; read into memory at start. Without it source.geo is left out.
    #[arg(long, env = "SLACK_AUDIT_GEOIP_CITY")]
    pub(crate) geoip_city: Option<PathBuf>,
    /// MaxMind-format ASN database (GeoLite2-ASN or compatible) for source.as.*; read into
    /// memory at start. Without it source.as is left out.
    #[arg(long, env = "SLACK_AUDIT_GEOIP_ASN")]
    pub(crate) geoip_asn: Option<PathBuf>,
    /// Keep each raw entry in event.original and add the tag preserve_original_event.
    #[arg(long, env = "SLACK_AUDIT_PRESERVE_ORIGINAL_EVENT")]
    pub(crate) preserve_original_event: bool,
    /// Tags on every document (comma-separated; empty items are ignored).
    #[arg(
        long,
        env = "SLACK_AUDIT_TAGS",
        value_delimiter = ',',
        default_value = DEFAULT_TAGS
    )]
    pub(crate) tags: Vec<String>,
    /// data_stream.namespace: lowercase, at most 100 bytes, none of \ / * ? " < > | , # : - or space.
    #[arg(long, env = "SLACK_AUDIT_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub(crate) namespace: String,
}

impl Default for MappingArgs {
    fn default() -> MappingArgs {
        MappingArgs {
            geoip_city: None,
            geoip_asn: None,
            preserve_original_event: false,
            tags: DEFAULT_TAGS.split(',').map(String::from).collect(),
            namespace: DEFAULT_NAMESPACE.into(),
        }
    }
}

/// Arguments of `map`.
#[derive(Debug, Clone, clap::Args)]
pub struct MapArgs {
    /// Mapping options.
    #[command(flatten)]
    pub(crate) mapping: MappingArgs,
}

/// Validated mapping options; `Default` is what `run` and `map` do with no mapping flag.
#[derive(Debug, Clone)]
pub struct MappingConfig {
    /// City database, when given.
    pub geoip_city: Option<PathBuf>,
    /// ASN database, when given.
    pub geoip_asn: Option<PathBuf>,
    /// Keep `event.original` on every document.
    pub preserve_original_event: bool,
    /// `tags` of every document, in order.
    pub tags: Vec<String>,
    /// `data_stream.namespace`.
    pub namespace: String,
}

impl Default for MappingConfig {
    fn default() -> MappingConfig {
        MappingConfig::from_args(&MappingArgs::default())
            .expect("the default namespace is a valid one")
    }
}

impl MappingConfig {
    /// Validates mapping flags.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a namespace Elasticsearch would refuse as part of a data
    /// stream name (so the mistake shows at start, not as rejected writes).
    pub(crate) fn from_args(args: &MappingArgs) -> Result<MappingConfig, ConfigError> {
        validate_namespace(&args.namespace)?;
        Ok(MappingConfig {
            geoip_city: args.geoip_city.clone(),
            geoip_asn: args.geoip_asn.clone(),
            preserve_original_event: args.preserve_original_event,
            tags: args
                .tags
                .iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
            namespace: args.namespace.clone(),
        })
    }
}

/// Data stream namespace rules (ECS `data_stream.namespace` and Elasticsearch index names).
fn validate_namespace(ns: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError::Invalid {
        flag: "namespace",
        message: format!("{ns:?} {why}"),
    };
    if ns.is_empty() || ns.len() > 100 {
        return Err(bad("must be 1 to 100 bytes long"));
    }
    if ns.chars().any(|c| c.is_uppercase()) {
        return Err(bad("must be lowercase"));
    }
    if let Some(c) = ns.chars().find(|c| "\\/*?\"<>|,#:- ".contains(*c)) {
        return Err(bad(&format!("must not contain {c:?}")));
    }
    Ok(())
}

/// What kind of document was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocKind {
    /// A mapped entry (`event.kind: event`), possibly with `error.message`.
    Event,
    /// Input that is not an entry (`event.kind: pipeline_error`).
    PipelineError,
}

/// What the pipeline's routing and the analysis need to know about an entry, read while it is mapped so
/// that the entry is parsed once. Each value is what the document's field reads back as
/// (`fields::string` in the analysis: trimmed, non-empty, numbers as their text), so a
/// document routed past the analysis is recorded exactly as one read from its JSON would be.
/// Reused from entry to entry; [`Mapper::write_entry_noting`] resets it.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Facts {
    /// `event.action`.
    pub(crate) action: Option<String>,
    /// `user_agent.original`.
    pub(crate) user_agent: Option<String>,
    /// `user.id`.
    pub(crate) user_id: Option<String>,
    /// `event.id`.
    pub(crate) event_id: Option<String>,
    /// `@timestamp`, in Unix milliseconds.
    pub(crate) timestamp_ms: i64,
    /// `slack.audit.entity.id`.
    pub(crate) entity_id: Option<String>,
    /// `slack.audit.entity.name`.
    pub(crate) entity_name: Option<String>,
    /// What the detections read of the entry, read as they read it.
    pub(crate) detect: DetectFacts,
}

/// What the detection rules read of an entry that they need not see whole (the analysis's
/// `detect::Light`), read from the entry as the detections read a JSON value: strings trimmed
/// and non-empty, numbers as their text. Reused from entry to entry.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct DetectFacts {
    /// `action`, when a non-empty string (as sent).
    pub(crate) action: Option<String>,
    /// `id`, when a non-blank string.
    pub(crate) id: Option<String>,
    /// `date_create`, when an integer.
    pub(crate) date_create: Option<i64>,
    /// `entity` is an object.
    pub(crate) has_entity: bool,
    /// `actor.user.id`, `.email`, `.name`.
    pub(crate) actor: [Option<String>; 3],
    /// `context.ip_address`, when it parses.
    pub(crate) ip: Option<std::net::IpAddr>,
    /// `context.ua`, when a non-blank string.
    pub(crate) ua: Option<String>,
    /// `context.session_id`, not "0".
    pub(crate) session: Option<String>,
    /// `context.app` is present and not null.
    pub(crate) by_app: bool,
}

impl DetectFacts {
    fn read(&mut self, entry: &tree::Obj<'_>) {
        use tree::Node;
        fn put(slot: &mut Option<String>, v: Option<&str>) {
            match v {
                Some(v) => {
                    let s = slot.get_or_insert_with(String::new);
                    s.clear();
                    s.push_str(v);
                }
                None => *slot = None,
            }
        }
        fn text(slot: &mut Option<String>, v: Option<&Node<'_>>) {
            match v {
                Some(Node::Str(s)) if !s.trim().is_empty() => put(slot, Some(s.trim())),
                Some(Node::Number(n)) => {
                    // Into the slot's buffer: session ids are numbers, on every entry.
                    let s = slot.get_or_insert_with(String::new);
                    s.clear();
                    let _ = std::fmt::Write::write_fmt(s, format_args!("{n}"));
                }
                _ => *slot = None,
            }
        }
        fn obj<'o, 'a>(v: Option<&'o Node<'a>>) -> Option<&'o tree::Obj<'a>> {
            match v {
                Some(Node::Object(o)) => Some(o),
                _ => None,
            }
        }
        put(
            &mut self.action,
            match entry.get("action") {
                Some(Node::Str(s)) if !s.is_empty() => Some(s.as_ref()),
                _ => None,
            },
        );
        put(
            &mut self.id,
            match entry.get("id") {
                Some(Node::Str(s)) if !s.trim().is_empty() => Some(s.trim()),
                _ => None,
            },
        );
        self.date_create = match entry.get("date_create") {
            Some(Node::Number(n)) => n.as_i64(),
            _ => None,
        };
        self.has_entity = obj(entry.get("entity")).is_some();
        let user = obj(entry.get("actor")).and_then(|a| obj(a.get("user")));
        for (slot, key) in self.actor.iter_mut().zip(["id", "email", "name"]) {
            text(slot, user.and_then(|u| u.get(key)));
        }
        let context = obj(entry.get("context"));
        let field = |key: &str| context.and_then(|c| c.get(key));
        self.ip = match field("ip_address") {
            Some(Node::Str(s)) => s.trim().parse().ok(),
            _ => None,
        };
        put(
            &mut self.ua,
            match field("ua") {
                Some(Node::Str(s)) if !s.trim().is_empty() => Some(s.as_ref()),
                _ => None,
            },
        );
        text(&mut self.session, field("session_id"));
        if self.session.as_deref() == Some("0") {
            self.session = None;
        }
        self.by_app = !matches!(field("app"), None | Some(Node::Null));
    }
}

impl Facts {
    fn read(&mut self, plan: &entry::Plan<'_>, fetched_at: DateTime<Utc>) {
        fn text(slot: &mut Option<String>, value: Option<&str>) {
            match value.map(str::trim).filter(|v| !v.is_empty()) {
                Some(v) => {
                    let s = slot.get_or_insert_with(String::new);
                    s.clear();
                    s.push_str(v);
                }
                None => *slot = None,
            }
        }
        fn node(slot: &mut Option<String>, value: Option<&tree::Node<'_>>) {
            match value {
                Some(tree::Node::Str(v)) => text(slot, Some(v)),
                Some(tree::Node::Number(n)) => *slot = Some(n.to_string()),
                _ => *slot = None,
            }
        }
        text(&mut self.action, plan.action.as_deref());
        text(
            &mut self.user_agent,
            plan.context.as_ref().and_then(|c| c.ua.as_deref()),
        );
        text(&mut self.user_id, plan.user[0].as_deref());
        text(&mut self.event_id, plan.id.as_deref());
        self.timestamp_ms = plan
            .timestamp
            .map_or(fetched_at.timestamp_millis(), |t| t.micros.div_euclid(1000));
        // As `render::write_entity` lays the entity out: the typed object's keys win, then
        // the entity's own, minus the one naming the type.
        let entity = plan.entity.as_ref();
        let field = |key: &str| {
            entity.and_then(|e| match e.typed.filter(|t| t.contains_key(key)) {
                Some(t) => t.get(key),
                None if e.kind != Some(key) && key != "type" => e.all.get(key),
                None => None,
            })
        };
        node(&mut self.entity_id, field("id"));
        node(&mut self.entity_name, field("name"));
    }
}

/// Maps entries; holds what is loaded once (databases, user-agent rules) and the caches.
#[derive(Debug)]
pub struct Mapper {
    common: render::Common,
    user_agents: user_agent::UserAgents,
    geoip: geoip::GeoIp,
    /// The last fetch time and its text: a page shares one, so it is formatted once.
    created: Option<(DateTime<Utc>, String)>,
    /// Reused output buffer for [`Mapper::map_entry`].
    scratch: Vec<u8>,
}

impl Mapper {
    /// Loads what the options name.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for a database that cannot be opened or is of the wrong kind.
    pub fn new(config: &MappingConfig) -> Result<Mapper, ConfigError> {
        let mut tags: Vec<&str> = config.tags.iter().map(String::as_str).collect();
        let plain = (!tags.is_empty()).then(|| json!(tags).to_string());
        if !tags.contains(&render::PRESERVE_TAG) {
            tags.push(render::PRESERVE_TAG);
        }
        let preserved = json!(tags).to_string();
        let common = render::Common {
            tags: if config.preserve_original_event {
                Some(preserved.clone())
            } else {
                plain
            },
            error_tags: preserved,
            data_stream:
                json!({ "type": "logs", "dataset": render::DATASET, "namespace": config.namespace })
                    .to_string(),
            preserve_original: config.preserve_original_event,
        };
        let user_agents =
            user_agent::UserAgents::new().map_err(|message| ConfigError::Invalid {
                flag: "(built-in user-agent rules)",
                message,
            })?;
        let geoip = geoip::GeoIp::open(config.geoip_city.as_deref(), config.geoip_asn.as_deref())?;
        Ok(Mapper {
            common,
            user_agents,
            geoip,
            created: None,
            scratch: Vec::with_capacity(4096),
        })
    }

    /// The GeoIP databases it opened (the detections share them).
    pub(crate) fn geoip(&self) -> &geoip::GeoIp {
        &self.geoip
    }

    /// Maps one raw entry (its JSON text) to exactly one document, never failing.
    pub fn map_entry(&mut self, raw: &str, fetched_at: DateTime<Utc>) -> Value {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        self.write_entry(raw, fetched_at, &mut buf);
        let doc = self.parse_written(&buf, raw, fetched_at);
        self.scratch = buf;
        doc
    }

    /// Like [`Mapper::map_entry`] for bytes that may not be UTF-8 (a `pipeline_error` then).
    pub fn map_entry_bytes(&mut self, raw: &[u8], fetched_at: DateTime<Utc>) -> Value {
        match std::str::from_utf8(raw) {
            Ok(text) => self.map_entry(text, fetched_at),
            Err(e) => {
                let text = String::from_utf8_lossy(raw);
                let mut buf = Vec::new();
                self.write_not_an_entry(
                    &text,
                    &format!("entry: not UTF-8 ({e})"),
                    fetched_at,
                    &mut buf,
                );
                self.parse_written(&buf, &text, fetched_at)
            }
        }
    }

    /// Appends the document for one raw entry to `out` as JSON text (no newline).
    pub(crate) fn write_entry(
        &mut self,
        raw: &str,
        fetched_at: DateTime<Utc>,
        out: &mut Vec<u8>,
    ) -> DocKind {
        match serde_json::from_str::<tree::Node>(raw) {
            Ok(tree::Node::Object(entry)) => self.write_object(&entry, raw, fetched_at, out),
            Ok(other) => {
                let message = format!(
                    "entry: expected a JSON object, got {}",
                    entry::describe(&other)
                );
                self.write_not_an_entry(raw, &message, fetched_at, out)
            }
            Err(e) => {
                self.write_not_an_entry(raw, &format!("entry: not JSON ({e})"), fetched_at, out)
            }
        }
    }

    /// [`Mapper::write_entry`], also filling `facts` from the entry (all `None` for input that
    /// is not an entry).
    pub(crate) fn write_entry_noting(
        &mut self,
        raw: &str,
        fetched_at: DateTime<Utc>,
        out: &mut Vec<u8>,
        facts: &mut Facts,
    ) -> DocKind {
        match serde_json::from_str::<tree::Node>(raw) {
            Ok(tree::Node::Object(entry)) => {
                self.set_created(fetched_at);
                let plan = entry::Plan::read(&entry);
                facts.read(&plan, fetched_at);
                facts.detect.read(&entry);
                self.render(&plan, raw, out)
            }
            _ => {
                facts.detect.action = None;
                *facts = Facts {
                    timestamp_ms: fetched_at.timestamp_millis(),
                    detect: std::mem::take(&mut facts.detect),
                    ..Facts::default()
                };
                self.write_entry(raw, fetched_at, out)
            }
        }
    }

    /// Appends the document for an entry that is already parsed; `raw` is its text.
    pub(crate) fn write_object(
        &mut self,
        entry: &tree::Obj<'_>,
        raw: &str,
        fetched_at: DateTime<Utc>,
        out: &mut Vec<u8>,
    ) -> DocKind {
        self.set_created(fetched_at);
        let plan = entry::Plan::read(entry);
        self.render(&plan, raw, out)
    }

    /// Writes the document `plan` decided; `set_created` has run for this entry.
    fn render(&mut self, plan: &entry::Plan<'_>, raw: &str, out: &mut Vec<u8>) -> DocKind {
        let inputs = render::Inputs {
            raw,
            created: self.created.as_ref().map_or("", |(_, text)| text),
            common: &self.common,
            user_agents: &mut self.user_agents,
            geoip: &mut self.geoip,
        };
        render::document(plan, inputs, out);
        DocKind::Event
    }

    /// Appends a `pipeline_error` document for `raw`, with `message` as its one problem.
    pub(crate) fn write_not_an_entry(
        &mut self,
        raw: &str,
        message: &str,
        fetched_at: DateTime<Utc>,
        out: &mut Vec<u8>,
    ) -> DocKind {
        self.set_created(fetched_at);
        let created = self.created.as_ref().map_or("", |(_, text)| text);
        render::pipeline_error(raw, message, created, &self.common, out);
        DocKind::PipelineError
    }

    /// Frees what only new input needs (the compiled user-agent rules) if the input since the
    /// last call brought nothing new. See [`user_agent::UserAgents::release_if_unused`].
    pub(crate) fn release_if_unused(&mut self) -> bool {
        self.user_agents.release_if_unused()
    }

    /// Frees what only new input needs, now (the poller is caught up and waiting).
    pub(crate) fn release(&mut self) -> bool {
        self.user_agents.release()
    }

    /// Parses a written document. The writer only emits valid JSON; should that ever fail,
    /// the caller still gets one document (a `pipeline_error` naming the defect), not a panic.
    fn parse_written(&mut self, written: &[u8], raw: &str, fetched_at: DateTime<Utc>) -> Value {
        serde_json::from_slice(written).unwrap_or_else(|e| {
            let mut buf = Vec::new();
            self.write_not_an_entry(
                raw,
                &format!("entry: internal error writing the document ({e})"),
                fetched_at,
                &mut buf,
            );
            serde_json::from_slice(&buf).unwrap_or(Value::Null)
        })
    }

    fn set_created(&mut self, fetched_at: DateTime<Utc>) {
        if !matches!(&self.created, Some((at, _)) if *at == fetched_at) {
            self.created = Some((fetched_at, timestamp::format_datetime(&fetched_at, 3)));
        }
    }
}

#[cfg(test)]
mod tests;
