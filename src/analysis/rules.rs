//! The rules file: correlation rules, reason normalisation (Slack's built-in pairs), the
//! expected user agents and the baseline settings.
//!
//! The shipped default is `default_rules.toml`, embedded at build time; `--rules FILE` replaces
//! it as a whole (no merging: what the file says is what runs, which keeps reviews simple).
//! Loading validates everything a typo could break — unknown keys, unknown reason names, rule
//! ids that a `suppresses` list cannot find — so a bad file stops the binary at start, with
//! the file and the problem named, rather than silently never firing.

use super::detect::model::{PackSpec, Respond, RulePack};
use super::fields::Glob;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The default rules, as shipped (printed by `analyze --print-default-rules`).
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// Slack's documented anomaly reasons, the list metric labels are bounded by too.
pub(crate) use crate::metrics::labels::KNOWN_REASONS;

/// What context a finding carries.
pub(crate) const CONTEXTS: &[&str] = &["downloads"];

pub(crate) use super::severity::Severity;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    extra_reasons: Vec<String>,
    #[serde(default)]
    implies: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    user_agents: UserAgentsSpec,
    #[serde(default)]
    baseline: BaselineSpec,
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    detections: PackSpec,
    /// Read as tables first, so that an error inside one names the rule it is in.
    #[serde(default)]
    detection: Vec<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserAgentsSpec {
    #[serde(default)]
    expected: Vec<String>,
    #[serde(default = "yes")]
    as_reason: bool,
}

impl Default for UserAgentsSpec {
    fn default() -> Self {
        UserAgentsSpec {
            expected: Vec::new(),
            as_reason: true,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineSpec {
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default = "default_floor")]
    floor: u32,
    #[serde(default = "default_baseline_severity")]
    severity: Severity,
    #[serde(default = "default_record_severity")]
    org_record_severity: Severity,
    #[serde(default = "default_history_days")]
    history_days: u32,
    #[serde(default)]
    context: Vec<String>,
}

impl Default for BaselineSpec {
    fn default() -> Self {
        BaselineSpec {
            reasons: Vec::new(),
            floor: default_floor(),
            severity: default_baseline_severity(),
            org_record_severity: default_record_severity(),
            history_days: default_history_days(),
            context: Vec::new(),
        }
    }
}

fn default_floor() -> u32 {
    3
}
fn default_baseline_severity() -> Severity {
    Severity::Medium
}
fn default_record_severity() -> Severity {
    Severity::High
}
fn default_history_days() -> u32 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    name: String,
    description: String,
    severity: Severity,
    #[serde(default)]
    risk_score: Option<u8>,
    #[serde(default)]
    all: Vec<String>,
    #[serde(default)]
    any: Vec<String>,
    #[serde(default)]
    only: Option<Vec<String>>,
    #[serde(default)]
    suppresses: Vec<String>,
    #[serde(default)]
    context: Vec<String>,
    #[serde(default)]
    respond: Option<String>,
}

/// One correlation rule, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// `rule.id`; part of the finding's id.
    pub(crate) id: String,
    /// `rule.name`.
    pub(crate) name: String,
    /// `rule.description`.
    pub(crate) description: String,
    /// Drives `event.severity`.
    pub(crate) severity: Severity,
    /// `event.risk_score`.
    pub(crate) risk_score: u8,
    /// Every one of these reasons must be present.
    pub(crate) all: BTreeSet<String>,
    /// At least one of these must be present (no condition when empty).
    pub(crate) any: BTreeSet<String>,
    /// When set, no reason outside it may be present.
    pub(crate) only: Option<BTreeSet<String>>,
    /// Rules this one outranks.
    pub(crate) suppresses: BTreeSet<String>,
    /// Attach the actor's downloads in the window.
    pub(crate) downloads_context: bool,
    /// What a response stage may do with its finding (`respond` in the file).
    pub(crate) respond: Option<Respond>,
}

impl Rule {
    /// Whether the (normalised) reasons of a window satisfy this rule.
    pub(crate) fn matches(&self, reasons: &BTreeSet<String>) -> bool {
        self.all.is_subset(reasons)
            && (self.any.is_empty() || !self.any.is_disjoint(reasons))
            && self
                .only
                .as_ref()
                .is_none_or(|only| reasons.is_subset(only))
    }

    /// The reasons this rule looks at: events carrying one of them contributed to its finding.
    pub(crate) fn reasons(&self) -> BTreeSet<String> {
        let mut r: BTreeSet<String> = self.all.union(&self.any).cloned().collect();
        if let Some(only) = &self.only {
            r.extend(only.iter().cloned());
        }
        r
    }
}

