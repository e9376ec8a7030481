//! Integration tests: the ECS mapping against Elastic's pipeline test data, our own golden
//! fixtures, the public SDK fixtures, and property tests (any input → one document).
//!
//! Elastic's data (Elastic License 2.0) and the SDK fixtures are read from `shared/` beside the
//! checkout and never copied into the project. A bare clone has no `shared/`: the tests that
//! read it print that they were skipped and pass, and `conformance_with_our_own_entries` makes
//! the same field-for-field comparison over entries and expected documents we wrote ourselves
//! (`tests/fixtures/mapping/conformance.*`). GeoIP databases are written by the test itself
//! (`src/mapping/testdb.rs`), so `cargo test` needs no download.

#[path = "../../src/mapping/testdb.rs"]
mod testdb;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use slack_audit_source::mapping::command::map_stream;
use slack_audit_source::mapping::{Mapper, MappingConfig};
use std::path::{Path, PathBuf};

/// A fixed fetch time, so documents are reproducible.
fn fetched() -> DateTime<Utc> {
    DateTime::from_timestamp(1_763_700_000, 0).unwrap()
}

/// The variable that names `shared/` explicitly (used alone when set, even if it does not
/// exist, so the skip path can be tried on a machine that has the data).
const SHARED_DIR_VAR: &str = "SLACK_AUDIT_SHARED_DIR";

/// `shared/`: `$SLACK_AUDIT_SHARED_DIR` when set; otherwise beside the checkout (CI) or at
/// `/work/shared` (a worktree). `None`, after a note on stderr naming `test`, when it is not
/// there: the data is not ours to ship, so a bare clone skips what needs it.
fn shared_dir(test: &str) -> Option<PathBuf> {
    let candidates = match std::env::var_os(SHARED_DIR_VAR) {
        Some(dir) => vec![PathBuf::from(dir)],
        None => vec![
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
            PathBuf::from("/work/shared"),
        ],
    };
    let found = candidates
        .iter()
        .find(|d| d.join("fixtures").is_dir())
        .cloned();
    if found.is_none() {
        eprintln!(
            "{test}: SKIPPED: no shared/fixtures at {candidates:?} (set {SHARED_DIR_VAR} to the \
             shared/ folder to run it); tests/fixtures/mapping covers the same fields"
        );
    }
    found
}

/// A mapper with our test databases (kept alive by the returned directory).
fn mapper_with_databases(config: MappingConfig) -> (Mapper, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = testdb::write_test_databases(dir.path());
    let config = MappingConfig {
        geoip_city: Some(city),
        geoip_asn: Some(asn),
        ..config
    };
    (Mapper::new(&config).unwrap(), dir)
}

fn remove(doc: &mut Value, path: &[&str]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = doc;
    for p in parents {
        cur = cur.get_mut(*p)?;
    }
    cur.as_object_mut()?.remove(*last)
}

fn set(doc: &mut Value, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().unwrap();
    let mut cur = doc;
    for p in parents {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(p.to_string())
            .or_insert_with(|| json!({}));
    }
    cur.as_object_mut().unwrap().insert(last.to_string(), value);
}

/// Elastic's expected documents, brought to 1.24.0 as `docs/mapping.md` says: every
/// document gains `slack.audit.actor` (the actor minus `user.{id,name,email}`), and the one
/// with `details.url_private` gains `url.*` and keeps `slack.audit.details.url_private`.
fn upgrade_to_1_24(expected: &mut Value, entry: &Value) {
    let mut actor = json!({ "type": entry["actor"]["type"] });
    if let Some(team) = entry["actor"]["user"].get("team") {
        actor["user"] = json!({ "team": team });
    }
    set(expected, &["slack", "audit", "actor"], actor);
    if let Some(raw) = entry["details"]["url_private"].as_str() {
        let u = url::Url::parse(raw).unwrap();
        let parts = json!({"original": raw, "scheme": u.scheme(), "domain": u.host_str().unwrap(), "path": u.path()});
        set(expected, &["url"], parts);
        set(
            expected,
            &["slack", "audit", "details", "url_private"],
            raw.into(),
        );
    }
}

