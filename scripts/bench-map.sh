#!/usr/bin/env bash
# End-to-end throughput of the release `map` command on one core: generates N realistic entries
# (default 1,000,000; the same mix as benches/mapping.rs, written by that bench's --emit mode),
# maps them from a file to a file, and prints entries/s with the machine it ran on.
#
#   scripts/bench-map.sh [N]
#
# Pinned to one CPU with taskset when available, so the figure is per core. The in-process
# comparison with parse+reserialise is `cargo bench --bench mapping`.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --bin slack-audit-source --quiet
bench_bin="$(cargo bench --bench mapping --no-run --quiet --message-format=json 2>/dev/null \
  | grep '"kind":\["bench"\]' | grep -o '"executable":"[^"]*"' | tail -n1 | cut -d'"' -f4)"
[ -x "$bench_bin" ] || { echo "cannot find the mapping bench binary" >&2; exit 1; }
"$bench_bin" --emit "$n" > "$work/entries.ndjson"
size=$(stat -c %s "$work/entries.ndjson")

pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi

start=$(date +%s%N)
"${pin[@]}" target/release/slack-audit-source map < "$work/entries.ndjson" > "$work/out.ndjson"
end=$(date +%s%N)
docs=$(wc -l < "$work/out.ndjson")
errors=$(grep -c '"pipeline_error"' "$work/out.ndjson" || true)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
awk -v n="$n" -v size="$size" -v docs="$docs" -v errors="$errors" -v ns="$((end - start))" 'BEGIN {
  secs = ns / 1e9
  printf "input: %d entries, %.1f MB\n", n, size / 1e6
  printf "map: %d documents (%d pipeline errors) in %.2f s = %.0f entries/s on one core\n", docs, errors, secs, docs / secs
}'
[ "$docs" -eq "$n" ] || { echo "expected $n documents, got $docs" >&2; exit 1; }
