#!/usr/bin/env bash
# The test command the README gives: the Rust suite, then every scripts/ci/check-*.sh
# (Helm chart, live metrics scrape, bounded soak...), each of which says what it checks.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
for check in scripts/ci/check-*.sh; do
  [ -e "$check" ] || continue
  echo "== $check"
  bash "$check"
done
