//! The simulator's HTTP side: routes (served by [`crate::serve`]'s accept loop), and the record of every `/logs`
//! request. What `/logs` answers is decided in `logs`, what the Web API's `/api/` methods
//! answer in `web_api`.
//!
//! Only a stall waits, and it waits after the answer is fixed, so a stalled request sees the
//! data of the moment it arrived. Connections are plain HTTP/1.1 (the API is reached over
//! loopback in every use of the simulator).

use super::catalog;
use super::logs::{answer_logs, error_body, respond, scripted_record};
use super::shared::{lock, Shared};
use super::web_api;
use super::RecordedRequest;
use crate::serve::{accept_loop, http1, Limits};
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

/// How many requests [`super::SimHandle::requests`] keeps (the newest); a soak test's worth.
const MAX_RECORDED: usize = 100_000;

const GLITCH_HTML: &str = "<!DOCTYPE html><html lang=\"en-US\"><head><meta charset=\"utf-8\"><title>Page not found | Slack</title></head>\
<body><h1>You\u{2019}ve found a glitch</h1><p>This page doesn\u{2019}t exist. (This is a Slack Audit Logs API simulator.)</p></body></html>";
/// Serves until `shutdown` through the crate's accept loop, with no limits (a stall holds its
/// connection on purpose); the open connections, stalled ones included, end with the loop.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    web: Arc<web_api::WebApiState>,
    shutdown: Shutdown,
) {
    let limits = Limits::none();
    accept_loop(
        listener,
        shutdown,
        limits.max_connections,
        "simulator",
        move |stream| {
            let (shared, web) = (shared.clone(), web.clone());
            http1(stream, limits, move |req| {
                let (shared, web) = (shared.clone(), web.clone());
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, &web, req).await) }
            })
        },
    )
    .await;
}

async fn handle<B>(
    shared: &Shared,
    web: &web_api::WebApiState,
    req: Request<B>,
) -> Response<Full<Bytes>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path().to_string();
    if web_api::serves(&path) {
        return web.answer(req).await;
    }
    let query = req.uri().query().unwrap_or("").to_string();
    if req.method() != Method::GET && path.starts_with("/audit/v1/") {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "application/json; charset=utf-8",
            error_body("method_not_allowed"),
        );
    }
    match path.as_str() {
        "/audit/v1/logs" => {
            let auth = req
                .headers()
                .get(AUTHORIZATION)
                .map(HeaderValue::as_bytes)
                .map(<[u8]>::to_vec);
            if is_admin_token(web, auth.as_deref()) {
                // The admin token never belongs here: refused like any wrong token, and said.
                eprintln!(
                    "simulator: the Web API admin token was sent to the Audit Logs API; refused"
                );
                let mut rec = scripted_record(&query, auth.as_deref(), 200);
                rec.error = Some("invalid_authentication".into());
                record(shared, rec);
                return respond(
                    StatusCode::OK,
                    "application/json; charset=utf-8",
                    error_body("invalid_authentication"),
                );
            }
            let scripted = lock(&shared.script).next();
            if let Some(reply) = scripted {
                record(
                    shared,
                    scripted_record(&query, auth.as_deref(), reply.status),
                );
                return reply.to_response();
            }
            shared.store.release_due(tokio::time::Instant::now());
            let (answer, rec) = answer_logs(shared, auth.as_deref(), &query, unix_now());
            let stall = answer.stall;
            record(shared, rec);
            if let Some(d) = stall {
                tokio::time::sleep(d).await;
            }
            answer.response
        }
        "/audit/v1/schemas" => respond(
            StatusCode::OK,
            "application/json; charset=utf-8",
            catalog::schemas_body(),
        ),
        "/audit/v1/actions" => respond(
            StatusCode::OK,
            "application/json; charset=utf-8",
            catalog::actions_body(),
        ),
        "/_sim/ids" => {
            shared.store.release_due(tokio::time::Instant::now());
            let mut body = String::new();
            for (id, date) in shared.store.ids() {
                body.push_str(&serde_json::json!({"id": id, "date_create": date}).to_string());
                body.push('\n');
            }
            respond(StatusCode::OK, "application/x-ndjson", body)
        }
        "/_sim/web_api_calls" => {
            respond(StatusCode::OK, "application/x-ndjson", web.calls_ndjson())
        }
        p if p.starts_with("/audit/v1/") => respond(
            StatusCode::NOT_FOUND,
            "application/json; charset=utf-8",
            error_body("bad_endpoint"),
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/html; charset=utf-8",
            GLITCH_HTML.to_string(),
        ),
    }
}

/// Whether `auth` carries the Web API's admin token (when the simulator has one).
fn is_admin_token(web: &web_api::WebApiState, auth: Option<&[u8]>) -> bool {
    let Some(admin) = web.admin_token.as_deref() else {
        return false;
    };
    auth.and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .is_some_and(|t| t.trim() == admin)
}

/// Keeps `rec` among the newest [`MAX_RECORDED`] and wakes whoever waits for requests.
fn record(shared: &Shared, rec: RecordedRequest) {
    {
        let mut requests = lock(&shared.requests);
        if requests.len() >= MAX_RECORDED {
            requests.pop_front();
        }
        requests.push_back(rec);
    }
    shared.recorded.fetch_add(1, Ordering::SeqCst);
    shared.served.notify_waiters();
}

/// The wall clock in Unix seconds: entries are dated by it and `latest` is checked against it,
/// because the client compares with its own wall clock.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
