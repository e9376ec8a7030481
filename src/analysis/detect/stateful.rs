//! The stateful kinds: thresholds, sequences and session tracking.
//!
//! Each decision depends only on the set of events held, never on the order they came in:
//! every check looks at all the windows a new event can complete, including windows that end
//! at a later event already held (the new event arrived late, as in Slack's newest-first
//! pages). Dedup keys are `rule|key|period start`, periods aligned to the Unix epoch, so the
//! same set of events claims the same keys in any order.

use super::document::Hit;
use super::entry::{normalise_ua_into, prefix_into, Facts, Person, PersonRef};
use super::model::{DetectionRule, KeyBy, RuleKind, SessionCheck, Step};
use super::state::{
    insert, insert_earliest, CountrySeen, Ev, KeyEvents, MAX_COUNTRIES_PER_USER, MAX_PER_SESSION,
};
use super::{period, severity, Detector};
use serde_json::{json, Map, Value};

/// A hit built from held evidence.
fn hit<'r>(
    rule: &'r DetectionRule,
    dedupe_key: String,
    key: (&'static str, String),
    actor: Option<Person>,
    evidence: Vec<Ev>,
    f: &Facts<'_>,
) -> Hit<'r> {
    let (severity, risk_score) = severity(rule, f);
    let at = evidence.iter().map(|e| e.at).max().unwrap_or(0);
    let mut ips: Vec<String> = Vec::new();
    let mut sessions: Vec<String> = Vec::new();
    // Newest first, so source.ip is the newest event's.
    for e in evidence.iter().rev() {
        if let Some(ip) = &e.ip {
            if !ips.contains(ip) {
                ips.push(ip.clone());
            }
        }
        if let Some(s) = &e.session {
            if !sessions.contains(s) {
                sessions.push(s.clone());
            }
        }
    }
    sessions.sort();
    Hit {
        rule,
        dedupe_key,
        key,
        severity,
        risk_score,
        actor,
        target: None,
        evidence,
        at,
        ips,
        sessions,
        missing: f.missing.clone(),
        facts: Map::new(),
    }
}

/// The record of `key` for `rule`, made if new. Looked up before inserting: most calls find it,
/// and need not copy the strings. `None` cannot happen (the record was just made).
fn record<'a>(d: &'a mut Detector, rule: &str, key: &str) -> Option<&'a mut KeyEvents> {
    let batches = d.state.batches;
    if !d.state.keys.contains_key(rule) {
        d.state.keys.insert(rule.to_string(), Default::default());
    }
    let keys = d.state.keys.get_mut(rule)?;
    if !keys.contains_key(key) {
        keys.insert(key.to_string(), KeyEvents::default());
    }
    let rec = keys.get_mut(key)?;
    rec.touched = batches;
    Some(rec)
}

/// Remembers the actor's email and name for the finding; copies only when they changed.
fn set_who(rec: &mut KeyEvents, a: &PersonRef<'_>) {
    let now = (a.email.as_deref(), a.name.as_deref());
    if rec
        .who
        .as_ref()
        .is_some_and(|(e, n)| (e.as_deref(), n.as_deref()) == now)
    {
        return;
    }
    rec.who = Some((now.0.map(str::to_string), now.1.map(str::to_string)));
}

/// The person a key stands for, when the key is a user.
fn keyed_person(by: KeyBy, key: &str, rec: Option<&KeyEvents>) -> Option<Person> {
    matches!(by, KeyBy::Actor | KeyBy::Target).then(|| {
        let (email, name) = rec.and_then(|r| r.who.clone()).unwrap_or_default();
        Person {
            id: key.to_string(),
            email,
            name,
        }
    })
}

/// Index of the first event at or after `t`.
fn from(list: &[Ev], t: i64) -> usize {
    list.partition_point(|e| e.at < t)
}

