//! One HTTP listener for `/metrics`, `/healthz` and `/readyz` (the pod's probes and the
//! Prometheus scrape share a port, so the chart exposes one).
//!
//! Served through the crate's one accept loop ([`crate::serve`]) rather than the exporter's
//! own listener, which knows only `/metrics`. The listener stops when shutdown is asked for, or when the [`MetricsServer`]
//! handle is dropped (so it never outlives [`crate::run`]).
//!
//! The port may face a network (`0.0.0.0`), so a peer must not be able to take the process
//! down through it: headers must arrive within `Limits::header_read_timeout` (an idle
//! keep-alive connection waiting for its next request is closed after the same time), a
//! connection lives at most `Limits::max_connection_age`, and at most
//! `Limits::max_connections` are open at once (`default_limits`). When a new connection
//! would exceed that, the *oldest* one is closed: peers that open connections and send nothing
//! cannot starve the kubelet's `/healthz` probe, which sends its request at once. The cap is also kept well
//! under the file-descriptor limit, so the poller's own sockets and the checkpoint's files
//! always find a descriptor.

use super::health::Health;
use crate::shutdown::Shutdown;
use crate::units::ListenError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::task::JoinHandle;

/// `/readyz` never calls progress stale sooner than this, however short `--interval` is: one
/// request under the client-side budget (60 s / `--max-requests-per-minute`) plus Slack's own
/// answer time must fit, or readiness would flap on every page.
pub(crate) const MIN_STALE_AFTER: Duration = Duration::from_secs(30);

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Most connections served at once, whatever the file-descriptor limit allows.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// A request's headers, or the next request on a kept-alive connection, must arrive within
/// this (Prometheus and the kubelet send theirs at once).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// No connection is served longer than this; a scraper keeping its connection alive simply
/// opens a new one.
pub(crate) const MAX_CONNECTION_AGE: Duration = Duration::from_secs(120);

pub(crate) use crate::serve::Limits;

/// The limits of this listener: [`HEADER_READ_TIMEOUT`], [`MAX_CONNECTION_AGE`], and
/// [`MAX_CONNECTIONS`] but at most a quarter of the process's file-descriptor limit.
pub(crate) fn default_limits() -> Limits {
    Limits::bounded(
        HEADER_READ_TIMEOUT,
        MAX_CONNECTION_AGE,
        MAX_CONNECTIONS.min((fd_limit() / 4).max(1)),
    )
}

/// The soft limit on open files (a generous guess where it cannot be read).
fn fd_limit() -> usize {
    #[cfg(unix)]
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
pub(crate) type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

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
    server: crate::serve::Server,
    upkeep: JoinHandle<()>,
}

impl MetricsServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        // The listener stops when `server` drops, right after this.
        self.upkeep.abort();
    }
}

/// How long `/readyz` tolerates no progress: three poll intervals, at least `MIN_STALE_AFTER`.
pub fn stale_after(interval: Duration) -> Duration {
    (interval * 3).max(MIN_STALE_AFTER)
}

/// Installs the process-wide Prometheus recorder once and describes every metric.
///
/// # Errors
///
/// A message when another recorder was installed first (a library embedding us).
pub(crate) fn install_recorder() -> Result<PrometheusHandle, String> {
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
pub(crate) async fn start_for_run(
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

/// Binds `addr` and serves the endpoints until `shutdown`, with `default_limits`.
///
/// # Errors
///
/// `ListenError` when the address cannot be bound.
pub async fn start(
    addr: SocketAddr,
    endpoints: Endpoints,
    shutdown: Shutdown,
) -> Result<MetricsServer, ListenError> {
    start_with_limits(addr, endpoints, shutdown, default_limits()).await
}

/// [`start`] with the limits given (tests use short ones).
///
/// # Errors
///
/// [`ListenError`] when the address cannot be bound.
pub(crate) async fn start_with_limits(
    addr: SocketAddr,
    endpoints: Endpoints,
    shutdown: Shutdown,
    limits: Limits,
) -> Result<MetricsServer, ListenError> {
    let listener = crate::serve::bind(addr).await?;
    let upkeep = tokio::spawn(upkeep(endpoints.handle.clone(), shutdown.clone()));
    let server = crate::serve::spawn(listener, shutdown, limits, "metrics", move |req| {
        let answer = respond(&endpoints, &req);
        async move { answer }
    });
    Ok(MetricsServer { server, upkeep })
}

/// Folds histogram samples into their buckets every [`UPKEEP_EVERY`] until `shutdown`.
async fn upkeep(handle: PrometheusHandle, mut shutdown: Shutdown) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = every.tick() => handle.run_upkeep(),
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
        let limits = Limits::bounded(Duration::from_secs(10), Duration::from_secs(3600), 8);
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
            if Some(started.elapsed()) < limits.header_read_timeout {
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
        let srv = server(Limits::bounded(
            Duration::from_secs(10),
            Duration::from_secs(3600),
            8,
        ))
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
        let limits = default_limits();
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
