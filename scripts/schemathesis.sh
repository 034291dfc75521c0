#!/usr/bin/env bash
# Checks the served /openapi.json against the server itself with schemathesis:
# starts the debug `gateway` binary on 127.0.0.1 with a fresh SQLite database
# in sandbox mode, runs schemathesis with the sandbox key, a fixed seed and a
# bounded number of examples per operation, and fails on any 5xx, any status
# the document does not list, any body or content type that does not match it.
#
# schemathesis comes from PyPI, pinned with its dependencies
# (scripts/schemathesis-requirements.txt), into a virtualenv under target/.
# Environment: SCHEMATHESIS_EXAMPLES (per operation, default 30),
# SCHEMATHESIS_SEED (default 20261201).
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=scripts/schemathesis-requirements.txt
version=$(sed -n 's/^schemathesis==//p' "$requirements")
stamp=$(cksum <"$requirements" | cut -d' ' -f1)
venv=target/schemathesis/venv-$stamp
examples=${SCHEMATHESIS_EXAMPLES:-30}
seed=${SCHEMATHESIS_SEED:-20261201}

if [ ! -x "$venv/bin/st" ]; then
  echo "== installing schemathesis $version into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv"; then
    # Debian's own python3 keeps venv in a package of its own.
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
fi

rm -rf target/schemathesis/report

echo "== building the gateway binary"
cargo build -p gateway-server --bin gateway --locked
binary=target/debug/gateway

# GET url [api key]: prints the body; fails unless the status is 2xx.
fetch() {
  python3 - "$@" <<'PY'
import sys, urllib.request
request = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2:
    request.add_header("X-API-Key", sys.argv[2])
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        sys.stdout.write(response.read().decode())
except Exception:
    sys.exit(1)
PY
}

work=$(mktemp -d)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop_server EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

# Only the mock provider: no gateway-wide Stripe account from the environment.
env -u STRIPE_SECRET_KEY -u STRIPE_WEBHOOK_SECRET -u STRIPE_API_BASE \
  GATEWAY_LISTEN="127.0.0.1:$port" \
  GATEWAY_DATABASE_URL="sqlite://$work/gateway.db" \
  GATEWAY_MASTER_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(32))')" \
  GATEWAY_MODE=sandbox \
  GATEWAY_RATE_LIMIT=0 \
  GATEWAY_AUTH_FAILURES_PER_MINUTE=0 \
  GATEWAY_LIVE_STREAM_MAX=2s \
  GATEWAY_LOG_LEVEL=warn \
  "$binary" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!

# The sandbox key is printed once on the first start; it never reaches this log.
key=""
for _ in $(seq 1 100); do
  key=$(grep -o 'gw_sk_[0-9a-f]*' "$work/stdout" 2>/dev/null | head -n 1 || true)
  if [ -n "$key" ] && fetch "$base/healthz" >/dev/null; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the gateway exited before answering:" >&2
    tail -n 20 "$work/stderr" >&2
    exit 1
  fi
  key=""
  sleep 0.2
done
if [ -z "$key" ]; then
  echo "the gateway did not answer with a sandbox key within 20 s" >&2
  tail -n 20 "$work/stderr" >&2
  exit 1
fi

run() {
  # From target/schemathesis: schemathesis keeps a cache directory where it runs.
  (cd target/schemathesis && "venv-$stamp/bin/st" run "$base/openapi.json" \
    --header "X-API-Key: $key" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --seed "$seed" \
    --max-examples "$examples" \
    --generation-database none \
    --request-timeout 20 \
    --workers 1 \
    --no-color \
    --report junit --report-dir report \
    "$@")
}
failed() {
  echo "schemathesis found responses that do not match /openapi.json; the server's log:" >&2
  tail -n 40 "$work/stderr" >&2
  exit 1
}

echo "== schemathesis $version against $base/openapi.json (seed $seed, $examples examples per operation)"
# Four operations run on their own, without the stateful phase (so with ids
# that match nothing, mostly): revoking an API key may pick the run's own key
# (listed by GET /v1/merchant/api_keys), and the long poll and the event
# streams (a payment's, and the merchant's events) stay open by design: the
# server above ends every stream after 2 s (GATEWAY_LIVE_STREAM_MAX).
alone=(--include-operation-id revoke_key --include-operation-id wait --include-operation-id events
  --include-operation-id stream)
run --exclude-operation-id revoke_key --exclude-operation-id wait --exclude-operation-id events \
  --exclude-operation-id stream || failed
if ! fetch "$base/v1/merchant" "$key" >/dev/null; then
  echo "the run's API key stopped working before the revocation test: the results above are hollow" >&2
  exit 1
fi
echo "== schemathesis: DELETE /v1/merchant/api_keys/{id}, GET /v1/payments/{id}/wait and /events, GET /v1/events/stream"
run "${alone[@]}" --phases examples,coverage,fuzzing || failed

# What the run reached: the statuses each route answered, from the server's own metrics.
echo "== statuses answered (method route: status x count), wrong methods left out"
fetch "$base/metrics" \
  | sed -n 's/^gateway_http_requests_total{route="\([^"]*\)",method="\([^"]*\)",status="\([^"]*\)"} \(.*\)$/\2 \1 \3 \4/p' \
  | awk '$3 != "405" { line[$1 " " $2] = line[$1 " " $2] " " $3 "x" $4 } END { for (k in line) print "  " k ":" line[k] }' \
  | sort -k2
echo "schemathesis: every response matched /openapi.json"
