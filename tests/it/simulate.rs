//! Integration tests: the simulator, started in-process on 127.0.0.1:0 and queried over HTTP
//! with reqwest, behaves as docs/slack-api.md says Slack does (and injects what it is asked).

use serde_json::{json, Value};
use slack_audit_source::shutdown::Shutdown;
use slack_audit_source::simulate::generator::{SCRAPER_IP, SCRAPER_UA};
use slack_audit_source::simulate::{start, FaultKind, Faults, SimHandle, SimOptions};
use std::collections::BTreeMap;
use std::time::Duration;

const TOKEN: &str = "xoxp-sim-test";

async fn sim(options: SimOptions) -> SimHandle {
    start("127.0.0.1:0".parse().unwrap(), options, Shutdown::never())
        .await
        .expect("the simulator starts")
}

/// A realistic entry, dated `date`, with the given action, actor and file entity.
fn entry(id: &str, date: i64, action: &str, actor: &str, file: &str) -> Value {
    json!({
        "id": id, "date_create": date, "action": action,
        "actor": {"type": "user", "user": {"id": actor, "name": "N", "email": "n@example.org"}},
        "entity": {"type": "file", "file": {"id": file, "name": "f.txt"}},
        "context": {"location": {"type": "enterprise", "id": "E1", "name": "E", "domain": "e"}, "ua": "UA", "ip_address": "192.0.2.1"}
    })
}

/// `user_login` entries `e{t}` at each second `t` of `seconds`, all by W1/F1.
fn logins(seconds: std::ops::RangeInclusive<i64>) -> Vec<Value> {
    seconds
        .map(|t| entry(&format!("e{t}"), t, "user_login", "W1", "F1"))
        .collect()
}

async fn get_raw(
    sim: &SimHandle,
    path: &str,
    query: &[(&str, &str)],
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(format!("{}{path}", sim.url()))
        .query(query);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("the simulator answers")
}

