//! Fault injection: the ways Slack (or the network in front of it) misbehaves, drawn per
//! `/audit/v1/logs` request from the simulator's seeded RNG.
//!
//! One uniform draw per request picks at most one fault, so the probabilities add up (their sum
//! must stay at or below 1). The CLI spelling is `--faults "429=0.05,500=0.05,stall=0.01"`.

use std::time::Duration;

/// Per-request fault probabilities, and the knobs of the faults that have one.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// `429` with `Retry-After` and `{"ok":false,"error":"ratelimited"}`.
    pub rate_limited: f64,
    /// `500` with an HTML body (Slack sends HTML with its 5xx).
    pub server_error: f64,
    /// `502` with a proxy's HTML body.
    pub bad_gateway: f64,
    /// Wait [`Faults::stall_for`] before answering (longer than the client's timeout).
    pub stall: f64,
    /// A `200` whose JSON body is cut in the middle.
    pub truncated: f64,
    /// A `200` with body `{}`: no `entries` at all.
    pub empty_object: f64,
    /// A `200` with `entries: []` and a cursor that continues where this page would have
    /// started (legal in Slack's API; Sekoia's client sees them).
    pub empty_page: f64,
    /// The `Retry-After` sent with a 429, in whole seconds (rounded up).
    pub retry_after: Duration,
    /// How long a stalled request waits before it is answered normally.
    pub stall_for: Duration,
}

/// [`Faults::retry_after`] by default: short, so tests and soaks do not crawl; Slack's own
/// values are usually a few seconds to a minute.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// [`Faults::stall_for`] by default: twice the client's default 60 s request timeout.
pub(crate) const DEFAULT_STALL: Duration = Duration::from_secs(120);

impl Default for Faults {
    /// No faults.
    fn default() -> Faults {
        Faults {
            rate_limited: 0.0,
            server_error: 0.0,
            bad_gateway: 0.0,
            stall: 0.0,
            truncated: 0.0,
            empty_object: 0.0,
            empty_page: 0.0,
            retry_after: DEFAULT_RETRY_AFTER,
            stall_for: DEFAULT_STALL,
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// HTTP 429.
    RateLimited,
    /// HTTP 500.
    ServerError,
    /// HTTP 502.
    BadGateway,
    /// A delayed answer.
    Stall,
    /// A 200 cut short.
    Truncated,
    /// A 200 `{}`.
    EmptyObject,
    /// A 200 empty page with a cursor.
    EmptyPage,
}

impl FaultKind {
    /// Every kind, in draw order.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::RateLimited,
        FaultKind::ServerError,
        FaultKind::BadGateway,
        FaultKind::Stall,
        FaultKind::Truncated,
        FaultKind::EmptyObject,
        FaultKind::EmptyPage,
    ];

    /// The name used in `--faults`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FaultKind::RateLimited => "429",
            FaultKind::ServerError => "500",
            FaultKind::BadGateway => "502",
            FaultKind::Stall => "stall",
            FaultKind::Truncated => "truncated",
            FaultKind::EmptyObject => "empty_object",
            FaultKind::EmptyPage => "empty_page",
        }
    }
}

impl Faults {
    /// Exactly one kind at probability 1 (tests use it to see each fault for certain).
    pub fn always(kind: FaultKind) -> Faults {
        let mut f = Faults::default();
        *f.probability_mut(kind) = 1.0;
        f
    }

    /// The probability of `kind`.
    pub(crate) fn probability(&self, kind: FaultKind) -> f64 {
        match kind {
            FaultKind::RateLimited => self.rate_limited,
            FaultKind::ServerError => self.server_error,
            FaultKind::BadGateway => self.bad_gateway,
            FaultKind::Stall => self.stall,
            FaultKind::Truncated => self.truncated,
            FaultKind::EmptyObject => self.empty_object,
            FaultKind::EmptyPage => self.empty_page,
        }
    }

