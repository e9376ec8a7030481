//! The default pack against our own fixtures (`tests/fixtures/detections/<rule>.json`), in
//! both input orders, and the engine's promises: no noise, dedup, restarts, caps, validation.

use super::geo::{GeoLookup, NoGeo};
use super::state::{DetectState, MAX_EVENTS_PER_KEY, MAX_SESSIONS};
use super::Detector;
use crate::analysis::allowlist::Allowlist;
use crate::analysis::rules::{RuleSet, DEFAULT_RULES};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/detections");
const PREFIX: &str = "slack.detect.";

/// Test GeoIP: documentation networks as three ASNs and countries.
struct FakeGeo;

fn place(ip: IpAddr) -> Option<(u64, &'static str)> {
    let s = ip.to_string();
    if s.starts_with("203.0.113.") {
        Some((64500, "US"))
    } else if s.starts_with("198.51.100.") {
        Some((64501, "FR"))
    } else if s.starts_with("81.2.69.") {
        Some((20712, "GB"))
    } else {
        None
    }
}

impl GeoLookup for FakeGeo {
    fn has_asn(&self) -> bool {
        true
    }
    fn has_country(&self) -> bool {
        true
    }
    fn asn(&mut self, ip: IpAddr) -> Option<u64> {
        place(ip).map(|p| p.0)
    }
    fn country(&mut self, ip: IpAddr) -> Option<String> {
        place(ip).map(|p| p.1.to_string())
    }
}

fn detector_with(rules: RuleSet, allowlist: Allowlist, state: Option<DetectState>) -> Detector {
    Detector::new(
        Arc::new(rules),
        Arc::new(allowlist),
        Box::new(FakeGeo),
        state,
    )
}

fn detector() -> Detector {
    detector_with(RuleSet::default_rules(), Allowlist::default(), None)
}

