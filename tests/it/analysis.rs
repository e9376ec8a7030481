//! Integration tests: anomaly analysis through the library's public interface (pages, state
//! round trips as the poller does them) and through the built binary's `analyze` command.

// The mapping tests load the same writer; a module of their own keeps both files independent.
#[allow(clippy::duplicate_mod)]
#[path = "../../src/mapping/testdb.rs"]
mod testdb;

use serde_json::{json, Value};
use slack_audit_source::analysis::{AnalysisArgs, AnalysisConfig, Analyzer};
use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_slack-audit-source");
/// 2024-06-03T09:00:00Z.
const T0: i64 = 1_717_405_200;
const DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.41.105 Chrome/130.0.6723.137 Electron/33.2.0 Safari/537.36 Sonic Slack_SSB/4.41.105";

fn ts(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An ECS document as the mapping writes it (docs/mapping.md).
fn doc(id: &str, action: &str, user: &str, at: i64, ua: &str) -> Value {
    json!({
        "@timestamp": ts(at),
        "ecs": {"version": "8.11.0"},
        "event": {"id": id, "action": action, "kind": "event", "module": "slack", "dataset": "slack.audit", "type": ["info"]},
        "user": {"id": user, "email": "shelley@example.com", "full_name": "Shelley Levene"},
        "related": {"user": [user, "shelley@example.com"], "ip": ["203.0.113.50"]},
        "source": {"ip": "203.0.113.50", "address": "203.0.113.50"},
        "user_agent": {"original": ua},
        "slack": {"audit": {"context": {"type": "enterprise", "id": "E0123"}}},
        "tags": ["forwarded", "slack-audit"],
    })
}

fn anomaly(id: &str, at: i64, ua: &str, reasons: &[&str]) -> Value {
    let mut d = doc(id, "anomaly", "U0SHELLEY", at, ua);
    d["slack"]["audit"]["details"] = json!({"reason": reasons, "location": "Chicago, Illinois"});
    d
}

fn download(id: &str, at: i64, ua: &str, file_id: &str, name: &str) -> Value {
    let mut d = doc(id, "file_downloaded", "U0SHELLEY", at, ua);
    d["slack"]["audit"]["entity"] =
        json!({"entity_type": "file", "id": file_id, "name": name, "filetype": "xlsx"});
    d["event"]["category"] = json!(["file"]);
    d
}

/// The departing salesperson: a scraping client, Slack's anomalies about it, and the file.
fn story() -> Vec<Value> {
    vec![
        anomaly(
            "ev-anom-1",
            T0 + 1500,
            "Scrapers Inc",
            &["unexpected_scraping", "user_agent"],
        ),
        anomaly(
            "ev-anom-2",
            T0 + 1800,
            "Scrapers Inc",
            &["excessive_downloads"],
        ),
        download(
            "ev-dl-1",
            T0 + 1200,
            "Scrapers Inc",
            "F0GLENGARRY",
            "Glengarry-Leads.xlsx",
        ),
        download(
            "ev-dl-2",
            T0 + 1210,
            "Scrapers Inc",
            "F0PREMIER",
            "Premier-Properties.xlsx",
        ),
        doc("ev-login-1", "user_login", "U0SHELLEY", T0 + 1100, DESKTOP),
    ]
}

fn findings(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| d["event"]["kind"] == "alert")
        .collect()
}

fn analyze(args: &[&str], stdin: &str) -> (i32, Vec<Value>, String) {
    let mut child = Command::new(BIN)
        .arg("analyze")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(stdin.as_bytes())
        .expect("stdin");
    let out = child.wait_with_output().expect("exits");
    let docs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout is NDJSON"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        docs,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ndjson(docs: &[Value]) -> String {
    docs.iter().map(|d| format!("{d}\n")).collect()
}

