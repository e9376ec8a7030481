//! Mapping throughput on a realistic mix of entries, against merely parsing and re-serialising
//! the same entries with serde_json, measured in the same run.
//!
//! A plain `harness = false` main (criterion's statistics add little to a throughput ratio and
//! its default features are off here). Prints entries/s for:
//! - `parse+reserialise`: `serde_json::from_str::<Value>` then `to_writer` (the floor);
//! - `map_entry+serialise`: [`Mapper::map_entry`] then `to_writer` (what `run` does per entry);
//! - `map_stream`: the `map` command's reader over the same entries as NDJSON.
//!
//! `cargo bench --bench mapping` runs it; `cargo bench --bench mapping -- --emit N` instead
//! writes N realistic entries to stdout (used by `scripts/bench-map.sh`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use slack_audit_source::mapping::command::map_stream;
use slack_audit_source::mapping::{Mapper, MappingConfig};
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

/// Entries in the in-memory mix.
const MIX: usize = 20_000;
/// Rounds per measurement; the best round is reported (least disturbed by other processes).
const ROUNDS: usize = 7;

/// A small deterministic PRNG (xorshift64*), so every run maps the same entries.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0.19045; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.36.140 Chrome/120.0.6099.227 Electron/28.2.0 Safari/537.36 OS_Product/Workstation Servicing_Channel/SAC Sonic Slack_SSB/4.36.140",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.37.94 Chrome/122.0.6261.57 Electron/29.0.1 Safari/537.36 Sonic Slack_SSB/4.37.94",
    "com.tinyspeck.chatlyio/23.07.10 (iPhone; iOS 16.5.1; Scale/3.00)",
    "com.tinyspeck.chatlyio/24.02.20 (iPad; iOS 17.3.1; Scale/2.00)",
    "Slack/24.02.10.0 (Linux; Android 14; Pixel 8 Build/UD1A.230803.041)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "SlackWeb/1.0",
    "Python/3.11 slack_sdk/3.26.2",
];

const ACTIONS: &[(&str, u64)] = &[
    ("user_login", 30),
    ("user_logout", 8),
    ("file_downloaded", 14),
    ("file_uploaded", 8),
    ("file_shared", 5),
    ("user_channel_join", 8),
    ("public_channel_created", 3),
    ("user_login_failed", 3),
    ("huddle_started", 4),
    ("canvas_edited", 3),
    ("app_installed", 2),
    ("anomaly", 2),
    ("role_change_to_admin", 1),
    ("user_created", 2),
    ("pref.session_duration_changed", 2),
    ("workflow_v2_published", 1),
    ("file_malicious_content_detected", 1),
    ("list_created", 1),
];

/// One realistic entry as Slack sends it (compact, key order as in the API docs).
fn entry(rng: &mut Rng, i: u64) -> String {
    let total: u64 = ACTIONS.iter().map(|(_, w)| w).sum();
    let mut roll = rng.below(total);
    let mut action = ACTIONS[0].0;
    for (a, w) in ACTIONS {
        if roll < *w {
            action = a;
            break;
        }
        roll -= w;
    }
    let user = rng.below(500);
    let ip = match rng.below(20) {
        0 => String::new(),
        1..=3 => format!("2a02:ffc0::{:x}", rng.below(4096)),
        _ => format!("81.{}.{}.{}", rng.below(4), rng.below(256), rng.below(256)),
    };
    let session = if rng.below(10) == 0 {
        json!(rng.below(1 << 40).to_string())
    } else {
        json!(rng.below(1 << 43))
    };
    let (kind, object) = match action {
        a if a.starts_with("file") => (
            "file",
            json!({"id": format!("F0{i:08}"), "name": "report.pdf", "filetype": "pdf", "title": "Q3 report"}),
        ),
        a if a.contains("channel") => (
            "channel",
            json!({"id": format!("C0{:06}", rng.below(900)), "name": "general", "privacy": "public", "is_shared": false, "is_org_shared": true}),
        ),
        "huddle_started" => (
            "huddle",
            json!({"id": format!("R0{i:08}"), "date_start": 1_700_000_000 + i, "participants": ["U01", "U02"]}),
        ),
        "canvas_edited" => (
            "canvas",
            json!({"id": format!("F0{i:08}"), "name": "Notes", "title": "Notes"}),
        ),
        "app_installed" => (
            "app",
            json!({"id": "A0APP", "name": "Deploy", "is_distributed": false, "is_directory_approved": true, "scopes": ["chat:write", "channels:read"]}),
        ),
        "workflow_v2_published" => ("workflow_v2", json!({"id": "Wf0V2", "name": "Approvals"})),
        "list_created" => ("list", json!({"id": format!("F0{i:08}"), "name": "Tasks"})),
        a if a.starts_with("pref.") => (
            "workspace",
            json!({"id": "T0WS1", "name": "Sales", "domain": "sales"}),
        ),
        _ => (
            "user",
            json!({"id": format!("U0{user:06}"), "name": format!("User {user}"), "email": format!("user{user}@example.com"), "team": "T0WS1"}),
        ),
    };
    let mut e = json!({
        "id": format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", rng.next() as u32, rng.below(1 << 16), rng.below(4096), rng.below(4096), rng.below(1 << 48)),
        "date_create": 1_700_000_000 + i,
        "action": action,
        "actor": {"type": "user", "user": {"id": format!("W0{user:06}"), "name": format!("User {user}"), "email": format!("user{user}@example.com"), "team": "E0ORG"}},
        "entity": {"type": kind, kind: object},
        "context": {"location": {"type": "workspace", "id": "T0WS1", "name": "Sales", "domain": "sales"},
                    "ua": rng.pick(AGENTS), "ip_address": ip, "session_id": session},
    });
    let details = match action {
        "file_downloaded" => Some(
            json!({"url_private": format!("https://files.slack.com/files-pri/T0WS1-F0{i:08}/report.pdf")}),
        ),
        "file_malicious_content_detected" => {
            Some(json!({"md5_hash": "7e2b2819a67bb11b0ca280c1d0646f42"}))
        }
        "anomaly" => Some(
            json!({"action_timestamp": 1_700_000_000_000_000 + i * 1000 + 7, "reason": ["asn", "ip_address"],
                                 "previous_ip_address": "1.128.0.1", "previous_ua": rng.pick(AGENTS), "location": "London, GB"}),
        ),
        "user_channel_join" => Some(
            json!({"inviter": {"id": "W0AD1", "name": "Ada", "email": "ada@example.com", "team": "E0ORG"}}),
        ),
        "pref.session_duration_changed" => {
            Some(json!({"new_value": "720", "previous_value": "168"}))
        }
        _ => None,
    };
    if let Some(d) = details {
        e["details"] = d;
    }
    e.to_string()
}