fn fixture(name: &str) -> Value {
    let path = format!("{FIXTURES}/{name}.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn entries(v: &Value, key: &str) -> Vec<Value> {
    v.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn rule_of(doc: &Value) -> String {
    doc["rule"]["id"].as_str().unwrap().to_string()
}

/// (rule id, dedupe key) of each finding.
fn keys(docs: &[Value]) -> BTreeSet<(String, String)> {
    docs.iter()
        .map(|d| {
            let k = d["slack"]["audit"]["analysis"]["finding"]["dedupe_key"]
                .as_str()
                .unwrap();
            (rule_of(d), k.to_string())
        })
        .collect()
}

/// Runs entries one batch each (so the engine's batch sorting cannot help).
fn one_by_one(entries: &[Value]) -> Vec<Value> {
    let mut d = detector();
    entries.iter().flat_map(|e| d.evaluate(e)).collect()
}

fn default_ids() -> Vec<String> {
    RuleSet::default_rules()
        .detections
        .rules
        .iter()
        .map(|r| r.id.clone())
        .collect()
}

#[test]
fn every_default_rule_fires_on_its_positive_and_nothing_on_its_negative_in_both_orders() {
    let mut on_disk: BTreeSet<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .collect();
    on_disk.remove("ordinary_traffic");
    let ids = default_ids();
    let expected: BTreeSet<String> = ids
        .iter()
        .map(|id| id.trim_start_matches(PREFIX).to_string())
        .collect();
    assert_eq!(
        on_disk, expected,
        "one fixture per default rule, and no stray ones"
    );
    for id in &ids {
        let fx = fixture(id.trim_start_matches(PREFIX));
        let allowed = |list: &str| -> BTreeSet<String> {
            entries(&fx, list)
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        let mut positive = entries(&fx, "positive");
        assert!(!positive.is_empty(), "{id}: no positive case");
        let oldest_first = detector().evaluate_batch(&positive);
        positive.reverse();
        let newest_first = detector().evaluate_batch(&positive);
        assert_eq!(
            oldest_first, newest_first,
            "{id}: one batch gives the same documents in both orders"
        );
        let fired: BTreeSet<String> = oldest_first.iter().map(rule_of).collect();
        assert!(
            fired.contains(id),
            "{id}: the positive case fired {fired:?}"
        );
        let also = allowed("also");
        assert!(
            fired.iter().all(|r| r == id || also.contains(r)),
            "{id}: the positive case fired other rules too: {fired:?}"
        );
        // `positive` is newest first here.
        let newest_singly = keys(&one_by_one(&positive));
        positive.reverse();
        let oldest_singly = keys(&one_by_one(&positive));
        assert_eq!(
            newest_singly,
            keys(&oldest_first),
            "{id}: entry by entry, newest first"
        );
        assert_eq!(
            oldest_singly,
            keys(&oldest_first),
            "{id}: entry by entry, oldest first"
        );
        if let Some(sev) = fx.get("severities").and_then(Value::as_object) {
            for doc in oldest_first.iter().filter(|d| rule_of(d) == *id) {
                let key = doc["slack"]["audit"]["analysis"]["detection"]["key"]["value"]
                    .as_str()
                    .unwrap();
                assert_eq!(
                    doc["event"]["severity"], sev[key],
                    "{id}: severity for {key}"
                );
            }
        }
        let mut negative = entries(&fx, "negative");
        assert!(!negative.is_empty(), "{id}: no negative case");
        let neg_also = allowed("negative_also");
        for order in 0..2 {
            if order == 1 {
                negative.reverse();
            }
            let fired: BTreeSet<String> = detector()
                .evaluate_batch(&negative)
                .iter()
                .map(rule_of)
                .collect();
            let fired_singly: BTreeSet<String> =
                one_by_one(&negative).iter().map(rule_of).collect();
            for f in fired.union(&fired_singly) {
                assert!(neg_also.contains(f), "{id}: the negative case fired {f}");
            }
        }
    }
}

#[test]
fn ordinary_traffic_gives_no_finding() {
    let mut noise = entries(&fixture("ordinary_traffic"), "negative");
    assert!(detector().evaluate_batch(&noise).is_empty());
    noise.reverse();
    assert!(one_by_one(&noise).is_empty());
}

#[test]
fn findings_carry_the_finding_format() {
    let fx = fixture("session_new_network_and_user_agent");
    let docs = detector().evaluate_batch(&entries(&fx, "positive"));
    let doc = docs
        .iter()
        .find(|d| rule_of(d) == "slack.detect.session_new_network_and_user_agent")
        .unwrap();
    assert_eq!(doc["event"]["kind"], "alert");
    assert_eq!(doc["event"]["dataset"], "slack.analysis");
    assert_eq!(doc["event"]["severity"], 3);
    assert_eq!(doc["event"]["risk_score"], 73);
    assert_eq!(doc["rule"]["category"], "session");
    assert_eq!(doc["rule"]["version"], "1");
    assert_eq!(doc["threat"]["framework"], "MITRE ATT&CK");
    assert_eq!(doc["threat"]["technique"]["id"], json!(["T1539"]));
    assert_eq!(doc["user"]["id"], "U0ALICE");
    let a = &doc["slack"]["audit"]["analysis"];
    assert_eq!(a["finding"]["type"], "detection");
    assert_eq!(a["detection"]["respond"], "invalidate_sessions");
    assert_eq!(a["detection"]["session_ids"], json!(["910001"]));
    assert_eq!(a["contributing_event_ids"].as_array().unwrap().len(), 2);
    assert_eq!(
        doc["related"]["ip"],
        json!(["198.51.100.44", "203.0.113.10"])
    );
    assert!(a.get("reasons").is_none());

    let fx = fixture("role_change_to_admin");
    let doc = &detector().evaluate_batch(&entries(&fx, "positive"))[0];
    assert_eq!(doc["user"]["id"], "U0ADMIN");
    assert_eq!(doc["user"]["target"]["id"], "U0ALICE");
    assert_eq!(doc["user"]["target"]["email"], "alice@example.com");
    assert_eq!(
        doc["related"]["user"],
        json!([
            "U0ADMIN",
            "admin@example.com",
            "U0ALICE",
            "alice@example.com"
        ])
    );
}

#[test]
fn a_rule_fires_once_per_key_per_dedup_period() {
    let base = entries(&fixture("role_change_to_admin"), "positive")[0].clone();
    let mut d = detector();
    let again = |id: &str, dt: i64| {
        let mut e = base.clone();
        e["id"] = json!(id);
        e["date_create"] = json!(base["date_create"].as_i64().unwrap() + dt);
        e
    };
    assert_eq!(d.evaluate(&base).len(), 1);
    assert!(d.evaluate(&base).is_empty(), "the same entry again");
    assert!(
        d.evaluate(&again("later-same-day", 3600)).is_empty(),
        "same target, same day"
    );
    assert_eq!(
        d.evaluate(&again("next-day", 86_400)).len(),
        1,
        "the next period fires again"
    );
}

#[test]
fn state_round_trips_through_serde_without_repeats() {
    let positive = entries(&fixture("brute_force"), "positive");
    let (head, tail) = positive.split_at(6);
    let mut d = detector();
    assert!(d.evaluate_batch(head).is_empty());
    let text = serde_json::to_string(d.state()).unwrap();
    let restored: DetectState = serde_json::from_str(&text).unwrap();
    assert_eq!(&restored, d.state());
    let mut d = detector_with(
        RuleSet::default_rules(),
        Allowlist::default(),
        Some(restored),
    );
    assert_eq!(
        d.evaluate_batch(tail).len(),
        1,
        "the threshold completes after the restart"
    );
    let text = serde_json::to_string(d.state()).unwrap();
    let mut d = detector_with(
        RuleSet::default_rules(),
        Allowlist::default(),
        serde_json::from_str(&text).ok(),
    );
    assert!(
        d.evaluate_batch(&positive).is_empty(),
        "a replay after a restart repeats nothing"
    );
}

#[test]
fn entries_lacking_id_entity_or_date_create_are_evaluated_and_say_so() {
    let bare =
        json!({"action": "role_change_to_owner", "actor": {"type": "user", "user": {"id": "U0X"}}});
    let docs = detector().evaluate(&bare);
    assert_eq!(docs.len(), 1);
    let a = &docs[0]["slack"]["audit"]["analysis"];
    assert_eq!(a["missing_fields"], json!(["id", "entity", "date_create"]));
    assert_eq!(a["detection"]["key"]["type"], "event");
    assert!(a["contributing_event_ids"][0]
        .as_str()
        .unwrap()
        .starts_with("synthetic-"));
}

#[test]
fn allowlists_silence_rules() {
    let fx = fixture("role_change_to_admin");
    let allow = Allowlist::parse("excluded_users = [\"admin@example.com\"]").unwrap();
    let mut d = detector_with(RuleSet::default_rules(), allow, None);
    assert!(
        d.evaluate_batch(&entries(&fx, "positive")).is_empty(),
        "excluded_users applies to every rule"
    );

    let text = DEFAULT_RULES.replacen(
        "allow_apps = []",
        "allow_apps = [\"A0NOTES\", \"A0ADMINTOOL\"]",
        1,
    );
    let rules = RuleSet::parse(&text).unwrap();
    let mut d = detector_with(rules, Allowlist::default(), None);
    assert!(
        d.evaluate_batch(&entries(&fixture("app_installed"), "positive"))
            .is_empty(),
        "a rule's own allow_apps"
    );

    let trusted = Allowlist::parse("trusted_cidrs = [\"198.51.100.0/24\"]").unwrap();
    let mut d = detector_with(RuleSet::default_rules(), trusted, None);
    assert!(
        d.evaluate_batch(&entries(&fixture("session_new_network"), "positive"))
            .is_empty(),
        "a trusted network is not a new network"
    );

    // Slack's own list (here its pasted getItem answer; live, `--slack-allowlist`) trusts a
    // network just as the local file does.
    let slack = Allowlist::parse(
        r#"{"ok": true, "trusted_cidr": ["198.51.100.0/24"], "trusted_asns": []}"#,
    )
    .unwrap();
    let mut d = detector_with(RuleSet::default_rules(), slack, None);
    assert!(
        d.evaluate_batch(&entries(&fixture("session_new_network"), "positive"))
            .is_empty(),
        "a network on Slack's list is not a new network"
    );
}

#[test]
fn without_geoip_networks_are_prefixes_and_the_country_rule_is_off() {
    let mut d = Detector::new(
        Arc::new(RuleSet::default_rules()),
        Arc::new(Allowlist::default()),
        Box::new(NoGeo),
        None,
    );
    assert_eq!(d.off().len(), 1);
    assert_eq!(d.off()[0].rule, "slack.detect.login_new_country");
    assert!(d
        .evaluate_batch(&entries(&fixture("login_new_country"), "positive"))
        .is_empty());
    let docs = d.evaluate_batch(&entries(&fixture("session_new_network"), "positive"));
    assert_eq!(docs.len(), 1);
    let networks = &docs[0]["slack"]["audit"]["analysis"]["detection"]["session"]["networks"];
    assert_eq!(networks, &json!(["198.51.0.0/16", "203.0.0.0/16"]));
}

/// A rules file with one detection rule of the given body.
fn one_rule(body: &str) -> String {
    format!("[[detection]]\nid = \"x.bad\"\nname = \"n\"\ndescription = \"d\"\ncategory = \"c\"\nseverity = \"high\"\nthreat = {{ tactic_id = \"TA0004\", tactic = \"t\", technique_id = \"T1098\", technique = \"t\" }}\n{body}")
}

#[test]
fn interest_is_by_action_and_session() {
    let d = detector();
    assert!(d.interest("role_change_to_admin").rules);
    // The activity-after-deactivation rule takes any action by a deactivated user.
    assert!(d.interest("message_sent").rules);
    assert!(
        d.interest("message_sent").session,
        "session tracking reads every entry's session"
    );
    let only = RuleSet::parse(&one_rule(
        "kind = \"event\"\nactions = [\"role_change_to_admin\"]",
    ))
    .unwrap();
    let d = Detector::new(
        Arc::new(only),
        Arc::new(Allowlist::default()),
        Box::new(NoGeo),
        None,
    );
    assert!(d.interest("role_change_to_admin").any());
    assert!(!d.interest("message_sent").any());
}

#[test]
fn state_stays_within_its_caps() {
    let mut d = detector();
    let login = |i: usize, ip: &str| {
        json!({"id": format!("s{i}-{ip}"), "date_create": 1_717_405_200 + i as i64, "action": "user_login",
               "actor": {"type": "user", "user": {"id": format!("U{i}")}},
               "context": {"ip_address": ip, "session_id": i, "ua": "Mozilla/5.0 (X)"}})
    };
    let batch: Vec<Value> = (0..MAX_SESSIONS + 50)
        .map(|i| login(i, "203.0.113.1"))
        .collect();
    d.evaluate_batch(&batch);
    assert_eq!(
        d.state().sessions.len(),
        MAX_SESSIONS,
        "the least recently seen sessions go first"
    );
    assert!(d
        .state()
        .sessions
        .contains_key(&(MAX_SESSIONS + 49).to_string()));
    assert!(!d.state().sessions.contains_key("0"));
    let fails: Vec<Value> = (0..MAX_EVENTS_PER_KEY + 20)
        .map(|i| json!({"id": format!("f{i}"), "date_create": 1_717_405_200 + 86_400 * i as i64,
                        "action": "user_login_failed", "actor": {"type": "user", "user": {"id": "U0A"}}}))
        .collect();
    d.evaluate_batch(&fails);
    let held = &d.state().keys["slack.detect.brute_force"]["U0A"].a;
    assert!(held.len() <= MAX_EVENTS_PER_KEY, "{}", held.len());
}

/// Each rule has its own key cap: failed logins for more made-up users than the brute-force
/// rules' caps fill those two rules only; a deactivated user's record (another rule) stays,
/// and their login afterwards still fires.
#[test]
fn a_flood_on_one_rule_never_evicts_another_rules_state() {
    use super::state::DEFAULT_MAX_KEYS_PER_RULE;
    const T0: i64 = 1_717_405_200;
    let mut d = detector();
    let deactivated = json!({"id": "d1", "date_create": T0, "action": "user_deactivated",
        "actor": {"type": "user", "user": {"id": "UADMIN"}},
        "entity": {"type": "user", "user": {"id": "UGONE"}}});
    assert!(d.evaluate_batch(&[deactivated]).is_empty());
    let n = DEFAULT_MAX_KEYS_PER_RULE + 60;
    let flood: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("f{i}"), "date_create": T0 + 60 + (i as i64 % 60),
            "action": "user_login_failed", "actor": {"type": "user", "user": {"id": format!("UFAKE{i}")}}}))
        .collect();
    for page in flood.chunks(1000) {
        assert!(d.evaluate_batch(page).is_empty());
    }
    for rule in [
        "slack.detect.brute_force",
        "slack.detect.brute_force_success",
    ] {
        assert_eq!(
            d.state().keys[rule].len(),
            DEFAULT_MAX_KEYS_PER_RULE,
            "{rule}"
        );
        assert_eq!(d.capped()[rule], 60, "{rule}");
    }
    assert!(d.state().keys["slack.detect.activity_after_deactivation"].contains_key("UGONE"));
    let login = json!({"id": "l1", "date_create": T0 + 600, "action": "user_login",
        "actor": {"type": "user", "user": {"id": "UGONE"}}, "context": {"ip_address": "203.0.113.9"}});
    let rules: Vec<String> = d.evaluate_batch(&[login]).iter().map(rule_of).collect();
    assert_eq!(rules, ["slack.detect.activity_after_deactivation"]);

    // A rule's own max_keys.
    let text = DEFAULT_RULES.replacen(
        "count = 10\nwindow = \"5m\"",
        "count = 10\nwindow = \"5m\"\nmax_keys = 3",
        1,
    );
    let mut d = detector_with(RuleSet::parse(&text).unwrap(), Allowlist::default(), None);
    d.evaluate_batch(&flood[..5]);
    assert_eq!(d.state().keys["slack.detect.brute_force"].len(), 3);
    assert_eq!(d.state().keys["slack.detect.brute_force_success"].len(), 5);
    assert_eq!(d.capped().get("slack.detect.brute_force"), Some(&2));
}

