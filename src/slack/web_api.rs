//! The Web API client for the admin methods containment uses: ending one session
//! (`admin.users.session.invalidate`), ending all of a user's sessions
//! (`admin.users.session.reset`), and reading Slack's anomaly allowlist
//! (`admin.audit.anomaly.allow.getItem`). Nothing else: this client never writes the allowlist.
//!
//! It owns the admin token, a second secret kept apart from the audit token: it comes from
//! `--respond-token-file` (a [`SecretFile`], re-read when it changes, the last good value kept)
//! and goes only to `--web-api-url`, while the audit token goes only to the Audit Logs client.
//! The token is exposed only where the `Authorization` header is built, and that header is
//! marked sensitive.
//!
//! Slack is peer input here as in `client`: no redirects, a body read to a small cap with
//! `client::read_capped`, an error body to `client::ERROR_BODY_MAX`, a timeout on each call,
//! and a budget of our own ([`DEFAULT_CALLS_PER_MINUTE`]) well below Slack's tier 2. A 429's
//! `Retry-After` is honoured: waited out within the call when short, else the call fails with
//! `ratelimited` and every call before that time fails the same way without reaching Slack.

use super::client::{check_token, read_capped, read_error_body, BodyError};
use crate::retry::Budget;
use crate::secret_file::SecretFile;
use crate::units::{parse_url, ConfigError};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// Default for `--web-api-url`: Slack's Web API (not the Audit Logs API's host).
pub(crate) const DEFAULT_WEB_API_URL: &str = "https://slack.com/api";
/// Our own budget: the admin methods are tier 2 (20+ a minute, shared with every app of the
/// org that calls them); we use at most half.
pub(crate) const DEFAULT_CALLS_PER_MINUTE: u32 = 10;
/// Per-call timeout.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read: these methods answer a few hundred bytes, an allowlist a few KiB.
pub(crate) const MAX_BODY_BYTES: u64 = 1 << 20;
/// The longest `Retry-After` waited out within a call; a longer one fails the call.
pub(crate) const MAX_WAIT_IN_CALL: Duration = Duration::from_secs(30);
/// Attempts of one call when Slack answers 429 with a short `Retry-After`.
const MAX_ATTEMPTS: u32 = 3;
/// The longest `Retry-After` believed: past it a hostile or broken answer cannot stop
/// responses for longer than this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// The wait assumed when a 429 has no usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest Slack error code kept; Slack's are short snake_case words.
const MAX_CODE_LEN: usize = 64;

/// The Web API flags of `run`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WebApiArgs {
    /// File holding the Web API admin token (user token of an org admin, admin.users:write); a mounted Secret, re-read when it changes. Never sent to the Audit Logs API.
    #[arg(long, env = "SLACK_AUDIT_RESPOND_TOKEN_FILE")]
    pub(crate) respond_token_file: Option<PathBuf>,
    /// Base URL of Slack's Web API; plain http:// is refused except to loopback.
    #[arg(long, env = "SLACK_AUDIT_WEB_API_URL", default_value = DEFAULT_WEB_API_URL)]
    pub(crate) web_api_url: String,
    /// Merge Slack's own anomaly allowlist (admin.audit.anomaly.allow.getItem, read with the admin token at start and hourly) into the local allowlist.
    #[arg(long, env = "SLACK_AUDIT_SLACK_ALLOWLIST", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) slack_allowlist: bool,
}

impl Default for WebApiArgs {
    fn default() -> Self {
        WebApiArgs {
            respond_token_file: None,
            web_api_url: DEFAULT_WEB_API_URL.into(),
            slack_allowlist: false,
        }
    }
}

/// The validated Web API options.
#[derive(Debug)]
pub(crate) struct WebApiConfig {
    /// Methods are POSTed to `{base_url}/{method}`.
    pub(crate) base_url: Url,
    /// The admin token's file, read once at start; `None` without `--respond-token-file`.
    pub(crate) token: Option<SecretFile>,
    /// `--slack-allowlist`.
    pub(crate) slack_allowlist: bool,
}

