//! The command line: raw clap arguments, then a validated [`RunConfig`].
//!
//! Every flag also reads an environment variable, so a Kubernetes manifest can configure the
//! binary without a file; `--config FILE` (TOML) may set the same keys (the flag's long name,
//! with `-` or `_`). Precedence: flag, then environment, then the file, then the default.
//! Groups of flags that belong to one module (mapping, HTTP sink, observability, analysis) are
//! defined beside that module and flattened in here.

/// Slack's filters, validated here and sent by the client.
pub use crate::slack::api::Filters;
use crate::slack::client::TokenSource;
pub use crate::units::ConfigError;
use crate::units::{format_duration, parse_duration, parse_size, parse_url};
use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// Slack's documented maximum page size.
pub(crate) const MAX_LIMIT: u32 = 9999;
/// Slack accepts at most this many comma-separated actions in one filter.
pub(crate) const MAX_ACTIONS: usize = 30;
/// Default for `--api-url`: Slack itself.
pub(crate) const DEFAULT_API_URL: &str = "https://api.slack.com";
/// Default for `--overlap`: off; Slack's settle lag already covers most late indexing.
pub(crate) const DEFAULT_OVERLAP: &str = "0s";
/// Default for `--initial-lookback`: Slack keeps about this much history worth backfilling.
pub(crate) const DEFAULT_INITIAL_LOOKBACK: &str = "720h";
/// Default for `--interval`: one catch-up a minute is well inside the shared Tier 3 budget.
pub(crate) const DEFAULT_INTERVAL: &str = "60s";
/// Default for `--settle-lag`: Slack indexes events late; never read the newest minute.
pub(crate) const DEFAULT_SETTLE_LAG: &str = "60s";
/// Default for `--max-requests-per-minute`: well under Slack's ~50/min, which the whole org shares.
pub(crate) const DEFAULT_MAX_RPM: u32 = 20;
/// Default for `--request-timeout`: long enough for a 9,999-entry page on a slow link.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: &str = "60s";
/// Default for `--max-response-bytes`: a full 9,999-entry page is about 15 MB, so this leaves
/// room for large entries while a gzip bomb costs at most this.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: &str = "64MiB";

/// The top-level command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "slack-audit-source",
    version,
    about = "Slack Enterprise Grid audit logs to NDJSON: at-least-once, idempotent by event.id."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Poll the Audit Logs API and deliver ECS NDJSON to the sink, checkpointing after delivery.
    // A repeated flag overrides the earlier one, so a wrapper script can append settings.
    #[command(args_override_self = true)]
    Run(Box<RunArgs>),
    /// Map raw Slack audit entries on stdin to ECS documents on stdout.
    Map(crate::mapping::MapArgs),
    /// Read raw entries or ECS documents on stdin and print the analysis findings.
    Analyze(AnalyzeCmd),
    /// Serve a stand-in for the Audit Logs API with generated events.
    #[cfg(feature = "simulator")]
    Simulate(crate::simulate::SimulateArgs),
    /// Run the simulator and `run` in one process, printing NDJSON: try this first.
    #[cfg(feature = "simulator")]
    Demo(DemoArgs),
    /// Say where the reader of a state directory stands (works beside a running reader).
    Status(crate::status::StatusArgs),
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// `--sink`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub(crate) enum SinkKindArg {
    /// NDJSON on standard output.
    #[default]
    Stdout,
    /// NDJSON POSTed to `--http-url`.
    Http,
}

