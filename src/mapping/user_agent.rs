//! `context.ua` → ECS `user_agent.*`, parsed with the uap-core rules and cached.
//!
//! NOTICE: `uap-core/regexes.yaml` (beside this file) is from the ua-parser project
//! (<https://github.com/ua-parser/uap-core>, v0.18.0 as shipped in the `ua-parser` 0.2.2 crate),
//! Copyright 2009 Google Inc., licensed under the Apache License 2.0 (`uap-core/LICENSE`).
//! `uap-core/regexes.json` is the same rules, unchanged, converted to JSON by
//! `scripts/uap-regexes-to-json.py` (so no YAML crate is needed), and embedded so the binary
//! needs no data file at run time.
//!
//! Output follows Elasticsearch's `user_agent` processor, which Elastic's Slack integration
//! uses: `name` is the browser family ("Other" when nothing matches), `version` joins the
//! version parts with dots, `os.full` is `os.name` + " " + `os.version`, and `device.name` is the
//! device family ("Other" when nothing matches). Parsing costs tens of microseconds; an org
//! has few distinct agents, so results are cached by the raw string.
//!
//! The rules are compiled one by one, when an agent could match them, not all 1,196 at once:
//! that took 0.15 s of CPU and 25 MB, paid by every run, even one that delivered nothing. A
//! prefilter of the literals each rule needs (how `ua_parser` itself picks the rules to try)
//! names the candidates; the first candidate that matches is the answer, as with the whole set.
//!
//! What each rule needs is worked out from its pattern once, when the rules change, not at
//! every start: `uap-core/prefilter.json` holds each rule's literal model (an and/or tree of
//! literals, `regex_filtered`'s `Model`) in rule order, and a test checks it against the
//! patterns (`UPDATE_PREFILTER=1 cargo test --lib prefilter_models_are_current` rewrites it).
//! Parsing 1,196 patterns at start was most of the cost of the first new agent.

use aho_corasick::AhoCorasick;
use regex_filtered::{mapper, model::Model};
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;
use ua_parser::{device, os, user_agent as browser};

/// The uap-core rules (as JSON), compiled into the binary.
const REGEXES_JSON: &str = include_str!("uap-core/regexes.json");

/// Each rule's literal model, worked out from its pattern (see the module doc): browsers,
/// operating systems, devices.
const PREFILTER_JSON: &str = include_str!("uap-core/prefilter.json");

/// A rule's literal model as saved in `uap-core/prefilter.json`; [`Model`] without its ids.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Shape {
    /// Any agent may match (no literal is needed, or the pattern could not be read).
    All,
    /// No agent matches.
    Nothing,
    /// The agent contains this literal.
    Atom(String),
    /// All of these hold.
    And(Vec<Shape>),
    /// One of these holds.
    Or(Vec<Shape>),
}

impl Shape {
    fn model(self) -> Model {
        let id = || std::cell::Cell::new(usize::MAX);
        match self {
            Shape::All => Model::all(),
            Shape::Nothing => Model::none(),
            Shape::Atom(s) => Model::Atom(id(), s),
            Shape::And(v) => Model::And(id(), v.into_iter().map(Shape::model).collect()),
            Shape::Or(v) => Model::Or(id(), v.into_iter().map(Shape::model).collect()),
        }
    }

    #[cfg(test)]
    fn of(model: &Model) -> Shape {
        match model {
            Model::All(_) => Shape::All,
            Model::None(_) => Shape::Nothing,
            Model::Atom(_, s) => Shape::Atom(s.clone()),
            Model::And(_, v) => Shape::And(v.iter().map(Shape::of).collect()),
            Model::Or(_, v) => Shape::Or(v.iter().map(Shape::of).collect()),
        }
    }
}

#[cfg(test)]
/// The three lists of models, as saved.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Prefilter {
    browser: Vec<Shape>,
    os: Vec<Shape>,
    device: Vec<Shape>,
}

#[cfg(test)]
fn read_prefilter() -> Result<Prefilter, String> {
    serde_json::from_str(PREFILTER_JSON).map_err(prefilter_error)
}

/// What a prefilter that does not read says.
fn prefilter_error(e: serde_json::Error) -> String {
    format!("cannot read the user-agent prefilter: {e}")
}

