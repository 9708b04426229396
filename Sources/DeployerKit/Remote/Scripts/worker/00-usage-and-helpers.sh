#!/bin/sh
# The worker side of `frappe-deployer remote-worker`: one phase per run, fed over one ssh round
# trip as `sh -s -- PHASE WORKSPACE [--NAME=VALUE...] [-- LIST...] < worker.sh`. Options are named
# (no placeholders for absent ones); the phase's one list (exclude patterns, services, record
# lines) follows `--`. State (lock, previous release, the last switch's log) lives in
# SITE_DIR/.frappe-deployer, beside the compose files. The tool's Remote/Protocol is the other
# half of this interface: it builds these arguments and decodes the key=value facts printed here.
#
#   preflight WORKSPACE --site=S [--token=T --holder=H [--kind=K] [--origin=O] [--takeover=T2]] [--digest=R] [-- EXCLUDE...]
#       checks the worker and prints facts; with --token, then takes the per-site lock (nothing
#       is written unless every check passed; see lock). With --digest=R, also the digest of
#       the live copy when it is release R and the verified one (EXCLUDE patterns as rsync takes
#       them): a sync of another release has no use for it.
#   lock WORKSPACE --token=T --holder=H [--kind=K] [--origin=O] [--takeover=T2]
#       takes the per-site lock for an operation of kind K (sync, rollback), recording the live
#       release; exit 6 with held_* facts when a live sync holds it. A lock whose ssh session is
#       gone is taken over; --takeover names a holder's token to take over anyway (the tool passes
#       it only on proof from O, the holder's process identity, that it is dead). Taking a lock
#       over appends the history entry its holder could not (result=unfinished).
#   unlock WORKSPACE --token=T [--history=ENTRY] [-- KEY=VALUE...]
#       releases the lock if T holds it; first appends ENTRY (TAB-separated KEY=VALUE fields) to
#       the site's history, and with KEY=VALUE lines records them as the last sync.
#   history WORKSPACE [--limit=N]
#       read-only: the last N entries of the history (entry_1= oldest) and bad_releases=.
#   jobs WORKSPACE --site=S
#       read-only: the RQ workers of the live generation's worker services as the site's queue
#       Redis knows them (by their containers' host names, born since they started):
#       rq_N=SERVICE STATE NAME SUCCESSFUL FAILED (SERVICE ? where containers share a host
#       name), and rq=yes; rq=none when no worker service could read it.
#   authorize WORKSPACE --site=S --script=CKSUM --key=TYPE:BASE64
#       installs the least-privilege key for the site: the worker script staged in
#       SITE_DIR/.fd-authorized.new (its `cksum` must be CKSUM) with a dispatcher beside it in
#       STATE/authorized, and one authorized_keys entry restrict,command="... dispatch" for the
#       key (replacing this site's earlier one); prints authorized_entry= and rrsync=.
#   status WORKSPACE --site=S [-- EXCLUDE...]
#       read-only facts for `remote-worker status`: releases, each service's state, the lock's
#       holder, the last sync, and the live copy's digest when it is the verified one.
#   digest WORKSPACE --release=R [-- EXCLUDE...]
#       a digest of the release's files and links (name, size, time, mode) from rsync's listing.
#   stage-prepare WORKSPACE --stage=PATH
#       brings a live release whose directory is gone back from its set-aside copy (repaired=, or
#       live_missing= when there is none); removes what unfinished syncs left (leftovers= what it
#       could not); creates WORKSPACE and the staging directory.
#   stage-activate WORKSPACE --site=S --release=R --stage=PATH [-- EXCLUDE...]
#       links worker configs inside the staged release and records EXCLUDE... for its digest
#       (taken by the switch); renames it to R unless R is live (then the switch swaps it in:
#       swap=yes).
#   unstage WORKSPACE --stage=PATH
#       removes a staged release that will not go live.
#   switch WORKSPACE --site=S --release=R [--stage=PATH] --stop=RULES --settle=N [--deps=DEPS]
#          [--verified=MAIN[:COPY]] -- SERVICE...
#       stops services, makes R live (flips frappe-bench, or swaps PATH in), starts SERVICE... and
#       checks them; on failure flips back and starts the previous release. Runs detached, so a
#       dropped connection cannot stop it half-way. --verified is recorded with R once it runs;
#       without :COPY, the copy's digest is taken during the settle, with stage-activate's excludes.
#   prune WORKSPACE --keep=N
#       keeps the N newest releases (never the live or the previous one, nor one a generation
#       runs); pruned= what went, prune_failed= (and prune_error=) what could not.
#   stop WORKSPACE --stop=RULES                    (in place) stops every service of the project;
#                                                  prints stopping_ms= (this host's clock).
#   activate WORKSPACE --site=S --release=R        (in place) links worker configs, flips frappe-bench.
#   drains WORKSPACE                               the generations told to stop: drain_N= facts.
#   start WORKSPACE --settle=N [--deps=DEPS] -- SERVICE...
#                                                  (in place) starts SERVICE..., checks them;
#                                                  prints up_ms= (when they were up) and running=.
#
# RULES say how long each service gets to stop: PATTERN=SECONDS, comma-separated, first match
# wins (shell patterns, e.g. long-worker=1560,*-worker=360,*=10). Starting SERVICE... means
# `up -d --no-deps` of exactly those; then, from this host, a TCP connection to each of DEPS
# (NAME@HOST:PORT, comma-separated: the main server's queue and database); then SETTLE seconds,
# after which every started service must run and must not have restarted.
#
# Exit codes: 0 ok; 2 usage; 3 the worker is not ready (nothing was changed); 4 activation
# failed; 5 services failed; 6 locked by another sync; 7 the switch failed and the previous
# release runs again; 8 the switch failed and could not be undone. Errors are one line on stderr
# starting with "error: "; a failed switch also prints reason=.
#
# Variables: globals are set once below; a phase's options are opt_NAME; every other variable set
# inside a function starts with that function's initials and an underscore (si_killed in
# stop_in), since POSIX sh has no `local` and a shared name would leak between functions.
set -eu

