//! slack-audit-source: Slack Enterprise Grid audit logs to NDJSON, delivered at least once
//! and made idempotent by `event.id`.
//!
//! # Layout
//!
//! Data walks one way; each stage knows only its neighbours' types:
//!
//! ```text
//! Slack API ─► slack::client ─► poller ─► pipeline ─────────────────────► sink ─► Vector / Fluent Bit
//!  (or simulate)   (a page)    (window,   (mapping → analysis → batch)   (stdout NDJSON, HTTP)
//!                               cursor)
//! ```
//!
//! - [`slack`] turns a query into a page of raw entries, or a typed error; it owns the token,
//!   the request budget and the retries ([`retry`]).
//! - `poller` owns the reading order and the [`checkpoint`]: it alone decides what to fetch
//!   next and when progress is durable, which is only after the [`sink`] says a page is safe.
//!   A fetch task owns the Slack client (one page fetched ahead), a send task owns the sink
//!   (one chunk in flight), and the poller checks each page against its chain.
//! - `pipeline` turns a page and the window state into chunks ready to send: it decides which
//!   entries are new, and runs [`mapping`] and [`analysis`] on them.
//! - [`mapping`] is pure: raw entry + fetch time → ECS document.
//! - [`analysis`] annotates anomaly events and emits findings; its state rides in the checkpoint.
//! - [`progress`] shows a long backfill's progress on stderr.
//! - [`status`] reads a state directory beside a running reader and says where it stands.
//! - `simulate` (the `simulator` cargo feature, on by default) is a stand-in for the Audit Logs
//!   API, used by `demo`, tests and benchmarks.
//!
//! [`run`] is the whole `run` command with an injectable shutdown, and the one place where
//! the parts are built (the composition root); [`run_with`] lets tests and `demo` replace
//! some of them ([`Overrides`]).

pub mod analysis;
pub mod checkpoint;
pub mod config;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod doc;
pub(crate) mod error;
pub(crate) mod fnv;
pub mod mapping;
pub mod memory;
pub mod metrics;
pub(crate) mod pipeline;
pub(crate) mod poller;
pub mod progress;
pub(crate) mod respond;
pub mod retry;
pub(crate) mod secret_file;
pub mod serve;
pub mod shutdown;
#[cfg(feature = "simulator")]
pub mod simulate;
pub mod sink;
pub mod slack;
pub(crate) mod statedir;
pub mod status;
#[cfg(test)]
mod testing;
pub(crate) mod text;
pub mod trace;
pub(crate) mod units;

pub use config::RunConfig;
pub use error::Error;

use checkpoint::{Checkpoint, CheckpointStore, AUDIT_LOGS_EPOCH};
use config::SinkConfig;
use shutdown::Shutdown;
use std::future::Future;
use std::time::Duration;
use tokio::io::AsyncWrite;

/// The parts of a run that tests and `demo` replace; the configuration builds the rest.
#[derive(Default)]
pub struct Overrides {
    stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    slack_backoff: Option<retry::Backoff>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("stdout", &self.stdout.as_ref().map(|_| ".."))
            .field("slack_backoff", &self.slack_backoff)
            .finish()
    }
}

impl Overrides {
    /// Nothing replaced: what `run` uses.
    pub fn new() -> Overrides {
        Overrides::default()
    }

    /// The stdout sink writes to `out` instead of the process's stdout (a buffer in tests, a
    /// tee in `demo`).
    pub fn stdout(mut self, out: impl AsyncWrite + Send + Unpin + 'static) -> Overrides {
        self.stdout = Some(Box::new(out));
        self
    }

    /// The Slack client retries on `backoff` (tests use short schedules).
    pub fn slack_backoff(mut self, backoff: retry::Backoff) -> Overrides {
        self.slack_backoff = Some(backoff);
        self
    }
}

/// The `analyze` command: the analysis over an export, and with `--respond plan` the
/// response plan after each finding that would act. It never acts.
///
/// # Errors
///
/// `--respond enforce` (exit 2), and what [`analysis::run_analyze`] returns.
pub async fn analyze(cmd: config::AnalyzeCmd) -> Result<(), Error> {
    if cmd.respond.respond == respond::Mode::Enforce {
        return Err(units::ConfigError::Invalid {
            flag: "respond",
            message: "analyze never acts; give --respond plan to print what run would do".into(),
        }
        .into());
    }
    let config = respond::RespondConfig::from_args(&cmd.respond, false)?;
    analysis::run_analyze_with(cmd.analyze, respond::Responder::analyze_plan(config)).await
}

/// Runs the `run` command until it has caught up (`--once`) or `shutdown` resolves.
///
/// Returns once the page in hand, if any, has been delivered and checkpointed.
///
/// # Errors
///
/// Configuration problems found at start (an unusable state dir, a locked state dir, a corrupt
/// checkpoint), fatal Slack answers (credentials, plan, install), and sink failures. See
/// [`Error::exit_code`] for how each maps to the process exit code.
pub async fn run(
    config: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    run_with(config, Overrides::new(), shutdown).await
}

