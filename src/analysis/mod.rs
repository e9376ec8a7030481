//! Anomaly analysis at the edge: annotations on documents and findings as alert documents.
//!
//! Slack's `anomaly` events are signals, not incidents. This stage, between the mapping and the
//! sink, turns them into something a SOC can act on:
//! - every event whose user agent matches no expected pattern is flagged
//!   (`slack.audit.analysis.unexpected_user_agent`);
//! - every anomaly is annotated with its normalised reasons (Slack's built-in pairs applied)
//!   and with the local allowlist entry it matches, if any (`allowlist`);
//! - the reasons of one actor's non-allowlisted anomalies within a window are matched against
//!   the correlation rules ([`rules`]), and each user's daily count of chosen reasons against
//!   their history (baselines); each hit is one `event.kind: alert` document (`finding`)
//!   appended to the page, emitted once.
//!
//! It works on ECS documents only (the mapping's output), knows nothing of Slack's API, and
//! never reads the clock: event time drives windows and pruning, so `analyze` over exported
//! history behaves exactly like `run` did live. Its `state` is saved in the checkpoint with
//! the page it reflects, so a restart neither repeats nor forgets a finding.

pub(crate) mod allowlist;
mod analyze;
mod baseline;
pub(crate) mod detect;
mod engine;
mod fields;
pub(crate) mod finding;
pub mod rules;
pub(crate) mod severity;
pub(crate) mod state;

pub use analyze::run_analyze;
pub(crate) use analyze::{run_analyze_with, Plan};

use crate::units::ConfigError;
use allowlist::Allowlist;
use rules::RuleSet;
use serde_json::value::RawValue;
use serde_json::Value;
use state::{State, STATE_VERSION};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default for `--analysis-window`: long enough for Slack's anomaly detections about one
/// session (logged minutes apart) to meet, short enough that unrelated days do not.
pub(crate) const DEFAULT_WINDOW: &str = "1h";
/// Shortest window accepted.
pub(crate) const MIN_WINDOW: Duration = Duration::from_secs(60);
/// Longest window accepted: a day (baselines cover longer spans).
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(86_400);

/// Analysis flags for `run` (and `analyze`).
#[derive(Debug, Clone, clap::Args)]
pub struct AnalysisArgs {
    /// Allowlist TOML: trusted_cidrs, trusted_asns, user_agents, excluded_users (docs/analysis.md).
    #[arg(long, env = "SLACK_AUDIT_ALLOWLIST")]
    pub allowlist: Option<PathBuf>,
    /// Rules TOML replacing the embedded default (see `analyze --print-default-rules`).
    #[arg(long, env = "SLACK_AUDIT_RULES")]
    pub rules: Option<PathBuf>,
    /// Correlation window per actor, aligned to UTC.
    #[arg(long, env = "SLACK_AUDIT_ANALYSIS_WINDOW", default_value = DEFAULT_WINDOW)]
    pub analysis_window: String,
    /// Reasons counted per user per UTC day against their history (comma-separated, `none` for no baselines); default: the rules file's.
    #[arg(long, env = "SLACK_AUDIT_BASELINE_REASONS", value_delimiter = ',')]
    pub baseline_reasons: Vec<String>,
    /// Pass documents through unanalysed; the saved analysis state is kept for a later run.
    #[arg(long, env = "SLACK_AUDIT_NO_ANALYSIS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_analysis: bool,
}

impl Default for AnalysisArgs {
    fn default() -> Self {
        AnalysisArgs {
            allowlist: None,
            rules: None,
            analysis_window: DEFAULT_WINDOW.into(),
            baseline_reasons: Vec::new(),
            no_analysis: false,
        }
    }
}

/// Arguments of `analyze`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    /// Analysis options.
    #[command(flatten)]
    pub(crate) analysis: AnalysisArgs,
    /// Mapping options, for raw entries (an ASN database fills source.as.number for trusted_asns and has session rules compare ASNs; a city database turns the new-country rule on).
    #[command(flatten)]
    pub(crate) mapping: crate::mapping::MappingArgs,
    /// Also print every input document, annotated, each batch before its findings.
    #[arg(long)]
    pub(crate) all: bool,
    /// Resume from this state file (JSON) if it exists, and save the state there at the end.
    #[arg(long)]
    pub(crate) state: Option<PathBuf>,
    /// Print the embedded default rules (a starting point for --rules) and exit.
    #[arg(long)]
    pub(crate) print_default_rules: bool,
}