#[test]
fn departing_salesperson_gives_one_high_finding_with_the_file_in_context() {
    let mut a = Analyzer::new(&AnalysisConfig::default(), None).unwrap();
    let mut docs = story();
    a.process(&mut docs);
    let f = findings(&docs);
    assert_eq!(f.len(), 1, "{f:#?}");
    let f = f[0];
    assert_eq!(f["rule"]["id"], "slack.anomaly.unexpected_scraping");
    assert_eq!(f["event"]["severity"], 3);
    assert_eq!(f["user"]["email"], "shelley@example.com");
    let an = &f["slack"]["audit"]["analysis"];
    assert_eq!(
        an["context"]["downloads"]["file_names"],
        json!(["Premier-Properties.xlsx", "Glengarry-Leads.xlsx"])
    );
    assert_eq!(
        an["context"]["downloads"]["file_ids"],
        json!(["F0PREMIER", "F0GLENGARRY"])
    );
    assert_eq!(
        an["contributing_event_ids"],
        json!(["ev-anom-1", "ev-anom-2", "ev-dl-1", "ev-dl-2"]),
        "what the outranked scraping_client rule saw is evidence too"
    );
    assert_eq!(
        an["suppressed_rules"],
        json!(["slack.anomaly.scraping_client"])
    );
    // Every story event from the scraper is flagged; the desktop login is not.
    for d in &docs[..4] {
        assert_eq!(
            d["slack"]["audit"]["analysis"]["finding_ids"],
            json!([f["event"]["id"]])
        );
        assert_eq!(
            d["slack"]["audit"]["analysis"]["unexpected_user_agent"], true,
            "{}",
            d["event"]["id"]
        );
    }
    assert!(docs[4]["slack"]["audit"].get("analysis").is_none());
    assert_eq!(
        docs[0]["slack"]["audit"]["analysis"]["finding_ids"],
        json!([f["event"]["id"]])
    );
}

/// The poller's pattern, live: windows go forward in time, pages within a window newest
/// first; after each page `state()` goes into the checkpoint and a restart builds the analyzer
/// from it. Each finding comes once, even when every page is delivered again.
#[test]
fn a_story_spread_over_pages_and_restarts_gives_each_finding_once() {
    let config = AnalysisConfig::default();
    let s = story();
    // Poll 1 saw the login and the downloads; poll 2 the anomalies, one per page.
    let pages: Vec<Vec<Value>> = vec![
        vec![s[3].clone(), s[2].clone(), s[4].clone()],
        vec![s[1].clone()],
        vec![s[0].clone()],
    ];
    let mut emitted = Vec::new();
    let mut checkpoint: Option<Value> = None;
    for page in pages.iter().chain(pages.iter()) {
        let saved: Option<Value> = checkpoint
            .as_ref()
            .map(|v| serde_json::from_str(&v.to_string()).unwrap());
        let mut a = Analyzer::new(&config, saved.as_ref()).unwrap();
        let mut docs = page.clone();
        a.process(&mut docs);
        emitted.extend(findings(&docs).into_iter().cloned());
        checkpoint = a.state();
    }
    let rules: Vec<&str> = emitted
        .iter()
        .map(|f| f["rule"]["id"].as_str().unwrap())
        .collect();
    // The scraper's own downloads (flagged UA) plus excessive_downloads make the medium
    // finding first; unexpected_scraping, a page later, outranks it but cannot retract it.
    assert_eq!(
        rules,
        vec![
            "slack.anomaly.scraping_client",
            "slack.anomaly.unexpected_scraping"
        ]
    );
    assert_eq!(
        emitted[0]["slack"]["audit"]["analysis"]["context"]["downloads"]["count"],
        2
    );
    assert_eq!(
        emitted[1]["slack"]["audit"]["analysis"]["supersedes"],
        json!([emitted[0]["event"]["id"]])
    );
    assert!(
        emitted[1]["slack"]["audit"]["analysis"]["context"]["downloads"]["file_names"]
            .to_string()
            .contains("Glengarry-Leads.xlsx")
    );
}

