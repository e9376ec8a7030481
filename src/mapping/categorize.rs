//! `event.action` → ECS `event.category`, `event.type` and `event.outcome`.
//!
//! The table is Elastic's (Slack integration 1.24.0) as docs/mapping.md restates it, plus the
//! `file_download_blocked` spelling that Slack's action table uses. Every other action, including
//! ones Slack adds later, gets `event.type: ["info"]` and no category: an unknown action must
//! never be guessed into a category that detection rules key on.

/// The ECS categorisation of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Categorization {
    /// `event.category` (empty: left out).
    pub(crate) category: &'static [&'static str],
    /// `event.type`, never empty.
    pub(crate) kind: &'static [&'static str],
    /// `event.outcome`, when the action implies one.
    pub(crate) outcome: Option<&'static str>,
}

const fn cat(
    category: &'static [&'static str],
    kind: &'static [&'static str],
    outcome: Option<&'static str>,
) -> Categorization {
    Categorization {
        category,
        kind,
        outcome,
    }
}

/// What an action not in the table gets.
pub(crate) const OTHER: Categorization = cat(&[], &["info"], None);

/// Looks up `action`; [`OTHER`] when it is not in the table.
pub(crate) fn categorize(action: &str) -> Categorization {
    const AUTH_SESSION: &[&str] = &["authentication", "session"];
    const IAM: &[&str] = &["iam"];
    const FILE: &[&str] = &["file"];
    match action {
        "user_login" => cat(AUTH_SESSION, &["info", "start"], Some("success")),
        "user_login_failed" => cat(&["authentication"], &["info"], Some("failure")),
        "user_logout" | "user_session_invalidated" | "user_session_reset_by_admin" => {
            cat(AUTH_SESSION, &["info", "end"], Some("success"))
        }
        "user_created" => cat(IAM, &["creation", "user"], None),
        "user_deactivated" => cat(IAM, &["deletion", "user"], None),
        "user_reactivated"
        | "role_change_to_guest"
        | "role_change_to_user"
        | "user_email_updated" => cat(IAM, &["change", "user"], None),
        "role_change_to_admin" | "role_change_to_owner" => {
            cat(IAM, &["change", "user", "admin"], None)
        }
        "user_added_to_usergroup" | "user_removed_from_usergroup" => {
            cat(IAM, &["change", "group", "user"], None)
        }
        "default_channel_added_to_usergroup" | "default_channel_removed_from_usergroup" => {
            cat(&["iam", "configuration"], &["change", "group"], None)
        }
        "role_added_to_usergroup"
        | "role_removed_from_usergroup"
        | "role_modified_on_usergroup" => cat(IAM, &["change", "group"], None),
        "file_downloaded" => cat(FILE, &["access"], None),
        // Elastic and Slack's overview spell it one way, Slack's action table the other.
        "file_downloaded_blocked" | "file_download_blocked" => cat(FILE, &["denied"], None),
        "file_uploaded" => cat(FILE, &["creation"], None),
        "file_public_link_created" | "file_public_link_revoked" | "file_shared" => {
            cat(FILE, &["info"], None)
        }
        "file_malicious_content_detected" => cat(&["file", "malware"], &["info"], None),
        _ => OTHER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_is_a_successful_session_start() {
        let c = categorize("user_login");
        assert_eq!(c.category, ["authentication", "session"]);
        assert_eq!(c.kind, ["info", "start"]);
        assert_eq!(c.outcome, Some("success"));
    }

    #[test]
    fn failed_login_is_a_failure() {
        assert_eq!(categorize("user_login_failed").outcome, Some("failure"));
    }

    #[test]
    fn both_blocked_download_spellings_are_denied() {
        assert_eq!(categorize("file_downloaded_blocked").kind, ["denied"]);
        assert_eq!(categorize("file_download_blocked").kind, ["denied"]);
    }

    #[test]
    fn unknown_and_empty_actions_are_info_only() {
        assert_eq!(categorize("mcp_slack_search_tool_called"), OTHER);
        assert_eq!(categorize(""), OTHER);
        assert_eq!(
            categorize("USER_LOGIN"),
            OTHER,
            "actions are case-sensitive, as Slack sends them"
        );
    }
}
