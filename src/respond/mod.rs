//! Containment, opt-in: ending a user's Slack sessions when a finding asks for it.
//!
//! A rule says what it wants (`respond = "invalidate_sessions"` or `"reset_sessions"` in the
//! rules file); this stage decides whether a finding acts ([`plan`]), keeps the plan and its
//! outcome in the checkpoint ([`crate::checkpoint::response`]), makes the calls in `enforce` mode ([`stage`]) and
//! delivers one response document per action in the stream, after the finding that caused it
//! ([`document`]).
//!
//! Modes (`--respond`): `off` (the default) does nothing; `plan` calls nothing and delivers
//! what it would have done; `enforce` calls Slack's Web API and delivers the outcome. `analyze`
//! never acts: `analyze --respond plan` prints the plan over an export.
//!
//! Safety: a circuit breaker lets at most `--respond-max-per-hour` actions through per hour of
//! *event time* (the findings' `@timestamp`), so `analyze` and `run` plan alike over the same
//! history; beyond it actions are only planned, and one critical finding says it opened. Each
//! action is taken once: it is planned into the checkpoint with the page that produced it,
//! called after that checkpoint, and its outcome saved after each call, so a crash repeats at
//! most the call in flight. See `docs/response.md`.

pub(crate) mod document;
pub(crate) mod plan;
pub(crate) mod stage;

use crate::analysis::severity::Severity;
use crate::units::ConfigError;
use std::collections::BTreeSet;

pub(crate) use crate::checkpoint::response::Ledger;
pub(crate) use plan::Planner;
pub(crate) use stage::Responder;

/// Findings below this severity never act: high is where a rule says "look now".
pub(crate) const DEFAULT_MIN_SEVERITY: &str = "high";
/// Actions per hour before the circuit breaker opens: a handful of stolen sessions in one hour
/// is an incident; more is far likelier a rule gone wrong, and signing out a whole org is the
/// outage this stage must never cause. Slack's own automatic response avoids loops the same way.
pub(crate) const DEFAULT_MAX_PER_HOUR: u32 = 5;
/// The most `--respond-max-per-hour` may say.
const MAX_PER_HOUR_LIMIT: u32 = 1000;

/// What the stage does with a finding that asks for an action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Nothing: no plan, no call, no response document.
    #[default]
    Off,
    /// Deliver what would be done; call nothing.
    Plan,
    /// Call Slack's Web API and deliver the outcome.
    Enforce,
}

impl Mode {
    /// The name in `slack.response.mode` and the metric's `mode` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Plan => "plan",
            Mode::Enforce => "enforce",
        }
    }
}

/// Response flags (`run`; `analyze` takes them too, and refuses `enforce`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RespondArgs {
    /// off: nothing; plan: deliver what would be done, call nothing; enforce: end the sessions
    /// through Slack's Web API (needs --respond-token-file). See docs/response.md.
    #[arg(long = "respond", env = "SLACK_AUDIT_RESPOND", value_enum, default_value_t = Mode::Off)]
    pub(crate) respond: Mode,
    /// Findings below this severity never act: low, medium, high or critical.
    #[arg(long, env = "SLACK_AUDIT_RESPOND_MIN_SEVERITY", default_value = DEFAULT_MIN_SEVERITY)]
    pub(crate) respond_min_severity: String,
    /// Users never acted on (ids or emails, comma-separated): the org owners, break-glass accounts.
    #[arg(long, env = "SLACK_AUDIT_RESPOND_EXEMPT_USERS", value_delimiter = ',')]
    pub(crate) respond_exempt_users: Vec<String>,
    /// Actions per hour of event time; beyond it actions are only planned (circuit breaker).
    #[arg(long, env = "SLACK_AUDIT_RESPOND_MAX_PER_HOUR", default_value_t = DEFAULT_MAX_PER_HOUR)]
    pub(crate) respond_max_per_hour: u32,
}

impl Default for RespondArgs {
    fn default() -> Self {
        RespondArgs {
            respond: Mode::Off,
            respond_min_severity: DEFAULT_MIN_SEVERITY.into(),
            respond_exempt_users: Vec::new(),
            respond_max_per_hour: DEFAULT_MAX_PER_HOUR,
        }
    }
}

