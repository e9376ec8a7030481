//! One HTTP listener for `/metrics`, `/healthz` and `/readyz` (the pod's probes and the
//! Prometheus scrape share a port, so the chart exposes one).
//!
//! Served with hyper directly rather than the exporter's own listener, which knows only
//! `/metrics`. The listener stops when shutdown is asked for, or when the [`MetricsServer`]
//! handle is dropped (so it never outlives [`crate::run`]).

use super::health::Health;
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// `/readyz` never calls progress stale sooner than this, however short `--interval` is: one
/// request under the client-side budget (60 s / `--max-requests-per-minute`) plus Slack's own
/// answer time must fit, or readiness would flap on every page.
pub const MIN_STALE_AFTER: Duration = Duration::from_secs(30);

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The clock `/readyz` judges staleness with: Unix seconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What the endpoints serve.
#[derive(Clone)]
pub struct Endpoints {
    /// Renders `/metrics`.
    pub handle: PrometheusHandle,
    /// Read by `/readyz`.
    pub health: &'static Health,
    /// Progress older than this makes `/readyz` answer 503.
    pub stale_after: Duration,
    /// Now, in Unix seconds (injected by tests).
    pub clock: Clock,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("stale_after", &self.stale_after)
            .finish_non_exhaustive()
    }
}

/// The running listener; dropping it stops it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long `/readyz` tolerates no progress: three poll intervals, at least [`MIN_STALE_AFTER`].
pub fn stale_after(interval: Duration) -> Duration {
    (interval * 3).max(MIN_STALE_AFTER)
}

/// Installs the process-wide Prometheus recorder once and describes every metric.
///
/// # Errors
///
/// A message when another recorder was installed first (a library embedding us).
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = super::recorder_builder()
                .install_recorder()
                .map_err(|e| e.to_string())?;
            super::describe();
            Ok(handle)
        })
        .clone()
}

/// What `run` calls: with `--metrics-listen`, installs the recorder and serves the endpoints
/// for the process-wide [`super::health::HEALTH`]; without it, does nothing.
///
/// # Errors
///
/// [`crate::Error::Listen`] when the address cannot be bound or a recorder already exists.
pub async fn start_for_run(
    config: &super::ObservabilityConfig,
    interval: Duration,
    shutdown: Shutdown,
) -> Result<Option<MetricsServer>, crate::Error> {
    let Some(addr) = config.metrics_listen else {
        return Ok(None);
    };
    let handle = install_recorder().map_err(|e| crate::Error::Listen {
        addr: addr.to_string(),
        source: std::io::Error::other(e),
    })?;
    let endpoints = Endpoints {
        handle,
        health: &super::health::HEALTH,
        stale_after: stale_after(interval),
        clock: Arc::new(|| chrono::Utc::now().timestamp()),
    };
    let server = start(addr, endpoints, shutdown).await?;
    tracing::info!(addr = %server.local_addr(), "serving /metrics, /healthz and /readyz");
    Ok(Some(server))
}

/// Binds `addr` and serves the endpoints until `shutdown`.
///
/// # Errors
///
/// [`crate::Error::Listen`] when the address cannot be bound.
pub async fn start(
    addr: SocketAddr,
    endpoints: Endpoints,
    shutdown: Shutdown,
) -> Result<MetricsServer, crate::Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| crate::Error::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener
        .local_addr()
        .map_err(|source| crate::Error::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let task = tokio::spawn(serve(listener, endpoints, shutdown));
    Ok(MetricsServer { addr: bound, task })
}

async fn serve(listener: TcpListener, endpoints: Endpoints, mut shutdown: Shutdown) {
    // Connections live in the set so that they end with the listener (a scraper's
    // keep-alive connection must not keep the task alive after shutdown).
    let mut connections = JoinSet::new();
    let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = upkeep.tick() => endpoints.handle.run_upkeep(),
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let endpoints = endpoints.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let endpoints = endpoints.clone();
                            async move { Ok::<_, Infallible>(respond(&endpoints, &req)) }
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                            tracing::debug!(error = %e, "metrics connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "metrics listener cannot accept; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
}

/// Answers one request.
fn respond<B>(endpoints: &Endpoints, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            endpoints.handle.run_upkeep();
            let mut r = text(StatusCode::OK, endpoints.handle.render());
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match endpoints
            .health
            .readiness((endpoints.clock)(), endpoints.stale_after)
        {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_after_is_three_intervals_with_a_floor() {
        assert_eq!(
            stale_after(Duration::from_secs(60)),
            Duration::from_secs(180)
        );
        assert_eq!(stale_after(Duration::from_secs(1)), MIN_STALE_AFTER);
    }
}
