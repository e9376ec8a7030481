//! Which findings act, and the circuit breaker: a finding document in, an action (or
//! nothing) into the [`Ledger`]. Pure: no clock, no I/O, so `analyze --respond plan` and
//! `run --respond plan` plan the same actions over the same history.
//!
//! A finding acts when its rule asks for it (`respond` in the rules file), its severity is at
//! least `--respond-min-severity`, it names a person (not one of Slack's placeholder actors,
//! an app or a bot), that person is neither exempt (`--respond-exempt-users`) nor in the
//! allowlist's `excluded_users`, the finding does not match the allowlist, and it carries what
//! the action needs (the sessions, for `invalidate_sessions`).

use super::{Mode, RespondConfig};
use crate::analysis::allowlist::Allowlist;
use crate::analysis::detect::model::Respond;
use crate::analysis::rules::RuleSet;
use crate::analysis::severity::Severity;
use crate::checkpoint::response::{
    Action, BreakerAlert, Kind, Ledger, Target, HOUR, MAX_SESSIONS, MAX_TEXT,
};
use serde_json::Value;
use std::sync::Arc;

/// Slack's stand-in actors: a user id that is no person (the same list the analysis skips).
const PLACEHOLDER_ACTORS: &[&str] = &["USLACKBOT", "USLACKUSER", "USLACKSECURITY"];
/// Why an action that would be called is only planned: the breaker is open.
pub(crate) const HELD_BY_BREAKER: &str = "circuit_breaker_open";
/// Why an action that would be called is only planned: its finding is older than [`MAX_AGE`].
pub(crate) const HELD_STALE: &str = "stale";
/// In `enforce`, findings older than this when read (a backfill, a restart after days) are
/// only planned: ending a session a day after the fact is no containment, and a first run
/// with a 30-day lookback must not sign out a month of users.
pub(crate) const MAX_AGE: i64 = 24 * HOUR;

/// Decides, for each finding, whether and how it acts.
#[derive(Debug, Clone)]
pub(crate) struct Planner {
    config: RespondConfig,
    rules: Arc<RuleSet>,
    allowlist: Arc<Allowlist>,
}

impl Planner {
    /// A planner over the rules and allowlist the analysis runs with.
    pub(crate) fn new(
        config: RespondConfig,
        rules: Arc<RuleSet>,
        allowlist: Arc<Allowlist>,
    ) -> Planner {
        Planner {
            config,
            rules,
            allowlist,
        }
    }

    /// Reads one delivered document: a finding that acts becomes an [`Action`] in `ledger`
    /// (and, if the breaker holds it and had not yet said so, a [`BreakerAlert`]). True when
    /// something was added.
    /// `now` (wall clock, Unix s) is given by `run` only: in `enforce` a finding older than
    /// [`MAX_AGE`] is held as stale, and counts nothing in the breaker.
    pub(crate) fn plan(&self, doc: &Value, ledger: &mut Ledger, now: Option<i64>) -> bool {
        if self.config.mode == Mode::Off {
            return false;
        }
        let Some((kind, rule_id)) = self.wanted(doc) else {
            return false;
        };
        let Some(user) = self.person(doc) else {
            return false;
        };
        let session_ids = match kind {
            Kind::SessionReset => Vec::new(),
            Kind::SessionInvalidate => {
                let sessions = sessions(doc);
                if sessions.is_empty() {
                    tracing::debug!(
                        rule = rule_id,
                        "the finding names no session to invalidate; no action"
                    );
                    return false;
                }
                sessions
            }
        };
        let (Some(finding_id), Some(timestamp)) =
            (text(doc, "/event/id"), text(doc, "/@timestamp"))
        else {
            return false;
        };
        let Some(at) = chrono::DateTime::parse_from_rfc3339(&timestamp)
            .ok()
            .map(|t| t.timestamp())
        else {
            return false;
        };
        let id = stable_id(&[
            "response",
            &finding_id,
            kind.as_str(),
            self.config.mode.as_str(),
        ]);
        if ledger.actions.iter().any(|a| a.id == id) {
            return false;
        }
        let mut action = Action {
            id,
            finding_id,
            rule_id: rule_id.to_string(),
            kind,
            user,
            session_ids,
            timestamp,
            at,
            act: false,
            held: None,
            calls_done: 0,
            outcome: None,
            error: None,
            reported: false,
        };
        let enforce = self.config.mode == Mode::Enforce;
        if enforce && now.is_some_and(|now| now - at > MAX_AGE) {
            action.held = Some(HELD_STALE.into());
        } else if breaker_allows(ledger, at, self.config.max_per_hour) {
            ledger.taken.push(at);
            ledger.open_since = None;
            action.act = enforce;
        } else {
            action.held = Some(HELD_BY_BREAKER.into());
            if ledger.open_since.is_none_or(|since| at - since >= HOUR) {
                ledger.open_since = Some(at);
                ledger.alerts.push(BreakerAlert {
                    timestamp: action.timestamp.clone(),
                    at,
                    finding_id: action.finding_id.clone(),
                    max_per_hour: self.config.max_per_hour,
                    reported: false,
                });
            }
        }
        ledger.actions.push(action);
        true
    }

