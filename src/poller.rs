//! The reading order and the checkpoint: the only place that decides what to fetch next and
//! when progress is durable.
//!
//! Slack answers newest first with inclusive whole-second bounds, so we read forward in
//! *windows* `[oldest, latest]`, `latest = now − settle_lag` (never the current second), pinned
//! for the window's whole cursor chain. Within a window the pages go newest → oldest; after each
//! page is delivered the checkpoint records the window, the next cursor, the oldest second
//! delivered (`low`) and the ids delivered at `low`. On `invalid_cursor` the window is re-read
//! as a narrower chain `[oldest, low]`, skipping what was delivered. When the chain ends the
//! next window starts at `latest + 1`. See `docs/architecture.md` for the whole argument.
//!
//! With `--overlap`, each chain also reads a span behind the window and delivers only ids not
//! delivered before (late-indexed events); those ids are remembered for that span only.
//!
//! Slack's answers are checked before a page is delivered ([`chain`]). A page dated
//! after the chain's `low` (the cursor went back in time) stops the run without delivering
//! it: we cannot tell its entries from ones already delivered, so guessing would lose or
//! repeat them. Entries outside the asked range are delivered with a warning (nothing is
//! lost; a repeat is harmless downstream, `event.id` is the document id). A cursor that does
//! not advance is fetched again a few times, then the chain is restarted once, then the run
//! stops. Each of these is counted in `slack_source_protocol_violations_total`.
//!
//! - [`chain`]: the checks on each page and how a chain restarts.
//! - [`fetch`]: the task that owns the Slack client; one page is fetched ahead.
//! - [`send`]: the task that owns the sink; one chunk is sent while the next is mapped.
//! - What a page's entries become is the [`crate::pipeline`]'s business.

mod chain;
mod fetch;
mod respond;
mod send;

use crate::checkpoint::{Checkpoint, CheckpointStore, Window};
use crate::config::Filters;
use crate::pipeline::{remember, Delivered, Pipeline, Seen};
use crate::shutdown::Shutdown;
use crate::sink::Sink;
use crate::slack::{EntryKey, Page, SlackClient};
use crate::statedir::StateDir;
use chain::ChainGuard;
use chrono::Utc;
use fetch::{query_oldest, Request};
use std::time::Duration;

/// What the poller is built from; [`crate::run`] assembles it.
#[derive(Debug)]
pub(crate) struct Parts {
    /// The Slack client; the fetch task owns it.
    pub(crate) client: SlackClient,
    /// Mapping and analysis.
    pub(crate) pipeline: Pipeline,
    /// Where chunks go; the send task owns it.
    pub(crate) sink: Sink,
    /// The checkpoint's file, in the locked state dir.
    pub(crate) store: CheckpointStore,
    /// The checkpoint to resume from (see [`resume`]); its analysis state is already handed to
    /// the pipeline.
    pub(crate) state: Checkpoint,
    /// The state dir's lock, held while the poller lives.
    pub(crate) lock: StateDir,
    /// The reading settings.
    pub(crate) settings: Settings,
    /// The response stage, with `--respond plan|enforce`.
    pub(crate) responder: Option<crate::respond::Responder>,
}

/// How the poller reads, from the run's configuration.
#[derive(Debug)]
pub(crate) struct Settings {
    /// Pause between catch-ups.
    pub(crate) interval: Duration,
    /// Newest seconds never read (at least 1).
    pub(crate) settle_lag: i64,
    /// Seconds re-read behind each window.
    pub(crate) overlap: i64,
    /// Page size.
    pub(crate) limit: u32,
    /// Slack's filters.
    pub(crate) filters: Filters,
    /// Stop once caught up.
    pub(crate) once: bool,
}

/// The reading loop and what it drives.
#[derive(Debug)]
pub(crate) struct Poller {
    fetcher: fetch::Fetcher,
    pipeline: Pipeline,
    sender: send::Sender,
    store: CheckpointStore,
    state: Checkpoint,
    shutdown: Shutdown,
    settings: Settings,
    responder: Option<crate::respond::Responder>,
    _lock: StateDir,
}

/// How reading one window ended.
pub(super) enum WindowEnd {
    /// The chain ended and the window is closed in the checkpoint.
    Done,
    /// Shutdown came while waiting or fetching.
    Shutdown,
}

pub(crate) fn now() -> i64 {
    Utc::now().timestamp()
}

