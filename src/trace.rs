//! The request tracer (`--trace-requests DIR`).
//!
//! STUB (issue 5): records nothing yet.

/// Writes requests and responses as NDJSON, redacted.
#[derive(Debug, Clone)]
pub struct Tracer {}

impl Tracer {
    /// Records one exchange.
    pub fn record(
        &self,
        _url: &url::Url,
        _status: u16,
        _headers: &reqwest::header::HeaderMap,
        _body: &[u8],
    ) {
    }
}

impl Tracer {
    /// The tracer the options ask for, if any.
    ///
    /// # Errors
    ///
    /// [`crate::config::ConfigError`] when the directory cannot be used.
    pub fn from_config(
        _config: &crate::metrics::ObservabilityConfig,
    ) -> Result<Option<Tracer>, crate::config::ConfigError> {
        Ok(None)
    }
}
