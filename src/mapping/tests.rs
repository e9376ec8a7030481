//! Unit tests of the mapping, one behaviour each. Whole-document expectations live in the
//! golden files under `tests/fixtures/mapping/`; these pin single rules.

use super::command::{map_stream, Stats};
use super::*;
use serde_json::json;

fn fetched() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 123_000_000).unwrap()
}

fn mapper() -> Mapper {
    Mapper::new(&MappingConfig::default()).unwrap()
}

fn map(entry: Value) -> Value {
    mapper().map_entry(&entry.to_string(), fetched())
}

fn errors(doc: &Value) -> Vec<String> {
    doc.pointer("/error/message")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|m| m.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn login() -> Value {
    json!({
        "id": "e1", "date_create": 1_521_214_343, "action": "user_login",
        "actor": {"type": "user", "user": {"id": "W1", "name": "Ann", "email": "ann@example.com", "team": "T1"}},
        "entity": {"type": "user", "user": {"id": "W1", "name": "Ann", "email": "ann@example.com"}},
        "context": {"location": {"type": "workspace", "id": "T1", "name": "WS", "domain": "ws"},
                    "ua": "UA", "ip_address": "192.0.2.1", "session_id": 42}
    })
}

#[test]
fn maps_user_login() {
    let doc = map(login());
    assert_eq!(
        doc,
        json!({
            "@timestamp": "2018-03-16T15:32:23.000Z",
            "ecs": {"version": "8.11.0"},
            "event": {"id": "e1", "action": "user_login", "kind": "event", "module": "slack", "dataset": "slack.audit",
                      "created": "2023-11-14T22:13:20.123Z", "category": ["authentication", "session"],
                      "type": ["info", "start"], "outcome": "success"},
            "user": {"id": "W1", "full_name": "Ann", "email": "ann@example.com"},
            "related": {"user": ["W1", "ann@example.com"], "ip": ["192.0.2.1"]},
            "source": {"ip": "192.0.2.1", "address": "192.0.2.1"},
            "user_agent": {"original": "UA", "name": "Other", "device": {"name": "Other"}},
            "slack": {"audit": {
                "actor": {"type": "user", "user": {"team": "T1"}},
                "entity": {"entity_type": "user", "id": "W1", "name": "Ann", "email": "ann@example.com"},
                "context": {"type": "workspace", "id": "T1", "name": "WS", "domain": "ws", "session_id": "42"}
            }},
            "tags": ["forwarded", "slack-audit"],
            "data_stream": {"type": "logs", "dataset": "slack.audit", "namespace": "default"}
        })
    );
}

#[test]
fn related_user_holds_id_then_email_once() {
    let mut e = login();
    e["actor"]["user"]["email"] = json!("W1");
    assert_eq!(map(e)["related"]["user"], json!(["W1"]));
}

#[test]
fn every_entity_kind_is_flattened_the_same_way() {
    for kind in [
        "huddle",
        "canvas",
        "list",
        "workflow_v2",
        "account_type_role",
        "kind_from_2030",
    ] {
        let mut e = login();
        e["entity"] =
            json!({"type": kind, kind: {"id": "X1", "name": "thing", "extra": {"deep": true}}});
        let doc = map(e);
        assert_eq!(
            doc["slack"]["audit"]["entity"],
            json!({"entity_type": kind, "id": "X1", "name": "thing", "extra": {"deep": true}}),
            "{kind}"
        );
        assert!(errors(&doc).is_empty(), "{kind}: {:?}", errors(&doc));
    }
}

#[test]
fn entity_without_a_type_keeps_its_sub_objects_by_name() {
    let mut e = login();
    e["entity"] = json!({"type": "", "app": {"id": "A1"}, "user": {"id": "U1"}});
    let doc = map(e);
    assert_eq!(
        doc["slack"]["audit"]["entity"],
        json!({"app": {"id": "A1"}, "user": {"id": "U1"}})
    );
    assert!(errors(&doc).is_empty());
}

#[test]
fn unknown_keys_are_kept_at_every_level() {
    let mut e = login();
    e["new_attribute"] = json!("top");
    e["actor"]["new_attribute"] = json!("actor");
    e["entity"]["new_attribute"] = json!("entity");
    e["context"]["new_attribute"] = json!("context");
    e["context"]["location"]["new_attribute"] = json!("location");
    e["context"]["app"] = json!({"id": "A1", "scopes": ["chat:write"]});
    let doc = map(e);
    let audit = &doc["slack"]["audit"];
    assert_eq!(audit["new_attribute"], "top");
    assert_eq!(audit["actor"]["new_attribute"], "actor");
    assert_eq!(audit["entity"]["new_attribute"], "entity");
    assert_eq!(audit["context"]["new_attribute"], "context");
    assert_eq!(audit["context"]["location"]["new_attribute"], "location");
    assert_eq!(audit["context"]["app"]["scopes"], json!(["chat:write"]));
    assert!(errors(&doc).is_empty(), "{:?}", errors(&doc));
}

#[test]
fn millisecond_action_timestamp_overrides_date_create() {
    let mut e = login();
    e["details"] = json!({"action_timestamp": 1_673_631_621_862_u64, "reason": ["asn"]});
    let doc = map(e);
    assert_eq!(doc["@timestamp"], "2023-01-13T17:40:21.862Z");
    assert_eq!(
        doc["slack"]["audit"]["details"],
        json!({"reason": ["asn"]}),
        "action_timestamp is removed"
    );
}

#[test]
fn microsecond_action_timestamp_keeps_microseconds() {
    let mut e = login();
    e["details"] = json!({"action_timestamp": 1_689_249_716_345_113_u64});
    assert_eq!(map(e)["@timestamp"], "2023-07-13T12:01:56.345113Z");
}

#[test]
fn unreadable_action_timestamp_is_kept_and_reported() {
    let mut e = login();
    e["details"] = json!({"action_timestamp": "yesterday"});
    let doc = map(e);
    assert_eq!(doc["@timestamp"], "2018-03-16T15:32:23.000Z");
    assert_eq!(
        doc["slack"]["audit"]["details"]["action_timestamp"],
        "yesterday"
    );
    assert!(
        errors(&doc)[0].starts_with("details.action_timestamp: "),
        "{:?}",
        errors(&doc)
    );
}

#[test]
fn missing_date_create_uses_the_fetch_time_and_says_so() {
    let mut e = login();
    e.as_object_mut().unwrap().remove("date_create");
    let doc = map(e);
    assert_eq!(doc["@timestamp"], "2023-11-14T22:13:20.123Z");
    assert_eq!(
        errors(&doc),
        ["date_create: missing; @timestamp is the fetch time (event.created)"]
    );
    assert_eq!(doc["user"]["id"], "W1", "the rest is still mapped");
}

#[test]
fn date_create_in_a_string_is_read_and_reported() {
    let mut e = login();
    e["date_create"] = json!("1521214343");
    let doc = map(e);
    assert_eq!(doc["@timestamp"], "2018-03-16T15:32:23.000Z");
    assert_eq!(
        errors(&doc),
        [r#"date_create: expected a number, got a string ("1521214343"); read it anyway"#]
    );
}

#[test]
fn session_id_is_always_a_string() {
    for (given, expected) in [
        (json!(1_656_410_836_837_u64), json!("1656410836837")),
        (json!("847288190092"), json!("847288190092")),
        (json!(null), Value::Null),
    ] {
        let mut e = login();
        e["context"]["session_id"] = given;
        let doc = map(e);
        assert_eq!(doc["slack"]["audit"]["context"]["session_id"], expected);
        assert!(errors(&doc).is_empty());
    }
}

#[test]
fn json_encoded_user_lists_are_decoded_quietly() {
    let mut e = login();
    e["details"] = json!({"succeeded_users": "[\"W111\", \"W222\"]", "failed_users": ["W3"]});
    let doc = map(e);
    assert_eq!(
        doc["slack"]["audit"]["details"],
        json!({"succeeded_users": ["W111", "W222"], "failed_users": ["W3"]})
    );
    assert!(errors(&doc).is_empty());
}

#[test]
fn user_list_string_that_is_not_json_is_kept_and_reported() {
    let mut e = login();
    e["details"] = json!({"succeeded_users": "W111, W222"});
    let doc = map(e);
    assert_eq!(
        doc["slack"]["audit"]["details"]["succeeded_users"],
        "W111, W222"
    );
    assert_eq!(
        errors(&doc),
        ["details.succeeded_users: a string that is not a JSON list; kept as text"]
    );
}

#[test]
fn empty_or_invalid_ip_leaves_source_out_without_error() {
    for ip in ["", "1.23.45.678", "unknown"] {
        let mut e = login();
        e["context"]["ip_address"] = json!(ip);
        let doc = map(e);
        assert!(doc.get("source").is_none(), "{ip}");
        assert!(doc["related"].get("ip").is_none(), "{ip}");
        assert_eq!(
            doc["slack"]["audit"]["context"]
                .get("ip_address")
                .and_then(Value::as_str),
            (!ip.is_empty()).then_some(ip)
        );
        assert!(errors(&doc).is_empty(), "{ip}");
    }
}

#[test]
fn ipv6_source_is_mapped() {
    let mut e = login();
    e["context"]["ip_address"] = json!("2001:db8::1");
    assert_eq!(map(e)["source"]["ip"], "2001:db8::1");
}

#[test]
fn previous_address_and_agent_follow_elastic() {
    let mut e = login();
    e["details"] = json!({"previous_ip_address": "175.16.199.64", "previous_ua": "Slack/1"});
    let d = map(e)["slack"]["audit"]["details"].clone();
    assert_eq!(
        d,
        json!({"previous_ip_address": "175.16.199.64", "previous_user_agent": "Slack/1"})
    );
    let mut e = login();
    e["details"] = json!({"previous_ip_address": "nope", "previous_ua": "", "location": "x"});
    let doc = map(e);
    assert_eq!(doc["slack"]["audit"]["details"], json!({"location": "x"}));
    assert!(errors(&doc).is_empty());
}

#[test]
fn md5_hash_goes_to_file_hash_only_for_file_entities() {
    let mut e = login();
    e["action"] = json!("file_malicious_content_detected");
    e["entity"] =
        json!({"type": "file", "file": {"id": "F1", "name": "x.zip", "filetype": "", "title": ""}});
    e["details"] = json!({"md5_hash": "7e2b"});
    let doc = map(e);
    assert_eq!(doc["file"], json!({"hash": {"md5": "7e2b"}}));
    assert_eq!(doc["related"]["hash"], json!(["7e2b"]));
    assert_eq!(doc["slack"]["audit"]["details"], json!({"md5": "7e2b"}));
    assert_eq!(
        doc["slack"]["audit"]["entity"],
        json!({"entity_type": "file", "id": "F1", "name": "x.zip"})
    );
    assert_eq!(doc["event"]["category"], json!(["file", "malware"]));
    let mut e = login();
    e["details"] = json!({"md5_hash": "7e2b"});
    let doc = map(e);
    assert!(doc.get("file").is_none());
    assert_eq!(doc["related"]["hash"], json!(["7e2b"]));
}

#[test]
fn url_private_is_split_and_kept() {
    let mut e = login();
    e["action"] = json!("file_downloaded");
    e["details"] = json!({"url_private": "https://example.com/"});
    let doc = map(e);
    assert_eq!(
        doc["url"],
        json!({"original": "https://example.com/", "scheme": "https", "domain": "example.com", "path": "/"})
    );
    assert_eq!(
        doc["slack"]["audit"]["details"]["url_private"],
        "https://example.com/"
    );
    assert_eq!(doc["event"]["type"], json!(["access"]));
}

#[test]
fn relative_url_private_is_reported() {
    let mut e = login();
    e["details"] = json!({"url_private": "/files/x"});
    let doc = map(e);
    assert!(doc.get("url").is_none());
    assert_eq!(
        errors(&doc),
        ["details.url_private: not an absolute URL; url.* left out"]
    );
}

#[test]
fn duplicate_keys_take_the_last_value() {
    let raw = r#"{"id":"d","date_create":1,"action":"x","details":{"is_internal_integration":false,"is_internal_integration":true}}"#;
    let doc = mapper().map_entry(raw, fetched());
    assert_eq!(
        doc["slack"]["audit"]["details"]["is_internal_integration"],
        true
    );
    assert!(errors(&doc).is_empty());
}

#[test]
fn odd_values_are_mapped_as_far_as_they_go_and_each_is_named() {
    let raw = json!({"id": 7, "date_create": 1, "action": ["user_login"], "actor": "someone",
                     "entity": {"type": "user", "user": "U1"}, "context": {"ua": 5, "session_id": {"a": 1}}});
    let doc = map(raw);
    assert_eq!(doc["event"]["id"], "7");
    assert_eq!(doc["event"]["type"], json!(["info"]));
    let errs = errors(&doc);
    for field in [
        "id:",
        "action:",
        "actor:",
        "entity.user:",
        "context.ua:",
        "context.session_id:",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(field)),
            "{field} not in {errs:?}"
        );
    }
    assert_eq!(
        doc["event"]["kind"], "event",
        "odd values are not a pipeline error"
    );
}

