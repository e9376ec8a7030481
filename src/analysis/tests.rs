//! Behaviour of the analysis over pages of ECS documents built here in the mapping's shape.

use super::*;
use crate::doc::Doc;
use serde_json::json;

const T0: i64 = 1_700_000_000 - 1_700_000_000 % 86_400 + 3 * 3600; // 03:00 UTC on some day
const DESKTOP: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.36.140 Chrome/120.0.6099.227 Electron/28.2.0 Safari/537.36 Sonic Slack_SSB/4.36.140";

fn ts(secs: i64) -> String {
    fields::rfc3339(fields::from_millis(secs * 1000))
}

fn event(id: &str, action: &str, user: &str, at: i64) -> Value {
    json!({
        "@timestamp": ts(at),
        "ecs": {"version": "8.11.0"},
        "event": {"id": id, "action": action, "kind": "event", "module": "slack", "dataset": "slack.audit"},
        "user": {"id": user, "email": format!("{}@example.com", user.to_lowercase()), "full_name": format!("User {user}")},
        "source": {"ip": "192.0.2.10"},
        "user_agent": {"original": DESKTOP},
        "slack": {"audit": {}},
    })
}

fn anomaly(id: &str, user: &str, at: i64, reasons: &[&str]) -> Value {
    let mut d = event(id, "anomaly", user, at);
    Doc::set(
        &mut d,
        &["slack", "audit", "details", "reason"],
        json!(reasons),
    );
    d
}

fn download(id: &str, user: &str, at: i64, file: &str) -> Value {
    let mut d = event(id, "file_downloaded", user, at);
    Doc::set(
        &mut d,
        &["slack", "audit", "entity"],
        json!({"id": format!("F{id}"), "name": file, "entity_type": "file"}),
    );
    d
}

fn with(mut d: Value, path: &[&str], v: Value) -> Value {
    Doc::set(&mut d, path, v);
    d
}

fn analyzer() -> Analyzer {
    Analyzer::new(&AnalysisConfig::default(), None).unwrap()
}

fn config(allowlist: &str) -> AnalysisConfig {
    AnalysisConfig {
        allowlist: Arc::new(Allowlist::parse(allowlist).unwrap()),
        ..AnalysisConfig::default()
    }
}

/// Runs one page and returns (annotated input, findings).
fn page(a: &mut Analyzer, docs: Vec<Value>) -> (Vec<Value>, Vec<Value>) {
    let n = docs.len();
    let mut docs = docs;
    a.process(&mut docs);
    let findings = docs.split_off(n);
    (docs, findings)
}

