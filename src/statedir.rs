//! The state directory: created if missing, and locked so that one process reads one org.
//!
//! Two processes on one directory would each move the checkpoint and deliver every event
//! twice; the second one exits with a clear message instead. The lock is an advisory
//! `flock` on `state.lock`, released by the kernel when the process dies (SIGKILL included),
//! so a crash never leaves a stale lock behind.
//!
//! The directory holds names, emails and IPs: it is created 0700 and the lock file 0600,
//! whatever the umask (a directory that already exists keeps its mode: a mounted volume's
//! owner decided it).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Default `--state-dir` of `run` and `status`: beside the working directory.
pub(crate) const DEFAULT_STATE_DIR: &str = "./state";

/// A locked state directory; the lock lives as long as this value.
#[derive(Debug)]
pub(crate) struct StateDir {
    path: PathBuf,
    _lock: File,
}

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating or opening it failed.
    #[error("cannot use state dir {}: {source} (check --state-dir and that it is writable)", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error("state dir {} is in use by another slack-audit-source (pid {holder}); run one process per state dir", path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
}

impl StateDir {
    /// Creates (if needed) and locks `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] when another process has it, [`Error::Io`] otherwise.
    pub(crate) fn open(path: &Path) -> Result<StateDir, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut dirs = std::fs::DirBuilder::new();
        dirs.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
        dirs.create(path).map_err(io)?;
        let lock_path = path.join("state.lock");
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&lock_path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path)
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        // The pid is only for the message above; failing to write it is harmless.
        let _ = file
            .set_len(0)
            .and_then(|_| write!(file, "{}", std::process::id()));
        Ok(StateDir {
            path: path.to_path_buf(),
            _lock: file,
        })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDir::open(dir.path()).unwrap();
        let err = StateDir::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("in use by another slack-audit-source"),
            "{err}"
        );
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        StateDir::open(dir.path()).unwrap();
    }

    #[test]
    fn missing_dirs_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        StateDir::open(&nested).unwrap();
        assert!(nested.join("state.lock").exists());
    }

    #[test]
    fn a_new_dir_and_its_lock_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("state");
        StateDir::open(&nested).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&nested.join("state.lock")), 0o600);
    }
}
