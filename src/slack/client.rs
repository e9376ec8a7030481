//! The Audit Logs client: one `GET /audit/v1/logs` per [`SlackClient::fetch_page`], and the
//! retry loop around it in `SlackClient::fetch_page_with_retry`.
//!
//! It owns the token (a [`SecretString`], exposed only where the `Authorization` header is
//! built, and that header is marked sensitive), the request budget and retries. Entries stay
//! raw JSON. It does not decide what to fetch: the poller hands it a [`Query`].
//!
//! Slack is peer input: redirects are not followed (a 3xx is a configuration error), a 2xx
//! body is read chunk by chunk as it is decoded and abandoned past `--max-response-bytes`
//! (a gzip bomb costs at most the cap), an error body is read to `ERROR_BODY_MAX` only,
//! and `Retry-After` is parsed by `crate::retry::parse_retry_after` and capped.

use super::api::Filters;
use super::api::{LogsResponse, Page};
use super::error::{snippet, Action, Error};
use crate::retry::{Backoff, Budget};
use crate::shutdown::Shutdown;
use crate::units::ConfigError;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// Where the token comes from. `Debug` shows the file path, never the token.
#[derive(Debug)]
pub enum TokenSource {
    /// `SLACK_AUDIT_TOKEN`, read once at start.
    Fixed(SecretString),
    /// A file (a mounted Kubernetes Secret), re-read when it changes so that a rotated Secret
    /// takes effect without a restart; the last good token is kept if a read fails
    /// mid-rotation. See `crate::secret_file` for what a usable file is.
    File(crate::secret_file::SecretFile),
}

impl TokenSource {
    /// A fixed token, checked for shape.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when it is empty or cannot be sent in a header.
    pub fn fixed(token: SecretString) -> Result<TokenSource, ConfigError> {
        let t = SecretString::from(token.expose_secret().trim().to_string());
        check_token(&t).map_err(|reason| ConfigError::Invalid {
            flag: "token",
            message: format!("SLACK_AUDIT_TOKEN {reason}"),
        })?;
        Ok(TokenSource::Fixed(t))
    }

    /// A token file, read once now so that a missing, oversized or special file (a device, a
    /// FIFO) fails at start.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TokenFile`] naming the file and what is wrong (never its content).
    pub(crate) fn file(path: PathBuf) -> Result<TokenSource, ConfigError> {
        crate::secret_file::SecretFile::open(&path, check_token)
            .map(TokenSource::File)
            .map_err(|reason| ConfigError::TokenFile { path, reason })
    }

    /// The token to use now.
    ///
    /// # Errors
    ///
    /// None today: a file was read successfully at start and its last good value is kept.
    /// The `Result` leaves room for a source that can fail.
    pub(crate) fn current(&self) -> Result<SecretString, Error> {
        match self {
            TokenSource::Fixed(t) => Ok(t.clone()),
            TokenSource::File(f) => Ok(f.current()),
        }
    }
}

/// The reason is phrased so that it never quotes the token. Also checks the Web API's admin
/// token (`crate::slack::web_api`).
pub(crate) fn check_token(t: &SecretString) -> Result<(), String> {
    let s = t.expose_secret();
    if s.is_empty() {
        return Err("is empty".into());
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("holds spaces or control characters inside the token; it must be one line with the token only".into());
    }
    Ok(())
}

/// One request's parameters: the chain's range, the cursor and the user's filters.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// Inclusive Unix seconds, resent with every cursor request (Slack does not remember it).
    pub oldest: i64,
    /// Inclusive Unix seconds.
    pub latest: i64,
    /// Page size.
    pub limit: u32,
    /// The chain's cursor; `None` for its first page.
    pub cursor: Option<&'a str>,
    /// Slack's filters.
    pub filters: &'a Filters,
}

/// Settings the client is built from.
#[derive(Debug)]
pub struct ClientConfig {
    /// Base URL; `/audit/v1/logs` is joined to it.
    pub api_url: Url,
    /// The token.
    pub token: TokenSource,
    /// Requests per minute.
    pub max_rpm: u32,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Where to trace requests, if anywhere.
    pub tracer: Option<crate::trace::Tracer>,
    /// The most decoded bytes a 2xx body may have (`--max-response-bytes`).
    pub max_response_bytes: u64,
    /// Failed attempts in a row after which a fetch gives up (`--once`); `None` retries
    /// until shutdown (the daemon).
    pub give_up_after: Option<u32>,
}