    /// The action the finding's rule asks for, and the rule id, if it is a finding of at
    /// least the minimum severity whose rule has `respond`.
    fn wanted<'d>(&self, doc: &'d Value) -> Option<(Kind, &'d str)> {
        if doc.pointer("/event/kind").and_then(Value::as_str) != Some("alert") {
            return None;
        }
        let rule_id = doc.pointer("/rule/id").and_then(Value::as_str)?;
        let respond = self
            .rules
            .rules
            .iter()
            .find(|r| r.id == rule_id)
            .and_then(|r| r.respond)
            .or_else(|| {
                self.rules
                    .detections
                    .rules
                    .iter()
                    .find(|r| r.id == rule_id)
                    .and_then(|r| r.respond)
            })?;
        let severity = match doc
            .pointer("/slack/audit/analysis/severity")
            .and_then(Value::as_str)?
        {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        };
        if severity < self.config.min_severity {
            return None;
        }
        let kind = match respond {
            Respond::InvalidateSessions => Kind::SessionInvalidate,
            Respond::ResetSessions => Kind::SessionReset,
        };
        Some((kind, rule_id))
    }

    /// The person the finding is about, unless they must never be acted on.
    fn person(&self, doc: &Value) -> Option<Target> {
        let id = text(doc, "/user/id")?;
        if !is_person_id(&id) {
            return None;
        }
        let email = text(doc, "/user/email");
        let exempt = std::iter::once(&id)
            .chain(email.as_ref())
            .any(|u| self.config.exempt.contains(&u.to_ascii_lowercase()));
        if exempt || self.allowlist.matches(doc).is_some() {
            tracing::debug!(user = %id, "the finding's user is exempt or allowlisted; no action");
            return None;
        }
        Some(Target {
            id,
            email: email.filter(|e| e.len() <= MAX_TEXT),
            full_name: text(doc, "/user/full_name").filter(|n| n.len() <= MAX_TEXT),
        })
    }
}

/// A Slack user id of a person: `U…` or `W…`, letters and digits, not a placeholder. App
/// (`A…`) and bot (`B…`) ids, and anything unreadable, are not.
fn is_person_id(id: &str) -> bool {
    (id.starts_with('U') || id.starts_with('W'))
        && (2..=MAX_TEXT).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && !PLACEHOLDER_ACTORS.contains(&id)
}

