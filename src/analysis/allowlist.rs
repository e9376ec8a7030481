//! The allowlist: trusted networks, ASNs, user agents and people, from the local file
//! (`--allowlist FILE`) and, with `--slack-allowlist`, Slack's own anomaly allowlist.
//!
//! An anomaly that matches is annotated (`slack.audit.analysis.allowlisted`,
//! `allowlist_match`), never dropped, and kept out of correlation and baselines. The local file
//! is TOML; Slack's key names `trusted_cidr` and `trusted_asn(s)` are accepted as aliases.
//! Slack's list (`admin.audit.anomaly.allow.getItem`, which we read and never write) is merged
//! beside it: `run --slack-allowlist` reads it at start and hourly ([`keep_slack_allowlist`])
//! into a live part shared by every clone of the allowlist, and its matches say where they came
//! from (`slack_cidr`, `slack_asn`). So that `analyze` can replay what `run` saw without
//! calling Slack, a file holding `getItem`'s JSON answer as Slack sent it loads as Slack's list.

use super::fields::{self, Glob};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often `--slack-allowlist` reads Slack's list again.
pub(crate) const SLACK_REFRESH: Duration = Duration::from_secs(3600);
/// The first retry after a failed read; retries double up to [`SLACK_REFRESH`].
const SLACK_RETRY_MIN: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowlistFile {
    #[serde(default, alias = "trusted_cidr")]
    trusted_cidrs: Vec<String>,
    #[serde(default, alias = "trusted_asn")]
    trusted_asns: Vec<AsnEntry>,
    #[serde(default)]
    user_agents: Vec<String>,
    #[serde(default)]
    excluded_users: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AsnEntry {
    Number(u64),
    Text(String),
}

/// `admin.audit.anomaly.allow.getItem`'s answer, pasted into a file.
#[derive(Debug, Deserialize)]
struct SlackAnswer {
    ok: Option<bool>,
    error: Option<String>,
    #[serde(default)]
    trusted_cidr: Vec<String>,
    #[serde(default)]
    trusted_asns: Vec<u64>,
}

/// Which entry of the allowlist an event matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowMatch {
    /// `excluded_user`, `cidr`, `asn` or `user_agent` (the local file), `slack_cidr` or
    /// `slack_asn` (Slack's list).
    pub(crate) kind: &'static str,
    /// The entry as written in the file.
    pub(crate) entry: String,
}

/// A validated allowlist.
#[derive(Debug, Clone, Default)]
pub(crate) struct Allowlist {
    cidrs: Vec<(IpNet, String)>,
    asns: BTreeSet<u64>,
    user_agents: Vec<Glob>,
    users: BTreeSet<String>,
    /// Slack's list: shared by every clone, replaced whole by [`SlackPart::replace`].
    slack: Option<SlackPart>,
}

/// Two allowlists are equal when they hold the same entries; one with Slack's list attached
/// never equals one without (even while Slack's list is empty, it may fill in at any time).
impl PartialEq for Allowlist {
    fn eq(&self, other: &Allowlist) -> bool {
        self.cidrs == other.cidrs
            && self.asns == other.asns
            && self.user_agents == other.user_agents
            && self.users == other.users
            && match (&self.slack, &other.slack) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(&a.0, &b.0) || *a.read() == *b.read(),
                _ => false,
            }
    }
}

impl Eq for Allowlist {}

/// Slack's networks, validated.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SlackEntries {
    cidrs: Vec<(IpNet, String)>,
    asns: BTreeSet<u64>,
}

impl SlackEntries {
    /// Validates Slack's answer; an entry that is no CIDR is left out and named in the
    /// returned list (leaving it out trusts less, never more).
    pub(crate) fn from_answer(cidrs: &[String], asns: &[u64]) -> (SlackEntries, Vec<String>) {
        let mut entries = SlackEntries::default();
        let mut bad = Vec::new();
        for c in cidrs {
            match parse_net(c) {
                Ok(net) => entries.cidrs.push((net, c.trim().to_string())),
                Err(m) => bad.push(m.replace("trusted_cidrs", "trusted_cidr")),
            }
        }
        entries.asns.extend(asns.iter().copied());
        (entries, bad)
    }

    /// How many CIDRs and ASNs it holds.
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.cidrs.len(), self.asns.len())
    }
}

/// The live part of the allowlist that holds Slack's list; a clone is a handle to the same.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlackPart(Arc<SlackShared>);

#[derive(Debug, Default)]
struct SlackShared {
    entries: RwLock<SlackEntries>,
    /// Set once the first read from Slack ended, well or not.
    first_read: tokio::sync::watch::Sender<bool>,
}

