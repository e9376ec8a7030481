//! Integration tests: Slack's Web API admin methods, as the simulator serves them (over HTTP,
//! as a test that runs the binary sees them), and as `run` uses them.

use serde_json::{json, Value};
use slack_audit_source::shutdown::Shutdown;
use slack_audit_source::simulate::{start, Reply, SimAllowlist, SimHandle, SimOptions};

const AUDIT: &str = "xoxp-audit-it";
const ADMIN: &str = "xoxp-admin-it";

async fn sim(options: SimOptions) -> SimHandle {
    start("127.0.0.1:0".parse().unwrap(), options, Shutdown::never())
        .await
        .expect("the simulator starts")
}

fn tokens() -> SimOptions {
    SimOptions {
        token: Some(AUDIT.into()),
        admin_token: Some(ADMIN.into()),
        ..SimOptions::default()
    }
}

async fn post(sim: &SimHandle, method: &str, form: &[(&str, &str)], token: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}/{method}", sim.web_api_url()))
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
        )
        .send()
        .await
        .expect("the simulator answers");
    serde_json::from_slice(&r.bytes().await.unwrap()).expect("a JSON answer")
}

/// What `GET /_sim/web_api_calls` lists, one JSON object a call.
async fn calls_over_http(sim: &SimHandle) -> Vec<Value> {
    let body = reqwest::get(format!("{}/_sim/web_api_calls", sim.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_simulator_serves_the_admin_methods_with_their_own_token_and_lists_the_calls() {
    let s = sim(SimOptions {
        slack_allowlist: SimAllowlist {
            trusted_cidr: vec!["203.0.113.0/24".into()],
            trusted_asns: vec![64500],
        },
        ..tokens()
    })
    .await;
    let ok = post(
        &s,
        "admin.users.session.reset",
        &[("user_id", "U0A")],
        ADMIN,
    )
    .await;
    assert_eq!(ok, serde_json::json!({"ok": true}));
    let item = post(&s, "admin.audit.anomaly.allow.getItem", &[], ADMIN).await;
    assert_eq!(item["trusted_cidr"], serde_json::json!(["203.0.113.0/24"]));
    assert_eq!(item["trusted_asns"], serde_json::json!([64500]));
    // The audit token is refused here; a missing argument is refused as Slack does.
    let refused = post(
        &s,
        "admin.users.session.reset",
        &[("user_id", "U0A")],
        AUDIT,
    )
    .await;
    assert_eq!(refused["error"], "invalid_auth");
    let missing = post(
        &s,
        "admin.users.session.invalidate",
        &[("user_id", "U0A")],
        ADMIN,
    )
    .await;
    assert_eq!(missing["error"], "invalid_arguments");
    // Scripted errors come after the token check, one call each.
    s.script_web_api([Reply::error("cannot_reset_primary_owner")]);
    let scripted = post(
        &s,
        "admin.users.session.reset",
        &[("user_id", "U0OWNER")],
        ADMIN,
    )
    .await;
    assert_eq!(scripted["error"], "cannot_reset_primary_owner");
    // The admin token is refused by the Audit Logs API.
    let logs = reqwest::Client::new()
        .get(format!("{}/audit/v1/logs", s.url()))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let logs: Value = serde_json::from_slice(&logs).unwrap();
    assert_eq!(logs["error"], "invalid_authentication");
    let calls = calls_over_http(&s).await;
    let summary: Vec<(String, String, Value)> = calls
        .iter()
        .map(|c| {
            (
                c["method"].as_str().unwrap().to_string(),
                c["authorization"].as_str().unwrap().to_string(),
                c["error"].clone(),
            )
        })
        .collect();
    let admin = format!("Bearer {ADMIN}");
    let audit = format!("Bearer {AUDIT}");
    assert_eq!(
        summary,
        vec![
            (
                "admin.users.session.reset".into(),
                admin.clone(),
                Value::Null
            ),
            (
                "admin.audit.anomaly.allow.getItem".into(),
                admin.clone(),
                Value::Null
            ),
            (
                "admin.users.session.reset".into(),
                audit,
                "invalid_auth".into()
            ),
            (
                "admin.users.session.invalidate".into(),
                admin.clone(),
                "invalid_arguments".into()
            ),
            (
                "admin.users.session.reset".into(),
                admin,
                "cannot_reset_primary_owner".into()
            ),
        ]
    );
    assert_eq!(calls[0]["params"], serde_json::json!({"user_id": "U0A"}));
    assert_eq!(s.web_api_calls().len(), 5, "the same log in process");
    assert_eq!(
        s.requests()[0].authorization.as_deref(),
        Some(&*format!("Bearer {ADMIN}"))
    );
}

/// The departing salesperson's raw entries, from 203.0.113.50, minutes ago: alone they fire
/// the scraping finding.
fn scraping_entries() -> Vec<Value> {
    let t0 = crate::support::now() - 1800;
    let actor = json!({"type": "user", "user": {"id": "U0SHELLEY", "name": "Shelley Levene", "email": "shelley@example.com"}});
    let ctx = json!({"location": {"type": "enterprise", "id": "E0123", "name": "Acme", "domain": "acme"}, "ua": "Scrapers Inc", "ip_address": "203.0.113.50", "session_id": 1});
    vec![
        json!({"id": "r1", "date_create": t0 + 300, "action": "anomaly", "actor": actor, "entity": {"type": "user", "user": actor["user"]}, "context": ctx, "details": {"reason": ["unexpected_scraping", "user_agent"]}}),
        json!({"id": "r2", "date_create": t0 + 600, "action": "anomaly", "actor": actor, "entity": {"type": "user", "user": actor["user"]}, "context": ctx, "details": {"reason": ["excessive_downloads"]}}),
        json!({"id": "r3", "date_create": t0, "action": "file_downloaded", "actor": actor, "entity": {"type": "file", "file": {"id": "F0GLENGARRY", "name": "Glengarry-Leads.xlsx", "filetype": "xlsx"}}, "context": ctx}),
    ]
}

/// `run --once` against `sim` with `extra` flags; the documents delivered.
async fn run_once(sim: &SimHandle, extra: &[&str]) -> (Vec<Value>, String) {
    let state = tempfile::tempdir().unwrap();
    let mut flags = vec!["--initial-lookback", "1h"];
    flags.extend_from_slice(extra);
    crate::support::run_once_in_process(&sim.url(), state.path(), &flags).await
}

fn anomaly_findings(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| d["event"]["kind"] == "alert")
        .filter(|d| d["slack"]["audit"]["analysis"]["finding"]["type"] != "detection")
        .collect()
}

/// A finding that fires without Slack's allowlist does not with it: the CIDR the simulator
/// serves allowlists the anomalies, which say `slack_cidr`. The admin token went only to the
/// Web API (one getItem, nothing written), the audit token only to the Audit Logs API, and
/// neither shows in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_allowlist_silences_a_finding_and_says_where_the_entry_came_from() {
    use crate::support::TEST_TOKEN;
    let options = || SimOptions {
        token: Some(TEST_TOKEN.into()),
        admin_token: Some(ADMIN.into()),
        slack_allowlist: SimAllowlist {
            trusted_cidr: vec!["203.0.113.0/24".into()],
            trusted_asns: vec![64500],
        },
        ..SimOptions::default()
    };
    let plain = sim(options()).await;
    plain.insert(scraping_entries());
    let (docs, _) = run_once(&plain, &[]).await;
    assert_eq!(
        anomaly_findings(&docs).len(),
        1,
        "the control fires: {docs:#?}"
    );

    let s = sim(options()).await;
    s.insert(scraping_entries());
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, ADMIN).unwrap();
    let web_api_url = s.web_api_url();
    let (docs, text) = run_once(
        &s,
        &[
            "--respond-token-file",
            token_file.to_str().unwrap(),
            "--web-api-url",
            &web_api_url,
            "--slack-allowlist",
        ],
    )
    .await;
    assert!(anomaly_findings(&docs).is_empty(), "{docs:#?}");
    let anomalies: Vec<&Value> = docs
        .iter()
        .filter(|d| d["event"]["action"] == "anomaly")
        .collect();
    assert_eq!(anomalies.len(), 2);
    for a in anomalies {
        let an = &a["slack"]["audit"]["analysis"];
        assert_eq!(an["allowlisted"], true);
        assert_eq!(
            an["allowlist_match"],
            json!({"kind": "slack_cidr", "entry": "203.0.113.0/24"})
        );
    }
    let calls = s.web_api_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, "admin.audit.anomaly.allow.getItem");
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(&*format!("Bearer {ADMIN}"))
    );
    let audit = format!("Bearer {TEST_TOKEN}");
    assert!(!s.requests().is_empty());
    assert!(s
        .requests()
        .iter()
        .all(|r| r.authorization.as_deref() == Some(audit.as_str())));
    assert!(!text.contains(ADMIN) && !text.contains(TEST_TOKEN));
}

