#!/usr/bin/env bash
# The user-agent rules the binary embeds (src/mapping/uap-core/regexes.json) are exactly
# uap-core's regexes.yaml beside them, converted by scripts/uap-regexes-to-json.py; and the
# production dependency graph keeps out what was removed for cause: serde_yaml (unmaintained),
# maxminddb before 0.27 (RUSTSEC-2025-0132) and its mmap feature, anyhow (unused).
# Needs scripts/ci/install-ops.sh (PyYAML in .ci/venv). Takes a second.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.ci/venv
if ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
  echo "check-deps: PyYAML is missing from $venv; run scripts/ci/install-ops.sh" >&2
  exit 1
fi
"$venv/bin/python" scripts/uap-regexes-to-json.py --check

tree=$(cargo tree -e normal --prefix none --format '{p} {f}' 2>/dev/null)
fail=""
for banned in serde_yaml anyhow memmap2; do
  if grep -q "^$banned v" <<<"$tree"; then
    echo "check-deps: $banned is in the production dependency graph" >&2
    fail=1
  fi
done
maxmind=$(grep -o '^maxminddb v[0-9.]*' <<<"$tree" | head -n1 | cut -d v -f2)
if [ -z "$maxmind" ] || [ "$(printf '%s\n0.27.0\n' "$maxmind" | sort -V | head -n1)" != 0.27.0 ]; then
  echo "check-deps: maxminddb ${maxmind:-absent} is older than 0.27 (RUSTSEC-2025-0132)" >&2
  fail=1
fi
[ -z "$fail" ]
echo "check-deps: ok (maxminddb $maxmind, no serde_yaml, anyhow or memmap2)"