#[test]
fn contributing_ids_are_capped_for_big_thresholds() {
    let text = DEFAULT_RULES.replacen(
        "count = 60\nwindow = \"24h\"",
        "count = 150\nwindow = \"24h\"",
        1,
    );
    let mut d = detector_with(RuleSet::parse(&text).unwrap(), Allowlist::default(), None);
    let resets: Vec<Value> = (0..150)
        .map(|i| json!({"id": format!("r{i:03}"), "date_create": 1_717_405_200 + i, "action": "user_session_reset_by_admin",
                        "actor": {"type": "user", "user": {"id": "U0ADMIN"}}, "entity": {"type": "user", "user": {"id": format!("U{i}")}}}))
        .collect();
    let docs = d.evaluate_batch(&resets);
    assert_eq!(docs.len(), 1);
    let a = &docs[0]["slack"]["audit"]["analysis"];
    assert_eq!(a["contributing_event_ids"].as_array().unwrap().len(), 100);
    assert_eq!(a["detection"]["event_count"], 150);
}

#[test]
fn bad_rules_name_the_rule_and_the_field() {
    let err = |body: &str| RuleSet::parse(&one_rule(body)).unwrap_err();
    let cases = [
        ("kind = \"event\"\nactions = [\"a\"]\nall = [{ field = \"details.new_scope\", contains = \"admin\" }]", "all[0]: field"),
        ("kind = \"event\"\nactions = [\"a\"]\nrespond = \"lock_account\"", "respond"),
        ("kind = \"event\"\nactions = [\"a\"]\nwher = []", "wher"),
        ("kind = \"events\"\nactions = [\"a\"]", "kind"),
        ("kind = \"threshold\"\nactions = [\"a\"]\ncount = 5", "window"),
        ("kind = \"event\"\nactions = [\"a\"]\nwindow = \"5m\"", "window"),
        ("kind = \"sequence\"\nwithin = \"1h\"\nfirst = { actions = [\"a\"] }", "then"),
        ("kind = \"event\"\nactions = []", "actions"),
        ("kind = \"session\"\ncheck = \"new_city\"", "check"),
        ("kind = \"event\"\nactions = [\"a\"]\nkey = \"team\"", "key"),
        ("kind = \"event\"\nactions = [\"a\"]\nmax_keys = 10", "max_keys"),
        ("kind = \"threshold\"\nactions = [\"a\"]\ncount = 5\nwindow = \"5m\"\nmax_keys = 0", "max_keys"),
    ];
    for (body, field) in cases {
        let e = err(body);
        assert!(
            e.contains("\"x.bad\"") && e.contains(field),
            "{body:?} gave {e:?}"
        );
    }
    assert!(RuleSet::parse(&one_rule(
        "kind = \"event\"\nactions = [\"a\"]\nrespond = \"reset_sessions\""
    ))
    .is_ok());
}

