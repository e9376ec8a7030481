//! Every way a Slack request can fail, and what the caller should do about it.
//!
//! The retry decision is one pure function, [`Error::action`]: wait for `Retry-After`, back
//! off, hand the error to the poller (cursor or range problems), or stop (fatal). Messages
//! never contain the token: it is never formatted into anything.

use std::time::Duration;

/// What to do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Wait exactly this long (Slack's `Retry-After`, capped), then retry.
    Wait(Duration),
    /// Retry after the next backoff delay.
    Backoff,
    /// Not retryable here: the poller changes the query (cursor, range) or the process stops.
    GiveUp,
}

/// A failed request to Slack.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// HTTP 429 or `rate_limited`/`ratelimited`.
    #[error("rate limited by Slack; waiting {}s", retry_after.as_secs())]
    RateLimited {
        /// How long Slack asked us to wait.
        retry_after: Duration,
    },
    /// 408, 5xx, or another status with no usable body.
    #[error("Slack answered HTTP {status}: {snippet}")]
    Http {
        /// The status code.
        status: u16,
        /// The start of the body, for the log.
        snippet: String,
    },
    /// Connection refused, reset, TLS, DNS...
    #[error("cannot reach Slack: {0}")]
    Transport(String),
    /// The request took longer than `--request-timeout`.
    #[error("Slack did not answer within {}s", .0.as_secs())]
    Timeout(Duration),
    /// A 200 whose body is not JSON (truncated, HTML).
    #[error("Slack sent a body that is not JSON ({reason}): {snippet}")]
    Decode {
        /// serde's complaint.
        reason: String,
        /// The start of the body.
        snippet: String,
    },
    /// A 200 JSON body with no `entries` array: a glitch, never the end of a chain.
    #[error("Slack sent a 200 body without an entries array ({snippet}); retrying, not treating it as the end")]
    NoEntries {
        /// The start of the body.
        snippet: String,
    },
    /// `invalid_cursor`: the poller re-reads the window from its low-water mark.
    #[error("Slack refused the cursor (invalid_cursor)")]
    InvalidCursor,
    /// `invalid_range`: the poller clamps the window.
    #[error("Slack refused the time range (invalid_range): it is in the future or before audit logs were enabled")]
    InvalidRange,
    /// A documented error that no retry can fix; `hint` says what the user must change.
    #[error("Slack refused the request ({code}): {hint}")]
    Fatal {
        /// Slack's error string.
        code: String,
        /// What to fix.
        hint: &'static str,
    },
    /// An `ok:false` error we do not know; retried with backoff, it may be transient.
    #[error("Slack answered error {code:?} (unknown to this version); retrying")]
    Unknown {
        /// Slack's error string.
        code: String,
    },
    /// The token file could not be read or holds no usable token.
    #[error("{0}")]
    Token(String),
    /// A 2xx body decoded to more than `--max-response-bytes`; read no further, retried.
    #[error("Slack sent a response larger than {limit} bytes (--max-response-bytes); retrying")]
    TooLarge {
        /// The cap, in decoded bytes.
        limit: u64,
    },
    /// A 3xx: redirects are not followed (the token would go with them, and an answer from
    /// elsewhere could pass for Slack's). The API URL is wrong.
    #[error("Slack's Audit Logs API answered HTTP {status}, a redirect to {location}; redirects are not followed: set --api-url to the API itself (https://api.slack.com)")]
    Redirect {
        /// The status code.
        status: u16,
        /// The `Location` header, on one short line.
        location: String,
    },
    /// A body or a chain that breaks the protocol (a cursor that is not a string, a cursor
    /// that does not advance, a page that goes back in time); `kind` labels the metric.
    #[error("Slack broke the Audit Logs protocol ({kind}): {detail}")]
    Protocol {
        /// A bounded label.
        kind: &'static str,
        /// The specifics.
        detail: String,
    },
    /// `--once` gave up after this many failed attempts in a row.
    #[error(
        "gave up after {attempts} failed attempts in a row under --once; the last error: {last}"
    )]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<Error>,
    },
}

/// Longest `Retry-After` we honour: a bigger value is more likely a bug than a plan.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// What to wait when a 429 carries no usable `Retry-After` (grove does the same).
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