/// The Audit Logs API client.
#[derive(Debug)]
pub struct SlackClient {
    http: reqwest::Client,
    logs_url: Url,
    token: TokenSource,
    budget: Budget,
    timeout: Duration,
    backoff: Backoff,
    tracer: Option<crate::trace::Tracer>,
    /// The size of the last body read: the guess for the next one without a length.
    last_body_len: std::sync::atomic::AtomicUsize,
    max_body: u64,
    give_up_after: Option<u32>,
}

/// The most a `Content-Length` (or the last body) makes us reserve before reading a body.
const MAX_RESERVE: u64 = 64 << 20;

/// How much of a non-2xx body is read: enough for Slack's JSON error or an HTML page's start.
pub(crate) const ERROR_BODY_MAX: usize = 4 << 10;

/// Failed attempts in a row after which `run --once` gives up on a page (exit 1). With the
/// default backoff (0.5 s doubling to 60 s, full jitter) that is under two minutes of
/// retrying; a 429's `Retry-After` wait counts as one attempt too.
pub(crate) const ONCE_MAX_ATTEMPTS: u32 = 8;

impl SlackClient {
    /// Builds a client.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] if the TLS backend cannot start.
    pub fn new(config: ClientConfig) -> Result<SlackClient, Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("slack-audit-source/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.request_timeout.min(Duration::from_secs(30)))
            // A 3xx is answered as a configuration error (see `classify`), never followed:
            // the token would go along, and the target's answer could pass for Slack's.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Transport(e.to_string()))?;
        let mut logs_url = config.api_url.clone();
        let base = logs_url.path().trim_end_matches('/').to_string();
        logs_url.set_path(&format!("{base}/audit/v1/logs"));
        Ok(SlackClient {
            http,
            logs_url,
            token: config.token,
            budget: Budget::per_minute(config.max_rpm),
            timeout: config.request_timeout,
            backoff: Backoff::default(),
            tracer: config.tracer,
            last_body_len: Default::default(),
            max_body: config.max_response_bytes.max(1),
            give_up_after: config.give_up_after,
        })
    }