/// Validated response options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RespondConfig {
    /// The mode.
    pub(crate) mode: Mode,
    /// The lowest severity that acts.
    pub(crate) min_severity: Severity,
    /// Exempt users, ids and emails, lower case.
    pub(crate) exempt: BTreeSet<String>,
    /// The circuit breaker's limit per hour.
    pub(crate) max_per_hour: u32,
}

impl Default for RespondConfig {
    fn default() -> Self {
        // The defaults are the flags' own: parsed from `RespondArgs::default()`, which a test
        // pins to clap's defaults.
        RespondConfig::from_args(&RespondArgs::default(), false)
            .unwrap_or_else(|_| unreachable!("the default response flags are valid"))
    }
}

impl RespondConfig {
    /// Validates the flags; `has_admin_token` says whether `--respond-token-file` was given.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the flag and what to give instead.
    pub(crate) fn from_args(
        args: &RespondArgs,
        has_admin_token: bool,
    ) -> Result<RespondConfig, ConfigError> {
        let min_severity = match args
            .respond_min_severity
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            other => {
                return Err(ConfigError::Invalid {
                    flag: "respond-min-severity",
                    message: format!(
                        "{other:?} is not a severity; give low, medium, high or critical"
                    ),
                })
            }
        };
        if args.respond_max_per_hour > MAX_PER_HOUR_LIMIT {
            return Err(ConfigError::Invalid {
                flag: "respond-max-per-hour",
                message: format!(
                    "{} is out of range; give 0..={MAX_PER_HOUR_LIMIT} (0 plans every action and acts on none)",
                    args.respond_max_per_hour
                ),
            });
        }
        let mut exempt = BTreeSet::new();
        for u in &args.respond_exempt_users {
            let u = u.trim();
            if u.is_empty() {
                return Err(ConfigError::Invalid {
                    flag: "respond-exempt-users",
                    message:
                        "an entry is empty; give user ids (U0123ABCD) or emails, comma-separated"
                            .into(),
                });
            }
            exempt.insert(u.to_ascii_lowercase());
        }
        if args.respond == Mode::Enforce && !has_admin_token {
            return Err(ConfigError::Invalid {
                flag: "respond",
                message: "enforce needs an org admin's user token with admin.users:write: give --respond-token-file (see docs/response.md), or use --respond plan".into(),
            });
        }
        Ok(RespondConfig {
            mode: args.respond,
            min_severity,
            exempt,
            max_per_hour: args.respond_max_per_hour,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(mode: Mode) -> RespondArgs {
        RespondArgs {
            respond: mode,
            ..RespondArgs::default()
        }
    }

    #[test]
    fn enforce_without_the_admin_token_is_refused_saying_what_to_give() {
        let e = RespondConfig::from_args(&args(Mode::Enforce), false).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("--respond-token-file"), "{text}");
        assert!(RespondConfig::from_args(&args(Mode::Enforce), true).is_ok());
        assert!(RespondConfig::from_args(&args(Mode::Plan), false).is_ok());
    }

    #[test]
    fn bad_values_name_their_flag() {
        let mut a = args(Mode::Plan);
        a.respond_min_severity = "urgent".into();
        assert!(RespondConfig::from_args(&a, false)
            .unwrap_err()
            .to_string()
            .contains("respond-min-severity"));
        let mut a = args(Mode::Plan);
        a.respond_max_per_hour = 1_000_000;
        assert!(RespondConfig::from_args(&a, false)
            .unwrap_err()
            .to_string()
            .contains("respond-max-per-hour"));
        let mut a = args(Mode::Plan);
        a.respond_exempt_users = vec!["U1".into(), " ".into()];
        assert!(RespondConfig::from_args(&a, false)
            .unwrap_err()
            .to_string()
            .contains("respond-exempt-users"));
    }

    #[test]
    fn defaults_are_off_high_and_five() {
        let c = RespondConfig::default();
        assert_eq!(c.mode, Mode::Off);
        assert_eq!(c.min_severity, Severity::High);
        assert_eq!(c.max_per_hour, 5);
    }
}
