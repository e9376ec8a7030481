//! What the detection rules cost per event, end to end: `run --once` in process over the
//! simulator's ordinary traffic (a backfill of N entries over 6 h, no attack story), with the
//! default rules and with the same rules less their `[[detection]]` tables, alternating.
//!
//! The difference per entry is what the rule evaluation adds to the pipeline: handing each
//! entry to the engine, the action index, session tracking, and the state saved with each
//! checkpoint. A plain `harness = false` main, like `benches/mapping.rs`; the best of ROUNDS
//! runs each (least disturbed by other processes on a shared machine).
//!
//! `cargo bench --bench detections` runs it; `-- N` sets the entries (default 200,000).

use slack_audit_source::config::{Cli, Command};
use slack_audit_source::shutdown::Shutdown;
use slack_audit_source::simulate::{start, SimOptions};
use std::time::Instant;

/// Runs of each kind.
const ROUNDS: usize = 5;

/// The default rules file without its detection rules (they are the file's last part, from
/// the `[detections]` table on).
fn rules_without_detections() -> String {
    let all = slack_audit_source::analysis::rules::DEFAULT_RULES;
    let at = all
        .find("\n[detections]")
        .expect("the default rules have a [detections] table");
    all[..at].to_string()
}

fn config(
    url: &str,
    state: &std::path::Path,
    rules: &std::path::Path,
) -> slack_audit_source::RunConfig {
    let state = state.to_string_lossy().to_string();
    let rules = rules.to_string_lossy().to_string();
    let argv = [
        "slack-audit-source",
        "run",
        "--api-url",
        url,
        "--state-dir",
        &state,
        "--once",
        "--settle-lag",
        "1s",
        "--initial-lookback",
        "7h",
        "--limit",
        "9999",
        "--max-requests-per-minute",
        "100000",
        "--rules",
        &rules,
    ];
    let Command::Run(args) = <Cli as clap::Parser>::try_parse_from(argv)
        .expect("bench args parse")
        .command
    else {
        unreachable!("asked for run")
    };
    slack_audit_source::RunConfig::from_args_with_token(
        *args,
        Some(secrecy::SecretString::from("xoxp-bench")),
    )
    .expect("valid bench config")
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let with_rules = dir.path().join("with.toml");
    let without_rules = dir.path().join("without.toml");
    std::fs::write(
        &with_rules,
        slack_audit_source::analysis::rules::DEFAULT_RULES,
    )
    .unwrap();
    std::fs::write(&without_rules, rules_without_detections()).unwrap();
    rt.block_on(async {
        let now = chrono::Utc::now().timestamp();
        let options = SimOptions {
            seed: 1,
            backfill_events: n,
            backfill_secs: 6 * 3600,
            backfill_end: Some(now - 60),
            ..SimOptions::default()
        };
        let sim = start("127.0.0.1:0".parse().unwrap(), options, Shutdown::never())
            .await
            .expect("the simulator starts");
        let url = sim.url();
        let mut best = [f64::MAX; 2];
        for round in 0..ROUNDS {
            for (i, rules) in [&without_rules, &with_rules].iter().enumerate() {
                let state = dir.path().join(format!("state-{round}-{i}"));
                let config = config(&url, &state, rules);
                let overrides = slack_audit_source::Overrides::new().stdout(tokio::io::sink());
                let t = Instant::now();
                slack_audit_source::run_with(config, overrides, std::future::pending())
                    .await
                    .expect("the run succeeds");
                let ns = t.elapsed().as_nanos() as f64 / n as f64;
                best[i] = best[i].min(ns);
            }
        }
        println!(
            "run --once over {n} ordinary entries, best of {ROUNDS} each: {:.0} ns/entry without detection rules, {:.0} ns/entry with the default pack: +{:.0} ns/entry (+{:.1}%)",
            best[0],
            best[1],
            best[1] - best[0],
            100.0 * (best[1] - best[0]) / best[0]
        );
    });
}