/// The three lists of models as saved, each still text: read one at a time into its
/// prefilter ([`push_models`]), so no list is held whole.
#[derive(serde::Deserialize)]
struct SavedPrefilter<'a> {
    #[serde(borrow)]
    browser: &'a RawValue,
    #[serde(borrow)]
    os: &'a RawValue,
    #[serde(borrow)]
    device: &'a RawValue,
}

/// Reads a saved list of models into `builder`, one model at a time; returns how many.
fn push_models(saved: &RawValue, builder: &mut mapper::Builder) -> Result<usize, String> {
    struct Push<'b>(&'b mut mapper::Builder);
    impl<'de> Visitor<'de> for Push<'_> {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of literal models")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while let Some(shape) = seq.next_element::<Shape>()? {
                self.0.push(shape.model());
                n += 1;
            }
            Ok(n)
        }
    }
    let mut de = serde_json::Deserializer::from_str(saved.get());
    de.deserialize_seq(Push(builder)).map_err(prefilter_error)
}

#[cfg(test)]
/// A rule's literal model worked out from its pattern as written: `ua_parser` narrows `\d`,
/// `\w` and long `{0,n}` before compiling, so the written one matches at least as much and its
/// literals are needed by the compiled one too. A pattern this cannot read is always a
/// candidate.
fn model_of(pattern: &str, ignore_case: bool) -> Model {
    regex_syntax::ParserBuilder::new()
        .case_insensitive(ignore_case)
        .build()
        .parse(pattern)
        .ok()
        .and_then(|hir| Model::new(&hir).ok())
        .unwrap_or_else(Model::all)
}

#[cfg(test)]
/// The prefilter worked out from the rules' patterns, as `uap-core/prefilter.json` must hold it.
fn work_out_prefilter() -> Prefilter {
    let r = read_rules().expect("the embedded rules read");
    let shapes = |it: Vec<(&str, bool)>| -> Vec<Shape> {
        it.into_iter()
            .map(|(p, i)| Shape::of(&model_of(p, i)))
            .collect()
    };
    Prefilter {
        browser: shapes(
            r.user_agent_parsers
                .iter()
                .map(|p| (&*p.regex, false))
                .collect(),
        ),
        os: shapes(r.os_parsers.iter().map(|p| (&*p.regex, false)).collect()),
        device: shapes(
            r.device_parsers
                .iter()
                .map(|p| (&*p.regex, p.regex_flag == Some(device::Flag::IgnoreCase)))
                .collect(),
        ),
    }
}

/// Distinct agents kept before the cache is emptied and refilled; bounds memory on hostile input.
const CACHE_CAPACITY: usize = 4096;

/// Shortest literal the prefilter looks for; shorter ones would make most rules candidates.
const MIN_ATOM_LEN: usize = 3;

#[cfg(test)]
/// Compiles every embedded rule at once, as `ua_parser` does: about 0.15 s of CPU and 25 MB
/// of heap. [`UserAgents`] does not; this is the reference its answers are checked against.
///
/// # Errors
///
/// The rules do not compile; a build defect, reported as text so callers can wrap it.
pub(crate) fn compile() -> Result<ua_parser::Extractor<'static>, String> {
    ua_parser::Extractor::try_from(read_rules()?)
        .map_err(|e| format!("cannot compile regexes.json: {e}"))
}

fn read_rules() -> Result<ua_parser::Regexes<'static>, String> {
    serde_json::from_str(REGEXES_JSON).map_err(|e| format!("cannot read regexes.json: {e}"))
}

/// One list of rules (browsers, operating systems or devices), where the first rule that
/// matches gives the answer. A rule's regex is compiled the first time an agent could match
/// it; which agents could is told by a prefilter built from the literals each regex needs
/// (the method, and the crate, `ua_parser` itself uses). Reading the rules and building the
/// prefilter costs part of what compiling all 1,196 regexes did (see BENCHMARKS.md); an org's
/// agents then compile a few dozen of them.
struct Domain<P, E> {
    parsers: Vec<P>,
    /// Each rule, compiled into an extractor of its own once needed.
    compiled: Vec<Option<E>>,
    /// Literal atoms → the rules that could match (plus those with no usable literal).
    mapper: mapper::Mapper,
    atoms: AhoCorasick,
    /// Compiles one rule.
    build: fn(&P) -> Result<E, String>,
}

