#!/bin/sh
# The worker side of `frappe-deployer remote-worker`: one phase per run, fed over one ssh round
# trip as `sh -s -- PHASE WORKSPACE [ARGS...] < worker.sh`. State (lock, previous release, the
# last switch's log) lives in SITE_DIR/.frappe-deployer, beside the compose files.
#
#   preflight WORKSPACE SITE [TOKEN HOLDER [TAKEOVER|- [EXCLUDE...]]]
#                                   checks the worker and prints key=value facts; with TOKEN, then
#                                   takes the per-site lock (nothing is written unless every check
#                                   passed); exit 6 with held_* facts when a live sync holds it. A
#                                   lock whose sync is dead is taken over. With EXCLUDE patterns,
#                                   also the digest of the live copy when it is the verified one.
#   unlock WORKSPACE TOKEN [KEY=VALUE...]
#                                   releases the lock if TOKEN holds it; with KEY=VALUE pairs,
#                                   first records them as the last sync (status reads them).
#   status WORKSPACE SITE           read-only facts for `remote-worker status`: releases, each
#                                   service's state, the lock's holder, the last sync.
#   stage-prepare WORKSPACE [STAGE] removes what unfinished syncs left; creates WORKSPACE and the
#                                   staging directory STAGE (parallel rsync streams share it).
#   stage-activate WORKSPACE SITE RELEASE STAGE [EXCLUDE...]
#                                   links worker configs inside the staged release; renames it to
#                                   RELEASE unless RELEASE is live (then the switch swaps it in);
#                                   prints the digest of the staged copy (see digest).
#   digest WORKSPACE RELEASE [EXCLUDE...]
#                                   a digest of the release's files and links (name, size, time,
#                                   mode; EXCLUDE patterns as rsync takes them) from rsync's own
#                                   listing: changes whenever a file of the copy changes.
#   unstage WORKSPACE STAGE         removes a staged release that will not go live.
#   switch WORKSPACE SITE RELEASE STAGE|- STOP_TIMEOUT|- SETTLE SCHEDULER DEPS [VERIFIED]
#                                   stops services, makes RELEASE live (flips frappe-bench, or
#                                   swaps STAGE in), starts services and checks them; on failure
#                                   flips back and starts the previous release. Runs detached, so
#                                   a dropped connection cannot stop it half-way. VERIFIED
#                                   (MAIN_DIGEST:COPY_DIGEST) is recorded with RELEASE once it runs:
#                                   a complete, checksummed copy that a later sync may keep.
#   prune WORKSPACE KEEP            keeps the KEEP newest releases (never the live or previous).
#   stop WORKSPACE STOP_TIMEOUT|-   (in-place) stops every service of the site's compose project.
#   activate WORKSPACE SITE RELEASE (in-place) links worker configs, points frappe-bench at RELEASE.
#   start WORKSPACE SETTLE SCHEDULER DEPS
#                                   (in-place) starts the worker services, checks them.
#
# Starting services means: every service of docker-compose.workers.yml, and `schedule` when
# SCHEDULER is yes; then, from this host, a TCP connection to each of DEPS (NAME@HOST:PORT,
# comma-separated, or -: the main server's queue and database); then SETTLE seconds, after which
# every started service must run and must not have restarted.
#
# Exit codes: 0 ok; 2 usage; 3 the worker is not ready (nothing was changed); 4 activation
# failed; 5 services failed; 6 locked by another sync; 7 the switch failed and the previous
# release runs again; 8 the switch failed and could not be undone. Errors are one line on stderr
# starting with "error: ".
set -eu

fail() {
    code=$1
    shift
    printf 'error: %s\n' "$*" >&2
    exit "$code"
}