impl SlackPart {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, SlackEntries> {
        // A poisoned lock means a panic during a plain assignment; the value is whole.
        self.0.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces Slack's list with `entries`.
    pub(crate) fn replace(&self, entries: SlackEntries) {
        *self.0.entries.write().unwrap_or_else(|p| p.into_inner()) = entries;
    }

    /// Says that the first read ended (so `run` may start reading audit logs).
    fn first_read_done(&self) {
        self.0.first_read.send_replace(true);
    }

    /// Waits until the first read from Slack ended, at most `limit`. Returns whether it did.
    pub(crate) async fn wait_first_read(&self, limit: Duration) -> bool {
        let mut rx = self.0.first_read.subscribe();
        let done = tokio::time::timeout(limit, rx.wait_for(|done| *done))
            .await
            .is_ok_and(|r| r.is_ok());
        done
    }
}

impl Allowlist {
    /// Parses and validates an allowlist file's text.
    ///
    /// # Errors
    ///
    /// A message naming the bad entry.
    pub(crate) fn parse(text: &str) -> Result<Allowlist, String> {
        if text.trim_start().starts_with('{') {
            return Allowlist::parse_slack_answer(text);
        }
        let file: AllowlistFile =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        let mut cidrs = Vec::new();
        for c in &file.trusted_cidrs {
            cidrs.push((parse_net(c)?, c.trim().to_string()));
        }
        let mut asns = BTreeSet::new();
        for a in &file.trusted_asns {
            asns.insert(match a {
                AsnEntry::Number(n) => *n,
                AsnEntry::Text(s) => fields::parse_asn(s).ok_or_else(|| {
                    format!("trusted_asns: {s:?} is not an AS number (write 16509 or \"AS16509\")")
                })?,
            });
        }
        let mut user_agents = Vec::new();
        for ua in &file.user_agents {
            if ua.trim().is_empty() || ua.chars().all(|c| c == '*') {
                return Err(format!("user_agents: {ua:?} would trust every client; list the automation you expect, e.g. \"BackupBot/*\""));
            }
            user_agents.push(Glob::new(ua));
        }
        let mut users = BTreeSet::new();
        for u in &file.excluded_users {
            let u = u.trim();
            if u.is_empty() {
                return Err(
                    "excluded_users: an entry is empty; give a user id (U0123ABCD) or an email"
                        .into(),
                );
            }
            users.insert(u.to_ascii_lowercase());
        }
        Ok(Allowlist {
            cidrs,
            asns,
            user_agents,
            users,
            slack: None,
        })
    }

    /// `admin.audit.anomaly.allow.getItem`'s JSON answer, pasted into a file: Slack's list,
    /// whose matches say `slack_cidr` and `slack_asn` as they do in `run --slack-allowlist`.
    fn parse_slack_answer(text: &str) -> Result<Allowlist, String> {
        let answer: SlackAnswer = serde_json::from_str(text).map_err(|e| {
            format!("a JSON allowlist must be the answer of admin.audit.anomaly.allow.getItem ({{\"ok\":true,\"trusted_cidr\":[...],\"trusted_asns\":[...]}}): {e}")
        })?;
        if answer.ok == Some(false) {
            return Err(format!(
                "this is Slack's error answer ({}), not an allowlist",
                answer.error.as_deref().unwrap_or("no error given")
            ));
        }
        let (entries, bad) = SlackEntries::from_answer(&answer.trusted_cidr, &answer.trusted_asns);
        if let Some(first) = bad.first() {
            return Err(first.clone());
        }
        let part = SlackPart::default();
        part.replace(entries);
        Ok(Allowlist {
            slack: Some(part),
            ..Allowlist::default()
        })
    }

    /// This allowlist with a live part for Slack's list (empty until [`keep_slack_allowlist`]
    /// fills it), and the handle that fills it. A Slack part already there (a pasted answer)
    /// is kept and handed out.
    pub(crate) fn with_slack(&self) -> (Allowlist, SlackPart) {
        let part = self.slack.clone().unwrap_or_default();
        let list = Allowlist {
            slack: Some(part.clone()),
            ..self.clone()
        };
        (list, part)
    }

    /// The handle of Slack's list, when one is attached.
    pub(crate) fn slack_part(&self) -> Option<SlackPart> {
        self.slack.clone()
    }

    /// User-agent globs the allowlist adds to the expected ones.
    pub(crate) fn user_agents(&self) -> &[Glob] {
        &self.user_agents
    }

