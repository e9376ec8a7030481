#!/usr/bin/env bash
# The test command the README gives: installs what the checks need (each scripts/ci/install-*.sh,
# idempotent: it installs only what is missing, so a second run costs seconds), then runs the
# Rust suite, then every scripts/ci/check-*.sh (Helm chart, live metrics scrape, bounded
# soak...) and check-*.py (the modules' import layers), each of which says what it checks. Works on a fresh Debian machine with Rust: the
# installers use apt-get as root, or through sudo when not root (and say so when neither is
# possible). SKIP_INSTALL=1 skips the installers, for a machine that has the tools by other means.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SKIP_INSTALL:-}" != 1 ]; then
  for installer in scripts/ci/install-*.sh; do
    [ -e "$installer" ] || continue
    echo "== $installer"
    bash "$installer"
  done
fi
cargo test --all-targets
for check in scripts/ci/check-*.sh scripts/ci/check-*.py; do
  [ -e "$check" ] || continue
  echo "== $check"
  case "$check" in
    *.py) python3 "$check" ;;
    *) bash "$check" ;;
  esac
done
