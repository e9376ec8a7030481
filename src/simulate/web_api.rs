//! The Web API's admin methods as the simulator serves them, under `/api/`:
//! `admin.users.session.invalidate`, `admin.users.session.reset` and
//! `admin.audit.anomaly.allow.getItem`, POSTed with a bearer token and form-encoded arguments.
//!
//! It checks the admin token (the simulator's `admin_token`; without one any non-empty token
//! but the audit token passes), refuses the audit token with `invalid_auth`, logs each call to
//! stderr, and keeps a call log (in process through [`super::SimHandle::web_api_calls`], over
//! HTTP at `GET /_sim/web_api_calls`). A test scripts answers as for `/logs` (a
//! [`super::Reply`], e.g. `missing_scope` or a 429 with `Retry-After`); the allowlist served
//! is the simulator's `slack_allowlist`. Nothing here ends a real session: a call is recorded
//! and answered, that is all.

use super::logs::{error_body, respond};
use super::script::Script;
use super::shared::lock;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The prefix the methods are served under: `--web-api-url http://ADDR/api`.
pub(crate) const PREFIX: &str = "/api/";
/// The methods served.
const METHODS: [&str; 3] = [
    "admin.users.session.invalidate",
    "admin.users.session.reset",
    "admin.audit.anomaly.allow.getItem",
];

/// Whether `path` is one of the methods served here; any other path under `/api/` gets the
/// simulator's glitch page, like any unknown path.
pub(crate) fn serves(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|m| METHODS.contains(&m))
}

/// The most calls kept in the log.
const MAX_CALLS: usize = 10_000;
/// The largest request body read; the methods take a few short arguments.
const MAX_REQUEST_BODY: usize = 64 << 10;

/// Slack's anomaly allowlist, as the simulator serves it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimAllowlist {
    /// `trusted_cidr`.
    pub trusted_cidr: Vec<String>,
    /// `trusted_asns`.
    pub trusted_asns: Vec<u64>,
}

/// One Web API call as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebApiCall {
    /// The method (`admin.users.session.reset`...).
    pub method: String,
    /// The form arguments, decoded.
    pub params: BTreeMap<String, String>,
    /// The `Authorization` header as sent (a test token; the simulator is never given a real
    /// one).
    pub authorization: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The `error` answered, if any.
    pub error: Option<String>,
}

/// What a call gets.
enum Decision {
    /// This status and JSON body.
    Answer(StatusCode, String),
    /// A reply a test scripted.
    Scripted(super::Reply),
}

/// The Web API side of the simulator's state.
#[derive(Debug, Default)]
pub(crate) struct WebApiState {
    /// The admin token required, if any.
    pub(crate) admin_token: Option<String>,
    /// The audit token, refused here.
    pub(crate) audit_token: Option<String>,
    /// What `getItem` answers.
    pub(crate) allowlist: Mutex<SimAllowlist>,
    /// Replies a test scripted.
    pub(crate) script: Mutex<Script>,
    /// The newest calls.
    pub(crate) calls: Mutex<VecDeque<WebApiCall>>,
    /// Calls recorded since start.
    pub(crate) recorded: AtomicUsize,
    /// Woken after each call is recorded.
    pub(crate) served: tokio::sync::Notify,
}

impl WebApiState {
    /// Keeps `call` among the newest [`MAX_CALLS`], logs it and wakes whoever waits.
    fn record(&self, call: WebApiCall) {
        eprintln!(
            "simulator: Web API {} {} -> {}{}",
            call.method,
            call.params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            call.status,
            call.error
                .as_deref()
                .map(|e| format!(" {e}"))
                .unwrap_or_default(),
        );
        {
            let mut calls = lock(&self.calls);
            if calls.len() >= MAX_CALLS {
                calls.pop_front();
            }
            calls.push_back(call);
        }
        self.recorded.fetch_add(1, Ordering::SeqCst);
        self.served.notify_waiters();
    }

    /// The calls as NDJSON, oldest first.
    pub(crate) fn calls_ndjson(&self) -> String {
        let mut out = String::new();
        for call in lock(&self.calls).iter() {
            // A struct of strings and maps always serialises.
            out.push_str(&serde_json::to_string(call).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// `invalid_auth` for the audit token or a wrong one, `not_authed` without one.
    fn check_auth(&self, auth: Option<&str>) -> Result<(), &'static str> {
        let token = auth
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or("not_authed")?;
        if self.audit_token.as_deref() == Some(token) {
            eprintln!("simulator: the audit token was sent to the Web API; refused");
            return Err("invalid_auth");
        }
        match self.admin_token.as_deref() {
            Some(want) if want != token => Err("invalid_auth"),
            _ => Ok(()),
        }
    }

    /// Answers one call to `/api/{method}`.
    pub(crate) async fn answer<B>(&self, req: hyper::Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let method = req
            .uri()
            .path()
            .strip_prefix(PREFIX)
            .unwrap_or_default()
            .to_string();
        let post = req.method() == Method::POST;
        let auth = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = match Limited::new(req.into_body(), MAX_REQUEST_BODY)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let params: BTreeMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let mut call = WebApiCall {
            method,
            params,
            authorization: auth,
            status: 200,
            error: None,
        };
        let response = match self.decide(&mut call, post) {
            Decision::Answer(status, body) => {
                respond(status, "application/json; charset=utf-8", body)
            }
            Decision::Scripted(reply) => {
                call.error = serde_json::from_slice::<serde_json::Value>(&reply.body)
                    .ok()
                    .and_then(|v| v.get("error")?.as_str().map(str::to_string));
                reply.to_response()
            }
        };
        call.status = response.status().as_u16();
        self.record(call);
        response
    }

    /// What to answer, with `call.error` set for an error: the method, the verb and the token
    /// are checked first, then a scripted reply comes before the method's own answer.
    fn decide(&self, call: &mut WebApiCall, post: bool) -> Decision {
        let known = METHODS.contains(&call.method.as_str());
        let fail = |call: &mut WebApiCall, status: StatusCode, code: &str| {
            call.error = Some(code.to_string());
            Decision::Answer(status, error_body(code))
        };
        if !known {
            return fail(call, StatusCode::NOT_FOUND, "unknown_method");
        }
        if !post {
            // Slack takes GET too; ours are always POSTed, so a GET is a regression.
            return fail(call, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        }
        if let Err(code) = self.check_auth(call.authorization.as_deref()) {
            return fail(call, StatusCode::OK, code);
        }
        if let Some(reply) = lock(&self.script).next() {
            return Decision::Scripted(reply);
        }
        let arg = |name: &str| call.params.get(name).is_some_and(|v| !v.trim().is_empty());
        match call.method.as_str() {
            "admin.users.session.invalidate" if !(arg("user_id") && arg("session_id")) => {
                fail(call, StatusCode::OK, "invalid_arguments")
            }
            "admin.users.session.reset" if !arg("user_id") => {
                fail(call, StatusCode::OK, "invalid_arguments")
            }
            "admin.audit.anomaly.allow.getItem" => {
                let a = lock(&self.allowlist).clone();
                let body = serde_json::json!({
                    "ok": true,
                    "trusted_cidr": a.trusted_cidr,
                    "trusted_asns": a.trusted_asns,
                });
                Decision::Answer(StatusCode::OK, body.to_string())
            }
            _ => Decision::Answer(StatusCode::OK, r#"{"ok":true}"#.into()),
        }
    }
}
