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
//! **Cost.** Rules are indexed by action at load ([`ActionIndex`]): an entry whose action no rule
//! names meets only the rules that take any action and session tracking, and those read a
//! few fields ([`Light`]) the mapper has already read, so the pipeline need not parse the entry
//! into a value. On that path nothing is allocated unless something is remembered.

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
pub use entry::Light;
use entry::{Facts, PersonRef};
use foldhash::{HashMap, HashSet};
use geo::GeoLookup;
use model::{DetectionRule, KeyBy, RuleKind, SessionCheck};
use serde_json::{json, Value};
use state::{DetectState, Reach};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the pipeline needs to hand an entry to the engine.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interest {
    /// A rule names this action (or a sequence step takes any action).
    pub rules: bool,
    /// Session tracking reads this entry's `context` (session id, IP, UA, actor).
    pub session: bool,
}

#[cfg(test)]
impl Interest {
    /// Either.
    pub fn any(self) -> bool {
        self.rules || self.session
    }
}

/// Rules this process has said are off.
static SAID_OFF: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A rule that is off, and why (said once, when the first detector is built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Off {
    /// The rule.
    pub rule: String,
    /// Why.
    pub why: &'static str,
}

/// One entry for [`Detector::evaluate_items`]: the entry as a value, or what the mapper read
/// of it.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// The entry.
    Entry(&'a Value),
    /// What the mapper read ([`Detector::needs_entry`] is false for its action).
    Light(Light<'a>),
}

/// Which rules look at which action, built once: an entry whose action no rule names costs
/// one hash lookup and the rules that take any action.
#[derive(Debug, Default)]
struct ActionIndex {
    /// Action → indexes of the rules in force that may fire on it, in file order.
    by_action: HashMap<String, Vec<usize>>,
    /// The rules for any other action: sequences whose `then` takes any action, and the
    /// session-network rules.
    other: Vec<usize>,
    /// Actions some rule reads more of than [`Light`] carries.
    needs_entry: HashSet<String>,
    /// A rule taking any action reads more than [`Light`] carries.
    any_needs_entry: bool,
}

/// Keys a [`Light`] entry carries.
fn light_key(k: KeyBy) -> bool {
    matches!(k, KeyBy::Actor | KeyBy::Ip | KeyBy::Session | KeyBy::Event)
}

impl ActionIndex {
    fn build(rules: &[DetectionRule], active: &[usize]) -> ActionIndex {
        let mut ix = ActionIndex::default();
        let mut named: Vec<(String, usize)> = Vec::new();
        for &i in active {
            let rule = &rules[i];
            // Escalations and app allowlists read the entry.
            let plain = rule.escalate.is_empty() && rule.allow_apps.is_empty();
            let mut name = |acts: &std::collections::BTreeSet<String>, light: bool| {
                for a in acts {
                    named.push((a.clone(), i));
                    if !light {
                        ix.needs_entry.insert(a.clone());
                    }
                }
            };
            match &rule.kind {
                RuleKind::Event { matcher, .. } => name(&matcher.actions, false),
                RuleKind::Threshold { matcher, key, .. } => name(
                    &matcher.actions,
                    plain && matcher.action_only() && light_key(*key),
                ),
                RuleKind::Sequence {
                    first,
                    then,
                    unless,
                    ..
                } => {
                    let step_light =
                        |s: &model::Step| plain && s.matcher.action_only() && light_key(s.key);
                    name(&first.matcher.actions, step_light(first));
                    name(unless, plain && light_key(first.key));
                    if then.matcher.actions.is_empty() {
                        ix.other.push(i);
                        ix.any_needs_entry |= !step_light(then);
                    } else {
                        name(&then.matcher.actions, step_light(then));
                    }
                }
                RuleKind::Session {
                    check: SessionCheck::Country,
                    ..
                } => named.push(("user_login".into(), i)),
                RuleKind::Session { .. } => ix.other.push(i),
            }
        }
        for (action, i) in named {
            ix.by_action.entry(action).or_default().push(i);
        }
        for list in ix.by_action.values_mut() {
            list.extend(&ix.other);
            list.sort_unstable();
            list.dedup();
        }
        ix.other.sort_unstable();
        ix
    }

    fn rules(&self, action: &str) -> &[usize] {
        self.by_action.get(action).unwrap_or(&self.other)
    }
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
    max_keys: BTreeMap<String, usize>,
    /// Rules whose key cap was hit since start (warned once each), with keys forgotten.
    capped: BTreeMap<String, u64>,
    country_secs: i64,
    dedup_secs: i64,
    allowlist_empty: bool,
    index: Arc<ActionIndex>,
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
    /// [`Detector::state`] earlier). Logs at warn level each rule that is off, once per process.
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
            actions: HashSet::default(),
            any_action: false,
            network_rules: false,
            country_rules: false,
            reach: BTreeMap::new(),
            max_keys: BTreeMap::new(),
            capped: BTreeMap::new(),
            country_secs: 0,
            dedup_secs: 0,
            allowlist_empty: *allowlist == Allowlist::default(),
            index: Arc::default(),
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
                    check: SessionCheck::Country,
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
            d.max_keys.insert(rule.id.clone(), rule.max_keys);
            d.active.push(i);
        }
        d.index = Arc::new(ActionIndex::build(&d.rules.detections.rules, &d.active));
        for off in &d.off {
            // Once per process: `demo` builds its run twice, and a warning said twice reads
            // as two problems.
            let first = SAID_OFF
                .lock()
                .map_or(true, |mut said| said.insert(off.rule.clone()));
            if first {
                tracing::warn!(rule = %off.rule, "detection rule {} is off: {}", off.rule, off.why);
            }
        }
        d
    }

    #[cfg(test)]
    /// Rules that are off, and why.
    pub fn off(&self) -> &[Off] {
        &self.off
    }

    /// The state to save with the checkpoint.
    pub fn state(&self) -> &DetectState {
        &self.state
    }

    #[cfg(test)]
    /// Whether any rule in force needs an entry with this action: a cheap test (one hash
    /// lookup) so the pipeline can skip the rest.
    pub fn interest(&self, action: &str) -> Interest {
        Interest {
            rules: self.any_action || self.actions.contains(action),
            session: self.network_rules || (self.country_rules && action == "user_login"),
        }
    }

    /// Whether an entry with this action must come as a value ([`Item::Entry`]): some rule
    /// that looks at it reads more than [`Light`] carries (conditions, the target, apps).
    pub fn needs_entry(&self, action: &str) -> bool {
        self.index.any_needs_entry || self.index.needs_entry.contains(action)
    }

    #[cfg(test)]
    /// Evaluates one batch (a page, or any run of entries): in event-time order whatever the
    /// order given, then prunes the state. Returns the finding documents.
    pub fn evaluate_batch(&mut self, entries: &[Value]) -> Vec<Value> {
        let facts: Vec<Facts<'_>> = entries
            .iter()
            .filter(|e| e.is_object())
            .map(Facts::read)
            .collect();
        self.evaluate_facts_batch(facts)
    }

    /// [`Detector::evaluate_batch`] over entries as values or as what the mapper read.
    pub fn evaluate_items(&mut self, items: &[Item<'_>]) -> Vec<Value> {
        let facts: Vec<Facts<'_>> = items
            .iter()
            .filter_map(|item| match item {
                Item::Entry(e) => e.is_object().then(|| Facts::read(e)),
                Item::Light(l) => Some(Facts::light(l)),
            })
            .collect();
        self.evaluate_facts_batch(facts)
    }

    fn evaluate_facts_batch(&mut self, facts: Vec<Facts<'_>>) -> Vec<Value> {
        // Entries without a time first (they touch no window), then by time; ties by id and
        // then content, so the order never depends on arrival. References are sorted: the
        // facts are large, and moving them cost more than the sort's comparisons.
        let mut order: Vec<&Facts<'_>> = facts.iter().collect();
        order.sort_by(|a, b| {
            (a.at, &a.id).cmp(&(b.at, &b.id)).then_with(|| {
                a.entry
                    .map(Value::to_string)
                    .cmp(&b.entry.map(Value::to_string))
            })
        });
        let mut out = Vec::new();
        for f in order {
            out.extend(self.evaluate_facts(f));
        }
        self.state.batches = self.state.batches.saturating_add(1);
        let capped = self.state.prune(&Reach {
            per_rule: &self.reach,
            country_secs: self.country_secs,
            dedup_secs: self.dedup_secs,
            max_keys: &self.max_keys,
        });
        for (rule, forgot) in capped {
            let cap = self.max_keys.get(&rule).copied().unwrap_or_default();
            let total = self.capped.entry(rule.clone()).or_default();
            if *total == 0 {
                // Once per rule per start: a flood would otherwise warn on every page.
                tracing::warn!(
                    rule = %rule,
                    max_keys = cap,
                    "detection rule {rule} holds events for more keys than its max_keys ({cap}): the least recently active keys are forgotten (said once per rule until restart)"
                );
            }
            *total = total.saturating_add(forgot as u64);
        }
        out
    }

    #[cfg(test)]
    /// Keys each rule forgot at its cap since start.
    pub fn capped(&self) -> &BTreeMap<String, u64> {
        &self.capped
    }

    #[cfg(test)]
    /// Evaluates one entry as a batch of its own.
    pub fn evaluate(&mut self, entry: &Value) -> Vec<Value> {
        self.evaluate_batch(std::slice::from_ref(entry))
    }

    fn evaluate_facts(&mut self, f: &Facts<'_>) -> Vec<Value> {
        // One lookup: the rules for this action include the session rules that apply to it,
        // so an empty list is what `interest(action).any()` is false for.
        let index = self.index.clone();
        let list = index.rules(f.action);
        if list.is_empty() {
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
        if self.network_rules || (self.country_rules && f.action == "user_login") {
            stateful::track_session(self, f);
        }
        for &i in list {
            let rule = &rules.detections.rules[i];
            if rule_allows(rule, f) {
                continue;
            }
            let found = match &rule.kind {
                RuleKind::Event { matcher, key } => {
                    if f.matches(matcher) {
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
    fn is_excluded(&self, p: &PersonRef<'_>) -> bool {
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
            .is_some_and(|m| matches!(m.kind, "cidr" | "asn" | "slack_cidr" | "slack_asn"))
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
fn severity(rule: &DetectionRule, f: &Facts<'_>) -> (crate::analysis::rules::Severity, u8) {
    rule.escalate
        .iter()
        .filter(|e| f.entry.is_some_and(|entry| e.matcher.conditions(entry)))
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
        Some(k) => (key_by, k.into_owned()),
        None => (model::KeyBy::Event, f.id.to_string()),
    };
    // No time: the newest time seen stands in (event data, never the clock).
    let at = f.at.or(d.state.high_water).unwrap_or(0);
    let start = period(at, rule.dedup_secs);
    let dedupe_key = format!("{}|{key}|{start}", rule.id);
    if !d.claim(&dedupe_key, start) {
        return Vec::new();
    }
    let (severity, risk_score) = severity(rule, f);
    vec![Hit {
        rule,
        dedupe_key,
        key: (key_by.as_str(), key),
        severity,
        risk_score,
        actor: f.actor.as_ref().map(PersonRef::to_person),
        target: f.target.as_ref().map(PersonRef::to_person),
        evidence: vec![f.ev(at)],
        at,
        ips: f.ip.iter().map(ToString::to_string).collect(),
        sessions: f.session.iter().map(|s| s.to_string()).collect(),
        missing: f.missing.clone(),
        facts: serde_json::Map::new(),
    }]
}
