//! Findings as ECS alert documents.
//!
//! A finding is built from what the state holds at the moment a rule or a baseline fires, and
//! everything in it comes from event data (never the clock), so the same input gives the same
//! document byte for byte, and its `event.id` can serve as the shipper's document id.

use super::fields::{from_millis, rfc3339, stable_id};
use super::rules::Severity;
use super::state::Downloads;
use crate::mapping::render::ECS_VERSION;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// `event.dataset` of findings: kept apart from `slack.audit` so that audit dashboards and
/// retention are not mixed with alerts, as Elastic does for its own alerts datasets.
pub(crate) const DATASET: &str = "slack.analysis";
/// Files named in a finding's context.
pub(crate) const MAX_CONTEXT_FILES: usize = 20;
/// Contributing event ids named in a finding.
pub(crate) const MAX_CONTRIBUTING: usize = 100;

/// What kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A rule over the reasons of one actor's window.
    Correlation,
    /// A day above the user's history.
    Baseline,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Correlation => "correlation",
            Kind::Baseline => "baseline",
        }
    }
}

/// The actor a finding is about.
#[derive(Debug, Clone, Default)]
pub(crate) struct Actor {
    /// `user.id`.
    pub(crate) id: String,
    /// `user.email`.
    pub(crate) email: Option<String>,
    /// `user.full_name`.
    pub(crate) full_name: Option<String>,
}

/// Baseline figures.
#[derive(Debug, Clone)]
pub(crate) struct BaselineFacts {
    /// The reason counted.
    pub(crate) reason: String,
    /// The day's count.
    pub(crate) count: u32,
    /// The user's highest count on an earlier day (0 with no history).
    pub(crate) user_max: u32,
    /// The org's highest count on an earlier day.
    pub(crate) org_max: u32,
    /// Days of history the user has.
    pub(crate) history_days: usize,
    /// Counts up to this never fire.
    pub(crate) floor: u32,
}

/// Everything a finding document says.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    /// Correlation or baseline.
    pub(crate) kind: Kind,
    /// `rule.id`.
    pub(crate) rule_id: String,
    /// `rule.name`.
    pub(crate) rule_name: String,
    /// `rule.description`.
    pub(crate) rule_description: String,
    /// Severity.
    pub(crate) severity: Severity,
    /// `event.risk_score`.
    pub(crate) risk_score: u8,
    /// The actor.
    pub(crate) actor: Actor,
    /// Window (or day) start, Unix s.
    pub(crate) start: i64,
    /// Window (or day) end, Unix s, exclusive.
    pub(crate) end: i64,
    /// `@timestamp`: the newest contributing event (Unix ms).
    pub(crate) at_ms: i64,
    /// All normalised reasons of the window.
    pub(crate) reasons: BTreeSet<String>,
    /// The reasons the rule matched on.
    pub(crate) matched: BTreeSet<String>,
    /// Ids of the contributing events, sorted.
    pub(crate) contributing: BTreeSet<String>,
    /// IPs of the contributing events; `source_ip` is the newest one.
    pub(crate) ips: BTreeSet<String>,
    /// `source.ip`.
    pub(crate) source_ip: Option<String>,
    /// The downloads context, when the rule asks for it.
    pub(crate) downloads: Option<Downloads>,
    /// Findings already emitted for this window that this one outranks.
    pub(crate) supersedes: Vec<String>,
    /// Rules that also matched but are outranked by this one.
    pub(crate) suppressed: Vec<String>,
    /// Baseline figures.
    pub(crate) baseline: Option<BaselineFacts>,
}

impl Finding {
    /// The once-per-actor-per-window key: rule, actor and window start.
    pub(crate) fn dedupe_key(&self) -> String {
        format!("{}|{}|{}", self.rule_id, self.actor.id, self.start)
    }

    /// `event.id`: a hash of the dedupe key and the contributing ids, so it is the same for the
    /// same evidence and different if a re-run over other data fires on other evidence.
    pub(crate) fn id(&self) -> String {
        let mut parts: Vec<&str> = vec![self.kind.as_str(), &self.rule_id, &self.actor.id];
        let start = self.start.to_string();
        parts.push(&start);
        parts.extend(self.contributing.iter().map(String::as_str));
        stable_id(&parts)
    }

    /// One line for `event.reason`.
    fn reason_text(&self) -> String {
        let who = self.actor.email.as_deref().unwrap_or(&self.actor.id);
        let mut s = match &self.baseline {
            Some(b) => format!(
                "{who}: {} {} anomalies on {} (UTC), above the user's previous daily maximum of {} and the org's of {}",
                b.count,
                b.reason,
                from_millis(self.start * 1000).format("%Y-%m-%d"),
                b.user_max,
                b.org_max
            ),
            None => format!("{who}: {} ({})", self.rule_name, self.matched.iter().cloned().collect::<Vec<_>>().join(", ")),
        };
        if let Some(d) = &self.downloads {
            let names: Vec<&str> = d
                .files
                .iter()
                .filter_map(|f| f.name.as_deref())
                .take(3)
                .collect();
            s.push_str(&format!("; {} file download(s)", d.count));
            if !names.is_empty() {
                s.push_str(&format!(" incl. {}", names.join(", ")));
            }
        }
        s
    }