impl Poller {
    /// A poller over `parts`; starts the fetch and send tasks.
    pub(crate) fn new(parts: Parts, shutdown: Shutdown) -> Poller {
        let Parts {
            client,
            pipeline,
            sink,
            store,
            state,
            lock,
            settings,
            responder,
        } = parts;
        Poller {
            fetcher: fetch::Fetcher::spawn(
                client,
                settings.limit,
                settings.filters.clone(),
                shutdown.clone(),
            ),
            pipeline,
            sender: send::Sender::spawn(sink, shutdown.clone()),
            store,
            state,
            shutdown,
            settings,
            responder,
            _lock: lock,
        }
    }

    /// Reads windows until caught up (`--once`) or shutdown.
    ///
    /// # Errors
    ///
    /// Fatal Slack answers, sink failures and checkpoint write failures; the checkpoint then
    /// stays at the last page that was delivered.
    pub(crate) async fn run(mut self) -> Result<(), crate::Error> {
        self.respond().await?; // what a crash left planned and not reported
        loop {
            if self.shutdown.is_triggered() {
                return Ok(());
            }
            let (window, fresh) = match self.state.window.clone() {
                Some(w) => (w, false),
                None => {
                    let latest = now() - self.settings.settle_lag;
                    if latest < self.state.next_oldest {
                        // Caught up to within the settle lag: nothing can be read yet.
                        crate::metrics::poll_succeeded();
                        if self.settings.once || self.idle().await {
                            return Ok(());
                        }
                        continue;
                    }
                    (Window::open(self.state.next_oldest, latest), true)
                }
            };
            match self.read_window(window).await? {
                WindowEnd::Shutdown => return Ok(()),
                WindowEnd::Done => crate::metrics::poll_succeeded(),
            }
            // A window opened just now reached now − settle lag: we are caught up.
            if fresh && (self.settings.once || self.idle().await) {
                return Ok(());
            }
        }
    }

    /// Waits one interval; true if shutdown came.
    async fn idle(&mut self) -> bool {
        tracing::debug!(
            secs = self.settings.interval.as_secs(),
            "caught up; waiting for the next poll"
        );
        // Caught up: drop the user-agent rules and give the catch-up's freed pages back to
        // the system while we wait. Releasing the rules trims already; trim here when they
        // were gone before.
        if !self.pipeline.release() {
            crate::memory::return_free_memory();
        }
        self.shutdown.sleep(self.settings.interval).await
    }

    async fn read_window(&mut self, mut w: Window) -> Result<WindowEnd, crate::Error> {
        let mut range_retries = 0;
        // Whether the page of `w`'s cursor is already being fetched.
        let mut ahead = false;
        let mut guard = ChainGuard::new(&w);
        loop {
            if !std::mem::take(&mut ahead) {
                self.fetcher.ask(Request::at(&w, self.settings.overlap));
            }
            let page = match self.fetcher.page().await {
                Ok(Some(page)) => page,
                Ok(None) => return Ok(WindowEnd::Shutdown),
                Err(e) => match chain::refused(
                    e,
                    &mut w,
                    &mut guard,
                    &mut range_retries,
                    &mut self.shutdown,
                )
                .await?
                {
                    Some(end) => return Ok(end),
                    None => continue,
                },
            };
            crate::metrics::page_fetched(page.len());
            // Judged before anything of the page goes out: a page refused here is not delivered
            // and the checkpoint stays at the last page that was.
            let query_oldest = query_oldest(&w, self.settings.overlap);
            // Each entry's id and date, read once for the checks and the delivery.
            let keys = Pipeline::keys(&page);
            chain::judge_dates(&w, &keys, query_oldest)?;
            if let Some(c) = page.next_cursor.as_deref().filter(|c| guard.seen(c)) {
                guard.repeats += 1;
                crate::metrics::protocol_violation("cursor_repeated");
                tracing::warn!(cursor = %crate::text::snippet(c.as_bytes(), crate::text::CURSOR_SNIPPET), repeats = guard.repeats, "Slack answered with a cursor it returned before in this chain: the chain does not advance; the page is not delivered");
                match chain::stalled(&mut w, &mut guard, "cursor_repeated", &mut self.shutdown)
                    .await?
                {
                    Some(end) => return Ok(end),
                    None => continue,
                }
            }
            let last = page.next_cursor.is_none();
            // Decided before the prefetch: a stalled chain fetches nothing more at its cursor.
            let stalls = guard.stalls(&w, &keys, query_oldest, last);
            if let Some(c) = page.next_cursor.as_ref().filter(|_| !stalls) {
                guard.insert(c);
                // Fetch page k+1 while page k is mapped and delivered. Its answer is taken
                // only after page k is checkpointed, so the checkpoint still moves in order.
                let mut next = w.clone();
                next.cursor = Some(c.clone());
                self.fetcher.ask(Request::at(&next, self.settings.overlap));
                ahead = true;
            }
            w = match self.deliver(w, page, keys, query_oldest).await {
                Ok(w) => w,
                // SIGTERM while the receiver was down: the page was not acknowledged and the
                // checkpoint did not move; stopping here is a clean shutdown, not a failure.
                Err(crate::Error::Sink(crate::sink::Error::Interrupted)) => {
                    return Ok(WindowEnd::Shutdown)
                }
                Err(e) => return Err(e),
            };
            if last {
                return Ok(WindowEnd::Done);
            }
            if stalls {
                crate::metrics::protocol_violation("no_progress");
                tracing::warn!(pages = guard.idle_pages, low = ?w.low, "Slack sent page after page that reads nothing older: the chain does not advance");
                if let Some(end) =
                    chain::stalled(&mut w, &mut guard, "no_progress", &mut self.shutdown).await?
                {
                    return Ok(end);
                }
            }
        }
    }