impl Error {
    /// Classifies an `error` string from a Slack body.
    pub(crate) fn from_code(code: &str, retry_after: Option<Duration>) -> Error {
        let fatal = |hint| Error::Fatal {
            code: code.to_string(),
            hint,
        };
        match code {
            "rate_limited" | "ratelimited" => Error::RateLimited { retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER).min(MAX_RETRY_AFTER) },
            "invalid_cursor" => Error::InvalidCursor,
            "invalid_range" => Error::InvalidRange,
            "invalid_authentication" | "invalid_auth" | "not_authed" | "missing_authentication" | "invalid_token" =>
                fatal("the token is missing or invalid; use a user token (xoxp-) of an Enterprise org Owner with the auditlogs:read scope"),
            "token_revoked" | "token_expired" =>
                fatal("the token was revoked or expired; reinstall the app on the org and update the token (file or SLACK_AUDIT_TOKEN)"),
            "not_allowed_token_type" =>
                fatal("this kind of token cannot read audit logs; use the user token (xoxp-) of the org Owner who installed the app, not a bot or admin token"),
            "account_inactive" =>
                fatal("the token's user is deactivated; install the app again as an active Enterprise org Owner and use the new token"),
            "no_permission" | "access_denied" =>
                fatal("the token's user may not read audit logs; use the token of an Enterprise org Owner who installed the app with auditlogs:read"),
            "ekm_access_denied" =>
                fatal("Enterprise Key Management refused access to the logs; an org admin must allow it in the EKM settings"),
            "missing_scope" => fatal("the token lacks the auditlogs:read user scope; add it to the app and reinstall it on the org"),
            "user_not_authorized" => fatal("the app must be installed on the org by an Enterprise org Owner (admins' tokens are not supported)"),
            "team_not_authorized" => fatal("the app is installed on a workspace; an Owner must install it on the Enterprise organization itself"),
            "feature_not_enabled" | "paid_only" | "org_login_required" => fatal("audit logs need an Enterprise Grid plan; this org does not have the feature"),
            "invalid_workspace" => fatal("this workspace is not part of an Enterprise organization; audit logs need Enterprise Grid"),
            "method_not_allowed" => fatal("Slack does not allow this method for this workspace or token"),
            "bad_endpoint" => fatal("the URL does not exist; check --api-url (it is https://api.slack.com, not slack.com/api)"),
            "invalid_action" => fatal("an --action filter names an action Slack does not know; see GET /audit/v1/actions for the list"),
            other => Error::Unknown { code: other.to_string() },
        }
    }

    /// What the retry loop should do.
    pub(crate) fn action(&self) -> Action {
        match self {
            Error::RateLimited { retry_after } => Action::Wait(*retry_after),
            Error::Http { .. }
            | Error::Transport(_)
            | Error::Timeout(_)
            | Error::Decode { .. }
            | Error::NoEntries { .. }
            | Error::Unknown { .. }
            | Error::Token(_)
            | Error::TooLarge { .. } => Action::Backoff,
            // A malformed body is retried; a broken chain is the poller's to judge.
            Error::Protocol { .. } => Action::Backoff,
            Error::InvalidCursor
            | Error::InvalidRange
            | Error::Fatal { .. }
            | Error::Redirect { .. }
            | Error::GaveUp { .. } => Action::GiveUp,
        }
    }

    /// True for errors that end the process with exit code 3.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(self, Error::Fatal { .. } | Error::Redirect { .. })
    }

    /// A bounded label for metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Error::RateLimited { .. } => "rate_limited",
            Error::Http { .. } => "http",
            Error::Transport(_) => "transport",
            Error::Timeout(_) => "timeout",
            Error::Decode { .. } => "decode",
            Error::NoEntries { .. } => "no_entries",
            Error::InvalidCursor => "invalid_cursor",
            Error::InvalidRange => "invalid_range",
            Error::Fatal { .. } => "fatal",
            Error::Unknown { .. } => "unknown",
            Error::Token(_) => "token",
            Error::TooLarge { .. } => "too_large",
            Error::Redirect { .. } => "redirect",
            Error::Protocol { .. } => "protocol",
            Error::GaveUp { .. } => "gave_up",
        }
    }
}

/// The first bytes of a body, on one line, for messages (an HTML error page can be long).
pub(crate) fn snippet(body: &[u8]) -> String {
    crate::text::snippet(body, crate::text::SLACK_SNIPPET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_fatal_code_is_fatal_with_a_hint() {
        for code in [
            "invalid_authentication",
            "missing_authentication",
            "invalid_auth",
            "not_authed",
            "token_revoked",
            "token_expired",
            "not_allowed_token_type",
            "missing_scope",
            "user_not_authorized",
            "team_not_authorized",
            "feature_not_enabled",
            "invalid_workspace",
            "method_not_allowed",
            "bad_endpoint",
            "invalid_action",
            "account_inactive",
            "no_permission",
            "ekm_access_denied",
            "invalid_token",
            "access_denied",
        ] {
            let e = Error::from_code(code, None);
            assert!(e.is_fatal(), "{code}");
            assert_eq!(e.action(), Action::GiveUp);
            assert!(e.to_string().contains(code), "{e}");
        }
        assert!(Error::from_code("team_not_authorized", None)
            .to_string()
            .contains("install it on the Enterprise organization"));
    }

    #[test]
    fn rate_limits_wait_capped_and_cursor_range_go_to_the_poller() {
        assert_eq!(
            Error::from_code("ratelimited", Some(Duration::from_secs(7))).action(),
            Action::Wait(Duration::from_secs(7))
        );
        assert_eq!(
            Error::from_code("rate_limited", None).action(),
            Action::Wait(DEFAULT_RETRY_AFTER)
        );
        assert_eq!(
            Error::from_code("rate_limited", Some(Duration::from_secs(9999))).action(),
            Action::Wait(MAX_RETRY_AFTER)
        );
        assert!(matches!(
            Error::from_code("invalid_cursor", None),
            Error::InvalidCursor
        ));
        assert!(matches!(
            Error::from_code("invalid_range", None),
            Error::InvalidRange
        ));
        assert_eq!(
            Error::from_code("internal_error", None).action(),
            Action::Backoff
        );
    }
}
