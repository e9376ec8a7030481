//! Raw Slack audit entry + fetch time → ECS document. Pure: no I/O, no clock.
//!
//! INTERIM (issue 2): `event.id`, `@timestamp`, `event.action` and the raw entry under
//! `slack.audit`. The ECS mapping of issue 3 replaces the body of [`Mapper::map_entry`].

use crate::config::ConfigError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Mapping flags shared by `map` and `run`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MappingArgs {
    /// MaxMind-format city database for source.geo.*.
    #[arg(long, env = "SLACK_AUDIT_GEOIP_CITY")]
    pub geoip_city: Option<PathBuf>,
    /// MaxMind-format ASN database for source.as.*.
    #[arg(long, env = "SLACK_AUDIT_GEOIP_ASN")]
    pub geoip_asn: Option<PathBuf>,
    /// Keep the raw entry in event.original.
    #[arg(long, env = "SLACK_AUDIT_PRESERVE_ORIGINAL_EVENT")]
    pub preserve_original_event: bool,
    /// Tags on every document (comma-separated).
    #[arg(
        long,
        env = "SLACK_AUDIT_TAGS",
        value_delimiter = ',',
        default_value = "forwarded,slack-audit"
    )]
    pub tags: Vec<String>,
    /// data_stream.namespace.
    #[arg(long, env = "SLACK_AUDIT_NAMESPACE", default_value = "default")]
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
    /// City database.
    pub geoip_city: Option<PathBuf>,
    /// ASN database.
    pub geoip_asn: Option<PathBuf>,
    /// Keep event.original.
    pub preserve_original_event: bool,
    /// Tags.
    pub tags: Vec<String>,
    /// data_stream.namespace.
    pub namespace: String,
}

impl MappingConfig {
    /// The defaults `run` uses, for the demo.
    pub fn default_for_demo() -> MappingConfig {
        MappingConfig {
            tags: vec!["forwarded".into(), "slack-audit".into()],
            namespace: "default".into(),
            ..Default::default()
        }
    }

    /// Validates mapping flags.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the flag.
    pub fn from_args(args: &MappingArgs) -> Result<MappingConfig, ConfigError> {
        Ok(MappingConfig {
            geoip_city: args.geoip_city.clone(),
            geoip_asn: args.geoip_asn.clone(),
            preserve_original_event: args.preserve_original_event,
            tags: args.tags.clone(),
            namespace: args.namespace.clone(),
        })
    }
}

/// Maps entries; holds what is loaded once (databases, user-agent rules, caches).
#[derive(Debug)]
pub struct Mapper {
    config: MappingConfig,
}

impl Mapper {
    /// Loads what the options name.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for a database that cannot be opened.
    pub fn new(config: &MappingConfig) -> Result<Mapper, ConfigError> {
        Ok(Mapper {
            config: config.clone(),
        })
    }

    /// Maps one raw entry (its JSON text) to exactly one document, never failing.
    pub fn map_entry(&mut self, raw: &str, fetched_at: DateTime<Utc>) -> Value {
        let created = fetched_at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let _ = &self.config;
        match serde_json::from_str::<Value>(raw) {
            Ok(entry @ Value::Object(_)) => {
                let ts = entry
                    .get("date_create")
                    .and_then(Value::as_i64)
                    .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
                json!({
                    "@timestamp": ts.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)).unwrap_or(created.clone()),
                    "event": {"id": entry.get("id"), "action": entry.get("action"), "created": created, "kind": "event"},
                    "slack": {"audit": entry},
                })
            }
            _ => json!({
                "@timestamp": created,
                "event": {"kind": "pipeline_error", "original": raw, "created": created},
                "error": {"message": ["entry is not a JSON object"]},
                "tags": ["preserve_original_event"],
            }),
        }
    }
}

/// The `map` command: entries on stdin, documents on stdout.
///
/// # Errors
///
/// Unreadable databases; stdout closed.
pub async fn run_map(args: MapArgs) -> Result<(), crate::Error> {
    use std::io::{BufRead, Write};
    let mut mapper = Mapper::new(&MappingConfig::from_args(&args.mapping)?)?;
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let line = line.map_err(|e| crate::Error::Sink(crate::sink::Error::Stdout(e)))?;
        if line.trim().is_empty() {
            continue;
        }
        let doc = mapper.map_entry(&line, Utc::now());
        serde_json::to_writer(&mut out, &doc)
            .map_err(|e| crate::Error::Sink(crate::sink::Error::Stdout(e.into())))?;
        out.write_all(b"\n")
            .map_err(|e| crate::Error::Sink(crate::sink::Error::Stdout(e)))?;
    }
    out.flush()
        .map_err(|e| crate::Error::Sink(crate::sink::Error::Stdout(e)))?;
    Ok(())
}
