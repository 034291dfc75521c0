#!/usr/bin/env bash
# Runs the whole test suite: every crate, unit and integration tests, doc
# tests, then schemathesis against the served /openapi.json.
# .ci/run prepares a fresh machine first (PostgreSQL); schemathesis.sh
# installs its pinned schemathesis into a virtualenv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
./scripts/schemathesis.sh