    /// Delivers one page, then moves the checkpoint. Returns the window as it now stands
    /// (closed windows are folded into `next_oldest`).
    ///
    /// The [`Pipeline`] turns the page into chunks; chunk j is sent while chunk j+1 is
    /// mapped, one send in flight, in order. The checkpoint moves once, after the last chunk
    /// is acknowledged: a crash mid-page repeats that page only.
    async fn deliver(
        &mut self,
        w: Window,
        page: Page,
        keys: Vec<EntryKey>,
        query_oldest: i64,
    ) -> Result<Window, crate::Error> {
        let fetched_at = Utc::now();
        let seen = Seen {
            window: &w,
            recent: &self.state.recent,
            overlap: self.settings.overlap,
            query_oldest,
        };
        let mut chunks = self.pipeline.page(&page, keys, seen, fetched_at);
        let mut batch = self.sender.batch();
        while chunks.next_into(&mut batch) {
            batch = self.sender.send(batch).await?;
        }
        let delivered = chunks.finish();
        self.sender.acknowledged().await?;
        let mut next = delivered.window.clone();
        next.cursor = page.next_cursor.clone();
        self.checkpoint(&w, next.clone(), &delivered, fetched_at)?;
        self.respond().await?; // the calls the plan saved with the page, then their documents
                               // A page of known user agents only: the rules are not needed until a new one comes.
        self.pipeline.release_if_unused();
        crate::metrics::page_delivered_tally(&delivered.tally);
        match &self.state.window {
            Some(w) => crate::metrics::checkpoint_saved(w.oldest, w.progress()),
            None => crate::metrics::checkpoint_saved(self.state.next_oldest, 1.0),
        }
        crate::progress::PROGRESS.checkpointed(
            self.state
                .window
                .as_ref()
                .map(|w| (w.oldest, w.latest, w.low)),
            delivered.keys.len() as u64,
            std::time::Instant::now(),
        );
        Ok(next)
    }

    /// Saves the checkpoint after page `w` was delivered: `next` is the window with its new
    /// cursor and low, closed when the chain ended.
    fn checkpoint(
        &mut self,
        w: &Window,
        next: Window,
        delivered: &Delivered,
        fetched_at: chrono::DateTime<Utc>,
    ) -> Result<(), crate::Error> {
        let mut cp = Checkpoint {
            next_oldest: self.state.next_oldest,
            window: Some(next),
            recent: self.state.recent.clone(),
            analysis: None,
            response: self.plan_responses(&delivered.findings),
            updated_at: fetched_at,
        };
        remember(&mut cp.recent, &delivered.keys, w, self.settings.overlap);
        if cp.window.as_ref().is_some_and(|n| n.cursor.is_none()) {
            cp.window = None;
            cp.next_oldest = w.latest + 1;
        }
        self.store
            .save_with(&cp, self.pipeline.saved_state().as_ref())?;
        self.state = cp;
        Ok(())
    }
}
