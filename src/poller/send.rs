//! The send task: owns the sink and sends the chunks it is given, in order, one at a time,
//! so that chunk j is sent while chunk j+1 is mapped.
//!
//! A send is never cancelled from here: a chunk in hand is finished (the HTTP sink gives up
//! after its grace period once shutdown comes), so stdout never gets half a line. When the
//! poller stops after an error, the task finishes the chunk it has and ends.

use crate::shutdown::Shutdown;
use crate::sink::{Batch, Error, Sink};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The poller's end of the send task.
#[derive(Debug)]
pub(super) struct Sender {
    chunks: mpsc::Sender<Batch>,
    acks: mpsc::Receiver<(Batch, Result<(), Error>, Duration)>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Whether a chunk was sent and its answer not yet taken.
    in_flight: bool,
    /// An emptied batch, for the next chunk to be mapped into.
    spare: Option<Batch>,
}

impl Sender {
    /// Starts the task; it owns `sink` from now on.
    pub(super) fn spawn(mut sink: Sink, mut shutdown: Shutdown) -> Sender {
        let (chunks, mut queued) = mpsc::channel::<Batch>(1);
        let (acked, acks) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            while let Some(batch) = queued.recv().await {
                let started = Instant::now();
                let result = sink.send(&batch, &mut shutdown).await;
                if acked
                    .send((batch, result, started.elapsed()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Sender {
            chunks,
            acks,
            task: Some(task),
            in_flight: false,
            spare: None,
        }
    }

    /// An empty batch to map a chunk into.
    pub(super) fn batch(&mut self) -> Batch {
        self.spare.take().unwrap_or_default()
    }

    /// Sends `batch` once the chunk before it is acknowledged; returns an empty batch for
    /// the next chunk.
    ///
    /// # Errors
    ///
    /// The sink's error for the chunk before: `batch` is then not sent.
    pub(super) async fn send(&mut self, batch: Batch) -> Result<Batch, Error> {
        self.acknowledged().await?;
        if self.chunks.send(batch).await.is_err() {
            match self.stopped().await {}
        }
        self.in_flight = true;
        Ok(self.batch())
    }

    /// Waits until the chunk in flight, if any, is acknowledged.
    ///
    /// # Errors
    ///
    /// The sink's error for it; the chunk is then not delivered (or not known to be).
    pub(super) async fn acknowledged(&mut self) -> Result<(), Error> {
        if !std::mem::take(&mut self.in_flight) {
            return Ok(());
        }
        let Some((mut batch, result, took)) = self.acks.recv().await else {
            match self.stopped().await {}
        };
        if let Err(e) = result {
            crate::metrics::error("sink", e.kind());
            return Err(e);
        }
        crate::metrics::sink_batch(batch.len(), took);
        batch.clear();
        self.spare = Some(batch);
        Ok(())
    }

    /// The task ended without being told to: it panicked. The panic goes on here, where the
    /// poller would otherwise move the checkpoint without knowing whether the chunk went out.
    async fn stopped(&mut self) -> std::convert::Infallible {
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
        panic!("the send task stopped without an answer")
    }
}
