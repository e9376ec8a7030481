//! The simulator's event store: pre-serialised entries indexed by second, plus late entries
//! waiting to become visible.
//!
//! Entries are kept as their JSON text so that serving a 9,999-entry page is a concatenation,
//! not 9,999 serialisations; the few fields the filters need are kept beside the text. A page
//! is cut only between seconds, never inside one, which is how Slack's pages can exceed `limit`.

use serde_json::Value;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, RwLock};
use tokio::time::Instant;

/// One entry as served.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// `id` (empty when the entry has none).
    pub(crate) id: Box<str>,
    /// `action`, for the `action` filter.
    pub(crate) action: Arc<str>,
    /// `actor.user.id`, for the `actor` filter.
    pub(crate) actor: Option<Arc<str>>,
    /// The id of the typed entity object, for the `entity` filter.
    pub(crate) entity: Option<Arc<str>>,
    /// The entry, compact JSON.
    pub(crate) json: Box<str>,
}

impl Stored {
    /// Reads what the store needs from an arbitrary entry (from [`super::SimHandle::insert`]).
    /// Returns the entry's `date_create` (0 when absent or not an integer) and the entry.
    pub(crate) fn from_value(entry: &Value) -> (i64, Stored) {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(Arc::<str>::from);
        let date = entry
            .get("date_create")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let entity = entry.get("entity").and_then(|e| {
            let kind = e.get("type").and_then(Value::as_str)?;
            text(e.get(kind).and_then(|o| o.get("id")))
        });
        let stored = Stored {
            id: entry.get("id").and_then(Value::as_str).unwrap_or("").into(),
            action: text(entry.get("action")).unwrap_or_else(|| Arc::from("")),
            actor: text(entry.pointer("/actor/user/id")),
            entity,
            json: entry.to_string().into_boxed_str(),
        };
        (date, stored)
    }
}

/// The request's filters, as the store applies them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Any of these actions (empty: all).
    pub(crate) actions: Vec<String>,
    /// `actor.user.id` equals.
    pub(crate) actor: Option<String>,
    /// The entity's id equals.
    pub(crate) entity: Option<String>,
}

impl Filter {
    fn matches(&self, e: &Stored) -> bool {
        (self.actions.is_empty() || self.actions.iter().any(|a| **a == *e.action))
            && self
                .actor
                .as_deref()
                .is_none_or(|a| e.actor.as_deref() == Some(a))
            && self
                .entity
                .as_deref()
                .is_none_or(|id| e.entity.as_deref() == Some(id))
    }
}

/// One page, ready to be wrapped in a response body.
#[derive(Debug, Default)]
pub(crate) struct PageOut {
    /// The entries' JSON joined with commas (no brackets).
    pub(crate) entries: String,
    /// How many entries.
    pub(crate) count: usize,
    /// Where the next page starts (`latest` for it), when more matching entries remain.
    pub(crate) next_latest: Option<i64>,
}

struct Late {
    visible_at: Instant,
    /// Breaks ties so that late entries due at the same instant appear in insertion order.
    seq: u64,
    date: i64,
    entry: Stored,
}

impl PartialEq for Late {
    fn eq(&self, other: &Late) -> bool {
        (self.visible_at, self.seq) == (other.visible_at, other.seq)
    }
}
impl Eq for Late {}
impl PartialOrd for Late {
    fn partial_cmp(&self, other: &Late) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Late {
    /// Reversed, so that the max-heap pops the earliest due entry first.
    fn cmp(&self, other: &Late) -> std::cmp::Ordering {
        (other.visible_at, other.seq).cmp(&(self.visible_at, self.seq))
    }
}

#[derive(Default)]
struct Inner {
    /// Second → entries in the order they became visible (oldest first).
    seconds: BTreeMap<i64, Vec<Stored>>,
    late: BinaryHeap<Late>,
    late_seq: u64,
    visible: usize,
}

/// The store, shared by the server, the traffic task and [`super::SimHandle`].
#[derive(Default)]
pub(crate) struct Store {
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("visible", &self.read().visible)
            .finish_non_exhaustive()
    }
}

impl Store {
    // A poisoned lock means a thread panicked while holding it; the map is still consistent
    // (every mutation is a single push), so carry on rather than take the server down.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes entries visible now.
    pub(crate) fn insert(&self, entries: impl IntoIterator<Item = (i64, Stored)>) {
        let mut inner = self.write();
        for (date, e) in entries {
            inner.seconds.entry(date).or_default().push(e);
            inner.visible += 1;
        }
    }