impl<P, E> Domain<P, E> {
    /// `saved` are the rules' literal models as saved, one per rule in order; `build`
    /// compiles one rule.
    fn new(
        parsers: Vec<P>,
        saved: &RawValue,
        build: fn(&P) -> Result<E, String>,
    ) -> Result<Self, String> {
        let mut models = mapper::Builder::new(MIN_ATOM_LEN);
        let read = push_models(saved, &mut models)?;
        if read != parsers.len() {
            return Err(format!(
                "the user-agent prefilter has {read} models for {} rules",
                parsers.len()
            ));
        }
        let (mapper, atoms) = models.build();
        let atoms = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(atoms)
            .map_err(|e| format!("cannot build the user-agent prefilter: {e}"))?;
        let compiled = parsers.iter().map(|_| None).collect();
        Ok(Domain {
            parsers,
            compiled,
            mapper,
            atoms,
            build,
        })
    }

    /// The first rule that matches `ua` (compiling the candidates up to it), if any.
    fn first_match(
        &mut self,
        ua: &str,
        matches: impl Fn(&E, &str) -> bool,
    ) -> Result<Option<usize>, String> {
        let found = self
            .atoms
            .find_overlapping_iter(ua)
            .map(|m| m.pattern().as_usize());
        for i in self.mapper.atom_to_re(found) {
            if self.compiled[i].is_none() {
                self.compiled[i] = Some((self.build)(&self.parsers[i])?);
            }
            if self.compiled[i].as_ref().is_some_and(|e| matches(e, ua)) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    fn get(&self, i: Option<usize>) -> Option<&E> {
        self.compiled.get(i?)?.as_ref()
    }

    #[cfg(test)]
    fn compiled_count(&self) -> usize {
        self.compiled.iter().filter(|c| c.is_some()).count()
    }
}

fn compile_error(e: impl std::fmt::Display) -> String {
    format!("cannot compile regexes.json: {e}")
}

/// The three lists of rules, each compiled rule by rule as agents need them.
struct Rules {
    browser: Domain<browser::Parser<'static>, browser::Extractor<'static>>,
    os: Domain<os::Parser<'static>, os::Extractor<'static>>,
    device: Domain<device::Parser<'static>, device::Extractor<'static>>,
}

impl Rules {
    /// Reads the embedded rules and builds the prefilters; compiles no regex.
    fn new() -> Result<Rules, String> {
        let r = read_rules()?;
        let shapes: SavedPrefilter<'_> =
            serde_json::from_str(PREFILTER_JSON).map_err(prefilter_error)?;
        Ok(Rules {
            browser: Domain::new(r.user_agent_parsers, shapes.browser, |p| {
                let one = browser::Parser {
                    regex: p.regex.clone(),
                    family_replacement: p.family_replacement.clone(),
                    v1_replacement: p.v1_replacement.clone(),
                    v2_replacement: p.v2_replacement.clone(),
                    v3_replacement: p.v3_replacement.clone(),
                    v4_replacement: p.v4_replacement.clone(),
                };
                browser::Builder::new()
                    .push(one)
                    .map_err(compile_error)?
                    .build()
                    .map_err(compile_error)
            })?,
            os: Domain::new(r.os_parsers, shapes.os, |p| {
                let one = os::Parser {
                    regex: p.regex.clone(),
                    os_replacement: p.os_replacement.clone(),
                    os_v1_replacement: p.os_v1_replacement.clone(),
                    os_v2_replacement: p.os_v2_replacement.clone(),
                    os_v3_replacement: p.os_v3_replacement.clone(),
                    os_v4_replacement: p.os_v4_replacement.clone(),
                };
                os::Builder::new()
                    .push(one)
                    .map_err(compile_error)?
                    .build()
                    .map_err(compile_error)
            })?,
            device: Domain::new(r.device_parsers, shapes.device, |p| {
                let one = device::Parser {
                    regex: p.regex.clone(),
                    regex_flag: (p.regex_flag == Some(device::Flag::IgnoreCase))
                        .then_some(device::Flag::IgnoreCase),
                    device_replacement: p.device_replacement.clone(),
                    brand_replacement: p.brand_replacement.clone(),
                    model_replacement: p.model_replacement.clone(),
                };
                device::Builder::new()
                    .push(one)
                    .map_err(compile_error)?
                    .build()
                    .map_err(compile_error)
            })?,
        })
    }

    /// Parses `ua` as the whole compiled rule set would ([`compile`]).
    fn parse(&mut self, ua: &str) -> Result<Value, String> {
        // A rule's own extractor answers exactly when its regex matches.
        let b = self
            .browser
            .first_match(ua, |e, ua| e.extract(ua).is_some())?;
        let o = self.os.first_match(ua, |e, ua| e.extract(ua).is_some())?;
        let d = self
            .device
            .first_match(ua, |e, ua| e.extract(ua).is_some())?;
        Ok(render(
            ua,
            self.browser.get(b).and_then(|e| e.extract(ua)),
            self.os.get(o).and_then(|e| e.extract(ua)),
            self.device.get(d).and_then(|e| e.extract(ua)),
        ))
    }

    #[cfg(test)]
    fn compiled_count(&self) -> usize {
        self.browser.compiled_count() + self.os.compiled_count() + self.device.compiled_count()
    }
}

/// Parses user agents into `user_agent` objects, remembering each distinct string.
///
/// Nothing is compiled until the first agent that is not cached: a run that delivers nothing,
/// or only agents already seen, compiles no rule.
pub(crate) struct UserAgents {
    /// The rules while they are in use; `None` before the first new agent and once released
    /// (see [`UserAgents::release_if_unused`]).
    rules: Option<Box<Rules>>,
    /// A new agent was parsed since the last [`UserAgents::release_if_unused`].
    missed: bool,
    /// Raw agent → index into `rendered`. An index (not the text) so a hit is one lookup that
    /// ends its borrow before a miss would need to insert.
    cache: HashMap<Box<str>, usize>,
    /// `user_agent` objects as JSON text, ready to be copied into documents.
    rendered: Vec<Box<str>>,
}

impl std::fmt::Debug for UserAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgents")
            .field("cached", &self.cache.len())
            .field("compiled", &self.rules.is_some())
            .finish()
    }
}

