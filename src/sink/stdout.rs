//! NDJSON on standard output, flushed per chunk.
//!
//! A failed write (the shipper closed the pipe) is irrecoverable: the error stops the process
//! and the checkpoint stays where it was, so the page comes again on the next start.

use super::{Batch, Error};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes batches to any async writer (stdout, or a buffer in tests).
pub(crate) struct StdoutSink {
    out: Box<dyn AsyncWrite + Send + Unpin>,
}

impl StdoutSink {
    /// A sink on the process's stdout.
    pub(crate) fn stdout() -> StdoutSink {
        StdoutSink {
            out: Box::new(tokio::io::stdout()),
        }
    }

    /// A sink on any writer.
    pub(crate) fn new(out: impl AsyncWrite + Send + Unpin + 'static) -> StdoutSink {
        StdoutSink { out: Box::new(out) }
    }

    /// Writes and flushes the batch.
    ///
    /// # Errors
    ///
    /// [`Error::Stdout`] on any write or flush failure.
    pub(crate) async fn send(&mut self, batch: &Batch) -> Result<(), Error> {
        self.out
            .write_all(batch.bytes())
            .await
            .map_err(Error::Stdout)?;
        self.out.flush().await.map_err(Error::Stdout)
    }
}

/// A writer whose bytes tests can read while the pipeline runs.
#[derive(Debug, Clone, Default)]
pub struct SharedWriter(pub(crate) Arc<Mutex<Vec<u8>>>);

impl SharedWriter {
    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl AsyncWrite for SharedWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn writes_one_document_a_line() {
        let w = SharedWriter::default();
        let mut sink = StdoutSink::new(w.clone());
        let mut b = Batch::new();
        b.push(&json!({"a": 1}));
        b.push(&json!({"b": "x\ny"}));
        sink.send(&b).await.unwrap();
        assert_eq!(
            String::from_utf8(w.contents()).unwrap(),
            "{\"a\":1}\n{\"b\":\"x\\ny\"}\n"
        );
    }

    struct Broken;
    impl AsyncWrite for Broken {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_broken_pipe_is_an_error() {
        let mut sink = StdoutSink::new(Broken);
        let mut b = Batch::new();
        b.push(&json!({}));
        assert!(matches!(sink.send(&b).await, Err(Error::Stdout(_))));
    }
}