/// [`run`] with some of its parts replaced.
///
/// # Errors
///
/// As [`run`].
pub async fn run_with(
    config: RunConfig,
    overrides: Overrides,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let shutdown = Shutdown::from_future(shutdown);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    // /metrics, /healthz and /readyz with --metrics-listen; the listener stops on shutdown,
    // and at the latest when this handle drops as `run` returns.
    let _metrics =
        metrics::server::start_for_run(&config.observability, config.interval, shutdown.clone())
            .await?;
    let progress = tokio::spawn(progress::report(
        config.observability.progress_interval,
        shutdown.clone(),
    ));
    // With --slack-allowlist, Slack's list is read before the first page is analysed.
    let slack_allowlist = config
        .web_api
        .slack_allowlist
        .then(|| config.analysis.allowlist.slack_part())
        .flatten();
    let result = async {
        let poller = assemble(config, overrides, shutdown.clone())?;
        if let Some(part) = slack_allowlist {
            let mut stop = shutdown.clone();
            tokio::select! {
                read = part.wait_first_read(SLACK_ALLOWLIST_FIRST_READ) => if !read {
                    tracing::warn!(wait_secs = SLACK_ALLOWLIST_FIRST_READ.as_secs(), "Slack's allowlist is not read yet; starting with the local allowlist, Slack's joins when read");
                },
                _ = stop.wait() => {}
            }
        }
        poller.run().await
    }
    .await;
    progress.abort();
    progress::clear_line();
    result
}

/// How long `run --slack-allowlist` waits for the first read of Slack's allowlist before it
/// reads audit logs: a call's timeout and its 429 waits, with room.
const SLACK_ALLOWLIST_FIRST_READ: Duration = Duration::from_secs(120);

/// The composition root: locks the state dir, loads the checkpoint and builds every part
/// (pipeline, client, sink), then hands them to the poller.
///
/// # Errors
///
/// A locked or unusable state dir, a corrupt checkpoint, unreadable mapping or analysis files,
/// a client or sink that cannot be set up.
pub(crate) fn assemble(
    mut config: RunConfig,
    overrides: Overrides,
    shutdown: Shutdown,
) -> Result<poller::Poller, Error> {
    let lock = statedir::StateDir::open(&config.state_dir)?;
    let store = CheckpointStore::new(lock.path());
    let mut state = resume(&store, config.initial_lookback)?;
    if config.max_rpm > 50
        && config
            .api_url
            .host_str()
            .is_some_and(|h| h.ends_with("slack.com"))
    {
        tracing::warn!(max_rpm = config.max_rpm, "--max-requests-per-minute is above Slack's ~50/min, which every app in the org shares; expect 429s");
    }
    // Handed to the analyzer and not kept with the checkpoint: each save writes the live state.
    let saved = state.analysis.take().map(|a| a.0);
    let mapper = mapping::Mapper::new(&config.mapping)?;
    let analyzer = analysis::Analyzer::from_saved(&config.analysis, saved, Some(mapper.geoip()))?;
    let mut pipeline = pipeline::Pipeline::new(mapper, analyzer);
    let tracer = trace::Tracer::from_config(&config.observability)?;
    // The Web API client, with the admin token (`--respond-token-file`): what the response
    // stage calls, and what reads Slack's allowlist. Apart from the Audit Logs client, which
    // never sees the admin token.
    let web_api = slack::web_api::WebApi::from_config(&mut config.web_api)
        .map_err(|e| slack::Error::Transport(e.to_string()))?;
    if web_api.is_some() {
        tracing::info!(url = %config.web_api.base_url, "Web API admin token loaded");
    }
    if let (true, Some(api), Some(part)) = (
        config.web_api.slack_allowlist,
        &web_api,
        config.analysis.allowlist.slack_part(),
    ) {
        tokio::spawn(analysis::allowlist::keep_slack_allowlist(
            api.clone(),
            part,
            shutdown.clone(),
        ));
    }
    let responder = respond::Responder::build(
        &config.respond,
        &config.analysis,
        state.response.take(),
        &mut pipeline,
        web_api.clone(),
    );
    let mut client = slack::SlackClient::new(slack::client::ClientConfig {
        api_url: config.api_url,
        token: config.token,
        max_rpm: config.max_rpm,
        request_timeout: config.request_timeout,
        tracer,
        max_response_bytes: config.max_response_bytes,
        give_up_after: config.once.then_some(slack::client::ONCE_MAX_ATTEMPTS),
    })?;
    if let Some(backoff) = overrides.slack_backoff {
        client.set_backoff(backoff);
    }
    let sink = match (config.sink, overrides.stdout) {
        (SinkConfig::Stdout, Some(out)) => sink::Sink::Stdout(sink::stdout::StdoutSink::new(out)),
        (SinkConfig::Stdout, None) => sink::Sink::Stdout(sink::stdout::StdoutSink::stdout()),
        (SinkConfig::Http(h), _) => sink::Sink::Http(sink::http::HttpSink::new(h)?),
    };
    let settings = poller::Settings {
        interval: config.interval,
        settle_lag: config.settle_lag.as_secs().max(1) as i64,
        overlap: config.overlap.as_secs() as i64,
        limit: config.limit,
        filters: config.filters,
        once: config.once,
    };
    let parts = poller::Parts {
        client,
        pipeline,
        sink,
        store,
        state,
        lock,
        settings,
        responder,
    };
    Ok(poller::Poller::new(parts, shutdown))
}

/// The checkpoint to start from: the saved one, or a first window `initial_lookback` back.
///
/// # Errors
///
/// A checkpoint that cannot be read or holds impossible values.
fn resume(store: &CheckpointStore, initial_lookback: Duration) -> Result<Checkpoint, Error> {
    Ok(match store.load()? {
        Some(cp) => {
            tracing::info!(path = %store.path().display(), next_oldest = cp.next_oldest, open_window = cp.window.is_some(), "resuming from checkpoint");
            cp
        }
        None => {
            let start = (chrono::Utc::now().timestamp() - initial_lookback.as_secs() as i64)
                .max(AUDIT_LOGS_EPOCH);
            tracing::info!(
                oldest = start,
                "no checkpoint yet: first run starts at now minus --initial-lookback"
            );
            Checkpoint {
                next_oldest: start,
                window: None,
                recent: Default::default(),
                analysis: None,
                response: None,
                updated_at: chrono::Utc::now(),
            }
        }
    })
}
