#!/bin/sh
# Test fixture: what FM's launch_supervisor_service.sh starts for a service, from this release.
# Worker services run real RQ workers from the release's own virtualenv with bench's queues;
# schedule enqueues a tick job on a timer. Run from the bench directory the container sees.
service=${1:-${SERVICE_NAME:-}}
cd /workspace/frappe-bench || exit 1
# A release whose worker crashes on start (a fixture for failed releases) names it here.
if [ -n "$service" ] && [ "$(cat apps/fdtb_jobs/broken 2>/dev/null)" = "$service" ]; then
    echo "$service: crashing on start (fixture)" >&2
    exit 1
fi
# A release whose worker runs but never listens on the queue (a fixture for the canary's job check).
if [ -n "$service" ] && [ "$(cat apps/fdtb_jobs/deaf 2>/dev/null)" = "$service" ]; then
    echo "$service: up, listening on no queue (fixture)" >&2
    exec sh -c 'trap "exit 0" TERM; while :; do sleep 1; done'
fi
case $service in
    short-worker) exec env/bin/python -m fdtb_jobs.worker "$service" short,default ;;
    long-worker) exec env/bin/python -m fdtb_jobs.worker "$service" long,default,short ;;
    schedule) exec env/bin/python -m fdtb_jobs.schedule ;;
    *) exec sh apps/frappe/fdtb-service.sh "$service" ;;
esac