[ $# -ge 2 ] || fail 2 "usage: worker.sh PHASE WORKSPACE [ARGS...]"
phase=$1
workspace=$2
shift 2
case $workspace in
    /*) ;;
    *) fail 2 "workspace must be an absolute path: $workspace" ;;
esac
site_dir=$(dirname -- "$workspace")
state="$site_dir/.frappe-deployer"
base_files="-f docker-compose.yml"
all_files="-f docker-compose.yml -f docker-compose.workers.yml"
worker_files="-f docker-compose.workers.yml"

# Runs Docker Compose v2 (the plugin) or the standalone docker-compose, from the site dir so the
# project name is the one an operator gets by hand there.
compose() {
    if [ -z "${compose_cmd:-}" ]; then
        if docker compose version >/dev/null 2>&1; then
            compose_cmd="docker compose"
        elif command -v docker-compose >/dev/null 2>&1; then
            compose_cmd="docker-compose"
        else
            fail 3 "Docker Compose is not installed on the worker: install the docker compose plugin (v2)"
        fi
    fi
    # shellcheck disable=SC2086 # compose_cmd is one of two fixed word lists
    (cd "$site_dir" && $compose_cmd "$@")
}

# Prints the service names of the given compose files, one line, space-separated.
services_of() {
    compose "$@" config --services | tr '\n' ' ' | sed 's/ *$//'
}

running_services() {
    # shellcheck disable=SC2086
    compose $all_files ps --services --status running | tr '\n' ' ' | sed 's/ *$//'
}

# The release directories in the workspace (release_*, not links), one per line.
release_dirs() {
    [ -d "$workspace" ] || return 0
    (cd "$workspace" && for d in release_*; do if [ -d "$d" ] && [ ! -L "$d" ]; then echo "$d"; fi; done)
}

# The value of KEY in a key=value FILE.
value() {
    sed -n "s/^$1=//p" "$2" 2>/dev/null | head -n 1
}

now_ms() {
    ms=$(date +%s%3N)
    case $ms in
        *N) echo "$(date +%s)000" ;;
        *) echo "$ms" ;;
    esac
}

# The start time of a running process (field 22 of /proc/PID/stat); fails when it is gone or a zombie.
proc_start() {
    [ -r "/proc/$1/stat" ] || return 1
    # The command name (field 2) may hold spaces: read what follows its closing parenthesis.
    sed 's/.*) //' "/proc/$1/stat" | awk '$1 == "Z" || $1 == "X" { exit 1 } { print $20 }'
}

# pid:starttime of the ssh connection this script runs in: it lives exactly as long as the
# sync's connection does, so it tells a live lock from a dead one.
session_id() {
    pid=$$
    while [ "$pid" -gt 1 ]; do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || break
        case $comm in
            sshd*)
                printf '%s:%s\n' "$pid" "$(proc_start "$pid")"
                return
                ;;
        esac
        pid=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $2 }')
    done
    printf '%s:%s\n' "$PPID" "$(proc_start "$PPID")"
}

# True while the process recorded as pid:starttime runs.
alive() {
    pid=${1%%:*}
    start=${1#*:}
    [ -n "$pid" ] && [ -n "$start" ] && [ "$(proc_start "$pid" 2>/dev/null || true)" = "$start" ]
}

switch_running() {
    [ -f "$state/switch.pid" ] && alive "$(cat "$state/switch.pid")"
}

preflight() {
    site=${1:-}
    [ $# -eq 1 ] || [ $# -ge 3 ] || fail 2 "usage: worker.sh preflight WORKSPACE SITE [TOKEN HOLDER [TAKEOVER|- [EXCLUDE...]]]"
    [ -n "$site" ] || fail 2 "usage: worker.sh preflight WORKSPACE SITE"
    [ -d "$site_dir" ] || fail 3 "$site_dir does not exist on the worker: create the worker's FM bench for $site there, or set workspace_path"
    for file in docker-compose.yml docker-compose.workers.yml; do
        [ -f "$site_dir/$file" ] || fail 3 "$site_dir/$file is missing on the worker: copy the site's compose files from the main server (remote-worker enable)"
    done
    command -v rsync >/dev/null 2>&1 || fail 3 "rsync is not installed on the worker: install it (apt-get install rsync)"
    docker info >/dev/null 2>&1 || fail 3 "cannot reach the Docker engine on the worker as $(id -un): is dockerd running and is the user in the docker group?"
    # shellcheck disable=SC2086
    workers=$(services_of $worker_files 2>/dev/null) || fail 3 "$site_dir/docker-compose.workers.yml is not a valid compose file (docker compose config failed)"
    [ -n "$workers" ] || fail 3 "$site_dir/docker-compose.workers.yml defines no services"
    # shellcheck disable=SC2086
    base=$(services_of $base_files 2>/dev/null) || fail 3 "$site_dir/docker-compose.yml is not a valid compose file (docker compose config failed)"
    case " $base " in
        *" schedule "*) ;;
        *) fail 3 "$site_dir/docker-compose.yml has no 'schedule' service" ;;
    esac
    if [ -e "$workspace" ] || [ -L "$workspace" ]; then
        [ -d "$workspace" ] || fail 3 "$workspace exists on the worker but is not a directory"
        [ -w "$workspace" ] || fail 3 "$workspace is not writable by $(id -un) on the worker"
    else
        [ -w "$site_dir" ] || fail 3 "$site_dir is not writable by $(id -un) on the worker"
    fi
    link="$workspace/frappe-bench"
    if [ -e "$link" ] && [ ! -L "$link" ]; then
        fail 3 "$link on the worker is a real directory, not a link to a release: move it away first"
    fi
    # Every check passed: only now is anything written (the lock), and the facts below are read
    # under it.
    digest_excludes=no
    if [ $# -ge 3 ]; then
        takeover=${4:-}
        [ "$takeover" = - ] && takeover=""
        lock "$2" "$3" "$takeover"
        if [ $# -ge 4 ]; then
            shift 4
            digest_excludes=yes
        fi
    fi
    current=$(readlink "$link" 2>/dev/null || true)
    releases=$(release_dirs | tr '\n' ' ' | sed 's/ *$//')
    printf 'worker_services=%s\n' "$workers"
    printf 'current_release=%s\n' "$current"
    printf 'previous_release=%s\n' "$(value previous "$state/releases")"
    printf 'verified_release=%s\n' "$(value release "$state/verified")"
    printf 'verified_main=%s\n' "$(value main "$state/verified")"
    printf 'verified_copy=%s\n' "$(value copy "$state/verified")"
    # The live copy's digest now, when it is the verified one: a resync can keep it without
    # another round trip.
    if [ $digest_excludes = yes ] && [ -n "$current" ] && [ "$current" = "$(value release "$state/verified")" ] && [ -d "$workspace/$current" ]; then
        printf 'live_digest=%s\n' "$(release_digest "$workspace/$current" "$@")"
    fi
    printf 'releases=%s\n' "$releases"
    printf 'running=%s\n' "$(running_services 2>/dev/null || true)"
    printf 'rsync_compress=%s\n' "$(rsync --version 2>/dev/null | sed -n '/^Compress list:/{n;p;}' | sed 's/^ *//')"
    printf 'rsync_checksum=%s\n' "$(rsync --version 2>/dev/null | sed -n '/^Checksum list:/{n;p;}' | sed 's/^ *//')"
}