/// Our six documents equal Elastic's expected ones (1.24.0), field for field. Differences by
/// design: fields Fleet adds in Elastic (`event.created/module/dataset`, `data_stream`) are
/// removed before comparing; `source.as` comes from our own ASN database and is checked
/// against it; `user_agent.version` is matched by Elastic's own `dynamic_fields` pattern,
/// because Elasticsearch's UA rules differ from uap-core's in version details ("23.0.").
/// Skipped, with a note, where `shared/` is absent.
#[test]
fn conformance_with_elastic_slack_1_24_0() {
    let Some(shared) = shared_dir("conformance_with_elastic_slack_1_24_0") else {
        return;
    };
    let dir = shared.join("fixtures/elastic-slack/data_stream/audit/_dev/test/pipeline");
    let input = std::fs::read_to_string(dir.join("test-audit.log")).unwrap();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("test-audit.log-expected.json")).unwrap(),
    )
    .unwrap();
    let version_pattern = dynamic_version_pattern(
        &std::fs::read_to_string(dir.join("test-common-config.yml")).unwrap(),
    );
    let expected = expected["expected"].as_array().unwrap();
    let lines: Vec<&str> = input.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 6, "Elastic's test data has six entries");
    compare_documents(&lines, expected, Some(&version_pattern));
}

/// The same comparison over entries and expected documents we wrote ourselves, so a clone
/// without `shared/` still checks every part of the mapping against a written expectation:
/// actor, entity kinds (user, channel, file, app, workspace, enterprise, workflow, and one
/// Slack has not invented), context (session ids, user agents of browsers, apps and bots,
/// unparseable agents), location (enterprise, workspace), GeoIP and ASN hits and misses,
/// details (including `url_private`), anomalies, outcomes and categorisation. The expected
/// documents are in the shape Elastic's are (no Fleet fields), with `source.as` and
/// `user_agent.version` compared exactly, since we know uap-core's answers.
#[test]
fn conformance_with_our_own_entries() {
    let input = std::fs::read_to_string(fixtures_dir().join("conformance.input.ndjson")).unwrap();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("conformance.expected.json")).unwrap(),
    )
    .unwrap();
    let expected = expected["expected"].as_array().unwrap();
    let lines: Vec<&str> = input.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 8, "our conformance entries are all there");
    compare_documents(&lines, expected, None);
}

