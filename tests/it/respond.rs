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

/// The admin token the enforcing tests give `run` (in a file) and require at the simulator.
const ADMIN_TOKEN: &str = "xoxp-admin-9876543210-ADMINSECRET-fedcba";

/// The simulator requiring [`TEST_TOKEN`] on the Audit Logs API and [`ADMIN_TOKEN`] on the Web
/// API, serving `entries`.
async fn sim_with_tokens(entries: Vec<Value>) -> slack_audit_source::simulate::SimHandle {
    let sim = slack_audit_source::simulate::start(
        "127.0.0.1:0".parse().unwrap(),
        slack_audit_source::simulate::SimOptions {
            token: Some(TEST_TOKEN.into()),
            admin_token: Some(ADMIN_TOKEN.into()),
            ..Default::default()
        },
        slack_audit_source::shutdown::Shutdown::never(),
    )
    .await
    .unwrap();
    sim.insert(entries);
    sim
}

/// `user` logs in with one session, which is then used from another network with another
/// client: `slack.detect.session_new_network_and_user_agent` asks to invalidate it.
fn stolen_session(user: &str, ts: i64, session: i64) -> Vec<Value> {
    let entry = |id: &str, at: i64, action: &str, ip: &str, ua: &str| {
        json!({"id": id, "date_create": at, "action": action,
               "actor": {"type": "user", "user": person(user)},
               "entity": {"type": "user", "user": person(user)},
               "context": {"location": {"type": "enterprise", "id": "E0123", "name": "Acme", "domain": "acme"},
                           "ua": ua, "ip_address": ip, "session_id": session}})
    };
    vec![
        entry(&format!("ss-a-{user}"), ts, "user_login", "192.0.2.10",
              "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/125.0.0.0 Safari/537.36"),
        entry(&format!("ss-b-{user}"), ts + 300, "user_channel_join", "198.51.100.20", "python-requests/2.31.0"),
    ]
}

/// The state dir, the admin token's file and the flags of an enforcing run.
struct Enforcing {
    dir: tempfile::TempDir,
    token_file: String,
}

impl Enforcing {
    fn new() -> Enforcing {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        std::fs::write(&path, ADMIN_TOKEN).unwrap();
        Enforcing {
            token_file: path.to_string_lossy().to_string(),
            dir,
        }
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn command(
        &self,
        sim: &slack_audit_source::simulate::SimHandle,
        mode: &str,
        extra: &[&str],
    ) -> std::process::Command {
        let mut args = vec![
            "--respond",
            mode,
            "--respond-token-file",
            &self.token_file,
            "--web-api-url",
        ];
        let url = sim.web_api_url();
        args.push(&url);
        args.extend_from_slice(extra);
        run_command(&sim.url(), &self.state(), &args)
    }
}

async fn output(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// A Web API call as `method user [session]`.
fn call_text(c: &slack_audit_source::simulate::WebApiCall) -> String {
    let mut s = format!(
        "{} {}",
        c.method,
        c.params.get("user_id").cloned().unwrap_or_default()
    );
    if let Some(session) = c.params.get("session_id") {
        s.push(' ');
        s.push_str(session);
    }
    s
}

/// The calls a response document plans.
fn planned_calls(r: &Value) -> Vec<String> {
    let user = r["user"]["target"]["id"].as_str().unwrap();
    match r["event"]["action"].as_str().unwrap() {
        "session_reset" => vec![format!("admin.users.session.reset {user}")],
        _ => r["slack"]["response"]["session_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "admin.users.session.invalidate {user} {}",
                    s.as_str().unwrap()
                )
            })
            .collect(),
    }
}

fn enforce_story() -> Vec<Value> {
    let mut entries = story(&["U0AAA"]);
    entries.extend(stolen_session("U0SSS", now() - 1800, 4242424242));
    entries
}

