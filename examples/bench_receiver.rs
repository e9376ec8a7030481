//! A minimal NDJSON HTTP receiver for benchmarks: accepts POSTs like Vector's `http_server`,
//! counts lines, answers 200. `cargo run --release --example bench_receiver -- 127.0.0.1:0`
//! prints `listening on ADDR`; `GET /count` returns the number of lines received. Served by
//! the library's accept loop, without limits.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use slack_audit_source::serve;
use slack_audit_source::shutdown::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let listener = serve::bind(addr)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    eprintln!("listening on {}", listener.local_addr()?);
    let lines = Arc::new(AtomicU64::new(0));
    let (_trigger, never) = Shutdown::new();
    serve::accept_loop(
        listener,
        never,
        usize::MAX,
        "bench receiver",
        move |stream| {
            let lines = lines.clone();
            serve::http1(
                stream,
                serve::Limits::none(),
                move |req: hyper::Request<hyper::body::Incoming>| {
                    let lines = lines.clone();
                    async move {
                        if req.uri().path() == "/count" {
                            let n = lines.load(Ordering::Relaxed).to_string();
                            return Ok::<_, hyper::Error>(hyper::Response::new(Full::new(
                                Bytes::from(n),
                            )));
                        }
                        let body = req.into_body().collect().await?.to_bytes();
                        let n = body.iter().filter(|b| **b == b'\n').count() as u64;
                        lines.fetch_add(n, Ordering::Relaxed);
                        Ok(hyper::Response::new(Full::new(Bytes::new())))
                    }
                },
            )
        },
    )
    .await;
    Ok(())
}
