//! One page through the analysis: observe every document, then evaluate what changed.
//!
//! Two passes per page, in this order, so the outcome does not depend on where a page boundary
//! falls inside a burst more than it must:
//! 1. **observe** each document in page order: flag unexpected user agents, normalise and
//!    annotate anomalies, and record signals and downloads in the actor's window (keyed by
//!    event time, never arrival) and in the baseline counts;
//! 2. **evaluate** only the windows and days this page touched, in sorted order: rules, then
//!    baselines ([`super::baseline`]). A finding is emitted once: its dedupe key goes into the
//!    state with it.

use super::allowlist::{AllowMatch, Allowlist};
use super::baseline;
use super::fields::{self, stable_id};
use super::finding::{Actor, Finding, Kind};
use super::rules::{Rule, RuleSet};
use super::state::{
    Emitted, FileRef, State, Window, DAY_SECS, MAX_IDS_PER_REASON, MAX_IPS_PER_WINDOW,
    MAX_SEEN_PER_WINDOW,
};
use crate::doc::{Doc, Field};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The reason an unexpected user agent contributes (see `user_agents.as_reason`).
const UA_REASON: &str = "unexpected_user_agent";
/// Slack's stand-in actors (docs/slack-api.md §3): events without a person behind them, which
/// must never be correlated with each other as if one user did them all.
const PLACEHOLDER_ACTORS: &[&str] = &["USLACKUSER", "USLACKSECURITY"];

/// What the engine needs besides its state.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The rules file in force.
    pub(crate) rules: Arc<RuleSet>,
    /// The local allowlist.
    pub(crate) allowlist: Arc<Allowlist>,
    /// The correlation window, in seconds.
    pub(crate) window_secs: i64,
    /// Reasons with a baseline.
    pub(crate) baseline_reasons: BTreeSet<String>,
}

/// A signal to record in a window.
struct Signal<'a> {
    actor: &'a str,
    at_ms: i64,
    event_id: &'a str,
    reasons: &'a BTreeSet<String>,
    ip: Option<String>,
    email: Option<String>,
    full_name: Option<String>,
}

/// What one page touched, to evaluate after observing it.
#[derive(Default)]
pub(crate) struct Touched {
    /// (actor, window start) of windows that gained a signal.
    pub(crate) windows: BTreeSet<(String, i64)>,
    /// (actor, reason, day) of baseline days that gained a count.
    pub(crate) days: BTreeSet<(String, String, i64)>,
    /// The actors seen, with their latest email and name.
    pub(crate) actors: BTreeMap<String, Actor>,
}

/// An event that is not an anomaly, as the analysis keeps it, however it reached the analysis:
/// as a document ([`observe`]) or noted from what mapping read of it
/// ([`super::Analyzer::note_plain`]). [`note`] records it.
#[derive(Debug)]
pub(crate) struct Noted {
    /// Its time (Unix ms), which moves the high-water mark.
    at_ms: Option<i64>,
    /// (actor, file) of a download by a known actor: the context of download findings.
    download: Option<(String, FileRef)>,
}

impl Noted {
    /// What the analysis keeps of an event with `action` by `actor` at `at_ms`; `file` gives
    /// the file of a download (`event_id`, `id`, `name`) and is called for downloads only.
    pub(crate) fn new(
        action: &str,
        actor: Option<&str>,
        at_ms: Option<i64>,
        file: impl FnOnce(i64) -> FileRef,
    ) -> Noted {
        let download = match (action, actor, at_ms) {
            ("file_downloaded", Some(actor), Some(at)) => Some((actor.to_string(), file(at))),
            _ => None,
        };
        Noted { at_ms, download }
    }
}

/// Records an ordinary event: its time moves the high-water mark (which decides which windows
/// are old enough to prune), and a download goes into its actor's window.
fn note(s: &Settings, state: &mut State, noted: Noted) {
    if let Some(t) = noted.at_ms {
        advance_high_water(state, t);
    }
    if let Some((actor, file)) = noted.download {
        record_download(s, state, &actor, file);
    }
}

fn advance_high_water(state: &mut State, at_ms: i64) {
    state.high_water_ms = Some(state.high_water_ms.map_or(at_ms, |h| h.max(at_ms)));
}