    fn probability_mut(&mut self, kind: FaultKind) -> &mut f64 {
        match kind {
            FaultKind::RateLimited => &mut self.rate_limited,
            FaultKind::ServerError => &mut self.server_error,
            FaultKind::BadGateway => &mut self.bad_gateway,
            FaultKind::Stall => &mut self.stall,
            FaultKind::Truncated => &mut self.truncated,
            FaultKind::EmptyObject => &mut self.empty_object,
            FaultKind::EmptyPage => &mut self.empty_page,
        }
    }

    /// True when no fault can be drawn.
    pub(crate) fn is_none(&self) -> bool {
        FaultKind::ALL.iter().all(|k| self.probability(*k) <= 0.0)
    }

    /// Picks the fault for a uniform draw `u` in `[0, 1)`: the kinds share the unit interval
    /// in [`FaultKind::ALL`] order, so one draw decides and probabilities add up.
    pub(crate) fn pick(&self, u: f64) -> Option<FaultKind> {
        let mut acc = 0.0;
        for kind in FaultKind::ALL {
            let p = self.probability(kind);
            // NaN and negative probabilities count as 0 (only `parse` validates).
            if p > 0.0 {
                acc += p;
                if u < acc {
                    return Some(kind);
                }
            }
        }
        None
    }

    /// Parses `--faults`: comma-separated `KIND=PROBABILITY`, kinds `429`, `500`, `502`,
    /// `stall`, `truncated`, `empty_object`, `empty_page`; an empty string means none.
    /// Keeps `retry_after` and `stall_for` at their defaults.
    ///
    /// # Errors
    ///
    /// A message quoting the bad item: unknown kind, a probability outside 0..=1, or a sum
    /// above 1.
    pub(crate) fn parse(spec: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not KIND=PROBABILITY, e.g. 429=0.05"))?;
            let kind = FaultKind::ALL
                .into_iter()
                .find(|k| k.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<_> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                    format!(
                        "unknown fault {:?}; known: {}",
                        name.trim(),
                        names.join(", ")
                    )
                })?;
            let p: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{item:?}: {:?} is not a probability", value.trim()))?;
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{item:?}: a probability is between 0 and 1"));
            }
            *faults.probability_mut(kind) = p;
        }
        let sum: f64 = FaultKind::ALL.iter().map(|k| faults.probability(*k)).sum();
        if sum > 1.0 + 1e-9 {
            return Err(format!("the probabilities add up to {sum}; one request gets at most one fault, so they must add up to 1 or less"));
        }
        Ok(faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let f =
            Faults::parse("429=0.05,500=0.05,502=0.02,stall=0.01,truncated=0.02,empty_object=0.02")
                .unwrap();
        assert_eq!(f.rate_limited, 0.05);
        assert_eq!(f.bad_gateway, 0.02);
        assert_eq!(f.empty_object, 0.02);
        assert_eq!(f.empty_page, 0.0);
        assert_eq!(f.retry_after, DEFAULT_RETRY_AFTER);
        assert!(Faults::parse("").unwrap().is_none());
    }

    #[test]
    fn refuses_bad_specs_with_the_item_quoted() {
        assert!(Faults::parse("404=0.1").unwrap_err().contains("\"404\""));
        assert!(Faults::parse("429")
            .unwrap_err()
            .contains("KIND=PROBABILITY"));
        assert!(Faults::parse("429=x").is_err());
        assert!(Faults::parse("429=1.5").is_err());
        assert!(Faults::parse("429=0.6,500=0.6")
            .unwrap_err()
            .contains("add up"));
    }

    #[test]
    fn one_draw_picks_at_most_one_fault() {
        let f = Faults::parse("429=0.25,truncated=0.25").unwrap();
        assert_eq!(f.pick(0.1), Some(FaultKind::RateLimited));
        assert_eq!(f.pick(0.3), Some(FaultKind::Truncated));
        assert_eq!(f.pick(0.6), None);
        for kind in FaultKind::ALL {
            assert_eq!(Faults::always(kind).pick(0.999), Some(kind));
        }
        assert_eq!(Faults::default().pick(0.0), None);
    }
}
