//! What the analysis remembers between pages and across restarts, and how it is kept small.
//!
//! The state is one JSON value saved inside the checkpoint after every page, so it must stay
//! bounded whatever the traffic: every collection below has a cap, and [`State::prune`] drops
//! what can no longer matter (windows far behind the newest event time and not touched by the
//! last two pages, baseline days older than the history, emitted-finding keys older than
//! [`EMITTED_RETENTION_SECS`]). All maps are `BTreeMap`s so the JSON, and therefore the
//! checkpoint, is byte-for-byte the same for the same input.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The format of [`State`]; a state with another version is refused (with a clear message)
/// rather than misread.
pub(crate) const STATE_VERSION: u32 = 1;
/// Event ids kept per reason per window (enough to name the evidence in a finding).
pub(crate) const MAX_IDS_PER_REASON: usize = 32;
/// Event ids remembered per window to ignore an event seen twice.
pub(crate) const MAX_SEEN_PER_WINDOW: usize = 512;
/// Files listed per window in the downloads context (the count goes on past it).
pub(crate) const MAX_FILES_PER_WINDOW: usize = 50;
/// Source IPs remembered per window.
pub(crate) const MAX_IPS_PER_WINDOW: usize = 16;
/// Windows kept in all: roughly two windows of a 10,000-person org's downloaders.
pub(crate) const MAX_WINDOWS: usize = 20_000;
/// Emitted-finding keys kept in all.
pub(crate) const MAX_EMITTED: usize = 20_000;
/// Users with baseline history kept in all.
pub(crate) const MAX_BASELINE_USERS: usize = 10_000;
/// Event ids remembered per user per day for baselines.
pub(crate) const MAX_IDS_PER_DAY: usize = 64;
/// Seconds in a (UTC) day: baselines count anomalies per user per day.
pub(crate) const DAY_SECS: i64 = 86_400;
/// How long (in event time behind the newest event) a finding's key is kept, so that a
/// late-indexed or re-read event cannot make the same finding twice.
pub(crate) const EMITTED_RETENTION_SECS: i64 = 8 * 86_400;

/// The analysis state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// [`STATE_VERSION`].
    pub(crate) version: u32,
    /// Pages processed so far; windows remember the page that last touched them.
    #[serde(default)]
    pub(crate) pages: u64,
    /// The window length (s) the windows were cut with; windows cut with another length are
    /// dropped on start rather than mixed.
    #[serde(default)]
    pub(crate) window_secs: i64,
    /// The newest `@timestamp` seen (Unix ms): the clock that ages windows and days, so that
    /// replaying history ages it exactly as living through it did.
    #[serde(default)]
    pub(crate) high_water_ms: Option<i64>,
    /// Actor (user.id) → window start (Unix s) → what the window holds.
    #[serde(default)]
    pub(crate) windows: BTreeMap<String, BTreeMap<i64, Window>>,
    /// Dedupe key → the finding emitted under it.
    #[serde(default)]
    pub(crate) emitted: BTreeMap<String, Emitted>,
    /// Actor → reason → day (days since the Unix epoch, UTC) → that day's count.
    #[serde(default)]
    pub(crate) baselines: BTreeMap<String, BTreeMap<String, BTreeMap<i64, Day>>>,
}

/// One actor's correlation window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Window {
    /// The page (see [`State::pages`]) that last added to this window.
    pub(crate) touched: u64,
    /// Normalised reason → ids of the events that carried it.
    pub(crate) reasons: BTreeMap<String, BTreeSet<String>>,
    /// Ids of the signal events already counted (anomalies, unexpected-UA events).
    pub(crate) seen: BTreeSet<String>,
    /// The actor's email, as last seen.
    pub(crate) email: Option<String>,
    /// The actor's name, as last seen.
    pub(crate) full_name: Option<String>,
    /// Source IPs of the signal events.
    pub(crate) ips: BTreeSet<String>,
    /// The newest signal event's time (Unix ms) and IP.
    pub(crate) last: Option<(i64, Option<String>)>,
    /// The actor's `file_downloaded` events in this window.
    pub(crate) downloads: Downloads,
}

/// A bounded record of downloads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Downloads {
    /// Distinct download events seen (goes on counting past the file list's cap).
    pub(crate) count: u64,
    /// The newest downloads, newest first, at most [`MAX_FILES_PER_WINDOW`].
    pub(crate) files: Vec<FileRef>,
    /// Ids of download events counted (bounded like the list; used to ignore repeats).
    pub(crate) seen: BTreeSet<String>,
}

/// One downloaded file.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct FileRef {
    /// When (Unix ms).
    pub(crate) at_ms: i64,
    /// The `file_downloaded` event's id.
    pub(crate) event_id: String,
    /// `slack.audit.entity.id`.
    pub(crate) id: Option<String>,
    /// `slack.audit.entity.name`.
    pub(crate) name: Option<String>,
}

impl Downloads {
    /// Adds one download unless its event was counted already; keeps the newest files.
    pub(crate) fn add(&mut self, file: FileRef) {
        if self.seen.contains(&file.event_id) {
            return;
        }
        self.count = self.count.saturating_add(1);
        if self.seen.len() < MAX_SEEN_PER_WINDOW {
            self.seen.insert(file.event_id.clone());
        }
        // Newest first; ties broken by the rest of the record so arrival order never matters.
        let pos = self
            .files
            .partition_point(|f| (f.at_ms, &f.event_id) > (file.at_ms, &file.event_id));
        self.files.insert(pos, file);
        self.files.truncate(MAX_FILES_PER_WINDOW);
    }
}

