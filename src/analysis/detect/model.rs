//! The detection rules of the rules file (`[[detection]]` tables), validated into a
//! [`RulePack`].
//!
//! Four kinds share one table shape: `event` (an action in a set, with conditions),
//! `threshold` (at least `count` matching events for one key within a sliding `window`),
//! `sequence` (`first` then `then` for the same key `within` a time, unless an `unless` action
//! came between) and `session` (a session seen from a second network, or a user's login from a
//! new country). Everything a typo could break is checked at load, and every message starts
//! with the rule's id and names the key at fault.

use super::paths::{Condition, ConditionSpec};
use crate::analysis::severity::Severity;
use serde::Deserialize;
use std::collections::BTreeSet;

/// Default `dedup` of a rule, unless `[detections] dedup` says otherwise.
pub const DEFAULT_DEDUP: &str = "24h";
/// Longest `window`, `within`, `dedup` or `history` accepted: bounded state needs bounded time.
pub const MAX_SPAN_SECS: i64 = 366 * 86_400;
/// Largest `count` accepted (each key keeps that many events).
pub const MAX_COUNT: u32 = 1000;
/// Largest `max_keys` accepted.
pub const MAX_MAX_KEYS: usize = 100_000;

/// `[detections]`: settings shared by every detection rule.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct PackSpec {
    #[serde(default)]
    dedup: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    kind: String,
    name: String,
    description: String,
    category: String,
    severity: Severity,
    #[serde(default)]
    risk_score: Option<u8>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    version: Option<String>,
    threat: ThreatSpec,
    #[serde(default)]
    respond: Option<String>,
    #[serde(default)]
    dedup: Option<String>,
    #[serde(default)]
    allow_users: Vec<String>,
    #[serde(default)]
    allow_apps: Vec<String>,
    #[serde(default)]
    escalate: Vec<EscalateSpec>,
    // event and threshold
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    all: Vec<ConditionSpec>,
    #[serde(default)]
    any: Vec<ConditionSpec>,
    #[serde(default)]
    key: Option<String>,
    // threshold
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    window: Option<String>,
    // sequence
    #[serde(default)]
    first: Option<StepSpec>,
    #[serde(default)]
    then: Option<StepSpec>,
    #[serde(default)]
    within: Option<String>,
    #[serde(default)]
    unless: Vec<String>,
    // session
    #[serde(default)]
    check: Option<String>,
    #[serde(default)]
    history: Option<String>,
    // threshold and sequence
    #[serde(default)]
    max_keys: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreatSpec {
    tactic_id: String,
    tactic: String,
    technique_id: String,
    technique: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalateSpec {
    severity: Severity,
    #[serde(default)]
    risk_score: Option<u8>,
    #[serde(default)]
    all: Vec<ConditionSpec>,
    #[serde(default)]
    any: Vec<ConditionSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    all: Vec<ConditionSpec>,
    #[serde(default)]
    any: Vec<ConditionSpec>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    count: Option<u32>,
}

/// What a response to the finding would be (acted on by a later stage, never here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Respond {
    /// End the sessions named by the contributing events.
    InvalidateSessions,
    /// End all the user's sessions.
    ResetSessions,
}

impl Respond {
    /// The name in the rules file.
    pub fn as_str(self) -> &'static str {
        match self {
            Respond::InvalidateSessions => "invalidate_sessions",
            Respond::ResetSessions => "reset_sessions",
        }
    }
}

/// Whose events are counted together, and the finding's dedup key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBy {
    /// `actor.user.id`.
    Actor,
    /// The user acted on (`entity.user.id`), else the entity's id.
    Target,
    /// `context.ip_address`.
    Ip,
    /// `context.session_id`.
    Session,
    /// The entity's id, whatever its type.
    Entity,
    /// The entry itself: every matching entry is its own finding.
    Event,
}

impl KeyBy {
    fn parse(s: &str) -> Option<KeyBy> {
        Some(match s {
            "actor" => KeyBy::Actor,
            "target" => KeyBy::Target,
            "ip" => KeyBy::Ip,
            "session" => KeyBy::Session,
            "entity" => KeyBy::Entity,
            "event" => KeyBy::Event,
            _ => return None,
        })
    }

    /// The name in the rules file.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyBy::Actor => "actor",
            KeyBy::Target => "target",
            KeyBy::Ip => "ip",
            KeyBy::Session => "session",
            KeyBy::Entity => "entity",
            KeyBy::Event => "event",
        }
    }
}

