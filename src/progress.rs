//! Progress of a long backfill, for the person or the log collector watching stderr.
//!
//! The poller records each checkpoint here (the window, how far down it `low` has come, the
//! events delivered). A reporter task turns that into figures: the window, the position in it
//! as a percentage (Slack reads newest first, so the position is how far `low` has come down
//! from `latest` towards `oldest`), the events delivered, the rate and an ETA. On a terminal it
//! redraws one line every second; otherwise it writes an info log line every
//! `--progress-interval` (30 s by default), with the figures as fields, and never a `\r`.
//! Either way only while a backfill is behind: a window open over more than
//! `BEHIND` of Slack's time. The `slack_source_backfill_progress_ratio` gauge carries the same
//! position.

use crate::units::compact_duration;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A window spanning more than this much of Slack's time is a backfill worth reporting;
/// caught up, a window spans about `--interval`.
pub(crate) const BEHIND: i64 = 600;
/// How often the line is redrawn on a terminal.
pub(crate) const REDRAW_EVERY: Duration = Duration::from_secs(1);
/// Default of `--progress-interval`: the log line's period when stderr is not a terminal.
pub(crate) const DEFAULT_LOG_EVERY: Duration = Duration::from_secs(30);
/// Rates and the ETA are measured over the samples of about this long.
const RATE_OVER: Duration = Duration::from_secs(60);

/// The process-wide progress the poller records.
pub(crate) static PROGRESS: Tracker = Tracker::new();

/// True while a progress line is on the terminal: a log line must clear it first.
static LINE_DRAWN: AtomicBool = AtomicBool::new(false);

/// One checkpoint, as progress sees it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    oldest: i64,
    latest: i64,
    /// Where the reader stands: `low`, or `latest` before the window's first page.
    position: i64,
    /// Events delivered since start.
    events: u64,
}

/// What the poller has recorded, with enough history for a rate.
#[derive(Debug)]
pub(crate) struct Tracker {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    samples: VecDeque<Sample>,
    events: u64,
    /// The window is done (or none is open): nothing to report.
    caught_up: bool,
}

/// The figures of one report.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figures {
    /// The window being read, Unix seconds, inclusive.
    pub(crate) oldest: i64,
    /// The window's end.
    pub(crate) latest: i64,
    /// How far `low` has come down from `latest` towards `oldest`, 0 to 1.
    pub(crate) ratio: f64,
    /// Events delivered since the process started.
    pub(crate) events: u64,
    /// Events delivered per second, over the last minute.
    pub(crate) rate: f64,
    /// Time left at the current pace through the window; `None` before a pace is known.
    pub(crate) eta: Option<Duration>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

impl Tracker {
    /// Nothing recorded.
    pub(crate) const fn new() -> Tracker {
        Tracker {
            inner: Mutex::new(Inner {
                samples: VecDeque::new(),
                events: 0,
                caught_up: true,
            }),
        }
    }

    /// A checkpoint was saved at `at`: the window `(oldest, latest, low)` is still open (`None`
    /// once it is done) and `events` more events were delivered.
    pub(crate) fn checkpointed(
        &self,
        window: Option<(i64, i64, Option<i64>)>,
        events: u64,
        at: Instant,
    ) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.events += events;
        let total = inner.events;
        match window {
            Some((oldest, latest, low)) => {
                // A new window starts a new measurement.
                if inner
                    .samples
                    .back()
                    .is_some_and(|s| (s.oldest, s.latest) != (oldest, latest))
                {
                    inner.samples.clear();
                }
                inner.caught_up = false;
                inner.samples.push_back(Sample {
                    at,
                    oldest,
                    latest,
                    position: low.unwrap_or(latest),
                    events: total,
                });
                while inner.samples.len() > 2 && at.duration_since(inner.samples[1].at) >= RATE_OVER
                {
                    inner.samples.pop_front();
                }
            }
            None => {
                inner.caught_up = true;
                inner.samples.clear();
            }
        }
    }

    /// The figures as of `now`, while a backfill is behind; `None` otherwise.
    pub(crate) fn figures(&self, now: Instant) -> Option<Figures> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let last = *inner.samples.back()?;
        if inner.caught_up || last.latest - last.oldest < BEHIND {
            return None;
        }
        let first = *inner.samples.front()?;
        let span = (last.latest - last.oldest).max(1) as f64;
        let ratio = ((last.latest - last.position) as f64 / span).clamp(0.0, 1.0);
        let elapsed = now.saturating_duration_since(first.at).as_secs_f64();
        let (rate, eta) = if elapsed > 0.0 && inner.samples.len() > 1 {
            let rate = (last.events - first.events) as f64 / elapsed;
            // Slack's seconds read per second of ours, and what is left of the window.
            let pace = (first.position - last.position) as f64 / elapsed;
            let left = (last.position - last.oldest).max(0) as f64;
            let eta = (pace > 0.0).then(|| Duration::from_secs_f64((left / pace).min(1e9)));
            (rate, eta)
        } else {
            (0.0, None)
        };
        Some(Figures {
            oldest: last.oldest,
            latest: last.latest,
            ratio,
            events: inner.events,
            rate,
            eta,
        })
    }
}

