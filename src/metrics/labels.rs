//! Bounded label values: a fixed list of well-known actions and the documented anomaly
//! reasons, everything else folded into `other`.
//!
//! Slack adds actions every month and `details.reason` is free text to us, so a label taken
//! straight from a document would let Slack grow the number of time series without bound.
//! The lists below are the actions the mapping categorises (docs/mapping.md) plus those the
//! analytics care about (docs/slack-api.md §6), and the 18 reasons of docs/slack-api.md §7.

use crate::doc::{Doc, Field};

/// Actions counted under their own name; sorted, so lookup is a binary search.
pub(crate) const KNOWN_ACTIONS: &[&str] = &[
    "anomaly",
    "app_installed",
    "app_uninstalled",
    "audit_logs_export_csv_started",
    "audit_logs_export_json_started",
    "audit_logs_records_searched",
    "bulk_session_reset_by_admin",
    "file_download_blocked",
    "file_downloaded",
    "file_downloaded_blocked",
    "file_malicious_content_detected",
    "file_public_link_created",
    "file_public_link_revoked",
    "file_shared",
    "file_uploaded",
    "pref.anomaly_event_response_changed",
    "pref.block_file_download_for_unapproved_ip",
    "role_change_to_admin",
    "role_change_to_guest",
    "role_change_to_owner",
    "role_change_to_user",
    "team_authorized_ip_range_set",
    "user_added_to_usergroup",
    "user_created",
    "user_deactivated",
    "user_email_updated",
    "user_login",
    "user_login_failed",
    "user_logout",
    "user_reactivated",
    "user_removed_from_usergroup",
    "user_session_invalidated",
    "user_session_reset_by_admin",
    "user_sessions_reset_by_anomaly_event_response",
];

/// The documented `details.reason` values of anomaly events, sorted: every reason in Slack's
/// anomalous-events reference (docs/slack-api.md §7), plus `unexpected_user_agent`, which our
/// own UA check also emits. One list: the analysis rules validate reasons against it too.
pub(crate) const KNOWN_REASONS: &[&str] = &[
    "asn",
    "excessive_downloads",
    "excessive_file_shares",
    "excessive_malware_uploads",
    "ip_address",
    "potential_spam",
    "search_volume",
    "session_fingerprint",
    "spoofed_user_agent",
    "tor",
    "unexpected_admin_action",
    "unexpected_api_call_volume",
    "unexpected_client",
    "unexpected_credential_testing",
    "unexpected_message_deletion",
    "unexpected_scraping",
    "unexpected_user_agent",
    "user_agent",
];

/// `event.kind` values the pipeline produces.
pub(crate) const KNOWN_KINDS: &[&str] = &["alert", "event", "pipeline_error"];

/// The label for anything not in a list.
pub(crate) const OTHER: &str = "other";