fn entries(n: usize) -> Vec<String> {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    (0..n as u64).map(|i| entry(&mut rng, i)).collect()
}

fn best_rate(rounds: usize, mut round: impl FnMut() -> usize) -> f64 {
    let mut best = Duration::MAX;
    let mut n = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        n = round();
        best = best.min(start.elapsed());
    }
    n as f64 / best.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--emit") {
        let n: usize = args
            .get(pos + 1)
            .and_then(|s| s.parse().ok())
            .expect("--emit N");
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut rng = Rng(0x5eed_cafe_f00d_0001);
        for i in 0..n as u64 {
            writeln!(out, "{}", entry(&mut rng, i)).expect("stdout is writable");
        }
        out.flush().expect("stdout is writable");
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it,
    // and then a small smoke run proves it works without spending a minute in a debug build.
    let full = args.iter().any(|a| a == "--bench");
    let (size, rounds) = if full { (MIX, ROUNDS) } else { (500, 1) };
    let mix = entries(size);
    let bytes: usize = mix.iter().map(String::len).sum();
    let at: DateTime<Utc> = Utc::now();
    let mut mapper = Mapper::new(&MappingConfig::default()).expect("default mapping config");
    let mut out = Vec::with_capacity(bytes * 3);

    let baseline = best_rate(rounds, || {
        out.clear();
        for e in &mix {
            let v: Value = serde_json::from_str(e).expect("generated entries are JSON");
            serde_json::to_writer(&mut out, &v).expect("Vec write");
            out.push(b'\n');
        }
        black_box(&out);
        mix.len()
    });
    let mapped = best_rate(rounds, || {
        out.clear();
        for e in &mix {
            let doc = mapper.map_entry(e, at);
            serde_json::to_writer(&mut out, &doc).expect("Vec write");
            out.push(b'\n');
        }
        black_box(&out);
        mix.len()
    });
    let ndjson = mix.join("\n");
    let stream = best_rate(rounds, || {
        out.clear();
        let stats =
            map_stream(&mut mapper, ndjson.as_bytes(), &mut out, Utc::now).expect("Vec write");
        black_box(&out);
        stats.documents as usize
    });
    println!(
        "mix: {size} entries, {:.0} bytes/entry on average; best of {rounds} rounds{}",
        bytes as f64 / size as f64,
        if full {
            ""
        } else {
            " (smoke run: use cargo bench for figures)"
        }
    );
    println!("parse+reserialise    {baseline:>12.0} entries/s");
    println!(
        "map_entry+serialise  {mapped:>12.0} entries/s  ({:.2}x the time of parse+reserialise)",
        baseline / mapped
    );
    println!(
        "map_stream (command) {stream:>12.0} entries/s  ({:.2}x)",
        baseline / stream
    );
}
