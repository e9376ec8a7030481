//! The `slack-audit-source` binary: parse the command line, start tracing on stderr, wire
//! SIGTERM/SIGINT, call the library, and turn its error into the contract's exit code.
//! The only place that uses `anyhow`-style reporting; stdout carries data only.

use clap::Parser;
use slack_audit_source::config::{self, Cli, Command, LogFormat};
use slack_audit_source::{shutdown, Error};
use std::process::ExitCode;

fn main() -> ExitCode {
    slack_audit_source::memory::configure();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(missing) = not_built_in(&argv) {
        eprintln!(
            "slack-audit-source: `{missing}` is not built into this binary: it was built without \
             the `simulator` cargo feature (container images leave it out). Build with the \
             default features (`cargo build --release`) to get `simulate` and `demo`."
        );
        return ExitCode::from(2);
    }
    // The config file's values join the command line in the process, never the environment.
    let argv = match config::apply_config_file(argv) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("slack-audit-source: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; clap prints them to stdout by design.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let format = match &cli.command {
        Command::Run(a) => a.log_format,
        #[cfg(feature = "simulator")]
        Command::Demo(a) => a.log_format,
        _ => LogFormat::Text,
    };
    init_tracing(format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("slack-audit-source: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopping");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

async fn dispatch(command: Command) -> Result<(), Error> {
    match command {
        Command::Run(args) => {
            let config = slack_audit_source::RunConfig::from_args(*args)?;
            slack_audit_source::run(config, shutdown::signals()).await
        }
        Command::Map(args) => slack_audit_source::mapping::run_map(args).await,
        Command::Analyze(args) => slack_audit_source::analyze(args).await,
        #[cfg(feature = "simulator")]
        Command::Simulate(args) => {
            slack_audit_source::simulate::run_simulate(
                args,
                shutdown::Shutdown::from_future(shutdown::signals()),
            )
            .await
        }
        #[cfg(feature = "simulator")]
        Command::Demo(args) => slack_audit_source::demo::run_demo(args, shutdown::signals()).await,
        Command::Status(args) => slack_audit_source::status::run_status(&args),
    }
}

/// The subcommand asked for when it needs the simulator and this build has none: clap would
/// only say "unrecognized subcommand", which does not tell the reader what to rebuild.
fn not_built_in(argv: &[std::ffi::OsString]) -> Option<&'static str> {
    if cfg!(feature = "simulator") {
        return None;
    }
    let command = argv.get(1)?.to_str()?;
    ["simulate", "demo"].into_iter().find(|c| *c == command)
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SLACK_AUDIT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("slack_audit_source=info,warn"));
    // Colours only for a person at a terminal; a log collector reading the pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(slack_audit_source::progress::LogWriter)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