/// The `user_agent.version` pattern of a pipeline test config's `dynamic_fields`.
fn dynamic_version_pattern(config: &str) -> regex::Regex {
    let config: serde_norway::Value = serde_norway::from_str(config).unwrap();
    regex::Regex::new(
        config["dynamic_fields"]["user_agent.version"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

/// Maps each line with `event.original` kept and no tags, and compares with `expected`, field
/// for field, after removing the fields only Fleet adds in Elastic. With `elastic_version`
/// (Elastic's data), the expected documents are first brought to 1.24.0, `source.as` is checked
/// against our ASN test database (Elastic's test has none), and `user_agent.version` is matched
/// by the pattern; without it, both are part of the comparison.
fn compare_documents(lines: &[&str], expected: &[Value], elastic_version: Option<&regex::Regex>) {
    assert_eq!(expected.len(), lines.len());
    let (mut mapper, _dbs) = mapper_with_databases(MappingConfig {
        preserve_original_event: true,
        tags: vec![],
        ..MappingConfig::default()
    });
    for (i, (line, want)) in lines.iter().zip(expected).enumerate() {
        let entry: Value = serde_json::from_str(line).unwrap();
        let mut ours = mapper.map_entry(line, fetched());
        let mut want = want.clone();
        for fleet_field in [
            &["event", "created"][..],
            &["event", "module"],
            &["event", "dataset"],
            &["data_stream"],
        ] {
            assert!(
                remove(&mut ours, fleet_field).is_some(),
                "doc {i}: we always set {fleet_field:?}"
            );
        }
        if let Some(version_pattern) = elastic_version {
            upgrade_to_1_24(&mut want, &entry);
            let ip = entry["context"]["ip_address"].as_str().unwrap();
            let asn = remove(&mut ours, &["source", "as"]);
            if ip.starts_with("81.2.69.") {
                assert_eq!(
                    asn,
                    Some(
                        json!({"number": 20712, "organization": {"name": "Andrews & Arnold Ltd"}})
                    ),
                    "doc {i}"
                );
            } else {
                assert_eq!(asn, None, "doc {i}: {ip} is in no ASN test network");
            }
            let ours_version = remove(&mut ours, &["user_agent", "version"]);
            let want_version = remove(&mut want, &["user_agent", "version"]);
            assert_eq!(
                ours_version.is_some(),
                want_version.is_some(),
                "doc {i}: user_agent.version presence"
            );
            if let Some(v) = ours_version {
                assert!(
                    version_pattern.is_match(v.as_str().unwrap()),
                    "doc {i}: user_agent.version {v}"
                );
            }
        }
        similar_asserts::assert_eq!(
            serde_json::to_string_pretty(&want).unwrap(),
            serde_json::to_string_pretty(&ours).unwrap(),
            "document {i} (action {})",
            entry["action"]
        );
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mapping")
}

/// Maps `<case>.input.ndjson` through the `map` command's reader and compares with
/// `<case>.expected.json` (a pretty-printed list). `BLESS=1` rewrites the expectation; review
/// the diff before committing it.
fn golden(case: &str, preserve_original_event: bool) {
    let input = std::fs::read(fixtures_dir().join(format!("{case}.input.ndjson"))).unwrap();
    let (mut mapper, _dbs) = mapper_with_databases(MappingConfig {
        preserve_original_event,
        ..MappingConfig::default()
    });
    let mut out = Vec::new();
    map_stream(&mut mapper, &input[..], &mut out, fetched).unwrap();
    let docs: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actual = serde_json::to_string_pretty(&docs).unwrap() + "\n";
    let path = fixtures_dir().join(format!("{case}.expected.json"));
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    similar_asserts::assert_eq!(
        expected,
        actual,
        "golden file {} (BLESS=1 to rewrite)",
        path.display()
    );
}

/// Every entity kind Slack documents, plus one it has not invented yet, maps the same way.
#[test]
fn golden_entity_kinds() {
    golden("entity_kinds", false);
}

/// Every action in the categorisation table, both blocked-download spellings, and others.
#[test]
fn golden_categorised_actions() {
    golden("actions", false);
}

/// Each kind of bad input, with `event.original` kept so the golden file shows what went in.
#[test]
fn golden_bad_input() {
    golden("bad_input", true);
}

/// Type quirks Slack really sends: ms/µs timestamps, session ids, JSON-in-strings, IPs.
#[test]
fn golden_type_quirks() {
    golden("quirks", false);
}

/// API response bodies on stdin, one per line and pretty-printed across lines.
#[test]
fn golden_responses() {
    golden("responses", false);
}

/// Every entry in the public SDK and peer fixtures maps cleanly: no `error.message`. Skipped,
/// with a note, where `shared/` is absent (the golden files cover clean mapping then).
#[test]
fn public_fixture_entries_map_without_errors() {
    let Some(shared) = shared_dir("public_fixture_entries_map_without_errors") else {
        return;
    };
    let root = shared.join("fixtures");
    let (mut mapper, _dbs) = mapper_with_databases(MappingConfig::default());
    let mut mapped = 0;
    for folder in ["slack-sdk", "grove", "slack-go"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "json"))
        {
            let text = std::fs::read_to_string(file).unwrap();
            #[derive(serde::Deserialize)]
            struct Body<'a> {
                #[serde(borrow)]
                entries: Option<Vec<&'a RawValue>>,
            }
            let Some(entries) = serde_json::from_str::<Body>(&text).unwrap().entries else {
                continue;
            };
            for raw in entries {
                let doc = mapper.map_entry(raw.get(), fetched());
                assert_eq!(doc["event"]["kind"], "event", "{}", file.display());
                assert!(
                    doc.get("error").is_none(),
                    "{}: {}",
                    file.display(),
                    doc["error"]
                );
                assert!(doc["@timestamp"].is_string());
                mapped += 1;
            }
        }
    }
    assert!(
        mapped >= 10,
        "expected the fixtures' entries, mapped {mapped}"
    );
}

/// The `map` binary end to end: stdin to stdout, one document per entry.
#[test]
fn map_binary_maps_stdin() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_slack-audit-source"))
        .args(["map", "--namespace", "test", "--tags", "x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = "{\"id\":\"a\",\"date_create\":1521214343,\"action\":\"user_login\"}\nnot json\n{\"entries\":[{\"id\":\"b\",\"date_create\":1}]}\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let docs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0]["event"]["outcome"], "success");
    assert_eq!(docs[0]["data_stream"]["namespace"], "test");
    assert_eq!(docs[1]["event"]["kind"], "pipeline_error");
    assert_eq!(docs[1]["tags"], json!(["x", "preserve_original_event"]));
    assert_eq!(docs[2]["event"]["id"], "b");
}

/// Any JSON value: a recursive strategy over every JSON type.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        prop_oneof![
            Just("81.2.69.143"),
            Just(""),
            Just("1673631621862"),
            Just("[\"W1\"]"),
            Just("https://x/y.png")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            "[a-z_]{1,12}",
            prop_oneof![
                Just("id"),
                Just("date_create"),
                Just("action"),
                Just("actor"),
                Just("user"),
                Just("entity"),
                Just("type"),
                Just("context"),
                Just("location"),
                Just("ua"),
                Just("ip_address"),
                Just("session_id"),
                Just("details"),
                Just("action_timestamp"),
                Just("previous_ip_address"),
                Just("previous_ua"),
                Just("md5_hash"),
                Just("url_private"),
                Just("succeeded_users"),
                Just("entity_type"),
                Just("entries"),
            ]
            .prop_map(String::from),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn is_one_document(doc: &Value) -> bool {
    let kind = doc.pointer("/event/kind").and_then(Value::as_str);
    doc.is_object()
        && matches!(kind, Some("event" | "pipeline_error"))
        && doc["@timestamp"].is_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any JSON value in → exactly one document out, never a panic.
    #[test]
    fn any_json_value_gives_one_document(v in any_json()) {
        let mut mapper = Mapper::new(&MappingConfig::default()).unwrap();
        let doc = mapper.map_entry(&v.to_string(), fetched());
        prop_assert!(is_one_document(&doc), "{doc}");
        prop_assert_eq!(doc["event"]["kind"] == "pipeline_error", !v.is_object());
    }

    /// The borrowed input tree reads any JSON exactly as `serde_json::Value` does.
    #[test]
    fn input_tree_reads_like_serde_json(v in any_json()) {
        let text = v.to_string();
        let node: slack_audit_source::mapping::tree::Node = serde_json::from_str(&text).unwrap();
        // Compared with serde_json's reading of the same text, not with `v`: without its
        // float_roundtrip feature serde_json may read a printed float back one ulp off.
        prop_assert_eq!(node.to_value(), serde_json::from_str::<Value>(&text).unwrap());
    }

    /// Any bytes in → exactly one document out, never a panic.
    #[test]
    fn any_byte_line_gives_one_document(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut mapper = Mapper::new(&MappingConfig::default()).unwrap();
        let doc = mapper.map_entry_bytes(&bytes, fetched());
        prop_assert!(is_one_document(&doc), "{doc}");
    }

    /// The `map` reader never panics and writes only whole JSON documents, whatever it reads.
    #[test]
    fn map_stream_survives_any_input(lines in prop::collection::vec(prop_oneof![
        any_json().prop_map(|v| v.to_string()),
        any_json().prop_map(|v| serde_json::to_string_pretty(&v).unwrap()),
        "[{}\\[\\]\" a-z:,\\\\]{0,30}",
    ], 0..6)) {
        let mut mapper = Mapper::new(&MappingConfig::default()).unwrap();
        let input = lines.join("\n");
        let mut out = Vec::new();
        map_stream(&mut mapper, input.as_bytes(), &mut out, fetched).unwrap();
        for line in String::from_utf8(out).unwrap().lines() {
            let doc: Value = serde_json::from_str(line).unwrap();
            prop_assert!(is_one_document(&doc), "{doc}");
        }
    }
}
