//! How bad a finding is: the severity scale shared by the anomaly rules and the detection
//! rules (a leaf of the analysis, so that both rule models can use it).

use serde::Deserialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look in bulk.
    Low,
    /// Worth a look today.
    Medium,
    /// Worth a look now.
    High,
    /// Drop everything.
    Critical,
}

impl Severity {
    /// `event.severity`: 1 (low) to 4 (critical), so that sorting by it sorts by urgency.
    pub fn number(self) -> u8 {
        match self {
            Severity::Low => 1,
            Severity::Medium => 2,
            Severity::High => 3,
            Severity::Critical => 4,
        }
    }

    /// The default `event.risk_score`: Elastic's detection-rule defaults for each severity, so
    /// Kibana's risk views read our alerts like its own.
    pub fn risk_score(self) -> u8 {
        match self {
            Severity::Low => 21,
            Severity::Medium => 47,
            Severity::High => 73,
            Severity::Critical => 99,
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}
