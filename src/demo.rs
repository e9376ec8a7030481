//! `demo`: the simulator and `run` in one process, NDJSON on stdout, a banner and a summary on
//! stderr.
//!
//! What a newcomer runs first (`cargo run --release -- demo`): no Slack org, no token. It
//! streams the simulated org until the departing-salesperson story (the first 45 s) and the
//! attack story, compressed (the next 40 s), have played, catches up once more so their last
//! events are in, and stops with a summary: events
//! delivered, findings by rule, where the state is, and the `analyze` command that shows the
//! findings again from the documents it kept. `--follow` keeps streaming until Ctrl-C, and
//! `--duration` stops after a set time. The state dir (with a copy of the documents, both
//! private) is left under the system temp dir for that `analyze` command.

use crate::config::{DemoArgs, RunArgs, RunConfig};
use crate::shutdown::Shutdown;
use crate::simulate::generator::STORY_OFFSETS;
use secrecy::SecretString;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;

/// The documents the demo delivered, kept beside its checkpoint.
pub(crate) const DOCUMENTS_FILE: &str = "demo.ndjson";
/// After the story's last step, how long before the final catch-up: the settle lag and a
/// second for the simulator's clock.
const STORY_SETTLE: Duration = Duration::from_secs(2);

/// Runs the demo until the story has played (or `--duration`, `--follow`, `shutdown`).
///
/// # Errors
///
/// The simulator cannot listen, the state dir cannot be made, or the pipeline fails.
pub async fn run_demo(
    args: DemoArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), crate::Error> {
    let duration = args
        .duration
        .as_deref()
        .map(|d| crate::units::parse_duration("duration", d))
        .transpose()?;
    let user = Shutdown::from_future(shutdown);
    let addr = "127.0.0.1:0".parse().expect("a literal socket address");
    let sim =
        crate::simulate::start(addr, crate::simulate::SimOptions::demo(), user.clone()).await?;
    let story_end = STORY_OFFSETS
        .last()
        .copied()
        .unwrap_or(0)
        .max(crate::simulate::generator::attacks::demo_end());
    let state_dir =
        std::env::temp_dir().join(format!("slack-audit-source-demo-{}", std::process::id()));
    let documents = state_dir.join(DOCUMENTS_FILE);
    let ending = match (duration, args.follow) {
        (Some(d), _) => format!("It stops after {}.", crate::units::format_duration(d)),
        (None, true) => "It keeps streaming until Ctrl-C.".into(),
        (None, false) => format!(
            "It stops once the stories have played (about {} s).",
            story_end + 5
        ),
    };
    eprintln!(
        "slack-audit-source demo: a simulated Slack Audit Logs API is serving on http://{addr}\n\
         and `run` is polling it; ECS documents follow on stdout, one per line.\n\
         Watch for the departing salesperson: anomalies from \"Scrapers Inc\", then downloads of\n\
         Glengarry-Leads.xlsx; then, from about 50 s, eleven days of attacks told in a minute (a brute\n\
         force, a self-made owner, an admin-scoped app, mass session resets, a hijacked session...)\n\
         and the detection findings they give. {ending} State is kept in {state}.",
        addr = sim.addr,
        state = state_dir.display()
    );
    if args.respond == crate::respond::Mode::Enforce {
        return Err(crate::units::ConfigError::invalid(
            "respond",
            "the demo shows the plan only: give --respond plan (enforce needs a real org admin token, see docs/response.md)",
        )
        .into());
    }
    let config = |once| demo_config(sim.addr, &state_dir, once, args.respond);
    // The documents go to stdout and to a file beside the state, for `analyze` afterwards.
    let parts = || -> Result<crate::Overrides, crate::Error> {
        Ok(crate::Overrides::new().stdout(Tee::open(&documents)?))
    };
    // Live: until the story has played, unless told otherwise.
    let live = {
        let mut user = user.clone();
        let stop_after = match (duration, args.follow) {
            (Some(d), _) => Some(d),
            (None, true) => None,
            (None, false) => Some(Duration::from_secs(story_end) + STORY_SETTLE),
        };
        Shutdown::from_future(async move {
            match stop_after {
                Some(d) => {
                    tokio::select! {
                        _ = user.wait() => {},
                        _ = tokio::time::sleep(d) => {},
                    }
                }
                None => user.wait().await,
            }
        })
    };
    crate::assemble(config(false)?, parts()?, live)?
        .run()
        .await?;
    // The story is over: one catch-up to now, which takes in its last step, then stop.
    if duration.is_none() && !args.follow && !user.is_triggered() {
        crate::assemble(config(true)?, parts()?, user.clone())?
            .run()
            .await?;
    }
    eprintln!("{}", summary(&state_dir, &documents));
    Ok(())
}