/// The baseline settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Baseline {
    /// Reasons counted per user per day.
    pub(crate) reasons: BTreeSet<String>,
    /// Counts up to this never fire.
    pub(crate) floor: u32,
    /// Severity above the user's own maximum.
    pub(crate) severity: Severity,
    /// Severity when above the org's maximum too.
    pub(crate) org_record_severity: Severity,
    /// Days of history kept.
    pub(crate) history_days: u32,
    /// Attach the actor's downloads of that day.
    pub(crate) downloads_context: bool,
}

/// A whole rules file, validated and ready to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleSet {
    /// Reason → the reasons it implies, closed transitively.
    pub(crate) implies: BTreeMap<String, BTreeSet<String>>,
    /// Globs of user agents that are not flagged.
    pub(crate) expected_user_agents: Vec<Glob>,
    /// Whether an unexpected UA adds the reason `unexpected_user_agent` to the actor's window.
    pub(crate) user_agent_as_reason: bool,
    /// Baseline settings.
    pub(crate) baseline: Baseline,
    /// Rules, in file order (which is also the order findings come out in).
    pub(crate) rules: Vec<Rule>,
    /// Detection rules over raw entries (`[[detection]]`), see `super::detect`.
    pub(crate) detections: RulePack,
}

impl RuleSet {
    /// The embedded default rules.
    ///
    /// # Panics
    ///
    /// Never in a tested build: `default_rules_load` checks the embedded file.
    pub(crate) fn default_rules() -> RuleSet {
        // The embedded file is validated by the test `default_rules_load`; failing here would
        // mean a broken build, never bad input.
        RuleSet::parse(DEFAULT_RULES).expect("the embedded default_rules.toml is valid")
    }

    /// Parses and validates a rules file's text.
    ///
    /// # Errors
    ///
    /// A message naming the key or rule at fault.
    pub(crate) fn parse(text: &str) -> Result<RuleSet, String> {
        let file: RulesFile =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        let mut known: BTreeSet<String> = KNOWN_REASONS.iter().map(|s| s.to_string()).collect();
        for r in &file.extra_reasons {
            known.insert(reason_name(r, "extra_reasons")?);
        }
        let check = |list: &[String], what: &str| -> Result<BTreeSet<String>, String> {
            list.iter()
                .map(|r| {
                    let name = reason_name(r, what)?;
                    if known.contains(&name) {
                        Ok(name)
                    } else {
                        Err(format!("{what}: unknown reason {r:?}; Slack's reasons are {}; add new ones to extra_reasons", KNOWN_REASONS.join(", ")))
                    }
                })
                .collect()
        };
        let mut implies = BTreeMap::new();
        for (k, v) in &file.implies {
            let key = check(std::slice::from_ref(k), "implies")?;
            let vals = check(v, &format!("implies.{k}"))?;
            implies.extend(key.into_iter().map(|k| (k, vals.clone())));
        }
        let implies = close(implies);
        let mut rules: Vec<Rule> = Vec::new();
        for spec in file.rule {
            let rule = build_rule(spec, &check)?;
            if rules.iter().any(|r| r.id == rule.id) {
                return Err(format!("rule {:?} is defined twice", rule.id));
            }
            rules.push(rule);
        }
        check_suppressions(&rules)?;
        let b = file.baseline;
        if b.history_days == 0 || b.history_days > 366 {
            return Err(format!(
                "baseline.history_days: {} is out of range; give 1..=366",
                b.history_days
            ));
        }
        let baseline = Baseline {
            reasons: check(&b.reasons, "baseline.reasons")?,
            floor: b.floor,
            severity: b.severity,
            org_record_severity: b.org_record_severity,
            history_days: b.history_days,
            downloads_context: contexts(&b.context, "baseline.context")?,
        };
        Ok(RuleSet {
            implies,
            expected_user_agents: file
                .user_agents
                .expected
                .iter()
                .map(|g| Glob::new(g))
                .collect(),
            user_agent_as_reason: file.user_agents.as_reason,
            baseline,
            rules,
            detections: RulePack::build(file.detections, file.detection)?,
        })
    }

    /// Checks `--baseline-reasons` values against this file's known reasons.
    ///
    /// # Errors
    ///
    /// The unknown name.
    pub(crate) fn known_reason(&self, r: &str) -> Result<String, String> {
        let name = reason_name(r, "baseline reason")?;
        let known = KNOWN_REASONS.contains(&name.as_str())
            || self.implies.contains_key(&name)
            || self.rules.iter().any(|rule| rule.reasons().contains(&name));
        if known {
            Ok(name)
        } else {
            Err(format!(
                "unknown reason {r:?}; Slack's reasons are {}",
                KNOWN_REASONS.join(", ")
            ))
        }
    }

