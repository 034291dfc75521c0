#!/usr/bin/env bash
# The `GATEWAY_BIN` to give ../shared/bench-peers/common/run-all.sh: the
# release gateway as the benchmarks measure it. That harness passes only the
# listen address, database, keys and provider settings, and a release build
# refuses to start without a mode, so this sets the sandbox (the harness's
# payment load uses the mock provider) and turns off the per-merchant rate
# limit and the failed-authentication limit, whose defaults (100 requests/s,
# 20 failures a minute) would otherwise be what the load measures.
#
#   cargo build --release -p gateway-server
#   PERF_ROOT=$SCRATCH GATEWAY_BIN=$PWD/scripts/bench-peers-gateway.sh \
#     bash ../shared/bench-peers/common/run-all.sh 2 64
set -euo pipefail
binary="$(cd "$(dirname "$0")/.." && pwd)/target/release/gateway"
export GATEWAY_MODE="${GATEWAY_MODE:-sandbox}"
export GATEWAY_RATE_LIMIT="${GATEWAY_RATE_LIMIT:-0}"
export GATEWAY_AUTH_FAILURES_PER_MINUTE="${GATEWAY_AUTH_FAILURES_PER_MINUTE:-0}"
exec "$binary" "$@"