impl WebApiConfig {
    /// Validates the flags and reads the token file once, so an unusable file fails at start.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the flag: a bad URL, an unusable token file (never its content),
    /// or `--slack-allowlist` without a token.
    pub(crate) fn from_args(args: &WebApiArgs) -> Result<WebApiConfig, ConfigError> {
        let base_url = parse_url("web-api-url", &args.web_api_url)?;
        let token = match &args.respond_token_file {
            Some(path) => Some(SecretFile::open(path, check_token).map_err(|reason| {
                ConfigError::invalid(
                    "respond-token-file",
                    format!("{}: {reason}", path.display()),
                )
            })?),
            None => None,
        };
        if args.slack_allowlist && token.is_none() {
            return Err(ConfigError::invalid(
                "slack-allowlist",
                "reading Slack's allowlist needs the admin token: give --respond-token-file too",
            ));
        }
        Ok(WebApiConfig {
            base_url,
            token,
            slack_allowlist: args.slack_allowlist,
        })
    }
}

/// A failed Web API call. Nothing in it holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WebApiError {
    /// Slack answered `ok: false` with this error (`missing_scope`, `not_allowed_token_type`,
    /// `cannot_reset_primary_owner`...).
    #[error("Slack refused the call: {code}")]
    Slack {
        /// Slack's error string (checked to be a short code).
        code: String,
    },
    /// HTTP 429 (or `ratelimited`), or our own record of one still in force.
    #[error("rate limited by Slack for {}s", retry_after.as_secs())]
    RateLimited {
        /// How long Slack asked us to wait, from the answer.
        retry_after: Duration,
    },
    /// A status with no Slack error in the body.
    #[error("Slack answered HTTP {status}")]
    Http {
        /// The status code.
        status: u16,
    },
    /// A 3xx: never followed, the token would go along.
    #[error("the Web API answered a redirect (HTTP {status}); check --web-api-url")]
    Redirect {
        /// The status code.
        status: u16,
    },
    /// Connection refused, reset, TLS, DNS...
    #[error("cannot reach the Web API: {0}")]
    Transport(String),
    /// No answer within the timeout.
    #[error("the Web API did not answer within {}s", .0.as_secs())]
    Timeout(Duration),
    /// The answer was larger than [`MAX_BODY_BYTES`].
    #[error("the Web API's answer exceeds {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: u64,
    },
    /// The answer is not the JSON the method documents.
    #[error("the Web API's answer is not what the method documents: {0}")]
    Decode(String),
    /// The admin token cannot be sent.
    #[error("the admin token cannot be sent: {0}")]
    Token(String),
}

impl WebApiError {
    /// A short code for the response document: Slack's own error string, or one word for
    /// what went wrong on the way (`timeout`, `transport_error`, `http_503`...).
    pub(crate) fn code(&self) -> String {
        match self {
            WebApiError::Slack { code } => code.clone(),
            WebApiError::RateLimited { .. } => "ratelimited".into(),
            WebApiError::Http { status } => format!("http_{status}"),
            WebApiError::Redirect { status } => format!("redirect_{status}"),
            WebApiError::Transport(_) => "transport_error".into(),
            WebApiError::Timeout(_) => "timeout".into(),
            WebApiError::TooLarge { .. } => "response_too_large".into(),
            WebApiError::Decode(_) => "invalid_response".into(),
            WebApiError::Token(_) => "token_unusable".into(),
        }
    }

    /// Whether Slack may have acted even so: the request may have arrived and the answer got
    /// lost (a timeout, a broken connection, a 5xx, an unreadable 200). Otherwise Slack
    /// certainly did not act (an error code, a 429, a refusal before sending).
    pub(crate) fn outcome_unknown(&self) -> bool {
        match self {
            WebApiError::Transport(_)
            | WebApiError::Timeout(_)
            | WebApiError::TooLarge { .. }
            | WebApiError::Decode(_) => true,
            WebApiError::Http { status } => *status >= 500 || *status == 408,
            WebApiError::Slack { .. }
            | WebApiError::RateLimited { .. }
            | WebApiError::Redirect { .. }
            | WebApiError::Token(_) => false,
        }
    }
}

