//! The simulator's cursors: opaque, padded base64, bound to the window and filters they were
//! issued for.
//!
//! Peers report that Slack's cursor is base64 holding the second to continue from, that it ends
//! in `=` padding, and that the server does not remember the window (so clients resend
//! `oldest`/`latest`). The simulator is stricter than Slack on one point, on purpose: a cursor
//! only works with the exact `oldest`, `latest` and filters it was issued for, and only until
//! [`super::SimHandle::invalidate_cursors`] is called, so that a client which mixes up its
//! windows or resumes a stale cursor sees `invalid_cursor` in tests instead of silently reading
//! the wrong range.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// What a cursor holds: where the next page starts and what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The next page covers seconds `<= next_latest` (still `>= oldest`).
    pub(crate) next_latest: i64,
    /// `oldest` as sent with the request that issued the cursor (`None` when absent).
    pub(crate) oldest: Option<i64>,
    /// `latest` as sent (`None` when absent).
    pub(crate) latest: Option<i64>,
    /// A fingerprint of the `action`, `actor` and `entity` filters.
    pub(crate) filters: u64,
    /// The cursor generation; [`super::SimHandle::invalidate_cursors`] bumps it.
    pub(crate) generation: u64,
}

const PREFIX: &str = "next_ts";

impl Cursor {
    /// Encodes the cursor, signed with `secret`, as padded standard base64.
    pub(crate) fn encode(&self, secret: u64) -> String {
        let mut text = format!("{PREFIX}:{}", self.fields());
        text.push_str(&format!(":{:016x}", self.tag(secret)));
        // Slack's cursors end in `=`; a plain text whose length is a multiple of 3 would encode
        // without padding, so one filler byte makes the padding (and the client's URL-encoding
        // of it) always present.
        if text.len() % 3 == 0 {
            text.push(';');
        }
        STANDARD.encode(text)
    }

    /// Decodes and checks the signature; `None` for anything that is not a cursor this
    /// simulator (with this `secret`) issued.
    pub(crate) fn decode(s: &str, secret: u64) -> Option<Cursor> {
        let bytes = STANDARD.decode(s.as_bytes()).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?.trim_end_matches(';');
        let mut parts = text.split(':');
        if parts.next()? != PREFIX {
            return None;
        }
        let next_latest = parts.next()?.parse().ok()?;
        let oldest = opt_i64(parts.next()?)?;
        let latest = opt_i64(parts.next()?)?;
        let filters = u64::from_str_radix(parts.next()?, 16).ok()?;
        let generation = parts.next()?.parse().ok()?;
        let tag = u64::from_str_radix(parts.next()?, 16).ok()?;
        if parts.next().is_some() {
            return None;
        }
        let cursor = Cursor {
            next_latest,
            oldest,
            latest,
            filters,
            generation,
        };
        (cursor.tag(secret) == tag).then_some(cursor)
    }

    fn fields(&self) -> String {
        let opt = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        format!(
            "{}:{}:{}:{:016x}:{}",
            self.next_latest,
            opt(self.oldest),
            opt(self.latest),
            self.filters,
            self.generation
        )
    }

    /// Not cryptographic: it only has to make hand-edited or foreign cursors fail.
    fn tag(&self, secret: u64) -> u64 {
        let mut h = Fnv::new();
        h.write_u64(secret);
        h.write(self.fields().as_bytes());
        h.finish()
    }
}

/// `-` (absent) or an integer; `None` when the field is neither.
fn opt_i64(s: &str) -> Option<Option<i64>> {
    if s == "-" {
        Some(None)
    } else {
        s.parse().ok().map(Some)
    }
}

/// The one stable hash: a given seed issues the same cursors and picks the same end-of-chain
/// spelling everywhere.
pub(crate) use crate::fnv::Fnv;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Cursor {
        Cursor {
            next_latest: 1_700_000_123,
            oldest: Some(1_700_000_000),
            latest: None,
            filters: 0xdead_beef,
            generation: 3,
        }
    }

    #[test]
    fn round_trips() {
        let c = sample();
        assert_eq!(Cursor::decode(&c.encode(7), 7), Some(c));
    }

    #[test]
    fn always_ends_in_padding() {
        for next_latest in 1_700_000_000..1_700_000_010 {
            for generation in 0..12 {
                let c = Cursor {
                    next_latest,
                    generation,
                    ..sample()
                };
                let s = c.encode(1);
                assert!(s.ends_with('='), "{s}");
                assert_eq!(Cursor::decode(&s, 1), Some(c));
            }
        }
    }

    #[test]
    fn another_secret_or_an_edit_is_refused() {
        let s = sample().encode(7);
        assert_eq!(Cursor::decode(&s, 8), None);
        let forged = STANDARD.encode(
            String::from_utf8(STANDARD.decode(&s).unwrap())
                .unwrap()
                .replace("1700000123", "1700000999"),
        );
        assert_eq!(Cursor::decode(&forged, 7), None);
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for g in [
            "",
            "=",
            "====",
            "abc",
            "bmV4dF90czo=",
            "%3D",
            "next_ts:1:2:3:4:5:6",
            "\u{0}\u{ffff}",
            "bmV4dF90czox",
            "////",
        ] {
            assert_eq!(Cursor::decode(g, 7), None, "{g:?}");
        }
    }

    #[test]
    fn fnv_keeps_none_and_empty_apart() {
        let h = |v: Option<&str>| {
            let mut f = Fnv::new();
            f.write_opt(v);
            f.finish()
        };
        assert_ne!(h(None), h(Some("")));
    }
}