#[test]
fn not_json_is_a_pipeline_error_with_the_original() {
    let doc = mapper().map_entry("this is not json", fetched());
    assert_eq!(doc["event"]["kind"], "pipeline_error");
    assert_eq!(doc["event"]["original"], "this is not json");
    assert_eq!(
        doc["tags"],
        json!(["forwarded", "slack-audit", "preserve_original_event"])
    );
    assert_eq!(doc["@timestamp"], "2023-11-14T22:13:20.123Z");
    assert!(errors(&doc)[0].starts_with("entry: not JSON"));
}

#[test]
fn json_that_is_not_an_object_is_a_pipeline_error() {
    for raw in ["[1,2]", "\"x\"", "12", "null", ""] {
        let doc = mapper().map_entry(raw, fetched());
        assert_eq!(doc["event"]["kind"], "pipeline_error", "{raw}");
    }
}

#[test]
fn invalid_utf8_is_a_pipeline_error() {
    let doc = mapper().map_entry_bytes(b"{\"id\":\"\xff\"}", fetched());
    assert_eq!(doc["event"]["kind"], "pipeline_error");
    assert!(errors(&doc)[0].starts_with("entry: not UTF-8"));
}

#[test]
fn preserve_original_event_keeps_the_raw_entry_and_tags_it() {
    let config = MappingConfig {
        preserve_original_event: true,
        ..MappingConfig::default()
    };
    let raw = login().to_string();
    let doc = Mapper::new(&config).unwrap().map_entry(&raw, fetched());
    assert_eq!(doc["event"]["original"], raw.as_str());
    assert_eq!(
        doc["tags"],
        json!(["forwarded", "slack-audit", "preserve_original_event"])
    );
    assert!(
        map(login())["event"].get("original").is_none(),
        "off by default"
    );
}

