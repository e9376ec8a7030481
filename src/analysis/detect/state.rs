//! What the detection engine remembers between batches and across restarts, and its caps.
//!
//! Serialised with serde for the checkpoint, every map in key order, so the same input gives the
//! same bytes. The large maps, looked up several times per entry, are hashed ([`Index`]) and
//! sorted only when saved; nothing that decides output iterates them in their own order. Every collection is capped; at a cap the entries whose newest event is
//! oldest go first (see [`DetectState::prune`]). What a cap costs is written next to it.
//!
//! A record is kept while its newest event lies within its rule's reach of the newest event
//! time seen (the high-water mark), or while one of the last two batches touched it: a backfill
//! reads newest first, far behind the high-water mark, and one key's events are spread over
//! adjacent pages.

use foldhash::HashMap;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;

/// A string-keyed map looked up on every entry: a `HashMap` with foldhash's randomly seeded
/// hasher (the seed is per process, so ids crafted in advance cannot make lookups slow; std's
/// SipHash was a tenth of the rule evaluation's cost), saved as a JSON object in key order, the
/// same bytes a `BTreeMap` gave, and read from one. Anything whose order decides output sorts
/// first ([`evict`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Index<V>(pub HashMap<String, V>);

impl<V> Default for Index<V> {
    fn default() -> Self {
        Index(HashMap::default())
    }
}

impl<V> std::ops::Deref for Index<V> {
    type Target = HashMap<String, V>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<V> std::ops::DerefMut for Index<V> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<V: Serialize> Serialize for Index<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut all: Vec<(&String, &V)> = self.0.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        s.collect_map(all)
    }
}

/// Emitted dedup keys outlive their period by this much (event time), so that a late-indexed
/// or re-read entry cannot fire the same finding twice.
pub const EMITTED_SLACK_SECS: i64 = 8 * 86_400;
/// Format of [`DetectState`]; another version is refused rather than misread.
pub const DETECT_STATE_VERSION: u32 = 1;
/// Dedup keys of emitted findings kept. At the cap the oldest periods go first; a finding for
/// an evicted key could repeat if its evidence arrived again.
pub const MAX_EMITTED: usize = 20_000;
/// Keys with events held per threshold or sequence rule, unless the rule's `max_keys` says
/// otherwise. Each rule has its own cap, so a flood of keys on one rule (failed logins for
/// thousands of made-up users) never evicts another rule's state. At a rule's cap its least
/// recently active keys are forgotten, and a warning names the rule: a burst spread across
/// the eviction is missed.
pub const DEFAULT_MAX_KEYS_PER_RULE: usize = 10_000;
/// Events held per key per rule (and per step of a sequence). At the cap the events farthest
/// from the key's newest are dropped; a threshold up to this count still fires.
pub const MAX_EVENTS_PER_KEY: usize = 256;
/// A sequence's `then` events held per key: the earliest ones. They only matter when a `first`
/// arrives late (newest-first input), and then the earliest `then` after it is the one that
/// decides; `then` entries that arrive after their `first` are checked on arrival. A small cap
/// keeps "any action by this user" (activity after deactivation) cheap for every user.
pub const MAX_THEN_PER_KEY: usize = 2;
/// Sessions tracked. At the cap the least recently seen sessions are forgotten; a forgotten
/// session starts afresh with the next network it is seen from.
pub const MAX_SESSIONS: usize = 20_000;
/// Networks and user agents remembered per session (beyond that the session has fired anyway).
pub const MAX_PER_SESSION: usize = 8;
/// How long a session is remembered after its last event (event time).
pub const SESSION_TTL_SECS: i64 = 30 * 86_400;
/// Users with a login-country history. At the cap the least recently seen users are forgotten
/// (their next login from any country starts a new history and fires nothing).
pub const MAX_COUNTRY_USERS: usize = 20_000;
/// Countries remembered per user.
pub const MAX_COUNTRIES_PER_USER: usize = 32;