fn rule_ids(findings: &[Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| f["rule"]["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn restart(a: &Analyzer) -> Analyzer {
    let saved = a.state().expect("state");
    // Through text, as the checkpoint stores it.
    let text = serde_json::to_string(&saved).unwrap();
    Analyzer::new(
        &AnalysisConfig::default(),
        Some(&serde_json::from_str(&text).unwrap()),
    )
    .unwrap()
}

#[test]
fn each_default_rule_fires_with_its_severity() {
    let cases: &[(&[&[&str]], &str, u64, u64)] = &[
        (
            &[&["user_agent"], &["excessive_downloads"]],
            "slack.anomaly.scraping_client",
            2,
            47,
        ),
        (
            &[&["unexpected_user_agent"], &["excessive_downloads"]],
            "slack.anomaly.scraping_client",
            2,
            47,
        ),
        (
            &[&["user_agent", "ip_address"], &["excessive_downloads"]],
            "slack.anomaly.stolen_session_scraping",
            3,
            73,
        ),
        (
            &[
                &["unexpected_user_agent"],
                &["session_fingerprint", "excessive_downloads"],
            ],
            "slack.anomaly.stolen_session_scraping",
            3,
            73,
        ),
        (
            &[&["unexpected_scraping"]],
            "slack.anomaly.unexpected_scraping",
            3,
            73,
        ),
        (&[&["tor"]], "slack.anomaly.tor", 3, 73),
        (&[&["ip_address"]], "slack.anomaly.ip_address_only", 1, 21),
        (&[&["asn"]], "slack.anomaly.ip_address_only", 1, 21),
    ];
    for (events, rule, severity, risk) in cases {
        let mut a = analyzer();
        let docs = events
            .iter()
            .enumerate()
            .map(|(i, r)| anomaly(&format!("a{i}"), "U1", T0 + i as i64 * 60, r))
            .collect();
        let (_, findings) = page(&mut a, docs);
        assert_eq!(rule_ids(&findings), vec![rule.to_string()], "{events:?}");
        let f = &findings[0];
        assert_eq!(f["event"]["severity"], json!(severity), "{rule}");
        assert_eq!(f["event"]["risk_score"], json!(risk), "{rule}");
        assert_eq!(f["event"]["kind"], "alert");
        assert_eq!(f["user"]["id"], "U1");
        assert_eq!(
            f["slack"]["audit"]["analysis"]["contributing_event_ids"]
                .as_array()
                .unwrap()
                .len(),
            events.len(),
            "{rule}"
        );
    }
}

#[test]
fn slacks_placeholder_actors_are_not_correlated() {
    let mut a = analyzer();
    let docs = vec![
        anomaly("a1", "USLACKUSER", T0, &["user_agent"]),
        anomaly("a2", "USLACKUSER", T0 + 60, &["excessive_downloads"]),
    ];
    let (docs, f) = page(&mut a, docs);
    assert!(f.is_empty());
    assert_eq!(
        docs[0]["slack"]["audit"]["analysis"]["reasons"],
        json!(["user_agent"]),
        "still annotated"
    );
}

#[test]
fn ip_address_with_an_unruled_reason_is_not_ip_address_only() {
    let mut a = analyzer();
    let (_, findings) = page(
        &mut a,
        vec![anomaly(
            "a1",
            "U1",
            T0,
            &["ip_address", "excessive_file_shares"],
        )],
    );
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn the_more_specific_rule_suppresses_the_less_specific_one() {
    let mut a = analyzer();
    let (_, f) = page(
        &mut a,
        vec![
            anomaly("a1", "U1", T0, &["user_agent", "ip_address"]),
            anomaly("a2", "U1", T0 + 60, &["excessive_downloads"]),
        ],
    );
    assert_eq!(rule_ids(&f), vec!["slack.anomaly.stolen_session_scraping"]);
    assert_eq!(
        f[0]["slack"]["audit"]["analysis"]["suppressed_rules"],
        json!(["slack.anomaly.scraping_client"])
    );
}

#[test]
fn a_finding_already_emitted_is_superseded_not_retracted() {
    let mut a = analyzer();
    let (_, f1) = page(&mut a, vec![anomaly("a1", "U1", T0, &["user_agent"])]);
    assert!(f1.is_empty());
    let (_, f2) = page(
        &mut a,
        vec![anomaly("a2", "U1", T0 + 60, &["excessive_downloads"])],
    );
    assert_eq!(
        rule_ids(&f2),
        vec!["slack.anomaly.scraping_client"],
        "correlates across pages"
    );
    let (_, f3) = page(
        &mut a,
        vec![anomaly("a3", "U1", T0 + 120, &["session_fingerprint"])],
    );
    assert_eq!(rule_ids(&f3), vec!["slack.anomaly.stolen_session_scraping"]);
    assert_eq!(
        f3[0]["slack"]["audit"]["analysis"]["supersedes"],
        json!([f2[0]["event"]["id"]])
    );
}

#[test]
fn built_in_pairs_are_normalised_on_the_event() {
    let mut a = analyzer();
    let (docs, _) = page(
        &mut a,
        vec![anomaly(
            "a1",
            "U1",
            T0,
            &["asn", "spoofed_user_agent", "unexpected_user_agent"],
        )],
    );
    let an = &docs[0]["slack"]["audit"]["analysis"];
    assert_eq!(
        an["reasons"],
        json!([
            "asn",
            "ip_address",
            "spoofed_user_agent",
            "unexpected_client",
            "unexpected_user_agent",
            "user_agent"
        ])
    );
    assert_eq!(
        an["implied_reasons"],
        json!(["ip_address", "unexpected_client", "user_agent"])
    );
    assert_eq!(an["allowlisted"], json!(false));
    assert!(an["window"]["start"].is_string());
}

#[test]
fn each_allowlist_kind_annotates_and_suppresses() {
    let list = r#"
        trusted_cidrs = ["198.51.100.0/24", "2001:db8::/32"]
        trusted_asns = [64500]
        user_agents = ["CorpBackup/*"]
        excluded_users = ["U9", "svc@example.com"]
    "#;
    let tor = |id: &str| anomaly(id, "U1", T0, &["tor"]);
    let cases = vec![
        (
            with(tor("c4"), &["source", "ip"], json!("198.51.100.20")),
            "cidr",
            "198.51.100.0/24",
        ),
        (
            with(tor("c6"), &["source", "ip"], json!("2001:db8::5")),
            "cidr",
            "2001:db8::/32",
        ),
        (
            with(tor("asn"), &["source", "as", "number"], json!(64500)),
            "asn",
            "64500",
        ),
        (
            with(
                tor("ua"),
                &["user_agent", "original"],
                json!("CorpBackup/1.2"),
            ),
            "user_agent",
            "CorpBackup/*",
        ),
        (
            with(tor("uid"), &["user", "id"], json!("U9")),
            "excluded_user",
            "U9",
        ),
        (
            with(tor("mail"), &["user", "email"], json!("svc@example.com")),
            "excluded_user",
            "svc@example.com",
        ),
    ];
    for (doc, kind, entry) in cases {
        let mut a = Analyzer::new(&config(list), None).unwrap();
        let (docs, findings) = page(&mut a, vec![doc]);
        let an = &docs[0]["slack"]["audit"]["analysis"];
        assert_eq!(an["allowlisted"], json!(true), "{kind}");
        assert_eq!(an["allowlist_match"], json!({"kind": kind, "entry": entry}));
        assert!(
            findings.is_empty(),
            "{kind}: allowlisted anomalies feed no finding"
        );
        assert!(
            docs[0]["slack"]["audit"]["details"]["reason"].is_array(),
            "annotated, never dropped"
        );
    }
    let mut a = Analyzer::new(&config(list), None).unwrap();
    let (_, findings) = page(&mut a, vec![tor("plain")]);
    assert_eq!(
        rule_ids(&findings),
        vec!["slack.anomaly.tor"],
        "no match: not allowlisted"
    );
}

#[test]
fn unexpected_user_agents_are_flagged_on_any_event() {
    let mut a = analyzer();
    let uas = [
        ("Scrapers Inc", true),
        ("Go-http-client/2.0", true),
        ("python-requests/2.31.0", true),
        (DESKTOP, false),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", false),
        ("com.tinyspeck.chatlyio/23.07.10 (iPhone; iOS 16.5.1; Scale/3.00)", false),
        ("Slack/23.07.10.0 (Google Pixel 7; Android 14)", false),
    ];
    let docs = uas
        .iter()
        .enumerate()
        .map(|(i, (ua, _))| {
            with(
                event(&format!("e{i}"), "user_login", "U1", T0),
                &["user_agent", "original"],
                json!(ua),
            )
        })
        .collect();
    let (docs, findings) = page(&mut a, docs);
    for (doc, (ua, flagged)) in docs.iter().zip(uas) {
        assert_eq!(
            doc["slack"]["audit"]["analysis"]["unexpected_user_agent"]
                .as_bool()
                .unwrap_or(false),
            flagged,
            "{ua}"
        );
    }
    assert!(
        findings.is_empty(),
        "an unexpected UA alone is a flag, not a finding"
    );
}

/// An app's HTTP client and an inviter's context are flagged, but are not the actor's client.
#[test]
fn app_events_and_invitations_do_not_feed_the_ua_signal() {
    let mut a = analyzer();
    let go = |d: Value| with(d, &["user_agent", "original"], json!("Go-http-client/2.0"));
    let docs = vec![
        with(
            go(download("d1", "U1", T0, "x.pdf")),
            &["slack", "audit", "context", "app"],
            json!({"id": "A0EDISC", "name": "eDiscovery"}),
        ),
        go(event("j1", "user_channel_join", "U1", T0 + 10)),
        anomaly("a1", "U1", T0 + 60, &["excessive_downloads"]),
    ];
    let (docs, f) = page(&mut a, docs);
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(
        docs[0]["slack"]["audit"]["analysis"]["unexpected_user_agent"],
        json!(true)
    );
    assert_eq!(
        docs[1]["slack"]["audit"]["analysis"]["unexpected_user_agent"],
        json!(true)
    );
}

#[test]
fn the_allowlist_user_agents_are_expected_too() {
    let mut a = Analyzer::new(&config("user_agents = [\"Go-http-client/*\"]"), None).unwrap();
    let (docs, _) = page(
        &mut a,
        vec![with(
            event("e1", "user_login", "U1", T0),
            &["user_agent", "original"],
            json!("Go-http-client/2.0"),
        )],
    );
    assert!(docs[0]["slack"]["audit"]["analysis"]
        .get("unexpected_user_agent")
        .is_none());
}

#[test]
fn a_scrapers_own_downloads_combine_with_slacks_excessive_downloads() {
    let mut a = analyzer();
    let docs = vec![
        with(
            download("d1", "U1", T0, "Glengarry-Leads.xlsx"),
            &["user_agent", "original"],
            json!("Scrapers Inc"),
        ),
        anomaly("a1", "U1", T0 + 300, &["excessive_downloads"]),
    ];
    let (docs, f) = page(&mut a, docs);
    assert_eq!(rule_ids(&f), vec!["slack.anomaly.scraping_client"]);
    let ids = f[0]["slack"]["audit"]["analysis"]["contributing_event_ids"].clone();
    assert_eq!(ids, json!(["a1", "d1"]));
    assert_eq!(
        docs[0]["slack"]["audit"]["analysis"]["finding_ids"],
        json!([f[0]["event"]["id"]])
    );
}

/// Slack's departing-salesperson story: the one high finding, with the file in its context.
#[test]
fn context_lists_the_downloaded_files() {
    let mut a = analyzer();
    let scraper = |d: Value| with(d, &["user_agent", "original"], json!("Scrapers Inc"));
    let docs = vec![
        scraper(anomaly(
            "a1",
            "U7",
            T0 + 900,
            &["unexpected_scraping", "user_agent"],
        )),
        anomaly("a2", "U7", T0 + 1200, &["excessive_downloads"]),
        scraper(download("d1", "U7", T0 + 600, "Glengarry-Leads.xlsx")),
        scraper(download("d2", "U7", T0 + 610, "Pipeline-Q3.xlsx")),
        download("d3", "U8", T0 + 620, "Someone-elses.pdf"),
    ];
    let (_, f) = page(&mut a, docs);
    assert_eq!(rule_ids(&f), vec!["slack.anomaly.unexpected_scraping"]);
    let ctx = &f[0]["slack"]["audit"]["analysis"]["context"]["downloads"];
    assert_eq!(ctx["count"], json!(2));
    assert_eq!(
        ctx["file_names"],
        json!(["Pipeline-Q3.xlsx", "Glengarry-Leads.xlsx"])
    );
    assert_eq!(ctx["file_ids"], json!(["Fd2", "Fd1"]));
    assert!(f[0]["event"]["reason"]
        .as_str()
        .unwrap()
        .contains("Glengarry-Leads.xlsx"));
    assert_eq!(
        f[0]["slack"]["audit"]["analysis"]["suppressed_rules"],
        json!(["slack.anomaly.scraping_client"])
    );
}

#[test]
fn a_finding_is_emitted_once_across_pages_and_restarts() {
    let mut a = analyzer();
    let (_, f1) = page(&mut a, vec![anomaly("a1", "U1", T0, &["tor"])]);
    assert_eq!(f1.len(), 1);
    let (_, f2) = page(
        &mut a,
        vec![
            anomaly("a2", "U1", T0 + 60, &["tor"]),
            anomaly("a1", "U1", T0, &["tor"]),
        ],
    );
    assert!(f2.is_empty());
    let mut b = restart(&a);
    let (_, f3) = page(&mut b, vec![anomaly("a3", "U1", T0 + 120, &["tor"])]);
    assert!(f3.is_empty(), "a restart does not repeat it");
    let (_, f4) = page(&mut b, vec![anomaly("a4", "U1", T0 + 3600, &["tor"])]);
    assert_eq!(f4.len(), 1, "the next window is a new finding");
    assert_ne!(f4[0]["event"]["id"], f1[0]["event"]["id"]);
}

#[test]
fn a_restart_does_not_forget_half_a_correlation() {
    let mut a = analyzer();
    page(&mut a, vec![anomaly("a1", "U1", T0, &["user_agent"])]);
    let mut b = restart(&a);
    let (_, f) = page(
        &mut b,
        vec![anomaly("a2", "U1", T0 + 60, &["excessive_downloads"])],
    );
    assert_eq!(rule_ids(&f), vec!["slack.anomaly.scraping_client"]);
}

fn downloads_anomalies(prefix: &str, user: &str, day_start: i64, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            anomaly(
                &format!("{prefix}{i}"),
                user,
                day_start + 3600 * (i as i64 + 1),
                &["excessive_downloads"],
            )
        })
        .collect()
}

#[test]
fn baselines_three_never_fire_and_four_does() {
    let day = 86_400;
    let d0 = T0 - T0 % day;
    let mut a = analyzer();
    let (_, f) = page(&mut a, downloads_anomalies("x", "U1", d0, 3));
    assert!(f.is_empty(), "three a day never fire");
    let (_, f) = page(&mut a, downloads_anomalies("y", "U1", d0 + 12 * 3600, 1));
    assert_eq!(
        rule_ids(&f),
        vec!["slack.baseline.excessive_downloads"],
        "the fourth does"
    );
    let b = &f[0]["slack"]["audit"]["analysis"]["baseline"];
    assert_eq!(
        (
            b["count"].clone(),
            b["user_max"].clone(),
            b["org_max"].clone()
        ),
        (json!(4), json!(0), json!(0))
    );
    assert_eq!(
        f[0]["event"]["severity"],
        json!(3),
        "above the org's history too: high"
    );
    let (_, f) = page(&mut a, downloads_anomalies("z", "U1", d0 + 13 * 3600, 3));
    assert!(f.is_empty(), "at most one baseline finding a day");
    // Day 2, after a restart: history is day 1's 7. Seven is not above it; eight is.
    let mut a = restart(&a);
    let (_, f) = page(&mut a, downloads_anomalies("p", "U1", d0 + day, 7));
    assert!(f.is_empty(), "not above the user's maximum");
    let (_, f) = page(
        &mut a,
        downloads_anomalies("q", "U1", d0 + day + 12 * 3600, 1),
    );
    assert_eq!(rule_ids(&f), vec!["slack.baseline.excessive_downloads"]);
    assert_eq!(
        f[0]["slack"]["audit"]["analysis"]["baseline"]["user_max"],
        json!(7)
    );
    // Another user: above their own (empty) history, below the org's 7: medium.
    let (_, f) = page(&mut a, downloads_anomalies("r", "U2", d0 + day, 5));
    assert_eq!(rule_ids(&f), vec!["slack.baseline.excessive_downloads"]);
    assert_eq!(f[0]["event"]["severity"], json!(2));
    assert_eq!(
        f[0]["slack"]["audit"]["analysis"]["baseline"]["org_max"],
        json!(7)
    );
}

#[test]
fn baselines_can_be_turned_off_or_pointed_elsewhere() {
    let args = AnalysisArgs {
        baseline_reasons: vec!["none".into()],
        ..AnalysisArgs::default()
    };
    let mut a = Analyzer::new(&AnalysisConfig::from_args(&args).unwrap(), None).unwrap();
    let (_, f) = page(&mut a, downloads_anomalies("x", "U1", T0 - T0 % 86_400, 5));
    assert!(f.is_empty());
    let args = AnalysisArgs {
        baseline_reasons: vec!["excessive_file_shares".into()],
        ..AnalysisArgs::default()
    };
    assert!(AnalysisConfig::from_args(&args).is_ok());
    let args = AnalysisArgs {
        baseline_reasons: vec!["lots_of_stuff".into()],
        ..AnalysisArgs::default()
    };
    let err = AnalysisConfig::from_args(&args).unwrap_err().to_string();
    assert!(
        err.contains("--baseline-reasons") && err.contains("lots_of_stuff"),
        "{err}"
    );
}

/// Windows are keyed by event time: a page in any order gives the same findings.
#[test]
fn arrival_order_does_not_change_findings() {
    let docs: Vec<Value> = vec![
        anomaly("a1", "U1", T0, &["user_agent"]),
        anomaly("a2", "U1", T0 + 100, &["excessive_downloads"]),
        download("d1", "U1", T0 + 50, "Glengarry-Leads.xlsx"),
        anomaly("a3", "U2", T0 + 7200, &["tor"]),
        anomaly("a4", "U3", T0 + 10, &["ip_address"]),
    ];
    let mut reversed = docs.clone();
    reversed.reverse();
    let (_, f1) = page(&mut analyzer(), docs);
    let (_, mut f2) = page(&mut analyzer(), reversed);
    let key = |f: &Value| f["event"]["id"].to_string();
    f2.sort_by_key(key);
    let mut f1 = f1;
    f1.sort_by_key(key);
    assert_eq!(f1, f2);
    assert_eq!(f1.len(), 3);
}

#[test]
fn processing_is_deterministic_to_the_byte() {
    let input = background(400, 7);
    let run = || {
        let mut a = analyzer();
        let mut out = Vec::new();
        for chunk in input.chunks(37) {
            let mut docs = chunk.to_vec();
            docs.push(anomaly(
                &format!("t{}", chunk.len()),
                "U3",
                T0 + 60,
                &["tor"],
            ));
            a.process(&mut docs);
            out.extend(docs);
        }
        (
            serde_json::to_string(&out).unwrap(),
            serde_json::to_string(&a.state()).unwrap(),
        )
    };
    assert_eq!(run(), run());
}

/// A day of ordinary traffic from ordinary clients, from a seeded generator.
fn background(n: usize, seed: u64) -> Vec<Value> {
    let uas = [
        DESKTOP,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
        "com.tinyspeck.chatlyio/23.07.10 (iPhone; iOS 16.5.1; Scale/3.00)",
        "Slack/23.07.10.0 (Google Pixel 7; Android 14)",
    ];
    let actions = [
        "user_login",
        "file_downloaded",
        "file_downloaded",
        "channel_created",
        "user_channel_join",
        "file_uploaded",
        "user_logout",
        "public_channel_archive",
    ];
    let mut x = seed;
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    (0..n)
        .map(|i| {
            let user = format!("U{:03}", next(40));
            let at = T0 + (i as i64) * 86_400 / n as i64;
            let action = actions[next(actions.len() as u64) as usize];
            let mut d = if action == "file_downloaded" {
                download(
                    &format!("b{i}"),
                    &user,
                    at,
                    &format!("report-{}.pdf", next(500)),
                )
            } else {
                event(&format!("b{i}"), action, &user, at)
            };
            Doc::set(
                &mut d,
                &["user_agent", "original"],
                json!(uas[next(uas.len() as u64) as usize]),
            );
            Doc::set(
                &mut d,
                &["source", "ip"],
                json!(format!("203.0.113.{}", next(250))),
            );
            d
        })
        .collect()
}

#[test]
fn ordinary_background_traffic_gives_no_finding_and_no_flag() {
    let mut a = analyzer();
    for chunk in background(5000, 42).chunks(500) {
        let (docs, f) = page(&mut a, chunk.to_vec());
        assert!(f.is_empty(), "{f:?}");
        assert!(
            docs.iter()
                .all(|d| d["slack"]["audit"].get("analysis").is_none()),
            "ordinary events are not annotated"
        );
    }
}

#[test]
fn no_document_shape_makes_it_panic() {
    let mut a = analyzer();
    let mut docs = vec![
        Value::Null,
        json!(1),
        json!("text"),
        json!([1, 2]),
        json!({}),
        json!({"event": "anomaly"}),
        json!({"event": {"action": "anomaly"}}),
        json!({"event": {"action": "anomaly", "id": 5}, "user": {"id": 7}, "@timestamp": "yesterday", "slack": 3}),
        json!({"event": {"action": "anomaly"}, "user": {"id": "U1"}, "@timestamp": ts(T0), "slack": {"audit": {"details": {"reason": [1, null, "tor"]}}}}),
        json!({"event": {"action": "anomaly"}, "user": {"id": "U1"}, "@timestamp": "+262143-12-31T23:59:59Z", "slack": {"audit": {"details": {"reason": "tor"}}}}),
        json!({"event": {"action": "file_downloaded"}, "user": {"id": "U1"}, "@timestamp": ts(T0), "slack": {"audit": {"entity": [1]}}, "user_agent": {"original": 5}}),
        json!({"event": {"action": "user_login", "kind": "alert"}, "user_agent": {"original": "Scrapers Inc"}}),
        json!({"event": {"action": "user_login"}, "user_agent": {"original": "Scrapers Inc"}, "slack": {"audit": "text"}}),
    ];
    a.process(&mut docs);
    assert!(docs.len() >= 13);
    let mut b = restart(&a);
    b.process(&mut vec![json!({"event": {"action": "anomaly"}})]);
}

#[test]
fn a_hand_edited_state_with_extreme_values_does_not_crash() {
    let saved = json!({"version": 1, "pages": u64::MAX, "window_secs": 3600, "high_water_ms": i64::MAX,
        "windows": {"U1": {(i64::MAX).to_string(): {"touched": u64::MAX}}},
        "emitted": {"k": {"id": "x", "at": i64::MIN}}});
    let mut a = Analyzer::new(&AnalysisConfig::default(), Some(&saved)).unwrap();
    a.process(&mut vec![anomaly("a1", "U1", T0, &["tor"])]);
}

#[test]
fn state_stays_bounded() {
    let mut a = analyzer();
    for p in 0..6 {
        let mut docs: Vec<Value> = (0..5000)
            .map(|i| {
                download(
                    &format!("p{p}d{i}"),
                    &format!("U{i}"),
                    T0 + p * 3600,
                    "f.pdf",
                )
            })
            .collect();
        docs.extend((0..20).map(|i| {
            anomaly(
                &format!("p{p}a{i}"),
                &format!("U{i}"),
                T0 + p * 3600,
                &["ip_address"],
            )
        }));
        a.process(&mut docs);
    }
    let state: State = serde_json::from_value(a.state().unwrap()).unwrap();
    let windows: usize = state.windows.values().map(|w| w.len()).sum();
    assert!(windows <= 2 * 5000, "old windows are pruned: {windows}");
    assert!(
        state
            .windows
            .values()
            .flat_map(|w| w.keys())
            .all(|s| *s >= T0 + 4 * 3600),
        "only recent windows stay"
    );
}

#[test]
fn no_analysis_passes_documents_and_state_through() {
    let cfg = AnalysisConfig {
        enabled: false,
        ..AnalysisConfig::default()
    };
    let saved = json!({"version": 1, "anything": true});
    let mut a = Analyzer::new(&cfg, Some(&saved)).unwrap();
    let mut docs = vec![anomaly("a1", "U1", T0, &["tor"])];
    let before = docs.clone();
    a.process(&mut docs);
    assert_eq!(docs, before);
    assert_eq!(a.state(), Some(saved));
}

#[test]
fn a_state_from_another_version_is_a_clear_error() {
    let err = Analyzer::new(&AnalysisConfig::default(), Some(&json!({"version": 99})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("version") && err.contains("analysis"), "{err}");
    let err = Analyzer::new(
        &AnalysisConfig::default(),
        Some(&json!({"version": 1, "windows": 3})),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("analysis state"), "{err}");
}

#[test]
fn finding_documents_have_the_ecs_shape() {
    let mut a = analyzer();
    let (_, f) = page(&mut a, vec![anomaly("a1", "U1", T0 + 30, &["tor"])]);
    let f = &f[0];
    assert_eq!(f["event"]["module"], "slack");
    assert_eq!(f["event"]["dataset"], "slack.analysis");
    assert_eq!(f["ecs"]["version"], "8.11.0");
    assert_eq!(f["@timestamp"], json!(ts(T0 + 30)));
    assert_eq!(f["rule"]["name"], "Slack used from a Tor exit node");
    assert!(f["rule"]["description"].is_string());
    assert_eq!(f["source"]["ip"], "192.0.2.10");
    assert_eq!(
        f["related"],
        json!({"user": ["U1", "u1@example.com"], "ip": ["192.0.2.10"]})
    );
    assert_eq!(f["user"]["full_name"], "User U1");
    assert_eq!(f["event"]["id"].as_str().unwrap().len(), 32);
    assert_eq!(
        f["slack"]["audit"]["analysis"]["finding"]["dedupe_key"],
        json!(format!("slack.anomaly.tor|U1|{T0}"))
    );
}

#[test]
fn a_changed_window_length_drops_old_windows_only() {
    let mut a = analyzer();
    page(&mut a, vec![anomaly("a1", "U1", T0, &["tor"])]);
    let cfg = AnalysisConfig {
        window: std::time::Duration::from_secs(1800),
        ..AnalysisConfig::default()
    };
    let b = Analyzer::new(&cfg, a.state().as_ref()).unwrap();
    assert!(b.state.windows.is_empty());
    assert_eq!(b.state.emitted.len(), 1);
}

#[test]
fn bad_flags_and_files_name_the_flag_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("allow.toml");
    std::fs::write(&p, "trusted_cidrs = [\"10.0.0.0/40\"]\n").unwrap();
    let args = AnalysisArgs {
        allowlist: Some(p.clone()),
        ..AnalysisArgs::default()
    };
    let err = AnalysisConfig::from_args(&args).unwrap_err().to_string();
    assert!(
        err.contains("--allowlist") && err.contains("allow.toml") && err.contains("10.0.0.0/40"),
        "{err}"
    );
    let args = AnalysisArgs {
        rules: Some(dir.path().join("missing.toml")),
        ..AnalysisArgs::default()
    };
    let err = AnalysisConfig::from_args(&args).unwrap_err().to_string();
    assert!(
        err.contains("--rules") && err.contains("missing.toml"),
        "{err}"
    );
    let args = AnalysisArgs {
        analysis_window: "5s".into(),
        ..AnalysisArgs::default()
    };
    assert!(AnalysisConfig::from_args(&args)
        .unwrap_err()
        .to_string()
        .contains("--analysis-window"));
}

/// The state is saved in checkpoints: its JSON must not change by accident (a change needs a
/// new STATE_VERSION and a migration, or restarts lose what the analysis had learned).
#[test]
fn state_format_is_pinned() {
    let mut a = analyzer();
    let mut docs = vec![
        anomaly("a1", "U1", T0, &["asn", "tor"]),
        download("d1", "U1", T0 + 5, "Glengarry-Leads.xlsx"),
        anomaly("a2", "U1", T0 + 10, &["excessive_downloads"]),
    ];
    a.process(&mut docs);
    let id = docs[3]["event"]["id"].as_str().unwrap().to_string();
    let expected = json!({
        "version": 1, "pages": 1, "window_secs": 3600, "high_water_ms": (T0 + 10) * 1000,
        "windows": {"U1": {T0.to_string(): {
            "touched": 1,
            "reasons": {"asn": ["a1"], "excessive_downloads": ["a2"], "ip_address": ["a1"], "tor": ["a1"]},
            "seen": ["a1", "a2"],
            "email": "u1@example.com", "full_name": "User U1",
            "ips": ["192.0.2.10"], "last": [(T0 + 10) * 1000, "192.0.2.10"],
            "downloads": {"count": 1, "seen": ["d1"], "files": [{"at_ms": (T0 + 5) * 1000, "event_id": "d1", "id": "Fd1", "name": "Glengarry-Leads.xlsx"}]},
        }}},
        "emitted": {format!("slack.anomaly.tor|U1|{T0}"): {"id": id, "at": T0}},
        "baselines": {"U1": {"excessive_downloads": {(T0 / 86_400).to_string(): {"count": 1, "ids": ["a2"], "fired": false}}}},
    });
    similar_asserts::assert_eq!(a.state().unwrap(), expected);
}

/// A download written straight to text and only noted must leave the state exactly as the
/// same document read as a value would; the facts come from the mapper, the value from the
/// mapper's own output, so the two can only agree if mapping and analysis read alike.
#[test]
fn noted_downloads_leave_the_same_state_as_processed_ones() {
    let fetched = chrono::DateTime::from_timestamp(T0 + 999, 0).unwrap();
    let entries = [
        // Plain, as Slack sends it.
        format!(
            r#"{{"id":"d1","date_create":{T0},"action":"file_downloaded","actor":{{"type":"user","user":{{"id":"U1","name":"A","email":"a@example.com"}}}},"entity":{{"type":"file","file":{{"id":"F1","name":"plan.pdf","filetype":"pdf"}}}},"context":{{"ua":"{DESKTOP}","ip_address":"192.0.2.1"}}}}"#
        ),
        // Whitespace, escapes and a numeric file id.
        format!(
            r#"{{"id":" d2 ","date_create":"{}","action":"file_downloaded","actor":{{"type":"user","user":{{"id":"U1 "}}}},"entity":{{"type":"file","file":{{"id":42,"name":"caf\u00e9 \"q\".txt"}}}}}}"#,
            T0 + 5
        ),
        // The type names no object: the entity's own keys are used.
        format!(
            r#"{{"id":"d3","date_create":{},"action":"file_downloaded","actor":{{"user":{{"id":"U2"}}}},"entity":{{"type":"file","id":"F3","name":"top.txt"}}}}"#,
            T0 + 7
        ),
        // No date: the fetch time, as in `@timestamp`; no entity at all.
        r#"{"id":"d4","action":"file_downloaded","actor":{"user":{"id":"U2"}}}"#.to_string(),
        // Not a download, and an entry without an actor.
        format!(
            r#"{{"id":"x1","date_create":{T0},"action":"user_login","actor":{{"user":{{"id":"U1"}}}}}}"#
        ),
        format!(r#"{{"id":"d5","date_create":{T0},"action":"file_downloaded"}}"#),
    ];
    let mut mapper =
        crate::mapping::Mapper::new(&crate::mapping::MappingConfig::default()).unwrap();
    let mut processed = analyzer();
    let mut noted = analyzer();
    let mut docs = Vec::new();
    let mut facts = crate::mapping::Facts::default();
    for raw in &entries {
        let mut text = Vec::new();
        mapper.write_entry_noting(raw, fetched, &mut text, &mut facts);
        assert!(
            !noted.wants(facts.action.as_deref(), facts.user_agent.as_deref()),
            "{raw}"
        );
        noted.note_plain(&facts);
        docs.push(serde_json::from_slice::<Value>(&text).unwrap());
    }
    processed.process(&mut docs);
    noted.process(&mut Vec::<Value>::new());
    let (p, n) = (processed.state().unwrap(), noted.state().unwrap());
    assert_eq!(p["windows"], n["windows"]);
    assert_eq!(p["high_water_ms"], n["high_water_ms"]);
    // And the downloads are really there: three for U1's and U2's windows.
    let files: Vec<&str> = ["U1", "U2"]
        .iter()
        .flat_map(|u| n["windows"][u].as_object().unwrap().values())
        .flat_map(|w| w["downloads"]["files"].as_array().unwrap())
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(files.len(), 3, "{n}");
    assert!(
        files.contains(&"café \"q\".txt") && files.contains(&"top.txt"),
        "{files:?}"
    );
}

/// The detections' state rides in the analysis state under `detections`, and an analyzer
/// resumed from it repeats no finding; a state saved before the detections existed loads.
#[test]
fn the_detection_state_rides_with_the_analysis_state() {
    let owner = json!({"id": "E1", "date_create": T0, "action": "role_change_to_owner",
        "actor": {"type": "user", "user": {"id": "U0ADMIN"}},
        "entity": {"type": "user", "user": {"id": "U0ALICE"}}});
    let items = [crate::analysis::detect::Item::Entry(&owner)];
    let mut a = analyzer();
    assert_eq!(a.detect(&items).len(), 1);
    let saved = a.state().unwrap();
    assert_eq!(saved["detections"]["batches"], 1, "{saved}");
    let mut resumed = Analyzer::new(&AnalysisConfig::default(), Some(&saved)).unwrap();
    assert!(
        resumed.detect(&items).is_empty(),
        "no repeat after a restart"
    );
    let mut old = saved.clone();
    old.as_object_mut().unwrap().remove("detections");
    let mut fresh = Analyzer::new(&AnalysisConfig::default(), Some(&old)).unwrap();
    assert_eq!(
        fresh.detect(&items).len(),
        1,
        "an old state starts the detections afresh"
    );
    let mut bad = saved;
    bad["detections"]["version"] = json!(99);
    let err = Analyzer::new(&AnalysisConfig::default(), Some(&bad)).unwrap_err();
    assert!(err.to_string().contains("detections"), "{err}");
}