#[test]
fn tags_and_namespace_are_configurable() {
    let args = MappingArgs {
        tags: vec![" a ".into(), "".into(), "b".into()],
        namespace: "prod".into(),
        ..Default::default()
    };
    let config = MappingConfig::from_args(&args).unwrap();
    let doc = Mapper::new(&config)
        .unwrap()
        .map_entry(&login().to_string(), fetched());
    assert_eq!(doc["tags"], json!(["a", "b"]));
    assert_eq!(doc["data_stream"]["namespace"], "prod");
    let none = MappingConfig {
        tags: vec![],
        ..config
    };
    assert!(Mapper::new(&none)
        .unwrap()
        .map_entry(&login().to_string(), fetched())
        .get("tags")
        .is_none());
}

#[test]
fn bad_namespaces_are_refused_at_start() {
    for ns in ["", "Prod", "a-b", "a b", "a/b", &"x".repeat(101)] {
        let args = MappingArgs {
            namespace: ns.to_string(),
            ..Default::default()
        };
        let e = MappingConfig::from_args(&args).unwrap_err();
        assert!(e.to_string().starts_with("--namespace: "), "{e}");
    }
}

#[test]
fn empty_values_are_dropped_everywhere() {
    let mut e = login();
    e["details"] =
        json!({"a": "", "b": [], "c": {}, "d": null, "e": [""], "f": {"g": ""}, "keep": 0});
    e["actor"]["user"]["name"] = json!("");
    let doc = map(e);
    assert_eq!(doc["slack"]["audit"]["details"], json!({"keep": 0}));
    assert!(doc["user"].get("full_name").is_none());
}

