#!/usr/bin/env bash
# Bounded soak for CI: 20,000 events through injected faults, 30 SIGKILLs, stdout and the
# HTTP sink with an unreliable receiver. Full size: scripts/soak.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
SOAK_EVENTS=${SOAK_EVENTS:-20000} SOAK_KILLS=${SOAK_KILLS:-30} SOAK_LIMIT=${SOAK_LIMIT:-500} \
  cargo test --test it soak -- --ignored --test-threads 1 --nocapture
