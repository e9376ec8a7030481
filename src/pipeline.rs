//! The page pipeline: a page of raw entries and the window state → chunks ready to send.
//!
//! It owns mapping → analysis → batch for the poller, and what those stages tell each other
//! stays here: which entries are new ([`Seen`]), the facts the mapper notes for routing
//! ([`Facts`]), which documents the analysis reads as JSON values and which stay text, and the
//! parse of written text back into a value for those. The poller sees a page's keys, chunks
//! (a [`Batch`] each) and, at the end, what was delivered ([`Delivered`]).
//!
//! A page goes out in chunks of [`CHUNK`] entries, so memory stays bounded at `--limit 9999`.
//! Each entry is parsed once by the mapper, which writes its document as text and notes what
//! routing and the analysis need. Most documents (not anomalies, an expected user agent) stay
//! text: the analysis only notes them (a download's file, the time). The others are read back
//! into a borrowed tree ([`Node`]) for the analysis, which may annotate them and add
//! findings; a tree rather than a `serde_json::Value`, whose allocating and freeing cost about
//! a fifth of a backfill's CPU time (BENCHMARKS.md). The page's order is kept within a chunk,
//! findings last.

use crate::analysis::detect::{Item, Light};
use crate::analysis::{Analyzer, SavedState};
use crate::checkpoint::Window;
use crate::mapping::tree::Node;
use crate::mapping::{DetectFacts, DocKind, Facts, Mapper};
use crate::metrics::labels::Tally;
use crate::sink::Batch;
use crate::slack::{EntryKey, Page};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

/// Entries mapped, analysed and sent at a time within a page.
const CHUNK: usize = 1000;

/// Mapping and analysis, with the buffers they reuse from chunk to chunk.
#[derive(Debug)]
pub(crate) struct Pipeline {
    mapper: Mapper,
    analyzer: Analyzer,
    /// Where each delivered entry's document comes from, in page order.
    slots: Vec<Slot>,
    /// The documents written straight to text, one after another; `Slot::Plain` ranges.
    texts: Vec<u8>,
    /// The documents the analysis reads, as written, one after another; `Slot::Doc` ranges.
    doc_texts: Vec<u8>,
    facts: Facts,
    /// What the detections read of each delivered entry of the chunk, in page order.
    detect: Vec<Detect>,
    /// What the mapper read, for entries the detections need no more of; slots reused, the
    /// first `lit` in use.
    lights: Vec<DetectFacts>,
    lit: usize,
    /// The entries the detections read whole, as values.
    entries: Vec<Value>,
    /// Whether [`Delivered::findings`] is kept (a response stage reads it).
    pub(crate) keep_findings: bool,
    /// Whether the analysis wants the document of an ordinary event with this user agent as a
    /// value ([`Analyzer::wants`]), by agent: an org has few, and the answer matches every
    /// expected-agent pattern against the agent.
    ua_wanted: HashMap<Box<str>, bool>,
}

/// Distinct agents whose answer is kept before [`Pipeline::ua_wanted`] is emptied and refilled;
/// bounds memory on hostile input.
const UA_WANTED_CAPACITY: usize = 4096;

/// How one delivered entry reaches the detections.
#[derive(Debug, Clone, Copy)]
enum Detect {
    /// What the mapper read: the i-th of `lights`.
    Light(usize),
    /// The whole entry: the i-th of `entries`.
    Entry(usize),
}

/// Where one delivered entry's document comes from, in page order.
#[derive(Debug)]
enum Slot {
    /// Written straight to text: its bytes in the chunk's text buffer.
    Plain(Range<usize>),
    /// Handed to the analysis: its text in the chunk's analysed-text buffer, and the index of
    /// its entry in the page (to map it again should that text not read back).
    Doc { text: Range<usize>, entry: usize },
}

/// What the poller knows of the window, to tell new entries from ones already delivered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen<'a> {
    /// The window as it stood before the page.
    pub(crate) window: &'a Window,
    /// Ids delivered behind the window, by second (the overlap memory).
    pub(crate) recent: &'a BTreeMap<i64, BTreeSet<String>>,
    /// The overlap span, in seconds.
    pub(crate) overlap: i64,
    /// The `oldest` the page was asked with (the window's, minus the overlap).
    pub(crate) query_oldest: i64,
}