    /// The first entry `doc` matches, checked in a fixed order (person, network, ASN, client)
    /// so the annotation is deterministic when several match.
    pub(crate) fn matches(&self, doc: &impl crate::doc::Doc) -> Option<AllowMatch> {
        for path in [&["user", "id"][..], &["user", "email"][..]] {
            if let Some(u) = fields::string(doc, path) {
                if self.users.contains(&u.to_ascii_lowercase()) {
                    return Some(AllowMatch {
                        kind: "excluded_user",
                        entry: u,
                    });
                }
            }
        }
        let ip = fields::string(doc, &["source", "ip"]).and_then(|s| s.parse::<IpAddr>().ok());
        if let Some(ip) = ip {
            if let Some((_, entry)) = self.cidrs.iter().find(|(net, _)| net.contains(&ip)) {
                return Some(AllowMatch {
                    kind: "cidr",
                    entry: entry.clone(),
                });
            }
        }
        let slack = self.slack.as_ref().map(SlackPart::read);
        if let (Some(ip), Some(slack)) = (ip, &slack) {
            if let Some((_, entry)) = slack.cidrs.iter().find(|(net, _)| net.contains(&ip)) {
                return Some(AllowMatch {
                    kind: "slack_cidr",
                    entry: entry.clone(),
                });
            }
        }
        if let Some(asn) = fields::unsigned(doc, &["source", "as", "number"]) {
            if self.asns.contains(&asn) {
                return Some(AllowMatch {
                    kind: "asn",
                    entry: asn.to_string(),
                });
            }
            if slack.as_ref().is_some_and(|s| s.asns.contains(&asn)) {
                return Some(AllowMatch {
                    kind: "slack_asn",
                    entry: asn.to_string(),
                });
            }
        }
        drop(slack);
        let ua = fields::string(doc, &["user_agent", "original"])?;
        let glob = self.user_agents.iter().find(|g| g.matches(&ua))?;
        Some(AllowMatch {
            kind: "user_agent",
            entry: glob.as_str().to_string(),
        })
    }
}

/// Keeps Slack's anomaly allowlist in `part`: reads it with the admin token now, then every
/// [`SLACK_REFRESH`], until shutdown. A failed read is logged and retried (from a minute,
/// doubling up to the refresh period); the last good list stays meanwhile. Nothing is ever
/// written to Slack. It never stops the reader: it runs beside it.
pub(crate) async fn keep_slack_allowlist(
    api: crate::slack::web_api::WebApi,
    part: SlackPart,
    shutdown: crate::shutdown::Shutdown,
) {
    keep_slack_allowlist_every(api, part, shutdown, SLACK_REFRESH, SLACK_RETRY_MIN).await;
}

/// [`keep_slack_allowlist`] with its periods given (tests shorten them).
async fn keep_slack_allowlist_every(
    api: crate::slack::web_api::WebApi,
    part: SlackPart,
    mut shutdown: crate::shutdown::Shutdown,
    refresh: Duration,
    retry_min: Duration,
) {
    let mut backoff = crate::retry::Backoff::new(retry_min, refresh);
    loop {
        let result = tokio::select! {
            r = api.anomaly_allowlist() => r,
            _ = shutdown.wait() => return,
        };
        let wait = match result {
            Ok(answer) => {
                let (entries, bad) =
                    SlackEntries::from_answer(&answer.trusted_cidr, &answer.trusted_asns);
                for reason in &bad {
                    tracing::warn!(%reason, "Slack's allowlist holds an entry that is no CIDR; left out");
                }
                let (cidrs, asns) = entries.len();
                tracing::info!(cidrs, asns, "read Slack's anomaly allowlist");
                part.replace(entries);
                backoff.reset();
                refresh
            }
            Err(e) => {
                let wait = backoff.next().unwrap_or(refresh);
                tracing::warn!(error = %e, code = %e.code(), retry_in_secs = wait.as_secs(), "cannot read Slack's anomaly allowlist; keeping the last list read");
                wait
            }
        };
        part.first_read_done();
        if shutdown.sleep(wait).await {
            return;
        }
    }
}

/// A CIDR, or a bare address meaning just that host.
fn parse_net(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        // Normalise 10.1.2.3/8 to 10.0.0.0/8: containment is the same, the intent clearer.
        return Ok(net.trunc());
    }
    t.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("trusted_cidrs: {s:?} is not a CIDR range (write 203.0.113.0/24 or 2001:db8::/32)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn list() -> Allowlist {
        Allowlist::parse(
            r#"
            trusted_cidrs = ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]
            trusted_asns = [16509, "AS8075"]
            user_agents = ["BackupBot/*"]
            excluded_users = ["U0SERVICE", "Scanner@Example.com"]
            "#,
        )
        .unwrap()
    }

    #[test]
    fn each_kind_matches() {
        let l = list();
        let m = |d: Value| l.matches(&d).map(|m| (m.kind, m.entry));
        assert_eq!(
            m(json!({"source": {"ip": "203.0.113.9"}})),
            Some(("cidr", "203.0.113.0/24".into()))
        );
        assert_eq!(
            m(json!({"source": {"ip": "2001:db8::1"}})),
            Some(("cidr", "2001:db8::/32".into()))
        );
        assert_eq!(
            m(json!({"source": {"ip": "198.51.100.7"}})),
            Some(("cidr", "198.51.100.7".into()))
        );
        assert_eq!(
            m(json!({"source": {"as": {"number": 8075}}})),
            Some(("asn", "8075".into()))
        );
        assert_eq!(
            m(json!({"user_agent": {"original": "backupbot/2.1"}})),
            Some(("user_agent", "BackupBot/*".into()))
        );
        assert_eq!(
            m(json!({"user": {"email": "scanner@example.com"}})),
            Some(("excluded_user", "scanner@example.com".into()))
        );
        assert_eq!(
            m(json!({"user": {"id": "U0SERVICE"}})),
            Some(("excluded_user", "U0SERVICE".into()))
        );
        assert_eq!(
            m(json!({"source": {"ip": "192.0.2.1", "as": {"number": 1}}, "user": {"id": "U1"}})),
            None
        );
        assert_eq!(m(json!({"source": {"ip": 5}, "user": [1]})), None);
    }

    #[test]
    fn slack_key_names_are_accepted() {
        let l =
            Allowlist::parse("trusted_cidr = [\"8.8.8.0/24\"]\ntrusted_asn = [34245]\n").unwrap();
        assert!(l.matches(&json!({"source": {"ip": "8.8.8.8"}})).is_some());
        assert!(l
            .matches(&json!({"source": {"as": {"number": 34245}}}))
            .is_some());
    }

    #[test]
    fn slack_entries_match_after_the_local_ones_and_say_where_they_came_from() {
        let (l, part) = list().with_slack();
        let m = |d: Value| l.matches(&d).map(|m| (m.kind, m.entry));
        assert_eq!(m(json!({"source": {"ip": "192.0.2.9"}})), None);
        let (entries, bad) = SlackEntries::from_answer(
            &[
                "192.0.2.0/24".into(),
                "203.0.113.0/25".into(),
                "not-a-net".into(),
            ],
            &[64500, 8075],
        );
        assert_eq!(bad.len(), 1);
        assert!(bad[0].contains("not-a-net") && bad[0].contains("trusted_cidr"));
        part.replace(entries);
        // Every clone of the allowlist sees Slack's list as soon as it is replaced.
        assert_eq!(
            m(json!({"source": {"ip": "192.0.2.9"}})),
            Some(("slack_cidr", "192.0.2.0/24".into()))
        );
        assert_eq!(
            m(json!({"source": {"as": {"number": 64500}}})),
            Some(("slack_asn", "64500".into()))
        );
        // Where both lists hold an entry, the local one is named.
        assert_eq!(
            m(json!({"source": {"ip": "203.0.113.9"}})),
            Some(("cidr", "203.0.113.0/24".into()))
        );
        assert_eq!(
            m(json!({"source": {"as": {"number": 8075}}})),
            Some(("asn", "8075".into()))
        );
        part.replace(SlackEntries::default());
        assert_eq!(m(json!({"source": {"ip": "192.0.2.9"}})), None);
    }

    #[test]
    fn with_slack_attached_the_list_is_never_the_empty_default() {
        let (empty, _part) = Allowlist::default().with_slack();
        assert_ne!(empty, Allowlist::default());
        assert_eq!(empty.clone(), empty);
        assert_eq!(Allowlist::default(), Allowlist::default());
    }

    #[test]
    fn getitems_answer_pasted_into_a_file_loads_as_slacks_list() {
        let l = Allowlist::parse(
            r#"{"ok":true,"trusted_cidr":["8.8.8.8/24","8.8.4.4/22"],"trusted_asns":[12345,12344]}"#,
        )
        .unwrap();
        let kind = |d: Value| l.matches(&d).map(|m| m.kind);
        assert_eq!(
            kind(json!({"source": {"ip": "8.8.8.200"}})),
            Some("slack_cidr")
        );
        assert_eq!(
            kind(json!({"source": {"ip": "8.8.6.1"}})),
            Some("slack_cidr")
        );
        assert_eq!(
            kind(json!({"source": {"as": {"number": 12344}}})),
            Some("slack_asn")
        );
        assert_eq!(kind(json!({"source": {"ip": "9.9.9.9"}})), None);
        let err = Allowlist::parse(r#"{"ok":false,"error":"not_an_admin"}"#).unwrap_err();
        assert!(
            err.contains("not_an_admin") && err.contains("error answer"),
            "{err}"
        );
        let err = Allowlist::parse(r#"{"ok":true,"trusted_cidr":["8.8.8.8/40"]}"#).unwrap_err();
        assert!(err.contains("8.8.8.8/40"), "{err}");
        let err = Allowlist::parse(r#"{"ok":true,"trusted_asns":["AS1"]}"#).unwrap_err();
        assert!(err.contains("getItem"), "{err}");
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(Allowlist::parse("trusted_cidrs = [\"10.0.0.0/33\"]")
            .unwrap_err()
            .contains("10.0.0.0/33"));
        assert!(Allowlist::parse("trusted_asns = [\"Amazon\"]")
            .unwrap_err()
            .contains("Amazon"));
        assert!(Allowlist::parse("user_agents = [\"*\"]")
            .unwrap_err()
            .contains("every client"));
        assert!(Allowlist::parse("trusted_ips = []")
            .unwrap_err()
            .contains("trusted_ips"));
    }
}

/// The reader of Slack's list against the simulator: retried after a failure, refreshed, and
/// stopped by shutdown.
#[cfg(test)]
#[cfg(feature = "simulator")]
mod against_simulator {
    use super::*;
    use crate::shutdown::Shutdown;
    use crate::simulate::{start, Reply, SimAllowlist, SimOptions};
    use crate::slack::web_api::{Limits, WebApi};
    use serde_json::json;

    #[tokio::test]
    async fn a_failed_read_is_retried_and_each_refresh_replaces_slacks_list() {
        let sim = start(
            "127.0.0.1:0".parse().unwrap(),
            SimOptions {
                admin_token: Some("xoxp-admin".into()),
                slack_allowlist: SimAllowlist {
                    trusted_cidr: vec!["192.0.2.0/24".into()],
                    trusted_asns: vec![],
                },
                ..SimOptions::default()
            },
            Shutdown::never(),
        )
        .await
        .unwrap();
        sim.script_web_api([Reply::error("missing_scope")]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin");
        std::fs::write(&path, "xoxp-admin").unwrap();
        let token =
            crate::secret_file::SecretFile::open(&path, crate::slack::client::check_token).unwrap();
        let limits = Limits {
            calls_per_minute: 60_000,
            ..Limits::default()
        };
        let api = WebApi::new(url::Url::parse(&sim.web_api_url()).unwrap(), token, limits).unwrap();
        let (list, part) = Allowlist::default().with_slack();
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(keep_slack_allowlist_every(
            api,
            part.clone(),
            shutdown,
            Duration::from_millis(20),
            Duration::from_millis(1),
        ));
        let kind = |ip: &str| list.matches(&json!({"source": {"ip": ip}})).map(|m| m.kind);
        // The first read fails (missing_scope); a retry reads the list. A call's answer
        // is applied before the next call goes out, so the third call says the second's is in.
        assert!(part.wait_first_read(Duration::from_secs(30)).await);
        sim.wait_web_api_calls(3).await;
        assert_eq!(kind("192.0.2.7"), Some("slack_cidr"));
        // Slack's list changes: a later refresh replaces ours, entry removed included.
        sim.set_slack_allowlist(SimAllowlist {
            trusted_cidr: vec!["198.51.100.0/24".into()],
            trusted_asns: vec![],
        });
        // The call after the next one read the new list (the next may have been answered
        // before the change), and the one after it says that answer is in.
        let seen = sim.web_api_calls().len();
        sim.wait_web_api_calls(seen + 3).await;
        assert_eq!(kind("198.51.100.7"), Some("slack_cidr"));
        assert_eq!(kind("192.0.2.7"), None);
        let calls = sim.web_api_calls();
        assert_eq!(calls[0].error.as_deref(), Some("missing_scope"));
        assert!(calls
            .iter()
            .all(|c| c.method == "admin.audit.anomaly.allow.getItem"));
        trigger.trigger();
        task.await.unwrap();
    }
}
