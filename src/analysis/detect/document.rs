//! Detection findings as ECS alert documents, in the analysis's finding format.
//!
//! The document is built by [`crate::analysis::finding::Finding::to_document`], so it has the
//! same shape as every other finding; this module then sets what a detection adds: its own
//! `event.id`, `event.action` and `event.reason`, `rule.category`/`reference`/`version`,
//! `threat.*` (MITRE ATT&CK), `user.target.*`, and `slack.audit.analysis.detection`.
//! Everything comes from event data, so the same evidence gives the same document.

use super::entry::Person;
use super::model::{DetectionRule, Threat};
use super::state::Ev;
use crate::analysis::fields::{self, stable_id};
use crate::analysis::finding::{Actor, Finding, Kind, MAX_CONTRIBUTING};
use crate::analysis::rules::Severity;
use crate::doc::{value_at, Doc};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// `slack.audit.analysis.finding.type` of detections.
pub const FINDING_TYPE: &str = "detection";

/// Everything a detection finding says.
#[derive(Debug, Clone)]
pub struct Hit<'r> {
    /// The rule.
    pub rule: &'r DetectionRule,
    /// The dedup key (`rule|key|period start`).
    pub dedupe_key: String,
    /// What the key is (`actor`, `session`, …) and its value.
    pub key: (&'static str, String),
    /// Severity, escalated or not.
    pub severity: Severity,
    /// Risk score to go with it.
    pub risk_score: u8,
    /// The actor of the entry that fired it.
    pub actor: Option<Person>,
    /// The user acted on.
    pub target: Option<Person>,
    /// The evidence, oldest first.
    pub evidence: Vec<Ev>,
    /// `@timestamp`: the newest evidence (Unix s).
    pub at: i64,
    /// Source IPs seen; the newest first.
    pub ips: Vec<String>,
    /// Session ids involved.
    pub sessions: Vec<String>,
    /// What the entry that fired it lacked.
    pub missing: Vec<&'static str>,
    /// Kind-specific facts for `slack.audit.analysis.detection`.
    pub facts: Map<String, Value>,
}

impl Hit<'_> {
    /// `event.id`: a hash of the dedup key and the evidence.
    pub fn id(&self) -> String {
        let mut parts: Vec<&str> = vec![FINDING_TYPE, &self.dedupe_key];
        parts.extend(self.evidence.iter().map(|e| e.id.as_str()));
        stable_id(&parts)
    }

    /// The ECS document.
    pub fn to_document(&self) -> Value {
        let start = self.evidence.first().map_or(self.at, |e| e.at);
        let actor = self.actor.clone().unwrap_or_default();
        let contributing: BTreeSet<String> = self
            .evidence
            .iter()
            .rev()
            .take(MAX_CONTRIBUTING)
            .map(|e| e.id.clone())
            .collect();
        let finding = Finding {
            kind: Kind::Correlation,
            rule_id: self.rule.id.clone(),
            rule_name: self.rule.name.clone(),
            rule_description: self.rule.description.clone(),
            severity: self.severity,
            risk_score: self.risk_score,
            actor: Actor {
                id: if actor.id.is_empty() {
                    "unknown".into()
                } else {
                    actor.id.clone()
                },
                email: actor.email.clone(),
                full_name: actor.name.clone(),
            },
            start,
            end: self.at,
            at_ms: self.at.saturating_mul(1000),
            reasons: BTreeSet::new(),
            matched: BTreeSet::new(),
            contributing,
            ips: self.ips.iter().cloned().collect(),
            source_ip: self.ips.first().cloned(),
            downloads: None,
            supersedes: Vec::new(),
            suppressed: Vec::new(),
            baseline: None,
        };
        let mut doc = finding.to_document();
        let id = self.id();
        let set = |doc: &mut Value, path: &[&str], v: Value| {
            doc.set(path, v);
        };
        set(&mut doc, &["event", "id"], json!(id));
        set(
            &mut doc,
            &["event", "action"],
            json!(format!("detection_{}", self.rule.kind.as_str())),
        );
        set(&mut doc, &["event", "reason"], json!(self.reason()));
        set(&mut doc, &["rule", "category"], json!(self.rule.category));
        set(&mut doc, &["rule", "version"], json!(self.rule.version));
        if let Some(r) = &self.rule.reference {
            set(&mut doc, &["rule", "reference"], json!(r));
        }
        set(&mut doc, &["threat"], threat(&self.rule.threat));
        if let Some(t) = &self.target {
            let mut target = Map::new();
            target.insert("id".into(), json!(t.id));
            if let Some(e) = &t.email {
                target.insert("email".into(), json!(e));
            }
            if let Some(n) = &t.name {
                target.insert("full_name".into(), json!(n));
            }
            set(&mut doc, &["user", "target"], Value::Object(target));
            let mut related: Vec<Value> = value_at(&doc, &["related", "user"])
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for v in std::iter::once(&t.id).chain(t.email.as_ref()) {
                if !related.iter().any(|r| r.as_str() == Some(v.as_str())) {
                    related.push(json!(v));
                }
            }
            set(&mut doc, &["related", "user"], Value::Array(related));
        }
        let analysis = ["slack", "audit", "analysis"];
        if let Some(a) = value_at(&doc, &analysis).cloned() {
            let mut a = a;
            if let Some(obj) = a.as_object_mut() {
                // Anomaly reasons mean nothing for a detection.
                obj.remove("reasons");
                obj.remove("matched_reasons");
                obj.insert(
                    "finding".into(),
                    json!({
                        "type": FINDING_TYPE,
                        "dedupe_key": self.dedupe_key,
                        "window": {"start": fields::rfc3339(fields::from_millis(start * 1000)),
                                   "end": fields::rfc3339(fields::from_millis(self.at * 1000))},
                    }),
                );
                let mut detection = self.facts.clone();
                detection.insert("kind".into(), json!(self.rule.kind.as_str()));
                detection.insert(
                    "key".into(),
                    json!({"type": self.key.0, "value": self.key.1}),
                );
                detection.insert("event_count".into(), json!(self.evidence.len()));
                if !self.sessions.is_empty() {
                    detection.insert("session_ids".into(), json!(self.sessions));
                }
                if let Some(r) = self.rule.respond {
                    detection.insert("respond".into(), json!(r.as_str()));
                }
                obj.insert("detection".into(), Value::Object(detection));
                if !self.missing.is_empty() {
                    obj.insert("missing_fields".into(), json!(self.missing));
                }
            }
            set(&mut doc, &analysis, a);
        }
        doc
    }

    fn reason(&self) -> String {
        let who = self
            .actor
            .as_ref()
            .map(|a| a.email.clone().unwrap_or_else(|| a.id.clone()))
            .unwrap_or_else(|| "unknown actor".into());
        let mut s = format!("{who}: {}", self.rule.name);
        if let Some(t) = &self.target {
            s.push_str(&format!(
                " (target {})",
                t.email.as_deref().unwrap_or(&t.id)
            ));
        }
        if self.evidence.len() > 1 {
            s.push_str(&format!("; {} events", self.evidence.len()));
        }
        s
    }
}

fn threat(t: &Threat) -> Value {
    let technique_path = t.technique_id.replace('.', "/");
    json!({
        "framework": "MITRE ATT&CK",
        "tactic": {"id": [t.tactic_id], "name": [t.tactic],
                   "reference": [format!("https://attack.mitre.org/tactics/{}/", t.tactic_id)]},
        "technique": {"id": [t.technique_id], "name": [t.technique],
                      "reference": [format!("https://attack.mitre.org/techniques/{technique_path}/")]},
    })
}