    /// Replaces the backoff schedule (tests use short ones).
    pub(crate) fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    /// Sends one request (after waiting for the budget) and classifies the answer.
    ///
    /// # Errors
    ///
    /// Any [`Error`]; `Error::action` says what to do about it.
    pub async fn fetch_page(&mut self, q: &Query<'_>) -> Result<Page, Error> {
        self.budget.acquire().await;
        let token = self.token.current()?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| Error::Token("the token cannot be sent in an HTTP header".into()))?;
        auth.set_sensitive(true);
        let mut params: Vec<(&str, String)> = vec![
            ("oldest", q.oldest.to_string()),
            ("latest", q.latest.to_string()),
            ("limit", q.limit.to_string()),
        ];
        if let Some(c) = q.cursor {
            // reqwest form-encodes query values, so the cursor's '=' padding goes out as %3D.
            params.push(("cursor", c.to_string()));
        }
        if !q.filters.actions.is_empty() {
            params.push(("action", q.filters.actions.join(",")));
        }
        if let Some(a) = &q.filters.actor {
            params.push(("actor", a.clone()));
        }
        if let Some(e) = &q.filters.entity {
            params.push(("entity", e.clone()));
        }
        let request = self
            .http
            .get(self.logs_url.clone())
            .query(&params)
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .timeout(self.timeout)
            .build()
            .map_err(|e| Error::Transport(e.without_url().to_string()))?;
        let started = std::time::Instant::now();
        let url = request.url().clone();
        let result = self.exchange(request).await;
        let status_label = match &result {
            Ok((status, _, _)) => status.as_u16().to_string(),
            Err(e) => e.kind().to_string(),
        };
        crate::metrics::slack_request(&status_label, started.elapsed());
        let (status, headers, body) = result?;
        if let Some(tracer) = &self.tracer {
            tracer.record(&url, status.as_u16(), &headers, &body);
        }
        classify(status, &headers, body)
    }

    async fn exchange(
        &self,
        request: reqwest::Request,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>), Error> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                Error::Timeout(self.timeout)
            } else {
                // without_url: the query holds no secret, but the message is long enough.
                Error::Transport(e.without_url().to_string())
            }
        };
        let mut response = self.http.execute(request).await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            return Ok((status, headers, read_error_body(&mut response).await));
        }
        let too_large = || Error::TooLarge {
            limit: self.max_body,
        };
        // A length over the cap is refused before reading (the length of an encoded body is
        // not known here: reqwest removes it when it decodes, so that is counted below).
        if response.content_length().is_some_and(|n| n > self.max_body) {
            return Err(too_large());
        }
        // Read into one buffer sized up front rather than with `bytes()`, which gathers the
        // chunks and then copies them into a second buffer: at `--limit 9999` that is 15 MB
        // held twice. The length is the header's when the body is not compressed, else the
        // last body's size (pages of one chain are alike), grown as needed. Capped, so a
        // lying header cannot make us reserve gigabytes.
        let guess = self
            .last_body_len
            .load(std::sync::atomic::Ordering::Relaxed) as u64;
        let expected = response.content_length().unwrap_or(guess);
        // A body cut short mid-stream is a transport error here, retried like one.
        let body = read_capped(&mut response, self.max_body, expected)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => too_large(),
                BodyError::Transport(e) => transport(e),
            })?;
        self.last_body_len
            .store(body.len(), std::sync::atomic::Ordering::Relaxed);
        Ok((status, headers, body))
    }

    /// Fetches a page, retrying what is worth retrying: waits out `Retry-After`, backs off on
    /// 5xx, transport errors, timeouts, bad or oversized bodies, unknown error codes and `{}`
    /// glitches, until shutdown, or (with `give_up_after`, under `--once`) until that many
    /// attempts in a row have failed. Returns `Ok(None)` when shutdown came first.
    ///
    /// # Errors
    ///
    /// Errors whose [`Error::action`] is [`Action::GiveUp`]: fatal answers, redirects,
    /// `invalid_cursor` and `invalid_range` (which the poller handles), and
    /// [`Error::GaveUp`] naming the last error.
    pub(crate) async fn fetch_page_with_retry(
        &mut self,
        q: &Query<'_>,
        shutdown: &mut Shutdown,
    ) -> Result<Option<Page>, Error> {
        let mut failures: u32 = 0;
        loop {
            let result = tokio::select! {
                r = self.fetch_page(q) => r,
                _ = shutdown.wait() => return Ok(None),
            };
            let err = match result {
                Ok(page) => {
                    self.backoff.reset();
                    crate::metrics::slack_failing(0);
                    return Ok(Some(page));
                }
                Err(e) => e,
            };
            if let Error::Protocol { kind, .. } = &err {
                // Logged with its specifics below, with the retry.
                crate::metrics::protocol_violation(kind);
            }
            if err.action() != Action::GiveUp {
                failures += 1;
                crate::metrics::slack_failing(failures);
                if self.give_up_after.is_some_and(|max| failures >= max) {
                    self.backoff.reset();
                    return Err(Error::GaveUp {
                        attempts: failures,
                        last: Box::new(err),
                    });
                }
            }
            let delay = match err.action() {
                Action::GiveUp => return Err(err),
                Action::Wait(d) => {
                    tracing::warn!(
                        wait_secs = d.as_secs_f64(),
                        "Slack rate limit hit; waiting as asked"
                    );
                    crate::metrics::rate_limited(d);
                    d
                }
                Action::Backoff => {
                    let d = self
                        .backoff
                        .next()
                        .unwrap_or(crate::retry::DEFAULT_MAX_DELAY);
                    tracing::warn!(error = %err, retry_in_secs = d.as_secs_f64(), "Slack request failed; backing off");
                    crate::metrics::retried("slack", err.kind());
                    d
                }
            };
            if shutdown.sleep(delay).await {
                return Ok(None);
            }
        }
    }
}

