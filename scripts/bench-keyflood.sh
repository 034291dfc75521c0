#!/usr/bin/env bash
# Valid-key latency and throughput while random invalid keys flood the
# server (the negative API-key cache under attack), against the release
# binary with wrk (`apt-get install wrk`). Traffic goes to 127.0.0.1 only;
# each run is bounded by DURATION seconds.
#
# Runs: (1) GET /v1/payments/{id} with the valid key alone; (2) the same
# while a second wrk sends random invalid keys; (3) the flood with the
# failed-authentication limit on (the default), which answers it 429.
# The per-merchant rate limit is off for the measurement (GATEWAY_RATE_LIMIT=0).
# In (3) the valid key shares 127.0.0.1 with the flood: once its cache entry
# expires (10 s) it is refused too (wrk counts Non-2xx), so keep DURATION <= 10.
#
#   ./scripts/bench-keyflood.sh                 # 32 + 32 connections, 8 s per run
#   CONNECTIONS=16 FLOOD_CONNECTIONS=64 DURATION=5 ./scripts/bench-keyflood.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-32}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-32}
DURATION=${DURATION:-8}
THREADS=${THREADS:-1}
PORT=${PORT:-18182}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release -p gateway-server >&2

work=$(mktemp -d)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  server_pid=""
}
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT

# Starts the server on a fresh database with the failed-auth limit $1; sets $key and $payment.
start_server() {
  rm -f "$work"/bench.db*
  GATEWAY_LISTEN="127.0.0.1:$PORT" \
  GATEWAY_DATABASE_URL="sqlite://$work/bench.db" \
  GATEWAY_LOG_LEVEL=warn \
  GATEWAY_MODE=sandbox \
  GATEWAY_RATE_LIMIT=0 \
  GATEWAY_AUTH_FAILURES_PER_MINUTE="$1" \
    ./target/release/gateway serve >"$work/stdout" 2>"$work/stderr" &
  server_pid=$!
  for _ in $(seq 50); do
    grep -q 'gw_sk_' "$work/stdout" 2>/dev/null && break
    sleep 0.1
  done
  key=$(grep -o 'gw_sk_[0-9a-f]*' "$work/stdout" | head -1)
  [ -n "$key" ] || { echo "the server did not print a sandbox key" >&2; cat "$work/stderr" >&2; exit 1; }
  sleep 0.5
  payment=$(curl -sf "http://127.0.0.1:$PORT/v1/payments" -H "X-API-Key: $key" -H 'Content-Type: application/json' \
    -d '{"amount": 50.00, "currency": "USD", "payment_method": "pm_card_visa"}' | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)
}

cat >"$work/flood.lua" <<'LUA'
-- A new random key on every request: each one misses the cache.
math.randomseed(os.time())
request = function()
  local key = "gw_sk_" .. string.format("%08x%08x%08x%08x", math.random(0, 0x7fffffff),
    math.random(0, 0x7fffffff), math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  return wrk.format("GET", "/v1/payments", { ["X-API-Key"] = key })
end
LUA

valid() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "X-API-Key: $key" \
    "http://127.0.0.1:$PORT/v1/payments/$payment"
}
flood() {
  wrk -t"$THREADS" -c"$FLOOD_CONNECTIONS" -d"${DURATION}s" -s "$work/flood.lua" "http://127.0.0.1:$PORT" >"$work/flood.txt"
}

echo "== machine: $(nproc) cores, load average $(cut -d" " -f1-3 /proc/loadavg), $(uname -sr)"
start_server 0
echo "== (1) valid key alone: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"
valid
echo
echo "== (2) valid key while $FLOOD_CONNECTIONS connections flood random invalid keys (failed-auth limit off)"
flood & flood_pid=$!
valid
wait "$flood_pid"
echo "-- the flood:"; grep -E 'Requests/sec|Non-2xx' "$work/flood.txt" || true
stop_server
echo
start_server 20
curl -s -o /dev/null "http://127.0.0.1:$PORT/v1/payments/$payment" -H "X-API-Key: $key"
echo "== (3) the same flood with the failed-auth limit at its default (20 a minute per address)"
flood & flood_pid=$!
valid
wait "$flood_pid"
echo "-- the flood:"; grep -E 'Requests/sec|Non-2xx' "$work/flood.txt" || true
echo "== requests by route and status (from /metrics):"
curl -s "http://127.0.0.1:$PORT/metrics" | grep '^gateway_http_requests_total' || true