/// One remembered entry: time and id, and where it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ev {
    /// Event time, Unix seconds.
    pub at: i64,
    /// The entry's id (or its synthetic id).
    pub id: String,
    /// `context.ip_address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `context.session_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// Events of one key for one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyEvents {
    /// The batch that last touched it.
    pub touched: u64,
    /// Threshold events, or a sequence's `first` events; sorted, distinct.
    pub a: Vec<Ev>,
    /// A sequence's `then` events; sorted, distinct.
    pub b: Vec<Ev>,
    /// A sequence's `unless` events; sorted, distinct.
    pub cancel: Vec<Ev>,
    /// The actor's email and name as last seen (for the finding).
    pub who: Option<(Option<String>, Option<String>)>,
}

impl KeyEvents {
    /// The newest event time held.
    pub fn newest(&self) -> i64 {
        [&self.a, &self.b, &self.cancel]
            .iter()
            .filter_map(|v| v.last().map(|e| e.at))
            .max()
            .unwrap_or(i64::MIN)
    }
}

/// Adds the event at `at` with id `id` to a sorted list of at most [`MAX_THEN_PER_KEY`],
/// keeping the earliest events; `fill` writes it over an event (a fresh one, or the one it
/// pushes out of a full list, whose buffers it reuses). Returns whether it was new; a later
/// event than all of a full list's is not kept, and the check for it runs on arrival all the
/// same.
pub fn insert_earliest(list: &mut Vec<Ev>, at: i64, id: &str, fill: impl FnOnce(&mut Ev)) -> bool {
    if list.iter().any(|e| e.id == id) {
        return false;
    }
    // Ids differ from every held one, so (time, id) orders it as the whole event would.
    let key = |e: &Ev| (e.at, e.id.as_str()) < (at, id);
    if list.len() >= MAX_THEN_PER_KEY && list.last().is_some_and(key) {
        return true;
    }
    let mut ev = if list.len() >= MAX_THEN_PER_KEY {
        list.pop().unwrap_or_default()
    } else {
        Ev::default()
    };
    let pos = list.partition_point(key);
    fill(&mut ev);
    list.insert(pos, ev);
    list.truncate(MAX_THEN_PER_KEY);
    true
}

/// Adds `ev` to a sorted list unless its id is there; at the cap, drops the event farthest
/// from the newest (the oldest). Returns whether it was new.
pub fn insert(list: &mut Vec<Ev>, ev: Ev) -> bool {
    if list.iter().any(|e| e.id == ev.id) {
        return false;
    }
    let pos = list.partition_point(|e| e < &ev);
    list.insert(pos, ev);
    if list.len() > MAX_EVENTS_PER_KEY {
        list.remove(0);
    }
    true
}

/// One session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Session {
    /// The batch that last touched it.
    pub touched: u64,
    /// The user it belongs to (the first actor seen with it).
    pub user: String,
    /// Newest event time seen.
    pub last: i64,
    /// Network → the earliest event seen from it.
    pub networks: BTreeMap<String, Ev>,
    /// Normalised user agent → the earliest event seen with it.
    pub agents: BTreeMap<String, Ev>,
    /// Source IPs seen (for `related.ip`), at most [`MAX_PER_SESSION`].
    pub ips: Vec<String>,
    /// The last entry's IP and network, and its user agent as sent and normalised: most
    /// entries of a session repeat them, and need neither formatted again. Not saved.
    #[serde(skip)]
    pub last_seen: Option<(std::net::IpAddr, String)>,
    /// See `last_seen`.
    #[serde(skip)]
    pub last_ua: Option<(String, String)>,
}

/// What is saved, without the caches.
impl PartialEq for Session {
    fn eq(&self, o: &Session) -> bool {
        (
            self.touched,
            &self.user,
            self.last,
            &self.networks,
            &self.agents,
            &self.ips,
        ) == (o.touched, &o.user, o.last, &o.networks, &o.agents, &o.ips)
    }
}

impl Eq for Session {}

/// One user's login countries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Countries {
    /// The batch that last touched it.
    pub touched: u64,
    /// Country ISO code → its earliest and newest login seen.
    pub seen: BTreeMap<String, CountrySeen>,
}

/// Logins from one country.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CountrySeen {
    /// The earliest.
    pub first: Ev,
    /// The newest's time (Unix s).
    pub last: i64,
}

impl Countries {
    fn newest(&self) -> i64 {
        self.seen.values().map(|c| c.last).max().unwrap_or(i64::MIN)
    }
}

