#!/usr/bin/env bash
# Load-tests webhook ingest on the release gateway server with wrk: distinct
# Stripe events, each signed (Stripe-Signature, HMAC-SHA256) just before the
# run, POSTed to /v1/webhooks/stripe. Every 2xx means the event was verified
# and durably stored (SQLite, synchronous=FULL) before the answer; the script
# checks afterwards that the database holds one row per distinct event
# answered. Traffic goes to 127.0.0.1 only.
#
#   ./scripts/bench-webhooks.sh                 # 64 connections, 10 s
#   CONNECTIONS=32 DURATION=5 ./scripts/bench-webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
PORT=${PORT:-18182}
EVENTS=${EVENTS:-400000}
SECRET=whsec_bench_secret

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release -p gateway-server >&2

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Retrievals (none are needed for these events) would go to a closed local port: no test reaches Stripe.
GATEWAY_LISTEN="127.0.0.1:$PORT" \
GATEWAY_DATABASE_URL="sqlite://$work/bench.db" \
GATEWAY_LOG_LEVEL=error \
GATEWAY_MODE=sandbox \
GATEWAY_RATE_LIMIT=0 \
GATEWAY_AUTH_FAILURES_PER_MINUTE=0 \
STRIPE_SECRET_KEY=sk_test_bench \
GATEWAY_DEFAULT_PROVIDER=stripe \
STRIPE_WEBHOOK_SECRET=$SECRET \
STRIPE_API_BASE=http://127.0.0.1:9 \
  ./target/release/gateway serve >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

# Distinct events, signed now (well within the 5-minute tolerance of the run).
python3 - "$work/events.tsv" "$EVENTS" "$SECRET" <<'PY'
import hashlib, hmac, sys, time
path, count, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
t = str(int(time.time()))
with open(path, "w") as out:
    for i in range(count):
        body = ('{"id":"evt_bench_%08d","object":"event","api_version":"2024-06-20","created":%s,'
                '"type":"customer.created","data":{"object":{"id":"cus_%08d","object":"customer"}}}' % (i, t, i))
        sig = hmac.new(secret, (t + "." + body).encode(), hashlib.sha256).hexdigest()
        out.write("t=%s,v1=%s\t%s\n" % (t, sig, body))
PY

cat >"$work/ingest.lua" <<LUA
local threads = $THREADS
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  lines = {}
  local n = 0
  for line in io.lines("$work/events.tsv") do
    if n % threads == tid then lines[#lines + 1] = line end
    n = n + 1
  end
  i = 0
end
function request()
  i = i + 1
  local line = lines[((i - 1) % #lines) + 1]
  local tab = line:find("\t", 1, true)
  return wrk.format("POST", "/v1/webhooks/stripe",
    {["Content-Type"] = "application/json", ["Stripe-Signature"] = line:sub(1, tab - 1)},
    line:sub(tab + 1))
end
LUA

echo "== machine: $(nproc) cores ($(lscpu | sed -n "s/^Model name: *//p")), load average $(cut -d" " -f1-3 /proc/loadavg)"
echo "== POST /v1/webhooks/stripe (distinct signed events): wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/ingest.lua" "http://127.0.0.1:$PORT/v1/webhooks/stripe"
sleep 2
python3 - "$work/bench.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
stored, processed = db.execute("SELECT COUNT(*), COUNT(processed_at) FROM webhook_events").fetchone()
print("== stored events: %d (processed so far: %d)" % (stored, processed))
PY