/// Processes one page against `state`: the events `noted` without a document first, then
/// `docs`.
pub(crate) fn process<D: Doc>(
    settings: &Settings,
    state: &mut State,
    noted: impl IntoIterator<Item = Noted>,
    docs: &mut Vec<D>,
) {
    state.pages = state.pages.saturating_add(1);
    for n in noted {
        note(settings, state, n);
    }
    let mut touched = Touched::default();
    let mut ids: Vec<Option<String>> = Vec::with_capacity(docs.len());
    for doc in docs.iter_mut() {
        ids.push(observe(settings, state, &mut touched, doc));
    }
    let mut findings = evaluate_windows(settings, state, &touched);
    let days = baseline::Touched {
        window_secs: settings.window_secs,
        days: &touched.days,
        actors: &touched.actors,
    };
    findings.extend(baseline::evaluate(&settings.rules.baseline, state, &days));
    link_findings(docs, &ids, &findings);
    docs.extend(findings.iter().map(|f| D::from(f.to_document())));
    state.prune(settings.window_secs, settings.rules.baseline.history_days);
}

/// Annotates one document and records what it says; returns its event id when it is a
/// document the analysis reads (so findings can be linked back to it).
fn observe(
    s: &Settings,
    state: &mut State,
    touched: &mut Touched,
    doc: &mut impl Doc,
) -> Option<String> {
    if !doc.is_object() {
        return None;
    }
    // Our own findings (analyze reading its own output) and unmappable entries carry nothing.
    if matches!(
        fields::string(doc, &["event", "kind"]).as_deref(),
        Some("alert" | "pipeline_error")
    ) {
        return None;
    }
    let unexpected_ua = fields::string(doc, &["user_agent", "original"])
        .is_some_and(|ua| !expected_user_agent(s, &ua));
    if unexpected_ua {
        Doc::set(
            doc,
            &["slack", "audit", "analysis", "unexpected_user_agent"],
            Value::Bool(true),
        );
    }
    let action = fields::string(doc, &["event", "action"]).unwrap_or_default();
    let actor = fields::string(doc, &["user", "id"]);
    let at_ms = fields::timestamp(doc).map(|t| t.timestamp_millis());
    let event_id = fields::string(doc, &["event", "id"]).unwrap_or_else(|| synthetic_id(doc));
    if action == "anomaly" {
        if let Some(t) = at_ms {
            advance_high_water(state, t);
        }
        observe_anomaly(s, state, touched, doc, &event_id);
    } else {
        let noted = Noted::new(&action, actor.as_deref(), at_ms, |at_ms| FileRef {
            at_ms,
            event_id: event_id.clone(),
            id: fields::string(doc, &["slack", "audit", "entity", "id"]),
            name: fields::string(doc, &["slack", "audit", "entity", "name"]),
        });
        note(s, state, noted);
        // A scraper's own events, flagged by our UA check, are a signal too (unless trusted),
        // but only when the UA is the actor's own client (see `ua_belongs_to_actor`).
        if unexpected_ua
            && s.rules.user_agent_as_reason
            && ua_belongs_to_actor(doc, &action)
            && s.allowlist.matches(doc).is_none()
        {
            let reasons = s.rules.normalize([UA_REASON.to_string()]);
            if let Some(sig) = signal(doc, actor.as_deref(), at_ms, &event_id, &reasons) {
                record_signal(s, state, touched, &sig);
            }
        }
    }
    Some(event_id)
}

/// Adds a download to its actor's window (the context of download findings).
fn record_download(s: &Settings, state: &mut State, actor: &str, file: FileRef) {
    let start = window_start(file.at_ms, s.window_secs);
    let pages = state.pages;
    let w = match state.windows.get_mut(actor) {
        Some(ws) => ws.entry(start).or_default(),
        None => state
            .windows
            .entry(actor.to_string())
            .or_default()
            .entry(start)
            .or_default(),
    };
    w.downloads.add(file);
    w.touched = pages;
}