/// Validated analysis options, with the rules and allowlist files loaded.
#[derive(Debug, Clone)]
pub struct AnalysisConfig {
    /// False with `--no-analysis`.
    pub(crate) enabled: bool,
    /// Correlation window.
    pub(crate) window: Duration,
    /// The rules in force.
    pub(crate) rules: Arc<RuleSet>,
    /// The local allowlist (empty without `--allowlist`).
    pub(crate) allowlist: Arc<Allowlist>,
    /// Reasons with a baseline.
    pub(crate) baseline_reasons: BTreeSet<String>,
}

impl Default for AnalysisConfig {
    /// Analysis on, with the embedded rules and no allowlist (what `run` does with no flags).
    fn default() -> Self {
        let rules = RuleSet::default_rules();
        AnalysisConfig {
            enabled: true,
            window: crate::units::default_duration(DEFAULT_WINDOW),
            baseline_reasons: rules.baseline.reasons.clone(),
            rules: Arc::new(rules),
            allowlist: Arc::new(Allowlist::default()),
        }
    }
}

impl AnalysisConfig {
    /// Validates the flags and loads the files they name.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the flag, and the file and its problem for files.
    pub fn from_args(args: &AnalysisArgs) -> Result<AnalysisConfig, ConfigError> {
        let window = crate::units::parse_duration("analysis-window", &args.analysis_window)?;
        if window < MIN_WINDOW || window > MAX_WINDOW || window.subsec_nanos() != 0 {
            return Err(ConfigError::Invalid {
                flag: "analysis-window",
                message: format!(
                    "{:?} is out of range; give whole seconds from 1m to 24h, e.g. 1h",
                    args.analysis_window
                ),
            });
        }
        let rules = match &args.rules {
            Some(path) => {
                RuleSet::parse(&read("rules", path)?).map_err(|m| file_error("rules", path, m))?
            }
            None => RuleSet::default_rules(),
        };
        let allowlist = match &args.allowlist {
            Some(path) => Allowlist::parse(&read("allowlist", path)?)
                .map_err(|m| file_error("allowlist", path, m))?,
            None => Allowlist::default(),
        };
        let given: Vec<&str> = args
            .baseline_reasons
            .iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty())
            .collect();
        let baseline_reasons = match given.as_slice() {
            [] => rules.baseline.reasons.clone(),
            ["none"] => BTreeSet::new(),
            list => list
                .iter()
                .map(|r| rules.known_reason(r))
                .collect::<Result<_, _>>()
                .map_err(|message| ConfigError::Invalid {
                    flag: "baseline-reasons",
                    message,
                })?,
        };
        Ok(AnalysisConfig {
            enabled: !args.no_analysis,
            window,
            rules: Arc::new(rules),
            allowlist: Arc::new(allowlist),
            baseline_reasons,
        })
    }
}

fn read(flag: &'static str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| file_error(flag, path, e.to_string()))
}

fn file_error(flag: &'static str, path: &Path, problem: String) -> ConfigError {
    ConfigError::Invalid {
        flag,
        message: format!("{}: {problem}", path.display()),
    }
}

/// Annotates documents and emits findings; its state persists with the checkpoint.
#[derive(Debug)]
pub struct Analyzer {
    /// `None` with `--no-analysis`.
    settings: Option<engine::Settings>,
    state: State,
    /// With `--no-analysis`, the saved state is handed back untouched, so turning analysis off
    /// for a while does not erase its history.
    kept: Option<Box<RawValue>>,
    /// Events noted by [`Analyzer::note_plain`] since the last [`Analyzer::process`],
    /// recorded when that chunk is processed.
    noted: Vec<engine::Noted>,
    /// The detection rules over raw entries; `None` with `--no-analysis`.
    detector: Option<detect::Detector>,
}

/// The analysis state as saved in the checkpoint: serialised straight from where it lives, so
/// saving it every page builds no copy (the state can be megabytes).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SavedState<'a> {
    /// The live state, and the detections' (under `detections`).
    Live(&'a State, Option<&'a detect::state::DetectState>),
    /// A state kept untouched while the analysis is off.
    Kept(&'a RawValue),
}