/// At least `count` matching entries for one key within a sliding window.
pub(super) fn threshold<'r>(
    d: &mut Detector,
    rule: &'r DetectionRule,
    f: &Facts<'_>,
) -> Vec<Hit<'r>> {
    let RuleKind::Threshold {
        matcher,
        key: key_by,
        count,
        window_secs,
    } = &rule.kind
    else {
        return Vec::new();
    };
    if !f.matches(matcher) {
        return Vec::new();
    }
    let (Some(at), Some(key)) = (f.at, f.key(*key_by)) else {
        return Vec::new();
    };
    let Some(rec) = record(d, &rule.id, &key) else {
        return Vec::new();
    };
    if let Some(a) = &f.actor {
        if *key_by == KeyBy::Actor {
            set_who(rec, a);
        }
    }
    if !insert(&mut rec.a, f.ev(at)) {
        return Vec::new();
    }
    // Every window the new event can complete ends at an event in [at, at + window]; most
    // complete none. A window whose dedup period has fired already is passed over too (a user
    // who keeps failing keeps completing windows): only a finding copies events.
    let candidates: Vec<(usize, usize, String, i64)> = {
        let events = &rec.a;
        let last = events.partition_point(|e| e.at <= at.saturating_add(*window_secs));
        let mut out = Vec::new();
        let mut last_start = None;
        for end in from(events, at)..last {
            let lo = from(events, events[end].at.saturating_sub(*window_secs));
            if end + 1 - lo < *count as usize {
                continue;
            }
            let start = period(events[end].at, rule.dedup_secs);
            if last_start == Some(start) {
                continue;
            }
            last_start = Some(start);
            out.push((lo, end, format!("{}|{key}|{start}", rule.id), start));
        }
        out
    };
    let full: Vec<_> = candidates
        .into_iter()
        .filter(|c| !d.state.emitted.contains_key(&c.2))
        .collect();
    if full.is_empty() {
        return Vec::new();
    }
    let Some(rec) = d.state.keys.get(&rule.id).and_then(|k| k.get(key.as_ref())) else {
        return Vec::new();
    };
    let events = rec.a.clone();
    let who = keyed_person(*key_by, &key, Some(rec));
    let key = key.into_owned();
    let mut hits = Vec::new();
    for (lo, end, dedupe_key, start) in full {
        if !d.claim(&dedupe_key, start) {
            continue;
        }
        let mut h = hit(
            rule,
            dedupe_key,
            (key_by.as_str(), key.clone()),
            who.clone()
                .or_else(|| f.actor.as_ref().map(PersonRef::to_person)),
            events[lo..=end].to_vec(),
            f,
        );
        h.facts.insert(
            "threshold".into(),
            json!({"count": count, "window_seconds": window_secs}),
        );
        hits.push(h);
    }
    hits
}

/// The key of a sequence step for this entry; a step keyed on an excluded target is skipped.
fn step_key<'f>(d: &Detector, step: &Step, f: &'f Facts<'_>) -> Option<std::borrow::Cow<'f, str>> {
    if step.key == KeyBy::Target && f.target.as_ref().is_some_and(|t| d.is_excluded(t)) {
        return None;
    }
    f.key(step.key)
}

/// `first` (`count` of them) then `then`, for one key, within a time, unless cancelled.
pub(super) fn sequence<'r>(
    d: &mut Detector,
    rule: &'r DetectionRule,
    f: &Facts<'_>,
) -> Vec<Hit<'r>> {
    let RuleKind::Sequence {
        first,
        then,
        within_secs,
        unless,
    } = &rule.kind
    else {
        return Vec::new();
    };
    let Some(at) = f.at else {
        return Vec::new();
    };
    let mut check: Vec<(String, Vec<Ev>)> = Vec::new();
    if f.matches(&first.matcher) {
        if let Some(key) = step_key(d, first, f) {
            if let Some(rec) = record(d, &rule.id, &key)
                .and_then(|rec| insert(&mut rec.a, f.ev(at)).then_some(rec))
            {
                // A late `first`: every held `then` it may precede is checked again.
                let lo = from(&rec.b, at);
                let hi = rec
                    .b
                    .partition_point(|e| e.at <= at.saturating_add(*within_secs));
                check.push((key.into_owned(), rec.b[lo..hi].to_vec()));
            }
        }
    }
    if unless.contains(f.action) {
        if let Some(key) = step_key(d, first, f) {
            if let Some(rec) = record(d, &rule.id, &key) {
                insert(&mut rec.cancel, f.ev(at));
            }
        }
    }
    if f.matches(&then.matcher) {
        if let Some(key) = step_key(d, then, f) {
            let Some(rec) = record(d, &rule.id, &key) else {
                return Vec::new();
            };
            if then.key == KeyBy::Actor {
                if let Some(a) = &f.actor {
                    set_who(rec, a);
                }
            }
            // Checked on arrival only when enough `first` entries are held to fire.
            if insert_earliest(&mut rec.b, at, &f.id, |ev| f.ev_into(at, ev))
                && rec.a.len() >= first.count as usize
            {
                check.push((key.into_owned(), vec![f.ev(at)]));
            }
        }
    }
    let mut hits = Vec::new();
    for (key, bs) in check {
        for b in bs {
            let Some(rec) = d.state.keys.get(&rule.id).and_then(|k| k.get(&key)) else {
                continue;
            };
            let cancelled = rec
                .cancel
                .iter()
                .filter(|c| c.at <= b.at)
                .map(|c| c.at + 1)
                .max();
            let lo =
                b.at.saturating_sub(*within_secs)
                    .max(cancelled.unwrap_or(i64::MIN));
            let qualifies = |a: &&Ev| a.at >= lo && a.at <= b.at && a.id != b.id;
            // Counted, and the dedup period looked up, before anything is copied: most
            // `then` entries of a key that fired already fire nothing.
            if rec.a.iter().filter(qualifies).count() < first.count as usize {
                continue;
            }
            let start = period(b.at, rule.dedup_secs);
            let dedupe_key = format!("{}|{key}|{start}", rule.id);
            if d.state.emitted.contains_key(&dedupe_key) {
                continue;
            }
            let before: Vec<Ev> = rec.a.iter().filter(qualifies).cloned().collect();
            let who = keyed_person(then.key, &key, Some(rec));
            if !d.claim(&dedupe_key, start) {
                continue;
            }
            let mut evidence = before;
            let b_id = b.id.clone();
            evidence.push(b);
            let mut h = hit(
                rule,
                dedupe_key,
                (then.key.as_str(), key.clone()),
                who,
                evidence,
                f,
            );
            h.facts.insert(
                "sequence".into(),
                json!({"then_event_id": b_id, "within_seconds": within_secs}),
            );
            hits.push(h);
        }
    }
    hits
}