#[test]
fn geo_and_asn_come_from_the_databases() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = testdb::write_test_databases(dir.path());
    let config = MappingConfig {
        geoip_city: Some(city),
        geoip_asn: Some(asn),
        ..MappingConfig::default()
    };
    let mut m = Mapper::new(&config).unwrap();
    let mut e = login();
    e["context"]["ip_address"] = json!("81.2.69.143");
    let doc = m.map_entry(&e.to_string(), fetched());
    assert_eq!(doc["source"]["geo"]["city_name"], "London");
    assert_eq!(doc["source"]["geo"]["region_iso_code"], "GB-ENG");
    assert_eq!(
        doc["source"]["as"],
        json!({"number": 20712, "organization": {"name": "Andrews & Arnold Ltd"}})
    );
}

#[test]
fn missing_database_is_a_config_error() {
    let config = MappingConfig {
        geoip_asn: Some("/nonexistent/asn.mmdb".into()),
        ..MappingConfig::default()
    };
    let e = Mapper::new(&config).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--geoip-asn: cannot open /nonexistent/asn.mmdb"),
        "{e}"
    );
}

fn run_stream(input: &str) -> (Vec<Value>, Stats) {
    let mut out = Vec::new();
    let stats = map_stream(&mut mapper(), input.as_bytes(), &mut out, fetched).unwrap();
    let docs = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (docs, stats)
}