impl serde::Serialize for SavedState<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SavedState::Live(state, detections) => {
                #[derive(serde::Serialize)]
                struct Live<'a> {
                    #[serde(flatten)]
                    state: &'a State,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    detections: Option<&'a detect::state::DetectState>,
                }
                Live {
                    state,
                    detections: *detections,
                }
                .serialize(s)
            }
            SavedState::Kept(raw) => raw.serialize(s),
        }
    }
}

impl Analyzer {
    /// An analyzer resuming from `state` (the value [`Analyzer::state`] returned earlier).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a state it cannot read (another format version, a corrupt value).
    pub fn new(config: &AnalysisConfig, state: Option<&Value>) -> Result<Analyzer, ConfigError> {
        Analyzer::with_geoip(config, state, None)
    }

    /// [`Analyzer::new`] whose detections look addresses up in the mapping's GeoIP databases:
    /// session rules compare ASNs with `--geoip-asn`, the new-country rule needs `--geoip-city`.
    ///
    /// # Errors
    ///
    /// As [`Analyzer::new`].
    pub(crate) fn with_geoip(
        config: &AnalysisConfig,
        state: Option<&Value>,
        geoip: Option<&crate::mapping::geoip::GeoIp>,
    ) -> Result<Analyzer, ConfigError> {
        let text = match state {
            None | Some(Value::Null) => None,
            // Cannot fail: a value always serialises.
            Some(v) => serde_json::value::to_raw_value(v).ok(),
        };
        Analyzer::from_saved(config, text, geoip)
    }

    /// An analyzer resuming from the state saved in a checkpoint, as JSON text. Read straight
    /// into the state, never through a tree of values: a large state would cost several times
    /// its size that way.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a state it cannot read (another format version, a corrupt value).
    pub(crate) fn from_saved(
        config: &AnalysisConfig,
        state: Option<Box<RawValue>>,
        geoip: Option<&crate::mapping::geoip::GeoIp>,
    ) -> Result<Analyzer, ConfigError> {
        let state = state.filter(|raw| raw.get().trim() != "null");
        if !config.enabled {
            return Ok(Analyzer {
                settings: None,
                state: State::new(),
                kept: state,
                noted: Vec::new(),
                detector: None,
            });
        }
        let window_secs = i64::try_from(config.window.as_secs())
            .unwrap_or(3600)
            .max(1);
        let (mut restored, detections) = match &state {
            None => (State::new(), None),
            Some(raw) => (restore(raw)?, restore_detections(raw)?),
        };
        drop(state);
        let detector = detect::Detector::new(
            config.rules.clone(),
            config.allowlist.clone(),
            geoip.map_or_else(
                || Box::new(detect::geo::NoGeo) as Box<dyn detect::geo::GeoLookup>,
                detect::geo::GeoIpLookup::boxed,
            ),
            detections,
        );
        if restored.window_secs != window_secs {
            // Windows cut with another length cannot be compared; findings already emitted
            // and baselines stay.
            restored.windows.clear();
            restored.window_secs = window_secs;
        }
        let settings = engine::Settings {
            rules: config.rules.clone(),
            allowlist: config.allowlist.clone(),
            window_secs,
            baseline_reasons: config.baseline_reasons.clone(),
        };
        Ok(Analyzer {
            settings: Some(settings),
            state: restored,
            kept: None,
            noted: Vec::new(),
            detector: Some(detector),
        })
    }

    /// Whether an entry with this action must reach [`Analyzer::detect`] as a value rather
    /// than as what the mapper read ([`detect::Light`]). False with the analysis off.
    pub(crate) fn detect_needs_entry(&self, action: &str) -> bool {
        self.detector
            .as_ref()
            .is_some_and(|d| d.needs_entry(action))
    }

    /// Whether the detections run (the analysis is on).
    pub(crate) fn detects(&self) -> bool {
        self.detector.is_some()
    }

