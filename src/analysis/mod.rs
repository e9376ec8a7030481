//! Anomaly analysis: annotations on anomaly events and findings as alert documents.
//!
//! STUB (issue 6): passes documents through.

use crate::config::ConfigError;
use serde_json::Value;

/// Analysis flags for `run`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AnalysisArgs {}

/// Arguments of `analyze`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    /// Analysis options.
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

/// Validated analysis options.
#[derive(Debug, Clone, Default)]
pub struct AnalysisConfig {}

impl AnalysisConfig {
    /// Validates the flags.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the flag.
    pub fn from_args(_args: &AnalysisArgs) -> Result<AnalysisConfig, ConfigError> {
        Ok(AnalysisConfig {})
    }
}

/// Annotates documents and emits findings; its state persists with the checkpoint.
#[derive(Debug, Default)]
pub struct Analyzer {}

impl Analyzer {
    /// An analyzer resuming from `state` (the value [`Analyzer::state`] returned earlier).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for unreadable rule or allowlist files, or a state it cannot read.
    pub fn new(_config: &AnalysisConfig, _state: Option<&Value>) -> Result<Analyzer, ConfigError> {
        Ok(Analyzer {})
    }

    /// Annotates `docs` in place (one page, in order) and appends findings after them.
    pub fn process(&mut self, _docs: &mut Vec<Value>) {}

    /// The state to save with the checkpoint.
    pub fn state(&self) -> Option<Value> {
        None
    }
}

/// The `analyze` command.
///
/// # Errors
///
/// Bad options; stdout closed.
pub async fn run_analyze(_args: AnalyzeArgs) -> Result<(), crate::Error> {
    Ok(())
}
