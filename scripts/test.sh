#!/usr/bin/env bash
# Runs every test: unit tests (pure logic, worker.sh and exclude rules run locally) and the
# integration tests against real testbed workers (root needed; without root they are reported as
# skipped, never as passed). The integration tests drive the release build of the tool, the
# binary operators run (an optimized build once crashed where the debug build did not).
# Needs Debian's dpkg-dev tools, man-db and the testbed's packages (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
# The one-file binary operators install (the Swift runtime linked in, the worker script compiled
# in) and its Debian package: the integration tests drive that binary, and the install test
# installs the package (apt-get), runs it with the toolchain hidden, and removes it.
FDTB_PACKAGE="$PWD/$(scripts/package.sh dist)"
FDTB_TOOL="$PWD/.build-release/release/frappe-deployer"
export FDTB_PACKAGE FDTB_TOOL
if [ $# -gt 0 ]; then
    exec swift test --skip-build "$@"
fi
# The job-flow tests measure how long queues go without a job starting: they run alone, after the
# rest, so the other suites' parallel syncs do not share the machine's two cores with them.
swift test --skip-build --skip JobFlowIntegrationTests
swift test --skip-build --filter JobFlowIntegrationTests