#[test]
fn baselines_learn_across_days_and_restarts() {
    let config = AnalysisConfig::from_args(&AnalysisArgs::default()).unwrap();
    let mut state: Option<Value> = None;
    let mut fired = Vec::new();
    // Day 1: 4 (fires: nothing earlier). Day 2: 4 (not above 4). Day 3: 5 (fires).
    for (day, n) in [(0, 4), (1, 4), (2, 5)] {
        for i in 0..n {
            let mut a = Analyzer::new(&config, state.as_ref()).unwrap();
            let mut docs = vec![anomaly(
                &format!("d{day}-{i}"),
                T0 + day * 86_400 + i * 600,
                DESKTOP,
                &["excessive_downloads"],
            )];
            a.process(&mut docs);
            fired.extend(findings(&docs).iter().map(|f| {
                (
                    day,
                    i,
                    f["slack"]["audit"]["analysis"]["baseline"]["user_max"].clone(),
                )
            }));
            state = a.state();
        }
    }
    assert_eq!(fired, vec![(0, 3, json!(0)), (2, 4, json!(4))]);
}

#[test]
fn analyze_prints_findings_for_ecs_documents() {
    let (code, out, err) = analyze(&[], &ndjson(&story()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.len(), 1, "findings only by default: {out:#?}");
    assert_eq!(out[0]["rule"]["id"], "slack.anomaly.unexpected_scraping");
    assert!(out[0]["event"]["reason"]
        .as_str()
        .unwrap()
        .contains("Glengarry-Leads.xlsx"));
}

#[test]
fn analyze_all_prints_annotated_documents_then_findings() {
    let (code, out, err) = analyze(&["--all"], &ndjson(&story()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.len(), 6);
    assert_eq!(
        out[0]["slack"]["audit"]["analysis"]["reasons"],
        json!(["unexpected_scraping", "user_agent"])
    );
    assert_eq!(out[5]["event"]["kind"], "alert");
}

#[test]
fn analyze_with_a_state_file_does_not_repeat_findings() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("analysis.json");
    let state = state.to_str().unwrap();
    let (_, first, _) = analyze(&["--state", state], &ndjson(&story()));
    assert_eq!(first.len(), 1);
    let (code, second, err) = analyze(&["--state", state], &ndjson(&story()));
    assert_eq!((code, second.len()), (0, 0), "{err}");
}

#[test]
fn analyze_reads_its_own_output_without_new_findings() {
    let (_, out, _) = analyze(&["--all"], &ndjson(&story()));
    let (code, again, err) = analyze(&[], &ndjson(&out));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        again.len(),
        1,
        "alerts in the input are skipped, the story fires again: {again:#?}"
    );
    assert_eq!(
        again[0]["event"]["id"], out[5]["event"]["id"],
        "deterministic id"
    );
}

#[test]
fn analyze_accepts_api_responses_and_garbage() {
    let response = json!({"ok": true, "entries": [{"id": "raw-1", "date_create": T0, "action": "user_login"}], "response_metadata": {"next_cursor": ""}});
    let input = format!(
        "{}\nthis is not json\n",
        serde_json::to_string_pretty(&response).unwrap()
    );
    let (code, out, err) = analyze(&["--all"], &input);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["event"]["id"], "raw-1");
    assert_eq!(out[1]["event"]["kind"], "pipeline_error");
}

#[test]
fn the_printed_default_rules_load_with_rules() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["analyze", "--print-default-rules"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    let (code, found, err) = analyze(&["--rules", path.to_str().unwrap()], &ndjson(&story()));
    assert_eq!((code, found.len()), (0, 1), "{err}");
}

#[test]
fn a_bad_allowlist_exits_2_naming_the_file_and_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("allow.toml");
    std::fs::write(&path, "trusted_asns = [\"Amazon\"]\n").unwrap();
    let (code, _, err) = analyze(&["--allowlist", path.to_str().unwrap()], "");
    assert_eq!(code, 2);
    assert!(
        err.contains("--allowlist") && err.contains("allow.toml") && err.contains("Amazon"),
        "{err}"
    );
}