#[test]
fn the_default_pack_covers_every_action_the_issue_lists() {
    use super::model::RuleKind;
    let rules = RuleSet::parse(DEFAULT_RULES).unwrap();
    let covered: BTreeSet<String> = rules
        .detections
        .rules
        .iter()
        .flat_map(|r| match &r.kind {
            RuleKind::Event { matcher, .. } | RuleKind::Threshold { matcher, .. } => {
                matcher.actions.clone()
            }
            RuleKind::Sequence { first, then, .. } => first
                .matcher
                .actions
                .union(&then.matcher.actions)
                .cloned()
                .collect(),
            RuleKind::Session { .. } => BTreeSet::new(),
        })
        .collect();
    let listed = [
        "role_change_to_admin",
        "role_change_to_owner",
        "owner_transferred",
        "service_owner_transferred",
        "permissions_assigned",
        "role_change_to_user",
        "pref.sso_setting_changed",
        "pref.two_factor_auth_changed",
        "idp_configuration_added",
        "idp_configuration_deleted",
        "idp_prod_configuration_updated",
        "native_dlp_rule_deactivated",
        "native_dlp_violation_deleted",
        "ekm_unenrolled",
        "ekm_logging_config_set",
        "ekm_slackbot_unenroll_notification_sent",
        "intune_disabled",
        "barrier_deleted",
        "barrier_updated",
        "legal_hold_policy_entities_deleted",
        "legal_hold_policy_exclusion_added",
        "legal_hold_policy_released",
        "legal_hold_policy_updated",
        "app_installed",
        "app_approved",
        "org_app_workspace_added",
        "app_scopes_expanded",
        "app_resources_added",
        "app_resources_granted",
        "bot_token_upgraded",
        "app_restricted",
        "app_uninstalled",
        "org_app_workspace_removed",
        "organization_created",
        "organization_deleted",
        "manual_export_started",
        "channels_export_started",
        "corporate_exports_approved",
        "private_channel_converted_to_public",
        "file_malicious_content_detected",
        "user_login_failed",
        "user_login",
        "user_deactivated",
        "user_session_reset_by_admin",
        "bulk_session_reset_by_admin",
        "user_session_invalidated",
    ];
    for action in listed {
        assert!(
            covered.contains(action),
            "no default rule looks at {action}"
        );
    }
    let responders: Vec<&str> = rules
        .detections
        .rules
        .iter()
        .filter(|r| r.respond.is_some())
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        responders,
        [
            "slack.detect.activity_after_deactivation",
            "slack.detect.session_new_network_and_user_agent"
        ]
    );
}

