//! The request tracer (`--trace-requests DIR`): every Slack exchange as one NDJSON line, for
//! debugging what Slack really answered.
//!
//! Each line holds the time, method, URL, status, response headers and body. Secrets are
//! redacted everywhere before anything reaches the disk: the `Authorization`, cookie and
//! proxy headers by name, and anything shaped like a Slack token (`xox[abeposr]-…`, `xapp-…`)
//! in the URL, header values and body. The bodies still hold audit data (emails, IP
//! addresses), so a warning is logged when tracing starts and the files are private (0600).
//!
//! Files rotate by size: `requests.ndjson` is current, `requests.ndjson.1`…`.4` older, so at
//! most five files exist. A failure to write is logged once and never stops a poll: tracing is
//! an aid, not part of delivery.

use crate::units::ConfigError;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The current file's name; rotated copies get `.1` (newest) to `.4` (oldest).
pub const TRACE_FILE: &str = "requests.ndjson";

/// Files kept in all: the current one and four rotated copies.
pub const MAX_FILES: usize = 5;

/// What replaces a secret.
const REDACTED: &str = "[REDACTED]";

/// Headers whose whole value is a credential.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Writes requests and responses as NDJSON, redacted. Cheap to clone; clones share the file.
#[derive(Debug, Clone)]
pub struct Tracer {
    inner: Arc<Mutex<Writer>>,
}

#[derive(Debug)]
struct Writer {
    dir: PathBuf,
    max_bytes: u64,
    file: Option<File>,
    written: u64,
    warned: bool,
}

impl Tracer {
    /// The tracer the options ask for, if any.
    ///
    /// # Errors
    ///
    /// [`crate::units::ConfigError`] when the directory cannot be used.
    pub(crate) fn from_config(
        config: &crate::metrics::ObservabilityConfig,
    ) -> Result<Option<Tracer>, crate::units::ConfigError> {
        let Some(dir) = &config.trace_requests else {
            return Ok(None);
        };
        let tracer = Tracer::open(dir, config.trace_max_bytes)?;
        tracing::warn!(
            dir = %dir.display(),
            max_bytes = config.trace_max_bytes,
            "--trace-requests is on: Slack's answers, which hold audit data (emails, IP addresses), are written to disk; tokens are redacted. Turn it off once done debugging"
        );
        Ok(Some(tracer))
    }

    /// Opens (or creates) `dir` and appends to its current file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the directory when it cannot be created or written.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Tracer, ConfigError> {
        let bad = |e: std::io::Error| ConfigError::Invalid {
            flag: "trace-requests",
            message: format!("cannot use {}: {e}", dir.display()),
        };
        create_private_dir(dir).map_err(bad)?;
        let mut w = Writer {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(1),
            file: None,
            written: 0,
            warned: false,
        };
        w.open_current().map_err(bad)?;
        Ok(Tracer {
            inner: Arc::new(Mutex::new(w)),
        })
    }

    /// Records one exchange.
    pub fn record(
        &self,
        url: &url::Url,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) {
        let mut line = exchange_line(chrono::Utc::now(), url, status, headers, body);
        line.push('\n');
        // A blocking write under a std mutex is acceptable here: one short line per Slack
        // request (about one a second at most), and only while debugging.
        // A poisoned lock means a panic mid-write; the worst is a torn line, so carry on.
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = w.write(line.as_bytes()) {
            if !w.warned {
                tracing::warn!(dir = %w.dir.display(), error = %e, "cannot write the request trace; polling goes on without it");
                w.warned = true;
            }
        }
    }
}

/// The NDJSON line for one exchange, redacted.
fn exchange_line(
    time: chrono::DateTime<chrono::Utc>,
    url: &url::Url,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> String {
    let mut hs = Map::new();
    for (name, value) in headers {
        let v = if SECRET_HEADERS.contains(&name.as_str()) {
            REDACTED.to_string()
        } else {
            redact(&String::from_utf8_lossy(value.as_bytes()))
        };
        // Repeated headers are kept, joined as HTTP allows.
        match hs.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                hs.insert(name.as_str().to_string(), Value::String(v));
            }
        }
    }
    let text = redact(&String::from_utf8_lossy(body));
    // Slack's JSON is kept as JSON (readable with jq); an HTML error page stays a string.
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
    let line = Exchange {
        time: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        method: "GET",
        url: redact(url.as_str()),
        status,
        headers: hs,
        body,
    };
    // Serialising strings, numbers and Values to memory cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