/// `plan` calls nothing even with the admin token at hand; `enforce` over the same history
/// calls exactly what the plan said, with the admin token, and delivers the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_calls_nothing_and_enforce_calls_exactly_what_the_plan_said() {
    let sim = sim_with_tokens(enforce_story()).await;
    let plan = Enforcing::new();
    let out = output(plan.command(&sim, "plan", &["--once"])).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan_docs = docs(&out.stdout);
    let planned = responses(&plan_docs);
    assert!(sim.web_api_calls().is_empty(), "plan calls nothing");
    let expected: Vec<String> = planned.iter().flat_map(|r| planned_calls(r)).collect();
    assert_eq!(
        expected,
        [
            "admin.users.session.reset U0AAA",
            "admin.users.session.invalidate U0SSS 4242424242"
        ],
        "{plan_docs:#?}"
    );

    let enforce = Enforcing::new();
    let out = output(enforce.command(&sim, "enforce", &["--once"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let calls = sim.web_api_calls();
    assert_eq!(calls.iter().map(call_text).collect::<Vec<_>>(), expected);
    assert!(calls
        .iter()
        .all(|c| c.authorization.as_deref() == Some(&format!("Bearer {ADMIN_TOKEN}")[..])));
    let enforced_docs = docs(&out.stdout);
    let enforced = responses(&enforced_docs);
    assert_eq!(enforced.len(), 2);
    for (e, p) in enforced.iter().zip(&planned) {
        assert_eq!(e["event"]["outcome"], "success");
        assert_eq!(e["slack"]["response"]["mode"], "enforce");
        assert_eq!(planned_calls(e), planned_calls(p));
        assert_eq!(
            e["slack"]["response"]["finding_id"],
            p["slack"]["response"]["finding_id"]
        );
    }
    // One warn line per enforced action, naming the user, never a token.
    assert_eq!(stderr.matches("response enforced").count(), 2, "{stderr}");
}

/// Slack refusing every call (missing_scope) fails the actions and nothing else: every audit
/// event is delivered, the run ends 0, and the documents carry Slack's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_error_leaves_delivery_running() {
    let mut entries = enforce_story();
    entries.extend(crate::support::entries("plain", 30, now() - 1500, 600));
    let sim = sim_with_tokens(entries.clone()).await;
    sim.always_web_api(Some(slack_audit_source::simulate::Reply::error(
        "missing_scope",
    )));
    let e = Enforcing::new();
    let out = output(e.command(&sim, "enforce", &["--once"])).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let delivered = docs(&out.stdout);
    for entry in &entries {
        let id = entry["id"].as_str().unwrap();
        assert!(
            delivered.iter().any(|d| d["event"]["id"] == id),
            "{id} not delivered"
        );
    }
    let r = responses(&delivered);
    assert_eq!(r.len(), 2);
    for d in r {
        assert_eq!(d["event"]["outcome"], "failure");
        assert_eq!(d["slack"]["response"]["error"], "missing_scope");
    }
    assert_eq!(
        sim.web_api_calls().len(),
        2,
        "each action tried once, not retried"
    );
}

/// SIGKILL right after a call reached Slack, again and again, then a last run: every action
/// is taken, and the only calls made twice are the call in flight, repeated first thing on
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_in_the_middle_of_enforcement_repeat_only_the_call_in_flight() {
    use rand::Rng;
    let users = ["U0K1", "U0K2", "U0K3", "U0K4"];
    let sim = sim_with_tokens(story(&users)).await;
    let e = Enforcing::new();
    let out_path = e.dir.path().join("out.ndjson");
    let append = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)
            .unwrap()
    };
    let mut kills = 0;
    let mut rng = rand::rng();
    let distinct_calls = |sim: &slack_audit_source::simulate::SimHandle| {
        let mut c: Vec<String> = sim.web_api_calls().iter().map(call_text).collect();
        c.sort();
        c.dedup();
        c.len()
    };
    // Until every action has reached Slack at least once (a run whose calls are all saved
    // would make none), and at most eight kills.
    while distinct_calls(&sim) < users.len() && kills < 8 {
        if kills == 1 {
            // This run's call is answered with a short 429: the client waits to call again,
            // and the kill lands while the call is in flight, certainly before its save.
            sim.script_web_api([slack_audit_source::simulate::Reply::rate_limited(5)]);
        }
        let before = sim.web_api_calls().len();
        let mut child = e
            .command(&sim, "enforce", &[])
            .stdout(append())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let called = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            sim.wait_web_api_calls(before + 1),
        )
        .await;
        // The moment after the call reached Slack, before or after its save, is the point.
        let delay = std::time::Duration::from_millis(rng.random_range(0..40));
        tokio::time::sleep(delay).await;
        tokio::task::spawn_blocking(move || {
            let _ = child.kill();
            let _ = child.wait();
        })
        .await
        .unwrap();
        kills += 1;
        called.expect("each run makes a call within a minute");
    }
    let out = output({
        let mut c = e.command(&sim, "enforce", &["--once"]);
        c.stdout(append());
        c
    })
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls: Vec<String> = sim.web_api_calls().iter().map(call_text).collect();
    let mut distinct = calls.clone();
    distinct.dedup();
    let expected: Vec<String> = users
        .iter()
        .map(|u| format!("admin.users.session.reset {u}"))
        .collect();
    assert_eq!(
        distinct, expected,
        "every action once, in order; a repeat only right after itself: {calls:?}"
    );
    assert!(
        calls.len() - expected.len() <= kills,
        "{calls:?} for {kills} kills"
    );
    let delivered = docs(&std::fs::read(&out_path).unwrap());
    for u in users {
        assert!(
            responses(&delivered)
                .iter()
                .any(|r| r["user"]["target"]["id"] == u && r["event"]["outcome"] == "success"),
            "no successful response for {u}"
        );
    }
}

