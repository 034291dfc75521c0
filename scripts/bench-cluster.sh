#!/usr/bin/env bash
# Load-tests POST /v1/payments (mock provider) on two release gateway
# instances sharing one PostgreSQL 15 database, then on one instance with
# SQLite, with the same wrk settings, and prints requests/s and latency.
# PostgreSQL runs from a temporary directory (durable defaults: fsync and
# synchronous_commit on), as the unprivileged user `gatewaypg` when run as
# root, and is removed at the end. Traffic goes to 127.0.0.1 only.
#
#   ./scripts/bench-cluster.sh                  # 64 connections in all, 15 s per run
#   CONNECTIONS=32 DURATION=5 ./scripts/bench-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-15}
THREADS=${THREADS:-1}
PG_BIN=${GATEWAY_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_PORT=${PG_PORT:-18190}
PORT_A=${PORT_A:-18191}
PORT_B=${PORT_B:-18192}
PORT_S=${PORT_S:-18193}
USER_PG=gatewaypg

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x "$PG_BIN/postgres" ] || { echo "PostgreSQL 15 is missing: apt-get install postgresql-15" >&2; exit 1; }
cargo build --release -p gateway-server >&2

work=$(mktemp -d)
pids=()
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$USER_PG" -- "$@"; else "$@"; fi; }
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  as_pg "$PG_BIN/pg_ctl" stop -D "$work/pg" -m fast -w >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ "$(id -u)" -eq 0 ]; then
  id "$USER_PG" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$USER_PG"
  chown "$USER_PG" "$work"
fi
as_pg "$PG_BIN/initdb" -D "$work/pg" -U postgres -A trust -E UTF8 --no-locale >/dev/null
as_pg "$PG_BIN/pg_ctl" start -D "$work/pg" -w -l "$work/pg.log" \
  -o "-p $PG_PORT -k $work -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c max_connections=100" >/dev/null

master_key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
start() { # port database mode
  GATEWAY_LISTEN="127.0.0.1:$1" GATEWAY_DATABASE_URL="$2" GATEWAY_MASTER_KEY="$master_key" \
  GATEWAY_MODE="$3" GATEWAY_LOG_LEVEL=warn GATEWAY_RATE_LIMIT=0 GATEWAY_AUTH_FAILURES_PER_MINUTE=0 \
    ./target/release/gateway serve >"$work/out-$1" 2>"$work/err-$1" &
  pids+=($!)
}
wait_key() { # port
  for _ in $(seq 100); do
    grep -q 'gw_sk_' "$work/out-$1" 2>/dev/null && break
    sleep 0.1
  done
  grep -o 'gw_sk_[0-9a-f]*' "$work/out-$1" | head -1
}
wait_ready() { # port
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return
    sleep 0.1
  done
  echo "the instance on $1 did not start" >&2; cat "$work/err-$1" >&2; exit 1
}
post_script() { # key
  cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"amount": 50.00, "currency": "USD", "payment_method": "pm_card_visa", "order_id": "bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "$1"
LUA
}

pg_url="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
start "$PORT_A" "$pg_url" sandbox
key=$(wait_key "$PORT_A")
[ -n "$key" ] || { echo "no sandbox key" >&2; cat "$work/err-$PORT_A" >&2; exit 1; }
start "$PORT_B" "$pg_url" sandbox   # a used database: no second sandbox merchant
wait_ready "$PORT_B"
post_script "$key"
sleep 1

echo "== machine: $(nproc) cores ($(lscpu | sed -n "s/^Model name: *//p")), load average $(cut -d" " -f1-3 /proc/loadavg), $(uname -sr)"
echo
half=$((CONNECTIONS / 2))
echo "== two instances on PostgreSQL: POST /v1/payments, wrk -t$THREADS -c$half -d${DURATION}s on each at once"
wrk -t"$THREADS" -c"$half" -d"${DURATION}s" --latency -s "$work/post.lua" "http://127.0.0.1:$PORT_A/v1/payments" >"$work/wrk-a" &
wrk_a=$!
wrk -t"$THREADS" -c"$half" -d"${DURATION}s" --latency -s "$work/post.lua" "http://127.0.0.1:$PORT_B/v1/payments" >"$work/wrk-b"
wait "$wrk_a"
for side in a b; do echo "-- instance $side"; grep -E 'Requests/sec|Latency  |50%|99%|Non-2xx|Socket errors' "$work/wrk-$side"; done
total=$(awk '/Requests\/sec/ {sum += $2} END {printf "%.0f", sum}' "$work/wrk-a" "$work/wrk-b")
echo "== two instances on PostgreSQL: $total requests/s in all"
stored=$(as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc 'SELECT COUNT(*) FROM payments' 2>/dev/null || true)
[ -n "$stored" ] && echo "== payments stored: $stored"

for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
pids=()
echo
start "$PORT_S" "sqlite://$work/bench.db" sandbox
key=$(wait_key "$PORT_S")
post_script "$key"
sleep 1
echo "== one instance on SQLite: POST /v1/payments, wrk -t$((THREADS * 2)) -c$CONNECTIONS -d${DURATION}s"
wrk -t"$((THREADS * 2))" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" "http://127.0.0.1:$PORT_S/v1/payments" \
  | grep -E 'Requests/sec|Latency  |50%|99%|Non-2xx|Socket errors'
