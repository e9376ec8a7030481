#!/usr/bin/env bash
# Live scrape: starts the debug binary's simulator and `run --metrics-listen` against it,
# waits until /readyz answers 200, scrapes /metrics, lints it with `promtool check metrics`,
# checks the documented families are there, then SIGTERMs both and expects exit 0 from each.
# Bounded: a few seconds when healthy, about a minute at worst; everything it starts is stopped on exit.
#
# CHECK_METRICS_SIMULATOR may name another command that behaves like `simulate --listen ADDR`
# (prints "listening on ADDR" on stderr), to test this script before the simulator exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/debug/slack-audit-source
if [ ! -x "$bin" ]; then
  timeout 900 cargo build --bin slack-audit-source
fi
command -v promtool >/dev/null || { echo "check-metrics: promtool missing; run scripts/ci/install-ops.sh" >&2; exit 1; }

work=$(mktemp -d)
sim_pid=""
run_pid=""
cleanup() {
  for pid in $run_pid $sim_pid; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${CHECK_METRICS_SIMULATOR:-}" ]; then
  read -r -a sim_cmd <<<"$CHECK_METRICS_SIMULATOR"
else
  # A binary built without the `simulator` feature has nothing to run against; saying so
  # beats failing (scripts/ci/check-features.sh checks that build on its own).
  if ! "$bin" simulate --help 2>/dev/null | grep -q -- '--rate'; then
    echo "check-metrics: SKIPPED: $bin was built without the simulator (cargo build --bin slack-audit-source builds it with)"
    exit 0
  fi
  sim_cmd=("$bin" simulate --rate 20)
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Free ports are picked here rather than with :0, so the script does not depend on the
# simulator printing the bound port; the window before each bind is tiny, and a clash fails
# loudly rather than silently.
sim_port=$(free_port)
"${sim_cmd[@]}" --listen "127.0.0.1:$sim_port" 2>"$work/sim.err" >/dev/null &
sim_pid=$!
api=""
for _ in $(seq 100); do
  if grep -q 'listening on' "$work/sim.err"; then
    api="127.0.0.1:$sim_port"
    break
  fi
  kill -0 "$sim_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$api" ]; then
  echo "check-metrics: the simulator did not say it was listening:" >&2
  cat "$work/sim.err" >&2
  exit 1
fi

port=$(free_port)
SLACK_AUDIT_TOKEN=xoxp-check-metrics-not-a-real-token "$bin" run \
  --api-url "http://$api" --state-dir "$work/state" \
  --settle-lag 1s --interval 1s --initial-lookback 5m \
  --metrics-listen "127.0.0.1:$port" --log-format json >"$work/out.ndjson" 2>"$work/run.err" &
run_pid=$!

ready=""
for _ in $(seq 300); do
  if [ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ]; then
    ready=yes
    break
  fi
  kill -0 "$run_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "check-metrics: /readyz never answered 200; it says: $(curl -s --max-time 2 "http://127.0.0.1:$port/readyz")" >&2
  tail -n 20 "$work/run.err" >&2
  exit 1
fi
[ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 200 ]

curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" >"$work/metrics.txt"
promtool check metrics <"$work/metrics.txt"
for family in slack_source_requests_total slack_source_pages_total slack_source_events_received_total \
  slack_source_last_successful_poll_timestamp_seconds slack_source_checkpoint_lag_seconds \
  slack_source_request_duration_seconds; do
  if ! grep -q "^$family" "$work/metrics.txt"; then
    echo "check-metrics: $family is missing from /metrics" >&2
    exit 1
  fi
done

# SIGTERM: each finishes what it has in hand and exits 0, well within a pod's grace period.
stop() {
  local pid=$1 name=$2 rc=0
  kill -TERM "$pid"
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "check-metrics: $name did not stop within 15 s of SIGTERM" >&2
    exit 1
  fi
  wait "$pid" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "check-metrics: $name exited $rc after SIGTERM" >&2
    tail -n 20 "$work/$name.err" >&2
    exit 1
  fi
}
stop "$run_pid" run
run_pid=""
stop "$sim_pid" sim
sim_pid=""
echo "check-metrics: ok ($(grep -c '^slack_source' "$work/metrics.txt") samples, $(wc -l <"$work/out.ndjson") documents)"