/// Which entries a rule (or a step of a sequence) looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// Actions; empty means any action (allowed only for a sequence's `then`).
    pub actions: BTreeSet<String>,
    /// Every one must hold.
    pub(crate) all: Vec<Condition>,
    /// At least one must hold (no condition when empty).
    pub(crate) any: Vec<Condition>,
}

impl Matcher {
    /// Whether every condition is on `action` alone, so the action decides the match.
    pub(crate) fn action_only(&self) -> bool {
        self.all.iter().chain(&self.any).all(Condition::on_action)
    }

    /// The conditions alone.
    pub(crate) fn conditions(&self, entry: &serde_json::Value) -> bool {
        self.all.iter().all(|c| c.holds(entry))
            && (self.any.is_empty() || self.any.iter().any(|c| c.holds(entry)))
    }
}

/// One step of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its entries.
    pub matcher: Matcher,
    /// Whose.
    pub key: KeyBy,
    /// How many are needed (1 for `then`).
    pub count: u32,
}

/// What a session rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    /// One session id from a second network (`new_network`).
    Network,
    /// One session id from a second network and a second user agent
    /// (`new_network_and_user_agent`).
    NetworkAndUserAgent,
    /// A user's login from a country not seen for them within `history` before it
    /// (`new_country`; needs `--geoip-city`).
    Country,
}

/// The kind of rule, with what only that kind has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// One entry is enough.
    Event {
        /// Which entries.
        matcher: Matcher,
        /// The dedup key.
        key: KeyBy,
    },
    /// At least `count` matching entries for one key within `window_secs`.
    Threshold {
        /// Which entries.
        matcher: Matcher,
        /// Counted per.
        key: KeyBy,
        /// How many.
        count: u32,
        /// Sliding window, seconds.
        window_secs: i64,
    },
    /// `first` (`count` of them) then `then`, for the same key, within `within_secs`, with no
    /// `unless` action for that key in between.
    Sequence {
        /// A.
        first: Step,
        /// B.
        then: Step,
        /// Seconds from A to B.
        within_secs: i64,
        /// Actions (keyed like `first`) that cancel A.
        unless: BTreeSet<String>,
    },
    /// Session tracking.
    Session {
        /// Which check.
        check: SessionCheck,
        /// For `new_country`: how far back a country counts as seen, seconds.
        history_secs: i64,
    },
}

impl RuleKind {
    /// The name in the rules file.
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleKind::Event { .. } => "event",
            RuleKind::Threshold { .. } => "threshold",
            RuleKind::Sequence { .. } => "sequence",
            RuleKind::Session { .. } => "session",
        }
    }
}

/// MITRE ATT&CK for the finding's `threat.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threat {
    /// `TA0004`.
    pub tactic_id: String,
    /// `Privilege Escalation`.
    pub tactic: String,
    /// `T1098` or `T1098.003`.
    pub technique_id: String,
    /// `Account Manipulation`.
    pub technique: String,
}

/// A severity raise when extra conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// The raised severity.
    pub severity: Severity,
    /// Its risk score.
    pub risk_score: u8,
    /// When.
    pub matcher: Matcher,
}

/// One validated detection rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionRule {
    /// `rule.id`.
    pub id: String,
    /// `rule.name`.
    pub name: String,
    /// `rule.description`.
    pub description: String,
    /// `rule.category`.
    pub category: String,
    /// `rule.reference`.
    pub reference: Option<String>,
    /// `rule.version`.
    pub version: String,
    /// Base severity.
    pub severity: Severity,
    /// Base risk score.
    pub risk_score: u8,
    /// `threat.*`.
    pub threat: Threat,
    /// Asked-for response; validated, carried in the finding, acted on elsewhere.
    pub respond: Option<Respond>,
    /// Once per key per this many seconds (periods aligned to the Unix epoch).
    pub dedup_secs: i64,
    /// Actors (ids or emails, lower-case) this rule ignores.
    pub allow_users: BTreeSet<String>,
    /// App ids this rule ignores.
    pub allow_apps: BTreeSet<String>,
    /// Severity raises, first match wins.
    pub escalate: Vec<Escalation>,
    /// Keys with events held for this rule (thresholds and sequences; see
    /// [`super::state::DEFAULT_MAX_KEYS_PER_RULE`]).
    pub max_keys: usize,
    /// The kind.
    pub kind: RuleKind,
}