/// What a page delivered, once its last chunk is out.
#[derive(Debug)]
pub(crate) struct Delivered {
    /// The window with its low-water mark moved past the delivered entries.
    pub(crate) window: Window,
    /// The keys of the entries delivered, in page order.
    pub(crate) keys: Vec<EntryKey>,
    /// The documents delivered, by kind and action, for the metrics.
    pub(crate) tally: Tally,
    /// The findings delivered, in order, when the pipeline keeps them (`--respond`).
    pub(crate) findings: Vec<Value>,
}

impl Pipeline {
    /// A pipeline over a mapper and an analyzer.
    pub(crate) fn new(mapper: Mapper, analyzer: Analyzer) -> Pipeline {
        Pipeline {
            mapper,
            analyzer,
            slots: Vec::new(),
            texts: Vec::new(),
            doc_texts: Vec::new(),
            facts: Facts::default(),
            detect: Vec::new(),
            lights: Vec::new(),
            lit: 0,
            entries: Vec::new(),
            keep_findings: false,
            ua_wanted: HashMap::new(),
        }
    }

    /// Each entry's id and date, in page order: what the poller judges the page by before any
    /// of it is delivered.
    pub(crate) fn keys(page: &Page) -> Vec<EntryKey> {
        page.entries().map(EntryKey::read).collect()
    }

    /// Starts a page; `keys` are [`Pipeline::keys`] of it. The chunks come from
    /// [`Chunks::next_into`], and what was delivered from [`Chunks::finish`].
    pub(crate) fn page<'p>(
        &'p mut self,
        page: &'p Page,
        keys: Vec<EntryKey>,
        seen: Seen<'p>,
        fetched_at: DateTime<Utc>,
    ) -> Chunks<'p> {
        let delivered = Delivered {
            window: seen.window.clone(),
            keys: Vec::with_capacity(page.len()),
            tally: Tally::new(),
            findings: Vec::new(),
        };
        self.slots.clear();
        self.slots.reserve(CHUNK.min(page.len()));
        Chunks {
            pipeline: self,
            page,
            next: 0,
            keys: keys.into_iter(),
            seen,
            fetched_at,
            delivered,
        }
    }

    /// The analysis state to save with the checkpoint.
    pub(crate) fn saved_state(&self) -> Option<SavedState<'_>> {
        self.analyzer.saved_state()
    }

    /// After a page: frees the user-agent rules if the page brought no new agent.
    pub(crate) fn release_if_unused(&mut self) -> bool {
        self.mapper.release_if_unused()
    }

    /// Caught up: frees what only new input needs. False when there was nothing to free.
    pub(crate) fn release(&mut self) -> bool {
        self.mapper.release()
    }
}

/// One page going through the pipeline, chunk by chunk.
pub(crate) struct Chunks<'p> {
    pipeline: &'p mut Pipeline,
    page: &'p Page,
    /// The index of the next entry of `page`, and the keys from it on.
    next: usize,
    keys: std::vec::IntoIter<EntryKey>,
    seen: Seen<'p>,
    fetched_at: DateTime<Utc>,
    delivered: Delivered,
}