lock() {
    token=${1:-}
    holder=${2:-}
    takeover=${3:-}
    { [ -n "$token" ] && [ -n "$holder" ]; } || fail 2 "usage: worker.sh lock WORKSPACE TOKEN HOLDER [TAKEOVER]"
    [ -d "$site_dir" ] || fail 3 "$site_dir does not exist on the worker"
    command -v flock >/dev/null 2>&1 || fail 3 "flock is not installed on the worker: install util-linux"
    mkdir -p "$state"
    # The guard serializes lock takers on this worker; it is held for this phase only.
    exec 9>>"$state/lock.guard"
    flock -w 30 9 || fail 6 "the lock guard $state/lock.guard stayed busy for 30 s"
    if [ -f "$state/lock" ]; then
        held_token=$(value token "$state/lock")
        if [ "$held_token" = "$token" ]; then
            printf 'locked=yes\n'
            return
        fi
        if alive "$(value session "$state/lock")" || switch_running; then
            if [ -n "$takeover" ] && [ "$takeover" = "$held_token" ] && ! switch_running; then
                printf 'took_over=%s\n' "$(value holder "$state/lock")"
            else
                printf 'held_by=%s\n' "$(value holder "$state/lock")"
                printf 'held_since=%s\n' "$(value since "$state/lock")"
                printf 'held_token=%s\n' "$held_token"
                printf 'switch_running=%s\n' "$(switch_running && echo yes || echo no)"
                exit 6
            fi
        else
            printf 'stale_lock=%s\n' "$(value holder "$state/lock")"
        fi
    fi
    {
        printf 'token=%s\n' "$token"
        printf 'holder=%s\n' "$holder"
        printf 'since=%s\n' "$(date +%s)"
        printf 'session=%s\n' "$(session_id)"
    } > "$state/lock.new"
    mv -f "$state/lock.new" "$state/lock"
    printf 'locked=yes\n'
}

