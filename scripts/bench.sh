#!/usr/bin/env bash
# Load-tests the release gateway server on this machine with wrk
# (`apt-get install wrk`): POST /v1/payments (mock provider, durable SQLite)
# and GET /v1/payments/{id}, then prints requests/s, latency percentiles and
# RSS (idle, and peak under load). Traffic goes to 127.0.0.1 only; every run
# is bounded by DURATION seconds.
#
#   ./scripts/bench.sh                 # 64 connections, 15 s per run
#   CONNECTIONS=32 DURATION=5 ./scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-15}
THREADS=${THREADS:-2}
PORT=${PORT:-18181}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release -p gateway-server >&2

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

GATEWAY_LISTEN="127.0.0.1:$PORT" \
GATEWAY_DATABASE_URL="sqlite://$work/bench.db" \
GATEWAY_LOG_LEVEL=warn \
GATEWAY_MODE=sandbox \
GATEWAY_RATE_LIMIT=0 \
GATEWAY_AUTH_FAILURES_PER_MINUTE=0 \
  ./target/release/gateway serve >"$work/stdout" 2>"$work/stderr" &
server_pid=$!

for _ in $(seq 50); do
  grep -q 'gw_sk_' "$work/stdout" 2>/dev/null && break
  sleep 0.1
done
key=$(grep -o 'gw_sk_[0-9a-f]*' "$work/stdout" | head -1)
[ -n "$key" ] || { echo "the server did not print a sandbox key" >&2; cat "$work/stderr" >&2; exit 1; }
sleep 1
rss_kb() { awk -v field="$1" '$1 == field":" {print $2}' "/proc/$server_pid/status"; }
idle_rss=$(rss_kb VmRSS)

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"amount": 50.00, "currency": "USD", "payment_method": "pm_card_visa", "order_id": "bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "$key"
LUA

payment=$(curl -sf "http://127.0.0.1:$PORT/v1/payments" -H "X-API-Key: $key" -H 'Content-Type: application/json' \
  -d '{"amount": 50.00, "currency": "USD", "payment_method": "pm_card_visa"}' | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)

echo "== machine: $(nproc) cores ($(lscpu | sed -n "s/^Model name: *//p")), load average $(cut -d" " -f1-3 /proc/loadavg), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "== idle RSS: $((idle_rss / 1024)) MiB"
echo
echo "== POST /v1/payments: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" "http://127.0.0.1:$PORT/v1/payments"
echo
echo "== GET /v1/payments/{id}: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "X-API-Key: $key" \
  "http://127.0.0.1:$PORT/v1/payments/$payment"
echo
echo "== peak RSS: $(( $(rss_kb VmHWM) / 1024 )) MiB; RSS after load: $(( $(rss_kb VmRSS) / 1024 )) MiB"
echo "== requests by route and status (from /metrics):"
curl -s "http://127.0.0.1:$PORT/metrics" | grep '^gateway_http_requests_total' || true
