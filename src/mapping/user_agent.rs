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

use serde_json::{Map, Value};
use std::collections::HashMap;

/// The uap-core rules (as JSON), compiled into the binary.
const REGEXES_JSON: &str = include_str!("uap-core/regexes.json");

/// Distinct agents kept before the cache is emptied and refilled; bounds memory on hostile input.
const CACHE_CAPACITY: usize = 4096;

/// Compiles the embedded rules: about 0.15 s of CPU and 25 MB of heap.
///
/// # Errors
///
/// The rules do not compile; a build defect, reported as text so callers can wrap it.
pub fn compile() -> Result<ua_parser::Extractor<'static>, String> {
    let regexes: ua_parser::Regexes<'static> =
        serde_json::from_str(REGEXES_JSON).map_err(|e| format!("cannot read regexes.json: {e}"))?;
    ua_parser::Extractor::try_from(regexes).map_err(|e| format!("cannot compile regexes.json: {e}"))
}

/// Parses user agents into `user_agent` objects, remembering each distinct string.
pub struct UserAgents {
    /// The compiled rules while they are in use; `None` once released (see
    /// [`UserAgents::release_if_unused`]). They are most of our memory at rest.
    extractor: Option<Box<ua_parser::Extractor<'static>>>,
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
            .field("compiled", &self.extractor.is_some())
            .finish()
    }
}

impl UserAgents {
    /// A parser over the embedded rules.
    ///
    /// # Errors
    ///
    /// The embedded rules do not compile (a build defect).
    pub fn new() -> Result<UserAgents, String> {
        Ok(UserAgents {
            // Compiled now, not on the first agent: a defect shows at start, and the first
            // page needs the rules anyway.
            extractor: Some(Box::new(compile()?)),
            missed: false,
            cache: HashMap::new(),
            rendered: Vec::new(),
        })
    }

    /// The `user_agent` object for `ua` (which includes `original`), as JSON text.
    pub fn render(&mut self, ua: &str) -> &str {
        let index = match self.cache.get(ua) {
            Some(&index) => index,
            None => {
                if self.rendered.len() >= CACHE_CAPACITY {
                    self.cache.clear();
                    self.rendered.clear();
                }
                self.missed = true;
                let rendered = match self.extractor() {
                    Some(extractor) => parse_uncached(extractor, ua).to_string(),
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
    /// pages into a backfill, and at rest) the rules are not needed, and holding them would
    /// be most of the process's resident memory. A new agent later compiles them again, which
    /// costs about 0.15 s of CPU.
    pub fn release_if_unused(&mut self) -> bool {
        if std::mem::take(&mut self.missed) {
            return false;
        }
        self.release()
    }

    /// Frees the compiled rules now; true if they were held. The poller calls this when it is
    /// caught up and waits for the next poll: idle memory matters more to a sidecar than the
    /// 0.15 s a new agent then costs, at most once per poll.
    pub fn release(&mut self) -> bool {
        self.missed = false;
        if self.extractor.take().is_none() {
            return false;
        }
        crate::memory::return_free_memory();
        tracing::debug!("released the compiled user-agent rules until a new agent comes");
        true
    }

    /// True while the rules are compiled (tests and diagnostics).
    pub fn is_compiled(&self) -> bool {
        self.extractor.is_some()
    }

    /// The compiled rules, compiling them again if they were released.
    fn extractor(&mut self) -> Option<&ua_parser::Extractor<'static>> {
        if self.extractor.is_none() {
            let started = std::time::Instant::now();
            match compile() {
                Ok(e) => {
                    tracing::debug!(
                        ms = started.elapsed().as_millis() as u64,
                        "compiled the user-agent rules for a new agent"
                    );
                    self.extractor = Some(Box::new(e));
                }
                // They compiled at start from the same embedded text, so this is memory
                // exhaustion or worse; the agent is still delivered, unparsed.
                Err(e) => tracing::error!(error = %e, "cannot compile the user-agent rules"),
            }
        }
        self.extractor.as_deref()
    }

    /// The `user_agent` object for `ua` as a value (tests and tools).
    pub fn parse(&mut self, ua: &str) -> Value {
        serde_json::from_str(self.render(ua)).unwrap_or_default()
    }
}

/// Parses without the cache, formatting as Elasticsearch's `user_agent` processor does.
pub fn parse_uncached(extractor: &ua_parser::Extractor<'_>, ua: &str) -> Value {
    let (agent, os, device) = extractor.extract(ua);
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

    #[test]
    fn every_rule_still_compiles() {
        // Compiling again after a release must work every time, from the same text.
        compile().unwrap();
        compile().unwrap();
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
