//! A stand-in for the Slack Audit Logs API, with generated events.
//!
//! STUB (issue 2, item 8): being written.

use crate::shutdown::Shutdown;
use std::net::SocketAddr;

/// Arguments of `simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8686")]
    pub listen: String,
}

/// Options of a simulator started in-process.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {}

impl SimOptions {
    /// What `demo` uses: steady generated traffic and the salesperson story.
    pub fn demo() -> SimOptions {
        SimOptions {}
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Starts a simulator on `addr`.
///
/// # Errors
///
/// [`crate::Error::Listen`].
pub async fn start(
    addr: SocketAddr,
    _options: SimOptions,
    _shutdown: Shutdown,
) -> Result<SimHandle, crate::Error> {
    Err(crate::Error::Listen {
        addr: addr.to_string(),
        source: std::io::Error::other("the simulator is not implemented yet"),
    })
}

/// The `simulate` command.
///
/// # Errors
///
/// A bad address, or a port in use.
pub async fn run_simulate(args: SimulateArgs, shutdown: Shutdown) -> Result<(), crate::Error> {
    let addr = crate::config::parse_listen("listen", &args.listen)?;
    let _h = start(addr, SimOptions::default(), shutdown.clone()).await?;
    let mut s = shutdown;
    s.wait().await;
    Ok(())
}
