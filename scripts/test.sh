#!/usr/bin/env bash
# Runs every test: unit tests (pure logic, worker.sh and exclude rules run locally) and the
# integration tests against real testbed workers (root needed; without root they are reported as
# skipped, never as passed). The integration tests drive the release build of the tool, the
# binary operators run (an optimized build once crashed where the debug build did not).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift build -c release --product frappe-deployer
FDTB_TOOL="$(swift build -c release --show-bin-path)/frappe-deployer" swift test --skip-build "$@"