async fn json_of(r: reqwest::Response) -> Value {
    let body = r.bytes().await.expect("a body");
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

async fn logs(sim: &SimHandle, query: &[(&str, &str)]) -> Value {
    let r = get_raw(sim, "/audit/v1/logs", query, Some(TOKEN)).await;
    assert_eq!(r.status(), 200);
    json_of(r).await
}

fn ids(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn next_cursor(page: &Value) -> Option<String> {
    page.pointer("/response_metadata/next_cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

#[tokio::test]
async fn newest_first_with_inclusive_bounds() {
    let s = sim(SimOptions::default()).await;
    s.insert(logins(100..=110));
    let page = logs(&s, &[("oldest", "102"), ("latest", "105")]).await;
    assert_eq!(ids(&page), ["e105", "e104", "e103", "e102"]);
    assert_eq!(page["ok"], true);
    assert_eq!(next_cursor(&page), None);
}

#[tokio::test]
async fn a_same_second_burst_exceeds_limit_but_a_second_is_never_split() {
    let s = sim(SimOptions::default()).await;
    let mut entries = vec![entry("before", 199, "user_login", "W1", "F1")];
    entries.extend((0..5).map(|i| entry(&format!("burst{i}"), 200, "user_login", "W1", "F1")));
    entries.push(entry("after", 201, "user_login", "W1", "F1"));
    s.insert(entries);
    let first = logs(&s, &[("oldest", "0"), ("latest", "300"), ("limit", "2")]).await;
    assert_eq!(
        ids(&first),
        ["after", "burst4", "burst3", "burst2", "burst1", "burst0"]
    );
    let cursor = next_cursor(&first).expect("more to come");
    let second = logs(
        &s,
        &[
            ("oldest", "0"),
            ("latest", "300"),
            ("limit", "2"),
            ("cursor", &cursor),
        ],
    )
    .await;
    assert_eq!(ids(&second), ["before"]);
    assert_eq!(next_cursor(&second), None);
}

/// reqwest escapes the cursor's `=` as `%3D`; the simulator decodes it, and also takes a raw `=`.
#[tokio::test]
async fn cursors_are_padded_and_survive_url_encoding() {
    let s = sim(SimOptions::default()).await;
    s.insert(logins(1..=3));
    let q = [("oldest", "1"), ("latest", "3"), ("limit", "1")];
    let first = logs(&s, &q).await;
    let cursor = next_cursor(&first).unwrap();
    assert!(cursor.ends_with('='), "{cursor}");
    let second = logs(&s, &[q[0], q[1], q[2], ("cursor", &cursor)]).await;
    assert_eq!(ids(&second), ["e2"]);
    let raw = s.requests().last().unwrap().cursor.clone().unwrap();
    assert!(raw.ends_with("%3D"), "{raw}");
    // The same cursor with its padding unescaped, as a careless client would send it.
    let url = format!(
        "{}/audit/v1/logs?oldest=1&latest=3&limit=1&cursor={}",
        s.url(),
        cursor.replace('+', "%2B").replace('/', "%2F")
    );
    let again = json_of(
        reqwest::Client::new()
            .get(url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ids(&again), ["e2"]);
}

#[tokio::test]
async fn a_cursor_is_bound_to_its_window_and_filters() {
    let s = sim(SimOptions::default()).await;
    s.insert(logins(1..=5));
    let first = logs(&s, &[("oldest", "1"), ("latest", "5"), ("limit", "1")]).await;
    let c = next_cursor(&first).unwrap();
    for q in [
        vec![("oldest", "2"), ("latest", "5"), ("cursor", c.as_str())],
        vec![("oldest", "1"), ("latest", "4"), ("cursor", c.as_str())],
        vec![("latest", "5"), ("cursor", c.as_str())],
        vec![
            ("oldest", "1"),
            ("latest", "5"),
            ("action", "user_login"),
            ("cursor", c.as_str()),
        ],
        vec![
            ("oldest", "1"),
            ("latest", "5"),
            ("cursor", "bm90IGEgY3Vyc29y"),
        ],
        vec![("oldest", "1"), ("latest", "5"), ("cursor", "%%%")],
    ] {
        let page = logs(&s, &q).await;
        assert_eq!(
            page,
            json!({"ok": false, "error": "invalid_cursor"}),
            "{q:?}"
        );
    }
    let ok = logs(
        &s,
        &[
            ("oldest", "1"),
            ("latest", "5"),
            ("limit", "1"),
            ("cursor", &c),
        ],
    )
    .await;
    assert_eq!(ids(&ok), ["e4"]);
}

#[tokio::test]
async fn invalidate_cursors_refuses_every_earlier_cursor() {
    let s = sim(SimOptions::default()).await;
    s.insert(logins(1..=5));
    let q = [("oldest", "1"), ("latest", "5"), ("limit", "1")];
    let c = next_cursor(&logs(&s, &q).await).unwrap();
    s.invalidate_cursors();
    let refused = logs(&s, &[q[0], q[1], q[2], ("cursor", &c)]).await;
    assert_eq!(refused["error"], "invalid_cursor");
    // Re-reading the window from the top issues cursors that work again.
    let fresh = next_cursor(&logs(&s, &q).await).unwrap();
    assert_eq!(
        ids(&logs(&s, &[q[0], q[1], q[2], ("cursor", &fresh)]).await),
        ["e4"]
    );
}

#[tokio::test]
async fn filters_combine_with_and() {
    let s = sim(SimOptions::default()).await;
    s.insert(vec![
        entry("a", 10, "file_downloaded", "W1", "F1"),
        entry("b", 11, "file_downloaded", "W2", "F1"),
        entry("c", 12, "file_shared", "W1", "F2"),
        entry("d", 13, "user_login", "W1", "F1"),
    ]);
    let page = |q: Vec<(&'static str, &'static str)>| {
        let s = s.clone();
        async move { ids(&logs(&s, &q).await) }
    };
    assert_eq!(
        page(vec![("action", "file_downloaded,file_shared")]).await,
        ["c", "b", "a"]
    );
    assert_eq!(page(vec![("actor", "W1")]).await, ["d", "c", "a"]);
    assert_eq!(
        page(vec![("entity", "F1"), ("actor", "W1")]).await,
        ["d", "a"]
    );
    assert_eq!(
        page(vec![("action", "file_downloaded"), ("actor", "W2")]).await,
        ["b"]
    );
    assert_eq!(
        logs(&s, &[("action", "not_an_action")]).await["error"],
        "invalid_action"
    );
    let thirty_one = vec!["user_login"; 31].join(",");
    assert_eq!(
        logs(&s, &[("action", &thirty_one)]).await["error"],
        "invalid_action"
    );
}

#[tokio::test]
async fn latest_in_the_future_is_invalid_range() {
    let s = sim(SimOptions::default()).await;
    let future = (chrono::Utc::now().timestamp() + 3600).to_string();
    assert_eq!(
        logs(&s, &[("latest", &future)]).await,
        json!({"ok": false, "error": "invalid_range"})
    );
}

#[tokio::test]
async fn auth_errors_and_the_unauthenticated_endpoints() {
    let s = sim(SimOptions {
        token: Some(TOKEN.into()),
        ..SimOptions::default()
    })
    .await;
    let missing = get_raw(&s, "/audit/v1/logs", &[], None).await;
    assert_eq!(missing.status(), 200);
    assert_eq!(
        json_of(missing).await,
        json!({"ok": false, "error": "missing_authentication"})
    );
    let wrong = json_of(get_raw(&s, "/audit/v1/logs", &[], Some("xoxp-wrong")).await).await;
    assert_eq!(wrong["error"], "invalid_authentication");
    assert_eq!(logs(&s, &[]).await["ok"], true);
    let actions = json_of(get_raw(&s, "/audit/v1/actions", &[], None).await).await;
    assert!(actions["actions"]["file"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "file_downloaded"));
    let schemas = json_of(get_raw(&s, "/audit/v1/schemas", &[], None).await).await;
    assert_eq!(schemas["schemas"][0]["type"], "workspace");
    let glitch = get_raw(&s, "/api/audit.logs", &[], Some(TOKEN)).await;
    assert_eq!(glitch.status(), 404);
    assert!(glitch.text().await.unwrap().contains("found a glitch"));
    let bad = json_of(get_raw(&s, "/audit/v1/nope", &[], Some(TOKEN)).await).await;
    assert_eq!(bad["error"], "bad_endpoint");
}

/// Each fault, at probability 1, shows up as specified.
#[tokio::test]
async fn each_fault_kind_appears_with_probability_one() {
    let s = sim(SimOptions::default()).await;
    s.insert(logins(1..=3));
    let q = [("oldest", "1"), ("latest", "3"), ("limit", "1")];
    for kind in FaultKind::ALL {
        s.set_faults(Faults {
            retry_after: Duration::from_secs(7),
            stall_for: Duration::from_secs(30),
            ..Faults::always(kind)
        });
        // Short only where a stall is expected: a loaded CI machine can be slow to answer.
        let timeout = if kind == FaultKind::Stall {
            300
        } else {
            10_000
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout))
            .build()
            .unwrap();
        let sent = client
            .get(format!("{}/audit/v1/logs", s.url()))
            .query(&q)
            .bearer_auth(TOKEN)
            .send()
            .await;
        if kind == FaultKind::Stall {
            assert!(sent.unwrap_err().is_timeout());
            assert_eq!(s.requests().last().unwrap().fault, Some(FaultKind::Stall));
            continue;
        }
        let r = sent.unwrap();
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.text().await.unwrap();
        assert_eq!(s.requests().last().unwrap().fault, Some(kind));
        match kind {
            FaultKind::RateLimited => {
                assert_eq!((status, retry_after.as_deref()), (429, Some("7")));
                assert_eq!(
                    serde_json::from_str::<Value>(&body).unwrap(),
                    json!({"ok": false, "error": "ratelimited"})
                );
            }
            FaultKind::ServerError => assert!(status == 500 && body.contains("<html"), "{body}"),
            FaultKind::BadGateway => {
                assert!(status == 502 && body.contains("Bad Gateway"), "{body}")
            }
            FaultKind::Truncated => {
                assert_eq!(status, 200);
                assert!(
                    body.starts_with("{\"ok\":true")
                        && serde_json::from_str::<Value>(&body).is_err(),
                    "{body}"
                );
            }
            FaultKind::EmptyObject => assert_eq!((status, body.as_str()), (200, "{}")),
            FaultKind::EmptyPage => {
                let page: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(ids(&page), Vec::<String>::new());
                let cursor = next_cursor(&page).expect("an empty page still carries a cursor");
                s.set_faults(Faults::default());
                // Nothing was skipped: the cursor leads to the page the fault replaced.
                assert_eq!(
                    ids(&logs(&s, &[q[0], q[1], q[2], ("cursor", &cursor)]).await),
                    ["e3"]
                );
            }
            FaultKind::Stall => unreachable!(),
        }
    }
}

#[tokio::test]
async fn the_same_seed_serves_the_same_data() {
    let options = |seed| SimOptions {
        seed,
        backfill_events: 300,
        backfill_secs: 600,
        backfill_end: Some(1_700_000_000),
        ..SimOptions::default()
    };
    let (a, b, c) = (
        sim(options(7)).await,
        sim(options(7)).await,
        sim(options(8)).await,
    );
    assert_eq!(a.ids(), b.ids());
    assert_ne!(a.ids(), c.ids());
    let q = [
        ("oldest", "1699999400"),
        ("latest", "1700000000"),
        ("limit", "50"),
    ];
    let (pa, pb) = (logs(&a, &q).await, logs(&b, &q).await);
    assert_eq!(pa, pb);
    assert!(
        ids(&logs(
            &a,
            &[q[0], q[1], q[2], ("cursor", &next_cursor(&pa).unwrap())]
        )
        .await)
        .len()
            >= 50
    );
}

/// A late entry, dated in the past, is invisible until its delay has passed (paused clock).
#[tokio::test]
async fn late_entries_are_invisible_then_visible() {
    let s = sim(SimOptions::default()).await;
    s.insert_late(
        entry("late", 1000, "user_login", "W1", "F1"),
        Duration::from_secs(600),
    );
    let q = [("oldest", "900"), ("latest", "1100")];
    assert_eq!(ids(&logs(&s, &q).await), Vec::<String>::new());
    assert!(s.ids().is_empty());
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(601)).await;
    tokio::time::resume();
    assert_eq!(ids(&logs(&s, &q).await), ["late"]);
    assert_eq!(s.ids(), vec![("late".to_string(), 1000)]);
}

/// The story is played in the first minute; the paused clock jumps over it.
#[tokio::test]
async fn the_departing_salesperson_story_is_served() {
    let s = sim(SimOptions {
        story: true,
        ..SimOptions::default()
    })
    .await;
    tokio::time::pause();
    // Under a paused clock this sleep is instant: tokio jumps from timer to timer.
    tokio::time::sleep(Duration::from_secs(61)).await;
    tokio::time::resume();
    assert_eq!(s.ids().len(), 12);
    let page = logs(&s, &[("limit", "9999")]).await;
    let entries = page["entries"].as_array().unwrap();
    let anomaly = |reasons: Value| {
        entries
            .iter()
            .find(|e| e["action"] == "anomaly" && e["details"]["reason"] == reasons)
            .cloned()
    };
    let scraping =
        anomaly(json!(["unexpected_scraping", "user_agent"])).expect("the scraping anomaly");
    assert_eq!(scraping["context"]["ua"], SCRAPER_UA);
    assert!(scraping["details"]["previous_ua"]
        .as_str()
        .unwrap()
        .starts_with("Mozilla/5.0"));
    assert!(anomaly(json!(["excessive_downloads"])).is_some());
    let downloads: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "file_downloaded")
        .collect();
    assert!(downloads
        .iter()
        .any(|e| e["entity"]["file"]["name"] == "Glengarry-Leads.xlsx"));
    assert!(
        downloads.len() >= 5
            && downloads
                .iter()
                .all(|e| e["context"]["ip_address"] == SCRAPER_IP
                    && e["context"]["ua"] == SCRAPER_UA)
    );
    assert_eq!(
        entries[0]["actor"]["user"]["name"], "Slack Security",
        "newest first: the session reset ends it"
    );
}

#[tokio::test]
async fn burst_puts_n_entries_on_one_backfill_second() {
    let s = sim(SimOptions {
        backfill_events: 100,
        backfill_secs: 100,
        backfill_end: Some(1_700_000_000),
        burst: 40,
        ..SimOptions::default()
    })
    .await;
    let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
    for (_, t) in s.ids() {
        *per_second.entry(t).or_default() += 1;
    }
    let (second, n) = per_second
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(s, n)| (*s, *n))
        .unwrap();
    assert!(n >= 40);
    let t = second.to_string();
    let page = logs(&s, &[("oldest", &t), ("latest", &t), ("limit", "10")]).await;
    assert_eq!(ids(&page).len(), n);
}

#[tokio::test]
async fn sim_ids_lists_every_visible_entry_and_a_chain_delivers_them_all() {
    let s = sim(SimOptions {
        backfill_events: 2000,
        backfill_secs: 3600,
        ..SimOptions::default()
    })
    .await;
    let body = get_raw(&s, "/_sim/ids", &[], None)
        .await
        .text()
        .await
        .unwrap();
    let listed: Vec<(String, i64)> = body
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["date_create"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, s.ids());
    let mut delivered = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("oldest", "0".to_string()), ("limit", "333".to_string())];
        q.extend(cursor.clone().map(|c| ("cursor", c)));
        let page = logs(
            &s,
            &q.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
        )
        .await;
        delivered.extend(ids(&page));
        match next_cursor(&page) {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut want: Vec<String> = listed.into_iter().map(|(id, _)| id).collect();
    want.sort();
    delivered.sort();
    assert_eq!(delivered, want);
}

#[tokio::test]
async fn garbage_requests_get_answers_and_the_server_lives_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = sim(SimOptions::default()).await;
    for request in [
        &b"GET /audit/v1/logs?cursor=%FF%00&limit=99999999999999999999999&oldest=-1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"[..],
        b"GET /audit/v1/logs?latest=abc&&&=&%zz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n",
        b"\x00\x01\x02 not http at all\r\n\r\n",
        b"POST /audit/v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ] {
        let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        conn.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer).await;
    }
    assert_eq!(logs(&s, &[("limit", "9999999")]).await["ok"], true);
}

