//! The HTTP sink's flags (raw, from clap and the environment) and their validated form.
//!
//! Validation happens once, at start: the URL (plain http only to loopback), batch limits,
//! headers, the CA bundle and the receiver's credentials. Credentials are held as
//! [`SecretString`](secrecy::SecretString) from the moment they are read; nothing here prints
//! them (`Debug` of every type in this file redacts them, and error messages name files and
//! variables, never values).

pub use super::auth::EnvSecrets;
pub(crate) use super::auth::{Auth, AuthFlags};
use crate::units::{parse_duration, parse_url, ConfigError};
use reqwest::header::{HeaderName, HeaderValue};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Default for `--http-batch-events`: a request of 1,000 Slack entries is about 1 MB, and a
/// page of 9,999 entries becomes ten requests, each acknowledged on its own.
pub(crate) const DEFAULT_BATCH_EVENTS: usize = 1000;
/// Default for `--http-batch-bytes`: 1 MiB. Fluent Bit's `http` input refuses a request body
/// over its `buffer_max_size` (default 4M) and grows its buffer in `buffer_chunk_size` steps
/// (default 512K); 1 MiB leaves 4x headroom under the default limit, so even a lone oversized
/// document (sent alone, see `batch.rs`) usually fits; Vector's `http_server` takes it untuned.
pub(crate) const DEFAULT_BATCH_BYTES: &str = "1MiB";
/// Default for `--http-content-type`: Fluent Bit's `http` input reads newline-delimited
/// objects only under this type (it answers 400 to `application/x-ndjson`); Vector's
/// `http_server` with `framing.method: newline_delimited` accepts either.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "application/json";
/// Default for `--http-timeout`: a shipper answering slower than this is treated as down.
pub(crate) const DEFAULT_TIMEOUT: &str = "30s";
/// Largest `--http-batch-bytes` accepted: beyond this no common receiver takes the request.
pub(crate) const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Largest `--http-batch-events` accepted.
pub(crate) const MAX_BATCH_EVENTS: usize = 100_000;

/// Headers the sink sets itself; `--http-header` may not override them.
const RESERVED_HEADERS: [&str; 5] = [
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "transfer-encoding",
];

/// HTTP sink flags, as given; `Default` is every flag at its default.
#[derive(Clone, clap::Args)]
pub struct HttpArgs {
    /// The shipper's HTTP input (Vector http_server, Fluent Bit http); plain http:// only to loopback.
    #[arg(long, env = "SLACK_AUDIT_HTTP_URL")]
    pub http_url: Option<String>,
    /// At most this many documents in one request.
    #[arg(long, env = "SLACK_AUDIT_HTTP_BATCH_EVENTS", default_value_t = DEFAULT_BATCH_EVENTS)]
    pub http_batch_events: usize,
    /// At most this many bytes of NDJSON in one request, before compression (e.g. 512KiB, 1MiB); a single larger document goes alone.
    #[arg(long, env = "SLACK_AUDIT_HTTP_BATCH_BYTES", default_value = DEFAULT_BATCH_BYTES)]
    pub http_batch_bytes: String,
    /// Content-Type of each request; Fluent Bit's http input needs application/json.
    #[arg(long, env = "SLACK_AUDIT_HTTP_CONTENT_TYPE", default_value = DEFAULT_CONTENT_TYPE)]
    pub http_content_type: String,
    /// Compress request bodies (sets Content-Encoding).
    #[arg(long, env = "SLACK_AUDIT_HTTP_COMPRESSION", value_enum, default_value_t = Compression::None)]
    pub http_compression: Compression,
    /// Extra request header 'Name: value' (repeatable; comma-separated in the environment).
    #[arg(
        long = "http-header",
        env = "SLACK_AUDIT_HTTP_HEADERS",
        value_delimiter = ','
    )]
    pub http_headers: Vec<String>,
    /// File holding a bearer token for the receiver (re-read before each request). Otherwise SLACK_AUDIT_HTTP_BEARER_TOKEN.
    #[arg(long, env = "SLACK_AUDIT_HTTP_BEARER_TOKEN_FILE")]
    pub http_bearer_token_file: Option<PathBuf>,
    /// Basic-auth user for the receiver; the password comes from --http-password-file or SLACK_AUDIT_HTTP_PASSWORD.
    #[arg(long, env = "SLACK_AUDIT_HTTP_USER")]
    pub http_user: Option<String>,
    /// File holding the basic-auth password (re-read before each request).
    #[arg(long, env = "SLACK_AUDIT_HTTP_PASSWORD_FILE")]
    pub http_password_file: Option<PathBuf>,
    /// PEM file of CA certificates to trust for the receiver, in addition to the built-in roots.
    #[arg(long, env = "SLACK_AUDIT_HTTP_CA_FILE")]
    pub http_ca_file: Option<PathBuf>,
    /// Do not verify the receiver's TLS certificate (testing only; warns at start).
    #[arg(long, env = "SLACK_AUDIT_HTTP_INSECURE_SKIP_VERIFY")]
    pub http_insecure_skip_verify: bool,
    /// Give up on one request after this long (then retry with backoff).
    #[arg(long, env = "SLACK_AUDIT_HTTP_TIMEOUT", default_value = DEFAULT_TIMEOUT)]
    pub http_timeout: String,
}