impl UserAgents {
    /// A parser over the embedded rules, which it reads when the first agent comes.
    ///
    /// # Errors
    ///
    /// None today: the rules are read, and each compiled, only when an agent needs them (a
    /// failure then is logged and the agent delivered unparsed). The `Result` stays so the
    /// callers keep one shape whichever way the rules are loaded.
    pub(crate) fn new() -> Result<UserAgents, String> {
        Ok(UserAgents {
            rules: None,
            missed: false,
            cache: HashMap::new(),
            rendered: Vec::new(),
        })
    }

    /// The `user_agent` object for `ua` (which includes `original`), as JSON text.
    pub(crate) fn render(&mut self, ua: &str) -> &str {
        let index = match self.cache.get(ua) {
            Some(&index) => index,
            None => {
                if self.rendered.len() >= CACHE_CAPACITY {
                    self.cache.clear();
                    self.rendered.clear();
                }
                self.missed = true;
                let parsed = self.rules().map(|rules| rules.parse(ua));
                let rendered = match parsed {
                    Some(Ok(v)) => v.to_string(),
                    Some(Err(e)) => {
                        // The embedded rules are checked by the tests, so this is memory
                        // exhaustion or worse; the agent is still delivered, unparsed.
                        tracing::error!(error = %e, "cannot compile a user-agent rule");
                        unparsed(ua).to_string()
                    }
                    None => unparsed(ua).to_string(),
                };
                self.rendered.push(rendered.into());
                self.cache.insert(ua.into(), self.rendered.len() - 1);
                self.rendered.len() - 1
            }
        };
        &self.rendered[index]
    }

    /// Frees the compiled rules if no new agent came since the last call; true if it did.
    ///
    /// The poller calls this after each page. Once the agents of an org are cached (a few
    /// pages into a backfill, and at rest) the rules are not needed. A new agent later reads
    /// them again, builds the prefilter and compiles what it needs.
    pub(crate) fn release_if_unused(&mut self) -> bool {
        if std::mem::take(&mut self.missed) {
            return false;
        }
        self.release()
    }

