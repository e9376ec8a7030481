//! The response stage's state (`crate::respond`), as it rides in the checkpoint: the actions planned and not yet reported,
//! with their outcome so far, and the circuit breaker's memory.
//!
//! An action enters the ledger with the page whose finding asked for it (same checkpoint), is
//! called after that checkpoint, and its progress (`calls_done`, then `outcome`) is saved
//! after every call; once its response document is delivered it leaves the ledger at the next
//! save. So after a crash the ledger says exactly what is left: the call in flight is the
//! only one that can be made twice. Everything here is bounded and checked at load.

use serde::{Deserialize, Serialize};

/// Most actions (and breaker alerts) the ledger may hold: a page's findings are far fewer.
pub(crate) const MAX_ACTIONS: usize = 10_000;
/// Most session ids one action may name (Slack logs one session per event; a finding names a
/// handful).
pub(crate) const MAX_SESSIONS: usize = 100;
/// Longest id, user id or Slack error code kept.
pub(crate) const MAX_TEXT: usize = 256;
/// The breaker's hour, in seconds of event time.
pub(crate) const HOUR: i64 = 3600;

/// What the stage remembers between pages and across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Event times (Unix s) of the actions the breaker let through, oldest first; pruned to
    /// two hours behind the newest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) taken: Vec<i64>,
    /// Event time at which the breaker last opened (its alert delivered or pending); `None`
    /// while it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) open_since: Option<i64>,
    /// Actions planned and not yet reported, in the order their findings came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) actions: Vec<Action>,
    /// Breaker-open alerts not yet reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) alerts: Vec<BreakerAlert>,
}

/// One action on one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Action {
    /// The response document's `event.id`.
    pub(crate) id: String,
    /// The finding's `event.id`.
    pub(crate) finding_id: String,
    /// The finding's `rule.id`.
    pub(crate) rule_id: String,
    /// What is done.
    pub(crate) kind: Kind,
    /// The user acted on.
    pub(crate) user: Target,
    /// The sessions ended (`session_invalidate`); empty for a reset.
    #[serde(default)]
    pub(crate) session_ids: Vec<String>,
    /// The finding's `@timestamp`, which the response document carries too.
    pub(crate) timestamp: String,
    /// The same, in Unix seconds: the breaker's clock.
    pub(crate) at: i64,
    /// True when the action is to be called (`enforce`, breaker closed); false when it is
    /// only planned.
    pub(crate) act: bool,
    /// Why an action that would have been called is only planned (`circuit_breaker_open`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) held: Option<String>,
    /// Calls made so far and saved (one per session for `session_invalidate`, one for a reset).
    #[serde(default)]
    pub(crate) calls_done: usize,
    /// How it ended; `None` until every call is made (or one failed), and for a plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) outcome: Option<Outcome>,
    /// Slack's error code, if a call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// Delivered in the stream: dropped from the ledger at the next save.
    #[serde(skip)]
    pub(crate) reported: bool,
}

impl Action {
    /// The calls this action makes: one per session, or one reset.
    pub(crate) fn calls(&self) -> usize {
        match self.kind {
            Kind::SessionInvalidate => self.session_ids.len(),
            Kind::SessionReset => 1,
        }
    }

    /// Called, and still calls to make.
    pub(crate) fn is_due(&self) -> bool {
        self.act && self.outcome.is_none()
    }
}

/// The user an action is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Target {
    /// Slack user id.
    pub(crate) id: String,
    /// Email, when the finding has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
    /// Full name, when the finding has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) full_name: Option<String>,
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// `admin.users.session.invalidate` for each named session.
    SessionInvalidate,
    /// `admin.users.session.reset`: every session of the user.
    SessionReset,
}

impl Kind {
    /// `event.action` of the response document, and the metric's `action` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::SessionInvalidate => "session_invalidate",
            Kind::SessionReset => "session_reset",
        }
    }
}

