#!/usr/bin/env bash
# End-to-end benchmarks (release build), figures for BENCHMARKS.md:
#  1. backfill of N events (default 1,000,000) from the simulator through stdout to /dev/null
#     (the median of RUNS runs);
#  2. the same through the HTTP sink to a local receiver (examples/bench_receiver.rs);
#  3. idle RSS and CPU over a minute of polling once caught up (IDLE_SECS, default 60);
#  4. a run that finds nothing new, and a backlog of 30,000 events at --limit 1000 (small_runs,
#     shared with scripts/bench-peer.sh): the median of RUNS (default 5) runs each.
# Each reports events/s, CPU seconds and peak RSS (getrusage of the child).
# COMPARE_BIN=path/to/other/slack-audit-source runs item 4 with that binary too, alternating.
# ONLY=small runs item 4 alone, ONLY=stdout items 4 and 1. BIN=path measures that binary instead of building this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
N=${N:-1000000}
RUNS=${RUNS:-5}
LIMIT=${LIMIT:-9999}
IDLE_SECS=${IDLE_SECS:-60}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin slack-audit-source
  BIN=target/release/slack-audit-source
fi
[ -n "${ONLY:-}" ] || cargo build --release --quiet --example bench_receiver
work=$(mktemp -d)
cleanup() { stop_listeners; rm -rf "$work"; }
trap cleanup EXIT

# measure LABEL CMD...: runs CMD, prints wall, CPU and peak RSS of the child.
measure() {
  local label=$1; shift
  python3 - "$label" "$N" "$@" <<'PY'
import resource, subprocess, sys, time
label, n, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
t = time.monotonic()
r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
wall = time.monotonic() - t
u = resource.getrusage(resource.RUSAGE_CHILDREN)
if r.returncode != 0:
    sys.exit(f"{label}: exit {r.returncode}")
print(f"{label}: {n} events in {wall:.2f} s = {n / wall:,.0f} events/s; CPU {u.ru_utime + u.ru_stime:.2f} s; peak RSS {u.ru_maxrss / 1024:.1f} MiB")
PY
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
small_runs "$BIN" ${COMPARE_BIN:+"$COMPARE_BIN"}
[ "${ONLY:-}" = small ] && exit 0
sim=$(start_listener "$work/sim.log" "$BIN" simulate --listen 127.0.0.1:0 --seed 1 --rate 0 --backfill "$N" --backfill-span 6h)
common=(run --api-url "http://$sim" --initial-lookback 7h --settle-lag 1s --limit "$LIMIT" --max-requests-per-minute 100000 --once)
# The stdout backfill as the median of RUNS runs, alternating with COMPARE_BIN if given.
spec=(::: "stdout backfill" "$BIN" "${common[@]}" --state-dir "$work/s1-{run}")
[ -n "${COMPARE_BIN:-}" ] && spec+=(::: "stdout backfill [COMPARE_BIN]" "$COMPARE_BIN" "${common[@]}" --state-dir "$work/s1c-{run}")
SLACK_AUDIT_TOKEN=xoxp-bench EVENTS=$N rusage_runs "$RUNS" "${spec[@]:1}"
[ "${ONLY:-}" = stdout ] && exit 0

recv=$(start_listener "$work/recv.log" target/release/examples/bench_receiver 127.0.0.1:0)
SLACK_AUDIT_TOKEN=xoxp-bench measure "http backfill" "$BIN" "${common[@]}" --state-dir "$work/s2" --sink http --http-url "http://$recv/"
echo "receiver counted $(curl -s "http://$recv/count" 2>/dev/null || python3 -c "import urllib.request;print(urllib.request.urlopen('http://$recv/count').read().decode())") lines"

# Idle: caught up, polling every 10 s for IDLE_SECS against a trickle of 1 event/s.
idle_sim=$(start_listener "$work/idle.log" "$BIN" simulate --listen 127.0.0.1:0 --seed 2 --rate 1)
SLACK_AUDIT_TOKEN=xoxp-bench "$BIN" run --api-url "http://$idle_sim" --state-dir "$work/s3" --initial-lookback 1m \
  --settle-lag 1s --interval 10s >/dev/null 2>&1 &
run_pid=$!; pids+=($run_pid)
sleep 5
python3 - "$run_pid" "$IDLE_SECS" <<'PY'
import os, sys, time
pid, secs = int(sys.argv[1]), int(sys.argv[2])
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
c0, peak = cpu(), 0.0
for _ in range(secs):
    peak = max(peak, rss()); time.sleep(1)
print(f"idle: {secs} s of polling: CPU {cpu() - c0:.2f} s ({100 * (cpu() - c0) / secs:.2f}% of a core); RSS {rss():.1f} MiB (max {peak:.1f} MiB)")
PY
