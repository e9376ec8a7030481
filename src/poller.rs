//! The reading order and the checkpoint: the only place that decides what to fetch next and
//! when progress is durable.
//!
//! Slack answers newest first with inclusive whole-second bounds, so we read forward in
//! *windows* `[oldest, latest]`, `latest = now − settle_lag` (never the current second), pinned
//! for the window's whole cursor chain. Within a window the pages go newest → oldest; after each
//! page is delivered the checkpoint records the window, the next cursor, the oldest second
//! delivered (`low`) and the ids delivered at `low`. On `invalid_cursor` the window is re-read
//! as a narrower chain `[oldest, low]`, skipping what was delivered. When the chain ends the
//! next window starts at `latest + 1`. See `architecture.md` for the whole argument.
//!
//! With `--overlap`, each chain also reads a span behind the window and delivers only ids not
//! delivered before (late-indexed events); those ids are remembered for that span only.
//!
//! Slack's answers are checked before a page is delivered ([`ChainGuard`]). A page dated
//! after the chain's `low` (the cursor went back in time) stops the run without delivering
//! it: we cannot tell its entries from ones already delivered, so guessing would lose or
//! repeat them. Entries outside the asked range are delivered with a warning (nothing is
//! lost; a repeat is harmless downstream, `event.id` is the document id). A cursor that does
//! not advance is fetched again a few times, then the chain is restarted once, then the run
//! stops. Each of these is counted in `slack_source_protocol_violations_total`.

use crate::analysis::Analyzer;
use crate::checkpoint::{Checkpoint, CheckpointStore, Window};
use crate::config::{Filters, RunConfig, SinkConfig};
use crate::mapping::{DocKind, Facts, Mapper};
use crate::shutdown::Shutdown;
use crate::sink::{Batch, Sink};
use crate::slack::client::ClientConfig;
use crate::slack::{EntryKey, Error as SlackError, Page, Query, SlackClient};
use crate::statedir::StateDir;
use chrono::Utc;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Audit logs do not exist before March 2018; `oldest` is never sent earlier than this.
pub use crate::checkpoint::AUDIT_LOGS_EPOCH;

/// Entries mapped, analysed and sent at a time within a page.
const CHUNK: usize = 1000;

/// How many `invalid_range` answers in a row, after clamping, before giving up.
const MAX_RANGE_RETRIES: u32 = 3;

/// How many times a cursor that Slack returned before is fetched again before the chain is
/// restarted (once), and then the run stops.
const MAX_CURSOR_REPEATS: u32 = 3;

/// Pages in a row that read nothing older than the chain had before the chain counts as
/// stalled. Slack may send empty pages with a cursor (with filters, perhaps many while it
/// scans), so the bound is generous; it only has to make an endless chain end.
const MAX_IDLE_PAGES: u32 = 100;

/// `invalid_cursor` restarts without progress in between before the run stops.
const MAX_CURSOR_RESTARTS: u32 = 3;

/// The reading loop and what it drives.
#[derive(Debug)]
pub struct Poller {
    /// Shared with the prefetch task; only one fetch runs at a time.
    client: Arc<tokio::sync::Mutex<SlackClient>>,
    mapper: Mapper,
    analyzer: Analyzer,
    /// `None` only while a chunk is being sent (see [`Sending`]).
    sink: Option<Sink>,
    store: CheckpointStore,
    state: Checkpoint,
    shutdown: Shutdown,
    settings: Settings,
    _lock: StateDir,
}

#[derive(Debug)]
struct Settings {
    interval: Duration,
    settle_lag: i64,
    overlap: i64,
    limit: u32,
    filters: Filters,
    once: bool,
}

/// Where one delivered entry's document comes from, in page order.
enum Slot {
    /// Written straight to text: its bytes in the chunk's text buffer.
    Plain(std::ops::Range<usize>),
    /// The i-th JSON value handed to the analysis.
    Doc(usize),
}

