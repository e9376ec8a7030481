//! Integration tests: Slack's Web API admin methods, as the simulator serves them (over HTTP,
//! as a test that runs the binary sees them), and as `run` uses them.

use serde_json::Value;
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
