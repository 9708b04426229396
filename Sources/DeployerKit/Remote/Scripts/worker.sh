#!/bin/sh
# The worker side of `frappe-deployer remote-worker sync`: one phase per run, fed over one ssh
# round trip as `sh -s -- PHASE WORKSPACE [SITE RELEASE] < worker.sh`.
#
#   preflight WORKSPACE SITE   checks only; changes nothing. Prints key=value facts.
#   stop WORKSPACE             stops every service of the site's compose project; creates WORKSPACE.
#   activate WORKSPACE SITE RELEASE
#                              links worker configs into the release, creates required
#                              directories, points frappe-bench at the release.
#   start WORKSPACE            starts `schedule` and every worker service, checks they run.
#
# Exit codes: 0 ok; 2 usage; 3 the worker is not ready (nothing was changed); 4 activation
# failed; 5 services failed. Errors are one line on stderr starting with "error: ".
set -eu

fail() {
    code=$1
    shift
    printf 'error: %s\n' "$*" >&2
    exit "$code"
}

[ $# -ge 2 ] || fail 2 "usage: worker.sh PHASE WORKSPACE [SITE RELEASE]"
phase=$1
workspace=$2
site=${3:-}
release=${4:-}
case $workspace in
    /*) ;;
    *) fail 2 "workspace must be an absolute path: $workspace" ;;
esac
site_dir=$(dirname -- "$workspace")
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
    # shellcheck disable=SC2086 # compose_cmd is one of two fixed words lists
    (cd "$site_dir" && $compose_cmd "$@")
}

# Prints the service names of the given compose files, one line, space-separated.
services_of() {
    # shellcheck disable=SC2086 # the file lists are fixed option words
    compose "$@" config --services | tr '\n' ' ' | sed 's/ *$//'
}

preflight() {
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
    current=""
    if [ -L "$link" ]; then
        current=$(readlink "$link")
    elif [ -e "$link" ]; then
        fail 3 "$link on the worker is a real directory, not a link to a release: move it away first"
    fi
    printf 'worker_services=%s\n' "$workers"
    printf 'current_release=%s\n' "$current"
}

stop() {
    # Every service of the project, including web ones a previous setup may have left running.
    # shellcheck disable=SC2086
    compose $all_files down --remove-orphans >&2
    mkdir -p "$workspace/deployment-data"
    printf 'stopped=yes\n'
}

# Replaces LINK with a symlink to TARGET in one rename, so no reader sees it missing.
relink() {
    target=$1
    link=$2
    if [ -d "$link" ] && [ ! -L "$link" ]; then
        fail 4 "$link is a directory, not a link: move it away first"
    fi
    tmp="$link.fd-new.$$"
    rm -f "$tmp"
    ln -s "$target" "$tmp"
    if ! mv -T "$tmp" "$link" 2>/dev/null; then
        # mv without -T (non-GNU): fall back to replacing the link in two steps.
        rm -f "$tmp"
        ln -sfn "$target" "$link"
    fi
}

activate() {
    { [ -n "$site" ] && [ -n "$release" ]; } || fail 2 "usage: worker.sh activate WORKSPACE SITE RELEASE"
    rel="$workspace/$release"
    data="$workspace/deployment-data"
    [ -d "$rel" ] || fail 4 "release $rel is not on the worker: the transfer did not complete"
    for file in "$data/sites/common_site_config.workers.json" "$data/sites/$site/site_config.workers.json"; do
        [ -f "$file" ] || fail 4 "$file is missing on the worker: run remote-worker enable on the main server"
    done
    mkdir -p "$data/sites/$site/private/files" "$data/sites/$site/public/files" "$rel/sites/$site"
    relink "../../deployment-data/sites/common_site_config.workers.json" "$rel/sites/common_site_config.json"
    relink "../../../deployment-data/sites/$site/site_config.workers.json" "$rel/sites/$site/site_config.json"
    relink "$release" "$workspace/frappe-bench"
    mkdir -p "$workspace/frappe-bench/config/pids"
    printf 'live_release=%s\n' "$release"
}

start() {
    # shellcheck disable=SC2086
    workers=$(services_of $worker_files)
    # --no-deps: schedule's dependencies (Redis) run on the main server, never here.
    # shellcheck disable=SC2086 # service names are single words
    compose $all_files up -d --no-deps schedule $workers >&2
    # shellcheck disable=SC2086
    running=$(compose $all_files ps --services --status running | tr '\n' ' ' | sed 's/ *$//')
    printf 'running=%s\n' "$running"
    for service in schedule $workers; do
        case " $running " in
            *" $service "*) ;;
            *) fail 5 "service $service is not running after start: see 'docker compose logs $service' in $site_dir" ;;
        esac
    done
}

case $phase in
    preflight) preflight ;;
    stop) stop ;;
    activate) activate ;;
    start) start ;;
    *) fail 2 "unknown phase: $phase" ;;
esac
