//! NDJSON POSTed to a shipper's HTTP input (Vector `http_server`, Fluent Bit `http`).
//!
//! STUB (issue 4): flags and types are in place; delivery is not implemented yet.

use super::{Batch, Error};
use crate::config::ConfigError;
use crate::shutdown::Shutdown;

/// HTTP sink flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HttpArgs {
    /// The shipper's HTTP input (Vector http_server, Fluent Bit http).
    #[arg(long, env = "SLACK_AUDIT_HTTP_URL")]
    pub http_url: Option<String>,
}

/// Validated HTTP sink options.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The receiver.
    pub url: url::Url,
}

impl HttpConfig {
    /// Validates the flags.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the flag.
    pub fn from_args(args: &HttpArgs) -> Result<HttpConfig, ConfigError> {
        let Some(url) = &args.http_url else {
            return Err(ConfigError::Invalid {
                flag: "http-url",
                message: "--sink http needs --http-url (e.g. http://127.0.0.1:8080/)".into(),
            });
        };
        Ok(HttpConfig {
            url: crate::config::parse_url("http-url", url)?,
        })
    }
}

/// POSTs batches.
#[derive(Debug)]
pub struct HttpSink {
    config: HttpConfig,
}

impl HttpSink {
    /// Builds the sink.
    ///
    /// # Errors
    ///
    /// [`Error::Setup`].
    pub fn new(config: HttpConfig) -> Result<HttpSink, Error> {
        Ok(HttpSink { config })
    }

    /// Delivers a batch.
    ///
    /// # Errors
    ///
    /// See [`Error`].
    pub async fn send(&mut self, _batch: &Batch, _shutdown: &mut Shutdown) -> Result<(), Error> {
        Err(Error::Setup(format!(
            "the HTTP sink to {} is not implemented yet",
            self.config.url
        )))
    }
}