    /// The reasons plus everything they imply (Slack's built-in pairs), sorted.
    pub(crate) fn normalize<I: IntoIterator<Item = String>>(&self, reasons: I) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for r in reasons {
            if let Some(implied) = self.implies.get(&r) {
                out.extend(implied.iter().cloned());
            }
            out.insert(r);
        }
        out
    }
}

fn reason_name(r: &str, what: &str) -> Result<String, String> {
    let name = r.trim().to_ascii_lowercase();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("{what}: {r:?} is not a reason name (letters, digits and '_', e.g. excessive_downloads)"));
    }
    Ok(name)
}

fn contexts(list: &[String], what: &str) -> Result<bool, String> {
    if let Some(bad) = list.iter().find(|c| !CONTEXTS.contains(&c.as_str())) {
        return Err(format!(
            "{what}: unknown context {bad:?}; known: {}",
            CONTEXTS.join(", ")
        ));
    }
    Ok(list.iter().any(|c| c == "downloads"))
}

/// Validates a list of reason names against the known ones; the second argument names the key.
type ReasonCheck<'a> = dyn Fn(&[String], &str) -> Result<BTreeSet<String>, String> + 'a;

fn build_rule(spec: RuleSpec, check: &ReasonCheck<'_>) -> Result<Rule, String> {
    let id = spec.id.trim().to_string();
    if id.is_empty() || id.chars().any(char::is_whitespace) {
        return Err(format!(
            "rule id {:?}: give a non-empty id without spaces, e.g. slack.anomaly.tor",
            spec.id
        ));
    }
    let at = |key: &str| format!("rule {id:?}: {key}");
    let all = check(&spec.all, &at("all"))?;
    let any = check(&spec.any, &at("any"))?;
    if all.is_empty() && any.is_empty() {
        return Err(format!(
            "rule {id:?}: give at least one reason in `all` or `any`"
        ));
    }
    let only = spec
        .only
        .as_deref()
        .map(|o| check(o, &at("only")))
        .transpose()?;
    if let Some(only) = &only {
        if !all.is_subset(only) {
            return Err(format!("rule {id:?}: `only` must include every reason of `all`, or the rule can never fire"));
        }
    }
    if spec.risk_score.is_some_and(|r| r > 100) {
        return Err(format!("rule {id:?}: risk_score must be 0..=100"));
    }
    // Read as the detection rules read theirs, with the same message.
    let respond = match spec.respond.as_deref().map(str::trim) {
        None => None,
        Some("invalidate_sessions") => Some(Respond::InvalidateSessions),
        Some("reset_sessions") => Some(Respond::ResetSessions),
        Some(other) => {
            return Err(format!("rule {id:?}: respond: {other:?} is not a response; give invalidate_sessions or reset_sessions"))
        }
    };
    Ok(Rule {
        respond,
        name: spec.name,
        description: spec.description,
        severity: spec.severity,
        risk_score: spec
            .risk_score
            .unwrap_or_else(|| spec.severity.risk_score()),
        all,
        any,
        only,
        suppresses: spec
            .suppresses
            .iter()
            .map(|s| s.trim().to_string())
            .collect(),
        downloads_context: contexts(&spec.context, &at("context"))?,
        id,
    })
}

/// Suppression must name existing rules and must not go round in a circle (a cycle would let
/// two matching rules silence each other and emit nothing).
fn check_suppressions(rules: &[Rule]) -> Result<(), String> {
    for r in rules {
        if let Some(bad) = r
            .suppresses
            .iter()
            .find(|s| !rules.iter().any(|o| &o.id == *s))
        {
            return Err(format!(
                "rule {:?}: suppresses {bad:?}, which is no rule in this file",
                r.id
            ));
        }
    }
    let edges: BTreeMap<&str, BTreeSet<String>> = rules
        .iter()
        .map(|r| (r.id.as_str(), r.suppresses.clone()))
        .collect();
    let closed = close(
        edges
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    );
    if let Some((id, _)) = closed.iter().find(|(k, v)| v.contains(*k)) {
        return Err(format!(
            "rule {id:?}: its suppresses lists lead back to itself; suppression must go one way"
        ));
    }
    Ok(())
}

