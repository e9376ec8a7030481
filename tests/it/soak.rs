//! Soak: a backfill through injected faults while `run` is killed with SIGKILL at random
//! moments and restarted, through stdout and through the HTTP sink with a receiver that has
//! outages. The delivered set must equal the simulator's: nothing missing, and no repeat
//! beyond the page in flight at each kill.
//!
//! Ignored by default (it takes minutes at full size). `scripts/ci/check-soak.sh` runs it at a
//! bounded size in CI; `scripts/soak.sh` runs the full 200,000 events. Sizes come from
//! `SOAK_EVENTS`, `SOAK_KILLS` and `SOAK_LIMIT`.

use crate::support::{bin, delivered_ids_lenient, run_command};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use slack_audit_source::serve::Server;
use slack_audit_source::shutdown::Shutdown;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Sizes {
    events: usize,
    kills: usize,
    limit: usize,
}

fn sizes() -> Sizes {
    Sizes {
        events: env_or("SOAK_EVENTS", 200_000),
        kills: env_or("SOAK_KILLS", 30),
        limit: env_or("SOAK_LIMIT", 2000),
    }
}

/// The simulator as a child process, with faults; killed on drop.
struct Simulator {
    child: Child,
    addr: String,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_simulator(events: usize) -> Simulator {
    let mut child = bin()
        .args([
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "7",
            "--rate",
            "0",
            "--backfill",
            &events.to_string(),
            "--backfill-span",
            "2h",
        ])
        .args([
            "--faults",
            "429=0.02,500=0.03,502=0.02,truncated=0.02,empty_object=0.02,stall=0.01",
            "--retry-after",
            "1",
            "--stall",
            "3",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the simulator starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the simulator says where it listens")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_start_matches("http://")
                .to_string();
        }
    };
    // Keep draining stderr so the simulator never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Simulator { child, addr }
}

/// Every (id, date_create) the simulator made visible, from its `/_sim/ids` endpoint.
async fn simulator_ids(addr: &str) -> Vec<(String, i64)> {
    let body = reqwest::get(format!("http://{addr}/_sim/ids"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parse = |v: &Value| -> Option<(String, i64)> {
        match v {
            Value::Array(a) => Some((a.first()?.as_str()?.to_string(), a.get(1)?.as_i64()?)),
            Value::Object(o) => Some((
                o.get("id")?.as_str()?.to_string(),
                o.get("date_create")?.as_i64()?,
            )),
            _ => None,
        }
    };
    match serde_json::from_str::<Value>(&body) {
        Ok(Value::Array(items)) => items.iter().filter_map(parse).collect(),
        Ok(Value::Object(o)) if o.contains_key("ids") => o["ids"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(parse)
            .collect(),
        _ => body
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| parse(&v))
            .collect(),
    }
}

/// `run` against the simulator through the one builder, with the soak's flags (a 3 h lookback, a
/// generous budget, 2 s request timeouts, pages of `limit`) then `extra`; its diagnostics off.
fn soak_run(sim: &Simulator, state: &Path, limit: usize, extra: &[&str]) -> std::process::Command {
    let limit = limit.to_string();
    let mut flags = vec![
        "--initial-lookback",
        "3h",
        "--max-requests-per-minute",
        "6000",
        "--request-timeout",
        "2s",
        "--limit",
        &limit,
    ];
    flags.extend_from_slice(extra);
    let mut cmd = run_command(&format!("http://{}", sim.addr), state, &flags);
    cmd.env("SLACK_AUDIT_LOG", "error").stderr(Stdio::null());
    cmd
}

async fn kill_at_random(mut child: Child, max_ms: u64) {
    use rand::Rng;
    let ms = rand::rng().random_range(20..max_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await; // the random moment is the point
    tokio::task::spawn_blocking(move || {
        let _ = child.kill();
        let _ = child.wait();
    })
    .await
    .unwrap();
}

async fn wait(mut child: Child) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap()
}

fn check(delivered: &[String], expected: &[(String, i64)], kills: usize, limit: usize) {
    let want: HashSet<&str> = expected.iter().map(|(id, _)| id.as_str()).collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in delivered {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let missing: Vec<&&str> = want
        .iter()
        .filter(|id| !seen.contains_key(**id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} missing, e.g. {missing:?}",
        want.iter().filter(|id| !seen.contains_key(**id)).count(),
        want.len()
    );
    let extra: Vec<&&str> = seen
        .keys()
        .filter(|id| !want.contains(**id))
        .take(5)
        .collect();
    assert!(
        extra.is_empty(),
        "delivered ids the simulator never made: {extra:?}"
    );
    let repeats: usize = seen.values().map(|n| n - 1).sum();
    assert!(
        repeats <= kills * limit,
        "{repeats} repeats for {kills} kills at limit {limit}"
    );
    eprintln!(
        "soak: {} events, {} kills, {repeats} repeats (bound {})",
        want.len(),
        kills,
        kills * limit
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long; run by scripts/ci/check-soak.sh (bounded) and scripts/soak.sh"]
async fn soak_stdout_with_faults_and_sigkills() {
    let s = sizes();
    let sim = start_simulator(s.events);
    let dir = tempfile::tempdir().unwrap();
    let (state, out) = (dir.path().join("state"), dir.path().join("out.ndjson"));
    for _ in 0..s.kills {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out)
            .unwrap();
        kill_at_random(
            soak_run(&sim, &state, s.limit, &[])
                .stdout(file)
                .spawn()
                .unwrap(),
            1500,
        )
        .await;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .unwrap();
    assert!(wait(
        soak_run(&sim, &state, s.limit, &["--once"])
            .stdout(file)
            .spawn()
            .unwrap()
    )
    .await
    .success());
    let (ids, torn) = delivered_ids_lenient(&std::fs::read(&out).unwrap());
    assert!(torn <= s.kills, "{torn} torn lines");
    check(&ids, &simulator_ids(&sim.addr).await, s.kills, s.limit);
}

/// A receiver like Vector's `http_server` that is down (503 or a dropped connection) a third
/// of the time. It stops when the returned server is dropped.
async fn flaky_receiver() -> (Server, Arc<Mutex<Vec<String>>>, Arc<AtomicBool>) {
    let listener = slack_audit_source::serve::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let down = Arc::new(AtomicBool::new(false));
    let (g, d) = (got.clone(), down.clone());
    let server = slack_audit_source::serve::spawn(
        listener,
        Shutdown::never(),
        slack_audit_source::serve::Limits::none(),
        "flaky receiver",
        move |req: hyper::Request<hyper::body::Incoming>| {
            let (g, d) = (g.clone(), d.clone());
            async move {
                let body = crate::support::body_bytes(req.into_body()).await;
                if d.load(Ordering::SeqCst) {
                    return hyper::Response::builder()
                        .status(503)
                        .body(Full::new(Bytes::from("down")))
                        .unwrap();
                }
                let (ids, _) = delivered_ids_lenient(&body);
                g.lock().unwrap().extend(ids);
                hyper::Response::builder()
                    .status(200)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
        },
    );
    let d = down.clone();
    tokio::spawn(async move {
        use rand::Rng;
        loop {
            let ms = rand::rng().random_range(100..600);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            d.store(rand::rng().random_bool(0.33), Ordering::SeqCst);
        }
    });
    (server, got, down)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long; run by scripts/ci/check-soak.sh (bounded) and scripts/soak.sh"]
async fn soak_http_sink_with_receiver_outages_and_sigkills() {
    let s = sizes();
    let sim = start_simulator(s.events);
    let (receiver, got, down) = flaky_receiver().await;
    let url = receiver.url("/");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let http = ["--sink", "http", "--http-url", url.as_str()];
    for _ in 0..s.kills {
        kill_at_random(
            soak_run(&sim, &state, s.limit, &http)
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
            1500,
        )
        .await;
    }
    let mut args = http.to_vec();
    args.push("--once");
    let last = soak_run(&sim, &state, s.limit, &args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait(last).await.success());
    down.store(false, Ordering::SeqCst);
    let ids = got.lock().unwrap().clone();
    check(&ids, &simulator_ids(&sim.addr).await, s.kills, s.limit);
}