/// Arguments of `run`, as given (strings, unvalidated).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// TOML file setting any of these options by their long name.
    #[arg(long, env = "SLACK_AUDIT_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Base URL of the Slack API; plain http:// is refused except to loopback.
    #[arg(long, env = "SLACK_AUDIT_API_URL", default_value = DEFAULT_API_URL)]
    pub(crate) api_url: String,
    /// File holding the user token (a mounted Secret); re-read when it changes. Otherwise SLACK_AUDIT_TOKEN.
    #[arg(long, env = "SLACK_AUDIT_TOKEN_FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// Checkpoint and analysis state; locked, one process per directory.
    #[arg(long, env = "SLACK_AUDIT_STATE_DIR", default_value = crate::statedir::DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
    /// How far back the very first run starts.
    #[arg(long, env = "SLACK_AUDIT_INITIAL_LOOKBACK", default_value = DEFAULT_INITIAL_LOOKBACK)]
    pub(crate) initial_lookback: String,
    /// Pause between catch-ups once caught up.
    #[arg(long, env = "SLACK_AUDIT_INTERVAL", default_value = DEFAULT_INTERVAL)]
    pub(crate) interval: String,
    /// Never read the newest seconds: Slack indexes late.
    #[arg(long, env = "SLACK_AUDIT_SETTLE_LAG", default_value = DEFAULT_SETTLE_LAG)]
    pub(crate) settle_lag: String,
    /// Re-read this span behind each window for late-indexed events; delivers only unseen ids.
    #[arg(long, env = "SLACK_AUDIT_OVERLAP", default_value = DEFAULT_OVERLAP)]
    pub(crate) overlap: String,
    /// Page size, 1..=9999.
    #[arg(long, env = "SLACK_AUDIT_LIMIT", default_value_t = MAX_LIMIT)]
    pub(crate) limit: u32,
    /// Only these actions (comma-separated, at most 30).
    #[arg(long = "action", env = "SLACK_AUDIT_ACTIONS", value_delimiter = ',')]
    pub(crate) actions: Vec<String>,
    /// Only events by this actor (a user id).
    #[arg(long, env = "SLACK_AUDIT_ACTOR")]
    pub(crate) actor: Option<String>,
    /// Only events about this entity (a channel, file, workspace... id).
    #[arg(long, env = "SLACK_AUDIT_ENTITY")]
    pub(crate) entity: Option<String>,
    /// Client-side request budget; Slack's Tier 3 limit (~50/min) is shared by the whole org.
    #[arg(long = "max-requests-per-minute", env = "SLACK_AUDIT_MAX_RPM", default_value_t = DEFAULT_MAX_RPM)]
    pub(crate) max_rpm: u32,
    /// Give up on one Slack request after this long (then retry with backoff).
    #[arg(long, env = "SLACK_AUDIT_REQUEST_TIMEOUT", default_value = DEFAULT_REQUEST_TIMEOUT)]
    pub(crate) request_timeout: String,
    /// The most a Slack answer may decode to; a larger one is abandoned and retried.
    #[arg(long, env = "SLACK_AUDIT_MAX_RESPONSE_BYTES", default_value = DEFAULT_MAX_RESPONSE_BYTES)]
    pub(crate) max_response_bytes: String,
    /// Where NDJSON goes.
    #[arg(long, env = "SLACK_AUDIT_SINK", value_enum, default_value_t = SinkKindArg::Stdout)]
    pub(crate) sink: SinkKindArg,
    /// HTTP sink options.
    #[command(flatten)]
    pub(crate) http: crate::sink::http::HttpArgs,
    /// Catch up to now minus the settle lag, deliver, checkpoint, exit 0.
    #[arg(long)]
    pub(crate) once: bool,
    /// Diagnostics format on stderr.
    #[arg(long, env = "SLACK_AUDIT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Mapping options.
    #[command(flatten)]
    pub(crate) mapping: crate::mapping::MappingArgs,
    /// Metrics, health and request tracing.
    #[command(flatten)]
    pub(crate) observability: crate::metrics::ObservabilityArgs,
    /// Anomaly analysis options.
    #[command(flatten)]
    pub(crate) analysis: crate::analysis::AnalysisArgs,
    /// Slack's Web API: the admin token, its URL, Slack's own allowlist.
    #[command(flatten)]
    pub(crate) web_api: crate::slack::web_api::WebApiArgs,
    /// Response options (containment).
    #[command(flatten)]
    pub(crate) respond: crate::respond::RespondArgs,
}