impl Chunks<'_> {
    /// Maps and analyses the next chunk of the page into `batch` (cleared first). False when
    /// the page has no entries left; a chunk whose entries were all delivered before leaves
    /// `batch` empty and still returns true.
    pub(crate) fn next_into(&mut self, batch: &mut Batch) -> bool {
        if self.next >= self.page.len() || self.keys.len() == 0 {
            return false;
        }
        let p = &mut *self.pipeline;
        p.texts.clear();
        p.doc_texts.clear();
        let first = self.next;
        for (i, key) in (first..self.page.len()).zip(self.keys.by_ref().take(CHUNK)) {
            self.next = i + 1;
            let raw = self.page.entry(i).unwrap_or_default();
            if !is_new(&self.seen, &key) {
                continue;
            }
            track_low(&mut self.delivered.window, &key, self.seen.window.oldest);
            let start = p.texts.len();
            let kind =
                p.mapper
                    .write_entry_noting(raw, self.fetched_at, &mut p.texts, &mut p.facts);
            let action = p.facts.action.as_deref();
            // Anomalies always: their reasons are counted in the metrics from the document, with
            // the analysis off too.
            if kind == DocKind::Event
                && (action == Some("anomaly")
                    || wants_agent(&mut p.ua_wanted, &p.analyzer, p.facts.user_agent.as_deref()))
            {
                // The analysis reads and annotates the document: it is read back after the loop.
                let at = p.doc_texts.len();
                p.doc_texts.extend_from_slice(&p.texts[start..]);
                p.texts.truncate(start);
                p.slots.push(Slot::Doc {
                    text: at..p.doc_texts.len(),
                    entry: i,
                });
            } else {
                p.analyzer.note_plain(&p.facts);
                let kind = match kind {
                    DocKind::PipelineError => "pipeline_error",
                    DocKind::Event => "event",
                };
                self.delivered.tally.add_plain(action, kind);
                p.slots.push(Slot::Plain(start..p.texts.len()));
            }
            if p.analyzer.detects() {
                note_for_detection(p, raw, kind);
            }
            self.delivered.keys.push(key);
        }
        let detected = detect(p);
        let mut docs: Vec<Node<'_>> = Vec::new();
        for slot in &p.slots {
            if let Slot::Doc { text, entry } = slot {
                let doc = serde_json::from_slice(&p.doc_texts[text.clone()]).unwrap_or_else(|_| {
                    let raw = self.page.entry(*entry).unwrap_or_default();
                    Node::from(p.mapper.map_entry(raw, self.fetched_at))
                });
                docs.push(doc);
            }
        }
        let analysed = docs.len();
        p.analyzer.process(&mut docs);
        batch.clear();
        let tally = &mut self.delivered.tally;
        let mut next_doc = docs.iter();
        for slot in p.slots.drain(..) {
            match slot {
                Slot::Plain(range) => {
                    batch.push_with(|out| out.extend_from_slice(&p.texts[range]));
                }
                Slot::Doc { .. } => {
                    if let Some(doc) = next_doc.next() {
                        batch.push(doc);
                        tally.add(doc);
                    }
                }
            }
        }
        for finding in &docs[analysed..] {
            batch.push(finding);
            tally.add(finding);
            if p.keep_findings {
                self.delivered.findings.push(finding.to_value());
            }
        }
        for finding in detected {
            batch.push(&finding);
            tally.add(&finding);
            if p.keep_findings {
                self.delivered.findings.push(finding);
            }
        }
        true
    }

    /// What the page delivered: call after the last chunk.
    pub(crate) fn finish(self) -> Delivered {
        self.delivered
    }
}

/// [`Analyzer::wants`] for an event that is not an anomaly, remembered by user agent.
fn wants_agent(cache: &mut HashMap<Box<str>, bool>, analyzer: &Analyzer, ua: Option<&str>) -> bool {
    let Some(ua) = ua else {
        return analyzer.wants(None, None);
    };
    if let Some(&wanted) = cache.get(ua) {
        return wanted;
    }
    if cache.len() >= UA_WANTED_CAPACITY {
        cache.clear();
    }
    let wanted = analyzer.wants(None, Some(ua));
    cache.insert(ua.into(), wanted);
    wanted
}

/// Notes how the entry just mapped reaches the detections: what the mapper read when no rule
/// for its action needs more (no copy: the slot is swapped with the mapper's), else the entry
/// parsed into a value. Input that is not an entry object is not evaluated.
fn note_for_detection(p: &mut Pipeline, raw: &str, kind: DocKind) {
    let d = &p.facts.detect;
    let light = kind == DocKind::Event
        && d.id.is_some()
        && d.date_create.is_some()
        && d.action
            .as_deref()
            .is_some_and(|a| !p.analyzer.detect_needs_entry(a));
    if light {
        let k = p.lit;
        p.lit += 1;
        if k < p.lights.len() {
            std::mem::swap(&mut p.lights[k], &mut p.facts.detect);
        } else {
            p.lights.push(std::mem::take(&mut p.facts.detect));
        }
        p.detect.push(Detect::Light(k));
    } else if let Ok(entry @ Value::Object(_)) = serde_json::from_str::<Value>(raw) {
        p.detect.push(Detect::Entry(p.entries.len()));
        p.entries.push(entry);
    }
}