/// Every detection rule of a rules file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulePack {
    /// In file order (which is also the order findings of one entry come out in).
    pub rules: Vec<DetectionRule>,
}

impl RulePack {
    /// Validates the `[detections]` table and the `[[detection]]` tables.
    ///
    /// # Errors
    ///
    /// A message naming the rule and the key at fault.
    pub(crate) fn build(pack: PackSpec, tables: Vec<toml::Table>) -> Result<RulePack, String> {
        let default_dedup = duration(
            "detections.dedup",
            pack.dedup.as_deref().unwrap_or(DEFAULT_DEDUP),
        )?;
        let mut rules: Vec<DetectionRule> = Vec::new();
        for (i, table) in tables.into_iter().enumerate() {
            let name = match table.get("id").and_then(toml::Value::as_str) {
                Some(id) => format!("detection rule {id:?}"),
                None => format!("detection rule #{}", i + 1),
            };
            let spec: RuleSpec = toml::Value::Table(table)
                .try_into()
                .map_err(|e| format!("{name}: {}", e.to_string().trim_end()))?;
            let rule = build_rule(spec, &name, default_dedup)?;
            if rules.iter().any(|r| r.id == rule.id) {
                return Err(format!("{name}: the id is used twice"));
            }
            rules.push(rule);
        }
        Ok(RulePack { rules })
    }
}

fn duration(at: &str, text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{at}: {text:?} is not a duration ({e}); write e.g. 5m, 24h, 30d"))?;
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    if !(1..=MAX_SPAN_SECS).contains(&secs) {
        return Err(format!("{at}: {text:?} is out of range; give 1s to 366d"));
    }
    Ok(secs)
}

fn conditions(list: &[ConditionSpec], at: &str) -> Result<Vec<Condition>, String> {
    list.iter()
        .enumerate()
        .map(|(i, c)| Condition::build(c, &format!("{at}[{i}]")))
        .collect()
}

fn actions(list: &[String], at: &str) -> Result<BTreeSet<String>, String> {
    list.iter()
        .map(|a| {
            let a = a.trim();
            if a.is_empty()
                || !a
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                Err(format!(
                    "{at}: {a:?} is not an action name (e.g. user_login_failed)"
                ))
            } else {
                Ok(a.to_string())
            }
        })
        .collect()
}

fn matcher(
    acts: &[String],
    all: &[ConditionSpec],
    any: &[ConditionSpec],
    at: &str,
    need_actions: bool,
) -> Result<Matcher, String> {
    let actions = actions(acts, &format!("{at}actions"))?;
    if need_actions && actions.is_empty() {
        return Err(format!("{at}actions: give at least one action"));
    }
    Ok(Matcher {
        actions,
        all: conditions(all, &format!("{at}all"))?,
        any: conditions(any, &format!("{at}any"))?,
    })
}

fn key(k: Option<&str>, default: KeyBy, at: &str) -> Result<KeyBy, String> {
    match k {
        None => Ok(default),
        Some(s) => KeyBy::parse(s.trim()).ok_or_else(|| {
            format!("{at}: {s:?} is not a key; give actor, target, ip, session, entity or event")
        }),
    }
}

fn count(c: Option<u32>, at: &str) -> Result<u32, String> {
    match c {
        Some(n) if n == 0 || n > MAX_COUNT => {
            Err(format!("{at}: {n} is out of range; give 1..={MAX_COUNT}"))
        }
        Some(n) => Ok(n),
        None => Ok(1),
    }
}

fn threat(t: ThreatSpec, at: &str) -> Result<Threat, String> {
    let ok_id = |id: &str, prefix: &str| {
        let rest = id.strip_prefix(prefix).unwrap_or("");
        let (main, sub) = rest.split_once('.').unwrap_or((rest, ""));
        main.len() == 4
            && main.bytes().all(|b| b.is_ascii_digit())
            && (sub.is_empty() || (sub.len() == 3 && sub.bytes().all(|b| b.is_ascii_digit())))
    };
    if !ok_id(&t.tactic_id, "TA") || t.tactic_id.contains('.') {
        return Err(format!(
            "{at}: threat.tactic_id: {:?} is not an ATT&CK tactic id (e.g. TA0004)",
            t.tactic_id
        ));
    }
    if !ok_id(&t.technique_id, "T") {
        return Err(format!("{at}: threat.technique_id: {:?} is not an ATT&CK technique id (e.g. T1098 or T1098.001)", t.technique_id));
    }
    Ok(Threat {
        tactic_id: t.tactic_id,
        tactic: t.tactic,
        technique_id: t.technique_id,
        technique: t.technique,
    })
}