impl RunArgs {
    /// `run` with no flag, no environment and no config file: every option at its default,
    /// read from the `#[arg]` attributes (and the constants they name), the one place each
    /// default is written. `demo` starts from these and changes only what it must.
    #[cfg(feature = "simulator")]
    pub(crate) fn defaults() -> RunArgs {
        use clap::{CommandFactory, FromArgMatches};
        let cli = Cli::command().mut_subcommand("run", |run| {
            run.mut_args(|arg| arg.env(None::<&'static str>))
        });
        let matches = cli
            .try_get_matches_from(["slack-audit-source", "run"])
            .expect("`run` has no required option");
        match Cli::from_arg_matches(&matches)
            .expect("the matches come from this CLI")
            .command
        {
            Command::Run(args) => *args,
            _ => unreachable!("the command line asked for `run`"),
        }
    }
}

/// Arguments of `analyze`: the analysis's own, and the response plan (`--respond plan`).
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeCmd {
    /// Analysis options.
    #[command(flatten)]
    pub(crate) analyze: crate::analysis::AnalyzeArgs,
    /// Response options: `--respond plan` prints the plan; `analyze` never acts.
    #[command(flatten)]
    pub(crate) respond: crate::respond::RespondArgs,
}

/// Arguments of `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Stop after this long.
    #[arg(long)]
    pub(crate) duration: Option<String>,
    /// Keep streaming the simulated org's live traffic after the story, until Ctrl-C.
    #[arg(long)]
    pub(crate) follow: bool,
    /// `plan`: show the response stage, a response document after each finding that would
    /// act (the demo never acts: enforce needs a real admin token).
    #[arg(long = "respond", value_enum, default_value_t = crate::respond::Mode::Off)]
    pub(crate) respond: crate::respond::Mode,
    /// Diagnostics format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Where documents go, validated.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// Standard output.
    Stdout,
    /// A shipper's HTTP input.
    Http(Box<crate::sink::http::HttpConfig>),
}

/// The validated configuration of `run`.
#[derive(Debug)]
pub struct RunConfig {
    /// `{api_url}/audit/v1/logs` is polled.
    pub(crate) api_url: Url,
    /// Where the token comes from; it is never printed.
    pub(crate) token: TokenSource,
    /// Checkpoint and analysis state.
    pub(crate) state_dir: PathBuf,
    /// How far back the first run starts.
    pub(crate) initial_lookback: Duration,
    /// Pause between catch-ups.
    pub(crate) interval: Duration,
    /// Newest seconds never read.
    pub(crate) settle_lag: Duration,
    /// Span re-read behind each window for late events.
    pub(crate) overlap: Duration,
    /// Page size.
    pub(crate) limit: u32,
    /// Slack's filters.
    pub(crate) filters: Filters,
    /// Requests per minute, client side.
    pub(crate) max_rpm: u32,
    /// Per-request timeout.
    pub(crate) request_timeout: Duration,
    /// The most decoded bytes of one Slack answer.
    pub(crate) max_response_bytes: u64,
    /// The sink.
    pub sink: SinkConfig,
    /// Exit after catching up.
    pub(crate) once: bool,
    /// Mapping options.
    pub(crate) mapping: crate::mapping::MappingConfig,
    /// Metrics, health and tracing.
    pub(crate) observability: crate::metrics::ObservabilityConfig,
    /// Analysis options.
    pub(crate) analysis: crate::analysis::AnalysisConfig,
    /// The Web API's URL, the admin token's file and `--slack-allowlist`.
    pub(crate) web_api: crate::slack::web_api::WebApiConfig,
    /// Response options.
    pub(crate) respond: crate::respond::RespondConfig,
}

impl RunConfig {
    /// Validates raw arguments, reading `SLACK_AUDIT_TOKEN` for the token when no file is given.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn from_args(args: RunArgs) -> Result<RunConfig, ConfigError> {
        let env_token = std::env::var("SLACK_AUDIT_TOKEN")
            .ok()
            .map(SecretString::from);
        Self::from_args_with_token(args, env_token)
    }

