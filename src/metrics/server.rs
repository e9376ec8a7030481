//! One HTTP listener for `/metrics`, `/healthz` and `/readyz` (the pod's probes and the
//! Prometheus scrape share a port, so the chart exposes one).
//!
//! Served with hyper directly rather than the exporter's own listener, which knows only
//! `/metrics`. The listener stops when shutdown is asked for, or when the [`MetricsServer`]
//! handle is dropped (so it never outlives [`crate::run`]).
//!
//! The port may face a network (`0.0.0.0`), so a peer must not be able to take the process
//! down through it: headers must arrive within [`Limits::header_read_timeout`] (an idle
//! keep-alive connection waiting for its next request is closed after the same time), a
//! connection lives at most [`Limits::max_connection_age`], and at most
//! [`Limits::max_connections`] are open at once. When a new connection would exceed that, the
//! *oldest* one is closed: peers that open connections and send nothing cannot starve the
//! kubelet's `/healthz` probe, which sends its request at once. The cap is also kept well
//! under the file-descriptor limit, so the poller's own sockets and the checkpoint's files
//! always find a descriptor.

use super::health::Health;
use crate::shutdown::Shutdown;
use crate::units::ListenError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

/// `/readyz` never calls progress stale sooner than this, however short `--interval` is: one
/// request under the client-side budget (60 s / `--max-requests-per-minute`) plus Slack's own
/// answer time must fit, or readiness would flap on every page.
pub const MIN_STALE_AFTER: Duration = Duration::from_secs(30);

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Most connections served at once, whatever the file-descriptor limit allows.
pub const MAX_CONNECTIONS: usize = 64;
/// A request's headers, or the next request on a kept-alive connection, must arrive within
/// this (Prometheus and the kubelet send theirs at once).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// No connection is served longer than this; a scraper keeping its connection alive simply
/// opens a new one.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(120);

/// What one peer may cost the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`MAX_CONNECTION_AGE`].
    pub max_connection_age: Duration,
    /// Connections open at once; beyond it the oldest is closed.
    pub max_connections: usize,
}

impl Default for Limits {
    /// [`MAX_CONNECTIONS`], but at most a quarter of the process's file-descriptor limit.
    fn default() -> Limits {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connection_age: MAX_CONNECTION_AGE,
            max_connections: MAX_CONNECTIONS.min((fd_limit() / 4).max(1)),
        }
    }
}

