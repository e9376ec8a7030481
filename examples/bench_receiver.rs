//! A minimal NDJSON HTTP receiver for benchmarks: accepts POSTs like Vector's `http_server`,
//! counts lines, answers 200. `cargo run --release --example bench_receiver -- 127.0.0.1:0`
//! prints `listening on ADDR`; `GET /count` returns the number of lines received.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    let lines = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        let lines = lines.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
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
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}