    /// As [`RunConfig::from_args`], with the environment token passed in (for tests).
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn from_args_with_token(
        args: RunArgs,
        env_token: Option<SecretString>,
    ) -> Result<RunConfig, ConfigError> {
        let api_url = parse_url("api-url", &args.api_url)?;
        let mut analysis = crate::analysis::AnalysisConfig::from_args(&args.analysis)?;
        let web_api = crate::slack::web_api::WebApiConfig::from_args(&args.web_api)?;
        if web_api.slack_allowlist {
            // Slack's list joins the local one in a live part that `run` keeps filled.
            analysis.allowlist = std::sync::Arc::new(analysis.allowlist.with_slack().0);
        }
        let token = match (&args.token_file, env_token) {
            (Some(path), _) => TokenSource::file(path.clone())?,
            (None, Some(t)) => TokenSource::fixed(t)?,
            (None, None) => return Err(ConfigError::NoToken),
        };
        if args.limit == 0 || args.limit > MAX_LIMIT {
            return Err(ConfigError::Invalid {
                flag: "limit",
                message: format!(
                    "{} is out of range; Slack takes 1..={MAX_LIMIT}",
                    args.limit
                ),
            });
        }
        if args.max_rpm == 0 || args.max_rpm > 100_000 {
            return Err(ConfigError::Invalid {
                flag: "max-requests-per-minute",
                message: format!("{} is out of range; give 1..=100000 (Slack itself allows about 50 for the whole org)", args.max_rpm),
            });
        }
        let filters = validate_filters(&args)?;
        let interval = parse_duration("interval", &args.interval)?;
        if interval.is_zero() {
            return Err(ConfigError::Invalid {
                flag: "interval",
                message: "must be more than 0s".into(),
            });
        }
        let settle_lag = parse_duration("settle-lag", &args.settle_lag)?;
        let request_timeout = parse_duration("request-timeout", &args.request_timeout)?;
        if request_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                flag: "request-timeout",
                message: "must be more than 0s".into(),
            });
        }
        let max_response_bytes = parse_size("max-response-bytes", &args.max_response_bytes)?;
        let sink = match args.sink {
            SinkKindArg::Stdout => SinkConfig::Stdout,
            SinkKindArg::Http => SinkConfig::Http(Box::new(
                crate::sink::http::HttpConfig::from_args(&args.http)?,
            )),
        };
        Ok(RunConfig {
            api_url,
            token,
            state_dir: args.state_dir.clone(),
            initial_lookback: parse_duration("initial-lookback", &args.initial_lookback)?,
            interval,
            settle_lag,
            overlap: parse_duration("overlap", &args.overlap)?,
            limit: args.limit,
            filters,
            max_rpm: args.max_rpm,
            request_timeout,
            max_response_bytes,
            sink,
            once: args.once,
            mapping: crate::mapping::MappingConfig::from_args(&args.mapping)?,
            observability: crate::metrics::ObservabilityConfig::from_args(&args.observability)?,
            analysis,
            web_api,
            respond: crate::respond::RespondConfig::from_args(
                &args.respond,
                args.web_api.respond_token_file.is_some(),
            )?,
        })
    }

    /// Settings that work but are probably not what was meant, one sentence each, saying what
    /// to change; `run` logs them at start. They are not errors because each is a valid
    /// choice in some deployment.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let SinkConfig::Http(http) = &self.sink {
            // A request is waited for before the next poll (backpressure), so nothing
            // overlaps or is lost; the cost is that a hung receiver goes unnoticed (no retry,
            // no warning) for longer than the pause the operator asked for between polls.
            // Vector holding its answer while Elasticsearch is slow is the case for doing it.
            if http.timeout >= self.interval {
                warnings.push(format!(
                    "--http-timeout {} is not shorter than --interval {}: a receiver that hangs holds polling for the whole timeout before it is retried and reported; lower --http-timeout unless the receiver is expected to hold its answer that long",
                    format_duration(http.timeout),
                    format_duration(self.interval),
                ));
            }
        }
        if self.respond.mode != crate::respond::Mode::Off && !self.analysis.enabled {
            warnings.push("--respond with --no-analysis: no finding is made, so nothing is planned or enforced; drop --no-analysis or --respond".into());
        }
        warnings
    }
}

fn validate_filters(args: &RunArgs) -> Result<Filters, ConfigError> {
    let actions: Vec<String> = args
        .actions
        .iter()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    if actions.len() > MAX_ACTIONS {
        return Err(ConfigError::Invalid {
            flag: "action",
            message: format!("{} actions given; Slack takes at most {MAX_ACTIONS} (run a second instance with its own state dir for more)", actions.len()),
        });
    }
    if let Some(bad) = actions.iter().find(|a| {
        !a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    }) {
        return Err(ConfigError::Invalid {
            flag: "action",
            message: format!("{bad:?} is not an action name (letters, digits, '_' and '.' only, e.g. user_login)"),
        });
    }
    let id = |flag: &'static str, v: &Option<String>| -> Result<Option<String>, ConfigError> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) if s.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(Some(s.to_string())),
            Some(s) => Err(ConfigError::Invalid {
                flag,
                message: format!("{s:?} is not a Slack id (letters and digits, e.g. U0123ABCD)"),
            }),
        }
    };
    Ok(Filters {
        actions,
        actor: id("actor", &args.actor)?,
        entity: id("entity", &args.entity)?,
    })
}

