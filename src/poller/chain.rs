//! Whether Slack's answers make sense for the chain being read: the checks the poller runs
//! on a page before any of it is delivered, and how a chain is restarted when they fail.

use super::WindowEnd;
use crate::checkpoint::{Window, AUDIT_LOGS_EPOCH};
use crate::shutdown::Shutdown;
use crate::slack::{EntryKey, Error as SlackError};
use std::collections::HashSet;
use std::time::Duration;

/// How many times a cursor that Slack returned before is fetched again before the chain is
/// restarted (once), and then the run stops.
pub(super) const MAX_CURSOR_REPEATS: u32 = 3;

/// Pages in a row that read nothing older than the chain had before the chain counts as
/// stalled. Slack may send empty pages with a cursor (with filters, perhaps many while it
/// scans), so the bound is generous; it only has to make an endless chain end.
pub(super) const MAX_IDLE_PAGES: u32 = 100;

/// `invalid_cursor` restarts without progress in between before the run stops.
pub(super) const MAX_CURSOR_RESTARTS: u32 = 3;

/// How many `invalid_range` answers in a row, after clamping, before giving up.
const MAX_RANGE_RETRIES: u32 = 3;

/// What the poller remembers of a chain to judge whether it advances: the cursors it has
/// returned (as hashes: a cursor's size is Slack's choice), and counts of what went wrong.
#[derive(Debug, Default)]
pub(super) struct ChainGuard {
    cursors: HashSet<u64>,
    /// The oldest date read in the chain so far.
    pub(super) oldest: Option<i64>,
    pub(super) repeats: u32,
    pub(super) idle_pages: u32,
    pub(super) restarted: bool,
    pub(super) cursor_restarts: u32,
}

impl ChainGuard {
    pub(super) fn new(w: &Window) -> ChainGuard {
        let mut g = ChainGuard::default();
        g.restart(w);
        g
    }

    fn hash(c: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        c.hash(&mut h);
        h.finish()
    }

    pub(super) fn seen(&self, c: &str) -> bool {
        self.cursors.contains(&Self::hash(c))
    }

    pub(super) fn insert(&mut self, c: &str) {
        self.cursors.insert(Self::hash(c));
    }

    /// A new chain in `w` (its saved cursor, if any, counts as returned).
    pub(super) fn restart(&mut self, w: &Window) {
        self.cursors.clear();
        if let Some(c) = &w.cursor {
            self.insert(c);
        }
        self.oldest = None;
        self.repeats = 0;
        self.idle_pages = 0;
    }

    /// True when a page whose oldest date is `page_oldest` read something older than the
    /// chain had (overlap entries count: a long overlap span takes pages too).
    fn advanced(&mut self, page_oldest: Option<i64>) -> bool {
        match (page_oldest, self.oldest) {
            (Some(p), Some(o)) if p >= o => false,
            (Some(p), _) => {
                self.oldest = Some(p);
                true
            }
            (None, _) => false,
        }
    }

    /// Whether the chain stalls with this page: the page read nothing older than the chain
    /// had, for the [`MAX_IDLE_PAGES`]th time in a row (a chain's last page never stalls).
    pub(super) fn stalls(
        &mut self,
        w: &Window,
        keys: &[EntryKey],
        query_oldest: i64,
        last: bool,
    ) -> bool {
        // The page's oldest date in the asked range: a chain advances when it goes down.
        let page_oldest = keys
            .iter()
            .filter_map(|k| k.date_create)
            .filter(|ts| (query_oldest..=w.latest).contains(ts))
            .min();
        if self.advanced(page_oldest) {
            self.progress();
            false
        } else {
            self.idle_pages += 1;
            !last && self.idle_pages >= MAX_IDLE_PAGES
        }
    }

    /// A page read something older than before.
    fn progress(&mut self) {
        self.repeats = 0;
        self.idle_pages = 0;
        self.cursor_restarts = 0;
    }
}

