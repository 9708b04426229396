#!/usr/bin/env bash
# Runs every test: unit tests (pure logic, worker.sh and exclude rules run locally) and the
# integration tests against real testbed workers (root needed; without root they are reported as
# skipped, never as passed). The integration tests drive the release build of the tool, the
# binary operators run (an optimized build once crashed where the debug build did not).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift build -c release --product frappe-deployer
FDTB_TOOL="$(swift build -c release --show-bin-path)/frappe-deployer"
export FDTB_TOOL
if [ $# -gt 0 ]; then
    exec swift test --skip-build "$@"
fi
# The job-flow tests measure how long queues go without a job starting: they run alone, after the
# rest, so the other suites' parallel syncs do not share the machine's two cores with them.
swift test --skip-build --skip JobFlowIntegrationTests
swift test --skip-build --filter JobFlowIntegrationTests
