//! The error the library hands to `main`, and the exit code each kind maps to.
//!
//! Modules keep their own error enums (callers branch on them); this one only groups them by
//! what the process should do: exit 2 for configuration, 3 for a fatal Slack answer, 1 otherwise.

use std::path::PathBuf;

/// Everything that stops the `run` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration or arguments cannot work; the message says what to change.
    #[error(transparent)]
    Config(#[from] crate::units::ConfigError),
    /// Slack refused the credentials, the plan, the install or a filter.
    #[error(transparent)]
    Slack(#[from] crate::slack::Error),
    /// The state directory or its checkpoint could not be used.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::Error),
    /// The state directory is locked by another process, or cannot be created.
    #[error(transparent)]
    StateDir(#[from] crate::statedir::Error),
    /// The sink could not deliver a page; the checkpoint did not move.
    #[error(transparent)]
    Sink(#[from] crate::sink::Error),
    /// A listener (metrics, simulator) could not be started.
    #[error(transparent)]
    Listen(#[from] crate::units::ListenError),
    /// A file named in the configuration could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error, as the README's "Exit codes" table lists them.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::StateDir(_) | Error::Listen(_) | Error::ReadFile { .. } => 2,
            Error::Checkpoint(e) if e.is_config() => 2,
            Error::Slack(e) if e.is_fatal() => 3,
            _ => 1,
        }
    }
}
