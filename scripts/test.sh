#!/usr/bin/env bash
# Runs every test: unit tests (pure logic, worker.sh and exclude rules run locally) and the
# integration tests against real testbed workers (root needed; without root they are reported as
# skipped, never as passed).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift test --skip-build "$@"