/// Neither token shows in the documents, the logs (every level on), or the state dir; the
/// admin token goes only to the Web API and the audit token only to the Audit Logs API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_token_leaks_into_output_logs_or_state_nor_to_the_other_api() {
    let sim = sim_with_tokens(enforce_story()).await;
    sim.script_web_api([slack_audit_source::simulate::Reply::error(
        "cannot_reset_primary_owner",
    )]);
    let e = Enforcing::new();
    let mut cmd = e.command(&sim, "enforce", &["--once", "--log-format", "json"]);
    cmd.env("SLACK_AUDIT_LOG", "trace");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0));
    let mut seen = String::from_utf8_lossy(&out.stdout).to_string();
    seen.push_str(&String::from_utf8_lossy(&out.stderr));
    for f in std::fs::read_dir(e.state()).unwrap() {
        seen.push_str(&String::from_utf8_lossy(
            &std::fs::read(f.unwrap().path()).unwrap_or_default(),
        ));
    }
    assert!(seen.contains("slack.response"), "the run responded");
    for secret in [TEST_TOKEN, ADMIN_TOKEN, "ADMINSECRET", "SECRET-abcdef"] {
        assert!(!seen.contains(secret), "{secret} leaked");
    }
    assert!(sim
        .requests()
        .iter()
        .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {TEST_TOKEN}")[..])));
    assert!(!sim.web_api_calls().is_empty());
    assert!(sim
        .web_api_calls()
        .iter()
        .all(|c| c.authorization.as_deref() == Some(&format!("Bearer {ADMIN_TOKEN}")[..])));
}