/// Keys that belong to other kinds must not be given: they would be silently ignored.
fn refuse(spec: &RuleSpec, kind: &str, at: &str) -> Result<(), String> {
    let given: [(&str, bool, &[&str]); 10] = [
        (
            "actions",
            !spec.actions.is_empty(),
            &["event", "threshold", "session"],
        ),
        (
            "all",
            !spec.all.is_empty(),
            &["event", "threshold", "session"],
        ),
        (
            "any",
            !spec.any.is_empty(),
            &["event", "threshold", "session"],
        ),
        ("key", spec.key.is_some(), &["event", "threshold"]),
        ("count", spec.count.is_some(), &["threshold"]),
        (
            "max_keys",
            spec.max_keys.is_some(),
            &["threshold", "sequence"],
        ),
        ("window", spec.window.is_some(), &["threshold"]),
        (
            "first",
            spec.first.is_some() || spec.then.is_some(),
            &["sequence"],
        ),
        (
            "within",
            spec.within.is_some() || !spec.unless.is_empty(),
            &["sequence"],
        ),
        (
            "check",
            spec.check.is_some() || spec.history.is_some(),
            &["session"],
        ),
    ];
    match given
        .iter()
        .find(|(_, set, kinds)| *set && !kinds.contains(&kind))
    {
        Some((k, _, kinds)) => Err(format!(
            "{at}: {k} has no meaning for kind = {kind:?} (only for {})",
            kinds.join(", ")
        )),
        None => Ok(()),
    }
}