#[test]
fn map_command_reads_entries_and_responses_in_order() {
    let mut second = login();
    second["id"] = json!("e2");
    let response = json!({"ok": true, "entries": [second, {"id": "e3", "date_create": 1, "action": "x"}], "response_metadata": {"next_cursor": ""}});
    let input = format!("{}\n\nnot json\n{}\r\n", login(), response);
    let (docs, stats) = run_stream(&input);
    let ids: Vec<_> = docs.iter().map(|d| d["event"]["id"].clone()).collect();
    assert_eq!(ids, [json!("e1"), Value::Null, json!("e2"), json!("e3")]);
    assert_eq!(docs[1]["event"]["original"], "not json");
    assert_eq!(
        stats,
        Stats {
            documents: 4,
            pipeline_errors: 1
        }
    );
}

#[test]
fn map_command_reads_a_pretty_printed_response() {
    let response =
        json!({"entries": [login(), {"id": "e9", "date_create": 2, "action": "user_logout"}]});
    let pretty = serde_json::to_string_pretty(&response).unwrap();
    let (docs, stats) = run_stream(&format!("{pretty}\n{}\n", login()));
    assert_eq!(stats.documents, 3);
    assert_eq!(docs[1]["event"]["id"], "e9");
    assert_eq!(docs[2]["event"]["id"], "e1");
    assert_eq!(stats.pipeline_errors, 0);
}

#[test]
fn map_command_survives_a_truncated_line() {
    // The cut line ends inside an object; the complete lines after it must still map.
    let input = format!("{{\"id\":\"cut\",\"actor\":{{\n{}\n{}\n", login(), login());
    let (docs, stats) = run_stream(&input);
    assert_eq!(
        stats,
        Stats {
            documents: 3,
            pipeline_errors: 1
        }
    );
    assert_eq!(docs[0]["event"]["kind"], "pipeline_error");
    assert_eq!(docs[1]["event"]["id"], "e1");
    let cut_in_string = format!("{{\"id\":\"cu\n{}\n", login());
    let (docs, _) = run_stream(&cut_in_string);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["event"]["id"], "e1");
}

#[test]
fn map_command_maps_a_pretty_printed_entry() {
    let pretty = serde_json::to_string_pretty(&login()).unwrap();
    let (docs, stats) = run_stream(&pretty);
    assert_eq!(
        stats,
        Stats {
            documents: 1,
            pipeline_errors: 0
        }
    );
    assert_eq!(docs[0]["user"]["id"], "W1");
}

/// The poller holds a `Mapper` across `.await`s in a spawned task.
#[test]
fn mapper_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Mapper>();
}

#[test]
fn a_pipeline_error_keeps_the_entry_id_when_it_can_be_read() {
    use super::render::recover_id;
    assert_eq!(recover_id(r#"{"id":"e1","date_create":17"#), Some("e1"));
    assert_eq!(
        recover_id(r#"{ "date_create": 1, "id" : "e2", "x": tru }"#),
        Some("e2")
    );
    // Only the entry's own id: not the actor's, not one inside a string or an array.
    assert_eq!(recover_id(r#"{"actor":{"id":"W1"},"x":"#), None);
    assert_eq!(recover_id(r#"{"note":"\"id\":\"no\"","#), None);
    assert_eq!(recover_id(r#"[{"id":"e3"}"#), None);
    assert_eq!(recover_id(r#"{"id":17}"#), None);
    assert_eq!(recover_id(r#"{"id":"a\u0041"}"#), None);
    assert_eq!(recover_id("not json"), None);
    let mut mapper = mapper();
    let doc = mapper.map_entry_bytes(b"{\"id\":\"e4\",\"x\":\"\xff\"}", Utc::now());
    assert_eq!(doc["event"]["kind"], "pipeline_error");
    assert_eq!(doc["event"]["id"], "e4");
    let doc = mapper.map_entry(r#"{"id":"e5","date_create":"#, Utc::now());
    assert_eq!(doc["event"]["id"], "e5");
    let doc = mapper.map_entry("[1]", Utc::now());
    assert!(doc["event"].get("id").is_none());
}
