//! The detection engine: rules over raw Slack audit entries (not only anomalies) that find
//! high-risk activity — privilege changes, authentication and data-protection settings, apps,
//! exports — and, with state, brute force, activity after deactivation, mass session resets,
//! sessions moving networks and logins from a new country.
//!
//! Input is one raw entry in the API's shape (`&serde_json::Value`), or a batch of them; output
//! is finding documents ([`document`]). Rules are data in the rules file ([`model`], loaded by
//! `rules.rs`); field paths and conditions are in [`paths`]; state, with its caps, in
//! [`state`]; the stateful kinds in [`stateful`].
//!
//! **Determinism.** Only event time is read, never the clock. A batch is evaluated in
//! event-time order (ties by id), so a batch in Slack's newest-first order gives byte for byte
//! what the same batch oldest first gives. Across batches every stateful decision depends only
//! on the set of events seen, not on their order: a threshold fires for a dedup period when
//! some window ending in that period holds `count` events; a sequence when a `then` entry has
//! `count` `first` entries within `within` before it; a session rule when the session has been
//! seen from two networks. Each check runs again when an older event arrives late, so both
//! orders fire the same findings (the evidence named is what had been seen when it fired).
//! The one exception is `unless`: a cancelling entry that arrives after its sequence already
//! fired cannot retract the finding (pages arrive contiguous in time, so this needs pages
//! out of order).
//!
//! **Not wired yet.** The pipeline feeds this engine once its restructuring lands; until then
//! only the rules file (validation, `--print-default-rules`) and the tests use it.

pub mod document;
pub mod entry;
pub mod geo;
pub mod model;
pub mod paths;
pub mod state;
mod stateful;

#[cfg(test)]
mod tests;

use crate::analysis::allowlist::Allowlist;
use crate::analysis::rules::RuleSet;
use document::Hit;
use entry::Facts;
use geo::GeoLookup;
use model::{DetectionRule, RuleKind, SessionCheck};
use serde_json::{json, Value};
use state::{DetectState, Reach};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Emitted dedup keys outlive their period by this much (event time), so that a late-indexed
/// or re-read entry cannot fire the same finding twice.
pub const EMITTED_SLACK_SECS: i64 = 8 * 86_400;

/// What the pipeline needs to hand an entry to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interest {
    /// A rule names this action (or a sequence step takes any action).
    pub rules: bool,
    /// Session tracking reads this entry's `context` (session id, IP, UA, actor).
    pub session: bool,
}

impl Interest {
    /// Either.
    pub fn any(self) -> bool {
        self.rules || self.session
    }
}

/// A rule that is off, and why (said once when the detector is built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Off {
    /// The rule.
    pub rule: String,
    /// Why.
    pub why: &'static str,
}

/// The detection engine with its state.
pub struct Detector {
    rules: Arc<RuleSet>,
    allowlist: Arc<Allowlist>,
    geo: Box<dyn GeoLookup>,
    state: DetectState,
    /// Indexes of rules in force (the new-country rule is off without a country lookup).
    active: Vec<usize>,
    off: Vec<Off>,
    actions: HashSet<String>,
    any_action: bool,
    network_rules: bool,
    country_rules: bool,
    reach: BTreeMap<String, i64>,
    country_secs: i64,
    dedup_secs: i64,
    allowlist_empty: bool,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("rules", &self.active.len())
            .field("off", &self.off)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// A detector over `rules`' detection rules, resuming from `state` (from
    /// [`Detector::state`] earlier). Logs once, at warn level, each rule that is off.
    pub fn new(
        rules: Arc<RuleSet>,
        allowlist: Arc<Allowlist>,
        geo: Box<dyn GeoLookup>,
        state: Option<DetectState>,
    ) -> Detector {
        let mut d = Detector {
            state: state.unwrap_or_default(),
            active: Vec::new(),
            off: Vec::new(),
            actions: HashSet::new(),
            any_action: false,
            network_rules: false,
            country_rules: false,
            reach: BTreeMap::new(),
            country_secs: 0,
            dedup_secs: 0,
            allowlist_empty: *allowlist == Allowlist::default(),
            rules,
            allowlist,
            geo,
        };
        for (i, rule) in d.rules.detections.rules.iter().enumerate() {
            let mut reach = 0;
            match &rule.kind {
                RuleKind::Event { matcher, .. } => {
                    d.actions.extend(matcher.actions.iter().cloned())
                }
                RuleKind::Threshold {
                    matcher,
                    window_secs,
                    ..
                } => {
                    d.actions.extend(matcher.actions.iter().cloned());
                    reach = *window_secs;
                }
                RuleKind::Sequence {
                    first,
                    then,
                    within_secs,
                    unless,
                } => {
                    d.actions.extend(first.matcher.actions.iter().cloned());
                    d.actions.extend(then.matcher.actions.iter().cloned());
                    d.actions.extend(unless.iter().cloned());
                    d.any_action |= then.matcher.actions.is_empty();
                    reach = *within_secs;
                }
                RuleKind::Session {
                    check: SessionCheck::NewCountry,
                    history_secs,
                } => {
                    if !d.geo.has_country() {
                        d.off.push(Off {
                            rule: rule.id.clone(),
                            why: "it needs a country database (--geoip-city)",
                        });
                        continue;
                    }
                    d.country_rules = true;
                    d.country_secs = d.country_secs.max(*history_secs);
                }
                RuleKind::Session { .. } => d.network_rules = true,
            }
            d.dedup_secs = d.dedup_secs.max(rule.dedup_secs);
            d.reach
                .insert(rule.id.clone(), reach.saturating_add(rule.dedup_secs));
            d.active.push(i);
        }
        for off in &d.off {
            tracing::warn!(rule = %off.rule, "detection rule {} is off: {}", off.rule, off.why);
        }
        d
    }