    /// Frees the compiled rules now; true if they were held. The poller calls this when it is
    /// caught up and waits for the next poll.
    pub(crate) fn release(&mut self) -> bool {
        self.missed = false;
        if self.rules.take().is_none() {
            return false;
        }
        crate::memory::return_free_memory();
        tracing::debug!("released the user-agent rules until a new agent comes");
        true
    }

    #[cfg(test)]
    /// True while the rules are held (tests and diagnostics).
    pub(crate) fn is_compiled(&self) -> bool {
        self.rules.is_some()
    }

    #[cfg(test)]
    /// How many regexes are compiled now (tests and diagnostics).
    pub(crate) fn compiled_rules(&self) -> usize {
        self.rules.as_ref().map_or(0, |r| r.compiled_count())
    }

    /// The rules, reading them if they were not held.
    fn rules(&mut self) -> Option<&mut Rules> {
        if self.rules.is_none() {
            let started = std::time::Instant::now();
            match Rules::new() {
                Ok(r) => {
                    tracing::debug!(
                        ms = started.elapsed().as_millis() as u64,
                        "read the user-agent rules for a new agent"
                    );
                    self.rules = Some(Box::new(r));
                }
                Err(e) => tracing::error!(error = %e, "cannot read the user-agent rules"),
            }
        }
        self.rules.as_deref_mut()
    }

    #[cfg(test)]
    /// The `user_agent` object for `ua` as a value (tests and tools).
    pub(crate) fn parse(&mut self, ua: &str) -> Value {
        serde_json::from_str(self.render(ua)).unwrap_or_default()
    }
}

#[cfg(test)]
/// Parses with every rule compiled ([`compile`]), without the cache.
pub(crate) fn parse_uncached(extractor: &ua_parser::Extractor<'_>, ua: &str) -> Value {
    let (agent, os, device) = extractor.extract(ua);
    render(ua, agent, os, device)
}

/// Formats what the rules found as Elasticsearch's `user_agent` processor does.
fn render(
    ua: &str,
    agent: Option<browser::ValueRef<'_>>,
    os: Option<os::ValueRef<'_>>,
    device: Option<device::ValueRef<'_>>,
) -> Value {
    let mut out = Map::new();
    out.insert("original".into(), ua.into());
    let name = agent.as_ref().map_or("Other", |a| a.family.as_ref());
    out.insert("name".into(), name.into());
    if let Some(version) = agent
        .as_ref()
        .and_then(|a| join_version([Some(a.major?), a.minor, a.patch, a.patch_minor]))
    {
        out.insert("version".into(), version.into());
    }
    if let Some(os) = os {
        let mut o = Map::new();
        let version = join_version([
            os.major.as_deref(),
            os.minor.as_deref(),
            os.patch.as_deref(),
            os.patch_minor.as_deref(),
        ]);
        if let Some(version) = version {
            o.insert("full".into(), format!("{} {version}", os.os).into());
            o.insert("version".into(), version.into());
        }
        o.insert("name".into(), os.os.as_ref().into());
        out.insert("os".into(), o.into());
    }
    let device = device.as_ref().map_or("Other", |d| d.device.as_ref());
    out.insert("device".into(), serde_json::json!({ "name": device }));
    Value::Object(out)
}

/// The object for an agent that could not be parsed: what the processor writes on no match.
fn unparsed(ua: &str) -> Value {
    serde_json::json!({ "original": ua, "name": "Other", "device": { "name": "Other" } })
}

