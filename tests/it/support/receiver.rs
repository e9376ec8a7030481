//! In-process stand-ins for the shippers' HTTP inputs, on 127.0.0.1:0.
//!
//! [`Flavor::Vector`] behaves like Vector's `http_server` with newline-delimited framing and
//! JSON decoding: it takes `application/json` or `application/x-ndjson` and answers 200.
//! [`Flavor::FluentBit`] behaves like Fluent Bit's `http` input: it reads newline-delimited
//! objects only as `application/json`, answers 400 to anything else, and 201 on success.
//! Both decode `Content-Encoding: gzip` and refuse a line that is not JSON with 400.
//!
//! A script of [`Step`]s says what to do with each request in turn (then [`Step::Take`]
//! forever); [`Step::Hold`] answers 503 until [`Receiver::release`]. Every request taken is
//! recorded with its headers and documents, so tests check order, limits and duplicates.
//!
//! [`Receiver::start_tls`] serves the same over HTTPS with a certificate from a [`TestPki`]:
//! a CA and a server certificate for `localhost` and `127.0.0.1` made when the test runs, so
//! no key or certificate is checked in and none can expire in the repository.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response};
use serde_json::Value;
use slack_audit_source::serve::{self, Limits};
use slack_audit_source::shutdown::Shutdown;
use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Which shipper to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Vector `http_server` (200, either NDJSON content type).
    Vector,
    /// Fluent Bit `http` input (201, `application/json` only).
    FluentBit,
}

/// What to do with one request.
#[derive(Debug, Clone)]
pub enum Step {
    /// Take it (the flavor's checks apply).
    Take,
    /// Answer this status and body without taking it; `retry_after` is sent as `Retry-After`.
    Answer {
        /// The status.
        status: u16,
        /// The body.
        body: &'static str,
        /// A `Retry-After` value.
        retry_after: Option<&'static str>,
    },
    /// Take it, but answer only after this long (the client gives up first).
    TakeSlowly(Duration),
    /// Read it and close the connection without answering.
    HangUp,
    /// Answer 503 to this and every later request until [`Receiver::release`].
    Hold,
}

impl Step {
    /// A plain error answer.
    pub fn status(status: u16, body: &'static str) -> Step {
        Step::Answer {
            status,
            body,
            retry_after: None,
        }
    }
}

/// One request the receiver took.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its documents, in order.
    pub docs: Vec<Value>,
    /// NDJSON bytes after decompression.
    pub ndjson_bytes: usize,
}

/// A certificate authority and a server certificate it signed for `localhost` and
/// `127.0.0.1`, generated in memory.
pub struct TestPki {
    ca_pem: String,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: Vec<u8>,
}

impl TestPki {
    /// A fresh CA and server certificate (ECDSA P-256, so generation takes milliseconds).
    pub fn new() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().expect("generate the CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "slack-audit-source test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign the CA");
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().expect("generate the server key");
        // `new` reads "127.0.0.1" as an IP address SAN, which is what a URL with an IP checks.
        let mut server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server parameters");
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .expect("sign the server certificate");
        TestPki {
            ca_pem: ca_cert.pem(),
            server_cert: server_cert.der().clone(),
            server_key: server_key.serialize_der(),
        }
    }

    /// Writes the CA certificate as PEM to `dir/ca.pem`, for `--http-ca-file`.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write the CA certificate");
        path
    }

    /// The server side: the certificate and its key, HTTP/1.1, the ring provider (the one
    /// reqwest already uses, so no second crypto backend is built).
    fn acceptor(&self) -> TlsAcceptor {
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.server_key.clone().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![self.server_cert.clone()], key)
        .expect("the generated key matches its certificate");
        TlsAcceptor::from(Arc::new(config))
    }
}

struct State {
    flavor: Flavor,
    script: Mutex<VecDeque<Step>>,
    taken: Mutex<Vec<Delivery>>,
    seen: watch::Sender<usize>,
    /// TLS handshakes that failed (the client refused the certificate, or spoke plain HTTP).
    handshake_failures: watch::Sender<usize>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// Stops the accept loop when the receiver is dropped.
    server: serve::Server,
    scheme: &'static str,
    state: Arc<State>,
}

impl Receiver {
    /// Starts a plain-HTTP receiver following `script`.
    pub async fn start(flavor: Flavor, script: Vec<Step>) -> Receiver {
        Self::listen(flavor, script, None).await
    }

    /// Starts an HTTPS receiver following `script`, presenting `pki`'s server certificate.
    pub async fn start_tls(flavor: Flavor, script: Vec<Step>, pki: &TestPki) -> Receiver {
        Self::listen(flavor, script, Some(pki.acceptor())).await
    }

