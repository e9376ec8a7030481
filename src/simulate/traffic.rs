//! Traffic over time: the backfill made at start, then live entries dated "now" at a steady
//! rate, periodic same-second bursts, late-indexed entries, the story's scheduled steps and,
//! for the demo, the attack story's beats.
//!
//! Time here is tokio's (so tests can pause and advance it), but entries are dated by the wall
//! clock, because that is what the client compares `date_create` and `latest` with.

use super::generator::attacks::{self, Beat};
use super::generator::{Generator, STORY_OFFSETS};
use super::server::unix_now;
use super::shared::Shared;
use super::store::Stored;
use crate::shutdown::Shutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the traffic task wakes: fine enough that a rate of a few events a second looks
/// continuous, coarse enough to cost nothing.
const TICK: Duration = Duration::from_millis(100);

/// What the live traffic task does.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Live entries per second (0: none).
    pub(crate) rate_per_sec: f64,
    /// Play the story's steps at [`STORY_OFFSETS`].
    pub(crate) story: bool,
    /// Play the attack story's beats at their demo offsets.
    pub(crate) attacks: bool,
    /// Entries per live burst (0: none).
    pub(crate) burst: usize,
    /// Time between live bursts (at least a second).
    pub(crate) burst_every: Duration,
    /// Share of live entries held back.
    pub(crate) late_fraction: f64,
    /// How long they are held back.
    pub(crate) late_delay: Duration,
}

impl Plan {
    fn is_idle(&self) -> bool {
        self.rate_per_sec <= 0.0 && !self.story && !self.attacks && self.burst == 0
    }
}

/// Entries per backfill chunk: each chunk comes from its own RNG stream, so chunks can be made
/// on several threads and the result is the same whatever the thread count.
const CHUNK: usize = 1 << 16;

/// `n` entries spread evenly over `[end - span, end]`, oldest first, plus (when `burst > 0`)
/// `burst` entries on the span's middle second, so that a page there must exceed `limit`.
/// Made on up to 4 threads: a million entries in a few seconds.
pub(crate) fn backfill(
    seed: u64,
    n: usize,
    span_secs: u64,
    end: i64,
    burst: usize,
) -> Vec<(i64, Stored)> {
    // Never before the Unix epoch, and no overflow for absurd spans.
    let span = i64::try_from(span_secs).unwrap_or(i64::MAX).min(end.max(0));
    let start = end - span;
    // i * (span + 1) / n is monotonic in i, so entries come out oldest first.
    let date_of =
        move |i: usize| start + (i as u128 * (span as u128 + 1) / n.max(1) as u128) as i64;
    let chunks = n.div_ceil(CHUNK);
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, 4)
        .min(chunks.max(1));
    let mut made: Vec<(usize, Vec<(i64, Stored)>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..chunks)
                        .step_by(threads)
                        .map(|c| {
                            let mut g = Generator::new(seed).with_stream(seed, c as u64 + 1);
                            (
                                c,
                                (c * CHUNK..((c + 1) * CHUNK).min(n))
                                    .map(|i| g.entry(date_of(i)))
                                    .collect(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // A panic in a worker is a bug in the generator; hand it on rather than lose entries.
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    made.sort_by_key(|(c, _)| *c);
    let mut out: Vec<(i64, Stored)> = Vec::with_capacity(n + burst);
    out.extend(made.into_iter().flat_map(|(_, entries)| entries));
    let mut g = Generator::new(seed).with_stream(seed, 0);
    out.extend((0..burst).map(|_| g.entry(start + span / 2)));
    out
}

/// Runs live traffic until `shutdown`, or until there is nothing left to do.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut generator: Generator,
    mut story: Generator,
    plan: Plan,
    mut shutdown: Shutdown,
) {
    if plan.is_idle() {
        return;
    }
    let started = Instant::now();
    let mut last = started;
    let mut owed = 0.0_f64;
    let mut story_step = 0;
    let beats: Vec<Beat> = if plan.attacks {
        attacks::beats()
    } else {
        Vec::new()
    };
    let mut beat = 0;
    let mut next_burst = started + plan.burst_every.max(Duration::from_secs(1));
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = shutdown.wait() => return,
        }
        let now = Instant::now();
        let date = unix_now();
        while plan.story
            && story_step < STORY_OFFSETS.len()
            && now >= started + Duration::from_secs(STORY_OFFSETS[story_step])
        {
            if let Some(e) = story.story_entry(story_step, date) {
                shared.store.insert([e]);
            }
            story_step += 1;
        }
        let mut played = Vec::new();
        while beat < beats.len() && now >= started + Duration::from_secs(beats[beat].demo) {
            played.push(story.attack_entry(&beats[beat], date));
            beat += 1;
        }
        shared.store.insert(played);
        // At most a second's worth per tick: after a pause (or a jump of paused time in a
        // test) the simulator does not flood the store with a backlog.
        owed += plan.rate_per_sec
            * now
                .duration_since(last)
                .min(Duration::from_secs(1))
                .as_secs_f64();
        last = now;
        let mut live = Vec::new();
        while owed >= 1.0 {
            owed -= 1.0;
            let entry = generator.entry(date);
            if plan.late_fraction > 0.0 && generator.unit() < plan.late_fraction {
                // Dated now, visible only after the delay: what Slack's late indexing looks like.
                shared
                    .store
                    .insert_late(entry.0, entry.1, now + plan.late_delay);
            } else {
                live.push(entry);
            }
        }
        if plan.burst > 0 && now >= next_burst {
            live.extend((0..plan.burst).map(|_| generator.entry(date)));
            next_burst = now + plan.burst_every.max(Duration::from_secs(1));
        }
        shared.store.insert(live);
        shared.store.release_due(now);
        let story_done = (!plan.story || story_step >= STORY_OFFSETS.len()) && beat >= beats.len();
        if plan.rate_per_sec <= 0.0 && plan.burst == 0 && story_done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backfill_is_spread_over_the_span_and_repeatable() {
        let a = backfill(3, 1000, 100, 10_000, 7);
        assert_eq!(a.len(), 1007);
        assert!(
            a[..1000].windows(2).all(|w| w[0].0 <= w[1].0),
            "oldest first"
        );
        assert_eq!((a[0].0, a[999].0), (9_900, 10_000));
        assert!(
            a[1000..].iter().all(|e| e.0 == 9_950),
            "the burst sits on the middle second"
        );
        let b = backfill(3, 1000, 100, 10_000, 7);
        assert!(a.iter().zip(&b).all(|(x, y)| x.1.json == y.1.json));
        assert!(backfill(3, 0, u64::MAX, 5, 0).is_empty());
        assert_eq!(
            backfill(3, 2, u64::MAX, 5, 0)[0].0,
            0,
            "never before the epoch"
        );
    }
}
