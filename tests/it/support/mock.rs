//! A scripted mock of `GET /audit/v1/logs` on 127.0.0.1:0.
//!
//! It pages like Slack: newest first, inclusive `oldest`/`latest`, `limit` exceeded rather
//! than splitting a second, cursors that end in `=` padding and are bound to their window.
//! A script of canned replies, consumed one per request, injects errors and glitches (a
//! sticky reply answers every request, for a peer that never gets better); every request is
//! recorded with its raw query string. Replies are bytes: gzip bombs and invalid UTF-8 too.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A canned reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A 200 with this body.
    pub fn ok(body: &str) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }
    /// A 200 with these bytes as the body, as they are.
    pub fn bytes(body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body,
        }
    }
    /// A 200 whose body is `decoded` gzipped, with `Content-Encoding: gzip`.
    pub fn gzip(decoded: &[u8]) -> Reply {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(decoded).expect("gzip into memory");
        Reply {
            status: 200,
            headers: vec![("content-encoding".into(), "gzip".into())],
            body: enc.finish().expect("gzip into memory"),
        }
    }
    /// Replaces the status.
    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }
    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Any status and body.
    pub fn status(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }
    /// A Slack error code in a 200 `ok:false` body.
    pub fn error(code: &str) -> Reply {
        Reply::ok(&json!({"ok": false, "error": code}).to_string())
    }
    /// A 429 with `Retry-After`.
    pub fn rate_limited(secs: u64) -> Reply {
        Reply {
            status: 429,
            headers: vec![("retry-after".into(), secs.to_string())],
            body: br#"{"ok":false,"error":"ratelimited"}"#.to_vec(),
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The query string exactly as sent.
    pub raw_query: String,
    /// Decoded parameters.
    pub params: HashMap<String, String>,
    /// The Authorization header.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    /// (date_create, id, json), any order.
    entries: Vec<(i64, String, String)>,
    script: VecDeque<Reply>,
    at: HashMap<usize, Reply>,
    always: Option<Reply>,
    requests: Vec<Recorded>,
    epoch: u64,
}

/// The running mock; stops when dropped (its task is aborted).
pub struct MockSlack {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    served: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockSlack {
    /// Starts on 127.0.0.1:0.
    pub async fn start() -> MockSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let served = Arc::new(Notify::new());
        let (st, sv) = (state.clone(), served.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (st, sv) = (st.clone(), sv.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (st, sv) = (st.clone(), sv.clone());
                        async move {
                            let r = handle(&st, req);
                            sv.notify_waiters();
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        MockSlack {
            addr,
            state,
            served,
            task,
        }
    }

    /// The base URL to give `--api-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes entries visible.
    pub fn add(&self, entries: impl IntoIterator<Item = Value>) {
        let mut s = self.state.lock().unwrap();
        for e in entries {
            let ts = e["date_create"]
                .as_i64()
                .expect("test entries have date_create");
            let id = e["id"]
                .as_str()
                .expect("test entries have an id")
                .to_string();
            s.entries.push((ts, id, e.to_string()));
        }
    }

    /// Queues canned replies, used before any real page.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// Answers request number `index` (0-based, counting every request) with `reply`.
    pub fn script_at(&self, index: usize, reply: Reply) {
        self.state.lock().unwrap().at.insert(index, reply);
    }

    /// Answers every request from now on with `reply` (after `script_at` and `script`).
    pub fn always(&self, reply: Reply) {
        self.state.lock().unwrap().always = Some(reply);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Every cursor issued so far now answers `invalid_cursor`.
    pub fn invalidate_cursors(&self) {
        self.state.lock().unwrap().epoch += 1;
    }

    /// Waits until at least `n` requests have been served.
    pub async fn wait_requests(&self, n: usize) {
        loop {
            let notified = self.served.notified();
            if self.state.lock().unwrap().requests.len() >= n {
                return;
            }
            notified.await;
        }
    }
}

fn respond(
    status: u16,
    headers: &[(String, String)],
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Full::new(body.into())).expect("a valid response")
}

fn handle(state: &Mutex<State>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let params: HashMap<String, String> = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut s = state.lock().unwrap();
    let index = s.requests.len();
    s.requests.push(Recorded {
        raw_query,
        params: params.clone(),
        authorization,
    });
    if req.uri().path() != "/audit/v1/logs" {
        return respond(404, &[], "<html>You've found a glitch</html>");
    }
    if let Some(r) = s.at.remove(&index) {
        return respond(r.status, &r.headers, r.body);
    }
    if let Some(r) = s.script.pop_front() {
        return respond(r.status, &r.headers, r.body);
    }
    if let Some(r) = &s.always {
        return respond(r.status, &r.headers, r.body.clone());
    }
    page(&s, &params)
}

fn encode_cursor(oldest: i64, latest: i64, below: i64, epoch: u64) -> String {
    use base64::Engine;
    let mut text = format!("{oldest}:{latest}:{below}:{epoch}");
    // Always end in '=' padding, as Slack's cursors do, so URL-encoding is exercised.
    while text.len() % 3 != 1 {
        text.push(' ');
    }
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn decode_cursor(c: &str) -> Option<(i64, i64, i64, u64)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut it = text.trim().split(':');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

fn page(s: &State, params: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let num = |k: &str| params.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(oldest), Some(latest)) = (num("oldest"), num("latest")) else {
        return respond(
            200,
            &[],
            json!({"ok": false, "error": "invalid_range"}).to_string(),
        );
    };
    if latest > chrono::Utc::now().timestamp() {
        return respond(
            200,
            &[],
            json!({"ok": false, "error": "invalid_range"}).to_string(),
        );
    }
    let limit = num("limit").unwrap_or(100).max(1) as usize;
    let mut below = latest;
    if let Some(c) = params.get("cursor") {
        match decode_cursor(c) {
            Some((o, l, b, e)) if o == oldest && l == latest && e == s.epoch => below = b,
            _ => {
                return respond(
                    200,
                    &[],
                    json!({"ok": false, "error": "invalid_cursor"}).to_string(),
                )
            }
        }
    }
    let mut rows: Vec<&(i64, String, String)> = s
        .entries
        .iter()
        .filter(|(ts, _, _)| *ts >= oldest && *ts <= below)
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let mut take = rows.len().min(limit);
    // Never split a second: a same-second burst makes the page longer than `limit`.
    while take > 0 && take < rows.len() && rows[take].0 == rows[take - 1].0 {
        take += 1;
    }
    let next = if take < rows.len() {
        encode_cursor(oldest, latest, rows[take - 1].0 - 1, s.epoch)
    } else {
        String::new()
    };
    let body = format!(
        r#"{{"ok":true,"entries":[{}],"response_metadata":{{"next_cursor":"{}"}}}}"#,
        rows[..take]
            .iter()
            .map(|r| r.2.as_str())
            .collect::<Vec<_>>()
            .join(","),
        next
    );
    respond(200, &[], body)
}
