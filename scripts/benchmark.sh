#!/usr/bin/env bash
# Side-by-side benchmark: the spec's sequence, frappe-deployer, and the floor (one bare rsync over an
# open connection), on a real-size release, over a plain link and a ~50 ms link. Needs root.
#
#   scripts/benchmark.sh [PROFILE [REPEAT]]   PROFILE: real (default), small, or FILES:MIB; REPEAT: runs per
#                                             contender, median reported (default 3)
#
# Prints one table (first copy, no-change, new release, each over a plain and a ~50 ms link, and a
# new release to 1, 4 and 8 workers through one limited uplink; the floor and a streamed copy beside
# them) and writes it to bench-results.md; then the jobs table
# (scripts/bench/jobs.py: jobs lost, killed and queue gaps through a sync, spec vs tool), appended.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/testbed.sh install
swift build -c release --product frappe-deployer
swift build -c release --product deployer-fixture
bin=$(swift build -c release --show-bin-path)
python3 scripts/bench/run.py --tool "$bin/frappe-deployer" --fixture "$bin/deployer-fixture" \
    --profile "${1:-real}" --repeat "${2:-3}" --scenarios first,nochange,newrelease --output bench-results.md
python3 scripts/bench/jobs.py --tool "$bin/frappe-deployer" --fixture "$bin/deployer-fixture" --output bench-results.md