fail() {
    fa_code=$1
    shift
    printf 'error: %s\n' "$*" >&2
    exit "$fa_code"
}

[ $# -ge 2 ] || fail 2 "usage: worker.sh PHASE WORKSPACE [--NAME=VALUE...] [-- LIST...]"
phase=$1
workspace=$2
shift 2
case $workspace in
    /*) ;;
    *) fail 2 "workspace must be an absolute path: $workspace" ;;
esac
while [ $# -gt 0 ]; do
    case $1 in
        --) shift; break ;;
        --*=*)
            option=${1%%=*}
            option=$(printf '%s' "${option#--}" | tr - _)
            case $option in
                '' | *[!a-z_]*) fail 2 "bad option name: $1" ;;
            esac
            eval "opt_$option=\${1#*=}"
            ;;
        *) fail 2 "unexpected argument (options are --NAME=VALUE; lists follow --): $1" ;;
    esac
    shift
done
site_dir=$(dirname -- "$workspace")
state="$site_dir/.frappe-deployer"
# Run through a least-privilege key (see authorize): the dispatcher names the one workspace this
# key may touch, and every name and path given must stay inside it.
if [ -n "${FD_AUTHORIZED_WORKSPACE:-}" ]; then
    [ "$workspace" = "$FD_AUTHORIZED_WORKSPACE" ] || fail 2 "this key is authorized for $FD_AUTHORIZED_WORKSPACE only, not $workspace"
    for az_name in "${opt_site:-}" "${opt_release:-}" "${opt_project:-}"; do
        case $az_name in
            */* | . | ..) fail 2 "this key refuses the name $az_name (names are single path components)" ;;
        esac
    done
    case ${opt_stage:-$workspace/.fd-staging-} in
        "$workspace"/.fd-staging-*/* | *..*) fail 2 "this key refuses the staging path $opt_stage" ;;
        "$workspace"/.fd-staging-*) ;;
        *) fail 2 "this key refuses the staging path $opt_stage (it must be in $workspace)" ;;
    esac
    [ "$phase" != authorize ] || fail 2 "a least-privilege key cannot authorize keys: use a full-access key"
fi
base_files="-f docker-compose.yml"
all_files="-f docker-compose.yml -f docker-compose.workers.yml"
worker_files="-f docker-compose.workers.yml"
compose_cmd=""
base_name=""

# The value of option NAME, or fail naming it.
required() {
    eval "re_value=\${opt_$1:-}"
    [ -n "$re_value" ] || fail 2 "$phase needs --$(printf '%s' "$1" | tr _ -)=VALUE"
    printf '%s\n' "$re_value"
}

# Finds Docker Compose v2 (the plugin) or the standalone docker-compose, once per run; fails
# the phase when there is none (`status` reads without it).
find_compose() {
    if docker compose version >/dev/null 2>&1; then
        compose_cmd="docker compose"
    elif command -v docker-compose >/dev/null 2>&1; then
        compose_cmd="docker-compose"
    elif [ "${1:-}" != optional ]; then
        fail 3 "Docker Compose is not installed on the worker: install the docker compose plugin (v2)"
    fi
}

# Runs Compose from the site dir, so the project name is the one an operator gets by hand there.
compose() {
    [ -n "$compose_cmd" ] || fail 3 "Docker Compose is not installed on the worker: install the docker compose plugin (v2)"
    # shellcheck disable=SC2086 # compose_cmd is one of two fixed word lists
    (cd "$site_dir" && $compose_cmd "$@")
}

# Prints the service names of the given compose files, one line, space-separated; fails with
# compose's own last error line on stderr when the files do not parse.
services_of() {
    if so_out=$(compose "$@" config --services 2>&1); then
        printf '%s\n' "$so_out" | one_line
    else
        printf '%s\n' "$so_out" | tail -n 1 >&2
        return 1
    fi
}

# Lines on standard input as one line, space-separated.
one_line() {
    tr '\n' ' ' | sed 's/ *$//'
}

# Compose v2 from the site dir, for questions asked before find_compose has answered.
compose_v2() {
    (cd "$site_dir" && docker compose "$@")
}

# A private directory for this run's background answers (see ask), removed when the run ends.
scratch=""
make_scratch() {
    [ -z "$scratch" ] || return 0
    scratch=$(mktemp -d 2>/dev/null) || { scratch=""; return 1; }
    trap 'rm -rf "$scratch"' EXIT
}

# Starts COMMAND... in the background; its output, last error line and status are kept as NAME.
ask() {
    ak_name=$1
    shift
    # (set -e holds in the subshell too: the status is caught, or a failure would leave no record)
    ( ak_rc=0; "$@" > "$scratch/$ak_name.out" 2> "$scratch/$ak_name.err" || ak_rc=$?; echo "$ak_rc" > "$scratch/$ak_name.rc" ) &
    eval "asked_$ak_name=\$!"
}

# Waits for the answers NAME... (see ask). In the phase's own shell: a command substitution
# cannot wait for them, as they are not its children.
await() {
    for aw_name in "$@"; do
        eval "aw_pid=\${asked_$aw_name:-}"
        [ -z "$aw_pid" ] || wait "$aw_pid" 2>/dev/null || true
    done
}

# The answer NAME, awaited (see await): prints its output and returns 0 when it succeeded; else
# prints its last error line and returns its status.
answer() {
    an_rc=$(cat "$scratch/$1.rc" 2>/dev/null) || an_rc=1
    if [ "$an_rc" = 0 ]; then
        cat "$scratch/$1.out"
    else
        tail -n 1 "$scratch/$1.err" 2>/dev/null
        return "$an_rc"
    fi
}

# The release directories in the workspace (release_*, not links), one per line.
release_dirs() {
    [ -d "$workspace" ] || return 0
    (cd "$workspace" && for rd_dir in release_*; do if [ -d "$rd_dir" ] && [ ! -L "$rd_dir" ]; then echo "$rd_dir"; fi; done)
}

# The value of KEY in a key=value FILE.
value() {
    sed -n "s/^$1=//p" "$2" 2>/dev/null | head -n 1
}

now_ms() {
    nm_ms=$(date +%s%3N)
    case $nm_ms in
        *N) echo "$(date +%s)000" ;;
        *) echo "$nm_ms" ;;
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
    si_pid=$$
    while [ "$si_pid" -gt 1 ]; do
        si_comm=$(cat "/proc/$si_pid/comm" 2>/dev/null) || break
        case $si_comm in
            sshd*)
                printf '%s:%s\n' "$si_pid" "$(proc_start "$si_pid")"
                return
                ;;
        esac
        si_pid=$(sed 's/.*) //' "/proc/$si_pid/stat" | awk '{ print $2 }')
    done
    printf '%s:%s\n' "$PPID" "$(proc_start "$PPID")"
}

# True while the process recorded as pid:starttime runs.
alive() {
    al_pid=${1%%:*}
    al_start=${1#*:}
    [ -n "$al_pid" ] && [ -n "$al_start" ] && [ "$(proc_start "$al_pid" 2>/dev/null || true)" = "$al_start" ]
}

switch_running() {
    [ -f "$state/switch.pid" ] && alive "$(cat "$state/switch.pid")"
}

# DIR's files and links as rsync lists them (directories left out: their times move whenever
# something is created inside), reduced to one checksum. EXCLUDE patterns follow DIR.
release_digest() {
    rd_root=$1
    shift
    # Each PATTERN becomes --filter=- PATTERN, as the tool passes them to rsync (the list is
    # expanded once, up front).
    for rd_pattern in "$@"; do
        set -- "$@" "--filter=- $rd_pattern"
        shift
    done
    TZ=UTC LC_ALL=C rsync -a --list-only "$@" -- "$rd_root/" | grep -v '^d' | cksum | tr ' ' '-'
}