    /// Rules that are off, and why.
    pub fn off(&self) -> &[Off] {
        &self.off
    }

    /// The state to save with the checkpoint.
    pub fn state(&self) -> &DetectState {
        &self.state
    }

    /// Whether any rule in force needs an entry with this action: a cheap test (one hash
    /// lookup) so the pipeline can skip the rest.
    pub fn interest(&self, action: &str) -> Interest {
        Interest {
            rules: self.any_action || self.actions.contains(action),
            session: self.network_rules || (self.country_rules && action == "user_login"),
        }
    }

    /// Evaluates one batch (a page, or any run of entries): in event-time order whatever the
    /// order given, then prunes the state. Returns the finding documents.
    pub fn evaluate_batch(&mut self, entries: &[Value]) -> Vec<Value> {
        let mut facts: Vec<Facts<'_>> = entries
            .iter()
            .filter(|e| e.is_object())
            .map(Facts::read)
            .collect();
        // Entries without a time first (they touch no window), then by time; ties by id and
        // then content, so the order never depends on arrival.
        facts.sort_by(|a, b| {
            (a.at, &a.id)
                .cmp(&(b.at, &b.id))
                .then_with(|| a.entry.to_string().cmp(&b.entry.to_string()))
        });
        let mut out = Vec::new();
        for f in &facts {
            out.extend(self.evaluate_facts(f));
        }
        self.state.batches = self.state.batches.saturating_add(1);
        self.state.prune(&Reach {
            per_rule: &self.reach,
            country_secs: self.country_secs,
            dedup_secs: self.dedup_secs,
        });
        out
    }

    /// Evaluates one entry as a batch of its own.
    pub fn evaluate(&mut self, entry: &Value) -> Vec<Value> {
        self.evaluate_batch(std::slice::from_ref(entry))
    }

    fn evaluate_facts(&mut self, f: &Facts<'_>) -> Vec<Value> {
        let interest = self.interest(f.action);
        if !interest.any() {
            if let Some(at) = f.at {
                self.state.high_water = Some(self.state.high_water.map_or(at, |h| h.max(at)));
            }
            return Vec::new();
        }
        if self.globally_excluded(f) {
            return Vec::new();
        }
        if let Some(at) = f.at {
            self.state.high_water = Some(self.state.high_water.map_or(at, |h| h.max(at)));
        }
        let rules = self.rules.clone();
        let mut hits: Vec<Hit<'_>> = Vec::new();
        if interest.session {
            stateful::track_session(self, f);
        }
        for n in 0..self.active.len() {
            let i = self.active[n];
            let rule = &rules.detections.rules[i];
            if rule_allows(rule, f) {
                continue;
            }
            let found = match &rule.kind {
                RuleKind::Event { matcher, key } => {
                    if matcher.matches(f.action, f.entry) {
                        event_hit(self, rule, *key, f)
                    } else {
                        Vec::new()
                    }
                }
                RuleKind::Threshold { .. } => stateful::threshold(self, rule, f),
                RuleKind::Sequence { .. } => stateful::sequence(self, rule, f),
                RuleKind::Session {
                    check,
                    history_secs,
                } => stateful::session(self, rule, *check, *history_secs, f),
            };
            hits.extend(found);
        }
        hits.iter().map(Hit::to_document).collect()
    }