unlock() {
    token=${1:-}
    [ $# -ge 1 ] && shift
    [ -f "$state/lock" ] || return 0
    if [ "$(value token "$state/lock")" = "$token" ]; then
        if [ $# -gt 0 ]; then
            printf '%s\n' "$@" > "$state/last-sync.new"
            mv -f "$state/last-sync.new" "$state/last-sync"
        fi
        rm -f "$state/lock"
        printf 'unlocked=yes\n'
    fi
}

stage_prepare() {
    stage=${1:-}
    mkdir -p "$workspace/deployment-data" "$state"
    # What syncs that did not finish left behind; the lock guarantees none of them still runs.
    for leftover in "$workspace"/.fd-staging-* "$workspace"/.fd-old-* "$workspace"/.fd-failed-*; do
        if [ -e "$leftover" ]; then
            rm -rf "$leftover"
            printf 'removed=%s\n' "${leftover##*/}"
        fi
    done
    if [ -n "$stage" ]; then
        case ${stage##*/} in
            .fd-staging-*) mkdir -p "$stage" ;;
            *) fail 2 "not a staging directory: $stage" ;;
        esac
    fi
    printf 'prepared=yes\n'
}

# Replaces LINK with a symlink to TARGET in one rename, so no reader sees it missing.
relink() {
    target=$1
    link=$2
    if [ -d "$link" ] && [ ! -L "$link" ]; then
        printf 'error: %s is a directory, not a link: move it away first\n' "$link" >&2
        return 4
    fi
    tmp="$link.fd-new.$$"
    rm -f "$tmp"
    ln -s "$target" "$tmp" || return 4
    if ! mv -T "$tmp" "$link" 2>/dev/null; then
        # mv without -T (non-GNU): fall back to replacing the link in two steps.
        rm -f "$tmp"
        ln -sfn "$target" "$link" || return 4
    fi
}

# Links the worker configs inside release directory DIR and creates what it needs.
link_configs() {
    site=$1
    dir=$2
    data="$workspace/deployment-data"
    for file in "$data/sites/common_site_config.workers.json" "$data/sites/$site/site_config.workers.json"; do
        [ -f "$file" ] || fail 4 "$file is missing on the worker: run remote-worker enable on the main server"
    done
    mkdir -p "$data/sites/$site/private/files" "$data/sites/$site/public/files" "$data/config/pids" "$dir/sites/$site"
    relink "../../deployment-data/sites/common_site_config.workers.json" "$dir/sites/common_site_config.json" || exit 4
    relink "../../../deployment-data/sites/$site/site_config.workers.json" "$dir/sites/$site/site_config.json" || exit 4
}

# DIR's files and links as rsync lists them (directories left out: their times move whenever
# something is created inside), reduced to one checksum. EXCLUDE patterns follow DIR.
release_digest() {
    dir=$1
    shift
    # Each PATTERN becomes --exclude=PATTERN, in place (the list is expanded once, up front).
    for pattern in "$@"; do
        set -- "$@" "--exclude=$pattern"
        shift
    done
    TZ=UTC LC_ALL=C rsync -a --list-only "$@" -- "$dir/" | grep -v '^d' | cksum | tr ' ' '-'
}

digest() {
    release=${1:-}
    [ -n "$release" ] || fail 2 "usage: worker.sh digest WORKSPACE RELEASE [EXCLUDE...]"
    shift
    [ -d "$workspace/$release" ] || fail 4 "release $workspace/$release is not on the worker"
    printf 'digest=%s\n' "$(release_digest "$workspace/$release" "$@")"
}

stage_activate() {
    site=${1:-}
    release=${2:-}
    stage=${3:-}
    { [ -n "$site" ] && [ -n "$release" ] && [ -n "$stage" ]; } || fail 2 "usage: worker.sh stage-activate WORKSPACE SITE RELEASE STAGE"
    [ -d "$stage" ] || fail 4 "staged release $stage is not on the worker: the transfer did not complete"
    shift 3
    link_configs "$site" "$stage"
    printf 'digest=%s\n' "$(release_digest "$stage" "$@")"
    live=$(readlink "$workspace/frappe-bench" 2>/dev/null || true)
    if [ "$release" = "$live" ]; then
        # The live release cannot be replaced by a rename while it runs: the switch swaps it in.
        printf 'swap=yes\n'
        return
    fi
    if [ -e "$workspace/$release" ]; then
        # An older copy of this release that is not live: replaced by the fresh one.
        mv "$workspace/$release" "$workspace/.fd-old-$release.$$"
        rm -rf "$workspace/.fd-old-$release.$$"
    fi
    mv "$stage" "$workspace/$release"
    printf 'swap=no\n'
}

unstage() {
    stage=${1:-}
    case ${stage##*/} in
        .fd-staging-*) rm -rf "$stage" ;;
        *) fail 2 "not a staging directory: $stage" ;;
    esac
    printf 'unstaged=yes\n'
}