/// Runs the detections over the chunk's entries; their findings go after the chunk's
/// documents and the analysis's findings.
fn detect(p: &mut Pipeline) -> Vec<Value> {
    if p.detect.is_empty() {
        return Vec::new();
    }
    let items: Vec<Item<'_>> = p
        .detect
        .iter()
        .filter_map(|d| match *d {
            Detect::Entry(i) => p.entries.get(i).map(Item::Entry),
            Detect::Light(i) => p.lights.get(i).and_then(light).map(Item::Light),
        })
        .collect();
    let findings = p.analyzer.detect(&items);
    p.detect.clear();
    p.entries.clear();
    p.lit = 0;
    findings
}

/// A [`Light`] view of what the mapper read.
fn light(d: &DetectFacts) -> Option<Light<'_>> {
    Some(Light {
        action: d.action.as_deref()?,
        id: d.id.as_deref()?,
        at: d.date_create?,
        has_entity: d.has_entity,
        actor: [
            d.actor[0].as_deref(),
            d.actor[1].as_deref(),
            d.actor[2].as_deref(),
        ],
        ip: d.ip,
        ua: d.ua.as_deref(),
        session: d.session.as_deref(),
        by_app: d.by_app,
    })
}

/// False for entries already delivered: at `low` with a known id, or behind the window
/// (overlap) and already seen. Entries outside the asked range are delivered (the poller
/// warned about the page); entries above `low` never get here (the poller refuses their page).
fn is_new(seen: &Seen<'_>, key: &EntryKey) -> bool {
    let w = seen.window;
    let Some(ts) = key.date_create else {
        // Undated entries cannot be placed; deliver them (mapping reports the problem).
        return true;
    };
    if ts > w.latest || ts < seen.query_oldest {
        return true;
    }
    if ts < w.oldest {
        return seen.overlap > 0
            && !seen
                .recent
                .get(&ts)
                .is_some_and(|ids| ids.contains(&key.id));
    }
    match w.low {
        Some(low) if ts > low => false,
        Some(low) if ts == low => !w.ids_at_low.contains(&key.id),
        _ => true,
    }
}

/// Moves the window's low-water mark for a delivered entry: the oldest second delivered in
/// the window, and the ids delivered at it. Entries behind or after the window do not count.
fn track_low(w: &mut Window, key: &EntryKey, window_oldest: i64) {
    let Some(ts) = key
        .date_create
        .filter(|ts| *ts >= window_oldest && *ts <= w.latest)
    else {
        return;
    };
    match w.low {
        Some(low) if ts > low => {}
        Some(low) if ts == low => {
            w.ids_at_low.insert(key.id.clone());
        }
        _ => {
            w.low = Some(ts);
            w.ids_at_low = BTreeSet::from([key.id.clone()]);
        }
    }
}

