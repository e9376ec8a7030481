//! Cutting a page's [`Batch`] into requests, and encoding each request body.
//!
//! A request holds whole lines, in order, at most `max_events` of them and at most
//! `max_bytes` of NDJSON before compression. A single document larger than `max_bytes` is
//! never split (a half document is no document) nor dropped (that would lose an event): it
//! goes alone in its own request, and the receiver decides. Pure functions, no I/O.

use super::config::Compression;
use crate::sink::Batch;
use bytes::Bytes;
use std::io::Write;
use std::ops::Range;

/// One request's share of a batch: a contiguous run of lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Byte range in [`Batch::bytes`].
    pub(crate) bytes: Range<usize>,
    /// Number of documents.
    pub(crate) events: usize,
}

/// Splits `batch` into chunks of at most `max_events` lines and `max_bytes` bytes, in order;
/// a line longer than `max_bytes` forms a chunk on its own.
pub(crate) fn split(batch: &Batch, max_events: usize, max_bytes: usize) -> Vec<Chunk> {
    let max_events = max_events.max(1);
    let mut chunks = Vec::new();
    let mut current = Chunk {
        bytes: 0..0,
        events: 0,
    };
    for line in batch.lines() {
        let len = line.len();
        let fits = current.events < max_events && current.bytes.len() + len <= max_bytes;
        if current.events > 0 && !fits {
            let start = current.bytes.end;
            chunks.push(std::mem::replace(
                &mut current,
                Chunk {
                    bytes: start..start,
                    events: 0,
                },
            ));
        }
        current.bytes.end += len;
        current.events += 1;
    }
    if current.events > 0 {
        chunks.push(current);
    }
    chunks
}

/// The body of a request: the chunk's bytes, compressed if asked.
///
/// # Errors
///
/// Only if gzip fails writing to memory, which does not happen in practice; reported rather
/// than unwrapped so the loop never panics.
pub(crate) fn encode(
    page: &Bytes,
    chunk: &Chunk,
    compression: Compression,
) -> std::io::Result<Bytes> {
    let raw = page.slice(chunk.bytes.clone());
    match compression {
        Compression::None => Ok(raw),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len() / 4),
                flate2::Compression::default(),
            );
            gz.write_all(&raw)?;
            Ok(Bytes::from(gz.finish()?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(sizes: &[usize]) -> Batch {
        let mut b = Batch::new();
        for (i, n) in sizes.iter().enumerate() {
            // {"i":N,"p":"xxx"} plus '\n': pad so each line is exactly n bytes.
            let base = serde_json::to_vec(&json!({"i": i, "p": ""})).unwrap().len() + 1;
            b.push(&json!({"i": i, "p": "x".repeat(n - base)}));
        }
        b
    }

    fn events(chunks: &[Chunk]) -> Vec<usize> {
        chunks.iter().map(|c| c.events).collect()
    }

    #[test]
    fn splits_by_event_count_in_order() {
        let b = batch(&[20; 7]);
        let chunks = split(&b, 3, 1 << 20);
        assert_eq!(events(&chunks), vec![3, 3, 1]);
        assert_eq!(chunks[0].bytes, 0..60);
        assert_eq!(chunks[1].bytes, 60..120);
        assert_eq!(chunks[2].bytes, 120..140);
    }

    #[test]
    fn splits_by_bytes_without_cutting_a_line() {
        let b = batch(&[40, 40, 40, 30, 50]);
        let chunks = split(&b, 100, 100);
        assert_eq!(events(&chunks), vec![2, 2, 1]);
        assert!(chunks.iter().all(|c| c.bytes.len() <= 100));
        // Contiguous and complete: every byte of the batch is in exactly one chunk.
        assert_eq!(chunks.first().unwrap().bytes.start, 0);
        assert_eq!(chunks.last().unwrap().bytes.end, b.bytes().len());
        assert!(chunks
            .windows(2)
            .all(|w| w[0].bytes.end == w[1].bytes.start));
    }

    #[test]
    fn an_oversized_document_goes_alone() {
        let b = batch(&[30, 250, 30, 30]);
        let chunks = split(&b, 100, 100);
        assert_eq!(events(&chunks), vec![1, 1, 2]);
        assert_eq!(chunks[1].bytes.len(), 250);
    }

    #[test]
    fn exact_fit_stays_together_and_empty_batch_has_no_chunk() {
        assert_eq!(events(&split(&batch(&[50, 50]), 10, 100)), vec![2]);
        assert!(split(&Batch::new(), 10, 100).is_empty());
    }

    #[test]
    fn gzip_round_trips() {
        let b = batch(&[40, 40, 40]);
        let page = Bytes::copy_from_slice(b.bytes());
        let chunk = Chunk {
            bytes: 40..120,
            events: 2,
        };
        let body = encode(&page, &chunk, Compression::Gzip).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out).unwrap();
        assert_eq!(out, &b.bytes()[40..120]);
        assert_eq!(
            encode(&page, &chunk, Compression::None).unwrap(),
            &b.bytes()[40..120]
        );
    }
}