# Stops the project's services gracefully: each running service gets its own wait (bench's own
# defaults: 1560 s for long-worker, 360 s for other workers), or TIMEOUT when given.
stop_services() {
    timeout=${1:--}
    running=$(running_services) || return 5
    pids=""
    for service in $running; do
        if [ "$timeout" = - ]; then
            case $service in
                long-worker) wait_for=1560 ;;
                *-worker) wait_for=360 ;;
                *) wait_for=10 ;;
            esac
        else
            wait_for=$timeout
        fi
        # shellcheck disable=SC2086
        compose $all_files stop -t "$wait_for" "$service" >&2 &
        pids="$pids $!"
    done
    status=0
    for pid in $pids; do wait "$pid" || status=5; done
    # shellcheck disable=SC2086
    compose $all_files down --remove-orphans -t 10 >&2 || status=5
    return $status
}

# Whether a TCP connection to HOST PORT opens within 3 s: 0 yes, 1 no, 2 nothing here can try.
tcp_open() {
    if command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then
        # shellcheck disable=SC2016 # expanded by bash, from its arguments
        timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
        return $(( $? == 0 ? 0 : 1 ))
    fi
    if command -v nc >/dev/null 2>&1; then
        nc -z -w 3 "$1" "$2" 2>/dev/null
        return $(( $? == 0 ? 0 : 1 ))
    fi
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)' "$1" "$2" 2>/dev/null
        return $(( $? == 0 ? 0 : 1 ))
    fi
    return 2
}

# Checks DEPS (NAME@HOST:PORT,...) from this host; prints dep_NAME=ok|unreachable|unchecked.
check_dependencies() {
    [ "${1:--}" = - ] && return 0
    status=0
    old_ifs=$IFS
    IFS=,
    # shellcheck disable=SC2086 # split on commas
    set -- $1
    IFS=$old_ifs
    for dep in "$@"; do
        name=${dep%%@*}
        address=${dep#*@}
        port=${address##*:}
        host=${address%:*}
        host=${host#[}
        host=${host%]}
        # (a failing command in an if keeps `set -e` from ending the script)
        if tcp_open "$host" "$port"; then result=0; else result=$?; fi
        case $result in
            0) printf 'dep_%s=ok\n' "$name" ;;
            2)
                printf 'dep_%s=unchecked\n' "$name"
                printf 'warning: cannot check %s (%s:%s) from the worker: it has none of bash, nc, python3\n' "$name" "$host" "$port" >&2
                ;;
            *)
                printf 'dep_%s=unreachable\n' "$name"
                printf 'error: %s %s:%s is not reachable from the worker (TCP): check the address in the worker config and the main server firewall\n' "$name" "$host" "$port" >&2
                status=5
                ;;
        esac
    done
    return $status
}

# The services a start runs: every worker service, and schedule when SCHEDULER is yes.
wanted_services() {
    # shellcheck disable=SC2086
    workers=$(services_of $worker_files) || return 5
    if [ "${1:-yes}" = yes ]; then echo "schedule $workers"; else echo "$workers"; fi
}

# Starts the wanted services, checks DEPS, waits SETTLE seconds, then checks each service runs
# and has not restarted (a crash loop under a restart policy also "runs" between crashes).
start_services() {
    settle=${1:-0}
    wanted=$(wanted_services "${2:-yes}") || return 5
    # --no-deps: schedule's dependencies (Redis) run on the main server, never here.
    # shellcheck disable=SC2086 # service names are single words
    compose $all_files up -d --no-deps $wanted >&2 || {
        printf 'error: docker compose up failed in %s\n' "$site_dir" >&2
        return 5
    }
    up_ms=$(now_ms)
    deps_ok=0
    check_dependencies "${3:--}" || deps_ok=5
    [ "$settle" -gt 0 ] 2>/dev/null && sleep "$settle"
    running=$(running_services)
    printf 'running=%s\n' "$running"
    [ $deps_ok -eq 0 ] || return 5
    for service in $wanted; do
        case " $running " in
            *" $service "*) ;;
            *)
                printf "error: service %s is not running after start: see 'docker compose logs %s' in %s\n" "$service" "$service" "$site_dir" >&2
                return 5
                ;;
        esac
        # shellcheck disable=SC2086
        for id in $(compose $all_files ps -q "$service"); do
            restarts=$(docker inspect -f '{{.RestartCount}}' "$id" 2>/dev/null || echo 0)
            if [ "${restarts:-0}" -gt 0 ]; then
                printf "error: service %s restarted %s times within %s s of starting (crash loop): see 'docker compose logs %s' in %s\n" \
                    "$service" "$restarts" "$settle" "$service" "$site_dir" >&2
                return 5
            fi
        done
    done
}

