#!/usr/bin/env bash
# Full soak (release build): 200,000 events, 30 SIGKILLs at random moments, faults injected
# by the simulator; through stdout and through the HTTP sink with receiver outages.
# Override with SOAK_EVENTS, SOAK_KILLS, SOAK_LIMIT.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_EVENTS=${SOAK_EVENTS:-200000} SOAK_KILLS=${SOAK_KILLS:-30} SOAK_LIMIT=${SOAK_LIMIT:-9999} \
  cargo test --release --test it soak -- --ignored --test-threads 1 --nocapture
