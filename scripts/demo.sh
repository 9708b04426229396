#!/usr/bin/env bash
# A sync to a local throwaway worker, from nothing: installs the testbed parts, builds the tool,
# writes a main server's FM workspace (a generated release), starts a worker host (namespace with
# sshd and Docker) and runs `frappe-deployer remote-worker sync` to it. Needs root.
#
#   scripts/demo.sh [small|real|FILES:MIB]   run the demo (default: small)
#   scripts/demo.sh down                     remove the demo worker and workspace
set -euo pipefail
cd "$(dirname "$0")/.."
SITE=demo.localhost
BENCHES=/var/tmp/fd-demo/benches
WORKER=demo

if [ "${1:-}" = down ]; then
    scripts/testbed.sh down "$WORKER"
    rm -rf /var/tmp/fd-demo
    exit 0
fi
profile=${1:-small}

scripts/testbed.sh install
swift build --product frappe-deployer
swift build --product deployer-fixture
bin=$(swift build --show-bin-path)

scripts/testbed.sh down "$WORKER" >/dev/null
rm -rf /var/tmp/fd-demo
"$bin/deployer-fixture" create "$BENCHES" "$SITE" --profile "$profile" --main-address 10.213.250.1
scripts/testbed.sh up "$WORKER" 250
scripts/testbed.sh site "$WORKER" "$SITE"
eval "$(scripts/testbed.sh env "$WORKER")"

echo
echo "\$ frappe-deployer remote-worker sync $SITE --server $FDTB_ADDRESS --ssh-config $FDTB_SSH_CONFIG --benches-path $BENCHES"
"$bin/frappe-deployer" remote-worker sync "$SITE" --server "$FDTB_ADDRESS" --ssh-config "$FDTB_SSH_CONFIG" --benches-path "$BENCHES"

echo
echo "Worker services and what they run (heartbeats written by the synced release):"
docker -H "$FDTB_DOCKER_HOST" ps --format '  {{.Names}}  {{.Status}}'
sleep 1.5
cat "$FDTB_HOME/frappe/frappe/sites/$SITE/workspace/deployment-data/logs/"heartbeat-*.log | sed 's/^/  /'
echo
echo "Remove the demo worker with: scripts/demo.sh down"
