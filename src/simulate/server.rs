//! The simulator's HTTP side: the accept loop, routes, and the record of every `/logs`
//! request. What `/logs` answers is decided in `logs`.
//!
//! Only a stall waits, and it waits after the answer is fixed, so a stalled request sees the
//! data of the moment it arrived. Connections are plain HTTP/1.1 (the API is reached over
//! loopback in every use of the simulator).

use super::catalog;
use super::logs::{answer_logs, error_body, respond};
use super::shared::{lock, Shared};
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How many requests [`super::SimHandle::requests`] keeps (the newest); a soak test's worth.
const MAX_RECORDED: usize = 100_000;

const GLITCH_HTML: &str = "<!DOCTYPE html><html lang=\"en-US\"><head><meta charset=\"utf-8\"><title>Page not found | Slack</title></head>\
<body><h1>You\u{2019}ve found a glitch</h1><p>This page doesn\u{2019}t exist. (This is a Slack Audit Logs API simulator.)</p></body></html>";

/// Serves until `shutdown`; dropping the connection set on the way out aborts the open
/// connections (stalled ones included).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: Shutdown) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let shared = shared.clone();
                            async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                        });
                        // A client that hangs up mid-answer is its own business.
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "simulator cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle<B>(shared: &Shared, req: Request<B>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
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
            shared.store.release_due(tokio::time::Instant::now());
            let (answer, record) = answer_logs(shared, auth.as_deref(), &query, unix_now());
            let stall = answer.stall;
            {
                let mut requests = lock(&shared.requests);
                if requests.len() >= MAX_RECORDED {
                    requests.pop_front();
                }
                requests.push_back(record);
            }
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

/// The wall clock in Unix seconds: entries are dated by it and `latest` is checked against it,
/// because the client compares with its own wall clock.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