impl Default for HttpArgs {
    fn default() -> HttpArgs {
        HttpArgs {
            http_url: None,
            http_batch_events: DEFAULT_BATCH_EVENTS,
            http_batch_bytes: DEFAULT_BATCH_BYTES.into(),
            http_content_type: DEFAULT_CONTENT_TYPE.into(),
            http_compression: Compression::None,
            http_headers: Vec::new(),
            http_bearer_token_file: None,
            http_user: None,
            http_password_file: None,
            http_ca_file: None,
            http_insecure_skip_verify: false,
            http_timeout: DEFAULT_TIMEOUT.into(),
        }
    }
}

impl std::fmt::Debug for HttpArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values may be API keys: show the names only.
        let names: Vec<&str> = self
            .http_headers
            .iter()
            .map(|h| h.split(':').next().unwrap_or_default().trim())
            .collect();
        f.debug_struct("HttpArgs")
            .field("http_url", &self.http_url)
            .field("http_batch_events", &self.http_batch_events)
            .field("http_batch_bytes", &self.http_batch_bytes)
            .field("http_content_type", &self.http_content_type)
            .field("http_compression", &self.http_compression)
            .field("http_header_names", &names)
            .field("http_bearer_token_file", &self.http_bearer_token_file)
            .field("http_user", &self.http_user)
            .field("http_password_file", &self.http_password_file)
            .field("http_ca_file", &self.http_ca_file)
            .field("http_insecure_skip_verify", &self.http_insecure_skip_verify)
            .field("http_timeout", &self.http_timeout)
            .finish()
    }
}

/// `--http-compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compression {
    /// Send NDJSON as is.
    #[default]
    None,
    /// gzip each request body (`Content-Encoding: gzip`); Vector and Fluent Bit (2.2.1+) decode it.
    Gzip,
}

/// Validated HTTP sink options.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The receiver.
    pub(crate) url: Url,
    /// Most documents in one request.
    pub max_events: usize,
    /// Most NDJSON bytes in one request (before compression); a larger single document goes alone.
    pub max_bytes: usize,
    /// `Content-Type` of each request.
    pub content_type: HeaderValue,
    /// Body compression.
    pub compression: Compression,
    /// Extra headers, values marked sensitive (they may be API keys).
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// Credentials for the receiver.
    pub(crate) auth: Option<Auth>,
    /// Extra CA certificates to trust.
    pub(crate) ca_certs: Vec<reqwest::Certificate>,
    /// Skip TLS verification.
    pub(crate) insecure_skip_verify: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// First retry delay (not a flag; tests shorten it).
    pub backoff_min: Duration,
    /// Longest retry delay, and the cap on a receiver's `Retry-After` (not a flag; tests shorten it).
    pub backoff_max: Duration,
}

impl HttpConfig {
    /// Validates the flags, reading credentials from the environment where no file is given.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found, naming the flag.
    pub(crate) fn from_args(args: &HttpArgs) -> Result<HttpConfig, ConfigError> {
        Self::from_args_with_env(args, EnvSecrets::from_env())
    }