/// The flags `demo` gives `run`; every other option is at its default. A small window and
/// short pauses, so the story shows within seconds; a generous request budget, since the
/// simulator is local.
fn demo_args(
    sim: std::net::SocketAddr,
    state_dir: &Path,
    once: bool,
    respond: crate::respond::Mode,
) -> RunArgs {
    let defaults = RunArgs::defaults();
    RunArgs {
        respond: crate::respond::RespondArgs {
            respond,
            ..defaults.respond.clone()
        },
        api_url: format!("http://{sim}"),
        state_dir: state_dir.to_path_buf(),
        initial_lookback: "1h".into(),
        interval: "2s".into(),
        settle_lag: "1s".into(),
        limit: 200,
        max_rpm: 600,
        request_timeout: "10s".into(),
        once,
        // The kept documents carry their raw entries, so that `analyze` over them finds what
        // the detection rules found live (they read raw entries, not ECS).
        mapping: crate::mapping::MappingArgs {
            preserve_original_event: true,
            ..defaults.mapping.clone()
        },
        ..defaults
    }
}

fn demo_config(
    sim: std::net::SocketAddr,
    state_dir: &Path,
    once: bool,
    respond: crate::respond::Mode,
) -> Result<RunConfig, crate::Error> {
    let token = SecretString::from("xoxp-demo-token-not-a-real-one");
    Ok(RunConfig::from_args_with_token(
        demo_args(sim, state_dir, once, respond),
        Some(token),
    )?)
}

/// What the demo did, from the documents it kept.
fn summary(state_dir: &Path, documents: &Path) -> String {
    let text = std::fs::read_to_string(documents).unwrap_or_default();
    let (mut events, mut responses, mut findings) =
        (0usize, 0usize, BTreeMap::<(String, String), usize>::new());
    for doc in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if doc.pointer("/event/kind").and_then(Value::as_str) == Some("alert") {
            let field = |p| {
                doc.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string()
            };
            *findings
                .entry((field("/rule/id"), field("/slack/audit/analysis/severity")))
                .or_default() += 1;
        } else if doc.pointer("/event/dataset").and_then(Value::as_str) == Some("slack.response") {
            responses += 1;
        } else {
            events += 1;
        }
    }
    let mut out = format!(
        "\nslack-audit-source demo: done. {events} audit events delivered, {} finding(s):\n",
        findings.values().sum::<usize>()
    );
    for ((rule, severity), n) in &findings {
        out.push_str(&format!("  {rule} ({severity}): {n}\n"));
    }
    if responses > 0 {
        out.push_str(&format!(
            "{responses} response document(s) (slack.response): what --respond would do\n"
        ));
    }
    out.push_str(&format!(
        "State (checkpoint and analysis) is in {}, the documents in {}.\n\
         Show the findings again:  slack-audit-source analyze < {}\n\
         Where the reader stood:   slack-audit-source status --state-dir {}",
        state_dir.display(),
        documents.display(),
        documents.display(),
        state_dir.display()
    ));
    out
}

/// Stdout, with every byte also appended to a private file: the documents `analyze` reads
/// again after the demo.
struct Tee {
    out: tokio::io::Stdout,
    file: std::fs::File,
    path: PathBuf,
}

impl Tee {
    fn open(path: &Path) -> Result<Tee, crate::Error> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let fail = |source| crate::Error::ReadFile {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(fail)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(fail)?;
        Ok(Tee {
            out: tokio::io::stdout(),
            file,
            path: path.to_path_buf(),
        })
    }
}

impl AsyncWrite for Tee {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.out).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                // A local file written in the demo only; a failure is reported, not hidden.
                std::io::Write::write_all(&mut this.file, &buf[..n]).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", this.path.display()))
                })?;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.out).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.out).poll_shutdown(cx)
    }
}