/// Applies `--config FILE` (or `SLACK_AUDIT_CONFIG`) to the `run` command line, in the
/// process: returns `argv` with one `--key=value` appended for every key of the file that
/// neither a flag nor the environment sets, so the precedence stays flag > environment >
/// file > default with one parser. Nothing is written to the environment: values in the file
/// (a header holding an API key) must not show in `/proc/PID/environ` or reach children.
///
/// A command line clap refuses is returned unchanged, for the caller's parse to report.
///
/// # Errors
///
/// [`ConfigError::File`] for an unreadable file, bad TOML, or a key that is no `run` option.
pub fn apply_config_file(
    argv: Vec<std::ffi::OsString>,
) -> Result<Vec<std::ffi::OsString>, ConfigError> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let Ok(matches) = cli.clone().try_get_matches_from(&argv) else {
        return Ok(argv);
    };
    let Some(("run", run)) = matches.subcommand() else {
        return Ok(argv);
    };
    let Some(path) = run.get_one::<PathBuf>("config").cloned() else {
        return Ok(argv);
    };
    let file_error = |message: String| ConfigError::File {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    let run_cmd = cli.find_subcommand("run").expect("the CLI defines `run`");
    let mut extra = Vec::new();
    for (key, value) in table {
        if let Some(flag) = file_flag(run_cmd, run, &key, value).map_err(file_error)? {
            extra.push(flag);
        }
    }
    if extra.is_empty() {
        return Ok(argv);
    }
    // After `--`, a flag would be read as a value: put the file's flags before it.
    let mut merged = argv;
    let at = merged
        .iter()
        .position(|a| a == "--")
        .unwrap_or(merged.len());
    merged.splice(at..at, extra);
    Ok(merged)
}