/// The soft limit on open files (a generous guess where it cannot be read).
fn fd_limit() -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given and nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            return usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX);
        }
    }
    1024
}

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
/// [`ListenError`] when the address cannot be bound or a recorder already exists.
pub async fn start_for_run(
    config: &super::ObservabilityConfig,
    interval: Duration,
    shutdown: Shutdown,
) -> Result<Option<MetricsServer>, ListenError> {
    let Some(addr) = config.metrics_listen else {
        return Ok(None);
    };
    let handle = install_recorder().map_err(|e| ListenError {
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

/// Binds `addr` and serves the endpoints until `shutdown`, with the default [`Limits`].
///
/// # Errors
///
/// [`ListenError`] when the address cannot be bound.
pub async fn start(
    addr: SocketAddr,
    endpoints: Endpoints,
    shutdown: Shutdown,
) -> Result<MetricsServer, ListenError> {
    start_with_limits(addr, endpoints, shutdown, Limits::default()).await
}

/// [`start`] with the limits given (tests use short ones).
///
/// # Errors
///
/// [`ListenError`] when the address cannot be bound.
pub async fn start_with_limits(
    addr: SocketAddr,
    endpoints: Endpoints,
    shutdown: Shutdown,
    limits: Limits,
) -> Result<MetricsServer, ListenError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ListenError {
        addr: addr.to_string(),
        source,
    })?;
    let task = tokio::spawn(serve(listener, endpoints, shutdown, limits));
    Ok(MetricsServer { addr: bound, task })
}

async fn serve(
    listener: TcpListener,
    endpoints: Endpoints,
    mut shutdown: Shutdown,
    limits: Limits,
) {
    // Connections live in the set so that they end with the listener (a scraper's
    // keep-alive connection must not keep the task alive after shutdown).
    let mut connections = JoinSet::new();
    // The open connections, oldest first, to close the oldest when the cap is reached.
    let mut open: VecDeque<AbortHandle> = VecDeque::new();
    let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
    let max = limits.max_connections.max(1);
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = upkeep.tick() => endpoints.handle.run_upkeep(),
            // Reap finished connections so the set does not grow.
            Some(done) = connections.join_next_with_id(), if !connections.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                open.retain(|h| h.id() != id);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    while open.len() >= max {
                        if let Some(oldest) = open.pop_front() {
                            // Its socket closes when the aborted task is dropped.
                            oldest.abort();
                        }
                    }
                    let endpoints = endpoints.clone();
                    let handle = connections.spawn(serve_connection(stream, endpoints, limits));
                    open.push_back(handle);
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

async fn serve_connection(stream: tokio::net::TcpStream, endpoints: Endpoints, limits: Limits) {
    let service = hyper::service::service_fn(move |req| {
        let endpoints = endpoints.clone();
        async move { Ok::<_, Infallible>(respond(&endpoints, &req)) }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        // Also bounds an idle keep-alive connection: the next request's headers are read
        // under the same timer.
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    match tokio::time::timeout(limits.max_connection_age, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "metrics connection ended with an error"),
        Err(_) => tracing::debug!("metrics connection closed at its maximum age"),
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn server(limits: Limits) -> MetricsServer {
        let endpoints = Endpoints {
            handle: super::super::recorder_builder().build_recorder().handle(),
            health: Box::leak(Box::new(Health::new())),
            stale_after: MIN_STALE_AFTER,
            clock: Arc::new(|| 1_800_000_000),
        };
        start_with_limits(
            "127.0.0.1:0".parse().unwrap(),
            endpoints,
            Shutdown::never(),
            limits,
        )
        .await
        .unwrap()
    }

    /// Reads until the server closes; what it sent.
    async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
        let mut buf = Vec::new();
        // A reset counts as closed too.
        let _ = s.read_to_end(&mut buf).await;
        buf
    }

    async fn healthz(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&until_closed(&mut s).await).into_owned()
    }

    /// Many peers that send half a request and wait: the oldest are closed as new ones come
    /// (the cap), the rest when their headers time out, and `/healthz` answers throughout.
    /// Paused time: the header timeout passes only when everything else is waiting.
    #[tokio::test(start_paused = true)]
    async fn half_requests_cannot_hold_the_listener() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(3600),
            max_connections: 8,
        };
        let srv = server(limits).await;
        let addr = srv.local_addr();
        let started = tokio::time::Instant::now();
        let mut peers = Vec::new();
        for _ in 0..40 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            peers.push(s);
        }
        let answer = tokio::time::timeout(Duration::from_secs(5), healthz(addr))
            .await
            .expect("/healthz answers while the listener is flooded");
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
            "{answer}"
        );
        let mut closed_before_timeout = 0;
        for p in &mut peers {
            let sent = tokio::time::timeout(Duration::from_secs(3600), until_closed(p))
                .await
                .expect("every half-request connection is closed");
            assert!(!String::from_utf8_lossy(&sent).contains("200 OK"));
            if started.elapsed() < limits.header_read_timeout {
                closed_before_timeout += 1;
            }
        }
        // The healthz probe took one of the 8 places: at least 32 of the 40 were closed by
        // the cap, without waiting for the timeout.
        assert!(closed_before_timeout >= 32, "{closed_before_timeout}");
    }

    /// A scraper's kept-alive connection that sends nothing more is closed after the header
    /// timeout, having been answered first.
    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed() {
        let srv = server(Limits {
            header_read_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(3600),
            max_connections: 8,
        })
        .await;
        let mut s = TcpStream::connect(srv.local_addr()).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let sent = tokio::time::timeout(Duration::from_secs(3600), until_closed(&mut s))
            .await
            .expect("the idle connection is closed");
        assert!(String::from_utf8_lossy(&sent).ends_with("ok\n"));
        assert!(started.elapsed() >= Duration::from_secs(10));
    }

    #[test]
    fn the_default_cap_leaves_most_descriptors_to_the_poller() {
        let limits = Limits::default();
        assert!(limits.max_connections <= MAX_CONNECTIONS);
        assert!(limits.max_connections <= (fd_limit() / 4).max(1));
    }

    #[test]
    fn stale_after_is_three_intervals_with_a_floor() {
        assert_eq!(
            stale_after(Duration::from_secs(60)),
            Duration::from_secs(180)
        );
        assert_eq!(stale_after(Duration::from_secs(1)), MIN_STALE_AFTER);
    }
}