/// The detection state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectState {
    /// [`DETECT_STATE_VERSION`].
    pub version: u32,
    /// Batches evaluated so far.
    pub batches: u64,
    /// Newest event time seen (Unix s).
    pub high_water: Option<i64>,
    /// Dedup key → start of its period (Unix s).
    pub emitted: Index<i64>,
    /// Rule id → key → events.
    pub keys: Index<Index<KeyEvents>>,
    /// Session id → what it was seen from.
    pub sessions: Index<Session>,
    /// User id → login countries.
    pub countries: Index<Countries>,
}

impl Default for DetectState {
    fn default() -> Self {
        DetectState {
            version: DETECT_STATE_VERSION,
            batches: 0,
            high_water: None,
            emitted: Index::default(),
            keys: Index::default(),
            sessions: Index::default(),
            countries: Index::default(),
        }
    }
}

/// How far back each rule's records matter, for pruning.
pub struct Reach<'a> {
    /// Rule id → seconds (window or within, plus the dedup period).
    pub per_rule: &'a BTreeMap<String, i64>,
    /// Longest country history of any rule.
    pub country_secs: i64,
    /// Longest dedup period of any rule.
    pub dedup_secs: i64,
    /// Rule id → its key cap (`max_keys`).
    pub max_keys: &'a BTreeMap<String, usize>,
}

impl DetectState {
    /// Drops what can no longer matter, then enforces the caps. Returns the rules whose key
    /// cap was hit, with how many keys each forgot.
    pub fn prune(&mut self, reach: &Reach<'_>) -> Vec<(String, usize)> {
        let Some(hw) = self.high_water else {
            return Vec::new();
        };
        let recent = |touched: u64, batches: u64| touched.saturating_add(1) >= batches;
        let batches = self.batches;
        for (rule, keys) in self.keys.iter_mut() {
            let span = reach.per_rule.get(rule).copied().unwrap_or(0);
            keys.retain(|_, k| k.newest() >= hw.saturating_sub(span) || recent(k.touched, batches));
        }
        self.keys.retain(|_, k| !k.is_empty());
        let mut capped = Vec::new();
        for (rule, keys) in self.keys.iter_mut() {
            let cap = reach
                .max_keys
                .get(rule)
                .copied()
                .unwrap_or(DEFAULT_MAX_KEYS_PER_RULE);
            let over = keys.len().saturating_sub(cap);
            if over > 0 {
                // Records holding only a sequence's `then` events go first: they matter only
                // if a `first` arrives late, where a `first` (a deactivation) is the evidence.
                evict(keys, cap, |k| {
                    let holds_first = !k.a.is_empty() || !k.cancel.is_empty();
                    (holds_first, k.touched, k.newest())
                });
                capped.push((rule.clone(), over));
            }
        }
        self.sessions.retain(|_, s| {
            s.last >= hw.saturating_sub(SESSION_TTL_SECS) || recent(s.touched, batches)
        });
        evict(&mut self.sessions, MAX_SESSIONS, |s| (s.touched, s.last));
        let country_from = hw.saturating_sub(reach.country_secs);
        for c in self.countries.values_mut() {
            if !recent(c.touched, batches) {
                c.seen.retain(|_, s| s.last >= country_from);
            }
        }
        self.countries.retain(|_, c| !c.seen.is_empty());
        evict(&mut self.countries, MAX_COUNTRY_USERS, |c| {
            (c.touched, c.newest())
        });
        // A period's key must outlive every event that could still fall into it.
        let keep_from = hw.saturating_sub(reach.dedup_secs.saturating_add(EMITTED_SLACK_SECS));
        self.emitted.retain(|_, start| *start >= keep_from);
        evict(&mut self.emitted, MAX_EMITTED, |start| (0, *start));
        // In rule order, as the warnings were always said.
        capped.sort();
        capped
    }
}

/// Keeps the `cap` entries whose `age` is greatest (the smallest go first; ties by key, so the
/// map's own order never decides).
fn evict<V, A: Ord, F: Fn(&V) -> A>(map: &mut HashMap<String, V>, cap: usize, age: F) {
    if map.len() <= cap {
        return;
    }
    let mut ages: Vec<(A, String)> = map.iter().map(|(k, v)| (age(v), k.clone())).collect();
    ages.sort();
    for (_, k) in ages.into_iter().take(map.len() - cap) {
        map.remove(&k);
    }
}
