//! What to do about a receiver's answer: one pure decision, kept apart from the backoff and
//! the I/O (as Vector's `RetryLogic`).
//!
//! - 2xx: delivered.
//! - 429: wait for `Retry-After` (capped), or back off when it is absent.
//! - 408, 5xx, transport errors and timeouts: back off (503 may carry `Retry-After` too).
//! - anything else (other 4xx, 3xx: redirects are not followed, a POST must not turn into a
//!   GET): give up, so the process stops and the checkpoint stays where it is.

use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::time::Duration;

/// The decision about one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The receiver has the request.
    Delivered,
    /// Try again; `wait` is the receiver's own `Retry-After`, when it gave one.
    Retry {
        /// A bounded label for metrics and logs.
        kind: &'static str,
        /// `Retry-After`, if any (not yet capped).
        wait: Option<Duration>,
    },
    /// Retrying cannot help.
    Reject,
}

/// Classifies a status and its headers.
pub(crate) fn classify(status: u16, headers: &HeaderMap) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        429 => Verdict::Retry {
            kind: "http_429",
            wait: retry_after(headers),
        },
        408 => Verdict::Retry {
            kind: "http_408",
            wait: None,
        },
        500..=599 => Verdict::Retry {
            kind: "http_5xx",
            wait: retry_after(headers),
        },
        _ => Verdict::Reject,
    }
}

/// `Retry-After` as seconds or an HTTP date; `None` when absent or unreadable. Parsed by the
/// parser the Slack client uses too ([`crate::retry::parse_retry_after`]); not capped here:
/// the sink clamps every wait to its own backoff bounds when it uses it.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    crate::retry::parse_retry_after(v, chrono::Utc::now(), Duration::MAX)
}

/// The start of a receiver's answer, on one line, for an error message.
pub(crate) fn snippet(body: &[u8]) -> String {
    crate::text::snippet(body, crate::text::RECEIVER_SNIPPET)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn with_retry_after(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn success_codes_are_delivered() {
        for s in [200, 201, 202, 204] {
            assert_eq!(classify(s, &HeaderMap::new()), Verdict::Delivered, "{s}");
        }
    }

    #[test]
    fn overload_and_server_errors_are_retried() {
        assert_eq!(
            classify(429, &with_retry_after("7")),
            Verdict::Retry {
                kind: "http_429",
                wait: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(429, &HeaderMap::new()),
            Verdict::Retry {
                kind: "http_429",
                wait: None
            }
        );
        assert_eq!(
            classify(408, &HeaderMap::new()),
            Verdict::Retry {
                kind: "http_408",
                wait: None
            }
        );
        for s in [500, 502, 503, 504] {
            assert!(
                matches!(
                    classify(s, &HeaderMap::new()),
                    Verdict::Retry {
                        kind: "http_5xx",
                        ..
                    }
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn other_client_errors_and_redirects_are_rejected() {
        for s in [301, 302, 400, 401, 403, 404, 413, 415] {
            assert_eq!(classify(s, &HeaderMap::new()), Verdict::Reject, "{s}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(&with_retry_after("1.5")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(retry_after(&with_retry_after("soon")), None);
        assert_eq!(retry_after(&with_retry_after("-3")), None);
        // Larger than a Duration can hold: no panic, the longest wait (clamped when used).
        for huge in ["1e20", "18446744073709551616"] {
            assert_eq!(retry_after(&with_retry_after(huge)), Some(Duration::MAX));
            assert!(matches!(
                classify(429, &with_retry_after(huge)),
                Verdict::Retry { wait: Some(_), .. }
            ));
        }
        // A date in the past means "now".
        assert_eq!(
            retry_after(&with_retry_after("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO)
        );
        let future = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let h = {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(&future).unwrap());
            h
        };
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
    }
}
