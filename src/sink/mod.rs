//! Delivery: a chunk of a page's documents as NDJSON, to stdout or a shipper's HTTP input.
//!
//! `Sink::send` returns only when the whole batch is safe (flushed to stdout, or every HTTP
//! request acknowledged with a 2xx); the poller moves the checkpoint after that and only then.

pub mod http;
pub mod stdout;

use crate::shutdown::Shutdown;

/// A chunk of a page's documents, serialised once as NDJSON lines.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Empties the batch, keeping its memory for the next one.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    /// Appends one document (a `serde_json::Value`, or the pipeline's tree) as a line.
    pub fn push(&mut self, doc: &(impl crate::doc::Doc + serde::Serialize)) {
        // Serialising a document into a Vec cannot fail: no I/O, map keys are strings, and
        // numbers are serde_json's own.
        serde_json::to_writer(&mut self.buf, doc)
            .expect("serialising a JSON document to memory cannot fail");
        self.buf.push(b'\n');
        self.ends.push(self.buf.len());
    }

    /// Appends one line that `write` produces as JSON text (without the newline), returning
    /// what `write` returns. For documents written straight to text, with no JSON value.
    pub(crate) fn push_with<T>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        let r = write(&mut self.buf);
        self.buf.push(b'\n');
        self.ends.push(self.buf.len());
        r
    }

    /// All lines, each ending in `\n`.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Number of documents.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there is no document.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The lines, each with its trailing `\n`.
    pub(crate) fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let line = &self.buf[start..end];
            start = end;
            line
        })
    }
}

/// Why a batch was not delivered. The checkpoint does not move after any of these.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing or flushing stdout failed (a broken pipe: the shipper is gone).
    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] std::io::Error),
    /// The receiver refused a batch with a 4xx that retrying cannot fix.
    #[error("the HTTP receiver {url} refused a batch with HTTP {status}: {body}")]
    Rejected {
        /// The receiver.
        url: String,
        /// Its status.
        status: u16,
        /// The start of its answer.
        body: String,
    },
    /// The receiver's TLS certificate failed verification. Unlike a refused connection this
    /// does not mend by waiting (the certificate, our trust store or the URL must change), so
    /// it stops the process instead of retrying forever behind a warning.
    #[error("the HTTP receiver {url} has a TLS certificate that cannot be verified: {reason} (hint: {hint})")]
    Certificate {
        /// The receiver.
        url: String,
        /// What the verifier said.
        reason: String,
        /// What the operator can change.
        hint: &'static str,
    },
    /// Shutdown came while the receiver was down; the batch was not acknowledged.
    #[error("shut down before the HTTP receiver acknowledged the batch")]
    Interrupted,
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP sink: {0}")]
    Setup(String),
}

impl Error {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Stdout(_) => "stdout",
            Error::Rejected { .. } => "rejected",
            Error::Certificate { .. } => "certificate",
            Error::Interrupted => "interrupted",
            Error::Setup(_) => "setup",
        }
    }
}

/// Where batches go.
pub(crate) enum Sink {
    /// NDJSON on stdout (or an injected writer).
    Stdout(stdout::StdoutSink),
    /// NDJSON POSTed to a shipper.
    Http(http::HttpSink),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Stdout(_) => f.write_str("Sink::Stdout"),
            Sink::Http(_) => f.write_str("Sink::Http"),
        }
    }
}

impl Sink {
    /// Delivers a batch; returns once it is safe.
    ///
    /// # Errors
    ///
    /// See [`Error`]; the batch is then not delivered (or not known to be).
    pub(crate) async fn send(
        &mut self,
        batch: &Batch,
        shutdown: &mut Shutdown,
    ) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Stdout(s) => s.send(batch).await,
            Sink::Http(s) => s.send(batch, shutdown).await,
        }
    }
}
