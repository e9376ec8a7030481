#!/usr/bin/env bash
# The simulator stays apart: the binary builds without the `simulator` feature (as the
# container image is built), nothing else in the product needs it, and there `simulate` and
# `demo` fail with exit 2 and a message that says the build left them out. Then the default
# debug binary is rebuilt, since later checks run the simulator from target/debug.
# Takes about two minutes (the crate itself is compiled twice; dependencies are shared).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --quiet --no-default-features --bin slack-audit-source
cp target/debug/slack-audit-source "$work/without-simulator"
cargo build --quiet --bin slack-audit-source
fail=""
for command in simulate demo; do
  set +e
  "$work/without-simulator" "$command" >"$work/out" 2>"$work/err"
  code=$?
  set -e
  if [ "$code" != 2 ] || ! grep -q "not built into this binary" "$work/err" || [ -s "$work/out" ]; then
    echo "check-features: \`$command\` without the simulator exited $code, expected 2 with a clear message; stderr:" >&2
    cat "$work/err" >&2
    fail=1
  fi
done
if ! "$work/without-simulator" --help | grep -q '^  run'; then
  echo "check-features: the build without the simulator has no \`run\`" >&2
  fail=1
fi
[ -z "$fail" ]
echo "check-features: ok (builds without the simulator; simulate and demo exit 2 there)"