/// Transitive closure of a relation (small: a handful of entries).
fn close(mut rel: BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    loop {
        let mut changed = false;
        let snapshot = rel.clone();
        for targets in rel.values_mut() {
            let extra: Vec<String> = targets
                .iter()
                .filter_map(|t| snapshot.get(t))
                .flatten()
                .filter(|x| !targets.contains(*x))
                .cloned()
                .collect();
            if !extra.is_empty() {
                changed = true;
                targets.extend(extra);
            }
        }
        if !changed {
            return rel;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_rules_load() {
        let rs = RuleSet::default_rules();
        assert_eq!(rs.rules.len(), 5);
        assert_eq!(rs.baseline.reasons, set(&["excessive_downloads"]));
        assert_eq!(rs.baseline.floor, 3);
        assert!(rs.user_agent_as_reason);
    }

    /// In the default pack exactly these act: the stolen-session rules and activity after
    /// deactivation; `respond` on an anomaly rule is checked like a detection's.
    #[test]
    fn the_default_responders_are_pinned_and_respond_is_validated() {
        let rs = RuleSet::default_rules();
        let mut responders: Vec<(&str, &str)> = rs
            .rules
            .iter()
            .filter_map(|r| Some((r.id.as_str(), r.respond?.as_str())))
            .chain(
                rs.detections
                    .rules
                    .iter()
                    .filter_map(|r| Some((r.id.as_str(), r.respond?.as_str()))),
            )
            .collect();
        responders.sort();
        assert_eq!(
            responders,
            [
                ("slack.anomaly.stolen_session_scraping", "reset_sessions"),
                ("slack.detect.activity_after_deactivation", "reset_sessions"),
                (
                    "slack.detect.session_new_network_and_user_agent",
                    "invalidate_sessions"
                ),
            ]
        );
        let bad = "[[rule]]\nid = \"x\"\nname = \"x\"\ndescription = \"x\"\nseverity = \"high\"\nall = [\"tor\"]\nrespond = \"lock_account\"";
        let e = RuleSet::parse(bad).unwrap_err();
        assert!(
            e.contains("respond") && e.contains("invalidate_sessions"),
            "{e}"
        );
        let ok = bad.replace("lock_account", "invalidate_sessions");
        assert_eq!(
            RuleSet::parse(&ok).unwrap().rules[0].respond,
            Some(Respond::InvalidateSessions)
        );
    }

    #[test]
    fn built_in_pairs_are_normalised() {
        let rs = RuleSet::default_rules();
        assert_eq!(
            rs.normalize(vec!["asn".into()]),
            set(&["asn", "ip_address"])
        );
        assert_eq!(
            rs.normalize(vec!["spoofed_user_agent".into()]),
            set(&["spoofed_user_agent", "unexpected_client"])
        );
        assert_eq!(
            rs.normalize(vec!["unexpected_user_agent".into()]),
            set(&["unexpected_user_agent", "user_agent"])
        );
        assert_eq!(rs.normalize(vec!["tor".into()]), set(&["tor"]));
    }

    #[test]
    fn only_restricts_the_reason_set() {
        let rs = RuleSet::default_rules();
        let ip_only = rs
            .rules
            .iter()
            .find(|r| r.id == "slack.anomaly.ip_address_only")
            .unwrap();
        assert!(ip_only.matches(&set(&["ip_address", "asn"])));
        assert!(!ip_only.matches(&set(&["ip_address", "tor"])));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err = |t: &str| RuleSet::parse(t).unwrap_err();
        assert!(err("[[rule]]\nid='a'\nname='a'\ndescription='a'\nseverity='low'\nall=['excesive_downloads']\n").contains("unknown reason \"excesive_downloads\""));
        assert!(err("bogus = 1\n").contains("bogus"));
        assert!(err("[[rule]]\nid='a'\nname='a'\ndescription='a'\nseverity='low'\nall=['tor']\nsuppresses=['b']\n").contains("no rule"));
        let cycle = "[[rule]]\nid='a'\nname='a'\ndescription='a'\nseverity='low'\nall=['tor']\nsuppresses=['b']\n[[rule]]\nid='b'\nname='b'\ndescription='b'\nseverity='low'\nall=['tor']\nsuppresses=['a']\n";
        assert!(err(cycle).contains("back to itself"));
        assert!(err(
            "[[rule]]\nid='a'\nname='a'\ndescription='a'\nseverity='urgent'\nall=['tor']\n"
        )
        .contains("urgent"));
        assert!(RuleSet::parse("extra_reasons = ['new_thing']\n[[rule]]\nid='a'\nname='a'\ndescription='a'\nseverity='low'\nall=['new_thing']\n").is_ok());
    }
}
