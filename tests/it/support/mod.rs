//! Shared test support: the simulator as the one Slack stand-in ([`slack`],
//! [`simulator_with`]), stand-ins for the shippers' HTTP inputs and for Elasticsearch's `_bulk`
//! API, entry builders, and the one builder of a `run` command ([`run_command`]).

pub mod bulk;
pub mod receiver;

use serde_json::{json, Value};
use std::collections::HashMap;

/// A realistic audit entry at second `ts`.
pub fn entry(id: &str, ts: i64, action: &str) -> Value {
    json!({
        "id": id,
        "date_create": ts,
        "action": action,
        "actor": {"type": "user", "user": {"id": "U0123ABCD", "name": "Ada", "email": "ada@example.com", "team": "T0123"}},
        "entity": {"type": "user", "user": {"id": "U0123ABCD", "name": "Ada", "email": "ada@example.com", "team": "T0123"}},
        "context": {"location": {"type": "enterprise", "id": "E0123", "name": "Acme", "domain": "acme"}, "ua": "Mozilla/5.0", "ip_address": "192.0.2.1", "session_id": 1656410836837i64}
    })
}

/// `n` entries spread over `[from, from + span)`, ids `{prefix}-{i}`.
pub fn entries(prefix: &str, n: usize, from: i64, span: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            entry(
                &format!("{prefix}-{i}"),
                from + (i as i64 * span) / n.max(1) as i64,
                "user_login",
            )
        })
        .collect()
}

/// `event.id` of every NDJSON line in `out`, failing on a line that is not JSON.
pub fn delivered_ids(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"));
            v.pointer("/event/id")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no event.id in {l}"))
                .to_string()
        })
        .collect()
}

/// As [`delivered_ids`], but counting lines that are not JSON documents instead of failing:
/// a SIGKILL in the middle of a write may leave one torn line, which the architecture allows.
pub fn delivered_ids_lenient(out: &[u8]) -> (Vec<String>, usize) {
    let mut torn = 0;
    let mut ids = Vec::new();
    for l in String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        match serde_json::from_str::<Value>(l).ok().and_then(|v| {
            v.pointer("/event/id")
                .and_then(Value::as_str)
                .map(str::to_string)
        }) {
            Some(id) => ids.push(id),
            None => torn += 1,
        }
    }
    (ids, torn)
}

/// How often each id occurs.
pub fn counts(ids: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for id in ids {
        *m.entry(id.clone()).or_insert(0) += 1;
    }
    m
}

/// Unix seconds now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The flags every test run of `run` starts from: a short settle lag, a two-hour first
/// lookback, a fast request budget and small pages. Later flags override them.
pub const TEST_RUN_FLAGS: [&str; 8] = [
    "--settle-lag",
    "1s",
    "--initial-lookback",
    "2h",
    "--max-requests-per-minute",
    "1000",
    "--limit",
    "10",
];

/// The token every test run is given (the binary's and in-process ones); tests check that it never shows.
pub const TEST_TOKEN: &str = "xoxp-1234567890-SECRET-abcdef0123456789";

/// A `run --once` config, in process, against the API at `url` with its state in `state`:
/// [`TEST_RUN_FLAGS`], then `extra` (later flags override), and [`TEST_TOKEN`]. Where its
/// stdout goes is for the caller to say (`slack_audit_source::Overrides::stdout`).
pub fn run_config(
    url: &str,
    state: &std::path::Path,
    extra: &[&str],
) -> slack_audit_source::RunConfig {
    use slack_audit_source::config::{Cli, Command};
    let state = state.to_string_lossy().to_string();
    let mut argv = vec![
        "slack-audit-source",
        "run",
        "--api-url",
        url,
        "--state-dir",
        &state,
        "--once",
    ];
    argv.extend_from_slice(&TEST_RUN_FLAGS);
    argv.extend_from_slice(extra);
    let Command::Run(args) = <Cli as clap::Parser>::try_parse_from(argv)
        .expect("test args parse")
        .command
    else {
        unreachable!("asked for run")
    };
    slack_audit_source::RunConfig::from_args_with_token(
        *args,
        Some(secrecy::SecretString::from(TEST_TOKEN)),
    )
    .expect("valid test config")
}

/// `run --once`, in process, against the API at `url` with its state in `state` and `extra`
/// flags ([`run_config`]): the documents it delivered on stdout, and their text.
pub async fn run_once_in_process(
    url: &str,
    state: &std::path::Path,
    extra: &[&str],
) -> (Vec<Value>, String) {
    let out = slack_audit_source::sink::stdout::SharedWriter::default();
    let overrides = slack_audit_source::Overrides::new().stdout(out.clone());
    slack_audit_source::run_with(
        run_config(url, state, extra),
        overrides,
        std::future::pending(),
    )
    .await
    .expect("run --once ends well");
    let text = String::from_utf8(out.contents()).expect("documents are UTF-8");
    let docs = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one document per line"))
        .collect();
    (docs, text)
}

/// The one builder of a `slack-audit-source run` command: against `api_url` with `state`,
/// [`TEST_RUN_FLAGS`] then `extra` (later flags override earlier ones), [`TEST_TOKEN`] in
/// `SLACK_AUDIT_TOKEN`, no token file or config file inherited from the environment, and stdin
/// closed. Callers add what their test needs (`.env(...)`, `.stdout(...)`).
pub fn run_command(
    api_url: &str,
    state: &std::path::Path,
    extra: &[&str],
) -> std::process::Command {
    let mut cmd = bin();
    cmd.args(["run", "--api-url", api_url, "--state-dir"])
        .arg(state)
        .args(TEST_RUN_FLAGS)
        .args(extra)
        .env("SLACK_AUDIT_TOKEN", TEST_TOKEN)
        .env_remove("SLACK_AUDIT_TOKEN_FILE")
        .env_remove("SLACK_AUDIT_CONFIG")
        .stdin(std::process::Stdio::null());
    cmd
}

/// The simulator on 127.0.0.1:0 serving exactly `entries` (no backfill, no live traffic, no
/// faults) until the test's runtime ends: the Slack stand-in of every test.
pub async fn simulator_with(entries: Vec<Value>) -> slack_audit_source::simulate::SimHandle {
    let sim = slack_audit_source::simulate::start(
        "127.0.0.1:0".parse().expect("an address"),
        slack_audit_source::simulate::SimOptions::default(),
        slack_audit_source::shutdown::Shutdown::never(),
    )
    .await
    .expect("the simulator starts on 127.0.0.1:0");
    sim.insert(entries);
    sim
}

/// The simulator on 127.0.0.1:0 with no entries yet: add them with `insert`, script replies
/// with `script`, `script_at` and `always`.
pub async fn slack() -> slack_audit_source::simulate::SimHandle {
    simulator_with(Vec::new()).await
}

/// The built binary.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_slack-audit-source"))
}

/// A request's whole body, for the test receivers; empty when the client hung up mid-body.
pub async fn body_bytes(body: hyper::body::Incoming) -> bytes::Bytes {
    use http_body_util::BodyExt;
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}