    /// Holds an entry back until `visible_at`.
    pub(crate) fn insert_late(&self, date: i64, entry: Stored, visible_at: Instant) {
        let mut inner = self.write();
        inner.late_seq += 1;
        let seq = inner.late_seq;
        inner.late.push(Late {
            visible_at,
            seq,
            date,
            entry,
        });
    }

    /// Moves late entries that are due at `now` into view.
    pub(crate) fn release_due(&self, now: Instant) {
        if self.read().late.peek().is_none_or(|l| l.visible_at > now) {
            return;
        }
        let mut inner = self.write();
        while inner.late.peek().is_some_and(|l| l.visible_at <= now) {
            if let Some(l) = inner.late.pop() {
                inner.seconds.entry(l.date).or_default().push(l.entry);
                inner.visible += 1;
            }
        }
    }

    /// How many entries are visible.
    pub(crate) fn len(&self) -> usize {
        self.read().visible
    }

    /// Every visible `(id, date_create)`, oldest second first.
    pub(crate) fn ids(&self) -> Vec<(String, i64)> {
        let inner = self.read();
        let mut out = Vec::with_capacity(inner.visible);
        for (date, bucket) in &inner.seconds {
            out.extend(bucket.iter().map(|e| (e.id.to_string(), *date)));
        }
        out
    }

    /// One page: matching entries in `[oldest, latest]`, newest first, whole seconds until at
    /// least `limit` entries are in (so a same-second burst makes the page exceed `limit`).
    pub(crate) fn page(&self, oldest: i64, latest: i64, limit: usize, filter: &Filter) -> PageOut {
        let mut out = PageOut::default();
        if oldest > latest {
            // BTreeMap::range panics on an inverted range; an inverted window is just empty.
            return out;
        }
        let inner = self.read();
        let mut last = None;
        for (date, bucket) in inner.seconds.range(oldest..=latest).rev() {
            // Within a second, the entry that became visible last is the newest.
            for e in bucket.iter().rev().filter(|e| filter.matches(e)) {
                if out.count > 0 {
                    out.entries.push(',');
                }
                out.entries.push_str(&e.json);
                out.count += 1;
            }
            if out.count >= limit {
                last = Some(*date);
                break;
            }
        }
        // `last > oldest` keeps `last - 1` from underflowing and from leaving the window.
        out.next_latest = last.filter(|l| *l > oldest).map(|l| l - 1).filter(|next| {
            inner
                .seconds
                .range(oldest..=*next)
                .any(|(_, bucket)| bucket.iter().any(|e| filter.matches(e)))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(id: &str, date: i64, action: &str) -> (i64, Stored) {
        Stored::from_value(&json!({"id": id, "date_create": date, "action": action,
            "actor": {"type": "user", "user": {"id": "W1"}}, "entity": {"type": "file", "file": {"id": "F1"}}}))
    }

    fn ids(page: &PageOut) -> Vec<String> {
        let v: Value = serde_json::from_str(&format!("[{}]", page.entries)).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn pages_never_split_a_second() {
        let s = Store::default();
        s.insert([
            entry("a", 10, "x"),
            entry("b", 11, "x"),
            entry("c", 11, "x"),
            entry("d", 11, "x"),
            entry("e", 12, "x"),
        ]);
        let p = s.page(0, 100, 2, &Filter::default());
        assert_eq!(ids(&p), ["e", "d", "c", "b"]);
        assert_eq!(p.next_latest, Some(10));
        let p = s.page(0, 10, 2, &Filter::default());
        assert_eq!((ids(&p), p.next_latest), (vec!["a".to_string()], None));
    }

    #[test]
    fn no_cursor_when_nothing_older_matches() {
        let s = Store::default();
        s.insert([entry("a", 10, "x"), entry("b", 11, "y")]);
        let f = Filter {
            actions: vec!["y".into()],
            ..Filter::default()
        };
        let p = s.page(0, 100, 1, &f);
        assert_eq!((ids(&p), p.next_latest), (vec!["b".to_string()], None));
        assert_eq!(s.page(11, 10, 5, &f).count, 0);
        assert_eq!(s.page(i64::MIN, i64::MIN, 1, &f).count, 0);
    }

    #[test]
    fn late_entries_wait_their_turn() {
        let s = Store::default();
        let now = Instant::now();
        let (d, e) = entry("late", 5, "x");
        s.insert_late(d, e, now + std::time::Duration::from_secs(10));
        s.release_due(now);
        assert_eq!(s.len(), 0);
        s.release_due(now + std::time::Duration::from_secs(10));
        assert_eq!(s.ids(), vec![("late".to_string(), 5)]);
    }
}
