//! Slack's two clocks → `@timestamp` text.
//!
//! `date_create` is Unix seconds; `details.action_timestamp`, when present, is more precise and
//! wins. Slack sends it in milliseconds (13 digits) or microseconds (16 digits); like Elastic
//! (changelog 1.7.1) anything above 1e13 is read as microseconds, and that precision is kept
//! in the output. Formatting is done by hand: it runs once per document and chrono's general
//! formatter costs more than the rest of the timestamp handling together.

use super::tree::Node;
use chrono::{DateTime, Datelike, Timelike, Utc};

/// Values above this are microseconds, below it milliseconds (1e13 ms is the year 2286).
const MICROS_THRESHOLD: f64 = 1e13;

/// An instant and the number of fractional digits it deserves in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Instant {
    /// Microseconds since the Unix epoch.
    pub(crate) micros: i64,
    /// 3 for second or millisecond sources, 6 for microsecond sources.
    pub(crate) digits: u8,
}

/// How a numeric field was read: a number as expected, or a number found inside a string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Numeric {
    /// A JSON number.
    Number(f64),
    /// A JSON string holding a number: usable, but worth reporting.
    Quoted(f64),
}

/// Reads a JSON number, or a string holding one. `None` for anything else.
pub(crate) fn read_numeric(v: &Node<'_>) -> Option<Numeric> {
    match v {
        Node::Number(n) => n
            .as_i64()
            .map(|i| i as f64)
            .or_else(|| n.as_f64())
            .map(Numeric::Number),
        Node::Str(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Numeric::Quoted),
        _ => None,
    }
}

/// `date_create` (Unix seconds, possibly fractional) → instant; `None` when out of range.
pub(crate) fn from_unix_seconds(secs: f64) -> Option<Instant> {
    let micros = secs * 1e6;
    in_range(micros).map(|micros| Instant { micros, digits: 3 })
}

/// `action_timestamp` → instant: above 1e13 microseconds, otherwise milliseconds.
pub(crate) fn from_action_timestamp(value: f64) -> Option<Instant> {
    if value > MICROS_THRESHOLD {
        in_range(value).map(|micros| Instant { micros, digits: 6 })
    } else {
        in_range(value * 1e3).map(|micros| Instant { micros, digits: 3 })
    }
}

/// Integer microseconds when chrono can represent them (years 0..=9999 keep RFC 3339 valid).
fn in_range(micros: f64) -> Option<i64> {
    // -62_135_596_800 s is 0001-01-01 and 253_402_300_799 s is 9999-12-31T23:59:59.
    let ok = micros.is_finite() && (-62_135_596_800e6..=253_402_300_799e6).contains(&micros);
    ok.then(|| micros.round() as i64)
}

/// Formats as RFC 3339 UTC with `digits` fractional digits, e.g. `2018-03-16T15:32:23.000Z`.
pub(crate) fn format(instant: Instant) -> String {
    let Some(t) = DateTime::<Utc>::from_timestamp_micros(instant.micros) else {
        // Unreachable for instants built by this module (range-checked above); a fixed epoch
        // keeps the function total instead of panicking inside the poll loop.
        return "1970-01-01T00:00:00.000Z".to_string();
    };
    format_datetime(&t, instant.digits)
}

/// Formats a chrono time the same way (used for `event.created`).
pub(crate) fn format_datetime(t: &DateTime<Utc>, digits: u8) -> String {
    let mut s = String::with_capacity(27);
    push_padded(&mut s, t.year().max(0) as u32, 4);
    s.push('-');
    push_padded(&mut s, t.month(), 2);
    s.push('-');
    push_padded(&mut s, t.day(), 2);
    s.push('T');
    push_padded(&mut s, t.hour(), 2);
    s.push(':');
    push_padded(&mut s, t.minute(), 2);
    s.push(':');
    push_padded(&mut s, t.second(), 2);
    s.push('.');
    // Leap seconds show as nanosecond values ≥ 1e9 in chrono; clamp them into the same second.
    let nanos = t.nanosecond().min(999_999_999);
    if digits == 6 {
        push_padded(&mut s, nanos / 1_000, 6);
    } else {
        push_padded(&mut s, nanos / 1_000_000, 3);
    }
    s.push('Z');
    s
}

fn push_padded(s: &mut String, value: u32, width: u32) {
    let mut div = 10u32.pow(width - 1);
    let mut v = value % (div * 10);
    while div > 0 {
        s.push(char::from(b'0' + (v / div) as u8));
        v %= div;
        div /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> Node<'_> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn seconds_format_with_milliseconds() {
        let t = from_unix_seconds(1_521_214_343.0).unwrap();
        assert_eq!(format(t), "2018-03-16T15:32:23.000Z");
    }

    #[test]
    fn thirteen_digit_action_timestamp_is_milliseconds() {
        let t = from_action_timestamp(1_673_631_621_862.0).unwrap();
        assert_eq!(format(t), "2023-01-13T17:40:21.862Z");
    }

    #[test]
    fn sixteen_digit_action_timestamp_keeps_microseconds() {
        let t = from_action_timestamp(1_689_249_716_345_113.0).unwrap();
        assert_eq!(format(t), "2023-07-13T12:01:56.345113Z");
        // A whole-millisecond value from a microsecond source still shows six digits.
        let t = from_action_timestamp(1_689_249_716_345_000.0).unwrap();
        assert_eq!(format(t), "2023-07-13T12:01:56.345000Z");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert_eq!(from_unix_seconds(1e300), None);
        assert_eq!(from_unix_seconds(f64::NAN), None);
        assert_eq!(from_action_timestamp(-1e20), None);
    }

    #[test]
    fn numbers_in_strings_are_read_but_marked() {
        assert_eq!(read_numeric(&node("12")), Some(Numeric::Number(12.0)));
        assert_eq!(
            read_numeric(&node(r#"" 12 ""#)),
            Some(Numeric::Quoted(12.0))
        );
        assert_eq!(read_numeric(&node(r#""soon""#)), None);
        assert_eq!(read_numeric(&node(r#""NaN""#)), None);
        assert_eq!(read_numeric(&node("[1]")), None);
    }

    #[test]
    fn event_created_format_matches() {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 7_000_000).unwrap();
        assert_eq!(format_datetime(&t, 3), "2023-11-14T22:13:20.007Z");
    }
}
