//! NDJSON POSTed to a shipper's HTTP input (Vector `http_server`, Fluent Bit `http`), with
//! acknowledgements and backpressure.
//!
//! [`HttpSink::send`] cuts a page's [`Batch`] into requests (`batch::split`) and sends them
//! one at a time, in order; it returns `Ok` only when every request got a 2xx. While the
//! receiver is down it keeps retrying with [`Backoff`] (the poller waits on it, so polling
//! pauses: that is the backpressure), and warns with the next retry time. Retry decisions are
//! made by `response::classify`; a refusal that retrying cannot fix becomes
//! [`Error::Rejected`], which stops the process before the checkpoint moves. So does a TLS
//! certificate that fails verification ([`Error::Certificate`]): no retry can fix it, and
//! retrying would only hide a configuration mistake behind endless warnings.
//!
//! At-least-once edge: a request that timed out, or whose connection broke after it was sent,
//! may have been taken by the receiver; it is sent again, and counted
//! ([`SinkStats::ambiguous_resends`], `slack_source_sink_ambiguous_resends_total`). Shippers
//! index by `event.id`, so the repeat overwrites the same document.
//!
//! Layout: `config` (flags → [`HttpConfig`]), `batch` (splitting and gzip, pure), `response`
//! (the retry decision, pure), and the I/O loop here.

pub(crate) mod auth;
pub(crate) mod batch;
pub mod config;
pub(crate) mod response;

pub(crate) use config::Auth;
pub use config::{Compression, HttpArgs, HttpConfig};

use super::{Batch, Error};
use crate::retry::Backoff;
use crate::shutdown::Shutdown;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use response::Verdict;
use secrecy::ExposeSecret;
use std::time::{Duration, Instant};

/// After shutdown is asked for, a request already in flight gets this long to be answered
/// before it is abandoned (a healthy receiver answers in milliseconds; a hung one must not
/// hold the process past Kubernetes' grace period).
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// At most this much of an error answer is read (it is quoted in the error, not parsed).
const MAX_ERROR_BODY: usize = 4096;

/// Counts kept by the sink itself, so tests can read them without a metrics recorder.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SinkStats {
    /// Requests sent, retries included.
    pub(crate) requests: u64,
    /// Requests acknowledged with a 2xx.
    pub delivered: u64,
    /// Requests that had to be retried.
    pub retries: u64,
    /// Retries of a request the receiver may already have taken (timeout, broken connection).
    pub ambiguous_resends: u64,
}

