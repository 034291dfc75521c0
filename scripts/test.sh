#!/usr/bin/env bash
# Runs the whole test suite: every crate, unit and integration tests, doc tests.
# Installs nothing by itself; .ci/run prepares a fresh machine first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