fn index_in(list: &[&'static str], value: Option<&str>) -> usize {
    value
        .and_then(|v| list.binary_search(&v).ok())
        .unwrap_or(list.len())
}

fn name_at(list: &[&'static str], i: usize) -> &'static str {
    list.get(i).copied().unwrap_or(OTHER)
}

/// The label for an `event.action`.
#[cfg(test)]
pub(crate) fn action(value: Option<&str>) -> &'static str {
    name_at(KNOWN_ACTIONS, index_in(KNOWN_ACTIONS, value))
}

/// The label for a `details.reason` item.
#[cfg(test)]
pub(crate) fn reason(value: &str) -> &'static str {
    name_at(KNOWN_REASONS, index_in(KNOWN_REASONS, Some(value)))
}

/// The label for a request status: a three-digit HTTP code or an error kind (both bounded by
/// construction in the client); anything else is folded into `other`.
pub(crate) fn status(value: &str) -> String {
    let code = value.len() == 3 && value.bytes().all(|b| b.is_ascii_digit());
    let kind = !value.is_empty()
        && value.len() <= 32
        && value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if code || kind {
        value.to_string()
    } else {
        OTHER.to_string()
    }
}

/// Counts of one page's documents by bounded labels, so that each counter is updated once
/// per page rather than once per document.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    /// `[action][kind]`, the last row and column being `other`.
    emitted: Vec<[u64; 4]>,
    /// Per reason, the last being `other`.
    reasons: Vec<u64>,
    /// Documents with `event.kind: pipeline_error`.
    pub(crate) pipeline_errors: u64,
    /// Findings by `(rule.id, severity)`. Rule ids come from the loaded rules file (and the
    /// analysis's own baseline rules), so the label set stays as small as that file.
    findings: Vec<(String, &'static str, u64)>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Tally {
    /// An empty tally.
    pub(crate) fn new() -> Tally {
        Tally {
            emitted: vec![[0; 4]; KNOWN_ACTIONS.len() + 1],
            reasons: vec![0; KNOWN_REASONS.len() + 1],
            pipeline_errors: 0,
            findings: Vec::new(),
        }
    }

    /// Counts `docs`.
    #[cfg(test)]
    pub(crate) fn of(docs: &[serde_json::Value]) -> Tally {
        let mut t = Tally::new();
        for doc in docs {
            t.add(doc);
        }
        t
    }

    /// Counts one document.
    pub(crate) fn add(&mut self, doc: &impl Doc) {
        let action = doc.str_at(&["event", "action"]);
        let kind = doc.str_at(&["event", "kind"]);
        let a = self.add_kind(action, kind);
        // Only Slack's own anomaly events: an analysis alert may quote the reasons again.
        if kind == Some("event") && name_at(KNOWN_ACTIONS, a) == "anomaly" {
            self.count_reasons(doc);
        }
        if kind == Some("alert") {
            self.count_finding(doc);
        }
    }

    fn count_finding(&mut self, doc: &impl Doc) {
        let rule = doc.str_at(&["rule", "id"]).unwrap_or(OTHER);
        let severity = match doc.str_at(&["slack", "audit", "analysis", "severity"]) {
            Some("low") => "low",
            Some("medium") => "medium",
            Some("high") => "high",
            Some("critical") => "critical",
            _ => OTHER,
        };
        match self
            .findings
            .iter_mut()
            .find(|(r, s, _)| r == rule && *s == severity)
        {
            Some((_, _, n)) => *n += 1,
            None => self.findings.push((rule.to_string(), severity, 1)),
        }
    }

    /// Counts a document known only by its action and kind (written straight to text by the
    /// poller, which never does so for anomaly events: their reasons are counted too).
    pub(crate) fn add_plain(&mut self, action: Option<&str>, kind: &str) {
        self.add_kind(action, Some(kind));
    }

    fn add_kind(&mut self, action: Option<&str>, kind: Option<&str>) -> usize {
        let a = index_in(KNOWN_ACTIONS, action);
        let k = index_in(KNOWN_KINDS, kind);
        self.emitted[a][k] += 1;
        if kind == Some("pipeline_error") {
            self.pipeline_errors += 1;
        }
        a
    }

    fn count_reasons(&mut self, doc: &impl Doc) {
        match doc.at(&["slack", "audit", "details", "reason"]) {
            Some(Field::Array(items)) => {
                for r in items {
                    self.reasons[index_in(KNOWN_REASONS, Some(r))] += 1;
                }
            }
            // Tolerate a single string where Slack documents an array.
            Some(Field::Str(r)) => self.reasons[index_in(KNOWN_REASONS, Some(r))] += 1,
            _ => {}
        }
    }

    /// Non-zero `(action, kind, count)` triples.
    pub(crate) fn emitted(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.emitted.iter().enumerate().flat_map(|(a, row)| {
            row.iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(move |(k, n)| (name_at(KNOWN_ACTIONS, a), name_at(KNOWN_KINDS, k), *n))
        })
    }

    /// `(rule id, severity, count)` of the findings counted.
    pub(crate) fn findings(&self) -> impl Iterator<Item = (&str, &'static str, u64)> + '_ {
        self.findings.iter().map(|(r, s, n)| (r.as_str(), *s, *n))
    }

    /// Non-zero `(reason, count)` pairs.
    pub(crate) fn reasons(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.reasons
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| (name_at(KNOWN_REASONS, r), *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_so_binary_search_works() {
        for list in [KNOWN_ACTIONS, KNOWN_REASONS, KNOWN_KINDS] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
    }

    #[test]
    fn the_eighteen_documented_reasons_are_known() {
        assert_eq!(KNOWN_REASONS.len(), 18);
        assert_eq!(reason("tor"), "tor");
        assert_eq!(reason("unexpected_app_installation"), OTHER);
    }

    #[test]
    fn unknown_actions_and_missing_ones_are_other() {
        assert_eq!(action(Some("user_login")), "user_login");
        assert_eq!(action(Some("mcp_slack_search_tool_called")), OTHER);
        assert_eq!(action(None), OTHER);
    }

    #[test]
    fn status_labels_stay_bounded() {
        assert_eq!(status("429"), "429");
        assert_eq!(status("timeout"), "timeout");
        assert_eq!(status("<html>oops</html>"), OTHER);
    }

    #[test]
    fn findings_are_counted_by_rule_and_severity() {
        let finding = |rule: &str, severity: &str| serde_json::json!({"event": {"action": "anomaly_correlation", "kind": "alert"}, "rule": {"id": rule}, "slack": {"audit": {"analysis": {"severity": severity}}}});
        let event = serde_json::json!({"event": {"action": "user_login", "kind": "event"}, "rule": {"id": "not-a-finding"}});
        let t = Tally::of(&[
            finding("stolen-session", "high"),
            event,
            finding("stolen-session", "high"),
            finding("tor", "medium"),
            finding("tor", "unheard-of"),
        ]);
        assert_eq!(
            t.findings().collect::<Vec<_>>(),
            vec![
                ("stolen-session", "high", 2),
                ("tor", "medium", 1),
                ("tor", OTHER, 1)
            ]
        );
    }

    #[test]
    fn a_single_string_reason_is_counted() {
        let doc = serde_json::json!({"event": {"action": "anomaly", "kind": "event"}, "slack": {"audit": {"details": {"reason": "tor"}}}});
        let t = Tally::of(&[doc]);
        assert_eq!(t.reasons().collect::<Vec<_>>(), vec![("tor", 1)]);
    }
}
