//! The local allowlist (`--allowlist FILE`): trusted networks, ASNs, user agents and people.
//!
//! An anomaly that matches is annotated (`slack.audit.analysis.allowlisted`,
//! `allowlist_match`), never dropped, and kept out of correlation and baselines. This is our
//! own list, separate from Slack's upstream allowlist (`admin.audit.anomaly.allow.*`, which we
//! never write): Slack's key names `trusted_cidr` and `trusted_asn(s)` are accepted as aliases
//! so its `getItem` answer can be pasted in.

use super::fields::{self, Glob};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;

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

/// Which entry of the allowlist an event matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowMatch {
    /// `excluded_user`, `cidr`, `asn` or `user_agent`.
    pub(crate) kind: &'static str,
    /// The entry as written in the file.
    pub(crate) entry: String,
}

/// A validated allowlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Allowlist {
    cidrs: Vec<(IpNet, String)>,
    asns: BTreeSet<u64>,
    user_agents: Vec<Glob>,
    users: BTreeSet<String>,
}

impl Allowlist {
    /// Parses and validates an allowlist file's text.
    ///
    /// # Errors
    ///
    /// A message naming the bad entry.
    pub(crate) fn parse(text: &str) -> Result<Allowlist, String> {
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
        })
    }

    /// User-agent globs the allowlist adds to the expected ones.
    pub(crate) fn user_agents(&self) -> &[Glob] {
        &self.user_agents
    }

    /// The first entry `doc` matches, checked in a fixed order (person, network, ASN, client)
    /// so the annotation is deterministic when several match.
    pub(crate) fn matches(&self, doc: &Value) -> Option<AllowMatch> {
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
        if let Some(ip) =
            fields::string(doc, &["source", "ip"]).and_then(|s| s.parse::<IpAddr>().ok())
        {
            if let Some((_, entry)) = self.cidrs.iter().find(|(net, _)| net.contains(&ip)) {
                return Some(AllowMatch {
                    kind: "cidr",
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
        }
        let ua = fields::string(doc, &["user_agent", "original"])?;
        let glob = self.user_agents.iter().find(|g| g.matches(&ua))?;
        Some(AllowMatch {
            kind: "user_agent",
            entry: glob.as_str().to_string(),
        })
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
    use serde_json::json;

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