/// The sessions a detection finding names, bounded.
fn sessions(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = doc
        .pointer("/slack/audit/analysis/detection/session_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| match v {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|s| !s.is_empty() && s.len() <= MAX_TEXT && s != "0")
        .collect();
    out.sort();
    out.dedup();
    out.truncate(MAX_SESSIONS);
    out
}

/// True when fewer than `max` actions were let through within an hour of `at` (either side:
/// late events arrive out of order). Forgets what is two hours behind the newest.
fn breaker_allows(ledger: &mut Ledger, at: i64, max: u32) -> bool {
    if let Some(newest) = ledger.taken.iter().copied().max() {
        let horizon = newest.max(at) - 2 * HOUR;
        ledger.taken.retain(|t| *t > horizon);
    }
    let near = ledger
        .taken
        .iter()
        .filter(|t| (**t - at).abs() < HOUR)
        .count();
    near < max as usize
}

fn text(doc: &Value, pointer: &str) -> Option<String> {
    doc.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_TEXT)
        .map(str::to_string)
}

/// A stable id from parts, as findings make theirs: the same plan gives the same `event.id`.
pub(crate) fn stable_id(parts: &[&str]) -> String {
    let mut h = crate::fnv::Fnv128::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.write(&[0xff]);
        }
        h.write(part.as_bytes());
    }
    format!("{:032x}", h.finish())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A finding document as the detections write it.
    pub(crate) fn finding(
        rule: &str,
        user: &str,
        severity: &str,
        at: &str,
        sessions: &[&str],
    ) -> Value {
        json!({
            "@timestamp": at,
            "event": {"kind": "alert", "id": format!("f-{rule}-{user}-{at}"), "dataset": "slack.analysis"},
            "rule": {"id": rule},
            "user": {"id": user, "email": format!("{}@example.com", user.to_ascii_lowercase())},
            "source": {"ip": "198.51.100.7"},
            "slack": {"audit": {"analysis": {"severity": severity,
                "detection": {"session_ids": sessions}}}}
        })
    }

    pub(crate) const STOLEN: &str = "slack.detect.session_new_network_and_user_agent";
    pub(crate) const DEACTIVATED: &str = "slack.detect.activity_after_deactivation";

    pub(crate) fn planner(mode: Mode, exempt: &[&str], allowlist: &str) -> Planner {
        let config = RespondConfig {
            mode,
            exempt: exempt.iter().map(|s| s.to_ascii_lowercase()).collect(),
            ..RespondConfig::default()
        };
        Planner::new(
            config,
            Arc::new(RuleSet::default_rules()),
            Arc::new(Allowlist::parse(allowlist).unwrap()),
        )
    }

    #[test]
    fn a_stolen_session_finding_plans_an_invalidation_of_its_sessions() {
        let p = planner(Mode::Plan, &[], "");
        let mut l = Ledger::default();
        assert!(p.plan(
            &finding(
                STOLEN,
                "U1",
                "high",
                "2024-06-03T09:00:00.000Z",
                &["s2", "s1", "s1"]
            ),
            &mut l,
            None
        ));
        let a = &l.actions[0];
        assert_eq!(a.kind, Kind::SessionInvalidate);
        assert_eq!(a.session_ids, ["s1", "s2"]);
        assert_eq!(a.user.id, "U1");
        assert!(!a.act, "plan calls nothing");
        assert!(p.plan(
            &finding(DEACTIVATED, "U2", "high", "2024-06-03T09:00:01.000Z", &[]),
            &mut l,
            None
        ));
        assert_eq!(l.actions[1].kind, Kind::SessionReset);
        let e = planner(Mode::Enforce, &[], "");
        let mut l = Ledger::default();
        assert!(e.plan(
            &finding(STOLEN, "U1", "high", "2024-06-03T09:00:00.000Z", &["s1"]),
            &mut l,
            None
        ));
        assert!(l.actions[0].act);
    }

    #[test]
    fn exempt_allowlisted_placeholder_bot_and_low_findings_never_act() {
        let allow = "excluded_users = [\"U9\"]\ntrusted_cidrs = [\"203.0.113.0/24\"]";
        let p = planner(Mode::Enforce, &["u7", "u8@example.com"], allow);
        let mut l = Ledger::default();
        let at = "2024-06-03T09:00:00.000Z";
        for user in [
            "U7",
            "U9",
            "USLACKUSER",
            "USLACKBOT",
            "B0BOT",
            "A0APP",
            "unknown",
            "U8",
        ] {
            assert!(
                !p.plan(&finding(STOLEN, user, "high", at, &["s1"]), &mut l, None),
                "{user}"
            );
        }
        let mut trusted = finding(STOLEN, "U1", "high", at, &["s1"]);
        trusted["source"]["ip"] = json!("203.0.113.9");
        assert!(!p.plan(&trusted, &mut l, None), "allowlisted network");
        assert!(
            !p.plan(&finding(STOLEN, "U1", "medium", at, &["s1"]), &mut l, None),
            "below high"
        );
        assert!(
            !p.plan(&finding(STOLEN, "U1", "high", at, &[]), &mut l, None),
            "no session"
        );
        assert!(
            !p.plan(
                &finding(
                    "slack.detect.session_new_network",
                    "U1",
                    "critical",
                    at,
                    &["s1"]
                ),
                &mut l,
                None
            ),
            "the rule does not ask"
        );
        assert!(l.is_empty(), "{l:?}");
        assert!(!planner(Mode::Off, &[], "").plan(
            &finding(STOLEN, "U1", "high", at, &["s1"]),
            &mut l,
            None
        ));
    }

    #[test]
    fn the_breaker_opens_after_the_limit_within_an_hour_of_event_time_and_says_so_once() {
        let p = planner(Mode::Enforce, &[], "");
        let mut l = Ledger::default();
        for i in 0..8 {
            let at = format!("2024-06-03T09:{:02}:00.000Z", i * 5);
            assert!(p.plan(
                &finding(DEACTIVATED, &format!("U{i}"), "high", &at, &[]),
                &mut l,
                None
            ));
        }
        let acted: Vec<bool> = l.actions.iter().map(|a| a.act).collect();
        assert_eq!(acted, [true, true, true, true, true, false, false, false]);
        assert!(l.actions[5..]
            .iter()
            .all(|a| a.held.as_deref() == Some(HELD_BY_BREAKER)));
        assert_eq!(l.alerts.len(), 1, "one alert per opening");
        assert_eq!(l.alerts[0].finding_id, l.actions[5].finding_id);
        // Two hours later (event time) the breaker lets actions through again.
        assert!(p.plan(
            &finding(DEACTIVATED, "U100", "high", "2024-06-03T11:30:00.000Z", &[]),
            &mut l,
            None
        ));
        assert!(l.actions.last().unwrap().act);
        assert_eq!(l.open_since, None);
    }

    /// `run --respond enforce` reading a finding more than a day old (a backfill) only plans
    /// it; `plan` and `analyze` (no clock) plan it as usual.
    #[test]
    fn enforce_holds_stale_findings_and_leaves_the_breaker_alone() {
        let at = "2024-06-03T09:00:00.000Z";
        let now = chrono::DateTime::parse_from_rfc3339(at)
            .unwrap()
            .timestamp()
            + MAX_AGE
            + 1;
        let mut l = Ledger::default();
        assert!(planner(Mode::Enforce, &[], "").plan(
            &finding(DEACTIVATED, "U1", "high", at, &[]),
            &mut l,
            Some(now)
        ));
        assert!(!l.actions[0].act);
        assert_eq!(l.actions[0].held.as_deref(), Some(HELD_STALE));
        assert!(l.taken.is_empty());
        let mut l = Ledger::default();
        assert!(planner(Mode::Enforce, &[], "").plan(
            &finding(DEACTIVATED, "U1", "high", at, &[]),
            &mut l,
            Some(now - 2)
        ));
        assert!(l.actions[0].act);
    }
}