/// `n` entries of ordinary traffic: 500 users, each with one session and network, logins,
/// logouts, downloads, uploads, channel joins and a failed login now and then; one a second.
fn ordinary(n: usize) -> Vec<Value> {
    let actions = [
        "file_downloaded",
        "file_downloaded",
        "file_downloaded",
        "user_channel_join",
        "file_uploaded",
        "user_login",
        "user_logout",
        "file_downloaded",
        "user_channel_join",
        "user_login_failed",
    ];
    (0..n)
        .map(|i| {
            let u = (i * 7919) % 500;
            let user = json!({"id": format!("U{u:05}"), "name": format!("User {u}"),
                              "email": format!("user{u}@example.com"), "team": "E0ORG"});
            json!({"id": format!("ev-{i:08}"), "date_create": 1_717_405_200 + i as i64,
                   "action": actions[i % actions.len()],
                   "actor": {"type": "user", "user": user},
                   "context": {"location": {"type": "enterprise", "id": "E0ORG", "name": "Example", "domain": "example"},
                               "ua": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/125.0.0.0 Safari/537.36",
                               "ip_address": format!("203.{}.{}.10", u % 200, u % 250), "session_id": (900_000 + u).to_string()},
                   "entity": {"type": "file", "file": {"id": format!("F{i:08}"), "name": "report.pdf", "filetype": "pdf", "title": "Q3"}}})
        })
        .collect()
}