/// Records the session's network and user agent, and the user's login country; shared by
/// every session rule. Copies text only for what it newly remembers.
pub(super) fn track_session(d: &mut Detector, f: &Facts<'_>) {
    let (Some(at), Some(user), Some(ip)) = (f.at, f.person_actor(), f.ip) else {
        return;
    };
    let batches = d.state.batches;
    if d.network_rules && !f.by_app {
        if let Some(session) = &f.session {
            let asn = if d.geo.has_asn() { d.geo.asn(ip) } else { None };
            if !d.trusted_network(ip, asn) {
                if !d.state.sessions.contains_key(session.as_ref()) {
                    d.state
                        .sessions
                        .insert(session.to_string(), Default::default());
                }
                let Some(s) = d.state.sessions.get_mut(session.as_ref()) else {
                    return;
                };
                s.touched = batches;
                if s.user.is_empty() {
                    s.user = user.id.to_string();
                }
                s.last = s.last.max(at);
                let same_ip = s.last_seen.as_ref().is_some_and(|(last, _)| *last == ip);
                if !same_ip {
                    let mut network = String::new();
                    match asn {
                        Some(n) => {
                            let _ = std::fmt::Write::write_fmt(&mut network, format_args!("AS{n}"));
                        }
                        None => prefix_into(ip, &mut network),
                    }
                    s.last_seen = Some((ip, network));
                    // A new IP for this session: remember it (an IP seen before is held).
                    if s.ips.len() < MAX_PER_SESSION {
                        let text = ip.to_string();
                        if !s.ips.contains(&text) {
                            s.ips.push(text);
                        }
                    }
                }
                if let Some((_, network)) = &s.last_seen {
                    earliest(&mut s.networks, network, f, at);
                }
                if let Some(agent) = f.ua {
                    if s.last_ua.as_ref().is_none_or(|(raw, _)| raw != agent) {
                        let mut normal = String::new();
                        normalise_ua_into(agent, &mut normal);
                        s.last_ua = Some((agent.to_string(), normal));
                    }
                    if let Some((_, normal)) = &s.last_ua {
                        earliest(&mut s.agents, normal, f, at);
                    }
                }
            }
        }
    }
    if d.country_rules && f.action == "user_login" {
        if let Some(country) = d.geo.country(ip) {
            if !d.state.countries.contains_key(user.id.as_ref()) {
                d.state
                    .countries
                    .insert(user.id.to_string(), Default::default());
            }
            let Some(c) = d.state.countries.get_mut(user.id.as_ref()) else {
                return;
            };
            c.touched = batches;
            let ev = f.ev(at);
            let room = c.seen.len() < MAX_COUNTRIES_PER_USER;
            match c.seen.get_mut(&country) {
                Some(seen) => {
                    if ev < seen.first {
                        seen.first = ev;
                    }
                    seen.last = seen.last.max(at);
                }
                None if room => {
                    c.seen.insert(
                        country,
                        CountrySeen {
                            first: ev,
                            last: at,
                        },
                    );
                }
                None => {}
            }
        }
    }
}

/// Keeps the earliest event per value, for at most [`MAX_PER_SESSION`] values. The event and
/// the value are only copied when they are kept.
fn earliest(map: &mut std::collections::BTreeMap<String, Ev>, value: &str, f: &Facts<'_>, at: i64) {
    let room = map.len() < MAX_PER_SESSION;
    match map.get_mut(value) {
        Some(held) if (at, f.id.as_ref()) < (held.at, held.id.as_str()) => f.ev_into(at, held),
        Some(_) => {}
        None if room => {
            map.insert(value.to_string(), f.ev(at));
        }
        None => {}
    }
}

