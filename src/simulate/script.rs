//! Scripted replies to `/audit/v1/logs`: what a test needs that a fault probability cannot
//! give. This exact answer to request number n, these answers first, this answer for ever; and
//! bytes Slack would never send (gzip bombs, invalid UTF-8, a body cut anywhere).
//!
//! A scripted reply comes before faults and pages, and the request is recorded all the same
//! (with the status sent), so tests see every request the client made.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use std::collections::{HashMap, VecDeque};

/// One canned reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub(crate) status: u16,
    /// Extra headers, after `Content-Type: application/json`.
    pub headers: Vec<(String, String)>,
    /// The body, as sent.
    pub body: Vec<u8>,
}

impl Reply {
    /// A 200 with this body.
    pub fn ok(body: &str) -> Reply {
        Reply::status(200, body)
    }

    /// A 200 with these bytes as the body, as they are.
    pub fn bytes(body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }

    /// A 200 whose body is `decoded` gzipped, with `Content-Encoding: gzip`.
    pub fn gzip(decoded: &[u8]) -> Reply {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        // Writing into memory cannot fail.
        let _ = enc.write_all(decoded);
        Reply {
            status: 200,
            headers: vec![("content-encoding".into(), "gzip".into())],
            body: enc.finish().unwrap_or_default(),
        }
    }

    /// Any status and body.
    pub fn status(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// A Slack error code in a 200 `ok:false` body.
    pub fn error(code: &str) -> Reply {
        Reply::ok(&serde_json::json!({"ok": false, "error": code}).to_string())
    }

    /// A 429 with `Retry-After: secs`.
    pub fn rate_limited(secs: u64) -> Reply {
        Reply::status(429, r#"{"ok":false,"error":"ratelimited"}"#)
            .with_header("retry-after", &secs.to_string())
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The HTTP response; a header or status hyper refuses is left out (500 for a status).
    pub(crate) fn to_response(&self) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(Bytes::from(self.body.clone())));
        *r.status_mut() = hyper::StatusCode::from_u16(self.status)
            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = r.headers_mut();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                hyper::header::HeaderName::from_bytes(name.as_bytes()),
                hyper::header::HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        r
    }
}

/// The replies waiting, and how many `/logs` requests came so far.
#[derive(Debug, Default)]
pub(crate) struct Script {
    /// Answered in order, one per request, before any page.
    queue: VecDeque<Reply>,
    /// Request number (from 0, every `/logs` request counted) → its reply; before `queue`.
    at: HashMap<usize, Reply>,
    /// Answers every request that nothing above answers.
    always: Option<Reply>,
    /// `/logs` requests so far.
    pub(crate) seen: usize,
}

impl Script {
    /// Counts one request; its scripted reply, if it has one.
    pub(crate) fn next(&mut self) -> Option<Reply> {
        let index = self.seen;
        self.seen += 1;
        self.at
            .remove(&index)
            .or_else(|| self.queue.pop_front())
            .or_else(|| self.always.clone())
    }

    pub(crate) fn push(&mut self, replies: impl IntoIterator<Item = Reply>) {
        self.queue.extend(replies);
    }

    pub(crate) fn set_at(&mut self, index: usize, reply: Reply) {
        self.at.insert(index, reply);
    }

    pub(crate) fn set_always(&mut self, reply: Option<Reply>) {
        self.always = reply;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_replies_come_first_then_the_queue_then_always() {
        let mut s = Script::default();
        s.push([Reply::error("a"), Reply::error("b")]);
        s.set_at(1, Reply::error("at1"));
        assert_eq!(s.next(), Some(Reply::error("a")));
        assert_eq!(s.next(), Some(Reply::error("at1")));
        assert_eq!(s.next(), Some(Reply::error("b")));
        assert_eq!(s.next(), None);
        s.set_always(Some(Reply::status(503, "")));
        assert_eq!(s.next(), Some(Reply::status(503, "")));
        assert_eq!(s.next(), Some(Reply::status(503, "")));
        assert_eq!(s.seen, 6);
    }

    #[test]
    fn a_gzip_reply_says_so_and_decodes_to_its_text() {
        use std::io::Read;
        let r = Reply::gzip(b"{\"ok\":true}");
        assert!(r
            .headers
            .contains(&("content-encoding".into(), "gzip".into())));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&r.body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"ok\":true}");
    }
}