fn build_rule(spec: RuleSpec, at: &str, default_dedup: i64) -> Result<DetectionRule, String> {
    let id = spec.id.trim().to_string();
    if id.is_empty() || id.chars().any(char::is_whitespace) {
        return Err(format!(
            "{at}: id: give a non-empty id without spaces, e.g. slack.detect.owner_transferred"
        ));
    }
    let kind_name = spec.kind.trim().to_string();
    refuse(&spec, &kind_name, at)?;
    if spec.risk_score.is_some_and(|r| r > 100) {
        return Err(format!("{at}: risk_score must be 0..=100"));
    }
    let respond = match spec.respond.as_deref().map(str::trim) {
        None => None,
        Some("invalidate_sessions") => Some(Respond::InvalidateSessions),
        Some("reset_sessions") => Some(Respond::ResetSessions),
        Some(other) => {
            return Err(format!("{at}: respond: {other:?} is not a response; give invalidate_sessions or reset_sessions"))
        }
    };
    let category = spec.category.trim().to_string();
    if category.is_empty() {
        return Err(format!("{at}: category: give one, e.g. privilege"));
    }
    let kind = match kind_name.as_str() {
        "event" => RuleKind::Event {
            matcher: matcher(
                &spec.actions,
                &spec.all,
                &spec.any,
                &format!("{at}: "),
                true,
            )?,
            key: key(spec.key.as_deref(), KeyBy::Event, &format!("{at}: key"))?,
        },
        "threshold" => {
            let count = count(spec.count, &format!("{at}: count"))?;
            if spec.count.is_none() || count < 2 {
                return Err(format!(
                    "{at}: count: a threshold needs count >= 2 (use kind = \"event\" for one)"
                ));
            }
            RuleKind::Threshold {
                matcher: matcher(
                    &spec.actions,
                    &spec.all,
                    &spec.any,
                    &format!("{at}: "),
                    true,
                )?,
                key: key(spec.key.as_deref(), KeyBy::Actor, &format!("{at}: key"))?,
                count,
                window_secs: duration(
                    &format!("{at}: window"),
                    spec.window
                        .as_deref()
                        .ok_or_else(|| format!("{at}: window: give one, e.g. 5m"))?,
                )?,
            }
        }
        "sequence" => {
            let step = |s: Option<&StepSpec>, name: &str, max_count: u32| -> Result<Step, String> {
                let s = s.ok_or_else(|| format!("{at}: {name}: give the [{name}] table"))?;
                let c = count(s.count, &format!("{at}: {name}.count"))?;
                if c > max_count {
                    return Err(format!(
                        "{at}: {name}.count: only `first` can ask for more than one"
                    ));
                }
                Ok(Step {
                    matcher: matcher(
                        &s.actions,
                        &s.all,
                        &s.any,
                        &format!("{at}: {name}."),
                        name == "first",
                    )?,
                    key: key(s.key.as_deref(), KeyBy::Actor, &format!("{at}: {name}.key"))?,
                    count: c,
                })
            };
            let first = step(spec.first.as_ref(), "first", MAX_COUNT)?;
            let then = step(spec.then.as_ref(), "then", 1)?;
            for (name, k) in [("first", first.key), ("then", then.key)] {
                if matches!(k, KeyBy::Event) {
                    return Err(format!(
                        "{at}: {name}.key: a sequence needs a key shared by two entries, not event"
                    ));
                }
            }
            RuleKind::Sequence {
                first,
                then,
                within_secs: duration(
                    &format!("{at}: within"),
                    spec.within
                        .as_deref()
                        .ok_or_else(|| format!("{at}: within: give one, e.g. 1h"))?,
                )?,
                unless: actions(&spec.unless, &format!("{at}: unless"))?,
            }
        }
        "session" => {
            let check = match spec.check.as_deref().map(str::trim) {
                Some("new_network") => SessionCheck::Network,
                Some("new_network_and_user_agent") => SessionCheck::NetworkAndUserAgent,
                Some("new_country") => SessionCheck::Country,
                other => return Err(format!("{at}: check: {other:?} is not a session check; give new_network, new_network_and_user_agent or new_country")),
            };
            if !spec.actions.is_empty() || !spec.all.is_empty() || !spec.any.is_empty() {
                return Err(format!("{at}: actions/all/any: session rules take none (new_country looks at user_login, the others at every entry with a session)"));
            }
            let history_secs = match (&check, spec.history.as_deref()) {
                (SessionCheck::Country, Some(h)) => duration(&format!("{at}: history"), h)?,
                (SessionCheck::Country, None) => 90 * 86_400,
                (_, Some(_)) => return Err(format!("{at}: history: only new_country takes one")),
                (_, None) => 0,
            };
            RuleKind::Session {
                check,
                history_secs,
            }
        }
        other => {
            return Err(format!(
                "{at}: kind: {other:?} is not a kind; give event, threshold, sequence or session"
            ))
        }
    };
    let mut escalate = Vec::new();
    for (i, e) in spec.escalate.iter().enumerate() {
        let at_e = format!("{at}: escalate[{i}].");
        if e.all.is_empty() && e.any.is_empty() {
            return Err(format!(
                "{at_e}all: give at least one condition in all or any"
            ));
        }
        if e.risk_score.is_some_and(|r| r > 100) {
            return Err(format!("{at_e}risk_score must be 0..=100"));
        }
        escalate.push(Escalation {
            severity: e.severity,
            risk_score: e.risk_score.unwrap_or_else(|| e.severity.risk_score()),
            matcher: matcher(&[], &e.all, &e.any, &at_e, false)?,
        });
    }
    let max_keys = spec
        .max_keys
        .unwrap_or(super::state::DEFAULT_MAX_KEYS_PER_RULE);
    if !(1..=MAX_MAX_KEYS).contains(&max_keys) {
        return Err(format!(
            "{at}: max_keys: {max_keys} is out of range; give 1 to {MAX_MAX_KEYS}"
        ));
    }
    Ok(DetectionRule {
        max_keys,
        threat: threat(spec.threat, at)?,
        dedup_secs: match &spec.dedup {
            Some(d) => duration(&format!("{at}: dedup"), d)?,
            None => default_dedup,
        },
        allow_users: spec
            .allow_users
            .iter()
            .map(|u| u.trim().to_ascii_lowercase())
            .filter(|u| !u.is_empty())
            .collect(),
        allow_apps: spec
            .allow_apps
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
        name: spec.name,
        description: spec.description,
        category,
        reference: spec.reference,
        version: spec.version.unwrap_or_else(|| "1".into()),
        severity: spec.severity,
        risk_score: spec
            .risk_score
            .unwrap_or_else(|| spec.severity.risk_score()),
        respond,
        escalate,
        kind,
        id,
    })
}