/// How an enforced action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// Slack said ok to every call.
    Success,
    /// Slack answered with an error: it did not act.
    Failure,
    /// The call failed on the way (a timeout, a broken connection, a 5xx): Slack may have
    /// acted or not.
    Unknown,
}

/// The breaker opened: one critical finding says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BreakerAlert {
    /// The `@timestamp` of the finding it held first.
    pub(crate) timestamp: String,
    /// The same, in Unix seconds.
    pub(crate) at: i64,
    /// The finding it held first.
    pub(crate) finding_id: String,
    /// The limit in force.
    pub(crate) max_per_hour: u32,
    /// Delivered: dropped at the next save.
    #[serde(skip)]
    pub(crate) reported: bool,
}

impl Ledger {
    /// Nothing to remember: the checkpoint leaves the field out.
    pub(crate) fn is_empty(&self) -> bool {
        self.taken.is_empty()
            && self.open_since.is_none()
            && self.actions.is_empty()
            && self.alerts.is_empty()
    }

    /// Drops what was reported; the caller saves.
    pub(crate) fn forget_reported(&mut self) {
        self.actions.retain(|a| !a.reported);
        self.alerts.retain(|a| !a.reported);
    }

    /// Checks a ledger read from a checkpoint; the reason names the value.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.actions.len() > MAX_ACTIONS
            || self.alerts.len() > MAX_ACTIONS
            || self.taken.len() > MAX_ACTIONS
        {
            return Err(format!(
                "response holds more than {MAX_ACTIONS} actions, alerts or breaker entries"
            ));
        }
        for a in &self.actions {
            let texts = [&a.id, &a.finding_id, &a.rule_id, &a.user.id, &a.timestamp];
            if texts.iter().any(|t| t.is_empty() || t.len() > MAX_TEXT)
                || a.session_ids
                    .iter()
                    .any(|s| s.is_empty() || s.len() > MAX_TEXT)
            {
                return Err(format!(
                    "response action {:?} holds an empty or over-long id",
                    a.id.get(..a.id.len().min(40)).unwrap_or_default()
                ));
            }
            if a.session_ids.len() > MAX_SESSIONS || a.calls_done > a.calls() {
                return Err(format!(
                    "response action {} has {} sessions and {} calls done",
                    a.id,
                    a.session_ids.len(),
                    a.calls_done
                ));
            }
            if a.kind == Kind::SessionInvalidate && a.session_ids.is_empty() {
                return Err(format!("response action {} invalidates no session", a.id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An old checkpoint has no `response`; an empty ledger writes nothing; a ledger round-trips
    /// with its progress (and without the in-memory `reported` mark).
    #[test]
    fn the_ledger_round_trips_and_stays_out_of_the_file_when_empty() {
        assert_eq!(serde_json::to_string(&Ledger::default()).unwrap(), "{}");
        let mut l = Ledger::default();
        l.taken.push(1_700_000_000);
        l.actions.push(Action {
            id: "r1".into(),
            finding_id: "f1".into(),
            rule_id: "rule".into(),
            kind: Kind::SessionInvalidate,
            user: Target {
                id: "U1".into(),
                ..Target::default()
            },
            session_ids: vec!["s1".into(), "s2".into()],
            timestamp: "2023-11-14T22:13:20.000Z".into(),
            at: 1_700_000_000,
            act: true,
            held: None,
            calls_done: 1,
            outcome: None,
            error: None,
            reported: false,
        });
        let text = serde_json::to_string(&l).unwrap();
        assert!(text.contains("\"kind\":\"session_invalidate\""), "{text}");
        let back: Ledger = serde_json::from_str(&text).unwrap();
        assert_eq!(back, l);
        assert!(back.validate().is_ok());
        let mut bad = l.clone();
        bad.actions[0].calls_done = 3;
        assert!(bad.validate().unwrap_err().contains("calls done"));
    }
}
