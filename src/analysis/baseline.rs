//! Baselines: each user's daily count of chosen anomaly reasons against their history.
//!
//! History is whatever earlier UTC days the state holds for the user (up to
//! `baseline.history_days`), learned from the anomalies seen, in whatever order they arrived. A
//! day fires once, when its count passes both the floor and the user's earlier maximum; above
//! the org's earlier maximum too, it fires with the higher severity.

use super::finding::{Actor, BaselineFacts, Finding, Kind};
use super::rules::Baseline;
use super::state::{Day, Downloads, Emitted, State, DAY_SECS, MAX_IDS_PER_DAY};
use std::collections::{BTreeMap, BTreeSet};

/// Counts an event in a day unless it was counted already.
pub(crate) fn count_once(d: &mut Day, event_id: &str) -> bool {
    if d.ids.contains(event_id) {
        return false;
    }
    d.count = d.count.saturating_add(1);
    if d.ids.len() < MAX_IDS_PER_DAY {
        d.ids.insert(event_id.to_string());
    }
    true
}

/// What a page touched that baselines read: the (actor, reason, day) counts it added, and the
/// actors it saw with their latest email and name; and the correlation window, whose windows
/// inside a day give a baseline finding its context.
pub(crate) struct Touched<'a> {
    /// The correlation window, in seconds.
    pub(crate) window_secs: i64,
    /// (actor, reason, day) of baseline days that gained a count.
    pub(crate) days: &'a BTreeSet<(String, String, i64)>,
    /// The actors seen.
    pub(crate) actors: &'a BTreeMap<String, Actor>,
}

/// Evaluates the days this page counted anomalies in; returns the baseline findings.
pub(crate) fn evaluate(b: &Baseline, state: &mut State, touched: &Touched<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (actor, reason, day) in touched.days {
        let Some(days) = state.baselines.get(actor).and_then(|r| r.get(reason)) else {
            continue;
        };
        let Some(today) = days.get(day) else { continue };
        // History is every earlier UTC day seen so far (by event time, whatever the order
        // they arrived in); later days never lower the bar for an earlier one.
        let earlier = || days.range(..*day).map(|(_, d)| d.count);
        let user_max = earlier().max().unwrap_or(0);
        let history_days = earlier().count();
        if today.fired || today.count <= b.floor || today.count <= user_max {
            continue;
        }
        let org_max = state
            .baselines
            .values()
            .filter_map(|r| r.get(reason))
            .flat_map(|d| d.range(..*day).map(|(_, d)| d.count))
            .max()
            .unwrap_or(0);
        let facts = BaselineFacts {
            reason: reason.clone(),
            count: today.count,
            user_max,
            org_max,
            history_days,
            floor: b.floor,
        };
        let f = baseline_finding(b, state, touched, actor, *day, today.ids.clone(), facts);
        state.emitted.insert(
            f.dedupe_key(),
            Emitted {
                id: f.id(),
                at: f.start,
            },
        );
        if let Some(d) = state
            .baselines
            .get_mut(actor)
            .and_then(|r| r.get_mut(reason))
            .and_then(|d| d.get_mut(day))
        {
            d.fired = true;
        }
        out.push(f);
    }
    out
}

fn baseline_finding(
    b: &Baseline,
    state: &State,
    touched: &Touched<'_>,
    actor: &str,
    day: i64,
    ids: BTreeSet<String>,
    facts: BaselineFacts,
) -> Finding {
    let (start, end) = (day * DAY_SECS, (day + 1) * DAY_SECS);
    // The actor's windows inside that day give the IPs, the newest event and the downloads.
    let mut downloads = Downloads::default();
    let mut ips = BTreeSet::new();
    let mut last: Option<(i64, Option<String>)> = None;
    let mut reasons = BTreeSet::new();
    if let Some(ws) = state.windows.get(actor) {
        for (_, w) in ws.range(start - touched.window_secs + 1..end) {
            w.downloads
                .files
                .iter()
                .filter(|f| f.at_ms >= start * 1000 && f.at_ms < end * 1000)
                .for_each(|f| downloads.add(f.clone()));
            ips.extend(w.ips.iter().cloned());
            reasons.extend(w.reasons.keys().cloned());
            if w.last > last {
                last.clone_from(&w.last);
            }
        }
    }
    let severity = if facts.count > facts.org_max {
        b.org_record_severity
    } else {
        b.severity
    };
    let (at_ms, source_ip) = last.unwrap_or((start * 1000, None));
    Finding {
        kind: Kind::Baseline,
        rule_id: format!("slack.baseline.{}", facts.reason),
        rule_name: format!("Unusual daily count of {} anomalies", facts.reason),
        rule_description: format!(
            "More {} anomaly events for this user in one UTC day than on any earlier day seen (and more than {}).",
            facts.reason, b.floor
        ),
        severity,
        risk_score: severity.risk_score(),
        actor: touched.actors.get(actor).cloned().unwrap_or_else(|| Actor { id: actor.to_string(), ..Actor::default() }),
        start,
        end,
        at_ms,
        matched: [facts.reason.clone()].into(),
        reasons,
        contributing: ids,
        ips,
        source_ip,
        downloads: b.downloads_context.then_some(downloads),
        supersedes: Vec::new(),
        suppressed: Vec::new(),
        baseline: Some(facts),
    }
}