/// Slack failing to answer is logged and the reader goes on with the local allowlist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_allowlist_that_cannot_be_read_never_stops_the_reader() {
    use crate::support::TEST_TOKEN;
    let s = sim(SimOptions {
        token: Some(TEST_TOKEN.into()),
        admin_token: Some(ADMIN.into()),
        web_api_error: Some("missing_scope".into()),
        ..SimOptions::default()
    })
    .await;
    s.insert(scraping_entries());
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, ADMIN).unwrap();
    let web_api_url = s.web_api_url();
    let (docs, _) = run_once(
        &s,
        &[
            "--respond-token-file",
            token_file.to_str().unwrap(),
            "--web-api-url",
            &web_api_url,
            "--slack-allowlist",
        ],
    )
    .await;
    assert_eq!(
        anomaly_findings(&docs).len(),
        1,
        "delivered and analysed as without it"
    );
    assert_eq!(s.web_api_calls()[0].error.as_deref(), Some("missing_scope"));
}

/// `analyze` never calls Slack; given getItem's answer as a file, it says what `run
/// --slack-allowlist` says.
#[test]
fn analyze_takes_the_pasted_get_item_answer() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let answer = dir.path().join("slack-allowlist.json");
    std::fs::write(
        &answer,
        r#"{"ok":true,"trusted_cidr":["203.0.113.0/24"],"trusted_asns":[12345,12344]}"#,
    )
    .unwrap();
    let mut child = crate::support::bin()
        .args(["analyze", "--all", "--allowlist", answer.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = scraping_entries()
        .iter()
        .map(|e| format!("{e}\n"))
        .collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(anomaly_findings(&docs).is_empty(), "{docs:#?}");
    let matches: Vec<&Value> = docs
        .iter()
        .filter(|d| d["event"]["action"] == "anomaly")
        .map(|d| &d["slack"]["audit"]["analysis"]["allowlist_match"])
        .collect();
    assert_eq!(
        matches,
        vec![&json!({"kind": "slack_cidr", "entry": "203.0.113.0/24"}); 2]
    );
}