/// The cost of the detection pass on ordinary traffic, in pages of 1,000 newest first as a
/// backfill reads them: `cargo test --lib detect::tests::cost -- --ignored --nocapture`
/// (with `CARGO_PROFILE_DEV_OPT_LEVEL=2` for figures worth quoting). Prints, asserts nothing
/// about time.
#[test]
#[ignore]
fn cost_per_ordinary_entry() {
    let n = 200_000;
    let entries = ordinary(n);
    let texts: Vec<String> = entries.iter().map(Value::to_string).collect();
    let t = std::time::Instant::now();
    let parsed: usize = texts
        .iter()
        .map(|t| serde_json::from_str::<Value>(t).map_or(0, |_| 1))
        .sum();
    let parse_ns = t.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(parsed, n);
    // The best of three runs, each with a fresh detector: the machine is shared.
    let best = |run: &dyn Fn() -> usize| {
        (0..3)
            .map(|_| {
                let t = std::time::Instant::now();
                let found = run();
                (t.elapsed().as_nanos() as f64 / n as f64, found)
            })
            .fold((f64::MAX, 0), |a, b| if b.0 < a.0 { b } else { a })
    };
    let (eval_ns, found) = best(&|| {
        let mut d = detector();
        entries
            .chunks(1000)
            .rev()
            .map(|page| d.evaluate_batch(page).len())
            .sum()
    });
    let d = detector();
    let items: Vec<super::Item<'_>> = entries.iter().map(|e| item(&d, e)).collect();
    let light = items
        .iter()
        .filter(|i| matches!(i, super::Item::Light(_)))
        .count();
    let (light_ns, found_light) = best(&|| {
        let mut d = detector();
        items
            .chunks(1000)
            .rev()
            .map(|page| d.evaluate_items(page).len())
            .sum()
    });
    println!(
        "detection: {eval_ns:.0} ns per ordinary entry as a value ({found} findings); \
         {light_ns:.0} ns as the pipeline hands it ({light} of {n} light, {found_light} findings); \
         parsing the entry into a value: {parse_ns:.0} ns"
    );
}

