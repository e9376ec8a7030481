//! The response document, one per action, delivered in the stream after the finding that
//! caused it; and the critical finding that says the circuit breaker opened.
//!
//! Both are built from the ledger alone (the finding's time, ids and user, and the outcome),
//! never the clock, so a plan replayed by `analyze` gives the same documents as `run`.

use super::plan::stable_id;
use crate::analysis::severity::Severity;
use crate::checkpoint::response::{Action, BreakerAlert, Outcome};
use crate::mapping::render::ECS_VERSION;
use serde_json::{json, Map, Value};

/// `event.dataset` of response documents.
pub(crate) const DATASET: &str = "slack.response";
/// `rule.id` of the breaker's finding.
pub(crate) const BREAKER_RULE: &str = "slack.response.circuit_breaker_open";

/// `event.outcome` of an action: `unknown` when nothing was called.
pub(crate) fn outcome(a: &Action) -> &'static str {
    match a.outcome {
        Some(Outcome::Success) => "success",
        Some(Outcome::Failure) => "failure",
        Some(Outcome::Unknown) | None => "unknown",
    }
}

/// `slack.response.mode`: `enforce` when the action was called, else `plan`.
pub(crate) fn mode(a: &Action) -> &'static str {
    if a.act {
        "enforce"
    } else {
        "plan"
    }
}

/// The response document of `a`.
pub(crate) fn response(a: &Action) -> Value {
    let mut target = Map::new();
    target.insert("id".into(), json!(a.user.id));
    if let Some(e) = &a.user.email {
        target.insert("email".into(), json!(e));
    }
    if let Some(n) = &a.user.full_name {
        target.insert("full_name".into(), json!(n));
    }
    let related: Vec<&String> = std::iter::once(&a.user.id)
        .chain(a.user.email.as_ref())
        .collect();
    let what = match a.kind {
        crate::checkpoint::response::Kind::SessionInvalidate => {
            format!("end {} session(s) of {}", a.session_ids.len(), a.user.id)
        }
        crate::checkpoint::response::Kind::SessionReset => {
            format!("end every session of {}", a.user.id)
        }
    };
    let reason = match (a.act, &a.held, a.outcome, &a.error) {
        (_, Some(held), ..) => format!("would {what}; held: {held}"),
        (false, None, ..) => format!("would {what} (plan)"),
        (true, _, Some(Outcome::Success), _) => format!("ended: {what}"),
        (true, _, Some(Outcome::Unknown), Some(e)) => {
            format!("{what}: the call failed on the way ({e}); Slack may or may not have acted")
        }
        (true, _, _, Some(e)) => format!("could not {what}: Slack answered {e}"),
        (true, ..) => format!("{what}: outcome unknown"),
    };
    let mut response = json!({
        "mode": mode(a),
        "finding_id": a.finding_id,
        "rule_id": a.rule_id,
        "session_ids": a.session_ids,
    });
    if let Some(obj) = response.as_object_mut() {
        if let Some(h) = &a.held {
            obj.insert("held".into(), json!(h));
        }
        if let Some(e) = &a.error {
            obj.insert("error".into(), json!(e));
        }
    }
    let mut doc = json!({
        "@timestamp": a.timestamp,
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "event",
            "id": a.id,
            "module": "slack",
            "dataset": DATASET,
            "category": ["iam"],
            "type": ["change"],
            "action": a.kind.as_str(),
            "outcome": outcome(a),
            "reason": reason,
        },
        "user": {"target": target},
        "related": {"user": related},
        "tags": ["slack-audit", "slack-response"],
        "slack": {"response": response},
    });
    if let (Some(e), Some(obj)) = (&a.error, doc.as_object_mut()) {
        obj.insert(
            "error".into(),
            json!({"code": e, "message": format!("Slack answered {e}")}),
        );
    }
    doc
}

/// The critical finding that says the breaker opened.
pub(crate) fn breaker_open(b: &BreakerAlert) -> Value {
    let sev = Severity::Critical;
    json!({
        "@timestamp": b.timestamp,
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "alert",
            "id": stable_id(&["response", BREAKER_RULE, &b.finding_id]),
            "module": "slack",
            "dataset": crate::analysis::finding::DATASET,
            "action": "response_circuit_breaker_open",
            "category": ["iam"],
            "type": ["info"],
            "severity": sev.number(),
            "risk_score": sev.risk_score(),
            "reason": format!("more than {} response actions within an hour: further actions are only planned until the rate falls; check the rules that fire and act by hand", b.max_per_hour),
        },
        "rule": {
            "id": BREAKER_RULE,
            "name": "Response circuit breaker open",
            "description": "The response stage reached --respond-max-per-hour actions within an hour of event time; beyond it, actions are only planned.",
            "category": "response",
            "ruleset": "slack-audit-source",
        },
        "tags": ["slack-audit", "slack-response"],
        "slack": {
            "audit": {"analysis": {"severity": sev.as_str()}},
            "response": {"finding_id": b.finding_id, "max_per_hour": b.max_per_hour},
        },
    })
}