/// The metrics say what the responses did, and that they are failing, after an in-process
/// `run --once --respond enforce` whose every call Slack refuses.
#[test]
fn the_metrics_count_responses_and_say_they_are_failing() {
    let recorder = slack_audit_source::metrics::recorder_builder().build_recorder();
    let handle = recorder.handle();
    let e = Enforcing::new();
    // A current-thread runtime keeps every task on this thread, where the local recorder is.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        slack_audit_source::metrics::describe();
        rt.block_on(async {
            let sim = sim_with_tokens(enforce_story()).await;
            sim.always_web_api(Some(slack_audit_source::simulate::Reply::error(
                "missing_scope",
            )));
            let web = sim.web_api_url();
            let config = crate::support::run_config(
                &sim.url(),
                &e.state(),
                &[
                    "--respond",
                    "enforce",
                    "--respond-token-file",
                    &e.token_file,
                    "--web-api-url",
                    &web,
                ],
            );
            let out = slack_audit_source::sink::stdout::SharedWriter::default();
            let overrides = slack_audit_source::Overrides::new().stdout(out);
            let run = slack_audit_source::run_with(config, overrides, std::future::pending());
            tokio::time::timeout(std::time::Duration::from_secs(60), run)
                .await
                .expect("run --once finishes")
                .expect("run succeeds");
        });
    });
    let text = handle.render();
    let counted = |action: &str| {
        text.lines().any(|l| {
            l.starts_with("slack_source_responses_total{")
                && l.contains(&format!("action=\"{action}\""))
                && l.contains("outcome=\"failure\"")
                && l.contains("mode=\"enforce\"")
                && l.ends_with(" 1")
        })
    };
    assert!(
        counted("session_reset") && counted("session_invalidate"),
        "{text}"
    );
    assert!(text.contains("slack_source_responses_failing 1"), "{text}");
    assert!(
        text.contains("# HELP slack_source_responses_total"),
        "{text}"
    );
}

/// Activity Slack's own allowlist trusts (read with `--slack-allowlist`) is never acted on:
/// the user who came back from a trusted network keeps their sessions; the other does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_on_slacks_allowlist_is_never_acted_on() {
    let mut entries = story(&["U0TRUSTED"]);
    // The same story for another user, back from a network nobody trusts.
    for mut e in story(&["U0OTHER"]) {
        if e["action"] == "user_login" {
            e["context"]["ip_address"] = json!("203.0.113.9");
        }
        entries.push(e);
    }
    let sim = sim_with_tokens(entries).await;
    sim.set_slack_allowlist(slack_audit_source::simulate::SimAllowlist {
        trusted_cidr: vec!["192.0.2.0/24".into()],
        trusted_asns: Vec::new(),
    });
    let e = Enforcing::new();
    let out = output(e.command(&sim, "enforce", &["--once", "--slack-allowlist"])).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sessions: Vec<String> = sim
        .web_api_calls()
        .iter()
        .filter(|c| c.method.starts_with("admin.users.session"))
        .map(call_text)
        .collect();
    assert_eq!(sessions, ["admin.users.session.reset U0OTHER"]);
    let delivered = docs(&out.stdout);
    let targets: Vec<&Value> = responses(&delivered)
        .iter()
        .map(|r| &r["user"]["target"]["id"])
        .collect();
    assert_eq!(targets, [&json!("U0OTHER")]);
}

/// A daemon whose enforced actions Slack refuses: `/readyz` says responses are failing, and
/// the audit events keep being delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_responses_are_failing_while_delivery_goes_on() {
    let mut entries = enforce_story();
    entries.extend(crate::support::entries("plain", 10, now() - 1500, 600));
    let sim = sim_with_tokens(entries.clone()).await;
    sim.always_web_api(Some(slack_audit_source::simulate::Reply::error(
        "not_allowed_token_type",
    )));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let e = Enforcing::new();
    let out_path = e.dir.path().join("out.ndjson");
    let mut child = e
        .command(&sim, "enforce", &["--metrics-listen", &listen])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    sim.wait_web_api_calls(2).await;
    // The daemon answers /readyz from its own process: ask until it has taken the failure in
    // (bounded), rather than sleeping a guessed time.
    let mut body = String::new();
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("http://{listen}/readyz")).await {
            let status = r.status().as_u16();
            body = r.text().await.unwrap_or_default();
            if status == 503 && body.contains("responses are failing") {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let delivered = docs(&std::fs::read(&out_path).unwrap());
    let _ = child.kill();
    let _ = child.wait();
    assert!(body.contains("not_allowed_token_type"), "{body}");
    for entry in &entries {
        let id = entry["id"].as_str().unwrap();
        assert!(
            delivered.iter().any(|d| d["event"]["id"] == id),
            "{id} not delivered"
        );
    }
}
