//! Values of flags: the one place that reads and writes sizes and durations, and that reads
//! URLs and listen addresses, with the [`ConfigError`] every reader returns.
//!
//! A leaf: it imports nothing of this crate, so every module (the flag groups beside
//! `mapping`, `sink::http`, `metrics`, `analysis`, `simulate`, and `config` above them) can
//! use it without an import circle. `scripts/ci/check-layers.py` keeps it that way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// A problem with the configuration; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A duration that humantime cannot read.
    #[error(
        "--{flag}: cannot read duration {value:?}: {reason} (write it like 90s, 5m, 1h or 720h)"
    )]
    Duration {
        /// The flag's long name.
        flag: &'static str,
        /// What was given.
        value: String,
        /// humantime's complaint.
        reason: String,
    },
    /// A value outside its range.
    #[error("--{flag}: {message}")]
    Invalid {
        /// The flag's long name.
        flag: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A URL that cannot be used.
    #[error("--{flag}: {message}")]
    Url {
        /// The flag's long name.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No token anywhere.
    #[error("no Slack token: set SLACK_AUDIT_TOKEN, or --token-file / SLACK_AUDIT_TOKEN_FILE to a file holding it")]
    NoToken,
    /// The token file cannot be read at start.
    #[error("--token-file {}: {reason}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The TOML config file is unreadable or has unknown keys.
    #[error("--config {}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// [`ConfigError::Invalid`] for `flag`, with what is wrong and what is allowed.
    pub(crate) fn invalid(flag: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            flag,
            message: message.into(),
        }
    }
}

/// Parses a humane duration (`90s`, `5m`, `720h`) for the flag `flag`.
///
/// # Errors
///
/// [`ConfigError::Duration`] quoting the value.
pub(crate) fn parse_duration(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let v = value.trim();
    // humantime refuses a bare 0; "0" is an obvious way to say "off".
    if v == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(v).map_err(|e| ConfigError::Duration {
        flag,
        value: value.to_string(),
        reason: e.to_string(),
    })
}

/// Parses a byte size for the flag `flag`; every size flag uses this one parser, so one
/// spelling means one size everywhere.
///
/// A bare number is bytes. `K`, `M`, `G` and `KiB`, `MiB`, `GiB` are powers of 1024 (as
/// Fluent Bit reads `4M`); `KB`, `MB`, `GB` are powers of 1000. Units are case-insensitive,
/// may follow a space, and `B` alone means bytes. Zero and overflowing values are refused.
///
/// # Errors
///
/// [`ConfigError::Invalid`] quoting the value and showing the accepted forms.
pub(crate) fn parse_size(flag: &'static str, value: &str) -> Result<u64, ConfigError> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let factor: Option<u64> = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => Some(1),
        "k" | "kib" => Some(1 << 10),
        "m" | "mib" => Some(1 << 20),
        "g" | "gib" => Some(1 << 30),
        "kb" => Some(1_000),
        "mb" => Some(1_000_000),
        "gb" => Some(1_000_000_000),
        _ => None,
    };
    match (digits.parse::<u64>().ok(), factor) {
        (Some(n), Some(f)) if n > 0 => n.checked_mul(f),
        _ => None,
    }
    .ok_or_else(|| ConfigError::Invalid {
        flag,
        message: format!(
            "{value:?} is not a size like 1048576 (bytes), 512KiB, 4M (= 4MiB) or 10MB (= 10,000,000 bytes)"
        ),
    })
}

/// Checks a URL the binary will talk to: parseable, http(s), and plain http only to loopback
/// (a token or audit data must never cross a network in clear).
///
/// # Errors
///
/// [`ConfigError::Url`] saying what to change.
pub(crate) fn parse_url(flag: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::Url {
        flag,
        message: format!("cannot parse {value:?}: {e}"),
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(ConfigError::Url {
            flag,
            message: format!(
                "{value:?} is plain http to a host that is not loopback; use https://"
            ),
        }),
        other => Err(ConfigError::Url {
            flag,
            message: format!("{value:?} has scheme {other:?}; use https://"),
        }),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The socket address given to a `--*-listen` flag.
///
/// # Errors
///
/// [`ConfigError::Invalid`] quoting the value.
pub(crate) fn parse_listen(flag: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        flag,
        message: format!("{value:?} is not an address like 127.0.0.1:9090 or [::]:9090"),
    })
}

/// A listener (metrics, simulator) that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ListenError {
    /// The address asked for.
    pub(crate) addr: String,
    /// Why binding failed.
    pub(crate) source: std::io::Error,
}

/// A default duration constant, spelled as its flag takes it (`"60s"`), as a [`Duration`]:
/// `Default` impls and `demo` read the same constant clap shows in `--help`.
///
/// # Panics
///
/// When `text` does not parse; every default is a literal that the unit test
/// `every_default_parses` (and the flag's own tests) read.
pub(crate) fn default_duration(text: &'static str) -> Duration {
    parse_duration("default", text).expect("a default duration constant parses")
}

/// A default size constant (`"64MiB"`) as bytes; see [`default_duration`].
///
/// # Panics
///
/// When `text` does not parse, as for [`default_duration`].
#[cfg(test)]
pub(crate) fn default_size(text: &'static str) -> u64 {
    parse_size("default", text).expect("a default size constant parses")
}

/// A duration the way a flag takes it and a warning quotes it (`1m`, `2h 5m`).
pub(crate) fn format_duration(d: Duration) -> impl std::fmt::Display {
    humantime::format_duration(d)
}

/// A span of time the way the progress ETA and `status` say it, in two units at most: `3s`,
/// `4m10s`, `2h05m`, `30d02h`.
pub(crate) fn compact_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        assert!(parse_url("api-url", "http://127.0.0.1:8080").is_ok());
        assert!(parse_url("api-url", "http://localhost:8080").is_ok());
        assert!(parse_url("api-url", "http://[::1]:8080").is_ok());
        let err = parse_url("api-url", "http://slack.example.com")
            .unwrap_err()
            .to_string();
        assert!(err.contains("use https://"), "{err}");
        assert!(parse_url("api-url", "ftp://x").is_err());
    }

    #[test]
    fn durations_take_humane_units_and_name_the_flag() {
        assert_eq!(
            parse_duration("interval", "90s").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_duration("interval", "5m").unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(parse_duration("interval", "0").unwrap(), Duration::ZERO);
        let err = parse_duration("interval", "soon").unwrap_err().to_string();
        assert!(
            err.contains("--interval") && err.contains("\"soon\""),
            "{err}"
        );
    }

    #[test]
    fn listen_addresses_name_the_flag() {
        assert_eq!(
            parse_listen("metrics-listen", "[::]:9090").unwrap().port(),
            9090
        );
        let err = parse_listen("metrics-listen", "9090")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--metrics-listen") && err.contains("127.0.0.1:9090"),
            "{err}"
        );
    }

    #[test]
    fn compact_durations_keep_two_units() {
        assert_eq!(compact_duration(Duration::from_secs(3)), "3s");
        assert_eq!(compact_duration(Duration::from_secs(250)), "4m10s");
        assert_eq!(compact_duration(Duration::from_secs(7500)), "2h05m");
        assert_eq!(
            compact_duration(Duration::from_secs(30 * 86_400 + 7200)),
            "30d02h"
        );
    }

    #[test]
    fn formatted_durations_read_back_as_flags() {
        for secs in [1, 60, 90, 3600, 30 * 86_400] {
            let d = Duration::from_secs(secs);
            let text = format_duration(d).to_string();
            assert_eq!(parse_duration("interval", &text).unwrap(), d, "{text}");
        }
    }
}