# The critical section, run detached by `switch`. Writes key=value facts to stdout (the result
# file) and its errors to stderr (the log). Never exits early: every path ends with a return code.
do_switch() {
    set +e
    site=$1
    release=$2
    stage=$3
    timeout=$4
    settle=$5
    scheduler=$6
    deps=$7
    verified=${8:--}
    live=$(readlink "$workspace/frappe-bench" 2>/dev/null)
    printf 'previous=%s\n' "$live"
    t0=$(now_ms)
    if ! stop_services "$timeout"; then
        printf 'error: stopping the worker services failed; starting them again\n' >&2
        start_services "$settle" "$scheduler" - >/dev/null
        return 5
    fi
    printf 'stopped_ms=%s\n' "$(now_ms)"
    if [ "$stage" != - ]; then
        # Same release name as the live one: swap the directories (two renames).
        mv "$workspace/$release" "$workspace/.fd-old-$release" && mv "$stage" "$workspace/$release"
        flipped=$?
    else
        relink "$release" "$workspace/frappe-bench"
        flipped=$?
    fi
    if [ $flipped -eq 0 ] && mkdir -p "$workspace/frappe-bench/config/pids" && start_services "$settle" "$scheduler" "$deps"; then
        printf 'downtime_ms=%s\n' "$((up_ms - t0))"
        printf 'live=%s\n' "$release"
        # A complete, checksummed copy is live: a later sync of the same release may keep it.
        if [ "$verified" != - ]; then
            printf 'release=%s\nmain=%s\ncopy=%s\n' "$release" "${verified%%:*}" "${verified#*:}" > "$state/verified.new"
            mv -f "$state/verified.new" "$state/verified"
        fi
        if [ -n "$live" ] && [ "$live" != "$release" ]; then
            printf 'previous=%s\n' "$live" > "$state/releases"
        fi
        rm -rf "$workspace/.fd-old-$release"
        return 0
    fi
    printf 'error: %s did not start; going back to %s\n' "$release" "${live:-nothing}" >&2
    stop_services 10
    if [ -z "$live" ]; then
        printf 'rolled_back=none\n'
        return 8
    fi
    if [ "$stage" != - ]; then
        if [ -d "$workspace/.fd-old-$release" ]; then
            rm -rf "$workspace/.fd-failed-$release"
            mv "$workspace/$release" "$workspace/.fd-failed-$release"
            mv "$workspace/.fd-old-$release" "$workspace/$release"
        fi
    else
        relink "$live" "$workspace/frappe-bench"
    fi
    # The previous release ran with these same dependencies: it is not held to their check.
    if start_services "$settle" "$scheduler" -; then
        printf 'rolled_back=%s\n' "$live"
        printf 'downtime_ms=%s\n' "$((up_ms - t0))"
        return 7
    fi
    printf 'rolled_back=failed\n'
    return 8
}

