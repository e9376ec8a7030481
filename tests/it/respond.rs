//! Integration tests: the response stage (`--respond`) through the built binary, against the
//! simulator as the one Slack stand-in. Findings come from real detections over real entries:
//! a deactivated user who is active again (`slack.detect.activity_after_deactivation`, which
//! asks to reset the user's sessions).

use crate::support::{now, run_command, simulator_with, TEST_TOKEN};
use serde_json::{json, Value};
use std::io::Write;
use std::process::Stdio;

fn person(id: &str) -> Value {
    json!({"id": id, "name": format!("Name {id}"), "email": format!("{}@example.com", id.to_ascii_lowercase()), "team": "T0123"})
}

fn context(ip: &str) -> Value {
    json!({"location": {"type": "enterprise", "id": "E0123", "name": "Acme", "domain": "acme"},
           "ua": "Mozilla/5.0", "ip_address": ip, "session_id": 1656410836837i64})
}

/// `user` deactivated by an admin at `ts`, then logging in at `ts + 60`.
fn deactivated_then_active(user: &str, ts: i64) -> Vec<Value> {
    vec![
        json!({"id": format!("deact-{user}"), "date_create": ts, "action": "user_deactivated",
               "actor": {"type": "user", "user": person("U0ADMIN")},
               "entity": {"type": "user", "user": person(user)}, "context": context("192.0.2.1")}),
        json!({"id": format!("login-{user}"), "date_create": ts + 60, "action": "user_login",
               "actor": {"type": "user", "user": person(user)},
               "entity": {"type": "user", "user": person(user)}, "context": context("192.0.2.7")}),
    ]
}

/// `n` users, each deactivated then active, a minute apart, within the last hour.
pub(crate) fn story(users: &[&str]) -> Vec<Value> {
    let t = now() - 3000;
    users
        .iter()
        .enumerate()
        .flat_map(|(i, u)| deactivated_then_active(u, t + i as i64 * 120))
        .collect()
}

fn docs(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub(crate) fn responses(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| d["event"]["dataset"] == "slack.response")
        .collect()
}

/// `run --respond plan --once`, its documents and stderr.
async fn run_plan(entries: Vec<Value>, extra: &[&str]) -> (Vec<Value>, String) {
    let sim = simulator_with(entries).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--once", "--respond", "plan"];
    args.extend_from_slice(extra);
    let out = tokio::task::spawn_blocking({
        let mut cmd = run_command(&sim.url(), &dir.path().join("state"), &args);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    (docs(&out.stdout), stderr)
}

/// `analyze` over raw entries with `args`.
fn analyze(entries: &[Value], args: &[&str]) -> (i32, Vec<Value>, String) {
    let mut child = crate::support::bin()
        .arg("analyze")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for e in entries {
        writeln!(stdin, "{e}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        docs(&out.stdout),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Plan delivers one response document per acting finding, after it, saying what it would
/// do and calling nothing; `analyze --respond plan` over the same entries prints the same
/// response documents, byte for byte.
#[tokio::test]
async fn plan_delivers_what_it_would_do_after_the_finding_and_analyze_agrees() {
    let entries = story(&["U0AAA", "U0BBB"]);
    let (docs, _) = run_plan(entries.clone(), &[]).await;
    let planned = responses(&docs);
    assert_eq!(planned.len(), 2, "{docs:#?}");
    for r in &planned {
        assert_eq!(r["event"]["kind"], "event");
        assert_eq!(r["event"]["category"], json!(["iam"]));
        assert_eq!(r["event"]["type"], json!(["change"]));
        assert_eq!(r["event"]["action"], "session_reset");
        assert_eq!(r["event"]["outcome"], "unknown");
        assert_eq!(r["slack"]["response"]["mode"], "plan");
        assert_eq!(r["ecs"]["version"], "8.11.0");
        assert!(r["@timestamp"].is_string() && r["event"]["id"].is_string());
        // After the finding that caused it.
        let finding_id = r["slack"]["response"]["finding_id"].as_str().unwrap();
        let at = |id: &str| docs.iter().position(|d| d["event"]["id"] == id).unwrap();
        assert!(at(finding_id) < at(r["event"]["id"].as_str().unwrap()));
    }
    let targets: Vec<&str> = planned
        .iter()
        .map(|r| r["user"]["target"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["U0AAA", "U0BBB"]);
    let (code, analyzed, stderr) = analyze(&entries, &["--respond", "plan"]);
    assert_eq!(code, 0, "{stderr}");
    let from_analyze: Vec<&Value> = responses(&analyzed);
    assert_eq!(
        from_analyze, planned,
        "analyze --respond plan prints what run --respond plan delivers"
    );
    // Without --respond, neither prints any.
    let (_, plain, _) = analyze(&entries, &[]);
    assert!(responses(&plain).is_empty());
}

/// Exempt users (by id or email) and the allowlist's excluded users are never acted on.
#[tokio::test]
async fn exempt_and_allowlisted_users_are_never_touched() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.toml");
    std::fs::write(&allow, "excluded_users = [\"U0CCC\"]\n").unwrap();
    let allow = allow.to_string_lossy().to_string();
    let (docs, _) = run_plan(
        story(&["U0AAA", "U0BBB", "U0CCC", "U0DDD"]),
        &[
            "--respond-exempt-users",
            "U0AAA,u0bbb@example.com",
            "--allowlist",
            &allow,
        ],
    )
    .await;
    let targets: Vec<&str> = responses(&docs)
        .iter()
        .map(|r| r["user"]["target"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["U0DDD"], "{docs:#?}");
}

/// The breaker: past --respond-max-per-hour within an hour of event time, actions are held
/// (only planned) and one critical finding says the breaker is open.
#[tokio::test]
async fn the_circuit_breaker_opens_and_one_critical_finding_says_so() {
    let users = ["U0A1", "U0A2", "U0A3", "U0A4", "U0A5"];
    let (docs, _) = run_plan(story(&users), &["--respond-max-per-hour", "2"]).await;
    let r = responses(&docs);
    let held: Vec<bool> = r
        .iter()
        .map(|d| d["slack"]["response"]["held"] == "circuit_breaker_open")
        .collect();
    assert_eq!(held, [false, false, true, true, true], "{docs:#?}");
    let open: Vec<&Value> = docs
        .iter()
        .filter(|d| d["rule"]["id"] == "slack.response.circuit_breaker_open")
        .collect();
    assert_eq!(open.len(), 1, "one finding says the breaker opened");
    assert_eq!(open[0]["event"]["kind"], "alert");
    assert_eq!(
        open[0]["slack"]["audit"]["analysis"]["severity"],
        "critical"
    );
}

/// `enforce` without an admin token, and `analyze --respond enforce`, are refused with exit 2
/// saying what to fix.
#[tokio::test]
async fn enforce_without_an_admin_token_and_analyze_enforce_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_command(
        "http://127.0.0.1:9",
        &dir.path().join("state"),
        &["--once", "--respond", "enforce"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--respond-token-file"), "{stderr}");
    assert!(!stderr.contains(TEST_TOKEN));
    let (code, _, stderr) = analyze(&[], &["--respond", "enforce"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("analyze never acts"), "{stderr}");
}