    /// The allowlist's `excluded_users` applies to every rule: an entry by an excluded actor is
    /// not evaluated (a sequence step keyed on the target also skips an excluded target).
    fn globally_excluded(&self, f: &Facts<'_>) -> bool {
        f.actor.as_ref().is_some_and(|p| self.is_excluded(p))
    }

    /// Whether a person is in the allowlist's `excluded_users`.
    fn is_excluded(&self, p: &entry::Person) -> bool {
        if self.allowlist_empty {
            return false;
        }
        let doc = json!({"user": {"id": p.id, "email": p.email}});
        self.allowlist
            .matches(&doc)
            .is_some_and(|m| m.kind == "excluded_user")
    }

    /// Whether session tracking should skip this network (a trusted CIDR or ASN).
    fn trusted_network(&self, ip: std::net::IpAddr, asn: Option<u64>) -> bool {
        if self.allowlist_empty {
            return false;
        }
        let doc = json!({"source": {"ip": ip.to_string(), "as": {"number": asn}}});
        self.allowlist
            .matches(&doc)
            .is_some_and(|m| m.kind == "cidr" || m.kind == "asn")
    }

    /// Records a dedup key; false when it was there already.
    fn claim(&mut self, key: &str, period_start: i64) -> bool {
        if self.state.emitted.contains_key(key) {
            return false;
        }
        self.state.emitted.insert(key.to_string(), period_start);
        true
    }
}

/// The rule's own allowlist: actors (id or email) and app ids.
fn rule_allows(rule: &DetectionRule, f: &Facts<'_>) -> bool {
    if rule.allow_users.is_empty() && rule.allow_apps.is_empty() {
        return false;
    }
    let actor = f.actor.iter().any(|a| {
        rule.allow_users.contains(&a.id.to_ascii_lowercase())
            || a.email
                .as_ref()
                .is_some_and(|e| rule.allow_users.contains(&e.to_ascii_lowercase()))
    });
    actor || f.apps.iter().any(|a| rule.allow_apps.contains(*a))
}

/// Start of the dedup period holding `at`.
fn period(at: i64, secs: i64) -> i64 {
    at - at.rem_euclid(secs.max(1))
}

/// Severity after escalations (the highest that matches; never lower than the base).
fn severity(rule: &DetectionRule, entry: &Value) -> (crate::analysis::rules::Severity, u8) {
    rule.escalate
        .iter()
        .filter(|e| e.matcher.conditions(entry))
        .map(|e| (e.severity, e.risk_score))
        .fold((rule.severity, rule.risk_score), |best, e| {
            if e.0 > best.0 {
                e
            } else {
                best
            }
        })
}

fn event_hit<'r>(
    d: &mut Detector,
    rule: &'r DetectionRule,
    key_by: model::KeyBy,
    f: &Facts<'_>,
) -> Vec<Hit<'r>> {
    // An entry without the key (no entity, say) is still evaluated: it is its own key.
    let (key_by, key) = match f.key(key_by) {
        Some(k) => (key_by, k),
        None => (model::KeyBy::Event, f.id.clone()),
    };
    // No time: the newest time seen stands in (event data, never the clock).
    let at = f.at.or(d.state.high_water).unwrap_or(0);
    let start = period(at, rule.dedup_secs);
    let dedupe_key = format!("{}|{key}|{start}", rule.id);
    if !d.claim(&dedupe_key, start) {
        return Vec::new();
    }
    let (severity, risk_score) = severity(rule, f.entry);
    vec![Hit {
        rule,
        dedupe_key,
        key: (key_by.as_str(), key),
        severity,
        risk_score,
        actor: f.actor.clone(),
        target: f.target.clone(),
        evidence: vec![f.ev(at)],
        at,
        ips: f.ip.iter().map(ToString::to_string).collect(),
        sessions: f.session.iter().cloned().collect(),
        missing: f.missing.clone(),
        facts: serde_json::Map::new(),
    }]
}