#[test]
fn the_example_files_load() {
    let root = env!("CARGO_MANIFEST_DIR");
    let args = AnalysisArgs {
        allowlist: Some(format!("{root}/examples/analysis/allowlist.toml").into()),
        rules: Some(format!("{root}/examples/analysis/rules.toml").into()),
        ..AnalysisArgs::default()
    };
    AnalysisConfig::from_args(&args).unwrap();
    let copy = std::fs::read_to_string(format!("{root}/examples/analysis/rules.toml")).unwrap();
    assert_eq!(
        copy,
        slack_audit_source::analysis::rules::DEFAULT_RULES,
        "examples/analysis/rules.toml is a copy of the embedded default"
    );
}

/// Raw entries given to `analyze` are mapped first (user.*, user_agent.*,
/// slack.audit.entity.*, as docs/mapping.md says), then analysed like `run`'s documents.
#[test]
fn analyze_maps_raw_entries_then_finds_the_story() {
    let actor = json!({"type": "user", "user": {"id": "U0SHELLEY", "name": "Shelley Levene", "email": "shelley@example.com"}});
    let ctx = |ua: &str| json!({"location": {"type": "enterprise", "id": "E0123", "name": "Acme", "domain": "acme"}, "ua": ua, "ip_address": "203.0.113.50", "session_id": 1});
    let entries = vec![
        json!({"id": "r1", "date_create": T0 + 1500, "action": "anomaly", "actor": actor, "entity": {"type": "user", "user": actor["user"]}, "context": ctx("Scrapers Inc"), "details": {"reason": ["unexpected_scraping", "user_agent"]}}),
        json!({"id": "r2", "date_create": T0 + 1800, "action": "anomaly", "actor": actor, "entity": {"type": "user", "user": actor["user"]}, "context": ctx("Scrapers Inc"), "details": {"reason": ["excessive_downloads"]}}),
        json!({"id": "r3", "date_create": T0 + 1200, "action": "file_downloaded", "actor": actor, "entity": {"type": "file", "file": {"id": "F0GLENGARRY", "name": "Glengarry-Leads.xlsx", "filetype": "xlsx", "title": "Glengarry Leads"}}, "context": ctx("Scrapers Inc")}),
    ];
    let (code, out, err) = analyze(&[], &ndjson(&entries));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(
        out[0]["slack"]["audit"]["analysis"]["context"]["downloads"]["file_names"],
        json!(["Glengarry-Leads.xlsx"])
    );
}

/// The simulator's ordinary background traffic (logins, downloads, shares, admin changes,
/// routine anomalies) run through the whole pipeline gives no anomaly finding. (The story's
/// findings are tested on its own events above and in `simulate`.) The background draws
/// admin actions at random (role changes, app installs, deactivations), which the detection
/// rules rightly report; those are left out here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_background_traffic_gives_no_finding() {
    use slack_audit_source::shutdown::Shutdown;
    use slack_audit_source::simulate::{start, SimOptions};
    {
        let story = false;
        let options = SimOptions {
            seed: 11,
            rate_per_sec: 0.0,
            backfill_events: 3000,
            backfill_secs: 6 * 3600,
            story,
            ..SimOptions::default()
        };
        let sim = start("127.0.0.1:0".parse().unwrap(), options, Shutdown::never())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://{}", sim.addr);
        let extra = [
            "--initial-lookback",
            "7h",
            "--max-requests-per-minute",
            "6000",
            "--limit",
            "500",
        ];
        let (docs, _) = crate::support::run_once_in_process(&url, dir.path(), &extra).await;
        let anomalies = docs
            .iter()
            .filter(|d| d.pointer("/event/action").and_then(Value::as_str) == Some("anomaly"))
            .count();
        // No finding of any kind: neither the anomaly rules nor the detections.
        let alerts: Vec<&Value> = docs
            .iter()
            .filter(|d| d.pointer("/event/kind").and_then(Value::as_str) == Some("alert"))
            .collect();
        assert!(
            anomalies > 20,
            "the background has routine anomalies ({anomalies})"
        );
        assert!(
            alerts.is_empty(),
            "background findings: {:?}",
            alerts
                .iter()
                .map(|a| a.pointer("/rule/id"))
                .collect::<Vec<_>>()
        );
    }
}