/// One line of the trace; a struct rather than `json!` so the fields keep this order.
#[derive(serde::Serialize)]
struct Exchange {
    time: String,
    /// The client only ever sends GET (the Audit Logs API is read-only).
    method: &'static str,
    url: String,
    status: u16,
    headers: Map<String, Value>,
    body: Value,
}

/// Replaces the secret part of anything shaped like a Slack token, keeping its prefix so a
/// reader can still tell a user token from a bot token.
pub(crate) fn redact(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(prefix) = token_prefix(&bytes[i..]) {
            let start = i + prefix;
            let end = start
                + bytes[start..]
                    .iter()
                    .take_while(|b| is_token_byte(**b))
                    .count();
            if end > start {
                out.push_str(&text[copied..start]);
                out.push_str(REDACTED);
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// The length of a token prefix (`xoxp-`, `xapp-`, …) at the start of `s`, if any.
fn token_prefix(s: &[u8]) -> Option<usize> {
    match s {
        [b'x', b'o', b'x', k, b'-', ..] if b"abeposr".contains(k) => Some(5),
        [b'x', b'a', b'p', b'p', b'-', ..] => Some(5),
        _ => None,
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

impl Writer {
    fn path(&self, n: usize) -> PathBuf {
        match n {
            0 => self.dir.join(TRACE_FILE),
            n => self.dir.join(format!("{TRACE_FILE}.{n}")),
        }
    }

    fn open_current(&mut self) -> std::io::Result<()> {
        let file = open_private(&self.path(0))?;
        self.written = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        // A line is never split: one larger than the limit gets a file of its own.
        if self.written > 0 && self.written + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        if self.file.is_none() {
            self.open_current()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.write_all(line)?;
        self.written += line.len() as u64;
        Ok(())
    }

    /// `.3`→`.4`, …, current→`.1`; the old `.4` is overwritten, so at most five files exist.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        for n in (1..MAX_FILES).rev() {
            let from = self.path(n - 1);
            if from.exists() {
                std::fs::rename(&from, self.path(n))?;
            }
        }
        self.open_current()
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

fn open_private(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::parse_size;

    #[test]
    fn redacts_every_token_shape_keeping_the_prefix() {
        let s = "a xoxp-123-456-abc b xoxb-1-x c xapp-1-A-2 d xoxe.xoxp-1-zz e xoxq-not f";
        let r = redact(s);
        assert_eq!(r, "a xoxp-[REDACTED] b xoxb-[REDACTED] c xapp-[REDACTED] d xoxe.xoxp-[REDACTED] e xoxq-not f");
    }

    #[test]
    fn redaction_keeps_multibyte_text_intact() {
        assert_eq!(redact("é xoxs-abc é"), "é xoxs-[REDACTED] é");
        assert_eq!(redact("xoxp-"), "xoxp-");
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size("trace-max-bytes", "10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("trace-max-bytes", "4096").unwrap(), 4096);
        assert_eq!(parse_size("trace-max-bytes", "2 kb").unwrap(), 2000);
        let err = parse_size("trace-max-bytes", "lots")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--trace-max-bytes") && err.contains("\"lots\""),
            "{err}"
        );
        assert!(parse_size("trace-max-bytes", "0").is_err());
    }

    #[test]
    fn secret_headers_are_redacted_by_name() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        h.insert("x-note", "token xoxp-1-2".parse().unwrap());
        let url = url::Url::parse("http://127.0.0.1/audit/v1/logs?cursor=xoxb-9").unwrap();
        let line = exchange_line(chrono::Utc::now(), &url, 200, &h, b"{\"ok\":true}");
        assert!(
            !line.contains("abc") && !line.contains("xoxp-1") && !line.contains("xoxb-9"),
            "{line}"
        );
        assert!(line.starts_with(r#"{"time":"#), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["body"]["ok"], true);
        assert_eq!(v["headers"]["authorization"], REDACTED);
    }
}