    /// The ECS document.
    pub(crate) fn to_document(&self) -> Value {
        let id = self.id();
        let mut doc = json!({
            "@timestamp": rfc3339(from_millis(self.at_ms)),
            "ecs": {"version": ECS_VERSION},
            "event": {
                "kind": "alert",
                "id": id,
                "module": "slack",
                "dataset": DATASET,
                "action": format!("anomaly_{}", self.kind.as_str()),
                "category": ["threat"],
                "type": ["indicator"],
                "severity": self.severity.number(),
                "risk_score": self.risk_score,
                "reason": self.reason_text(),
                "start": rfc3339(from_millis(self.start * 1000)),
                "end": rfc3339(from_millis(self.end * 1000)),
            },
            "rule": {
                "id": self.rule_id,
                "name": self.rule_name,
                "description": self.rule_description,
                "category": self.kind.as_str(),
                "ruleset": "slack-audit-source",
            },
            "user": self.user_json(),
            "related": {"user": self.related_users()},
            "tags": ["slack-audit", "slack-analysis"],
            "slack": {"audit": {"analysis": self.analysis_json()}},
        });
        if let Some(obj) = doc.as_object_mut() {
            if let Some(ip) = &self.source_ip {
                obj.insert("source".into(), json!({"ip": ip}));
            }
            if !self.ips.is_empty() {
                if let Some(related) = obj.get_mut("related").and_then(Value::as_object_mut) {
                    related.insert("ip".into(), json!(self.ips));
                }
            }
        }
        doc
    }

    /// `slack.audit.analysis`: what fired, on what, and its context.
    fn analysis_json(&self) -> Value {
        let mut analysis = json!({
            "finding": {
                "type": self.kind.as_str(),
                "dedupe_key": self.dedupe_key(),
                "window": {"start": rfc3339(from_millis(self.start * 1000)), "end": rfc3339(from_millis(self.end * 1000))},
            },
            "severity": self.severity.as_str(),
            "reasons": self.reasons,
            "matched_reasons": self.matched,
            "contributing_event_ids": self.contributing.iter().take(MAX_CONTRIBUTING).collect::<Vec<_>>(),
        });
        let extra = [
            (
                "supersedes",
                (!self.supersedes.is_empty()).then(|| json!(self.supersedes)),
            ),
            (
                "suppressed_rules",
                (!self.suppressed.is_empty()).then(|| json!(self.suppressed)),
            ),
            (
                "context",
                self.downloads
                    .as_ref()
                    .map(|d| json!({"downloads": downloads_context(d)})),
            ),
            ("baseline", self.baseline.as_ref().map(baseline_json)),
        ];
        if let Some(obj) = analysis.as_object_mut() {
            obj.extend(
                extra
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v?))),
            );
        }
        analysis
    }

    /// `user`: the actor, with what the state knows of them.
    fn user_json(&self) -> Map<String, Value> {
        let mut user = Map::new();
        user.insert("id".into(), self.actor.id.clone().into());
        if let Some(e) = &self.actor.email {
            user.insert("email".into(), e.clone().into());
        }
        if let Some(n) = &self.actor.full_name {
            user.insert("full_name".into(), n.clone().into());
        }
        user
    }

    /// `related.user`: the actor's id, and their email when it differs.
    fn related_users(&self) -> Vec<Value> {
        let mut related_user = vec![Value::from(self.actor.id.clone())];
        if let Some(e) = &self.actor.email {
            if e != &self.actor.id {
                related_user.push(e.clone().into());
            }
        }
        related_user
    }
}

fn downloads_context(d: &Downloads) -> Value {
    let files: Vec<_> = d.files.iter().take(MAX_CONTEXT_FILES).collect();
    json!({
        "count": d.count,
        "file_ids": files.iter().filter_map(|f| f.id.clone()).collect::<Vec<_>>(),
        "file_names": files.iter().filter_map(|f| f.name.clone()).collect::<Vec<_>>(),
        "event_ids": files.iter().map(|f| f.event_id.clone()).collect::<Vec<_>>(),
        "truncated": (d.count as usize) > files.len(),
    })
}

fn baseline_json(b: &BaselineFacts) -> Value {
    json!({
        "reason": b.reason,
        "count": b.count,
        "user_max": b.user_max,
        "org_max": b.org_max,
        "history_days": b.history_days,
        "floor": b.floor,
    })
}
