//! Credentials for the receiver: a bearer token or basic auth, each from a file (a small
//! regular file, re-read when it changes, so a rotated Kubernetes Secret takes effect without
//! a restart; see [`crate::secret_file`]) or from an environment variable. Values are [`SecretString`]s from the moment they are read;
//! `Debug` redacts them and no message quotes them.

use crate::secret_file::SecretFile;
use crate::units::ConfigError;
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;
use std::sync::Arc;

/// Environment variable holding the receiver's bearer token (when no token file is given).
pub(crate) const ENV_BEARER_TOKEN: &str = "SLACK_AUDIT_HTTP_BEARER_TOKEN";
/// Environment variable holding the basic-auth password (when no password file is given).
pub(crate) const ENV_PASSWORD: &str = "SLACK_AUDIT_HTTP_PASSWORD";

/// A credential: its value now, and the file to re-read it from, if any (a mounted Secret
/// rotated in place takes effect without a restart).
#[derive(Debug, Clone)]
pub(crate) struct Secret {
    value: SecretString,
    file: Option<Arc<SecretFile>>,
}

impl Secret {
    /// A fixed value (from the environment, or a test).
    pub(crate) fn fixed(value: SecretString) -> Secret {
        Secret { value, file: None }
    }

    /// Reads `path` now, so that a missing, oversized or special file fails at start.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the flag and the file, never the content.
    pub(crate) fn from_file(flag: &'static str, path: &Path) -> Result<Secret, ConfigError> {
        let file = SecretFile::open(path, check_secret).map_err(|reason| ConfigError::Invalid {
            flag,
            message: format!("{}: {reason}", path.display()),
        })?;
        Ok(Secret {
            value: file.current(),
            file: Some(Arc::new(file)),
        })
    }

    /// The value to use now: re-read from the file when it changed, keeping the last good
    /// value if the file is briefly unusable mid-rotation.
    pub(crate) fn current(&mut self) -> &SecretString {
        if let Some(file) = &self.file {
            self.value = file.current();
        }
        &self.value
    }
}

/// The reason never quotes the secret.
fn check_secret(s: &SecretString) -> Result<(), String> {
    let v = s.expose_secret();
    if v.is_empty() {
        return Err("is empty".into());
    }
    if !v.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err("holds control or non-ASCII characters; it must be one line".into());
    }
    Ok(())
}

/// How the sink authenticates to the receiver.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// `Authorization: Bearer …`.
    Bearer(Secret),
    /// `Authorization: Basic …`.
    Basic {
        /// The user name (not secret).
        user: String,
        /// The password.
        password: Secret,
    },
}

/// Secrets read from the environment, passed in so tests need not set process variables.
#[derive(Debug, Default)]
pub struct EnvSecrets {
    /// `SLACK_AUDIT_HTTP_BEARER_TOKEN`.
    pub bearer_token: Option<SecretString>,
    /// `SLACK_AUDIT_HTTP_PASSWORD`.
    pub password: Option<SecretString>,
}

impl EnvSecrets {
    /// Reads both variables from the process environment.
    pub(crate) fn from_env() -> EnvSecrets {
        let read = |name| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| SecretString::from(v.trim().to_string()))
        };
        EnvSecrets {
            bearer_token: read(ENV_BEARER_TOKEN),
            password: read(ENV_PASSWORD),
        }
    }
}

/// The credential flags of `--sink http`, as given.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AuthFlags<'a> {
    /// `--http-bearer-token-file`.
    pub(crate) bearer_token_file: Option<&'a Path>,
    /// `--http-user`.
    pub(crate) user: Option<&'a str>,
    /// `--http-password-file`.
    pub(crate) password_file: Option<&'a Path>,
}

impl Auth {
    /// Reads the credentials the flags and the environment name: a bearer token, or a user
    /// and password, never both.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the flag (and the file, never its content).
    pub(crate) fn from_args(
        flags: AuthFlags<'_>,
        env: EnvSecrets,
    ) -> Result<Option<Auth>, ConfigError> {
        let bearer = match (flags.bearer_token_file, env.bearer_token) {
            (Some(path), _) => Some(Secret::from_file("http-bearer-token-file", path)?),
            (None, Some(t)) => {
                check_secret(&t).map_err(|reason| {
                    ConfigError::invalid(
                        "http-bearer-token-file",
                        format!("{ENV_BEARER_TOKEN} {reason}"),
                    )
                })?;
                Some(Secret::fixed(t))
            }
            (None, None) => None,
        };
        let password = match (flags.password_file, env.password) {
            (Some(path), _) => Some(Secret::from_file("http-password-file", path)?),
            (None, Some(p)) => {
                check_secret(&p).map_err(|reason| {
                    ConfigError::invalid("http-password-file", format!("{ENV_PASSWORD} {reason}"))
                })?;
                Some(Secret::fixed(p))
            }
            (None, None) => None,
        };
        let user = flags.user.map(str::trim).filter(|u| !u.is_empty());
        match (bearer, user, password) {
            (Some(_), Some(_), _) => Err(ConfigError::invalid(
                "http-user",
                "give either a bearer token or basic auth (--http-user), not both",
            )),
            (Some(_), None, Some(_)) => Err(ConfigError::invalid(
                "http-password-file",
                "a password with a bearer token; basic auth also needs --http-user",
            )),
            (Some(t), None, None) => Ok(Some(Auth::Bearer(t))),
            (None, Some(u), _) if u.contains(':') => Err(ConfigError::invalid(
                "http-user",
                format!("{u:?} holds ':', which basic auth cannot carry in a user name"),
            )),
            (None, Some(u), Some(p)) => Ok(Some(Auth::Basic {
                user: u.to_string(),
                password: p,
            })),
            (None, Some(_), None) => Err(ConfigError::invalid(
                "http-user",
                format!("basic auth needs a password: --http-password-file or {ENV_PASSWORD}"),
            )),
            (None, None, Some(_)) => Err(ConfigError::invalid(
                "http-password-file",
                "a password without --http-user; give the user too",
            )),
            (None, None, None) => Ok(None),
        }
    }
}
