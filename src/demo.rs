//! `demo`: the simulator and `run` in one process, NDJSON on stdout, a banner on stderr.
//!
//! What a newcomer runs first (`cargo run --release -- demo`): no Slack org, no token, no
//! files left behind except a state dir under the system temp dir.

use crate::config::{DemoArgs, Filters, RunConfig, SinkConfig};
use crate::shutdown::Shutdown;
use secrecy::SecretString;
use std::future::Future;
use std::time::Duration;

/// Runs the demo until `shutdown` (or `--duration`).
///
/// # Errors
///
/// The simulator cannot listen, or the pipeline fails.
pub async fn run_demo(
    args: DemoArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), crate::Error> {
    let duration = args
        .duration
        .as_deref()
        .map(|d| crate::config::parse_duration("duration", d))
        .transpose()?;
    let shutdown = Shutdown::from_future(async move {
        match duration {
            Some(d) => {
                tokio::select! {
                    _ = shutdown => {},
                    _ = tokio::time::sleep(d) => {},
                }
            }
            None => shutdown.await,
        }
    });
    let addr = "127.0.0.1:0".parse().expect("a literal socket address");
    let sim =
        crate::simulate::start(addr, crate::simulate::SimOptions::demo(), shutdown.clone()).await?;
    let state_dir =
        std::env::temp_dir().join(format!("slack-audit-source-demo-{}", std::process::id()));
    eprintln!(
        "slack-audit-source demo: a simulated Slack Audit Logs API is serving on http://{addr}\n\
         and `run` is polling it; ECS documents follow on stdout, one per line.\n\
         Watch for the departing salesperson: anomalies from \"Scrapers Inc\", then downloads of\n\
         Glengarry-Leads.xlsx. State is kept in {state}. Press Ctrl-C to stop.",
        addr = sim.addr,
        state = state_dir.display()
    );
    let config = RunConfig {
        api_url: url::Url::parse(&format!("http://{}", sim.addr))
            .expect("a loopback URL always parses"),
        token: crate::slack::TokenSource::fixed(SecretString::from(
            "xoxp-demo-token-not-a-real-one",
        ))?,
        state_dir: state_dir.clone(),
        initial_lookback: Duration::from_secs(3600),
        interval: Duration::from_secs(2),
        settle_lag: Duration::from_secs(1),
        overlap: Duration::ZERO,
        limit: 200,
        filters: Filters::default(),
        max_rpm: 600,
        request_timeout: Duration::from_secs(10),
        max_response_bytes: 64 << 20,
        sink: SinkConfig::Stdout,
        once: false,
        mapping: crate::mapping::MappingConfig::default_for_demo(),
        observability: Default::default(),
        analysis: Default::default(),
        stdout: None,
    };
    let result = crate::poller::Poller::start(config, shutdown)
        .await?
        .run()
        .await;
    // The demo's state is throwaway; a failure to remove it is harmless.
    let _ = std::fs::remove_dir_all(&state_dir);
    result
}