/// Slack refused a request: `invalid_cursor` restarts the chain below what was delivered,
/// `invalid_range` clamps the window and waits; `None` reads on, `Some` ends the window.
pub(super) async fn refused(
    e: SlackError,
    w: &mut Window,
    guard: &mut ChainGuard,
    range_retries: &mut u32,
    shutdown: &mut Shutdown,
) -> Result<Option<WindowEnd>, crate::Error> {
    match e {
        SlackError::InvalidCursor if w.cursor.is_some() => {
            guard.cursor_restarts += 1;
            if guard.cursor_restarts > MAX_CURSOR_RESTARTS {
                return Err(violation("invalid_cursor_loop", format!(
                    "Slack refused its own cursor {} times in a row with no page of progress in between (window {}..={}); stopping, the checkpoint stays at the last page delivered",
                    guard.cursor_restarts, w.oldest, w.latest
                )));
            }
            *w = restart_chain(w.clone());
            guard.restart(w);
            tracing::warn!(oldest = w.oldest, latest = w.chain_latest, "Slack refused the saved cursor; re-reading the window below what was delivered");
            crate::metrics::error("slack", "invalid_cursor");
            Ok(None)
        }
        SlackError::InvalidRange if *range_retries < MAX_RANGE_RETRIES => {
            *range_retries += 1;
            *w = clamp_window(w.clone(), super::now());
            guard.restart(w);
            tracing::warn!(oldest = w.oldest, latest = w.chain_latest, "Slack refused the range (invalid_range); clamped and retrying");
            let delay = Duration::from_secs(1 << *range_retries);
            Ok(shutdown.sleep(delay).await.then_some(WindowEnd::Shutdown))
        }
        SlackError::InvalidRange => Err(crate::Error::Slack(SlackError::Fatal {
            code: "invalid_range".into(),
            hint: "Slack keeps refusing the window even clamped to the past; audit logs may have been enabled later: lower --initial-lookback or move the checkpoint forward",
        })),
        e => Err(e.into()),
    }
}

/// A chain that does not advance: fetch the same cursor again (a few times, `cursor_repeated`
/// only), then restart the chain once, then stop. `Some` ends the window (shutdown).
pub(super) async fn stalled(
    w: &mut Window,
    guard: &mut ChainGuard,
    kind: &'static str,
    shutdown: &mut Shutdown,
) -> Result<Option<WindowEnd>, crate::Error> {
    if kind == "cursor_repeated" && guard.repeats <= MAX_CURSOR_REPEATS {
        // 0.5 s, 1 s, 2 s: an empty page may carry its own cursor once in a while.
        let delay = Duration::from_millis(250 << guard.repeats);
        if shutdown.sleep(delay).await {
            return Ok(Some(WindowEnd::Shutdown));
        }
        return Ok(None);
    }
    if guard.restarted {
        return Err(violation(kind, format!(
            "the cursor chain of window {}..={} still does not advance after {} retries and a restart of the chain; stopping, the checkpoint stays at the last page delivered (low {:?})",
            w.oldest, w.latest, MAX_CURSOR_REPEATS, w.low
        )));
    }
    *w = restart_chain(w.clone());
    guard.restart(w);
    guard.restarted = true;
    tracing::warn!(
        oldest = w.oldest,
        latest = w.chain_latest,
        "restarting the chain below what was delivered"
    );
    Ok(None)
}

/// A protocol violation that stops the run (exit 1), counted and with its specifics.
pub(super) fn violation(kind: &'static str, detail: String) -> crate::Error {
    crate::metrics::protocol_violation(kind);
    tracing::warn!(kind, %detail, "Slack broke the Audit Logs protocol");
    crate::Error::Slack(SlackError::Protocol { kind, detail })
}

/// Checks a page's dates against the chain before any of it is delivered.
///
/// Entries of the window dated after the chain's `low` mean Slack's cursor went back in
/// time. They may be ones already delivered or ones never delivered; no ids are kept above
/// `low`, so the page is refused (the run stops, exit 1) rather than guessed at. Entries
/// dated outside the range asked for are only warned about and counted: they are delivered.
pub(super) fn judge_dates(
    w: &Window,
    keys: &[EntryKey],
    query_oldest: i64,
) -> Result<(), crate::Error> {
    let (mut above, mut newest) = (0usize, i64::MIN);
    let (mut outside, mut out_min, mut out_max) = (0usize, i64::MAX, i64::MIN);
    for ts in keys.iter().filter_map(|k| k.date_create) {
        if ts < query_oldest || ts > w.latest {
            outside += 1;
            out_min = out_min.min(ts);
            out_max = out_max.max(ts);
        } else if w.low.is_some_and(|low| ts > low) {
            above += 1;
            newest = newest.max(ts);
        }
    }
    if outside > 0 {
        crate::metrics::protocol_violation("entry_outside_window");
        tracing::warn!(
            count = outside,
            oldest_date = out_min,
            newest_date = out_max,
            asked_oldest = query_oldest,
            asked_latest = w.latest,
            "Slack sent entries dated outside the range asked for; delivering them (a later window may deliver them again)"
        );
    }
    match w.low {
        Some(low) if above > 0 => Err(violation(
            "cursor_back_in_time",
            format!(
                "a page of {} entries holds {above} dated after second {low}, the oldest already delivered in this chain (newest {newest}, window {}..={}): the cursor went back in time. The page is not delivered and the checkpoint stays at the last page delivered; a restart meets the same page",
                keys.len(),
                w.oldest,
                w.latest
            ),
        )),
        _ => Ok(()),
    }
}