/// What the pipeline hands the engine for `entry`: what the mapper read, unless a rule needs
/// the entry or the entry lacks an id or an integer `date_create`.
fn item<'a>(d: &Detector, entry: &'a Value) -> super::Item<'a> {
    use super::{Item, Light};
    let s = |path: &str| {
        entry
            .pointer(path)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let action = s("/action").unwrap_or("");
    let (Some(id), Some(at)) = (s("/id"), entry["date_create"].as_i64()) else {
        return Item::Entry(entry);
    };
    if action.is_empty() || d.needs_entry(action) || entry["context"]["session_id"].is_number() {
        return Item::Entry(entry);
    }
    Item::Light(Light {
        action,
        id,
        at,
        has_entity: entry["entity"].is_object(),
        actor: [
            s("/actor/user/id"),
            s("/actor/user/email"),
            s("/actor/user/name"),
        ],
        ip: s("/context/ip_address").and_then(|ip| ip.parse().ok()),
        ua: entry["context"]["ua"]
            .as_str()
            .filter(|u| !u.trim().is_empty()),
        session: s("/context/session_id").filter(|s| *s != "0"),
        by_app: !entry["context"]["app"].is_null(),
    })
}

/// Entries of every fixture as the pipeline hands them over give the same documents as the
/// entries themselves, in both orders; ordinary traffic goes over the light path.
#[test]
fn what_the_mapper_read_gives_what_the_entry_gives() {
    let mut all: Vec<Value> = Vec::new();
    for file in std::fs::read_dir(FIXTURES).unwrap() {
        let fx: Value =
            serde_json::from_str(&std::fs::read_to_string(file.unwrap().path()).unwrap()).unwrap();
        for part in ["positive", "negative"] {
            let mut list = entries(&fx, part);
            // Sessions as strings too, so the light path sees them.
            for e in &mut list {
                if let Some(n) = e["context"]["session_id"].as_i64() {
                    e["context"]["session_id"] = json!(n.to_string());
                }
            }
            all.extend(list);
        }
    }
    let d = detector();
    let light = all
        .iter()
        .filter(|e| matches!(item(&d, e), super::Item::Light(_)))
        .count();
    assert!(light * 2 > all.len(), "{light} of {} light", all.len());
    for order in 0..2 {
        if order == 1 {
            all.reverse();
        }
        let want = detector().evaluate_batch(&all);
        assert!(want.len() > 20, "{}", want.len());
        let mut d = detector();
        let items: Vec<super::Item<'_>> = all.iter().map(|e| item(&d, e)).collect();
        assert_eq!(d.evaluate_items(&items), want);
    }
}
