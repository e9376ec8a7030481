//! Text for messages: the start of a body (or a cursor, or a header) on one short line.
//!
//! A leaf: it imports nothing of this crate, so the Slack client, the HTTP sink and the poller
//! share it without an import circle.

/// Slack's answers are quoted this far in errors: an HTML error page's title fits.
pub(crate) const SLACK_SNIPPET: usize = 160;
/// A receiver's answer is quoted this far: Vector's and Fluent Bit's error bodies fit whole.
pub(crate) const RECEIVER_SNIPPET: usize = 512;
/// A cursor in a log line: enough to tell two apart.
pub(crate) const CURSOR_SNIPPET: usize = 40;

/// The first `max` bytes of `body`, on one line, for a message: invalid UTF-8 replaced,
/// control characters (newlines) as spaces, trimmed, `…` when cut, `(empty body)` for nothing.
/// Only the first `max` bytes are read, so a large body costs nothing here.
pub(crate) fn snippet(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(max)]);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut s = one_line.trim().to_string();
    if body.len() > max {
        s.push('…');
    }
    if s.is_empty() {
        s = "(empty body)".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_short_and_on_one_line() {
        assert_eq!(snippet(b"bad\nrequest\r\n", 512), "bad request");
        assert_eq!(snippet(b"", 512), "(empty body)");
        let long = vec![b'a'; 2000];
        assert_eq!(snippet(&long, 512).chars().count(), 513);
        let html = format!("<html>\n<body>{}</body></html>", "x".repeat(500));
        let s = snippet(html.as_bytes(), SLACK_SNIPPET);
        assert!(!s.contains('\n') && s.ends_with('…') && s.chars().count() <= 161);
        assert_eq!(snippet(b"abcdef", 3), "abc…");
    }

    #[test]
    fn a_cut_inside_a_character_does_not_panic() {
        assert_eq!(snippet("é".as_bytes(), 1), "\u{fffd}…");
    }
}