/// Scale: a million backfilled entries are generated in seconds and served at more than 100k
/// entries a second. Run it with an optimised build of the crate, e.g.
/// `cargo test --config 'profile.dev.package.slack-audit-source.opt-level=3' --test it -- --ignored million`
/// (unoptimised, it is several times slower).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a scale check, run on demand with an optimised build"]
async fn a_million_entries_are_generated_and_served_fast() {
    #[derive(serde::Deserialize)]
    struct Page {
        entries: Vec<serde::de::IgnoredAny>,
        response_metadata: Option<Value>,
    }
    let started = std::time::Instant::now();
    let s = sim(SimOptions {
        backfill_events: 1_000_000,
        backfill_secs: 30 * 24 * 3600,
        ..SimOptions::default()
    })
    .await;
    let generated = started.elapsed();
    let started = std::time::Instant::now();
    let client = reqwest::Client::new();
    let (mut served, mut bytes, mut cursor) = (0usize, 0usize, None::<String>);
    loop {
        let mut q = vec![("oldest", "0".to_string()), ("limit", "9999".to_string())];
        q.extend(cursor.clone().map(|c| ("cursor", c)));
        let body = client
            .get(format!("{}/audit/v1/logs", s.url()))
            .query(&q)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        bytes += body.len();
        let page: Page = serde_json::from_slice(&body).unwrap();
        served += page.entries.len();
        match page
            .response_metadata
            .as_ref()
            .and_then(|m| m["next_cursor"].as_str())
            .filter(|c| !c.is_empty())
        {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let rate = served as f64 / started.elapsed().as_secs_f64();
    let rss = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap_or("")
        .to_string();
    eprintln!("generated 1,000,000 in {generated:?}; served {served} ({} MB) at {rate:.0} entries/s, client included; {rss}", bytes >> 20);
    assert_eq!(served, 1_000_000);
    assert!(generated < Duration::from_secs(10), "{generated:?}");
    assert!(rate > 100_000.0, "{rate}");
}

/// The `simulate` command: its first stderr line names the address (port 0 works), it serves
/// its backfill, refuses a bad flag with exit 2, and stops cleanly on SIGTERM.
#[tokio::test]
async fn the_simulate_command_announces_its_address_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let bin = env!("CARGO_BIN_EXE_slack-audit-source");
    let bad = tokio::process::Command::new(bin)
        .args(["simulate", "--faults", "418=0.5"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("418"));
    let mut child = tokio::process::Command::new(bin)
        .args([
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--backfill",
            "25",
            "--backfill-span",
            "1h",
            "--rate",
            "0",
            "--token",
            TOKEN,
        ])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), stderr.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"));
    let ids = reqwest::get(format!("http://{addr}/_sim/ids"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(ids.lines().count(), 25);
    let page = json_of(
        reqwest::Client::new()
            .get(format!("http://{addr}/audit/v1/logs"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 25);
    let pid = i32::try_from(child.id().unwrap()).unwrap();
    // SAFETY: kill(2) on a child we spawned and still own; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// The project's own client understands every answer the simulator gives, faults included,
/// and classifies each fault the way `retry.rs` expects to handle it.
#[tokio::test]
async fn the_slack_client_classifies_every_fault() {
    use slack_audit_source::config::Filters;
    use slack_audit_source::slack::client::ClientConfig;
    use slack_audit_source::slack::{Error, Query, SlackClient, TokenSource};
    let s = sim(SimOptions {
        token: Some(TOKEN.into()),
        ..SimOptions::default()
    })
    .await;
    s.insert(logins(1..=3));
    let mut client = SlackClient::new(ClientConfig {
        api_url: url::Url::parse(&s.url()).unwrap(),
        token: TokenSource::fixed(secrecy::SecretString::from(TOKEN)).unwrap(),
        max_rpm: 6000,
        // Long enough for a loaded machine, short enough for the stall fault to be quick.
        request_timeout: Duration::from_secs(1),
        tracer: None,
        max_response_bytes: 64 << 20,
        give_up_after: None,
    })
    .unwrap();
    let filters = Filters::default();
    let q = Query {
        oldest: 1,
        latest: 3,
        limit: 2,
        cursor: None,
        filters: &filters,
    };
    let page = client.fetch_page(&q).await.unwrap();
    assert_eq!(page.len(), 2);
    let cursor = page.next_cursor.expect("one more page");
    let last = client
        .fetch_page(&Query {
            cursor: Some(&cursor),
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!((last.len(), last.next_cursor), (1, None));
    for kind in FaultKind::ALL {
        s.set_faults(Faults {
            retry_after: Duration::from_secs(7),
            stall_for: Duration::from_secs(30),
            ..Faults::always(kind)
        });
        let got = client.fetch_page(&q).await;
        let ok = match (kind, &got) {
            (FaultKind::RateLimited, Err(Error::RateLimited { retry_after })) => {
                *retry_after == Duration::from_secs(7)
            }
            (FaultKind::ServerError, Err(Error::Http { status: 500, .. }))
            | (FaultKind::BadGateway, Err(Error::Http { status: 502, .. })) => true,
            (FaultKind::Stall, Err(Error::Timeout(_)))
            | (FaultKind::Truncated, Err(Error::Decode { .. }))
            | (FaultKind::EmptyObject, Err(Error::NoEntries { .. })) => true,
            (FaultKind::EmptyPage, Ok(p)) => p.is_empty() && p.next_cursor.is_some(),
            _ => false,
        };
        assert!(ok, "{kind:?}: {got:?}");
    }
    s.set_faults(Faults::default());
    s.invalidate_cursors();
    assert!(matches!(
        client
            .fetch_page(&Query {
                cursor: Some(&cursor),
                ..q.clone()
            })
            .await,
        Err(Error::InvalidCursor)
    ));
}