/// The `--key=value` (or `--switch`) that the config file's `key = value` adds to the `run`
/// command line, or `None` when a flag or the environment already sets it.
///
/// # Errors
///
/// What is wrong with the key or its value, for [`ConfigError::File`].
fn file_flag(
    run_cmd: &clap::Command,
    run: &clap::ArgMatches,
    key: &str,
    value: toml::Value,
) -> Result<Option<std::ffi::OsString>, String> {
    use clap::parser::ValueSource;
    let long = key.replace('_', "-");
    // Only options that also read the environment: the same set of keys as always.
    let arg = run_cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long.as_str()) && a.get_env().is_some())
        .filter(|a| a.get_id() != "config");
    let Some(arg) = arg else {
        return Err(format!(
            "unknown key {key:?}; keys are the long flag names of `run`, e.g. state_dir"
        ));
    };
    if matches!(
        run.value_source(arg.get_id().as_str()),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    ) {
        return Ok(None);
    }
    let text = match value {
        toml::Value::String(s) => s,
        toml::Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    if arg.get_action().takes_values() {
        Ok(Some(format!("--{long}={text}").into()))
    } else if text == "true" {
        // A switch: `key = true` sets it, `false` leaves it off.
        Ok(Some(format!("--{long}").into()))
    } else if text == "false" {
        Ok(None)
    } else {
        Err(format!("{key:?} is a switch; give true or false"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use secrecy::ExposeSecret;

    fn args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["slack-audit-source", "run"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Run(a) => *a,
            _ => unreachable!("asked for run"),
        }
    }

    fn token() -> Option<SecretString> {
        Some(SecretString::from("xoxp-test-token"))
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = RunConfig::from_args_with_token(args(&[]), token()).unwrap();
        assert_eq!(c.api_url.as_str(), "https://api.slack.com/");
        assert_eq!(c.initial_lookback, Duration::from_secs(720 * 3600));
        assert_eq!(c.interval, Duration::from_secs(60));
        assert_eq!(c.settle_lag, Duration::from_secs(60));
        assert_eq!(c.limit, 9999);
        assert_eq!(c.max_rpm, 20);
        assert!(matches!(c.sink, SinkConfig::Stdout));
        assert_eq!(
            c.token.current().unwrap().expose_secret(),
            "xoxp-test-token"
        );
    }

    #[test]
    fn every_default_is_the_flags_default() {
        // `RunArgs::defaults` is what a bare `run` parses to (with no SLACK_AUDIT_* set).
        let parsed = args(&[]);
        let defaults = RunArgs::defaults();
        assert_eq!(format!("{defaults:?}"), format!("{parsed:?}"));
        assert_eq!(defaults.api_url, DEFAULT_API_URL);
        assert_eq!(defaults.overlap, DEFAULT_OVERLAP);
        // Each `Default` a lower module defines agrees with clap's default for its flags.
        assert_eq!(
            format!("{:?}", crate::mapping::MappingArgs::default()),
            format!("{:?}", defaults.mapping)
        );
        assert_eq!(
            format!("{:?}", crate::sink::http::HttpArgs::default()),
            format!("{:?}", defaults.http)
        );
        assert_eq!(
            format!("{:?}", crate::analysis::AnalysisArgs::default()),
            format!("{:?}", defaults.analysis)
        );
        assert_eq!(
            format!("{:?}", crate::slack::web_api::WebApiArgs::default()),
            format!("{:?}", defaults.web_api)
        );
        assert_eq!(
            format!("{:?}", crate::respond::RespondArgs::default()),
            format!("{:?}", defaults.respond)
        );
        let config = RunConfig::from_args_with_token(defaults, token()).unwrap();
        assert_eq!(
            format!("{:?}", config.mapping),
            format!("{:?}", crate::mapping::MappingConfig::default())
        );
        assert_eq!(
            format!("{:?}", config.observability),
            format!("{:?}", crate::metrics::ObservabilityConfig::default())
        );
        let analysis = crate::analysis::AnalysisConfig::default();
        assert_eq!(config.analysis.window, analysis.window);
        assert_eq!(config.analysis.baseline_reasons, analysis.baseline_reasons);
        assert_eq!(
            config.max_response_bytes,
            crate::units::default_size(DEFAULT_MAX_RESPONSE_BYTES)
        );
        assert_eq!(config.overlap, Duration::ZERO);
        assert_eq!(config.respond, crate::respond::RespondConfig::default());
    }

    #[test]
    fn one_size_means_the_same_bytes_for_every_flag() {
        for (text, bytes) in [
            ("4096", 4096),
            ("4096b", 4096),
            ("10M", 10 << 20),
            ("10m", 10 << 20),
            ("10MiB", 10 << 20),
            ("10 MiB", 10 << 20),
            ("512K", 512 << 10),
            ("512KiB", 512 << 10),
            ("2G", 2 << 30),
            ("2GiB", 2 << 30),
            ("2kb", 2_000),
            ("10MB", 10_000_000),
            ("1GB", 1_000_000_000),
        ] {
            assert_eq!(parse_size("x", text).unwrap(), bytes, "{text}");
        }
        for bad in [
            "0",
            "0M",
            "",
            "M",
            "lots",
            "-1",
            "1.5M",
            "1T",
            "99999999999999999999G",
        ] {
            let err = parse_size("trace-max-bytes", bad).unwrap_err().to_string();
            assert!(
                err.contains("--trace-max-bytes") && err.contains("512KiB"),
                "{bad}: {err}"
            );
        }
        // The flags that take sizes agree on `10M`.
        let http = crate::sink::http::HttpConfig::from_args_with_env(
            &args(&[
                "--http-url",
                "http://127.0.0.1:1/",
                "--http-batch-bytes",
                "10M",
            ])
            .http,
            Default::default(),
        )
        .unwrap();
        assert_eq!(http.max_bytes as u64, 10 << 20);
        let obs = crate::metrics::ObservabilityConfig::from_args(
            &args(&["--trace-requests", "/tmp/t", "--trace-max-bytes", "10M"]).observability,
        )
        .unwrap();
        assert_eq!(obs.trace_max_bytes, 10 << 20);
    }

    #[test]
    fn limit_out_of_range_is_refused() {
        let err = RunConfig::from_args_with_token(args(&["--limit", "10000"]), token())
            .unwrap_err()
            .to_string();
        assert!(err.contains("1..=9999"), "{err}");
        assert!(RunConfig::from_args_with_token(args(&["--limit", "0"]), token()).is_err());
    }

    #[test]
    fn more_than_thirty_actions_is_refused_before_sending() {
        let many: Vec<String> = (0..31).map(|i| format!("a{i}")).collect();
        let joined = many.join(",");
        let err = RunConfig::from_args_with_token(args(&["--action", &joined]), token())
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 30"), "{err}");
        let ok = RunConfig::from_args_with_token(
            args(&["--action", "user_login,file_downloaded"]),
            token(),
        )
        .unwrap();
        assert_eq!(ok.filters.actions, vec!["user_login", "file_downloaded"]);
        assert!(
            RunConfig::from_args_with_token(args(&["--action", "bad action"]), token()).is_err()
        );
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let c = RunConfig::from_args_with_token(args(&[]), token()).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("xoxp-test-token"), "{dbg}");
        assert!(
            dbg.contains("REDACTED"),
            "the token field is still there, redacted: {dbg}"
        );
    }

    #[test]
    fn missing_token_says_where_to_put_it() {
        let err = RunConfig::from_args_with_token(args(&[]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("SLACK_AUDIT_TOKEN"), "{err}");
    }

    #[test]
    fn an_http_timeout_not_shorter_than_the_interval_is_warned_about_not_refused() {
        let http = ["--sink", "http", "--http-url", "http://127.0.0.1:8080/"];
        let warnings = |extra: &[&str]| {
            let mut argv = http.to_vec();
            argv.extend_from_slice(extra);
            RunConfig::from_args_with_token(args(&argv), token())
                .expect("a valid configuration")
                .warnings()
        };
        // The defaults (30s under 60s) are quiet.
        assert_eq!(warnings(&[]), Vec::<String>::new());
        assert_eq!(warnings(&["--interval", "31s"]), Vec::<String>::new());
        for extra in [
            &["--interval", "30s"][..],
            &["--interval", "10s"],
            &["--http-timeout", "2m"],
        ] {
            let w = warnings(extra);
            assert_eq!(w.len(), 1, "{extra:?}: {w:?}");
            assert!(
                w[0].contains("--http-timeout") && w[0].contains("--interval"),
                "{}",
                w[0]
            );
        }
        let w = warnings(&["--interval", "10s"]);
        assert!(w[0].contains("30s") && w[0].contains("10s"), "{}", w[0]);
        // The stdout sink has no request timeout: short intervals (demo, tests) stay quiet.
        let stdout = RunConfig::from_args_with_token(args(&["--interval", "1s"]), token()).unwrap();
        assert!(stdout.warnings().is_empty());
    }

    #[test]
    fn config_file_keys_must_be_run_flags() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "no_such_key = 1\n").unwrap();
        let argv = vec![
            "x".into(),
            "run".into(),
            "--config".into(),
            p.clone().into_os_string(),
        ];
        let err = apply_config_file(argv).unwrap_err().to_string();
        assert!(err.contains("no_such_key"), "{err}");
    }

    #[test]
    fn config_file_values_come_after_flags_and_environment_and_stay_out_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "interval = \"7s\"\nlimit = 5\nhttp_header = [\"X-Api-Key: file-secret-value\"]\nsettle_lag = \"9s\"\n",
        )
        .unwrap();
        let argv: Vec<std::ffi::OsString> =
            ["slack-audit-source", "run", "--limit", "3", "--config"]
                .iter()
                .map(Into::into)
                .chain([p.clone().into_os_string()])
                .collect();
        let merged = apply_config_file(argv).unwrap();
        let cli = Cli::try_parse_from(&merged).unwrap();
        let Command::Run(a) = cli.command else {
            unreachable!()
        };
        assert_eq!(a.limit, 3, "the flag wins over the file");
        assert_eq!(a.interval, "7s");
        assert_eq!(a.settle_lag, "9s");
        assert_eq!(a.http.http_headers, vec!["X-Api-Key: file-secret-value"]);
        // Nothing was copied into the environment.
        assert!(std::env::vars().all(|(_, v)| !v.contains("file-secret-value")));
        assert!(std::env::var_os("SLACK_AUDIT_INTERVAL").is_none());
    }
}
