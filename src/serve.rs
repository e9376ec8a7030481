//! The one HTTP/1.1 accept loop: the metrics listener, the simulator and the test receivers
//! all serve through it.
//!
//! It binds, accepts, runs each connection as its own task, and stops when shutdown is asked
//! for or its [`Server`] handle is dropped; the open connections end with it (a kept-alive or
//! stalled connection never outlives the loop). What one peer may cost is a [`Limits`]: the
//! metrics listener faces a network and uses `Limits::bounded`; a server reached only over
//! loopback by the process's own tests uses [`Limits::none`].
//!
//! When a new connection would exceed `Limits::max_connections`, the *oldest* open one is
//! closed: peers that open connections and send nothing cannot starve a peer that sends its
//! request at once (the kubelet's `/healthz` probe).

use crate::shutdown::Shutdown;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

/// How long the loop pauses after a failed accept (out of file descriptors and the like),
/// rather than spinning.
const ACCEPT_PAUSE: Duration = Duration::from_millis(250);

/// What one peer may cost a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers, or the next request on a kept-alive connection, must arrive
    /// within this; `None` waits for ever.
    pub(crate) header_read_timeout: Option<Duration>,
    /// No connection is served longer than this; `None` serves it for as long as it lasts.
    pub(crate) max_connection_age: Option<Duration>,
    /// Connections open at once; beyond it the oldest is closed.
    pub(crate) max_connections: usize,
    /// Largest read buffer of a connection (bounds a request's headers); `None` is hyper's.
    pub(crate) max_buf_size: Option<usize>,
}

impl Limits {
    /// No limits: for servers reached over loopback by their own process (the simulator, the
    /// test receivers), where a long stall is the point and nobody hostile connects.
    pub const fn none() -> Limits {
        Limits {
            header_read_timeout: None,
            max_connection_age: None,
            max_connections: usize::MAX,
            max_buf_size: None,
        }
    }

    /// Limits for a port that may face a network, with a 64 KiB read buffer.
    pub(crate) const fn bounded(
        header_read_timeout: Duration,
        max_connection_age: Duration,
        max_connections: usize,
    ) -> Limits {
        Limits {
            header_read_timeout: Some(header_read_timeout),
            max_connection_age: Some(max_connection_age),
            max_connections,
            max_buf_size: Some(64 * 1024),
        }
    }
}

/// A running accept loop; dropping it stops the loop and closes its connections.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr`.
///
/// # Errors
///
/// [`crate::Error::Listen`] naming the address when it cannot be bound.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::units::ListenError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| crate::units::ListenError {
            addr: addr.to_string(),
            source,
        })
}

/// Serves `handler` over HTTP/1.1 on `listener` until `shutdown`, under `limits`. `name` says
/// whose loop it is in the warning logged when accepting fails.
pub fn spawn<H, F, B>(
    listener: TcpListener,
    shutdown: Shutdown,
    limits: Limits,
    name: &'static str,
    handler: H,
) -> Server
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    spawn_connections(listener, shutdown, limits, name, move |stream| {
        let handler = handler.clone();
        http1(stream, limits, move |req| {
            let answer = handler(req);
            async move { Ok::<_, Infallible>(answer.await) }
        })
    })
}

/// As [`spawn`], but each accepted stream goes to `connection`, which serves it in full (a
/// TLS test receiver does its handshake there, then calls [`http1`]).
pub fn spawn_connections<C, F>(
    listener: TcpListener,
    shutdown: Shutdown,
    limits: Limits,
    name: &'static str,
    connection: C,
) -> Server
where
    C: FnMut(TcpStream) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    // A listener whose address cannot be read is unusable anyway; 0.0.0.0:0 shows that.
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let task = tokio::spawn(accept_loop(
        listener,
        shutdown,
        limits.max_connections,
        name,
        connection,
    ));
    Server { addr, task }
}

/// Accepts until `shutdown`, each connection a task of its own, at most `max_connections`
/// open (the oldest closed first). The connections live in a set dropped on the way out, so
/// they end with the loop.
pub async fn accept_loop<C, F>(
    listener: TcpListener,
    mut shutdown: Shutdown,
    max_connections: usize,
    name: &'static str,
    mut connection: C,
) where
    C: FnMut(TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    // The open connections, oldest first, to close the oldest when the cap is reached.
    let mut open: VecDeque<AbortHandle> = VecDeque::new();
    let max = max_connections.max(1);
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
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
                    open.push_back(connections.spawn(connection(stream)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, server = name, "cannot accept a connection; retrying");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
            },
        }
    }
}

/// Serves HTTP/1.1 on one connection (plain or TLS) under `limits`' timeouts and buffer size.
/// A handler's `Err` closes the connection without an answer (a test receiver hanging up).
/// A connection that ends in an error, a peer hanging up mid-answer say, is the peer's
/// business: it is logged at debug level only.
pub async fn http1<S, H, F, B, E>(io: S, limits: Limits, handler: H)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = hyper::service::service_fn(handler);
    let mut builder = hyper::server::conn::http1::Builder::new();
    if let Some(timeout) = limits.header_read_timeout {
        // Also bounds an idle keep-alive connection: the next request's headers are read
        // under the same timer.
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(timeout);
    }
    if let Some(size) = limits.max_buf_size {
        builder.max_buf_size(size);
    }
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let ended = match limits.max_connection_age {
        Some(age) => match tokio::time::timeout(age, conn).await {
            Ok(ended) => ended,
            Err(_) => {
                tracing::debug!("connection closed at its maximum age");
                return;
            }
        },
        None => conn.await,
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