/// POSTs batches to one receiver.
pub struct HttpSink {
    client: reqwest::Client,
    // Boxed so that `Sink::Http` stays close in size to `Sink::Stdout`.
    config: Box<HttpConfig>,
    receiver: String,
    backoff: Box<Backoff>,
    stats: SinkStats,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("receiver", &self.receiver)
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// One request's body and what it carries.
struct Outgoing {
    body: Bytes,
    events: usize,
    /// NDJSON bytes before compression.
    raw_bytes: usize,
}

/// How one attempt ended, short of success or refusal.
struct Failure {
    kind: &'static str,
    message: String,
    /// The receiver's `Retry-After`, if it gave one.
    wait: Option<Duration>,
    /// The receiver may have taken the request (timeout or a connection broken mid-exchange).
    ambiguous: bool,
}

impl HttpSink {
    /// Builds the client: rustls, the extra CA certificates, no redirects (a 301/302 would turn
    /// the POST into a GET and "succeed" without delivering), the per-request timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Setup`] if the TLS backend cannot start.
    pub fn new(config: impl Into<Box<HttpConfig>>) -> Result<HttpSink, Error> {
        let config = config.into();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("slack-audit-source/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none());
        for cert in &config.ca_certs {
            builder = builder.add_root_certificate(cert.clone());
        }
        let receiver = config.receiver();
        if config.insecure_skip_verify {
            tracing::warn!(receiver = %receiver, "--http-insecure-skip-verify: the receiver's TLS certificate is NOT verified; anyone on the path can read and alter audit events");
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| Error::Setup(describe(e)))?;
        let backoff = Box::new(Backoff::new(config.backoff_min, config.backoff_max));
        Ok(HttpSink {
            client,
            config,
            receiver,
            backoff,
            stats: SinkStats::default(),
        })
    }

    /// The counts so far.
    pub fn stats(&self) -> SinkStats {
        self.stats
    }

    /// Delivers a page: every request in order, each retried until it gets a 2xx.
    ///
    /// Shutdown interrupts only waiting (between retries) and a request that outlives
    /// `SHUTDOWN_GRACE`; a healthy receiver gets the rest of the page, so the checkpoint can
    /// move before the process stops.
    ///
    /// # Errors
    ///
    /// [`Error::Rejected`] when the receiver refuses a request for good, [`Error::Interrupted`]
    /// when shutdown came before every request was acknowledged. Either way the page is not
    /// delivered as a whole and the checkpoint must not move.
    pub async fn send(&mut self, batch: &Batch, shutdown: &mut Shutdown) -> Result<(), Error> {
        // One copy per page; each request body is then a cheap slice of it.
        let page = Bytes::copy_from_slice(batch.bytes());
        for chunk in batch::split(batch, self.config.max_events, self.config.max_bytes) {
            let body = batch::encode(&page, &chunk, self.config.compression)
                .map_err(|e| Error::Setup(format!("cannot gzip a request body: {e}")))?;
            let request = Outgoing {
                body,
                events: chunk.events,
                raw_bytes: chunk.bytes.len(),
            };
            self.deliver(&request, shutdown).await?;
        }
        Ok(())
    }

    /// Sends one request until it is acknowledged, refused, or shutdown intervenes.
    async fn deliver(&mut self, request: &Outgoing, shutdown: &mut Shutdown) -> Result<(), Error> {
        let mut attempt: u32 = 1;
        loop {
            let started = Instant::now();
            let result = tokio::select! {
                r = self.attempt(request) => r,
                _ = grace_after(shutdown) => Err(Attempt::Refused(Error::Interrupted)),
            };
            let failure = match result {
                Ok(()) => {
                    self.acknowledged(request, attempt, started);
                    return Ok(());
                }
                Err(Attempt::Refused(e)) => {
                    crate::metrics::sink_request(
                        e.kind(),
                        request.events,
                        request.raw_bytes,
                        started.elapsed(),
                    );
                    return Err(e);
                }
                Err(Attempt::Failed(f)) => f,
            };
            let delay = self.failed(request, &failure, attempt, started);
            // Shutdown cuts the wait short; the batch stays unacknowledged, so the checkpoint
            // does not move and the next start sends it again.
            if shutdown.sleep(delay).await {
                return Err(Error::Interrupted);
            }
            self.stats.retries += 1;
            if failure.ambiguous {
                // The receiver may already hold this request: the resend can duplicate it.
                self.stats.ambiguous_resends += 1;
                crate::metrics::sink_ambiguous_resend(request.events);
            }
            attempt += 1;
        }
    }

    /// One POST with fresh headers (a rotated credential file takes effect here).
    async fn attempt(&mut self, request: &Outgoing) -> Result<(), Attempt> {
        self.stats.requests += 1;
        let headers = self.headers().map_err(Attempt::Refused)?;
        self.exchange(request, headers).await
    }

    /// Records a 2xx and starts the backoff schedule again.
    fn acknowledged(&mut self, request: &Outgoing, attempt: u32, started: Instant) {
        crate::metrics::sink_request(
            "delivered",
            request.events,
            request.raw_bytes,
            started.elapsed(),
        );
        crate::metrics::sink_receiver_up(true);
        self.stats.delivered += 1;
        if attempt > 1 {
            tracing::info!(receiver = %self.receiver, attempts = attempt, events = request.events, "the HTTP receiver took the batch");
        }
        self.backoff.reset();
    }

    /// Records a retryable failure, warns with the next retry time, and returns the delay.
    fn failed(
        &mut self,
        request: &Outgoing,
        failure: &Failure,
        attempt: u32,
        started: Instant,
    ) -> Duration {
        crate::metrics::sink_request(
            failure.kind,
            request.events,
            request.raw_bytes,
            started.elapsed(),
        );
        // Down, but not unhealthy: polling simply waits (backpressure).
        crate::metrics::sink_receiver_up(false);
        crate::metrics::retried("sink", failure.kind);
        let delay = self.delay(failure.wait);
        let retry_at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        tracing::warn!(
            receiver = %self.receiver,
            error = %failure.message,
            events = request.events,
            attempt,
            retry_in_secs = delay.as_secs_f64(),
            retry_at = %retry_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "the HTTP receiver did not acknowledge the batch; polling waits until it does",
        );
        delay
    }

    /// The receiver's `Retry-After`, kept within the backoff's bounds (never a tight loop,
    /// never longer than the cap), or the next backoff delay.
    fn delay(&mut self, wait: Option<Duration>) -> Duration {
        match wait {
            Some(w) => w.clamp(self.config.backoff_min, self.config.backoff_max),
            None => self.backoff.next().unwrap_or(self.config.backoff_max),
        }
    }

    /// Content type and encoding, the extra headers, and the credential read now.
    fn headers(&mut self) -> Result<HeaderMap, Error> {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, self.config.content_type.clone());
        if self.config.compression == Compression::Gzip {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        for (name, value) in &self.config.headers {
            h.append(name.clone(), value.clone());
        }
        let credential = match &mut self.config.auth {
            None => None,
            Some(Auth::Bearer(token)) => {
                Some(format!("Bearer {}", token.current().expose_secret()))
            }
            Some(Auth::Basic { user, password }) => {
                use base64::Engine as _;
                let pair = format!("{user}:{}", password.current().expose_secret());
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
        };
        if let Some(c) = credential {
            // The credential was checked to be one printable line when read, so this holds.
            let mut v = HeaderValue::from_str(&c).map_err(|_| {
                Error::Setup("the HTTP sink credential cannot be sent in a header".into())
            })?;
            v.set_sensitive(true);
            h.insert(AUTHORIZATION, v);
        }
        Ok(h)
    }

    /// One POST, classified.
    async fn exchange(&self, request: &Outgoing, headers: HeaderMap) -> Result<(), Attempt> {
        let sent = self
            .client
            .post(self.config.url.clone())
            .headers(headers)
            .body(request.body.clone())
            .send()
            .await;
        let mut response = sent.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        match response::classify(status, response.headers()) {
            // The body of a 2xx is not read: the status is the acknowledgement.
            Verdict::Delivered => Ok(()),
            Verdict::Retry { kind, wait } => {
                let body = read_start(&mut response).await;
                Err(Attempt::Failed(Failure {
                    kind,
                    message: format!("HTTP {status}: {}", response::snippet(&body)),
                    wait,
                    ambiguous: false,
                }))
            }
            Verdict::Reject => {
                let body = read_start(&mut response).await;
                let mut text = response::snippet(&body);
                if let Some(hint) = self.hint(status) {
                    text.push_str(" (hint: ");
                    text.push_str(hint);
                    text.push(')');
                }
                Err(Attempt::Refused(Error::Rejected {
                    url: self.receiver.clone(),
                    status,
                    body: text,
                }))
            }
        }
    }

    /// A certificate that fails verification is refused for good; any other transport error
    /// is retried.
    fn transport_error(&self, e: reqwest::Error) -> Attempt {
        match find_certificate_error(&e) {
            Some(cert) => Attempt::Refused(Error::Certificate {
                url: self.receiver.clone(),
                reason: rustls::Error::InvalidCertificate(cert.clone()).to_string(),
                hint: certificate_hint(cert),
            }),
            None => Attempt::Failed(transport_failure(e)),
        }
    }

    /// What the operator can change for the usual refusals.
    fn hint(&self, status: u16) -> Option<&'static str> {
        let json = self
            .config
            .content_type
            .as_bytes()
            .starts_with(b"application/json");
        match status {
            400 | 415 if !json => Some("Fluent Bit's http input reads newline-delimited JSON only as --http-content-type application/json"),
            401 | 403 => Some("check --http-bearer-token-file or --http-user and the receiver's auth settings"),
            413 => Some("lower --http-batch-bytes, or raise the receiver's limit (Fluent Bit: buffer_max_size)"),
            300..=399 => Some("redirects are not followed; give the final URL in --http-url"),
            _ => None,
        }
    }
}

/// An attempt that did not end in a 2xx.
enum Attempt {
    /// Worth retrying.
    Failed(Failure),
    /// Not worth retrying.
    Refused(Error),
}

/// Resolves [`SHUTDOWN_GRACE`] after shutdown is asked for.
async fn grace_after(shutdown: &mut Shutdown) {
    shutdown.wait().await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

/// The certificate problem behind a failed request, if that is what it was: a
/// `rustls::Error::InvalidCertificate` along the error chain.
///
/// rustls's error reaches us as an `io::Error` wrapping an `io::Error` wrapping it (tokio-rustls
/// wraps, then the connector), and `io::Error::source` skips the error it wraps, so each
/// `io::Error` met is opened by hand.
fn find_certificate_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::CertificateError> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(rustls::Error::InvalidCertificate(cert)) = e.downcast_ref::<rustls::Error>() {
            return Some(cert);
        }
        let wrapped = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if let Some(found) = wrapped.and_then(|inner| find_certificate_error(inner)) {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

/// What to change for a certificate the verifier refused.
fn certificate_hint(e: &rustls::CertificateError) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        C::UnknownIssuer => "the receiver's certificate is not signed by a trusted CA; give the CA certificate that signed it, as PEM, with --http-ca-file",
        C::NotValidForName | C::NotValidForNameContext { .. } => "the host in --http-url must be one the certificate names (its subject alternative names)",
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => "renew the receiver's certificate, or check this machine's clock",
        _ => "check the receiver's certificate chain, and give its CA with --http-ca-file if it is a private one",
    }
}

/// Classifies a reqwest error: a failed connect never reached the receiver; anything later
/// (timeout, reset, a cut answer) may have.
fn transport_failure(e: reqwest::Error) -> Failure {
    let (kind, ambiguous) = if e.is_connect() {
        ("connect", false)
    } else if e.is_timeout() {
        ("timeout", true)
    } else {
        ("transport", true)
    };
    Failure {
        kind,
        message: describe(e),
        wait: None,
        ambiguous,
    }
}

/// The error and its causes on one line, without the URL (reqwest adds it; we log our own
/// query-less form).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of an answer; a body cut short is quoted as far as it got.
async fn read_start(response: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError as C;
    use std::io::{Error as IoError, ErrorKind};

    /// The shape reqwest 0.12 hands over: io::Error(Other) around io::Error(InvalidData)
    /// around the rustls error (the integration tests check the real chain end to end).
    fn wrapped(e: rustls::Error) -> IoError {
        IoError::other(IoError::new(ErrorKind::InvalidData, e))
    }

    #[test]
    fn a_certificate_error_is_found_inside_wrapped_io_errors() {
        let e = wrapped(rustls::Error::InvalidCertificate(C::UnknownIssuer));
        assert_eq!(find_certificate_error(&e), Some(&C::UnknownIssuer));
        let e = wrapped(rustls::Error::InvalidCertificate(C::NotValidForName));
        assert_eq!(find_certificate_error(&e), Some(&C::NotValidForName));
    }

    #[test]
    fn other_tls_and_transport_errors_are_not_certificate_errors() {
        let e = wrapped(rustls::Error::General("handshake cut short".into()));
        assert_eq!(find_certificate_error(&e), None);
        let e = IoError::new(ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(find_certificate_error(&e), None);
    }

    #[test]
    fn each_certificate_problem_gets_a_hint_naming_what_to_change() {
        assert!(certificate_hint(&C::UnknownIssuer).contains("--http-ca-file"));
        assert!(certificate_hint(&C::NotValidForName).contains("--http-url"));
        assert!(certificate_hint(&C::Expired).contains("renew"));
        assert!(certificate_hint(&C::BadSignature).contains("--http-ca-file"));
    }
}