/// Slack's anomaly allowlist as `admin.audit.anomaly.allow.getItem` answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SlackAllowlist {
    /// CIDRs as Slack holds them (`"203.0.113.0/24"`); validated where they are merged.
    pub(crate) trusted_cidr: Vec<String>,
    /// AS numbers.
    pub(crate) trusted_asns: Vec<u64>,
}

/// What every method answers; unknown fields are ignored (Slack adds `warning`,
/// `response_metadata`).
#[derive(Deserialize)]
struct Envelope {
    ok: Option<bool>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct AllowItem {
    #[serde(default)]
    trusted_cidr: Option<Vec<String>>,
    #[serde(default)]
    trusted_asns: Option<Vec<u64>>,
}

/// Settings of a [`WebApi`] beyond its URL and token (tests shorten them).
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Calls a minute, evenly spaced.
    pub(crate) calls_per_minute: u32,
    /// Per-call timeout.
    pub(crate) timeout: Duration,
    /// The largest answer read.
    pub(crate) max_body: u64,
    /// The longest `Retry-After` waited out within a call.
    pub(crate) max_wait_in_call: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            calls_per_minute: DEFAULT_CALLS_PER_MINUTE,
            timeout: DEFAULT_TIMEOUT,
            max_body: MAX_BODY_BYTES,
            max_wait_in_call: MAX_WAIT_IN_CALL,
        }
    }
}

/// The Web API client; cheap to clone (the clones share the token, the budget and the record
/// of a rate limit).
#[derive(Debug, Clone)]
pub(crate) struct WebApi {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    token: SecretFile,
    limits: Limits,
    /// The budget, and the time before which Slack asked us not to call.
    pace: tokio::sync::Mutex<Pace>,
}

#[derive(Debug)]
struct Pace {
    budget: Budget,
    blocked_until: Option<Instant>,
}

impl WebApi {
    /// A client of `base` with the admin token from `token`.
    ///
    /// # Errors
    ///
    /// [`WebApiError::Transport`] if the TLS backend cannot start.
    pub(crate) fn new(base: Url, token: SecretFile, limits: Limits) -> Result<WebApi, WebApiError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("slack-audit-source/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(limits.timeout)
            // Never followed: the admin token would go along to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WebApiError::Transport(e.to_string()))?;
        Ok(WebApi {
            inner: Arc::new(Inner {
                http,
                base,
                token,
                pace: tokio::sync::Mutex::new(Pace {
                    budget: Budget::per_minute(limits.calls_per_minute),
                    blocked_until: None,
                }),
                limits,
            }),
        })
    }

    /// The client `--respond-token-file` asks for, if it was given.
    ///
    /// # Errors
    ///
    /// As [`WebApi::new`].
    pub(crate) fn from_config(config: &mut WebApiConfig) -> Result<Option<WebApi>, WebApiError> {
        match config.token.take() {
            Some(token) => WebApi::new(config.base_url.clone(), token, Limits::default()).map(Some),
            None => Ok(None),
        }
    }