/// Adds delivered ids to the overlap memory `recent` and forgets those older than the span.
pub(crate) fn remember(
    recent: &mut BTreeMap<i64, BTreeSet<String>>,
    keys: &[EntryKey],
    w: &Window,
    overlap: i64,
) {
    if overlap == 0 {
        return;
    }
    // Entries after the window (Slack ignoring `latest`) are not remembered: the horizon
    // below would never drop them.
    for k in keys {
        if let Some(ts) = k.date_create.filter(|ts| *ts <= w.latest) {
            recent.entry(ts).or_default().insert(k.id.clone());
        }
    }
    // The next window reads back to (its oldest − overlap) = (w.latest + 1 − overlap);
    // nothing older can be asked about again.
    let horizon = w.oldest.min(w.latest + 1) - overlap;
    *recent = recent.split_off(&horizon);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, ts: i64) -> EntryKey {
        EntryKey {
            id: id.to_string(),
            date_create: Some(ts),
        }
    }

    fn seen<'a>(
        w: &'a Window,
        recent: &'a BTreeMap<i64, BTreeSet<String>>,
        overlap: i64,
        query_oldest: i64,
    ) -> Seen<'a> {
        Seen {
            window: w,
            recent,
            overlap,
            query_oldest,
        }
    }

    /// A burst second of 50,000 ids, each delivered twice: the set holds each once and every
    /// one of them is known; a new id at that second is still new.
    #[test]
    fn a_burst_second_of_50000_ids_dedups() {
        let mut w = Window::open(100, 200);
        let keys: Vec<EntryKey> = (0..50_000).map(|i| key(&format!("id-{i}"), 150)).collect();
        for k in keys.iter().chain(keys.iter()) {
            track_low(&mut w, k, 100);
        }
        assert_eq!(w.low, Some(150));
        assert_eq!(w.ids_at_low.len(), 50_000);
        let recent = BTreeMap::new();
        let s = seen(&w, &recent, 0, 100);
        assert!(keys.iter().all(|k| !is_new(&s, k)));
        assert!(is_new(&s, &key("id-50000", 150)));
        assert!(is_new(&s, &key("older", 149)));
        // The overlap memory behind the window is a set too.
        let mut recent: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        recent
            .entry(90)
            .or_default()
            .extend(keys.iter().map(|k| k.id.clone()));
        let s = seen(&w, &recent, 20, 80);
        assert!(keys.iter().all(|k| !is_new(&s, &key(&k.id, 90))));
        assert!(is_new(&s, &key("late", 90)));
    }

    /// Entries outside the asked range are new and do not move `low`.
    #[test]
    fn entries_outside_the_range_are_new_and_leave_low_alone() {
        let mut w = Window::open(100, 200);
        let recent = BTreeMap::new();
        let s = seen(&w, &recent, 0, 100);
        assert!(is_new(&s, &key("future", 500)));
        assert!(is_new(&s, &key("past", 50)));
        track_low(&mut w, &key("future", 500), 100);
        assert_eq!(w.low, None, "an entry after the window does not move low");
        track_low(&mut w, &key("a", 150), 100);
        assert_eq!(w.low, Some(150));
    }

    /// A page from entry texts, as the client would build it.
    fn page(entries: &[serde_json::Value]) -> Page {
        let body = serde_json::json!({ "entries": entries }).to_string();
        let parsed: crate::slack::api::LogsResponse<'_> = serde_json::from_str(&body).unwrap();
        let spans = Page::spans(body.as_bytes(), &parsed.entries.unwrap());
        Page::new(body, spans, None)
    }

    /// An entry already delivered at `low` is skipped; an anomaly goes through the analysis
    /// (annotated, as a value) and a login stays text; both keep the page's order, and the
    /// window's low moves to the oldest delivered.
    #[test]
    fn a_page_becomes_a_chunk_of_new_documents_in_order() {
        use serde_json::json;
        let mut w = Window::open(100, 200);
        w.low = Some(180);
        w.ids_at_low = BTreeSet::from(["old".to_string()]);
        let page = page(&[
            json!({"id": "old", "date_create": 180, "action": "user_login"}),
            json!({"id": "a", "date_create": 170, "action": "anomaly", "details": {"reason": ["tor"]}}),
            json!({"id": "b", "date_create": 160, "action": "user_login"}),
        ]);
        let mapper = Mapper::new(&crate::mapping::MappingConfig::default()).unwrap();
        let analyzer = Analyzer::new(&Default::default(), None).unwrap();
        let mut pipeline = Pipeline::new(mapper, analyzer);
        let keys = Pipeline::keys(&page);
        let recent = BTreeMap::new();
        let mut chunks = pipeline.page(&page, keys, seen(&w, &recent, 0, 100), Utc::now());
        let mut batch = Batch::new();
        assert!(chunks.next_into(&mut batch));
        assert!(!chunks.next_into(&mut Batch::new()), "one chunk");
        let delivered = chunks.finish();
        let docs: Vec<Value> = batch
            .lines()
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let ids: Vec<&str> = docs
            .iter()
            .map(|d| d.pointer("/event/id").and_then(Value::as_str).unwrap())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(
            docs[0].pointer("/slack/audit/analysis").is_some(),
            "{}",
            docs[0]
        );
        assert_eq!(
            delivered
                .keys
                .iter()
                .map(|k| k.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(delivered.window.low, Some(160));
        assert_eq!(
            delivered.window.ids_at_low,
            BTreeSet::from(["b".to_string()])
        );
    }

    /// The pipeline's cost per ordinary entry (mapping, analysis, batch) with the default
    /// detection rules and without any: `cargo test --lib pipeline::tests::cost -- --ignored
    /// --nocapture`, with `CARGO_PROFILE_DEV_OPT_LEVEL=2` for figures worth quoting. Prints
    /// the best of five pages of 9,999 each way, alternating; asserts only that both deliver everything.
    #[test]
    #[ignore]
    fn cost_of_the_detections_per_ordinary_entry() {
        use serde_json::json;
        let actions = [
            "file_downloaded",
            "user_channel_join",
            "file_uploaded",
            "user_login",
            "user_logout",
            "file_downloaded",
            "user_channel_join",
            "file_downloaded",
            "user_login",
            "user_login_failed",
        ];
        let n = 9999;
        let entries: Vec<Value> = (0..n)
            .map(|i| {
                let u = (i * 7919) % 500;
                json!({"id": format!("ev-{i:08}"), "date_create": 1_717_405_200 + i as i64,
                       "action": actions[i % actions.len()],
                       "actor": {"type": "user", "user": {"id": format!("U{u:05}"), "name": format!("User {u}"),
                                 "email": format!("user{u}@example.com"), "team": "E0ORG"}},
                       "context": {"location": {"type": "enterprise", "id": "E0ORG", "name": "Example", "domain": "example"},
                                   "ua": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/125.0.0.0 Safari/537.36",
                                   "ip_address": format!("203.{}.{}.10", u % 200, u % 250), "session_id": 900_000 + u},
                       "entity": {"type": "file", "file": {"id": format!("F{i:08}"), "name": "report.pdf", "filetype": "pdf", "title": "Q3"}}})
            })
            .collect();
        let page = page(&entries);
        let run = |with_rules: bool| -> f64 {
            let mut rules = crate::analysis::rules::RuleSet::default_rules();
            if !with_rules {
                rules.detections = Default::default();
            }
            let config = crate::analysis::AnalysisConfig {
                rules: std::sync::Arc::new(rules),
                ..Default::default()
            };
            let mapper = Mapper::new(&crate::mapping::MappingConfig::default()).unwrap();
            let analyzer = Analyzer::new(&config, None).unwrap();
            let mut pipeline = Pipeline::new(mapper, analyzer);
            let w = Window::open(1_717_405_200, 1_717_405_200 + n as i64);
            let recent = BTreeMap::new();
            let t = std::time::Instant::now();
            let keys = Pipeline::keys(&page);
            let mut chunks = pipeline.page(&page, keys, seen(&w, &recent, 0, w.oldest), Utc::now());
            let mut batch = Batch::new();
            let mut lines = 0;
            while chunks.next_into(&mut batch) {
                lines += batch.lines().count();
            }
            let ns = t.elapsed().as_nanos() as f64 / n as f64;
            assert!(lines >= n);
            ns
        };
        // Alternating, the best of five each: the machine is shared.
        let (mut without, mut with) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            without = without.min(run(false));
            with = with.min(run(true));
        }
        println!(
            "pipeline per ordinary entry: {without:.0} ns without detection rules, {with:.0} ns with the default pack: +{:.0} ns",
            with - without
        );
    }

    /// The checkpoint's JSON is unchanged: arrays, and an old file with a repeated id loads.
    #[test]
    fn id_sets_are_written_and_read_as_arrays() {
        let old = r#"{"oldest":1,"latest":9,"chain_latest":9,"cursor":null,"low":5,"ids_at_low":["b","a","b"]}"#;
        let w: Window = serde_json::from_str(old).unwrap();
        assert_eq!(w.ids_at_low.len(), 2);
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["ids_at_low"], serde_json::json!(["a", "b"]));
    }
}