impl Figures {
    /// The one line shown on a terminal.
    pub(crate) fn line(&self) -> String {
        format!(
            "backfill {} → {}  {:5.1}%  {} events  {:.0}/s  ETA {}",
            time(self.oldest),
            time(self.latest),
            self.ratio * 100.0,
            self.events,
            self.rate,
            self.eta.map_or_else(|| "unknown".into(), compact_duration)
        )
    }
}

/// Reports progress on stderr until `shutdown`: a redrawn line when stderr is a terminal,
/// otherwise a log line every `log_every`.
pub(crate) async fn report(log_every: Duration, mut shutdown: crate::shutdown::Shutdown) {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let every = if terminal { REDRAW_EVERY } else { log_every };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tick.tick() => {}
        }
        let figures = PROGRESS.figures(Instant::now());
        match (figures, terminal) {
            (Some(f), true) => {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[K{}", f.line());
                let _ = err.flush();
                LINE_DRAWN.store(true, Ordering::Relaxed);
            }
            (None, true) => clear_line(),
            (Some(f), false) => tracing::info!(
                oldest = %time(f.oldest),
                latest = %time(f.latest),
                percent = format_args!("{:.1}", f.ratio * 100.0),
                events = f.events,
                events_per_second = format_args!("{:.0}", f.rate),
                eta_seconds = f.eta.map(|d| d.as_secs()),
                "backfill {:.1}% read, {} events, {:.0}/s, ETA {}",
                f.ratio * 100.0,
                f.events,
                f.rate,
                f.eta.map_or_else(|| "unknown".into(), compact_duration)
            ),
            (None, false) => {}
        }
    }
    clear_line();
}

/// Erases the progress line, if one is drawn, so that what follows starts on a clean line.
pub(crate) fn clear_line() {
    if LINE_DRAWN.swap(false, Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}

/// Stderr for log lines: clears a drawn progress line first, which the next tick redraws.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = std::io::Stderr;
    fn make_writer(&'a self) -> Self::Writer {
        clear_line();
        std::io::stderr()
    }
}

fn time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn position_rate_and_eta_come_from_the_checkpoints() {
        let t = Tracker::new();
        let start = Instant::now();
        let (oldest, latest) = (1_000_000, 1_000_000 + 30 * DAY);
        assert_eq!(t.figures(start), None, "nothing recorded");
        t.checkpointed(Some((oldest, latest, None)), 0, start);
        let f = t.figures(start).unwrap();
        assert_eq!((f.ratio, f.events, f.eta), (0.0, 0, None));
        // 10 s later, 3 days read and 5,000 events delivered.
        let later = start + Duration::from_secs(10);
        t.checkpointed(Some((oldest, latest, Some(latest - 3 * DAY))), 5_000, later);
        let f = t.figures(later).unwrap();
        assert!((f.ratio - 0.1).abs() < 1e-9, "{f:?}");
        assert_eq!(f.events, 5_000);
        assert!((f.rate - 500.0).abs() < 1e-9, "{f:?}");
        // 27 days left at 3 days per 10 s: 90 s.
        assert_eq!(f.eta, Some(Duration::from_secs(90)));
        let line = f.line();
        assert!(
            line.contains(" 10.0%")
                && line.contains("5000 events")
                && line.contains("500/s")
                && line.contains("ETA 1m30s"),
            "{line}"
        );
        assert!(!line.contains('\n'), "one line");
    }

    #[test]
    fn nothing_is_reported_when_caught_up_or_for_a_short_window() {
        let t = Tracker::new();
        let now = Instant::now();
        t.checkpointed(Some((1_000, 1_000 + 60, Some(1_030))), 10, now);
        assert_eq!(
            t.figures(now),
            None,
            "a one-minute window is not a backfill"
        );
        t.checkpointed(Some((1_000, 1_000 + DAY, Some(1_000 + DAY / 2))), 10, now);
        assert!(t.figures(now).is_some());
        t.checkpointed(None, 10, now);
        assert_eq!(t.figures(now), None, "the window is done");
    }

    #[test]
    fn the_rate_is_measured_over_the_last_minute_only() {
        let t = Tracker::new();
        let start = Instant::now();
        let (oldest, latest) = (0, 30 * DAY);
        // A slow first minute (1 event/s), then a fast one (100 events/s).
        for s in 0..=120u64 {
            let events = if s == 0 {
                0
            } else if s <= 60 {
                1
            } else {
                100
            };
            let low = latest - s as i64 * 100;
            t.checkpointed(
                Some((oldest, latest, Some(low))),
                events,
                start + Duration::from_secs(s),
            );
        }
        let f = t.figures(start + Duration::from_secs(120)).unwrap();
        assert!(f.rate > 90.0, "{f:?}");
    }
}