fn observe_anomaly(
    s: &Settings,
    state: &mut State,
    touched: &mut Touched,
    doc: &mut impl Doc,
    event_id: &str,
) {
    let raw = fields::reasons(doc);
    let reasons = s.rules.normalize(raw.iter().cloned());
    let implied: Vec<&String> = reasons.iter().filter(|r| !raw.contains(r)).collect();
    let allow = s.allowlist.matches(doc);
    let base = ["slack", "audit", "analysis"];
    let at = |k: &'static str| [base[0], base[1], base[2], k];
    Doc::set(doc, &at("reasons"), json!(reasons));
    if !implied.is_empty() {
        Doc::set(doc, &at("implied_reasons"), json!(implied));
    }
    Doc::set(doc, &at("allowlisted"), Value::Bool(allow.is_some()));
    if let Some(AllowMatch { kind, entry }) = &allow {
        Doc::set(
            doc,
            &at("allowlist_match"),
            json!({"kind": kind, "entry": entry}),
        );
        return;
    }
    let actor = fields::string(doc, &["user", "id"]);
    let at_ms = fields::timestamp(doc).map(|t| t.timestamp_millis());
    let Some(sig) = signal(doc, actor.as_deref(), at_ms, event_id, &reasons) else {
        return;
    };
    let start = window_start(sig.at_ms, s.window_secs);
    Doc::set(
        doc,
        &at("window"),
        json!({"start": fields::rfc3339(fields::from_millis(start * 1000)), "end": fields::rfc3339(fields::from_millis((start + s.window_secs) * 1000))}),
    );
    record_signal(s, state, touched, &sig);
    let day = sig.at_ms.div_euclid(1000).div_euclid(DAY_SECS);
    for reason in reasons.intersection(&s.baseline_reasons) {
        let d = state
            .baselines
            .entry(sig.actor.to_string())
            .or_default()
            .entry(reason.clone())
            .or_default()
            .entry(day)
            .or_default();
        if baseline::count_once(d, event_id) {
            touched
                .days
                .insert((sig.actor.to_string(), reason.clone(), day));
        }
    }
}

fn signal<'a>(
    doc: &impl Doc,
    actor: Option<&'a str>,
    at_ms: Option<i64>,
    event_id: &'a str,
    reasons: &'a BTreeSet<String>,
) -> Option<Signal<'a>> {
    let actor = actor.filter(|a| !PLACEHOLDER_ACTORS.contains(a))?;
    Some(Signal {
        actor,
        at_ms: at_ms?,
        event_id,
        reasons,
        ip: fields::string(doc, &["source", "ip"]),
        email: fields::string(doc, &["user", "email"]),
        full_name: fields::string(doc, &["user", "full_name"]),
    })
}

fn record_signal(s: &Settings, state: &mut State, touched: &mut Touched, sig: &Signal<'_>) {
    let start = window_start(sig.at_ms, s.window_secs);
    let w = state
        .windows
        .entry(sig.actor.to_string())
        .or_default()
        .entry(start)
        .or_default();
    w.touched = state.pages;
    let actor = touched
        .actors
        .entry(sig.actor.to_string())
        .or_insert_with(|| Actor {
            id: sig.actor.to_string(),
            ..Actor::default()
        });
    if sig.email.is_some() {
        actor.email.clone_from(&sig.email);
        w.email.clone_from(&sig.email);
    }
    if sig.full_name.is_some() {
        actor.full_name.clone_from(&sig.full_name);
        w.full_name.clone_from(&sig.full_name);
    }
    touched.windows.insert((sig.actor.to_string(), start));
    if w.seen.contains(sig.event_id) {
        return;
    }
    if w.seen.len() < MAX_SEEN_PER_WINDOW {
        w.seen.insert(sig.event_id.to_string());
    }
    for r in sig.reasons {
        let ids = w.reasons.entry(r.clone()).or_default();
        if ids.len() < MAX_IDS_PER_REASON {
            ids.insert(sig.event_id.to_string());
        }
    }
    if let Some(ip) = &sig.ip {
        if w.ips.len() < MAX_IPS_PER_WINDOW {
            w.ips.insert(ip.clone());
        }
    }
    // The newest event's IP is the finding's source.ip; ties go to the larger IP so the
    // choice never depends on arrival order.
    let candidate = (sig.at_ms, sig.ip.clone());
    if w.last.as_ref().is_none_or(|last| candidate > *last) {
        w.last = Some(candidate);
    }
}

fn evaluate_windows(s: &Settings, state: &mut State, touched: &Touched) -> Vec<Finding> {
    let mut out = Vec::new();
    for (actor, start) in &touched.windows {
        let Some(w) = state.windows.get(actor).and_then(|ws| ws.get(start)) else {
            continue;
        };
        let reasons: BTreeSet<String> = w.reasons.keys().cloned().collect();
        let matched: Vec<&Rule> = s
            .rules
            .rules
            .iter()
            .filter(|r| r.matches(&reasons))
            .collect();
        let mut new = Vec::new();
        for rule in &matched {
            let key = format!("{}|{actor}|{start}", rule.id);
            // A matching rule that outranks this one silences it, emitted already or not.
            if state.emitted.contains_key(&key)
                || matched.iter().any(|o| o.suppresses.contains(&rule.id))
            {
                continue;
            }
            new.push(correlation_finding(
                s, state, rule, &matched, actor, *start, w,
            ));
        }
        for f in new {
            state.emitted.insert(
                f.dedupe_key(),
                Emitted {
                    id: f.id(),
                    at: f.start,
                },
            );
            out.push(f);
        }
    }
    out
}