    /// Runs the detection rules over one page's entries (in any order) and returns their
    /// findings. Nothing with the analysis off.
    pub fn detect(&mut self, items: &[detect::Item<'_>]) -> Vec<Value> {
        match &mut self.detector {
            Some(d) => d.evaluate_items(items),
            None => Vec::new(),
        }
    }

    /// Annotates `docs` in place (one page, in order) and appends findings after them.
    pub fn process<D: crate::doc::Doc>(&mut self, docs: &mut Vec<D>) {
        if let Some(settings) = &self.settings {
            engine::process(settings, &mut self.state, self.noted.drain(..), docs);
        }
    }

    /// Whether a document needs to go through [`Analyzer::process`] as a JSON value: anomalies
    /// (annotated, and the signals of findings) and events whose user agent is not an expected
    /// one (annotated, and maybe a signal). Every other document is only noted
    /// ([`Analyzer::note_plain`]), so the pipeline writes it straight to text.
    pub(crate) fn wants(&self, action: Option<&str>, user_agent: Option<&str>) -> bool {
        let Some(settings) = &self.settings else {
            return false;
        };
        action == Some("anomaly")
            || user_agent.is_some_and(|ua| !engine::expected_user_agent(settings, ua))
    }

    /// Records a document that [`Analyzer::wants`] passed over, from what mapping read of it,
    /// as [`Analyzer::process`] would have recorded the document itself (one path, in the
    /// engine: its time, and a download into its actor's window). Takes effect with the next
    /// [`Analyzer::process`], which the pipeline calls for every chunk.
    pub(crate) fn note_plain(&mut self, facts: &crate::mapping::Facts) {
        if self.settings.is_none() {
            return;
        }
        let ms = facts.timestamp_ms;
        self.noted.push(engine::Noted::new(
            facts.action.as_deref().unwrap_or_default(),
            facts.user_id.as_deref(),
            Some(ms),
            |at_ms| state::FileRef {
                at_ms,
                event_id: facts.event_id.clone().unwrap_or_default(),
                id: facts.entity_id.clone(),
                name: facts.entity_name.clone(),
            },
        ));
    }

    /// The state to save with the checkpoint, ready to be serialised where it is written.
    pub(crate) fn saved_state(&self) -> Option<SavedState<'_>> {
        match &self.settings {
            None => self.kept.as_deref().map(SavedState::Kept),
            Some(_) => Some(SavedState::Live(
                &self.state,
                // Nothing until the detections have seen a page: an analysis state that never
                // met them is written as before.
                self.detector
                    .as_ref()
                    .map(detect::Detector::state)
                    .filter(|d| d.batches > 0),
            )),
        }
    }

    /// The state to save with the checkpoint, as a value (the `analyze` command and tests).
    pub fn state(&self) -> Option<Value> {
        // Cannot fail: every map key is a string or an integer.
        serde_json::to_value(self.saved_state()?).ok()
    }
}

/// The detections' state saved beside the analysis state (absent in checkpoints written before
/// the detections: they start afresh).
fn restore_detections(raw: &RawValue) -> Result<Option<detect::state::DetectState>, ConfigError> {
    #[derive(serde::Deserialize)]
    struct Saved {
        #[serde(default)]
        detections: Option<Box<RawValue>>,
    }
    let problem = |m: String| {
        ConfigError::Invalid {
        flag: "state-dir",
        message: format!("cannot read the detection state saved in the checkpoint: {m}; remove the \"detections\" key of its \"analysis\" to start the detections afresh"),
    }
    };
    let saved: Saved = serde_json::from_str(raw.get()).map_err(|e| problem(e.to_string()))?;
    let Some(raw) = saved.detections else {
        return Ok(None);
    };
    let state: detect::state::DetectState =
        serde_json::from_str(raw.get()).map_err(|e| problem(e.to_string()))?;
    if state.version != detect::state::DETECT_STATE_VERSION {
        return Err(problem(format!(
            "format version {}, this binary reads {}",
            state.version,
            detect::state::DETECT_STATE_VERSION
        )));
    }
    Ok(Some(state))
}

fn restore(raw: &RawValue) -> Result<State, ConfigError> {
    let problem = |m: String| {
        ConfigError::Invalid {
        flag: "state-dir",
        message: format!("cannot read the analysis state saved in the checkpoint: {m}; remove its \"analysis\" key to start the analysis afresh"),
    }
    };
    // The version first, alone, so that another format is named as such rather than reported
    // as whatever field it happens to break.
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        version: Option<Value>,
    }
    let head: Head = serde_json::from_str(raw.get()).map_err(|e| problem(e.to_string()))?;
    let version = head.version.as_ref().and_then(Value::as_u64);
    if version != Some(u64::from(STATE_VERSION)) {
        return Err(problem(format!(
            "format version {version:?}, this binary reads {STATE_VERSION}"
        )));
    }
    serde_json::from_str(raw.get()).map_err(|e| problem(e.to_string()))
}

#[cfg(test)]
mod tests;
