# Run by the release's own Python in a running worker container: puts back on its queue every job
# that a worker took off a queue but never started. RQ's warm shutdown loses such a job when
# SIGTERM reaches an idle worker between its pop and its start (the job hash stays "queued" while
# no queue, intermediate queue or registry lists it). A job counts as lost only when it is so in
# two looks DELAY seconds apart: a live worker starts what it pops within milliseconds.
recover_py='
import json, sys, time
from redis import Redis
conf = json.load(open("/workspace/frappe-bench/sites/common_site_config.json"))
r = Redis.from_url(conf["redis_queue"])
def lost():
    listed = set()
    for key in r.scan_iter(match="rq:*", count=1000):
        if r.type(key) == b"list":
            listed.update(r.lrange(key, 0, -1))
    found = {}
    for key in r.scan_iter(match="rq:job:*", count=1000):
        if r.type(key) != b"hash":
            continue
        status, origin = r.hmget(key, "status", "origin")
        job = key[len(b"rq:job:"):]
        if status == b"queued" and origin and job not in listed:
            found[job] = origin
    return found
first = lost()
if first:
    time.sleep(float(sys.argv[1]))
    second = lost()
    for job, origin in first.items():
        if second.get(job) == origin and r.hget(b"rq:job:" + job, "status") == b"queued":
            r.rpush(b"rq:queue:" + origin, job)
            print("requeued=" + job.decode())
'

# Prints yes when RQ's suspend flag is set in the queue's Redis, else no.
suspended_py='
import json
from redis import Redis
conf = json.load(open("/workspace/frappe-bench/sites/common_site_config.json"))
print("yes" if Redis.from_url(conf["redis_queue"]).exists("rq:suspended") else "no")
'

# The RQ workers (rq:workers) of one generation: those on one of its containers' host names
# (HOST=SERVICE...; a host name several containers share, as under host networking, gives
# SERVICE ?) born since its containers started (since=TIME, less 2 s). One line each.
jobs_py='
import json, sys
from datetime import datetime, timedelta, timezone
from redis import Redis
def when(text):
    text = text.strip().replace("Z", "+00:00")
    if "." in text:
        head, tail = text.split(".", 1)
        digits = "".join(c for c in tail if c.isdigit())
        text = head + "." + digits[:6].ljust(6, "0") + tail[len(digits):]
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
conf = json.load(open("/workspace/frappe-bench/sites/common_site_config.json"))
r = Redis.from_url(conf["redis_queue"])
since, hosts = None, {}
for pair in sys.argv[1:]:
    key, value = pair.split("=", 1)
    if key == "since":
        since = when(value) - timedelta(seconds=2)
    else:
        hosts[key] = value if hosts.get(key, value) == value else "?"
found = 0
for key in sorted(r.smembers("rq:workers")):
    fields = {k.decode(): v.decode() for k, v in r.hgetall(key).items()}
    service = hosts.get(fields.get("hostname", ""))
    if service is None or (since and fields.get("birth") and when(fields["birth"]) < since):
        continue
    found += 1
    print("rq_%d=%s %s %s %s %s" % (found, service, fields.get("state") or "-", key.decode().split(":", 2)[-1],
                                    fields.get("successful_job_count") or "0", fields.get("failed_job_count") or "0"))
print("rq=yes")
'

jobs() {
    required site >/dev/null
    find_compose
    know_base
    jb_live=$(live_project)
    jb_worker=""
    jb_since=""
    set --
    for jb_id in $(docker ps --filter "label=com.docker.compose.project=$jb_live" --filter status=running --format '{{.ID}}' 2>/dev/null); do
        jb_facts=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.Config.Hostname}} {{.State.StartedAt}}' "$jb_id" 2>/dev/null) || continue
        jb_service=${jb_facts%% *}
        [ "$jb_service" != schedule ] || continue
        jb_worker=$jb_service
        jb_rest=${jb_facts#* }
        set -- "$@" "${jb_rest%% *}=$jb_service"
        jb_since="$jb_since ${jb_rest#* }"
    done
    # The earliest start (RFC 3339 times of one zone sort as text).
    # shellcheck disable=SC2086 # one word per start time
    jb_since=$(printf '%s\n' $jb_since | sort | head -n 1)
    if [ -z "$jb_live" ] || [ -z "$jb_worker" ] \
        || ! project_compose "$jb_live" exec -T "$jb_worker" /workspace/frappe-bench/env/bin/python -c "$jobs_py" "since=$jb_since" "$@" 2>/dev/null; then
        printf 'rq=none\n'
    fi
}

# Recovers lost jobs (see recover_py) through SERVICE of generation PROJECT, after WAIT seconds
# (the stopped workers have exited by then); records what it put back in recovered.log.
recover_lost_jobs() {
    sleep "$3"
    rl_out=$(project_compose "$1" exec -T "$2" /workspace/frappe-bench/env/bin/python -c "$recover_py" 10 2>&1)
    rl_status=$?
    rl_jobs=$(printf '%s\n' "$rl_out" | sed -n 's/^requeued=//p' | tr '\n' ' ' | sed 's/ *$//')
    if [ $rl_status -ne 0 ]; then
        printf '%s recovery failed through %s %s: %s\n' "$(date +%s)" "$1" "$2" "$(printf '%s' "$rl_out" | tail -n 1)" >> "$state/recovered.log"
    elif [ -n "$rl_jobs" ]; then
        printf '%s requeued %s\n' "$(date +%s)" "$rl_jobs" >> "$state/recovered.log"
    fi
}

# Starts recover_lost_jobs detached from this phase.
recover_detached() {
    (
        trap '' HUP INT TERM PIPE
        recover_lost_jobs "$@"
    ) < /dev/null > /dev/null 2>&1 &
}