switch() {
    [ $# -eq 7 ] || [ $# -eq 8 ] || fail 2 "usage: worker.sh switch WORKSPACE SITE RELEASE STAGE|- STOP_TIMEOUT|- SETTLE SCHEDULER DEPS [VERIFIED]"
    mkdir -p "$state"
    # The copy about to change (or be replaced) is no longer the one verified.
    rm -f "$state/verified"
    [ -d "$workspace/$2" ] || fail 4 "release $workspace/$2 is not on the worker"
    mkdir -p "$state"
    # Detached from this connection: a dropped link or an interrupted client cannot stop it
    # between stopping the old services and starting services again.
    (
        trap '' HUP INT TERM PIPE
        do_switch "$@" > "$state/switch.result" 2> "$state/switch.log"
        echo "exit=$?" >> "$state/switch.result"
    ) < /dev/null > /dev/null 2>&1 &
    job=$!
    printf '%s:%s\n' "$job" "$(proc_start "$job")" > "$state/switch.pid"
    wait "$job" || true
    rm -f "$state/switch.pid"
    grep -v '^exit=' "$state/switch.result" || true
    code=$(value exit "$state/switch.result")
    if [ "${code:-8}" != 0 ]; then
        grep '^error: ' "$state/switch.log" >&2 || true
        exit "${code:-8}"
    fi
}

status() {
    site=${1:-}
    [ -n "$site" ] || fail 2 "usage: worker.sh status WORKSPACE SITE"
    [ -d "$site_dir" ] || fail 3 "$site_dir does not exist on the worker"
    printf 'current_release=%s\n' "$(readlink "$workspace/frappe-bench" 2>/dev/null || true)"
    printf 'previous_release=%s\n' "$(value previous "$state/releases")"
    releases=$(release_dirs | tr '\n' ' ' | sed 's/ *$//')
    printf 'releases=%s\n' "$releases"
    # shellcheck disable=SC2086
    printf 'worker_services=%s\n' "$(services_of $worker_files 2>/dev/null || true)"
    # One service:state pair per container of the project (running, exited, restarting...).
    # shellcheck disable=SC2086
    printf 'service_states=%s\n' "$(compose $all_files ps -a --format '{{.Service}}:{{.State}}' 2>/dev/null | sort | tr '\n' ' ' | sed 's/ *$//')"
    if [ -f "$state/lock" ]; then
        printf 'lock_holder=%s\n' "$(value holder "$state/lock")"
        printf 'lock_since=%s\n' "$(value since "$state/lock")"
        printf 'lock_alive=%s\n' "$( { alive "$(value session "$state/lock")" || switch_running; } && echo yes || echo no)"
    fi
    if [ -f "$state/last-sync" ]; then
        sed 's/^/last_/' "$state/last-sync"
    fi
    if [ -f "$state/verified" ]; then
        sed 's/^/verified_/' "$state/verified"
    fi
}

prune() {
    keep=${1:-3}
    [ "$keep" -ge 1 ] 2>/dev/null || fail 2 "keep must be a number of at least 1: $keep"
    live=$(readlink "$workspace/frappe-bench" 2>/dev/null || true)
    previous=$(value previous "$state/releases")
    kept=0
    pruned=""
    for release in $(release_dirs | sort -r); do
        kept=$((kept + 1))
        if [ $kept -le "$keep" ] || [ "$release" = "$live" ] || [ "$release" = "$previous" ]; then
            continue
        fi
        rm -rf "${workspace:?}/$release"
        pruned="$pruned $release"
    done
    printf 'pruned=%s\n' "${pruned# }"
}

stop() {
    mkdir -p "$workspace/deployment-data" "$state"
    # The live release is about to be rewritten in place: it is no longer a verified copy.
    rm -f "$state/verified"
    stop_services "${1:--}" || fail 5 "stopping the worker services failed in $site_dir"
    printf 'stopped=yes\n'
}

activate() {
    site=${1:-}
    release=${2:-}
    { [ -n "$site" ] && [ -n "$release" ]; } || fail 2 "usage: worker.sh activate WORKSPACE SITE RELEASE"
    rel="$workspace/$release"
    [ -d "$rel" ] || fail 4 "release $rel is not on the worker: the transfer did not complete"
    link_configs "$site" "$rel"
    relink "$release" "$workspace/frappe-bench" || exit 4
    mkdir -p "$workspace/frappe-bench/config/pids"
    printf 'live_release=%s\n' "$release"
}

start() {
    start_services "${1:-0}" "${2:-yes}" "${3:--}" || exit 5
}

case $phase in
    preflight) preflight "$@" ;;
    lock) lock "$@" ;;
    unlock) unlock "$@" ;;
    status) status "$@" ;;
    digest) digest "$@" ;;
    stage-prepare) stage_prepare "$@" ;;
    stage-activate) stage_activate "$@" ;;
    unstage) unstage "$@" ;;
    switch) switch "$@" ;;
    prune) prune "$@" ;;
    stop) stop "$@" ;;
    activate) activate "$@" ;;
    start) start "$@" ;;
    *) fail 2 "unknown phase: $phase" ;;
esac