/// `major.minor.patch.build`, stopping at the first missing part; `None` without a major.
fn join_version(parts: [Option<&str>; 4]) -> Option<String> {
    let mut version = String::new();
    for part in parts.into_iter().map_while(|p| p.filter(|p| !p.is_empty())) {
        if !version.is_empty() {
            version.push('.');
        }
        version.push_str(part);
    }
    (!version.is_empty()).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(ua: &str) -> Value {
        UserAgents::new().unwrap().parse(ua)
    }

    #[test]
    fn chrome_on_mac() {
        let ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/64.0.3282.186 Safari/537.36";
        assert_eq!(
            parse(ua),
            json!({"original": ua, "name": "Chrome", "version": "64.0.3282.186", "device": {"name": "Mac"},
                   "os": {"name": "Mac OS X", "version": "10.12.6", "full": "Mac OS X 10.12.6"}})
        );
    }

    #[test]
    fn slack_ios_app_has_no_browser_version() {
        let ua = "com.tinyspeck.chatlyio/23.07.10 (iPhone; iOS 16.5.1; Scale/3.00)";
        assert_eq!(
            parse(ua),
            json!({"original": ua, "name": "Mobile Safari UI/WKWebView", "device": {"name": "iPhone"},
                   "os": {"name": "iOS", "version": "16.5.1", "full": "iOS 16.5.1"}})
        );
    }

    #[test]
    fn slack_desktop_on_windows_10() {
        let ua = "Mozilla/5.0 (Windows NT 10.0.19045; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.36.140 Chrome/120.0.6099.227 Electron/28.2.0 Safari/537.36 OS_Product/Workstation Servicing_Channel/SAC Sonic Slack_SSB/4.36.140";
        let v = parse(ua);
        assert_eq!(v["name"], "Slack Desktop Client");
        assert_eq!(v["version"], "4.36.140");
        assert_eq!(
            v["os"],
            json!({"name": "Windows", "version": "10", "full": "Windows 10"})
        );
        assert_eq!(v["device"]["name"], "Other");
    }

    #[test]
    fn unknown_agent_is_other() {
        let v = parse("UA");
        assert_eq!(
            v,
            json!({"original": "UA", "name": "Other", "device": {"name": "Other"}})
        );
    }

    #[test]
    fn cache_returns_the_same_answer_and_stays_bounded() {
        let mut p = UserAgents::new().unwrap();
        let first = p.parse("curl/8.0.1");
        assert_eq!(p.parse("curl/8.0.1"), first);
        for i in 0..CACHE_CAPACITY + 10 {
            p.parse(&format!("agent/{i}"));
        }
        assert!(p.cache.len() <= CACHE_CAPACITY);
    }

    #[test]
    fn digits_are_ascii_as_in_elasticsearch() {
        // Java's `\d` does not match Arabic-Indic digits, so Elasticsearch reads no version here;
        // a Unicode `\d` would report "٦٤". (The ua-parser crate rewrites `\d` and `\w` as
        // ASCII classes, which also keeps the compiled rules at a quarter of the size.)
        let v = parse("Mozilla/5.0 (X11; Linux x86_64) Chrome/\u{666}\u{664}.0.1 Safari/537.36");
        assert_ne!(v["version"], "\u{666}\u{664}.0.1");
        assert!(
            !v["version"].as_str().unwrap_or("").contains('\u{666}'),
            "{v}"
        );
    }

    /// `uap-core/prefilter.json` is what the patterns of `uap-core/regexes.json` give; with
    /// `UPDATE_PREFILTER=1` it is rewritten from them (after the rules changed).
    #[test]
    fn prefilter_models_are_current() {
        let worked_out = work_out_prefilter();
        if std::env::var_os("UPDATE_PREFILTER").is_some() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/mapping/uap-core/prefilter.json"
            );
            let mut text = serde_json::to_string(&worked_out).unwrap();
            text.push('\n');
            std::fs::write(path, text).unwrap();
            return;
        }
        let saved = read_prefilter().unwrap();
        assert!(
            saved == worked_out,
            "uap-core/prefilter.json is stale: run UPDATE_PREFILTER=1 cargo test --lib prefilter_models_are_current"
        );
    }

    #[test]
    fn every_rule_still_compiles() {
        // Each rule on its own, as the lazy rules compile them, and all at once.
        let mut rules = Rules::new().unwrap();
        for i in 0..rules.browser.parsers.len() {
            rules.browser.compiled[i] =
                Some((rules.browser.build)(&rules.browser.parsers[i]).unwrap());
        }
        for i in 0..rules.os.parsers.len() {
            rules.os.compiled[i] = Some((rules.os.build)(&rules.os.parsers[i]).unwrap());
        }
        for i in 0..rules.device.parsers.len() {
            rules.device.compiled[i] =
                Some((rules.device.build)(&rules.device.parsers[i]).unwrap());
        }
        compile().unwrap();
    }

    /// Agents of every kind the rules tell apart: browsers, Slack's apps, phones and tablets
    /// (device rules that ignore case), bots, tools, odd and empty strings.
    const AGENTS: &[&str] = &[
        "",
        "UA",
        "conformance-audit-client",
        "Scrapers Inc",
        "curl/8.0.1",
        "python-requests/2.31.0",
        "Go-http-client/2.0",
        "okhttp/4.12.0",
        "PostmanRuntime/7.36.0",
        "Slack-Audit-Exporter/1.0 (+https://example.com)",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/64.0.3282.186 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:23.0) Gecko/20131011 Firefox/23.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.41.105 Chrome/130.0.6723.137 Electron/33.2.0 Safari/537.36 Sonic Slack_SSB/4.41.105",
        "Mozilla/5.0 (Windows NT 10.0.19045; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.36.140 Chrome/120.0.6099.227 Electron/28.2.0 Safari/537.36 OS_Product/Workstation Servicing_Channel/SAC Sonic Slack_SSB/4.36.140",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
        "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
        "com.tinyspeck.chatlyio/23.07.10 (iPhone; iOS 16.5.1; Scale/3.00)",
        "com.tinyspeck.chatlyio/24.11.20 (iPad; iOS 17.7; Scale/2.00)",
        "com.tinyspeck.chatlyio/23.04.40 (iPhone; iOS 1.4.1; Scale/3.00)",
        "Slack/24.12.10.0 (Android 15; Pixel 8 Pro)",
        "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.163 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; U; Android 4.0.3; ko-kr; LG-L160L Build/IML74K) AppleWebkit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/120.3.1 like Chrome/120.0.6099.230 Safari/537.36",
        "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.14977",
        "Mozilla/5.0 (PlayStation 4 3.11) AppleWebKit/537.73 (KHTML, like Gecko)",
        "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
        "MOZILLA/5.0 (LINUX; ANDROID 9; HUAWEI P30) APPLEWEBKIT/537.36 (KHTML, LIKE GECKO) CHROME/99.0 MOBILE SAFARI/537.36",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/\u{666}\u{664}.0.1 Safari/537.36",
    ];

    #[test]
    fn rules_compiled_one_by_one_answer_as_all_compiled_at_once() {
        let all = compile().unwrap();
        let mut lazy = UserAgents::new().unwrap();
        for ua in AGENTS {
            assert_eq!(lazy.parse(ua), parse_uncached(&all, ua), "{ua}");
        }
        // And from rules read afresh for each agent, so no rule is compiled by an earlier one.
        for ua in AGENTS {
            let mut fresh = UserAgents::new().unwrap();
            assert_eq!(fresh.parse(ua), parse_uncached(&all, ua), "{ua}");
        }
    }

    #[test]
    fn nothing_is_compiled_before_an_agent_and_then_only_what_it_needs() {
        let mut p = UserAgents::new().unwrap();
        assert!(!p.is_compiled());
        assert_eq!(p.compiled_rules(), 0);
        p.parse(AGENTS[12]);
        let total = {
            let r = Rules::new().unwrap();
            r.browser.parsers.len() + r.os.parsers.len() + r.device.parsers.len()
        };
        let needed = p.compiled_rules();
        assert!(
            needed > 0 && needed * 10 < total,
            "{needed} of {total} compiled"
        );
        // A cached agent compiles nothing more.
        p.parse(AGENTS[12]);
        assert_eq!(p.compiled_rules(), needed);
    }

    #[test]
    fn rules_are_released_when_no_new_agent_came_and_compiled_again_for_one() {
        let mut p = UserAgents::new().unwrap();
        let chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/64.0.3282.186 Safari/537.36";
        let first = p.parse(chrome);
        // A page that parsed a new agent keeps them.
        assert!(!p.release_if_unused());
        assert!(p.is_compiled());
        // A page of known agents only: released.
        assert_eq!(p.parse(chrome), first);
        assert!(p.release_if_unused());
        assert!(!p.is_compiled());
        // Known agents are still answered from the cache, without compiling.
        assert_eq!(p.parse(chrome), first);
        assert!(!p.is_compiled());
        // A new one compiles them again, with the same answers as before.
        let v = p.parse("curl/8.0.1");
        assert!(p.is_compiled());
        assert_eq!(v["name"], "curl");
        p.cache.clear();
        p.rendered.clear();
        assert_eq!(p.parse(chrome), first);
        // Released on demand whatever came, and only once.
        assert!(p.release());
        assert!(!p.release());
        assert!(!p.is_compiled());
    }
}