    /// As `HttpConfig::from_args`, with the environment's secrets passed in.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found, naming the flag.
    pub fn from_args_with_env(args: &HttpArgs, env: EnvSecrets) -> Result<HttpConfig, ConfigError> {
        let Some(raw_url) = &args.http_url else {
            return Err(ConfigError::invalid("http-url", "--sink http needs --http-url (e.g. http://127.0.0.1:8080/ for a local Vector or Fluent Bit)"));
        };
        let url = parse_url("http-url", raw_url)?;
        if !url.username().is_empty() || url.password().is_some() {
            // Credentials in a URL end up in logs and error messages.
            return Err(ConfigError::invalid("http-url", "holds credentials; use --http-user with --http-password-file, or --http-bearer-token-file"));
        }
        if args.http_batch_events == 0 || args.http_batch_events > MAX_BATCH_EVENTS {
            return Err(ConfigError::invalid(
                "http-batch-events",
                format!(
                    "{} is out of range; give 1..={MAX_BATCH_EVENTS}",
                    args.http_batch_events
                ),
            ));
        }
        let max_bytes = parse_size("http-batch-bytes", &args.http_batch_bytes)?;
        if !(1024..=MAX_BATCH_BYTES).contains(&max_bytes) {
            return Err(ConfigError::invalid(
                "http-batch-bytes",
                format!(
                    "{:?} is out of range; give 1KiB..=64MiB",
                    args.http_batch_bytes
                ),
            ));
        }
        let content_type = parse_content_type(&args.http_content_type)?;
        let flags = AuthFlags {
            bearer_token_file: args.http_bearer_token_file.as_deref(),
            user: args.http_user.as_deref(),
            password_file: args.http_password_file.as_deref(),
        };
        let auth = Auth::from_args(flags, env)?;
        let headers = args
            .http_headers
            .iter()
            .map(|h| parse_header(h, auth.is_some()))
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = parse_duration("http-timeout", &args.http_timeout)?;
        if timeout.is_zero() {
            return Err(ConfigError::invalid("http-timeout", "must be more than 0s"));
        }
        let ca_certs = match &args.http_ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        Ok(HttpConfig {
            url,
            max_events: args.http_batch_events,
            max_bytes,
            content_type,
            compression: args.http_compression,
            headers,
            auth,
            ca_certs,
            insecure_skip_verify: args.http_insecure_skip_verify,
            timeout,
            backoff_min: crate::retry::DEFAULT_MIN_DELAY,
            backoff_max: crate::retry::DEFAULT_MAX_DELAY,
        })
    }

    /// A config for `url` with every default (tests and embedders).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the URL is refused.
    pub fn for_url(url: &str) -> Result<HttpConfig, ConfigError> {
        let args = HttpArgs {
            http_url: Some(url.to_string()),
            ..HttpArgs::default()
        };
        Self::from_args_with_env(&args, EnvSecrets::default())
    }

    /// The receiver as shown in logs and errors: scheme, host, port and path, without the
    /// query (query strings sometimes carry API keys).
    pub(crate) fn receiver(&self) -> String {
        let mut u = self.url.clone();
        u.set_query(None);
        u.set_fragment(None);
        u.to_string()
    }
}

fn parse_content_type(value: &str) -> Result<HeaderValue, ConfigError> {
    let v = value.trim();
    if !v.contains('/') {
        return Err(ConfigError::invalid(
            "http-content-type",
            format!("{value:?} is not a media type like application/json"),
        ));
    }
    HeaderValue::from_str(v).map_err(|_| {
        ConfigError::invalid(
            "http-content-type",
            format!("{value:?} cannot be sent in a header"),
        )
    })
}

/// Parses `Name: value`. The message quotes the name only: the value may be a key.
fn parse_header(raw: &str, has_auth: bool) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let Some((name, value)) = raw.split_once(':') else {
        let shown: String = raw
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(40)
            .collect();
        return Err(ConfigError::invalid(
            "http-header",
            format!("{shown:?}... is not 'Name: value'"),
        ));
    };
    let name = name.trim();
    let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        ConfigError::invalid("http-header", format!("{name:?} is not a header name"))
    })?;
    if RESERVED_HEADERS.contains(&header.as_str()) {
        return Err(ConfigError::invalid(
            "http-header",
            format!("{name:?} is set by the sink; use --http-content-type or --http-compression"),
        ));
    }
    if header == reqwest::header::AUTHORIZATION && has_auth {
        return Err(ConfigError::invalid(
            "http-header",
            "Authorization given twice: as a header and by --http-bearer-token-file/--http-user",
        ));
    }
    let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
        ConfigError::invalid(
            "http-header",
            format!("the value of {name:?} cannot be sent in a header"),
        )
    })?;
    value.set_sensitive(true);
    Ok((header, value))
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let pem = std::fs::read(path)
        .map_err(|e| ConfigError::invalid("http-ca-file", format!("{}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        ConfigError::invalid(
            "http-ca-file",
            format!("{}: not a PEM certificate bundle: {e}", path.display()),
        )
    })?;
    if certs.is_empty() {
        return Err(ConfigError::invalid(
            "http-ca-file",
            format!(
                "{}: no certificate found (expected PEM '-----BEGIN CERTIFICATE-----')",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// Parses a size with an optional unit: bytes (`1048576`), `KiB`/`MiB`/`GiB` or `K`/`M`/`G`
/// (powers of 1024, as Fluent Bit's `4M`), or `KB`/`MB`/`GB` (powers of 1000).
///
/// # Errors
///
/// [`ConfigError::Invalid`] quoting the value.
pub(crate) fn parse_size(flag: &'static str, value: &str) -> Result<usize, ConfigError> {
    let bytes = crate::units::parse_size(flag, value)?;
    usize::try_from(bytes)
        .map_err(|_| ConfigError::invalid(flag, format!("{value:?} is too large")))
}

#[cfg(test)]
mod tests;