fn correlation_finding(
    s: &Settings,
    state: &State,
    rule: &Rule,
    matched: &[&Rule],
    actor: &str,
    start: i64,
    w: &Window,
) -> Finding {
    // The finding stands for the rules it outranks too, so their evidence is its evidence.
    let mut wanted = rule.reasons();
    for absorbed in matched.iter().filter(|o| rule.suppresses.contains(&o.id)) {
        wanted.extend(absorbed.reasons());
    }
    let matched_reasons: BTreeSet<String> = w
        .reasons
        .keys()
        .filter(|r| wanted.contains(*r))
        .cloned()
        .collect();
    let contributing: BTreeSet<String> = matched_reasons
        .iter()
        .filter_map(|r| w.reasons.get(r))
        .flatten()
        .cloned()
        .collect();
    let supersedes = rule
        .suppresses
        .iter()
        .filter_map(|o| state.emitted.get(&format!("{o}|{actor}|{start}")))
        .map(|e| e.id.clone())
        .collect();
    let suppressed = matched
        .iter()
        .filter(|o| rule.suppresses.contains(&o.id))
        .map(|o| o.id.clone())
        .collect();
    let (at_ms, source_ip) = w.last.clone().unwrap_or((start * 1000, None));
    Finding {
        kind: Kind::Correlation,
        rule_id: rule.id.clone(),
        rule_name: rule.name.clone(),
        rule_description: rule.description.clone(),
        severity: rule.severity,
        risk_score: rule.risk_score,
        actor: Actor {
            id: actor.to_string(),
            email: w.email.clone(),
            full_name: w.full_name.clone(),
        },
        start,
        end: start + s.window_secs,
        at_ms,
        reasons: w.reasons.keys().cloned().collect(),
        matched: matched_reasons,
        contributing,
        ips: w.ips.clone(),
        source_ip,
        downloads: rule.downloads_context.then(|| w.downloads.clone()),
        supersedes,
        suppressed,
        baseline: None,
    }
}

/// Adds `slack.audit.analysis.finding_ids` to this page's documents that contributed.
fn link_findings(docs: &mut [impl Doc], ids: &[Option<String>], findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    for (doc, id) in docs.iter_mut().zip(ids) {
        let Some(id) = id else { continue };
        let linked: Vec<String> = findings
            .iter()
            .filter(|f| f.contributing.contains(id))
            .map(Finding::id)
            .collect();
        if !linked.is_empty() {
            Doc::set(
                doc,
                &["slack", "audit", "analysis", "finding_ids"],
                json!(linked),
            );
        }
    }
}

/// Whether `context.ua` is the client of the person in `user.id`. Not when an app triggered
/// the event (`context.app`: the UA is the app's HTTP client and the actor its installer, as for
/// eDiscovery downloads), nor for `user_channel_join`, whose context is the inviter's.
fn ua_belongs_to_actor(doc: &impl Doc, action: &str) -> bool {
    action != "user_channel_join"
        && matches!(
            doc.at(&["slack", "audit", "context", "app"]),
            None | Some(Field::Null)
        )
}

pub(crate) fn expected_user_agent(s: &Settings, ua: &str) -> bool {
    s.rules
        .expected_user_agents
        .iter()
        .chain(s.allowlist.user_agents())
        .any(|g| g.matches(ua))
}

/// Start (Unix s) of the window holding `at_ms`: windows are aligned to the Unix epoch (so to
/// UTC midnight for any length dividing a day), which makes them independent of arrival order.
fn window_start(at_ms: i64, window_secs: i64) -> i64 {
    let secs = at_ms.div_euclid(1000);
    secs - secs.rem_euclid(window_secs.max(1))
}

/// An id for a document without `event.id` (seen in transformed data), from its content.
fn synthetic_id(doc: &impl Doc) -> String {
    let part = |p: &[&str]| doc.json_at(p).unwrap_or_default();
    let parts = [
        part(&["@timestamp"]),
        part(&["event", "action"]),
        part(&["user", "id"]),
        part(&["source", "ip"]),
        part(&["user_agent", "original"]),
        part(&["slack", "audit"]),
    ];
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    format!("synthetic-{}", stable_id(&refs))
}