    /// Ends one session of a user (`admin.users.session.invalidate`).
    ///
    /// # Errors
    ///
    /// Any [`WebApiError`]; [`WebApiError::code`] is what to record.
    pub(crate) async fn invalidate_session(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<(), WebApiError> {
        self.call(
            "admin.users.session.invalidate",
            &[("user_id", user_id), ("session_id", session_id)],
        )
        .await
        .map(drop)
    }

    /// Ends every session of a user, on every device (`admin.users.session.reset`).
    ///
    /// # Errors
    ///
    /// Any [`WebApiError`]; [`WebApiError::code`] is what to record.
    pub(crate) async fn reset_sessions(&self, user_id: &str) -> Result<(), WebApiError> {
        self.call("admin.users.session.reset", &[("user_id", user_id)])
            .await
            .map(drop)
    }

    /// Reads Slack's anomaly allowlist (`admin.audit.anomaly.allow.getItem`). A key Slack
    /// leaves out is an empty list.
    ///
    /// # Errors
    ///
    /// Any [`WebApiError`]; [`WebApiError::Decode`] when a list holds something else than
    /// strings (CIDRs) or AS numbers.
    pub(crate) async fn anomaly_allowlist(&self) -> Result<SlackAllowlist, WebApiError> {
        let body = self.call("admin.audit.anomaly.allow.getItem", &[]).await?;
        let item: AllowItem = serde_json::from_slice(&body)
            .map_err(|e| WebApiError::Decode(format!("trusted_cidr or trusted_asns: {e}")))?;
        Ok(SlackAllowlist {
            trusted_cidr: item.trusted_cidr.unwrap_or_default(),
            trusted_asns: item.trusted_asns.unwrap_or_default(),
        })
    }

    /// POSTs `method` with `params` (form-encoded), within the budget, waiting out a short
    /// `Retry-After`; returns the body of an `ok: true` answer.
    async fn call(&self, method: &str, params: &[(&str, &str)]) -> Result<Vec<u8>, WebApiError> {
        let mut attempt = 1;
        loop {
            {
                let mut pace = self.inner.pace.lock().await;
                if let Some(until) = pace.blocked_until {
                    let now = Instant::now();
                    if until > now {
                        return Err(WebApiError::RateLimited {
                            retry_after: until - now,
                        });
                    }
                    pace.blocked_until = None;
                }
                pace.budget.acquire().await;
            }
            match self.attempt(method, params).await {
                Err(WebApiError::RateLimited { retry_after })
                    if attempt < MAX_ATTEMPTS
                        && retry_after <= self.inner.limits.max_wait_in_call =>
                {
                    tracing::warn!(
                        method,
                        wait_secs = retry_after.as_secs_f64(),
                        "Slack Web API rate limit hit; waiting as asked"
                    );
                    tokio::time::sleep(retry_after).await;
                    attempt += 1;
                }
                Err(WebApiError::RateLimited { retry_after }) => {
                    self.inner.pace.lock().await.blocked_until = Some(Instant::now() + retry_after);
                    return Err(WebApiError::RateLimited { retry_after });
                }
                other => return other,
            }
        }
    }

    async fn attempt(&self, method: &str, params: &[(&str, &str)]) -> Result<Vec<u8>, WebApiError> {
        let token = self.inner.token.current();
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| WebApiError::Token("it cannot be sent in an HTTP header".into()))?;
        auth.set_sensitive(true);
        let mut url = self.inner.base.clone();
        let path = format!("{}/{method}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let request = self
            .inner
            .http
            .post(url)
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .timeout(self.inner.limits.timeout);
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                WebApiError::Timeout(self.inner.limits.timeout)
            } else {
                WebApiError::Transport(e.without_url().to_string())
            }
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::retry::parse_retry_after(v, chrono::Utc::now(), MAX_RETRY_AFTER));
        if status.is_redirection() {
            return Err(WebApiError::Redirect {
                status: status.as_u16(),
            });
        }
        let body = if status.is_success() {
            let expected = response.content_length().unwrap_or(0);
            read_capped(&mut response, self.inner.limits.max_body, expected)
                .await
                .map_err(|e| match e {
                    BodyError::TooLarge => WebApiError::TooLarge {
                        limit: self.inner.limits.max_body,
                    },
                    BodyError::Transport(e) => transport(e),
                })?
        } else {
            read_error_body(&mut response).await
        };
        let rate_limited = || WebApiError::RateLimited {
            retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
        };
        if status.as_u16() == 429 {
            return Err(rate_limited());
        }
        let envelope = decode_envelope(&body);
        match envelope {
            Ok(Envelope { ok: Some(true), .. }) if status.is_success() => Ok(body),
            Ok(Envelope {
                ok: Some(false),
                error: Some(code),
            }) => match checked_code(&code, token.expose_secret()) {
                c if c == "ratelimited" || c == "rate_limited" => Err(rate_limited()),
                c => Err(WebApiError::Slack { code: c }),
            },
            _ if !status.is_success() => Err(WebApiError::Http {
                status: status.as_u16(),
            }),
            Ok(_) => Err(WebApiError::Decode(
                "no \"ok\": true, nor \"ok\": false with an error".into(),
            )),
            Err(reason) => Err(WebApiError::Decode(reason)),
        }
    }
}