/// The detection rules ride in the printed default, and a typo in one of them stops `analyze`
/// with exit 2, naming the file, the rule and the field.
#[test]
fn a_bad_detection_rule_exits_2_naming_the_rule_and_the_field() {
    let out = Command::new(BIN)
        .args(["analyze", "--print-default-rules"])
        .output()
        .unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.matches("[[detection]]").count() >= 30, "{printed}");
    // The printed pack loads as it is.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, &printed).unwrap();
    let (code, _, err) = analyze(&["--rules", path.to_str().unwrap()], "");
    assert_eq!(code, 0, "{err}");
    let bad = printed.replacen(
        "field = \"details.new_scopes\", adds_to",
        "field = \"details.new_scope\", adds_to",
        1,
    );
    assert_ne!(bad, printed);
    std::fs::write(&path, bad).unwrap();
    let (code, _, err) = analyze(&["--rules", path.to_str().unwrap()], "");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("rules.toml")
            && err.contains("slack.detect.app_scopes_expanded")
            && err.contains("details.new_scope\""),
        "{err}"
    );
}

/// Fixture entries (a brute force, an admin grant, a session moving networks, ordinary
/// traffic) moved to the last hours: what `run` delivers live, in Slack's newest-first pages
/// of 10, and what `analyze` prints over the same entries oldest first and newest first, are
/// the same detection findings, and they include the attacks' rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detections_come_out_of_run_and_analyze_alike_in_both_orders() {
    use std::collections::BTreeSet;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/detections");
    let mut all: Vec<Value> = Vec::new();
    for (name, part) in [
        ("brute_force", "positive"),
        ("role_change_to_admin", "positive"),
        ("session_new_network", "positive"),
        ("ordinary_traffic", "negative"),
    ] {
        let text = std::fs::read_to_string(format!("{dir}/{name}.json")).unwrap();
        let fx: Value = serde_json::from_str(&text).unwrap();
        all.extend(fx[part].as_array().unwrap().iter().cloned());
    }
    let mut seen = BTreeSet::new();
    all.retain(|e| seen.insert(e["id"].as_str().unwrap().to_string()));
    let newest = all
        .iter()
        .filter_map(|e| e["date_create"].as_i64())
        .max()
        .unwrap();
    let shift = crate::support::now() - 600 - newest;
    for e in &mut all {
        let t = e["date_create"].as_i64().unwrap();
        e["date_create"] = json!(t + shift);
    }
    all.sort_by_key(|e| e["date_create"].as_i64());
    let key = |d: &Value| {
        (
            d["rule"]["id"].as_str().unwrap_or_default().to_string(),
            d["slack"]["audit"]["analysis"]["finding"]["dedupe_key"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    let detections = |docs: &[Value]| -> BTreeSet<(String, String)> {
        docs.iter()
            .filter(|d| d["slack"]["audit"]["analysis"]["finding"]["type"] == "detection")
            .map(key)
            .collect()
    };
    let (code, oldest_first, err) = analyze(&[], &ndjson(&all));
    assert_eq!(code, 0, "{err}");
    let expected = detections(&oldest_first);
    let rules: BTreeSet<&str> = expected.iter().map(|(r, _)| r.as_str()).collect();
    for rule in [
        "slack.detect.brute_force",
        "slack.detect.role_change_to_admin",
        "slack.detect.session_new_network",
    ] {
        assert!(rules.contains(rule), "{rule} missing from {rules:?}");
    }

    let sim = crate::support::simulator_with(all.clone()).await;
    let state = tempfile::tempdir().unwrap();
    let url = format!("http://{}", sim.addr);
    let (live, _) =
        crate::support::run_once_in_process(&url, state.path(), &["--initial-lookback", "3h"])
            .await;
    assert_eq!(detections(&live), expected, "run");

    all.reverse();
    let (code, newest_first, err) = analyze(&[], &ndjson(&all));
    assert_eq!(code, 0, "{err}");
    assert_eq!(detections(&newest_first), expected, "analyze, newest first");
    assert!(
        err.contains("slack.detect.login_new_country") && err.contains("off"),
        "analyze says the country rule is off: {err}"
    );
}

/// Raw entries for the GeoIP test, dated in the last hours: session 1 moves within one ASN
/// (AS1221, 1.128.0.0/11) across two /16s; session 2 moves from AS1221 to AS20712; user U7
/// logs in from London (GB), then from Gibraltar (GI).
fn geoip_entries() -> Vec<Value> {
    let base = crate::support::now() - 3600;
    let entry = |id: &str, at: i64, action: &str, user: &str, ip: &str, session: Option<i64>| {
        let mut context = json!({"ip_address": ip, "ua": DESKTOP});
        if let Some(s) = session {
            context["session_id"] = json!(s);
        }
        json!({"id": id, "date_create": at, "action": action,
               "actor": {"type": "user", "user": {"id": user, "name": user}},
               "entity": {"type": "user", "user": {"id": user, "name": user}},
               "context": context})
    };
    vec![
        entry("g1", base, "user_login", "U5", "1.128.0.1", Some(501)),
        entry(
            "g2",
            base + 60,
            "file_downloaded",
            "U5",
            "1.150.0.1",
            Some(501),
        ),
        entry("g3", base + 120, "user_login", "U6", "1.128.0.2", Some(601)),
        entry(
            "g4",
            base + 180,
            "file_downloaded",
            "U6",
            "81.2.69.143",
            Some(601),
        ),
        entry("g5", base + 240, "user_login", "U7", "81.2.69.144", None),
        entry("g6", base + 1800, "user_login", "U7", "2a02:ffc0::1", None),
    ]
}

/// (rule id, what the finding is about) of the GeoIP test's detection findings.
fn geo_findings(docs: &[Value]) -> std::collections::BTreeSet<(String, String)> {
    docs.iter()
        .filter(|d| d["slack"]["audit"]["analysis"]["finding"]["type"] == "detection")
        .map(|d| {
            let det = &d["slack"]["audit"]["analysis"]["detection"];
            let about = match d["rule"]["id"].as_str() {
                Some("slack.detect.login_new_country") => det["country"].to_string(),
                _ => det["session"]["networks"].to_string(),
            };
            (
                d["rule"]["id"].as_str().unwrap_or_default().to_string(),
                about,
            )
        })
        .collect()
}

/// With the ASN database, a session is new-network only when it changes ASN (not /16); with the
/// city database the new-country rule is on. `run` and `analyze` alike. Without the databases,
/// networks are /16s and `analyze` says once that the country rule is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geoip_reaches_the_detections_in_run_and_analyze() {
    let dbs = tempfile::tempdir().unwrap();
    let (city, asn) = testdb::write_test_databases(dbs.path());
    let (city, asn) = (city.to_str().unwrap(), asn.to_str().unwrap());
    let entries = geoip_entries();
    let with: std::collections::BTreeSet<(String, String)> = [
        (
            "slack.detect.session_new_network",
            r#"["AS1221","AS20712"]"#,
        ),
        ("slack.detect.login_new_country", r#""GI""#),
    ]
    .iter()
    .map(|(r, a)| (r.to_string(), a.to_string()))
    .collect();

    let (code, docs, err) = analyze(
        &["--geoip-asn", asn, "--geoip-city", city],
        &ndjson(&entries),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(geo_findings(&docs), with, "analyze with the databases");
    assert!(!err.contains("is off"), "{err}");

    let sim = crate::support::simulator_with(entries.clone()).await;
    let state = tempfile::tempdir().unwrap();
    let url = format!("http://{}", sim.addr);
    let flags = [
        "--initial-lookback",
        "3h",
        "--geoip-asn",
        asn,
        "--geoip-city",
        city,
    ];
    let (live, _) = crate::support::run_once_in_process(&url, state.path(), &flags).await;
    assert_eq!(geo_findings(&live), with, "run with the databases");

    let (code, docs, err) = analyze(&[], &ndjson(&entries));
    assert_eq!(code, 0, "{err}");
    let without: std::collections::BTreeSet<(String, String)> = [
        r#"["1.128.0.0/16","1.150.0.0/16"]"#,
        r#"["1.128.0.0/16","81.2.0.0/16"]"#,
    ]
    .iter()
    .map(|a| {
        (
            "slack.detect.session_new_network".to_string(),
            a.to_string(),
        )
    })
    .collect();
    assert_eq!(geo_findings(&docs), without, "analyze without databases");
    assert_eq!(
        err.matches("slack.detect.login_new_country is off").count(),
        1,
        "said once: {err}"
    );
}

/// The rules the eleven-day attack story fires (without GeoIP databases).
const STORY_RULES: [&str; 10] = [
    "slack.detect.activity_after_deactivation",
    "slack.detect.app_installed",
    "slack.detect.brute_force",
    "slack.detect.brute_force_success",
    "slack.detect.data_export",
    "slack.detect.mass_session_reset",
    "slack.detect.private_channel_made_public",
    "slack.detect.role_change_to_owner",
    "slack.detect.session_new_network",
    "slack.detect.session_new_network_and_user_agent",
];

/// `simulate --attacks`: eleven days of ordinary traffic with the attack story in it. `run`
/// against the simulator delivers exactly the story's findings (by rule id, one each, no other
/// finding of any kind), and `analyze` over the same raw entries, oldest first and newest
/// first, gives the same detection findings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleven_day_attack_story_gives_its_findings_through_run_and_analyze() {
    use slack_audit_source::shutdown::Shutdown;
    use slack_audit_source::simulate::{start, SimOptions};
    use std::collections::BTreeSet;
    let options = SimOptions {
        seed: 7,
        backfill_events: 4000,
        backfill_secs: 11 * 86_400,
        backfill_end: Some(crate::support::now() - 120),
        attacks: true,
        ..SimOptions::default()
    };
    let sim = start("127.0.0.1:0".parse().unwrap(), options, Shutdown::never())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}", sim.addr);
    let extra = [
        "--initial-lookback",
        "265h",
        "--max-requests-per-minute",
        "6000",
        "--limit",
        "500",
        "--preserve-original-event",
    ];
    let (docs, _) = crate::support::run_once_in_process(&url, dir.path(), &extra).await;
    let alerts = findings(&docs);
    let rules: Vec<&str> = alerts
        .iter()
        .map(|a| a["rule"]["id"].as_str().unwrap_or_default())
        .collect();
    let mut sorted = rules.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted, STORY_RULES,
        "run: one finding per attack rule, nothing else"
    );
    let by_run: BTreeSet<(String, String)> = alerts
        .iter()
        .map(|d| {
            (
                d["rule"]["id"].as_str().unwrap_or_default().to_string(),
                d["slack"]["audit"]["analysis"]["finding"]["dedupe_key"].to_string(),
            )
        })
        .collect();

    let mut raw: Vec<Value> = docs
        .iter()
        .filter_map(|d| d["event"]["original"].as_str())
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    assert!(raw.len() > 4000, "{}", raw.len());
    raw.sort_by_key(|e| e["date_create"].as_i64());
    for order in ["oldest first", "newest first"] {
        if order == "newest first" {
            raw.reverse();
        }
        let (code, docs, err) = analyze(&[], &ndjson(&raw));
        assert_eq!(code, 0, "{err}");
        let got: BTreeSet<(String, String)> = findings(&docs)
            .iter()
            .map(|d| {
                (
                    d["rule"]["id"].as_str().unwrap_or_default().to_string(),
                    d["slack"]["audit"]["analysis"]["finding"]["dedupe_key"].to_string(),
                )
            })
            .collect();
        assert_eq!(got, by_run, "analyze, {order}");
    }
}