/// A finding already emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Emitted {
    /// Its `event.id`.
    pub(crate) id: String,
    /// Start of its window or day (Unix s), for pruning.
    pub(crate) at: i64,
}

/// One user's count of one reason on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Day {
    /// Distinct anomaly events carrying the reason.
    pub(crate) count: u32,
    /// Their ids (bounded), to ignore repeats and to cite as evidence.
    pub(crate) ids: BTreeSet<String>,
    /// A baseline finding was emitted for this day.
    pub(crate) fired: bool,
}

impl State {
    /// An empty state at the current version.
    pub(crate) fn new() -> State {
        State {
            version: STATE_VERSION,
            ..State::default()
        }
    }

    /// Drops what can no longer matter, then enforces the caps (dropping the oldest first).
    pub(crate) fn prune(&mut self, window_secs: i64, history_days: u32) {
        let Some(hw) = self.high_water_ms.map(|ms| ms.div_euclid(1000)) else {
            return;
        };
        let pages = self.pages;
        // Live, events arrive roughly in time order: the current window and the one before it
        // (for late-indexed events) are enough. A backfill reads newest first, far behind the
        // high-water mark; windows the last two pages touched stay so that an actor's events
        // spread over adjacent pages still correlate.
        let horizon = hw.saturating_sub(window_secs);
        // Saturating: a hand-edited state must not be able to crash the process.
        for windows in self.windows.values_mut() {
            windows.retain(|start, w| {
                start.saturating_add(window_secs) > horizon || w.touched.saturating_add(1) >= pages
            });
        }
        self.windows.retain(|_, w| !w.is_empty());
        let count: usize = self.windows.values().map(BTreeMap::len).sum();
        if count > MAX_WINDOWS {
            let mut all: Vec<(u64, i64, String)> = self
                .windows
                .iter()
                .flat_map(|(a, ws)| ws.iter().map(move |(s, w)| (w.touched, *s, a.clone())))
                .collect();
            all.sort();
            for (_, start, actor) in all.into_iter().take(count - MAX_WINDOWS) {
                if let Some(ws) = self.windows.get_mut(&actor) {
                    ws.remove(&start);
                }
            }
            self.windows.retain(|_, w| !w.is_empty());
        }
        let keep_from = hw.saturating_sub(EMITTED_RETENTION_SECS);
        self.emitted.retain(|_, e| e.at >= keep_from);
        if self.emitted.len() > MAX_EMITTED {
            let mut ages: Vec<(i64, String)> = self
                .emitted
                .iter()
                .map(|(k, e)| (e.at, k.clone()))
                .collect();
            ages.sort();
            for (_, k) in ages.into_iter().take(self.emitted.len() - MAX_EMITTED) {
                self.emitted.remove(&k);
            }
        }
        self.prune_baselines(
            hw.div_euclid(86_400)
                .saturating_sub(i64::from(history_days)),
        );
    }

    fn prune_baselines(&mut self, first_day: i64) {
        for reasons in self.baselines.values_mut() {
            for days in reasons.values_mut() {
                days.retain(|d, _| *d >= first_day);
            }
            reasons.retain(|_, d| !d.is_empty());
        }
        self.baselines.retain(|_, r| !r.is_empty());
        if self.baselines.len() > MAX_BASELINE_USERS {
            let last_day = |r: &BTreeMap<String, BTreeMap<i64, Day>>| {
                r.values()
                    .filter_map(|d| d.keys().next_back().copied())
                    .max()
                    .unwrap_or(i64::MIN)
            };
            let mut ages: Vec<(i64, String)> = self
                .baselines
                .iter()
                .map(|(a, r)| (last_day(r), a.clone()))
                .collect();
            ages.sort();
            for (_, a) in ages
                .into_iter()
                .take(self.baselines.len() - MAX_BASELINE_USERS)
            {
                self.baselines.remove(&a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_keep_the_newest_whatever_the_order() {
        let f = |t: i64| FileRef {
            at_ms: t,
            event_id: format!("e{t}"),
            id: None,
            name: None,
        };
        let mut a = Downloads::default();
        let mut b = Downloads::default();
        for t in 0..(MAX_FILES_PER_WINDOW as i64 + 10) {
            a.add(f(t));
        }
        for t in (0..(MAX_FILES_PER_WINDOW as i64 + 10)).rev() {
            b.add(f(t));
        }
        assert_eq!(a.files, b.files);
        assert_eq!(a.count, 60);
        assert_eq!(a.files[0].at_ms, 59);
        a.add(f(59));
        assert_eq!(a.count, 60, "a repeated event is not counted twice");
    }

    #[test]
    fn prune_drops_old_windows_and_keeps_recently_touched_ones() {
        let mut s = State::new();
        s.pages = 10;
        s.high_water_ms = Some(100_000 * 1000);
        let w = |touched| Window {
            touched,
            reasons: [("tor".to_string(), BTreeSet::new())].into(),
            ..Window::default()
        };
        s.windows.entry("U1".into()).or_default().insert(0, w(1));
        s.windows.entry("U1".into()).or_default().insert(3600, w(9));
        s.windows
            .entry("U2".into())
            .or_default()
            .insert(100_000 - 3600, w(1));
        s.prune(3600, 30);
        assert_eq!(
            s.windows["U1"].keys().copied().collect::<Vec<_>>(),
            vec![3600]
        );
        assert!(s.windows.contains_key("U2"));
    }
}