/// The session rules, over what [`track_session`] recorded.
pub(super) fn session<'r>(
    d: &mut Detector,
    rule: &'r DetectionRule,
    check: SessionCheck,
    history_secs: i64,
    f: &Facts<'_>,
) -> Vec<Hit<'r>> {
    match check {
        SessionCheck::Network | SessionCheck::NetworkAndUserAgent => {
            network(d, rule, check == SessionCheck::NetworkAndUserAgent, f)
        }
        SessionCheck::Country => country(d, rule, history_secs, f),
    }
}

/// The second-earliest value's event: when a set of two or more came to be.
fn second(map: &std::collections::BTreeMap<String, Ev>) -> Option<Ev> {
    let mut evs: Vec<&Ev> = map.values().collect();
    evs.sort();
    evs.get(1).map(|e| (*e).clone())
}

fn network<'r>(
    d: &mut Detector,
    rule: &'r DetectionRule,
    with_ua: bool,
    f: &Facts<'_>,
) -> Vec<Hit<'r>> {
    let Some(id) = &f.session else {
        return Vec::new();
    };
    let Some(s) = d.state.sessions.get(id.as_ref()) else {
        return Vec::new();
    };
    // Most sessions stay on one network (and agent): nothing to look at.
    if s.networks.len() < 2 || (with_ua && s.agents.len() < 2) {
        return Vec::new();
    }
    let Some(net) = second(&s.networks) else {
        return Vec::new();
    };
    let ua = if with_ua {
        match second(&s.agents) {
            Some(ua) => Some(ua),
            None => return Vec::new(),
        }
    } else {
        None
    };
    let at = ua.as_ref().map_or(net.at, |u| u.at.max(net.at));
    let mut evidence: Vec<Ev> = s.networks.values().cloned().collect();
    if with_ua {
        evidence.extend(s.agents.values().cloned());
    }
    evidence.sort();
    evidence.dedup_by(|a, b| a.id == b.id);
    let networks: Vec<String> = s.networks.keys().cloned().collect();
    let agents = s.agents.len();
    let user = Person {
        id: s.user.clone(),
        ..Person::default()
    };
    let ips = s.ips.clone();
    let start = period(at, rule.dedup_secs);
    let dedupe_key = format!("{}|{id}|{start}", rule.id);
    if !d.claim(&dedupe_key, start) {
        return Vec::new();
    }
    let actor = f
        .actor
        .as_ref()
        .filter(|a| a.id == user.id.as_str())
        .map_or(user, PersonRef::to_person);
    let mut h = hit(
        rule,
        dedupe_key,
        ("session", id.to_string()),
        Some(actor),
        evidence,
        f,
    );
    h.at = h.at.max(at);
    h.ips = ips;
    h.sessions = vec![id.to_string()];
    h.facts.insert(
        "session".into(),
        json!({"networks": networks, "user_agents": agents,
        "network_kind": if d.geo.has_asn() { "asn" } else { "prefix" }}),
    );
    vec![h]
}

fn country<'r>(
    d: &mut Detector,
    rule: &'r DetectionRule,
    history_secs: i64,
    f: &Facts<'_>,
) -> Vec<Hit<'r>> {
    if f.action != "user_login" {
        return Vec::new();
    }
    let Some(user) = f.person_actor() else {
        return Vec::new();
    };
    let Some(c) = d.state.countries.get(user.id.as_ref()) else {
        return Vec::new();
    };
    let user = user.to_person();
    // A country is new when another country's logins reach into the history before its first
    // login: the user was already known, from elsewhere.
    let mut found: Vec<(String, Ev, Ev, Vec<String>)> = Vec::new();
    for (code, seen) in &c.seen {
        let since = seen.first.at.saturating_sub(history_secs);
        let earlier: Vec<(&String, &CountrySeen)> = c
            .seen
            .iter()
            .filter(|(other, o)| *other != code && o.first < seen.first && o.last >= since)
            .collect();
        if let Some((_, prior)) = earlier.iter().min_by(|a, b| a.1.first.cmp(&b.1.first)) {
            let previous = earlier.iter().map(|(k, _)| (*k).clone()).collect();
            found.push((
                code.clone(),
                prior.first.clone(),
                seen.first.clone(),
                previous,
            ));
        }
    }
    let mut hits = Vec::new();
    for (code, prior, first, previous) in found {
        let start = period(first.at, rule.dedup_secs);
        let dedupe_key = format!("{}|{}|{code}|{start}", rule.id, user.id);
        if !d.claim(&dedupe_key, start) {
            continue;
        }
        let actor = Some(user.clone());
        let mut h = hit(
            rule,
            dedupe_key,
            ("actor", user.id.clone()),
            actor,
            vec![prior, first],
            f,
        );
        h.facts.insert("country".into(), Value::from(code));
        h.facts.insert("previous_countries".into(), json!(previous));
        hits.push(h);
    }
    hits
}