/// A chunk being sent in its own task while the next one is mapped: the sink and the batch
/// travel with it and come back with the answer. Dropping it lets the send finish (aborting
/// could cut a line in half on stdout); it is only dropped on the way out after an error.
struct Sending(
    tokio::task::JoinHandle<(
        Sink,
        Batch,
        Result<(), crate::sink::Error>,
        std::time::Duration,
    )>,
);

/// A page being fetched in its own task; dropping it aborts the fetch.
struct Fetch(tokio::task::JoinHandle<Result<Option<Page>, SlackError>>);

impl Fetch {
    async fn join(mut self) -> Result<Option<Page>, SlackError> {
        match (&mut self.0).await {
            Ok(r) => r,
            Err(e) => Err(SlackError::Transport(format!(
                "the fetch task stopped: {e}"
            ))),
        }
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How reading one window ended.
enum WindowEnd {
    /// The chain ended and the window is closed in the checkpoint.
    Done,
    /// Shutdown came while waiting or fetching.
    Shutdown,
}

fn now() -> i64 {
    Utc::now().timestamp()
}

impl Poller {
    /// Locks the state dir, loads the checkpoint and builds every stage.
    ///
    /// # Errors
    ///
    /// A locked or unusable state dir, a corrupt checkpoint, unreadable mapping or analysis files.
    pub async fn start(config: RunConfig, shutdown: Shutdown) -> Result<Poller, crate::Error> {
        let lock = StateDir::open(&config.state_dir)?;
        let store = CheckpointStore::new(lock.path());
        let loaded = store.load()?;
        let lag = config.settle_lag.as_secs().max(1) as i64;
        let state = match loaded {
            Some(cp) => {
                tracing::info!(path = %store.path().display(), next_oldest = cp.next_oldest, open_window = cp.window.is_some(), "resuming from checkpoint");
                cp
            }
            None => {
                let start =
                    (now() - config.initial_lookback.as_secs() as i64).max(AUDIT_LOGS_EPOCH);
                tracing::info!(
                    oldest = start,
                    "no checkpoint yet: first run starts at now minus --initial-lookback"
                );
                Checkpoint {
                    next_oldest: start,
                    window: None,
                    recent: Default::default(),
                    analysis: None,
                    updated_at: Utc::now(),
                }
            }
        };
        if config.max_rpm > 50
            && config
                .api_url
                .host_str()
                .is_some_and(|h| h.ends_with("slack.com"))
        {
            tracing::warn!(max_rpm = config.max_rpm, "--max-requests-per-minute is above Slack's ~50/min, which every app in the org shares; expect 429s");
        }
        // Handed to the analyzer and not kept here: each save writes the live state.
        let mut state = state;
        let analyzer = Analyzer::from_saved(&config.analysis, state.analysis.take().map(|a| a.0))?;
        let mapper = Mapper::new(&config.mapping)?;
        let tracer = crate::trace::Tracer::from_config(&config.observability)?;
        let client = SlackClient::new(ClientConfig {
            api_url: config.api_url.clone(),
            token: config.token,
            max_rpm: config.max_rpm,
            request_timeout: config.request_timeout,
            tracer,
            max_response_bytes: config.max_response_bytes,
            give_up_after: config
                .once
                .then_some(crate::slack::client::ONCE_MAX_ATTEMPTS),
        })?;
        let sink = match (&config.sink, config.stdout) {
            (SinkConfig::Stdout, Some(w)) => {
                Sink::Stdout(crate::sink::stdout::StdoutSink::new(w.0))
            }
            (SinkConfig::Stdout, None) => Sink::Stdout(crate::sink::stdout::StdoutSink::stdout()),
            (SinkConfig::Http(h), _) => Sink::Http(crate::sink::http::HttpSink::new(h.clone())?),
        };
        let settings = Settings {
            interval: config.interval,
            settle_lag: lag,
            overlap: config.overlap.as_secs() as i64,
            limit: config.limit,
            filters: config.filters,
            once: config.once,
        };
        let client = Arc::new(tokio::sync::Mutex::new(client));
        Ok(Poller {
            client,
            mapper,
            analyzer,
            sink: Some(sink),
            store,
            state,
            shutdown,
            settings,
            _lock: lock,
        })
    }

    /// Replaces the Slack client's backoff (tests use short schedules).
    pub fn with_backoff(self, backoff: crate::retry::Backoff) -> Poller {
        // At start no fetch task exists, so the lock is free.
        if let Ok(mut client) = self.client.try_lock() {
            client.set_backoff(backoff);
        }
        self
    }

    /// Reads windows until caught up (`--once`) or shutdown.
    ///
    /// # Errors
    ///
    /// Fatal Slack answers, sink failures and checkpoint write failures; the checkpoint then
    /// stays at the last page that was delivered.
    pub async fn run(mut self) -> Result<(), crate::Error> {
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
        if !self.mapper.release() {
            crate::memory::return_free_memory();
        }
        self.shutdown.sleep(self.settings.interval).await
    }

    async fn read_window(&mut self, mut w: Window) -> Result<WindowEnd, crate::Error> {
        let mut range_retries = 0;
        let mut ahead: Option<Fetch> = None;
        let mut guard = ChainGuard::new(&w);
        loop {
            let fetch = match ahead.take() {
                Some(f) => f,
                None => self.spawn_fetch(&w),
            };
            let page = match fetch.join().await {
                Ok(Some(page)) => page,
                Ok(None) => return Ok(WindowEnd::Shutdown),
                Err(SlackError::InvalidCursor) if w.cursor.is_some() => {
                    guard.cursor_restarts += 1;
                    if guard.cursor_restarts > MAX_CURSOR_RESTARTS {
                        return Err(violation("invalid_cursor_loop", format!(
                            "Slack refused its own cursor {} times in a row with no page of progress in between (window {}..={}); stopping, the checkpoint stays at the last page delivered",
                            guard.cursor_restarts, w.oldest, w.latest
                        )));
                    }
                    w = restart_chain(w);
                    guard.restart(&w);
                    tracing::warn!(oldest = w.oldest, latest = w.chain_latest, "Slack refused the saved cursor; re-reading the window below what was delivered");
                    crate::metrics::error("slack", "invalid_cursor");
                    continue;
                }
                Err(SlackError::InvalidRange) if range_retries < MAX_RANGE_RETRIES => {
                    range_retries += 1;
                    w = clamp_window(w, now());
                    guard.restart(&w);
                    tracing::warn!(oldest = w.oldest, latest = w.chain_latest, "Slack refused the range (invalid_range); clamped and retrying");
                    if self.shutdown.sleep(Duration::from_secs(1 << range_retries)).await {
                        return Ok(WindowEnd::Shutdown);
                    }
                    continue;
                }
                Err(SlackError::InvalidRange) => {
                    return Err(crate::Error::Slack(SlackError::Fatal {
                        code: "invalid_range".into(),
                        hint: "Slack keeps refusing the window even clamped to the past; audit logs may have been enabled later: lower --initial-lookback or move the checkpoint forward",
                    }))
                }
                Err(e) => return Err(e.into()),
            };
            crate::metrics::page_fetched(page.len());
            // Judged before anything of the page goes out: a page refused here is not delivered
            // and the checkpoint stays at the last page that was.
            let query_oldest = (w.oldest - self.settings.overlap).max(AUDIT_LOGS_EPOCH);
            // Each entry's id and date, read once for the checks and the delivery.
            let keys: Vec<EntryKey> = page.entries().map(EntryKey::read).collect();
            judge_dates(&w, &keys, query_oldest)?;
            // The page's oldest date in the asked range: a chain advances when it goes down.
            let page_oldest = keys
                .iter()
                .filter_map(|k| k.date_create)
                .filter(|ts| (query_oldest..=w.latest).contains(ts))
                .min();
            if let Some(c) = page.next_cursor.as_deref().filter(|c| guard.seen(c)) {
                guard.repeats += 1;
                crate::metrics::protocol_violation("cursor_repeated");
                tracing::warn!(cursor = %crate::text::snippet(c.as_bytes(), crate::text::CURSOR_SNIPPET), repeats = guard.repeats, "Slack answered with a cursor it returned before in this chain: the chain does not advance; the page is not delivered");
                match self.stalled(&mut w, &mut guard, "cursor_repeated").await? {
                    Some(end) => return Ok(end),
                    None => continue,
                }
            }
            let last = page.next_cursor.is_none();
            // Decided before the prefetch: a stalled chain fetches nothing more at its cursor.
            let stalls = if guard.advanced(page_oldest) {
                guard.progress();
                false
            } else {
                guard.idle_pages += 1;
                !last && guard.idle_pages >= MAX_IDLE_PAGES
            };
            if let Some(c) = page.next_cursor.as_ref().filter(|_| !stalls) {
                guard.insert(c);
                // Fetch page k+1 while page k is mapped and delivered. Its result is used
                // only after page k is checkpointed, so the checkpoint still moves in order.
                let mut next = w.clone();
                next.cursor = Some(c.clone());
                ahead = Some(self.spawn_fetch(&next));
            }
            // On an error here `ahead` is dropped, which aborts the prefetch.
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
                if let Some(end) = self.stalled(&mut w, &mut guard, "no_progress").await? {
                    return Ok(end);
                }
            }
        }
    }

    /// A chain that does not advance: fetch the same cursor again (a few times, `cursor_repeated`
    /// only), then restart the chain once, then stop. `Some` ends the window (shutdown).
    async fn stalled(
        &mut self,
        w: &mut Window,
        guard: &mut ChainGuard,
        kind: &'static str,
    ) -> Result<Option<WindowEnd>, crate::Error> {
        if kind == "cursor_repeated" && guard.repeats <= MAX_CURSOR_REPEATS {
            // 0.5 s, 1 s, 2 s: an empty page may carry its own cursor once in a while.
            let delay = Duration::from_millis(250 << guard.repeats);
            if self.shutdown.sleep(delay).await {
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

    /// Starts fetching the page of `w`'s chain at its cursor, in its own task.
    fn spawn_fetch(&self, w: &Window) -> Fetch {
        let client = self.client.clone();
        let filters = self.settings.filters.clone();
        let mut shutdown = self.shutdown.clone();
        let (oldest, latest, cursor) = (
            (w.oldest - self.settings.overlap).max(AUDIT_LOGS_EPOCH),
            w.chain_latest,
            w.cursor.clone(),
        );
        let limit = self.settings.limit;
        Fetch(tokio::spawn(async move {
            let q = Query {
                oldest,
                latest,
                limit,
                cursor: cursor.as_deref(),
                filters: &filters,
            };
            client
                .lock()
                .await
                .fetch_page_with_retry(&q, &mut shutdown)
                .await
        }))
    }

    /// Maps, analyses and delivers one page, then moves the checkpoint. Returns the window as
    /// it now stands (closed windows are folded into `next_oldest`).
    ///
    /// The page goes out in chunks of [`CHUNK`] entries, so that memory stays bounded at
    /// `--limit 9999`. Each entry is parsed once, by the mapper, which writes its document as
    /// text and notes what the analysis needs ([`Facts`]). Most documents (not anomalies, an
    /// expected user agent) stay text: the analysis only notes them (a download's file, the
    /// time). The others are parsed back into JSON values for the analysis, which may
    /// annotate them and add findings. The page's order is kept, findings last. Chunk j is
    /// sent while chunk j+1 is mapped. The checkpoint moves once, after the last chunk is
    /// acknowledged: a crash mid-page repeats that page only.
    async fn deliver(
        &mut self,
        w: Window,
        page: Page,
        keys: Vec<EntryKey>,
        query_oldest: i64,
    ) -> Result<Window, crate::Error> {
        let fetched_at = Utc::now();
        let mut next = w.clone();
        next.cursor = page.next_cursor.clone();
        let mut delivered_keys = Vec::with_capacity(page.len());
        let mut slots = Vec::with_capacity(CHUNK.min(page.len()));
        let mut docs = Vec::new();
        // The documents written straight to text, one after another; `Slot::Plain` ranges.
        let mut texts = Vec::new();
        let mut facts = Facts::default();
        let mut batch = Batch::new();
        // The chunk being sent while the next is mapped, and a batch to reuse.
        let mut in_flight: Option<Sending> = None;
        let mut spare: Option<Batch> = None;
        let mut tally = crate::metrics::labels::Tally::new();
        let mut entries = page.entries().zip(keys).peekable();
        while entries.peek().is_some() {
            texts.clear();
            for (raw, key) in entries.by_ref().take(CHUNK) {
                if !is_new(
                    &w,
                    &self.state.recent,
                    self.settings.overlap,
                    query_oldest,
                    &key,
                ) {
                    continue;
                }
                track_low(&mut next, &key, w.oldest);
                let start = texts.len();
                let kind = self
                    .mapper
                    .write_entry_noting(raw, fetched_at, &mut texts, &mut facts);
                // Anomalies always: their reasons are counted in the metrics from the value,
                // with the analysis off too.
                if kind == DocKind::Event
                    && (facts.action.as_deref() == Some("anomaly")
                        || self
                            .analyzer
                            .wants(facts.action.as_deref(), facts.user_agent.as_deref()))
                {
                    // The analysis reads and annotates a value: parse what was just written.
                    let doc = serde_json::from_slice(&texts[start..])
                        .unwrap_or_else(|_| self.mapper.map_entry(raw, fetched_at));
                    texts.truncate(start);
                    slots.push(Slot::Doc(docs.len()));
                    docs.push(doc);
                } else {
                    self.analyzer.note_plain(&facts);
                    let kind = if kind == DocKind::PipelineError {
                        "pipeline_error"
                    } else {
                        "event"
                    };
                    tally.add_plain(facts.action.as_deref(), kind);
                    slots.push(Slot::Plain(start..texts.len()));
                }
                delivered_keys.push(key);
            }
            let analysed = docs.len();
            self.analyzer.process(&mut docs);
            batch.clear();
            for slot in slots.drain(..) {
                match slot {
                    Slot::Plain(range) => {
                        batch.push_with(|out| out.extend_from_slice(&texts[range]));
                    }
                    Slot::Doc(i) => {
                        batch.push(&docs[i]);
                        tally.add(&docs[i]);
                    }
                }
            }
            for finding in &docs[analysed..] {
                batch.push(finding);
                tally.add(finding);
            }
            docs.clear();
            // One chunk in flight, in order: the previous one must be acknowledged before
            // this one goes; it was sent while this one was mapped.
            if let Some(sending) = in_flight.take() {
                spare = Some(self.finish_send(sending).await?);
            }
            in_flight = Some(self.start_send(std::mem::replace(
                &mut batch,
                spare.take().unwrap_or_default(),
            ))?);
        }
        if let Some(sending) = in_flight.take() {
            self.finish_send(sending).await?;
        }
        let mut cp = Checkpoint {
            next_oldest: self.state.next_oldest,
            window: Some(next.clone()),
            recent: self.state.recent.clone(),
            analysis: None,
            updated_at: fetched_at,
        };
        self.remember(&mut cp, &delivered_keys, &w);
        if next.cursor.is_none() {
            cp.window = None;
            cp.next_oldest = w.latest + 1;
        }
        self.store
            .save_with(&cp, self.analyzer.saved_state().as_ref())?;
        // A page of known user agents only: the rules are not needed until a new one comes.
        self.mapper.release_if_unused();
        crate::metrics::page_delivered_tally(&tally);
        match &cp.window {
            Some(w) => crate::metrics::checkpoint_saved(w.oldest, w.progress()),
            None => crate::metrics::checkpoint_saved(cp.next_oldest, 1.0),
        }
        crate::progress::PROGRESS.checkpointed(
            cp.window.as_ref().map(|w| (w.oldest, w.latest, w.low)),
            delivered_keys.len() as u64,
            std::time::Instant::now(),
        );
        self.state = cp;
        Ok(next)
    }

    /// Sends `batch` in its own task, the sink going with it. Not raced with shutdown here: a
    /// page in hand is finished (the HTTP sink gives up after its grace period), then
    /// checkpointed.
    fn start_send(&mut self, batch: Batch) -> Result<Sending, crate::Error> {
        let mut sink = self
            .sink
            .take()
            .ok_or(crate::Error::Sink(crate::sink::Error::Lost))?;
        let mut shutdown = self.shutdown.clone();
        Ok(Sending(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = sink.send(&batch, &mut shutdown).await;
            (sink, batch, result, started.elapsed())
        })))
    }

    /// Waits for a chunk's acknowledgement and takes the sink back; returns the emptied batch
    /// for reuse.
    async fn finish_send(&mut self, sending: Sending) -> Result<Batch, crate::Error> {
        let (sink, mut batch, result, took) = sending
            .0
            .await
            .map_err(|_| crate::Error::Sink(crate::sink::Error::Lost))?;
        self.sink = Some(sink);
        if let Err(e) = result {
            crate::metrics::error("sink", e.kind());
            return Err(e.into());
        }
        crate::metrics::sink_batch(batch.len(), took);
        batch.clear();
        Ok(batch)
    }

    /// Adds delivered ids to the overlap memory and forgets those older than the span.
    fn remember(&self, cp: &mut Checkpoint, keys: &[EntryKey], w: &Window) {
        if self.settings.overlap == 0 {
            return;
        }
        // Entries after the window (Slack ignoring `latest`) are not remembered: the horizon
        // below would never drop them.
        for k in keys {
            if let Some(ts) = k.date_create.filter(|ts| *ts <= w.latest) {
                cp.recent.entry(ts).or_default().insert(k.id.clone());
            }
        }
        // The next window reads back to (its oldest − overlap) = (w.latest + 1 − overlap);
        // nothing older can be asked about again.
        let horizon = w.oldest.min(w.latest + 1) - self.settings.overlap;
        cp.recent = cp.recent.split_off(&horizon);
    }
}

/// False for entries already delivered: at `low` with a known id, or behind the window
/// (overlap) and already seen. Entries outside the asked range are delivered (the page was
/// warned about, see [`warn_outside`]); entries above `low` never get here
/// ([`back_in_time`] refuses their page).
fn is_new(
    w: &Window,
    recent: &BTreeMap<i64, BTreeSet<String>>,
    overlap: i64,
    query_oldest: i64,
    key: &EntryKey,
) -> bool {
    let Some(ts) = key.date_create else {
        // Undated entries cannot be placed; deliver them (mapping reports the problem).
        return true;
    };
    if ts > w.latest || ts < query_oldest {
        return true;
    }
    if ts < w.oldest {
        return overlap > 0 && !recent.get(&ts).is_some_and(|ids| ids.contains(&key.id));
    }
    match w.low {
        Some(low) if ts > low => false,
        Some(low) if ts == low => !w.ids_at_low.contains(&key.id),
        _ => true,
    }
}

/// Moves the window's low-water mark for a delivered entry: the oldest second delivered in
/// the window, and the ids delivered at it. Entries behind or after the window do not count.
fn track_low(w: &mut Window, key: &EntryKey, window_oldest: i64) {
    let Some(ts) = key
        .date_create
        .filter(|ts| *ts >= window_oldest && *ts <= w.latest)
    else {
        return;
    };
    match w.low {
        Some(low) if ts > low => {}
        Some(low) if ts == low => {
            w.ids_at_low.insert(key.id.clone());
        }
        _ => {
            w.low = Some(ts);
            w.ids_at_low = BTreeSet::from([key.id.clone()]);
        }
    }
}

/// What the poller remembers of a chain to judge whether it advances: the cursors it has
/// returned (as hashes: a cursor's size is Slack's choice), and counts of what went wrong.
#[derive(Debug, Default)]
struct ChainGuard {
    cursors: HashSet<u64>,
    /// The oldest date read in the chain so far.
    oldest: Option<i64>,
    repeats: u32,
    idle_pages: u32,
    restarted: bool,
    cursor_restarts: u32,
}

impl ChainGuard {
    fn new(w: &Window) -> ChainGuard {
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

    fn seen(&self, c: &str) -> bool {
        self.cursors.contains(&Self::hash(c))
    }

    fn insert(&mut self, c: &str) {
        self.cursors.insert(Self::hash(c));
    }

    /// A new chain in `w` (its saved cursor, if any, counts as returned).
    fn restart(&mut self, w: &Window) {
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

    /// A page read something older than before.
    fn progress(&mut self) {
        self.repeats = 0;
        self.idle_pages = 0;
        self.cursor_restarts = 0;
    }
}

/// A protocol violation that stops the run (exit 1), counted and with its specifics.
fn violation(kind: &'static str, detail: String) -> crate::Error {
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
fn judge_dates(w: &Window, keys: &[EntryKey], query_oldest: i64) -> Result<(), crate::Error> {
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
fn restart_chain(mut w: Window) -> Window {
    w.cursor = None;
    w.chain_latest = w.low.unwrap_or(w.latest).min(w.chain_latest);
    w
}

/// After `invalid_range`: never ask about the future or before audit logs existed.
fn clamp_window(mut w: Window, now: i64) -> Window {
    w.cursor = None;
    w.latest = w.latest.min(now - 1);
    w.chain_latest = w.chain_latest.min(w.latest);
    if let Some(low) = w.low {
        w.chain_latest = w.chain_latest.min(low);
    }
    w.oldest = w.oldest.clamp(AUDIT_LOGS_EPOCH, w.latest);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

#[cfg(test)]
mod set_tests {
    use super::*;

    fn key(id: &str, ts: i64) -> EntryKey {
        EntryKey {
            id: id.to_string(),
            date_create: Some(ts),
        }
    }

    /// A burst second of 50,000 ids, each delivered twice: the set holds each once and every
    /// one of them is known; a new id at that second is still new.
    #[test]
    fn a_burst_second_of_50000_ids_dedups() {
        let mut w = Window::open(100, 200);
        let keys: Vec<EntryKey> = (0..50_000).map(|i| key(&format!("id-{i}"), 150)).collect();
        for k in keys.iter().chain(keys.iter()) {
            track_low(&mut w, k, 100);
        }
        assert_eq!(w.low, Some(150));
        assert_eq!(w.ids_at_low.len(), 50_000);
        let recent = BTreeMap::new();
        assert!(keys.iter().all(|k| !is_new(&w, &recent, 0, 100, k)));
        assert!(is_new(&w, &recent, 0, 100, &key("id-50000", 150)));
        assert!(is_new(&w, &recent, 0, 100, &key("older", 149)));
        // The overlap memory behind the window is a set too.
        let mut recent: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        recent
            .entry(90)
            .or_default()
            .extend(keys.iter().map(|k| k.id.clone()));
        assert!(keys
            .iter()
            .all(|k| !is_new(&w, &recent, 20, 80, &key(&k.id, 90))));
        assert!(is_new(&w, &recent, 20, 80, &key("late", 90)));
    }

    /// The checkpoint's JSON is unchanged: arrays, and an old file with a repeated id loads.
    #[test]
    fn id_sets_are_written_and_read_as_arrays() {
        let old = r#"{"oldest":1,"latest":9,"chain_latest":9,"cursor":null,"low":5,"ids_at_low":["b","a","b"]}"#;
        let w: Window = serde_json::from_str(old).unwrap();
        assert_eq!(w.ids_at_low.len(), 2);
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["ids_at_low"], serde_json::json!(["a", "b"]));
    }

    /// Entries outside the asked range are delivered (and warned about); entries of the
    /// window above `low` stop the page.
    #[test]
    fn dates_outside_the_range_are_delivered_and_above_low_refused() {
        let mut w = Window::open(100, 200);
        let recent = BTreeMap::new();
        assert!(is_new(&w, &recent, 0, 100, &key("future", 500)));
        assert!(is_new(&w, &recent, 0, 100, &key("past", 50)));
        assert!(judge_dates(&w, &[key("future", 500), key("past", 50)], 100).is_ok());
        track_low(&mut w, &key("future", 500), 100);
        assert_eq!(w.low, None, "an entry after the window does not move low");
        track_low(&mut w, &key("a", 150), 100);
        let err = judge_dates(&w, &[key("b", 150), key("c", 160), key("d", 140)], 100)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cursor_back_in_time") && err.contains("holds 1 dated after second 150"),
            "{err}"
        );
    }
}