    async fn listen(flavor: Flavor, script: Vec<Step>, tls: Option<TlsAcceptor>) -> Receiver {
        let listener = slack_audit_source::serve::bind("127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("bind 127.0.0.1:0");
        let state = Arc::new(State {
            flavor,
            script: Mutex::new(script.into()),
            taken: Mutex::new(Vec::new()),
            seen: watch::channel(0).0,
            handshake_failures: watch::channel(0).0,
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = state.clone();
        let server = serve::spawn_connections(
            listener,
            Shutdown::never(),
            Limits::none(),
            "receiver",
            move |stream| {
                let st = shared.clone();
                let tls = tls.clone();
                async move {
                    match tls {
                        None => serve_one(stream, st).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => serve_one(stream, st).await,
                            Err(_) => st.handshake_failures.send_modify(|c| *c += 1),
                        },
                    }
                }
            },
        );
        Receiver {
            server,
            scheme,
            state,
        }
    }

    /// `http://127.0.0.1:PORT{path}`, or `https://` for a TLS receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.server.local_addr())
    }

    /// Every request taken so far.
    pub fn taken(&self) -> Vec<Delivery> {
        self.state
            .taken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every document taken so far, in order.
    pub fn docs(&self) -> Vec<Value> {
        self.taken().into_iter().flat_map(|d| d.docs).collect()
    }

    /// Requests seen so far, taken or not.
    pub fn seen(&self) -> usize {
        *self.state.seen.borrow()
    }

    /// Waits until `n` requests have been seen; fails the test after 10 s.
    pub async fn wait_for_requests(&self, n: usize) {
        let mut rx = self.state.seen.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| *c >= n)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "the receiver saw {} requests, expected {n} within 10 s",
            self.seen()
        );
    }

    /// TLS handshakes that failed so far.
    pub fn handshake_failures(&self) -> usize {
        *self.state.handshake_failures.borrow()
    }

    /// Waits until `n` TLS handshakes have failed; fails the test after 10 s. (The server
    /// learns of a refused certificate from the client's alert, a moment after the client.)
    pub async fn wait_for_handshake_failures(&self, n: usize) {
        let mut rx = self.state.handshake_failures.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| *c >= n)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "{} TLS handshakes failed, expected {n} within 10 s",
            self.handshake_failures()
        );
    }

    /// Ends a [`Step::Hold`]: requests are taken again.
    pub fn release(&self) {
        let mut script = self.state.script.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(script.front(), Some(Step::Hold)) {
            script.pop_front();
        }
    }
}

/// Serves HTTP/1.1 on one connection, plain or TLS.
async fn serve_one<S>(stream: S, st: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A connection ending in an error is the point of HangUp; `http1` reports nothing.
    serve::http1(stream, Limits::none(), move |req| {
        let st = st.clone();
        async move { st.handle(req).await }
    })
    .await;
}

type Answer = Response<Full<Bytes>>;

fn answer(status: u16, body: &str) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).expect("scripted statuses are valid");
    r
}

impl State {
    async fn handle(&self, req: Request<Incoming>) -> Result<Answer, std::io::Error> {
        let step = {
            let mut script = self.script.lock().unwrap_or_else(|p| p.into_inner());
            match script.front() {
                Some(Step::Hold) => Step::Hold,
                Some(_) => script.pop_front().unwrap_or(Step::Take),
                None => Step::Take,
            }
        };
        let (parts, body) = req.into_parts();
        let body = super::body_bytes(body).await;
        let result = match step {
            Step::Take => Ok(self.take(parts.headers, &body)),
            Step::Answer {
                status,
                body,
                retry_after,
            } => {
                let mut r = answer(status, body);
                if let Some(v) = retry_after {
                    r.headers_mut()
                        .insert("retry-after", hyper::header::HeaderValue::from_static(v));
                }
                Ok(r)
            }
            Step::TakeSlowly(delay) => {
                let r = self.take(parts.headers, &body);
                self.seen.send_modify(|c| *c += 1);
                tokio::time::sleep(delay).await;
                return Ok(r);
            }
            Step::HangUp => Err(std::io::Error::other("hanging up without an answer")),
            Step::Hold => Ok(answer(503, "receiver paused")),
        };
        self.seen.send_modify(|c| *c += 1);
        result
    }

    /// The flavor's checks, then record the documents.
    fn take(&self, headers: HeaderMap, body: &[u8]) -> Answer {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let accepted = match self.flavor {
            Flavor::Vector => media == "application/json" || media == "application/x-ndjson",
            Flavor::FluentBit => media == "application/json",
        };
        if !accepted {
            return match self.flavor {
                Flavor::Vector => answer(415, "unsupported content type"),
                Flavor::FluentBit => answer(400, "error: invalid 'Content-Type'"),
            };
        }
        let gzip = headers
            .get("content-encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let mut ndjson = Vec::new();
        if gzip {
            if flate2::read::GzDecoder::new(body)
                .read_to_end(&mut ndjson)
                .is_err()
            {
                return answer(400, "bad gzip body");
            }
        } else {
            ndjson.extend_from_slice(body);
        }
        let mut docs = Vec::new();
        for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Value>(line) {
                Ok(v) => docs.push(v),
                Err(e) => return answer(400, &format!("invalid JSON: {e}")),
            }
        }
        self.taken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Delivery {
                headers,
                docs,
                ndjson_bytes: ndjson.len(),
            });
        match self.flavor {
            Flavor::Vector => answer(200, ""),
            Flavor::FluentBit => answer(201, ""),
        }
    }
}
