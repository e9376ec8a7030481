//! `context.ua` → ECS `user_agent.*`, parsed with the uap-core rules and cached.
//!
//! NOTICE: `uap-core/regexes.yaml` (beside this file) is from the ua-parser project
//! (<https://github.com/ua-parser/uap-core>, v0.18.0 as shipped in the `ua-parser` 0.2.2 crate),
//! Copyright 2009 Google Inc., licensed under the Apache License 2.0 (`uap-core/LICENSE`).
//! It is embedded unchanged so the binary needs no data file at run time.
//!
//! Output follows Elasticsearch's `user_agent` processor, which Elastic's Slack integration
//! uses: `name` is the browser family ("Other" when nothing matches), `version` joins the
//! version parts with dots, `os.full` is `os.name` + " " + `os.version`, and `device.name` is the
//! device family ("Other" when nothing matches). Parsing costs tens of microseconds; an org
//! has few distinct agents, so results are cached by the raw string.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The uap-core rules, compiled into the binary.
const REGEXES_YAML: &str = include_str!("uap-core/regexes.yaml");

/// Distinct agents kept before the cache is emptied and refilled; bounds memory on hostile input.
const CACHE_CAPACITY: usize = 4096;

/// The compiled rules, built once per process (compiling takes a noticeable fraction of a second).
static EXTRACTOR: OnceLock<Result<ua_parser::Extractor<'static>, String>> = OnceLock::new();

/// Compiles the embedded rules on first use.
///
/// # Errors
///
/// The rules do not compile; a build defect, reported as text so callers can wrap it.
pub fn extractor() -> Result<&'static ua_parser::Extractor<'static>, String> {
    EXTRACTOR
        .get_or_init(|| {
            let regexes: ua_parser::Regexes<'static> = serde_yaml::from_str(REGEXES_YAML)
                .map_err(|e| format!("cannot read regexes.yaml: {e}"))?;
            ua_parser::Extractor::try_from(regexes)
                .map_err(|e| format!("cannot compile regexes.yaml: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Parses user agents into `user_agent` objects, remembering each distinct string.
pub struct UserAgents {
    extractor: &'static ua_parser::Extractor<'static>,
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
            extractor: extractor()?,
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
                self.rendered
                    .push(parse_uncached(self.extractor, ua).to_string().into());
                self.cache.insert(ua.into(), self.rendered.len() - 1);
                self.rendered.len() - 1
            }
        };
        &self.rendered[index]
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
}
