#!/usr/bin/env bash
# Side by side with a peer: helr 0.7.0, a generic HTTP log poller with a Slack recipe
# (docs/integrations/slack.md in its crate), against our simulator, alternating run by run:
#  1. a backlog of 30,000 events (`simulate --backfill 30000 --rate 0`) at page size 1000;
#  2. a run that finds nothing new (`simulate --backfill 10 --rate 0`, state already caught up).
# Each line is the median of RUNS (default 5) runs of the child's own getrusage: CPU (user +
# system) and peak RSS. Output goes to /dev/null for both.
#
# helr is installed with `cargo install --locked` into HELR_ROOT (default
# ~/.cache/slack-audit-source/helr, outside the repository) unless HELR names a binary.
# BIN=path measures that binary instead of building this tree's.
# helr passes raw entries through; we map to ECS, parse user agents and analyse (default run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
RUNS=${RUNS:-5}
HELR_ROOT=${HELR_ROOT:-$HOME/.cache/slack-audit-source/helr}
HELR=${HELR:-$HELR_ROOT/bin/helr}
if [ ! -x "$HELR" ]; then
  cargo install helr --version 0.7.0 --locked --root "$HELR_ROOT"
fi
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin slack-audit-source
  BIN=target/release/slack-audit-source
fi
work=$(mktemp -d)
cleanup() { stop_listeners; rm -rf "$work"; }
trap cleanup EXIT
export SLACK_AUDIT_TOKEN=xoxp-bench

# helr_config FILE SIM STATE_DB: helr's Slack recipe pointed at the simulator. helr sends the
# URL's query again on cursor pages (and `query_params` only on the first), so the page size
# goes in the URL. No pause between pages (the recipe's `page_delay_secs: 2` is for Slack's
# rate limit), no API or metrics listener (we run none either).
helr_config() {
  cat >"$1" <<EOF
global:
  log_level: warn
  state:
    backend: sqlite
    path: "$3"
  api:
    enabled: false
  metrics:
    enabled: false
sources:
  slack-audit:
    url: "http://$2/audit/v1/logs?limit=1000"
    schedule:
      interval_secs: 300
    auth:
      type: bearer
      token_env: SLACK_AUDIT_TOKEN
    headers:
      Accept: "application/json"
    pagination:
      strategy: cursor
      cursor_param: cursor
      cursor_path: response_metadata.next_cursor
      max_pages: 1000
    incremental_from:
      state_key: "oldest_ts"
      event_timestamp_path: "date_create"
      param_name: "oldest"
    resilience:
      timeout_secs: 30
      retries:
        max_attempts: 5
        initial_backoff_secs: 1
        max_backoff_secs: 10
        multiplier: 2.0
      rate_limit:
        respect_headers: true
        page_delay_secs: 0
EOF
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo "helr: $("$HELR" --version 2>&1 | head -1); ours: $("$BIN" --version)"

sim=$(start_listener "$work/sim30k.log" "$BIN" simulate --listen 127.0.0.1:0 --seed 1 --rate 0 --backfill 30000)
for run in $(seq 1 "$RUNS"); do
  helr_config "$work/helr30k-$run.yaml" "$sim" "$work/helr30k-$run.db"
done
rusage_runs "$RUNS" \
  "30,000 events, ours" "$BIN" run --api-url "http://$sim" --state-dir "$work/ours30k-{run}" \
    --initial-lookback 25h --settle-lag 1s --limit 1000 --max-requests-per-minute 100000 --once ::: \
  "30,000 events, helr" "$HELR" run --config "$work/helr30k-{run}.yaml" --once
# What each delivered, from one more run of each, unmeasured.
echo "lines written: ours $("$BIN" run --api-url "http://$sim" --state-dir "$work/ours30k-count" --initial-lookback 25h \
  --settle-lag 1s --limit 1000 --max-requests-per-minute 100000 --once 2>/dev/null | wc -l)" \
  "(documents and findings), helr $(helr_config "$work/helr30k-count.yaml" "$sim" "$work/helr30k-count.db"
  "$HELR" run --config "$work/helr30k-count.yaml" --once 2>/dev/null | wc -l)"

sim=$(start_listener "$work/sim10.log" "$BIN" simulate --listen 127.0.0.1:0 --seed 1 --rate 0 --backfill 10)
helr_config "$work/helr10.yaml" "$sim" "$work/helr10.db"
"$HELR" run --config "$work/helr10.yaml" --once >/dev/null 2>&1
"$BIN" run --api-url "http://$sim" --state-dir "$work/ours10" --initial-lookback 25h --settle-lag 1s --once \
  >/dev/null 2>&1
sleep 1.1 # past our settle lag: each run opens a window and reads one empty page
rusage_runs "$RUNS" \
  "nothing new, ours" "$BIN" run --api-url "http://$sim" --state-dir "$work/ours10" \
    --initial-lookback 25h --settle-lag 1s --once ::: \
  "nothing new, helr" "$HELR" run --config "$work/helr10.yaml" --once
