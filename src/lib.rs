//! slack-audit-source: Slack Enterprise Grid audit logs to NDJSON, exactly once.
//!
//! # Layout
//!
//! Data walks one way; each stage knows only its neighbours' types:
//!
//! ```text
//! Slack API ─► slack::client ─► poller ─► mapping ─► analysis ─► sink ─► Vector / Fluent Bit
//!  (or simulate)   (a page)    (window,   (ECS doc)  (findings)   (stdout NDJSON, HTTP)
//!                               cursor)
//! ```
//!
//! - [`slack`] turns a query into a page of raw entries, or a typed error; it owns the token,
//!   the request budget and the retries ([`retry`]).
//! - [`poller`] owns the reading order and the [`checkpoint`]: it alone decides what to fetch
//!   next and when progress is durable, which is only after the [`sink`] says a page is safe.
//! - [`mapping`] is pure: raw entry + fetch time → ECS document.
//! - [`analysis`] annotates anomaly events and emits findings; its state rides in the checkpoint.
//! - [`progress`] shows a long backfill's progress on stderr.
//! - [`status`] reads a state directory beside a running reader and says where it stands.
//! - [`simulate`] is a stand-in for the Audit Logs API, used by `demo`, tests and benchmarks.
//!
//! [`run`] is the whole `run` command with an injectable shutdown, so tests drive it directly.

pub mod analysis;
pub mod checkpoint;
pub mod config;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod error;
pub mod mapping;
pub mod memory;
pub mod metrics;
pub mod poller;
pub mod progress;
pub mod retry;
pub mod secret_file;
pub mod serve;
pub mod shutdown;
#[cfg(feature = "simulator")]
pub mod simulate;
pub mod sink;
pub mod slack;
pub mod statedir;
pub mod status;
pub mod trace;

pub use config::RunConfig;
pub use error::Error;

use std::future::Future;

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
    let shutdown = shutdown::Shutdown::from_future(shutdown);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    // ops (issue 5): /metrics, /healthz and /readyz with --metrics-listen; the listener stops
    // on shutdown, and at the latest when this handle drops as `run` returns.
    let _metrics =
        metrics::server::start_for_run(&config.observability, config.interval, shutdown.clone())
            .await?;
    let progress = tokio::spawn(progress::report(
        config.observability.progress_interval,
        shutdown.clone(),
    ));
    let result = async {
        poller::Poller::start(config, shutdown.clone())
            .await?
            .run()
            .await
    }
    .await;
    progress.abort();
    progress::clear_line();
    result
}