/// The envelope of a JSON object body; `Err` says why the body is not one.
fn decode_envelope(body: &[u8]) -> Result<Envelope, String> {
    // serde reads a struct from an array too; Slack answers only objects.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("the body is not a JSON object".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))
}

/// Slack's error string if it looks like one (a short snake_case word that is not the token);
/// otherwise `invalid_error_code`, so a hostile answer cannot put arbitrary text (or the
/// token it was sent) into a document.
fn checked_code(code: &str, token: &str) -> String {
    let plausible = !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    // A short code inside the token gives nothing away; a long one might be the token.
    if plausible && !(code.len() >= 8 && token.contains(code)) {
        code.to_string()
    } else {
        "invalid_error_code".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_short_words_and_never_the_token() {
        assert_eq!(checked_code("missing_scope", "xoxp-1"), "missing_scope");
        assert_eq!(checked_code("xoxp-1-2", "xoxp-1-2"), "invalid_error_code");
        assert_eq!(
            checked_code("admintoken", "admintoken"),
            "invalid_error_code"
        );
        assert_eq!(checked_code("Bad Code", "t"), "invalid_error_code");
        assert_eq!(checked_code(&"a".repeat(65), "t"), "invalid_error_code");
        assert_eq!(checked_code("", "t"), "invalid_error_code");
    }

    #[test]
    fn codes_say_what_went_wrong_and_whether_slack_may_have_acted() {
        let cases = [
            (
                WebApiError::Slack {
                    code: "missing_scope".into(),
                },
                "missing_scope",
                false,
            ),
            (
                WebApiError::RateLimited {
                    retry_after: Duration::from_secs(3),
                },
                "ratelimited",
                false,
            ),
            (WebApiError::Http { status: 503 }, "http_503", true),
            (WebApiError::Http { status: 404 }, "http_404", false),
            (
                WebApiError::Timeout(Duration::from_secs(1)),
                "timeout",
                true,
            ),
            (
                WebApiError::Transport("reset".into()),
                "transport_error",
                true,
            ),
            (
                WebApiError::TooLarge { limit: 1 },
                "response_too_large",
                true,
            ),
            (WebApiError::Decode("x".into()), "invalid_response", true),
            (WebApiError::Redirect { status: 302 }, "redirect_302", false),
        ];
        for (e, code, unknown) in cases {
            assert_eq!(e.code(), code);
            assert_eq!(e.outcome_unknown(), unknown, "{e}");
        }
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        let args = |url: &str| WebApiArgs {
            web_api_url: url.into(),
            ..WebApiArgs::default()
        };
        let err = WebApiConfig::from_args(&args("http://slack.example/api"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--web-api-url") && err.contains("https://"),
            "{err}"
        );
        assert!(WebApiConfig::from_args(&args("http://127.0.0.1:9/api")).is_ok());
        assert!(WebApiConfig::from_args(&args("http://[::1]:9/api")).is_ok());
        let c = WebApiConfig::from_args(&WebApiArgs::default()).unwrap();
        assert_eq!(c.base_url.as_str(), "https://slack.com/api");
        assert!(c.token.is_none() && !c.slack_allowlist);
    }

    #[test]
    fn the_slack_allowlist_needs_the_admin_token_and_a_bad_file_is_named_not_quoted() {
        let err = WebApiConfig::from_args(&WebApiArgs {
            slack_allowlist: true,
            ..WebApiArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("--respond-token-file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("admin");
        std::fs::write(&p, "xoxp-admin secret").unwrap();
        let err = WebApiConfig::from_args(&WebApiArgs {
            respond_token_file: Some(p.clone()),
            ..WebApiArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--respond-token-file") && err.contains("admin"),
            "{err}"
        );
        assert!(!err.contains("xoxp-admin"), "{err}");
        std::fs::write(&p, "xoxp-admin\n").unwrap();
        let mut c = WebApiConfig::from_args(&WebApiArgs {
            respond_token_file: Some(p),
            slack_allowlist: true,
            ..WebApiArgs::default()
        })
        .unwrap();
        assert!(!format!("{c:?}").contains("xoxp-admin"));
        let api = WebApi::from_config(&mut c)
            .unwrap()
            .expect("a token was given");
        assert!(!format!("{api:?}").contains("xoxp-admin"));
    }
}

/// The client against the simulator's Web API: the arguments sent, each error kind, 429s,
/// hostile bodies, and the two tokens kept apart.
#[cfg(test)]
#[cfg(feature = "simulator")]
mod against_simulator {
    use super::*;
    use crate::shutdown::Shutdown;
    use crate::simulate::{start, Reply, SimAllowlist, SimHandle, SimOptions};

    const AUDIT: &str = "xoxp-audit-token";
    const ADMIN: &str = "xoxp-admin-token";

    async fn sim(options: SimOptions) -> SimHandle {
        start("127.0.0.1:0".parse().unwrap(), options, Shutdown::never())
            .await
            .unwrap()
    }

    fn tokens() -> SimOptions {
        SimOptions {
            token: Some(AUDIT.into()),
            admin_token: Some(ADMIN.into()),
            ..SimOptions::default()
        }
    }

    fn fast() -> Limits {
        Limits {
            calls_per_minute: 60_000,
            timeout: Duration::from_secs(10),
            max_body: 64 << 10,
            max_wait_in_call: Duration::from_secs(5),
        }
    }

    /// A client of `sim` with `token` in a file under `dir`.
    fn client(sim: &SimHandle, dir: &tempfile::TempDir, token: &str, limits: Limits) -> WebApi {
        let path = dir.path().join("admin-token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        let file = SecretFile::open(&path, check_token).unwrap();
        WebApi::new(Url::parse(&sim.web_api_url()).unwrap(), file, limits).unwrap()
    }

    #[tokio::test]
    async fn each_method_posts_its_documented_arguments_with_the_admin_token() {
        let s = sim(SimOptions {
            slack_allowlist: SimAllowlist {
                trusted_cidr: vec!["203.0.113.0/24".into(), "198.51.100.7/32".into()],
                trusted_asns: vec![64500, 4_200_000_000],
            },
            ..tokens()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let api = client(&s, &dir, ADMIN, fast());
        api.invalidate_session("U0AAA", "12345").await.unwrap();
        api.reset_sessions("U0BBB").await.unwrap();
        let allow = api.anomaly_allowlist().await.unwrap();
        assert_eq!(
            allow,
            SlackAllowlist {
                trusted_cidr: vec!["203.0.113.0/24".into(), "198.51.100.7/32".into()],
                trusted_asns: vec![64500, 4_200_000_000],
            }
        );
        let calls = s.web_api_calls();
        let seen: Vec<(&str, Vec<(&str, &str)>)> = calls
            .iter()
            .map(|c| {
                (
                    c.method.as_str(),
                    c.params
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    "admin.users.session.invalidate",
                    vec![("session_id", "12345"), ("user_id", "U0AAA")]
                ),
                ("admin.users.session.reset", vec![("user_id", "U0BBB")]),
                ("admin.audit.anomaly.allow.getItem", vec![]),
            ]
        );
        let bearer = format!("Bearer {ADMIN}");
        assert!(calls
            .iter()
            .all(|c| c.authorization.as_deref() == Some(bearer.as_str()) && c.status == 200));
    }

    #[tokio::test]
    async fn slack_errors_come_back_as_their_codes_and_say_slack_did_not_act() {
        let s = sim(tokens()).await;
        let dir = tempfile::tempdir().unwrap();
        let api = client(&s, &dir, ADMIN, fast());
        for code in [
            "missing_scope",
            "not_allowed_token_type",
            "cannot_reset_primary_owner",
        ] {
            s.script_web_api([Reply::error(code)]);
            let e = api.reset_sessions("U0OWNER").await.unwrap_err();
            assert_eq!(e, WebApiError::Slack { code: code.into() });
            assert_eq!(e.code(), code);
            assert!(!e.outcome_unknown());
        }
        // A documented error in a non-2xx body is still Slack's code.
        s.script_web_api([Reply::error("invalid_arguments").with_status(400)]);
        let e = api.invalidate_session("U0A", "1").await.unwrap_err();
        assert_eq!(e.code(), "invalid_arguments");
        // The simulator's own checks answer like Slack: a wrong token is invalid_auth.
        let wrong = client(
            &s,
            &tempfile::tempdir().unwrap(),
            "xoxp-someone-else",
            fast(),
        );
        assert_eq!(
            wrong.reset_sessions("U0A").await.unwrap_err().code(),
            "invalid_auth"
        );
        let errors: Vec<Option<String>> = s.web_api_calls().into_iter().map(|c| c.error).collect();
        assert_eq!(errors.len(), 5);
        assert_eq!(errors[0].as_deref(), Some("missing_scope"));
        assert_eq!(errors[4].as_deref(), Some("invalid_auth"));
    }

    #[tokio::test]
    async fn a_short_retry_after_is_waited_out_and_a_long_one_holds_every_call_back() {
        let s = sim(tokens()).await;
        let dir = tempfile::tempdir().unwrap();
        let api = client(&s, &dir, ADMIN, fast());
        s.script_web_api([Reply::rate_limited(0)]);
        api.reset_sessions("U0A").await.unwrap();
        assert_eq!(s.web_api_calls().len(), 2, "retried once after the wait");
        // Slack never gets better: a bounded number of attempts, then `ratelimited`.
        s.always_web_api(Some(Reply::rate_limited(0)));
        let e = api.reset_sessions("U0A").await.unwrap_err();
        assert_eq!(e.code(), "ratelimited");
        assert_eq!(s.web_api_calls().len(), 2 + MAX_ATTEMPTS as usize);
        s.always_web_api(None);
        // A wait longer than a call may take fails the call, and the calls after it until
        // that time fail the same way without reaching Slack.
        s.script_web_api([Reply::rate_limited(3600)]);
        let e = api.invalidate_session("U0A", "7").await.unwrap_err();
        assert!(
            matches!(e, WebApiError::RateLimited { retry_after } if retry_after == Duration::from_secs(3600)),
            "{e:?}"
        );
        let before = s.web_api_calls().len();
        let e = api.anomaly_allowlist().await.unwrap_err();
        assert_eq!(e.code(), "ratelimited");
        assert!(!e.outcome_unknown());
        assert_eq!(s.web_api_calls().len(), before, "held back, not sent");
    }

    #[tokio::test]
    async fn hostile_answers_are_errors_never_panics_nor_huge_reads() {
        let s = sim(tokens()).await;
        let dir = tempfile::tempdir().unwrap();
        let api = client(&s, &dir, ADMIN, fast());
        let padding = "x".repeat(100 << 10);
        let big = format!(r#"{{"ok":true,"trusted_cidr":[],"pad":"{padding}"}}"#);
        let cases: Vec<(Reply, &str)> = vec![
            (Reply::ok(&big), "response_too_large"),
            (Reply::gzip(big.as_bytes()), "response_too_large"),
            (Reply::ok("[true]"), "invalid_response"),
            (Reply::ok("<html>glitch</html>"), "invalid_response"),
            (Reply::ok(r#"{"ok":"yes"}"#), "invalid_response"),
            (
                Reply::ok(r#"{"ok":true,"trusted_asns":["AS1"]}"#),
                "invalid_response",
            ),
            (
                Reply::ok(r#"{"ok":true,"trusted_cidr":"10.0.0.0/8"}"#),
                "invalid_response",
            ),
            (
                Reply::ok(r#"{"ok":false,"error":"Not A Code <script>"}"#),
                "invalid_error_code",
            ),
            (Reply::bytes(vec![0xff, 0xfe, b'{']), "invalid_response"),
            (Reply::status(500, "<html>oops</html>"), "http_500"),
            (
                Reply::status(302, "").with_header("location", "https://elsewhere.example/"),
                "redirect_302",
            ),
        ];
        for (reply, code) in cases {
            s.script_web_api([reply]);
            let e = api.anomaly_allowlist().await.unwrap_err();
            assert_eq!(e.code(), code, "{e}");
        }
        // A key Slack leaves out is an empty list.
        s.script_web_api([Reply::ok(r#"{"ok":true}"#)]);
        assert_eq!(
            api.anomaly_allowlist().await.unwrap(),
            SlackAllowlist::default()
        );
        // An unreachable Web API is a transport error, whose outcome is unknown.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let path = dir.path().join("admin-token");
        let gone = WebApi::new(
            Url::parse(&format!("http://{closed}/api")).unwrap(),
            SecretFile::open(&path, check_token).unwrap(),
            fast(),
        )
        .unwrap();
        let e = gone.reset_sessions("U0A").await.unwrap_err();
        assert_eq!(e.code(), "transport_error");
        assert!(e.outcome_unknown());
    }

    /// The audit token reaches only the Audit Logs API and the admin token only the Web API;
    /// each API refuses the other's token, and a rotated admin token is used from the next call.
    #[tokio::test]
    async fn the_two_tokens_never_cross_apis() {
        let s = sim(tokens()).await;
        let dir = tempfile::tempdir().unwrap();
        let audit_file = dir.path().join("audit-token");
        std::fs::write(&audit_file, AUDIT).unwrap();
        // An Audit Logs client reading its token from `path`.
        let audit_client = |path: std::path::PathBuf| {
            crate::slack::SlackClient::new(crate::slack::client::ClientConfig {
                api_url: Url::parse(&s.url()).unwrap(),
                token: crate::slack::TokenSource::file(path).unwrap(),
                max_rpm: 60_000,
                request_timeout: Duration::from_secs(10),
                tracer: None,
                max_response_bytes: 1 << 20,
                give_up_after: None,
            })
            .unwrap()
        };
        let mut logs = audit_client(audit_file);
        let api = client(&s, &dir, ADMIN, fast());
        let filters = crate::slack::api::Filters::default();
        let query = crate::slack::Query {
            oldest: 1,
            latest: 2,
            limit: 10,
            cursor: None,
            filters: &filters,
        };
        logs.fetch_page(&query).await.unwrap();
        api.reset_sessions("U0A").await.unwrap();
        api.anomaly_allowlist().await.unwrap();
        logs.fetch_page(&query).await.unwrap();
        let audit_bearer = format!("Bearer {AUDIT}");
        let admin_bearer = format!("Bearer {ADMIN}");
        let requests = s.requests();
        assert_eq!(requests.len(), 2);
        assert!(requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(audit_bearer.as_str())));
        let calls = s.web_api_calls();
        assert_eq!(calls.len(), 2);
        assert!(calls
            .iter()
            .all(|c| c.authorization.as_deref() == Some(admin_bearer.as_str())));
        // Swapped by mistake, each token is refused where it does not belong.
        let swapped = client(&s, &tempfile::tempdir().unwrap(), AUDIT, fast());
        assert_eq!(
            swapped.reset_sessions("U0A").await.unwrap_err().code(),
            "invalid_auth"
        );
        let admin_file = dir.path().join("admin-as-audit");
        std::fs::write(&admin_file, ADMIN).unwrap();
        let mut wrong = audit_client(admin_file);
        assert!(wrong.fetch_page(&query).await.unwrap_err().is_fatal());
        // A rotated admin token goes out from the next call on.
        std::fs::write(dir.path().join("admin-token"), "xoxp-admin-rotated").unwrap();
        let e = api.reset_sessions("U0A").await.unwrap_err();
        assert_eq!(
            e.code(),
            "invalid_auth",
            "the simulator wants the old token"
        );
        let last = s.web_api_calls().pop().unwrap();
        assert_eq!(
            last.authorization.as_deref(),
            Some("Bearer xoxp-admin-rotated")
        );
        // No error or Debug output quotes a token.
        assert!(!format!("{api:?}{e:?}{e}").contains("xoxp-"));
    }
}
