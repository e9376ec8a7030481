//! Raw Slack audit entry + fetch time → one ECS document, at parity with Elastic's Slack
//! integration 1.24.0 (`shared/docs/ecs-mapping.md`) and stricter about bad input.
//!
//! Pure: no I/O and no clock inside [`Mapper::map_entry`]; the fetch time is passed in. What is
//! loaded once lives in the [`Mapper`]: the user-agent rules and their cache, and the optional
//! GeoIP databases. Every input gives exactly one document and never a panic: an entry with
//! odd values is mapped as far as it goes with each problem in `error.message`; input that is
//! not a JSON object becomes a `pipeline_error` document carrying `event.original`.
//!
//! - [`entry`]: the field table (entry object → document).
//! - [`categorize`]: `event.action` → `event.category/type/outcome`.
//! - [`timestamp`], [`url`], [`user_agent`], [`geoip`]: one field family each.
//! - [`prune`]: drops empty values at the end.
//! - [`command`]: the `map` command (NDJSON or API responses on stdin, documents on stdout).

pub mod categorize;
pub mod command;
pub mod entry;
pub mod geoip;
pub mod prune;
#[cfg(test)]
pub(crate) mod testdb;
pub mod timestamp;
pub mod url;
pub mod user_agent;

pub use command::run_map;

use crate::config::ConfigError;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::path::PathBuf;

/// `--tags` when none are given.
pub const DEFAULT_TAGS: [&str; 2] = ["forwarded", "slack-audit"];
/// `--namespace` when none is given: Fleet's and Elastic Agent's default.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Mapping flags shared by `map` and `run`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MappingArgs {
    /// MaxMind-format city database (GeoLite2-City, GeoIP2-City or compatible) for
    /// source.geo.*; memory-mapped. Without it source.geo is left out.
    #[arg(long, env = "SLACK_AUDIT_GEOIP_CITY")]
    pub geoip_city: Option<PathBuf>,
    /// MaxMind-format ASN database (GeoLite2-ASN or compatible) for source.as.*; memory-mapped.
    /// Without it source.as is left out.
    #[arg(long, env = "SLACK_AUDIT_GEOIP_ASN")]
    pub geoip_asn: Option<PathBuf>,
    /// Keep each raw entry in event.original and add the tag preserve_original_event.
    #[arg(long, env = "SLACK_AUDIT_PRESERVE_ORIGINAL_EVENT")]
    pub preserve_original_event: bool,
    /// Tags on every document (comma-separated; empty items are ignored).
    #[arg(
        long,
        env = "SLACK_AUDIT_TAGS",
        value_delimiter = ',',
        default_value = "forwarded,slack-audit"
    )]
    pub tags: Vec<String>,
    /// data_stream.namespace: lowercase, at most 100 bytes, none of \ / * ? " < > | , # : - or space.
    #[arg(long, env = "SLACK_AUDIT_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// Arguments of `map`.
#[derive(Debug, Clone, clap::Args)]
pub struct MapArgs {
    /// Mapping options.
    #[command(flatten)]
    pub mapping: MappingArgs,
}

/// Validated mapping options.
#[derive(Debug, Clone, Default)]
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

impl MappingConfig {
    /// The defaults `run` uses, for the demo.
    pub fn default_for_demo() -> MappingConfig {
        MappingConfig {
            tags: DEFAULT_TAGS.map(String::from).to_vec(),
            namespace: DEFAULT_NAMESPACE.into(),
            ..Default::default()
        }
    }

    /// Validates mapping flags.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a namespace Elasticsearch would refuse as part of a data
    /// stream name (so the mistake shows at start, not as rejected writes).
    pub fn from_args(args: &MappingArgs) -> Result<MappingConfig, ConfigError> {
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

/// Maps entries; holds what is loaded once (databases, user-agent rules) and the caches.
#[derive(Debug)]
pub struct Mapper {
    common: entry::Common,
    user_agents: user_agent::UserAgents,
    geoip: geoip::GeoIp,
    /// The last fetch time and its text: a page shares one, so it is formatted once.
    created: Option<(DateTime<Utc>, String)>,
}

impl Mapper {
    /// Loads what the options name.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for a database that cannot be opened or is of the wrong kind.
    pub fn new(config: &MappingConfig) -> Result<Mapper, ConfigError> {
        let tags: Vec<Value> = config
            .tags
            .iter()
            .map(|t| Value::from(t.as_str()))
            .collect();
        let with_preserve = |mut tags: Vec<Value>| {
            if !tags.iter().any(|t| t == entry::PRESERVE_TAG) {
                tags.push(entry::PRESERVE_TAG.into());
            }
            tags
        };
        let common = entry::Common {
            tags: if config.preserve_original_event {
                with_preserve(tags.clone())
            } else {
                tags.clone()
            },
            error_tags: with_preserve(tags),
            data_stream: json!({ "type": "logs", "dataset": entry::DATASET, "namespace": config.namespace }),
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
        })
    }

    /// Maps one raw entry (its JSON text) to exactly one document, never failing.
    pub fn map_entry(&mut self, raw: &str, fetched_at: DateTime<Utc>) -> Value {
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(entry)) => self.map_object(entry, raw, fetched_at),
            Ok(other) => self.not_an_entry(
                raw,
                format!(
                    "entry: expected a JSON object, got {}",
                    entry::describe(&other)
                ),
                fetched_at,
            ),
            Err(e) => self.not_an_entry(raw, format!("entry: not JSON ({e})"), fetched_at),
        }
    }

    /// Like [`Mapper::map_entry`] for bytes that may not be UTF-8 (a `pipeline_error` then).
    pub fn map_entry_bytes(&mut self, raw: &[u8], fetched_at: DateTime<Utc>) -> Value {
        match std::str::from_utf8(raw) {
            Ok(text) => self.map_entry(text, fetched_at),
            Err(e) => {
                let text = String::from_utf8_lossy(raw);
                self.not_an_entry(&text, format!("entry: not UTF-8 ({e})"), fetched_at)
            }
        }
    }

    /// Maps an entry that is already parsed; `raw` is its text for `event.original`.
    pub fn map_object(
        &mut self,
        entry: serde_json::Map<String, Value>,
        raw: &str,
        fetched_at: DateTime<Utc>,
    ) -> Value {
        let created = self.created(fetched_at);
        let enrich = entry::Enrichers {
            user_agents: &mut self.user_agents,
            geoip: &mut self.geoip,
        };
        entry::map_entry(entry, raw, &created, &self.common, enrich)
    }

    /// A `pipeline_error` document for `raw`, with `message` as its one problem.
    pub fn not_an_entry(&mut self, raw: &str, message: String, fetched_at: DateTime<Utc>) -> Value {
        let created = self.created(fetched_at);
        entry::pipeline_error(raw, message, &created, &self.common)
    }

    fn created(&mut self, fetched_at: DateTime<Utc>) -> String {
        match &self.created {
            Some((at, text)) if *at == fetched_at => text.clone(),
            _ => {
                let text = timestamp::format_datetime(&fetched_at, 3);
                self.created = Some((fetched_at, text.clone()));
                text
            }
        }
    }
}

#[cfg(test)]
mod tests;