/// Why [`read_capped`] stopped.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body decoded to more than the cap; the rest was not read.
    TooLarge,
    /// The connection failed mid-body.
    Transport(reqwest::Error),
}

/// Reads a 2xx body into one buffer, refusing it past `max` decoded bytes. `expected` (a
/// length header or a guess) sizes the buffer up front, capped, so a lying header cannot make
/// us reserve gigabytes. Chunks come decoded, so the count is of decoded bytes: a gzip bomb
/// stops at the cap. Shared by every client of Slack (`crate::slack::web_api` too).
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    max: u64,
    expected: u64,
) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::with_capacity(expected.min(MAX_RESERVE).min(max) as usize);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first [`ERROR_BODY_MAX`] bytes of an error answer: enough for a JSON error or an HTML
/// title. A body cut short is still the answer (the status says enough).
pub(crate) async fn read_error_body(response: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::with_capacity(ERROR_BODY_MAX);
    while body.len() < ERROR_BODY_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = ERROR_BODY_MAX - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// Turns a status, headers and body into a page or a classified error.
fn classify(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: Vec<u8>,
) -> Result<Page, Error> {
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            crate::retry::parse_retry_after(v, chrono::Utc::now(), super::error::MAX_RETRY_AFTER)
        });
    if status.is_redirection() {
        let location = headers
            .get(reqwest::header::LOCATION)
            .map(|v| snippet(v.as_bytes()))
            .unwrap_or_else(|| "(no Location header)".into());
        return Err(Error::Redirect {
            status: status.as_u16(),
            location,
        });
    }
    // The body is checked to be UTF-8 once, here, so that neither serde nor the page checks
    // each entry again as text. One that is not is parsed as bytes, exactly as before.
    let body = String::from_utf8(body).map_err(|e| e.into_bytes());
    let bytes: &[u8] = match &body {
        Ok(text) => text.as_bytes(),
        Err(bytes) => bytes,
    };
    // serde reads a struct from a JSON array too (fields by position); a body that is not an
    // object is never a Slack answer, so refuse it before it could pass for a page.
    let is_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let parsed: Result<LogsResponse<'_>, serde_json::Error> = match &body {
        Ok(text) if is_object => serde_json::from_str(text),
        Err(bytes) if is_object => serde_json::from_slice(bytes),
        _ => Err(serde::de::Error::custom("the body is not a JSON object")),
    };
    if status.as_u16() == 429 {
        let code = parsed
            .ok()
            .and_then(|r| r.error_code())
            .unwrap_or_else(|| "rate_limited".into());
        return Err(match Error::from_code(&code, retry_after) {
            e @ Error::RateLimited { .. } => e,
            _ => Error::from_code("rate_limited", retry_after),
        });
    }
    if status.is_success() {
        let r = parsed.map_err(|e| Error::Decode {
            reason: e.to_string(),
            snippet: snippet(bytes),
        })?;
        if let Some(code) = r.error_code() {
            return Err(Error::from_code(&code, retry_after));
        }
        let next_cursor = r.next_cursor().map_err(|detail| Error::Protocol {
            kind: "cursor_not_a_string",
            detail,
        })?;
        let Some(entries) = &r.entries else {
            return Err(Error::NoEntries {
                snippet: snippet(bytes),
            });
        };
        let spans = Page::spans(bytes, entries);
        return Ok(match body {
            Ok(text) => Page::new(text, spans, next_cursor),
            // Only text outside the entries was not UTF-8: serde checked each entry.
            Err(bytes) => Page::copied(&bytes, &spans, next_cursor),
        });
    }
    // A documented error code in a non-2xx JSON body wins over the status.
    if let Some(code) = parsed.ok().and_then(|r| r.error_code()) {
        let e = Error::from_code(&code, retry_after);
        if !matches!(e, Error::Unknown { .. }) {
            return Err(e);
        }
    }
    match status.as_u16() {
        401 | 403 => Err(Error::Fatal {
            code: format!("http_{}", status.as_u16()),
            hint: "Slack refused the credentials; use a user token (xoxp-) of an Enterprise org Owner with auditlogs:read",
        }),
        404 => Err(Error::Fatal { code: "http_404".into(), hint: "no Audit Logs API at this URL; check --api-url (https://api.slack.com, not slack.com/api)" }),
        408 | 500..=599 => Err(Error::Http { status: status.as_u16(), snippet: snippet(bytes) }),
        s if (400..500).contains(&s) => Err(Error::Fatal { code: format!("http_{s}"), hint: "Slack refused the request; check --api-url and the filters" }),
        s => Err(Error::Http { status: s, snippet: snippet(bytes) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use reqwest::StatusCode;

    /// The body is checked to be UTF-8 once; one that is not is read as serde reads bytes:
    /// an entry that is not UTF-8 refuses the page, text outside the entries does not.
    #[test]
    fn a_body_that_is_not_utf8_is_read_as_bytes() {
        let body = |before: &[u8], after: &[u8]| [before, &[0xff], after].concat();
        let page = classify(
            StatusCode::OK,
            &HeaderMap::new(),
            body(
                br#"{"note":""#,
                br#"","entries":[{"id":"a","date_create":1}]}"#,
            ),
        )
        .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page.entry(0), Some(r#"{"id":"a","date_create":1}"#));
        let refused = classify(
            StatusCode::OK,
            &HeaderMap::new(),
            body(br#"{"entries":[{"id":""#, br#"","date_create":1}]}"#),
        );
        assert!(matches!(refused, Err(Error::Decode { .. })), "{refused:?}");
    }

    fn page(status: u16, body: &str) -> Result<Page, Error> {
        classify(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn empty_pages_are_pages() {
        for body in [
            r#"{"entries":[]}"#,
            r#"{"ok":true,"entries":[],"response_metadata":{}}"#,
            r#"{"entries":[],"response_metadata":{"next_cursor":""}}"#,
        ] {
            let p = page(200, body).unwrap();
            assert!(p.is_empty() && p.next_cursor.is_none(), "{body}");
        }
        let p = page(
            200,
            r#"{"entries":[],"response_metadata":{"next_cursor":"eA=="}}"#,
        )
        .unwrap();
        assert_eq!(p.next_cursor.as_deref(), Some("eA=="));
    }

    #[test]
    fn a_200_without_entries_is_a_glitch_not_the_end() {
        assert!(matches!(page(200, "{}"), Err(Error::NoEntries { .. })));
        assert!(matches!(
            page(200, r#"{"response_metadata":{}}"#),
            Err(Error::NoEntries { .. })
        ));
    }

    #[test]
    fn html_and_truncated_bodies_are_retried() {
        assert!(matches!(
            page(200, "<html>glitch</html>"),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            page(200, r#"{"entries":[{"id":"a""#),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            page(502, "<html>bad gateway</html>"),
            Err(Error::Http { status: 502, .. })
        ));
        assert!(matches!(
            page(408, ""),
            Err(Error::Http { status: 408, .. })
        ));
    }

    #[test]
    fn status_429_honours_retry_after() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let e = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            br#"{"ok":false,"error":"ratelimited"}"#.to_vec(),
        )
        .unwrap_err();
        assert_eq!(e.action(), Action::Wait(Duration::from_secs(7)));
        let e = classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), Vec::new()).unwrap_err();
        assert_eq!(
            e.action(),
            Action::Wait(crate::slack::error::DEFAULT_RETRY_AFTER)
        );
    }

    /// A `Retry-After` too large for a `Duration` is capped, on a 429 and on a 200 alike.
    #[test]
    fn retry_after_of_any_size_never_panics() {
        for huge in ["1e20", "18446744073709551616", "inf"] {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_static(huge));
            let e = classify(StatusCode::TOO_MANY_REQUESTS, &h, Vec::new()).unwrap_err();
            assert_eq!(
                e.action(),
                Action::Wait(crate::slack::error::MAX_RETRY_AFTER),
                "{huge}"
            );
            let p = classify(StatusCode::OK, &h, br#"{"entries":[]}"#.to_vec()).unwrap();
            assert!(p.is_empty(), "{huge}");
        }
    }

    /// A 3xx is a configuration error naming where it pointed; a number as the cursor is a
    /// protocol error that is retried, never the end of the chain.
    #[test]
    fn redirects_are_fatal_and_a_numeric_cursor_is_not_the_end() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::LOCATION,
            HeaderValue::from_static("https://elsewhere.example/login"),
        );
        let e = classify(StatusCode::FOUND, &h, Vec::new()).unwrap_err();
        assert!(e.is_fatal());
        assert!(
            e.to_string().contains("https://elsewhere.example/login"),
            "{e}"
        );
        let e = page(
            200,
            r#"{"entries":[],"response_metadata":{"next_cursor":7}}"#,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Protocol {
                    kind: "cursor_not_a_string",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.action(), Action::Backoff);
    }

    #[test]
    fn ok_false_codes_are_classified_whatever_the_status() {
        assert!(
            page(200, r#"{"ok":false,"error":"invalid_authentication"}"#)
                .unwrap_err()
                .is_fatal()
        );
        assert!(matches!(
            page(200, r#"{"ok":false,"error":"invalid_cursor"}"#),
            Err(Error::InvalidCursor)
        ));
        assert!(matches!(
            page(400, r#"{"ok":false,"error":"invalid_range"}"#),
            Err(Error::InvalidRange)
        ));
        assert!(page(401, "").unwrap_err().is_fatal());
        assert!(page(404, "<html>You've found a glitch</html>")
            .unwrap_err()
            .to_string()
            .contains("--api-url"));
    }

    #[test]
    fn token_file_is_reread_and_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "xoxp-first\n").unwrap();
        let src = TokenSource::file(p.clone()).unwrap();
        assert_eq!(src.current().unwrap().expose_secret(), "xoxp-first");
        std::fs::write(&p, "xoxp-second").unwrap();
        assert_eq!(src.current().unwrap().expose_secret(), "xoxp-second");
        // Mid-rotation the file may be briefly missing: keep the last token.
        std::fs::remove_file(&p).unwrap();
        assert_eq!(src.current().unwrap().expose_secret(), "xoxp-second");
        assert!(!format!("{src:?}").contains("xoxp"));
        std::fs::write(&p, "xoxp-bad token").unwrap();
        let err = TokenSource::file(p).unwrap_err().to_string();
        assert!(!err.contains("xoxp"), "{err}");
    }
}

/// Fuzzing the response parser: any status, any bytes, any `Retry-After`, never a panic, and
/// a 2xx is only ever a page when the body really has an `entries` array.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use reqwest::header::HeaderMap;
    use reqwest::StatusCode;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        crate::testing::json_value(prop_oneof![
            Just("entries".to_string()),
            Just("ok".to_string()),
            Just("error".to_string()),
            Just("response_metadata".to_string()),
            Just("next_cursor".to_string()),
            "[a-z_]{1,8}"
        ])
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(status in 100u16..600, body in prop::collection::vec(any::<u8>(), 0..512), retry in ".{0,8}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&retry) {
                h.insert(RETRY_AFTER, v);
            }
            if let Ok(s) = StatusCode::from_u16(status) {
                let _ = classify(s, &h, body);
            }
        }

        #[test]
        fn arbitrary_json_is_a_page_only_with_an_entries_array(body in json_value()) {
            let bytes = serde_json::to_vec(&body).unwrap();
            match classify(StatusCode::OK, &HeaderMap::new(), bytes) {
                Ok(page) => {
                    let entries = body.get("entries").and_then(|e| e.as_array());
                    prop_assert!(entries.is_some());
                    let entries = entries.unwrap();
                    prop_assert_eq!(page.len(), entries.len());
                    // Each span is exactly its entry, byte for byte as serialised.
                    for (e, want) in page.entries().zip(entries) {
                        prop_assert_eq!(e, serde_json::to_string(want).unwrap());
                        let _ = crate::slack::EntryKey::read(e);
                    }
                }
                Err(e) => {
                    // A body with an entries array is never mistaken for the `{}` glitch.
                    let has_entries = body.get("entries").and_then(|e| e.as_array()).is_some();
                    let glitch = matches!(e, Error::NoEntries { .. });
                    prop_assert!(!(has_entries && glitch));
                }
            }
        }
    }
}