/// After `invalid_cursor`: a fresh chain over `[oldest, low]` (the whole window when nothing
/// was delivered), keeping `low` and its ids so they are skipped.
pub(super) fn restart_chain(mut w: Window) -> Window {
    w.cursor = None;
    w.chain_latest = w.low.unwrap_or(w.latest).min(w.chain_latest);
    w
}

/// After `invalid_range`: never ask about the future or before audit logs existed.
///
/// A `low` left above the clamped window (the clock went back) is dropped with its ids: what
/// was delivered there lies above the new chain, which cannot read it again, and nothing at
/// or below the new `latest` was delivered yet. Kept, it would be a checkpoint that the load
/// check refuses (`low` outside its window).
pub(super) fn clamp_window(mut w: Window, now: i64) -> Window {
    w.cursor = None;
    w.latest = w.latest.min(now - 1);
    w.chain_latest = w.chain_latest.min(w.latest);
    if w.low.is_some_and(|low| low > w.latest) {
        w.low = None;
        w.ids_at_low.clear();
    }
    if let Some(low) = w.low {
        w.chain_latest = w.chain_latest.min(low);
    }
    w.oldest = w.oldest.clamp(AUDIT_LOGS_EPOCH, w.latest);
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn invalid_cursor_restarts_at_low_or_the_whole_window() {
        let mut w = Window::open(100, 200);
        w.cursor = Some("c".into());
        assert_eq!(restart_chain(w.clone()).chain_latest, 200);
        w.low = Some(150);
        w.ids_at_low = BTreeSet::from(["a".to_string()]);
        let r = restart_chain(w);
        assert_eq!(
            (r.oldest, r.chain_latest, r.latest, r.cursor),
            (100, 150, 200, None)
        );
        assert_eq!(r.ids_at_low, BTreeSet::from(["a".to_string()]));
    }

    #[test]
    fn invalid_range_clamps_to_the_past_and_the_epoch() {
        let w = Window::open(1_000, 5_000_000_000);
        let c = clamp_window(w, 1_800_000_000);
        assert_eq!(
            (c.oldest, c.latest, c.chain_latest),
            (AUDIT_LOGS_EPOCH, 1_799_999_999, 1_799_999_999)
        );
    }

    #[test]
    fn invalid_range_drops_a_low_above_the_clamped_window() {
        let mut w = Window::open(1_700_000_000, 1_800_000_100);
        w.low = Some(1_800_000_050);
        w.ids_at_low.insert("a".into());
        let c = clamp_window(w, 1_800_000_000);
        assert_eq!(
            (c.latest, c.chain_latest, c.low),
            (1_799_999_999, 1_799_999_999, None)
        );
        assert!(c.ids_at_low.is_empty());
        // A low inside the clamped window stays, and bounds the chain.
        let mut w = Window::open(1_700_000_000, 1_800_000_100);
        w.low = Some(1_750_000_000);
        let c = clamp_window(w, 1_800_000_000);
        assert_eq!(
            (c.chain_latest, c.low),
            (1_750_000_000, Some(1_750_000_000))
        );
    }

    fn key(id: &str, ts: i64) -> EntryKey {
        EntryKey {
            id: id.to_string(),
            date_create: Some(ts),
        }
    }

    /// Entries outside the asked range are only warned about; entries of the window above
    /// `low` stop the page.
    #[test]
    fn dates_outside_the_range_pass_and_above_low_are_refused() {
        let mut w = Window::open(100, 200);
        assert!(judge_dates(&w, &[key("future", 500), key("past", 50)], 100).is_ok());
        w.low = Some(150);
        w.ids_at_low = BTreeSet::from(["a".to_string()]);
        let err = judge_dates(&w, &[key("b", 150), key("c", 160), key("d", 140)], 100)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cursor_back_in_time") && err.contains("holds 1 dated after second 150"),
            "{err}"
        );
    }
}
