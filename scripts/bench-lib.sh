# Shared by scripts/bench.sh and scripts/bench-peer.sh (sourced, not run).
#
# start_listener LOG CMD...  starts CMD in the background, waits for its "listening on ADDR"
#                            line in LOG, prints ADDR (host:port). It runs in `$(...)`, a
#                            subshell, so the pid goes to $work/pids for the caller's cleanup.
# stop_listeners             kills what start_listener started (the scripts' EXIT trap).
# rusage_runs RUNS LABEL CMD... [::: LABEL CMD...]...
#                            runs each command RUNS times, the commands alternating (A B A B
#                            …), and prints per label the median of the runs of the child's
#                            own getrusage: CPU (user + system) and peak RSS. In a command,
#                            `{run}` becomes the run's number (1..RUNS), so each run can have
#                            a fresh state directory. stdout goes to /dev/null; stderr to
#                            $work/LABEL.err. A command that exits non-zero stops the script.
#                            With EVENTS=n in the environment, also the median wall time and
#                            n / that time as events/s.

pids=()

start_listener() {
  local log=$1; shift
  "$@" 2>"$log" >/dev/null &
  pids+=($!)
  echo $! >>"$work/pids"
  for _ in $(seq 1 600); do
    if grep -q "listening on" "$log"; then
      grep -o "listening on [^ ]*" "$log" | head -1 | awk '{print $3}' | sed 's#http://##'
      return
    fi
    sleep 0.1
  done
  echo "no listener in $log" >&2; exit 1
}

stop_listeners() {
  local p
  for p in "${pids[@]}" $(cat "$work/pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
}

rusage_runs() {
  [ -x "$work/rusage" ] || rustc -O --edition 2021 -o "$work/rusage" scripts/rusage.rs
  python3 - "$work" "$@" <<'PY'
import os, statistics, subprocess, sys, time
work, runs, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
cmds, cur = [], None
for a in args:
    if a == ":::":
        cur = None
    elif cur is None:
        cur = (a, [])
        cmds.append(cur)
    else:
        cur[1].append(a)
results = {label: [] for label, _ in cmds}
for run in range(1, runs + 1):
    for label, argv in cmds:
        argv = [a.replace("{run}", str(run)) for a in argv]
        err = os.path.join(work, label.replace(" ", "_") + ".err")
        usage = os.path.join(work, "usage")
        started = time.monotonic()
        # Through scripts/rusage.rs, which reports its child's own getrusage (wait4): a child
        # forked from this Python would start with Python's memory, and the kernel keeps that
        # peak RSS across exec. The launcher is small (about 2 MiB), so the peak is the
        # command's own.
        with open(err, "ab") as e:
            r = subprocess.run([os.path.join(work, "rusage"), usage] + argv,
                               stdout=subprocess.DEVNULL, stderr=e)
        wall = time.monotonic() - started
        if r.returncode != 0:
            sys.exit(f"{label}: exit {r.returncode} (see {err})")
        user, system, kib = open(usage).read().split()
        ru_cpu, ru_rss = float(user) + float(system), int(kib) / 1024
        results[label].append((ru_cpu, ru_rss, wall))
events = int(os.environ.get("EVENTS", "0"))
for label, rs in results.items():
    cpu = statistics.median(r[0] for r in rs)
    rss = statistics.median(r[1] for r in rs)
    wall = statistics.median(r[2] for r in rs)
    rate = f"{wall:.2f} s = {events / wall:,.0f} events/s; " if events else ""
    each = " ".join(f"{c:.3f}/{m:.1f}" for c, m, _ in rs)
    print(f"{label}: median of {runs}: {rate}CPU {cpu:.3f} s; peak RSS {rss:.1f} MiB  (each run, CPU s/MiB: {each})", flush=True)
PY
}

# small_runs BIN [OTHER_BIN]: the two small measurements of the cost issue, each the median of
# RUNS runs, with OTHER_BIN (if given) alternating with BIN against the same simulator:
#  - nothing new: `run --once` with a checkpoint already caught up, against
#    `simulate --backfill 10 --rate 0` (the checkpoint is made by one run before);
#  - 30,000 events: a backfill of `simulate --backfill 30000 --rate 0` at --limit 1000,
#    analysis on, output to /dev/null, a fresh state directory each run.
# Needs `work` (a scratch directory) and SLACK_AUDIT_TOKEN or sets a dummy one.
small_runs() {
  local bins=("$@") i sim spec=() tag=("" " [COMPARE_BIN]")
  export SLACK_AUDIT_TOKEN=${SLACK_AUDIT_TOKEN:-xoxp-bench}
  sim=$(start_listener "$work/sim10.log" "${bins[0]}" simulate --listen 127.0.0.1:0 --seed 1 --rate 0 --backfill 10)
  for i in "${!bins[@]}"; do
    "${bins[$i]}" run --api-url "http://$sim" --state-dir "$work/nothing$i" --initial-lookback 25h \
      --settle-lag 1s --once >/dev/null 2>&1
    spec+=(::: "nothing new${tag[$i]}" "${bins[$i]}" run --api-url "http://$sim" --state-dir "$work/nothing$i" \
      --initial-lookback 25h --settle-lag 1s --once)
  done
  sleep 1.1 # past the settle lag: each run opens a window and reads one empty page
  rusage_runs "$RUNS" "${spec[@]:1}"
  sim=$(start_listener "$work/sim30k.log" "${bins[0]}" simulate --listen 127.0.0.1:0 --seed 1 --rate 0 --backfill 30000)
  spec=()
  for i in "${!bins[@]}"; do
    spec+=(::: "30,000 events${tag[$i]}" "${bins[$i]}" run --api-url "http://$sim" --state-dir "$work/b30k-$i-{run}" \
      --initial-lookback 25h --settle-lag 1s --limit 1000 --max-requests-per-minute 100000 --once)
  done
  rusage_runs "$RUNS" "${spec[@]:1}"
}
