#!/bin/sh
# The worker side of `frappe-deployer remote-worker`: one phase per run, fed over one ssh round
# trip as `sh -s -- PHASE WORKSPACE [--NAME=VALUE...] [-- LIST...] < worker.sh`. Options are named
# (no placeholders for absent ones); the phase's one list (exclude patterns, services, record
# lines) follows `--`. State (lock, previous release, the last switch's log) lives in
# SITE_DIR/.frappe-deployer, beside the compose files. The tool's Remote/Protocol is the other
# half of this interface: it builds these arguments and decodes the key=value facts printed here.
#
#   preflight WORKSPACE --site=S [--token=T --holder=H [--origin=O] [--takeover=T2]] [--digest=yes] [-- EXCLUDE...]
#       checks the worker and prints facts; with --token, then takes the per-site lock (nothing
#       is written unless every check passed; see lock). With --digest=yes, also the digest of
#       the live copy when it is the verified one (EXCLUDE patterns as rsync takes them).
#   lock WORKSPACE --token=T --holder=H [--origin=O] [--takeover=T2]
#       takes the per-site lock; exit 6 with held_* facts when a live sync holds it. A lock whose
#       ssh session is gone is taken over; --takeover names a holder's token to take over anyway
#       (the tool passes it only on proof from O, the holder's process identity, that it is dead).
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
#       links worker configs inside the staged release and prints its digest; renames it to R
#       unless R is live (then the switch swaps it in: swap=yes).
#   unstage WORKSPACE --stage=PATH
#       removes a staged release that will not go live.
#   switch WORKSPACE --site=S --release=R [--stage=PATH] --stop=RULES --settle=N [--deps=DEPS]
#          [--verified=MAIN:COPY] -- SERVICE...
#       stops services, makes R live (flips frappe-bench, or swaps PATH in), starts SERVICE... and
#       checks them; on failure flips back and starts the previous release. Runs detached, so a
#       dropped connection cannot stop it half-way. --verified is recorded with R once it runs.
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
        printf '%s\n' "$so_out" | tr '\n' ' ' | sed 's/ *$//'
    else
        printf '%s\n' "$so_out" | tail -n 1 >&2
        return 1
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

# --- preflight, lock, unlock, status ---------------------------------------------------------

preflight() {
    pf_site=$(required site)
    [ -d "$site_dir" ] || fail 3 "$site_dir does not exist on the worker: create the worker's FM bench for $pf_site there, or set workspace_path"
    for pf_file in docker-compose.yml docker-compose.workers.yml; do
        [ -f "$site_dir/$pf_file" ] || fail 3 "$site_dir/$pf_file is missing on the worker: copy the site's compose files from the main server (remote-worker enable)"
    done
    command -v rsync >/dev/null 2>&1 || fail 3 "rsync is not installed on the worker: install it (apt-get install rsync)"
    # Bounded: a hung (or SIGSTOPped) engine makes every docker call wait forever.
    pf_info=0
    if command -v timeout >/dev/null 2>&1; then
        timeout -k 5 20 docker info >/dev/null 2>&1 || pf_info=$?
    else
        docker info >/dev/null 2>&1 || pf_info=$?
    fi
    case $pf_info in
        0) ;;
        124 | 137) fail 3 "the Docker engine on the worker does not answer (docker info took over 20 s): is dockerd hung or stopped?" ;;
        *) fail 3 "cannot reach the Docker engine on the worker as $(id -un): is dockerd running and is the user in the docker group?" ;;
    esac
    early_digest "$@"
    find_compose
    know_base
    # (on failure, services_of's one line on stderr is what is captured: compose's own error)
    # shellcheck disable=SC2086
    pf_workers=$(services_of $worker_files 2>&1) || fail 3 "$site_dir/docker-compose.workers.yml is not a valid compose file: $pf_workers"
    [ -n "$pf_workers" ] || fail 3 "$site_dir/docker-compose.workers.yml defines no services"
    # shellcheck disable=SC2086
    pf_base=$(services_of $base_files 2>&1) || fail 3 "$site_dir/docker-compose.yml is not a valid compose file: $pf_base"
    case " $pf_base " in
        *" schedule "*) ;;
        *) fail 3 "$site_dir/docker-compose.yml has no 'schedule' service" ;;
    esac
    if [ -e "$workspace" ] || [ -L "$workspace" ]; then
        [ -d "$workspace" ] || fail 3 "$workspace exists on the worker but is not a directory"
        [ -w "$workspace" ] || fail 3 "$workspace is not writable by $(id -un) on the worker"
    else
        [ -w "$site_dir" ] || fail 3 "$site_dir is not writable by $(id -un) on the worker"
    fi
    pf_link="$workspace/frappe-bench"
    if [ -e "$pf_link" ] && [ ! -L "$pf_link" ]; then
        fail 3 "$pf_link on the worker is a real directory, not a link to a release: move it away first"
    fi
    # Every check passed: only now is anything written (the lock), and the facts below are read
    # under it.
    if [ -n "${opt_token:-}" ]; then
        lock
    fi
    pf_current=$(live_release)
    printf 'worker_services=%s\n' "$pf_workers"
    printf 'current_release=%s\n' "$pf_current"
    release_facts "$pf_current" "$@"
    printf 'live_generation=%s\n' "$(live_project)"
    # Everything of the site that runs and does not drain: a stray web service makes a no-change
    # sync hand over too, so that only worker services run after.
    printf 'running=%s\n' "$(serving_services)"
    drain_facts
    printf 'bad_releases=%s\n' "$(bad_releases)"
    printf 'rsync_compress=%s\n' "$(rsync --version 2>/dev/null | sed -n '/^Compress list:/{n;p;}' | sed 's/^ *//')"
    printf 'rsync_checksum=%s\n' "$(rsync --version 2>/dev/null | sed -n '/^Checksum list:/{n;p;}' | sed 's/^ *//')"
}

# Facts about the releases on the worker (preflight and status): which are there, the previous
# one, the verified copy, and, with --digest=yes, the live copy's digest when it is the verified one.
release_facts() {
    rf_current=$1
    shift
    printf 'previous_release=%s\n' "$(value previous "$state/releases")"
    printf 'releases=%s\n' "$(release_dirs | tr '\n' ' ' | sed 's/ *$//')"
    rf_verified=$(value release "$state/verified")
    printf 'verified_release=%s\n' "$rf_verified"
    printf 'verified_main=%s\n' "$(value main "$state/verified")"
    printf 'verified_copy=%s\n' "$(value copy "$state/verified")"
    [ -n "$rf_current" ] && printf 'live_configs=%s\n' "$(config_fingerprint "$workspace/$rf_current" "$(required site)")"
    if [ "${opt_digest:-}" = yes ] && [ -n "$rf_current" ] && [ "$rf_current" = "$rf_verified" ] && [ -d "$workspace/$rf_current" ]; then
        rf_digest=""
        if [ "$early_release" = "$rf_current" ] && wait "$early_pid" 2>/dev/null; then rf_digest=$(cat "$early_file" 2>/dev/null); fi
        [ -n "$rf_digest" ] || rf_digest=$(release_digest "$workspace/$rf_current" "$@")
        printf 'live_digest=%s\n' "$rf_digest"
    fi
}

# The live copy's digest, the longest part of a check, is started in the background (with
# EXCLUDE... as release_digest takes them) while the compose files are checked. release_facts
# uses it only for the release that is live and verified once the lock is held, and otherwise
# takes it again: a digest of a copy that changed meanwhile can only make the sync stage afresh.
early_release=""
early_pid=""
early_file=""
early_digest() {
    [ "${opt_digest:-}" = yes ] || return 0
    ed_live=$(live_release)
    [ -n "$ed_live" ] && [ "$ed_live" = "$(value release "$state/verified")" ] && [ -d "$workspace/$ed_live" ] || return 0
    early_file=$(mktemp 2>/dev/null) || return 0
    trap 'rm -f "$early_file"' EXIT
    release_digest "$workspace/$ed_live" "$@" > "$early_file" 2>/dev/null &
    early_pid=$!
    early_release=$ed_live
}

lock() {
    lk_token=$(required token)
    lk_holder=$(required holder)
    [ -d "$site_dir" ] || fail 3 "$site_dir does not exist on the worker"
    command -v flock >/dev/null 2>&1 || fail 3 "flock is not installed on the worker: install util-linux"
    mkdir -p "$state"
    # The guard serializes lock takers on this worker; it is held for this phase only.
    exec 9>>"$state/lock.guard"
    flock -w 30 9 || fail 6 "the lock guard $state/lock.guard stayed busy for 30 s"
    if [ -f "$state/lock" ]; then
        lk_held=$(value token "$state/lock")
        if [ "$lk_held" = "$lk_token" ]; then
            exec 9>&-
            printf 'locked=yes\n'
            return
        fi
        if alive "$(value session "$state/lock")" || switch_running; then
            if [ -n "${opt_takeover:-}" ] && [ "$opt_takeover" = "$lk_held" ] && ! switch_running; then
                printf 'took_over=%s\n' "$(value holder "$state/lock")"
            else
                printf 'held_by=%s\n' "$(value holder "$state/lock")"
                printf 'held_since=%s\n' "$(value since "$state/lock")"
                printf 'held_token=%s\n' "$lk_held"
                printf 'held_origin=%s\n' "$(value origin "$state/lock")"
                printf 'switch_running=%s\n' "$(switch_running && echo yes || echo no)"
                exit 6
            fi
        else
            printf 'stale_lock=%s\n' "$(value holder "$state/lock")"
        fi
    fi
    record "$state/lock" "token=$lk_token" "holder=$lk_holder" "origin=${opt_origin:-}" "since=$(date +%s)" "session=$(session_id)" 2>/dev/null \
        || fail 3 "$(write_problem "$state"): the lock could not be taken; nothing was changed"
    # The guard only serializes taking the lock: released now, so a phase that hangs after this
    # (or an orphaned one) never keeps the next sync from reading the lock.
    exec 9>&-
    printf 'locked=yes\n'
}

unlock() {
    ul_token=$(required token)
    [ -f "$state/lock" ] || return 0
    if [ "$(value token "$state/lock")" = "$ul_token" ]; then
        # The lock goes even when a record cannot be written (its error is on stderr).
        [ -z "${opt_history:-}" ] || append_history "$opt_history" || true
        [ $# -eq 0 ] || record "$state/last-sync" "$@" || true
        rm -f "$state/lock"
        printf 'unlocked=yes\n'
    fi
}

# --- history: one line per sync or rollback that held the lock ------------------------------
# TAB-separated KEY=VALUE fields (the tool keeps tabs and newlines out of values). Only appended,
# under the lock; past 1 MiB the file becomes history.1 (one older file is kept).
append_history() {
    if [ -f "$state/history" ] && [ "$(wc -c < "$state/history")" -gt 1048576 ]; then
        mv -f "$state/history" "$state/history.1"
    fi
    { printf '%s\n' "$1" >> "$state/history"; } 2>/dev/null || {
        printf 'error: %s: the history could not be appended to\n' "$(write_problem "$state")" >&2
        return 1
    }
}

# The releases marked bad, space-separated: the last switch to each from another release that
# ended (result ok, rolled-back or switch-failed; a refusal or an early failure says nothing about
# the release) failed its checks. A restart of the live release that fails (a worker config that
# does not work) marks nothing: that release runs on. A later switch to it that succeeds (--force)
# clears the mark.
bad_releases() {
    cat "$state/history.1" "$state/history" 2>/dev/null | awk -F '\t' '
        { from = ""; to = ""; result = ""
          for (i = 1; i <= NF; i++) {
              if (substr($i, 1, 5) == "from=") from = substr($i, 6)
              else if (substr($i, 1, 3) == "to=") to = substr($i, 4)
              else if (substr($i, 1, 7) == "result=") result = substr($i, 8)
          }
          if (to == "") next
          if (result == "ok") last[to] = result
          else if ((result == "rolled-back" || result == "switch-failed") && from != to) last[to] = result }
        END { for (release in last) if (last[release] != "ok") print release }' | sort | tr '\n' ' ' | sed 's/ *$//'
}

show_history() {
    sh_limit=${opt_limit:-100}
    case $sh_limit in '' | *[!0-9]*) fail 2 "history needs --limit=N (a number)" ;; esac
    cat "$state/history.1" "$state/history" 2>/dev/null | tail -n "$sh_limit" | awk '{ printf "entry_%d=%s\n", NR, $0 }'
    printf 'bad_releases=%s\n' "$(bad_releases)"
}

# --- authorize: a least-privilege key for this site --------------------------------------------

# The dispatcher: the forced command of the key (authorized_keys command=). It runs only the worker
# script installed beside it, for this site's workspace (the client names the script it expects by
# its cksum on the first line of standard input; the phase's arguments follow, NUL-separated), and
# rsync confined to the workspace by rrsync; anything else is refused.
write_dispatch() {
    cat <<DISPATCH
#!/bin/sh
# frappe-deployer: the forced command of a least-privilege key for $site_dir, written by
# \`frappe-deployer remote-worker authorize --install\`. It runs only the worker script beside it,
# for this workspace, and rsync confined to the workspace by rrsync; anything else is refused.
set -eu
here='$state/authorized'
workspace='$workspace'
refuse() { printf 'error: %s\\n' "\$*" >&2; exit 126; }
case \${SSH_ORIGINAL_COMMAND:-} in
    'rsync --server '*)
        exec '$1' -absolute -no-lock "\$workspace" ;;
    frappe-deployer-worker)
        IFS= read -r claim || refuse "no worker script named on standard input"
        have=\$(cksum < "\$here/worker.sh" | cut -d ' ' -f 1,2)
        [ "\$claim" = "\$have" ] || refuse "the worker script authorized on this worker (cksum \$have) is not this frappe-deployer's (\$claim): run remote-worker authorize --install again with a full-access key"
        FD_AUTHORIZED_WORKSPACE=\$workspace
        export FD_AUTHORIZED_WORKSPACE
        # xargs turns the NUL-separated arguments into a command line; the script's own exit
        # status (which xargs would fold into 123) comes back on the captured standard output.
        exec 3>&1
        # shellcheck disable=SC2016 # expanded by the inner sh
        status=\$(xargs -0 -x sh -c 'sh "\$0" "\$@" >&3 3>&-; echo "\$?"' "\$here/worker.sh")
        exit "\${status:-2}" ;;
    *)
        refuse "this key only runs frappe-deployer for \$workspace: '\${SSH_ORIGINAL_COMMAND:-a login shell}' is refused" ;;
esac
DISPATCH
}

authorize() {
    az_site=$(required site)
    az_script=$(required script)
    az_key=$(required key)
    # The entry's command= and the dispatcher quote these paths with nothing but single quotes.
    case $site_dir in *[!A-Za-z0-9_./@+-]*) fail 3 "$site_dir holds characters a forced command cannot carry safely" ;; esac
    az_type=${az_key%%:*}
    az_base64=${az_key#*:}
    case $az_type in '' | *[!a-z0-9@.-]*) fail 2 "bad key type: $az_type" ;; esac
    case $az_base64 in '' | *[!A-Za-z0-9+/=]*) fail 2 "the key is not base64" ;; esac
    az_rrsync=$(command -v rrsync 2>/dev/null) || fail 3 "rrsync is not installed on the worker: install it (Debian's rsync package ships it; it runs on python3)"
    "$az_rrsync" -help 2>&1 | grep -q -- '-absolute' || fail 3 "$az_rrsync does not know -absolute (rrsync -help does not list it): upgrade rsync on the worker"
    az_new="$site_dir/.fd-authorized.new"
    [ -f "$az_new/worker.sh" ] || fail 2 "authorize needs the worker script in $az_new"
    [ "$(cksum < "$az_new/worker.sh" | cut -d ' ' -f 1,2)" = "$az_script" ] \
        || fail 3 "the worker script staged in $az_new is not the one sent (cksum differs): try again"
    mkdir -p "$state" || fail 3 "$(write_problem "$site_dir"): $state could not be created"
    write_dispatch "$az_rrsync" > "$az_new/dispatch" || fail 3 "$(write_problem "$site_dir"): the dispatcher could not be written"
    chmod 0755 "$az_new"
    chmod 0644 "$az_new/worker.sh" "$az_new/dispatch"
    rm -rf "$state/authorized.old"
    [ ! -d "$state/authorized" ] || mv "$state/authorized" "$state/authorized.old"
    mv "$az_new" "$state/authorized"
    rm -rf "$state/authorized.old"
    # The entry: this site's earlier one (by its comment) replaced, every other line kept.
    az_marker="frappe-deployer:$site_dir"
    az_entry="restrict,command=\"/bin/sh $state/authorized/dispatch\" $az_type $az_base64 $az_marker"
    az_ssh="$HOME/.ssh"
    mkdir -p "$az_ssh" && chmod 0700 "$az_ssh"
    az_keys="$az_ssh/authorized_keys"
    # Every other line is kept exactly (a line that cannot be read fails this, never drops keys);
    # the marker is matched at the end of a line, so another site whose path starts alike stays.
    az_copied=yes
    if [ -f "$az_keys" ]; then
        awk -v marker=" $az_marker" 'length($0) < length(marker) || substr($0, length($0) - length(marker) + 1) != marker' \
            "$az_keys" > "$az_keys.fd-new" 2>/dev/null || az_copied=no
    else
        : > "$az_keys.fd-new" 2>/dev/null || az_copied=no
    fi
    if [ $az_copied = no ] || ! printf '%s\n' "$az_entry" >> "$az_keys.fd-new" \
        || ! chmod 0600 "$az_keys.fd-new" || ! mv -f "$az_keys.fd-new" "$az_keys"; then
        rm -f "$az_keys.fd-new"
        fail 3 "$(write_problem "$az_ssh"): $az_keys could not be written; it is unchanged"
    fi
    printf 'authorized_entry=%s\n' "$az_entry"
    printf 'rrsync=%s\n' "$az_rrsync"
    printf 'site=%s\n' "$az_site"
}

status() {
    required site >/dev/null
    [ -d "$site_dir" ] || fail 3 "$site_dir does not exist on the worker"
    find_compose optional
    know_base
    st_current=$(live_release)
    printf 'current_release=%s\n' "$st_current"
    opt_digest=yes
    release_facts "$st_current" "$@"
    # shellcheck disable=SC2086
    printf 'worker_services=%s\n' "$(services_of $worker_files 2>/dev/null || true)"
    # One service:state pair per container of the live generation (running, exited, restarting...).
    st_live=$(live_project 2>/dev/null)
    printf 'live_generation=%s\n' "$st_live"
    st_project=${st_live:-$base_name}
    printf 'service_states=%s\n' "$(project_compose "$st_project" ps -a --format '{{.Service}}:{{.State}}' 2>/dev/null | sort | tr '\n' ' ' | sed 's/ *$//')"
    drain_facts 2>/dev/null
    # RQ's suspend flag (what FM's `fmx restart` sets while it drains): a suspended queue looks
    # healthy and runs nothing, on the main server and every worker. Read through a live worker.
    st_worker=$(running_in "$st_project" | tr ' ' '\n' | grep -v '^schedule$' | head -n 1)
    if [ -n "$st_worker" ] && st_flag=$(project_compose "$st_project" exec -T "$st_worker" /workspace/frappe-bench/env/bin/python -c "$suspended_py" 2>/dev/null); then
        printf 'queue_suspended=%s\n' "$st_flag"
    fi
    if [ -f "$state/lock" ]; then
        printf 'lock_holder=%s\n' "$(value holder "$state/lock")"
        printf 'lock_since=%s\n' "$(value since "$state/lock")"
        printf 'lock_alive=%s\n' "$( { alive "$(value session "$state/lock")" || switch_running; } && echo yes || echo no)"
    fi
    if [ -f "$state/last-sync" ]; then
        sed 's/^/last_/' "$state/last-sync"
    fi
    printf 'bad_releases=%s\n' "$(bad_releases)"
}

# --- staging ---------------------------------------------------------------------------------

digest() {
    dg_release=$(required release)
    [ -d "$workspace/$dg_release" ] || fail 4 "release $workspace/$dg_release is not on the worker"
    printf 'digest=%s\n' "$(release_digest "$workspace/$dg_release" "$@")"
}

stage_prepare() {
    sp_stage=$(required stage)
    case ${sp_stage##*/} in
        .fd-staging-*) ;;
        *) fail 2 "not a staging directory: $sp_stage" ;;
    esac
    mkdir -p "$workspace/deployment-data" "$state"
    # What syncs that did not finish left behind; the lock guarantees none of them still runs. The
    # old copy of a swapped release stays while its generation drains (the drain removes it).
    find_compose optional
    repair_live
    sp_draining=$(draining_projects)
    sp_left=""
    for sp_leftover in "$workspace"/.fd-staging-* "$workspace"/.fd-old-* "$workspace"/.fd-failed-* "$workspace"/.fd-prune-*; do
        case ${sp_leftover##*/} in .fd-old-*) [ -n "$sp_draining" ] && continue ;; esac
        [ -e "$sp_leftover" ] || continue
        if rm -rf "$sp_leftover" 2>/dev/null; then
            printf 'removed=%s\n' "${sp_leftover##*/}"
        else
            sp_left="$sp_left ${sp_leftover##*/}"
        fi
    done
    printf 'leftovers=%s\n' "${sp_left# }"
    mkdir -p "$sp_stage"
    printf 'prepared=yes\n'
}

# Replaces LINK with a symlink to TARGET in one rename, so no reader sees it missing.
relink() {
    rl_target=$1
    rl_link=$2
    if [ -d "$rl_link" ] && [ ! -L "$rl_link" ]; then
        printf 'error: %s is a directory, not a link: move it away first\n' "$rl_link" >&2
        return 4
    fi
    rl_tmp="$rl_link.fd-new.$$"
    rm -f "$rl_tmp"
    ln -s "$rl_target" "$rl_tmp" || return 4
    if ! mv -T "$rl_tmp" "$rl_link" 2>/dev/null; then
        # mv without -T (non-GNU): fall back to replacing the link in two steps.
        rm -f "$rl_tmp"
        ln -sfn "$rl_target" "$rl_link" || return 4
    fi
}

# Gives release directory DIR its own copy of the worker configs as deployment-data holds them
# now, and links the release's config files to that copy (`sites/common_site_config.json ->
# common_site_config.workers.json`, likewise the site's): a release keeps the configuration it
# went live with, so the generation that runs it, and a rollback to it, read that one, whatever
# later syncs bring into deployment-data. The copies keep the files' times (their fingerprint).
link_configs() {
    lc_site=$1
    lc_dir=$2
    lc_data="$workspace/deployment-data"
    for lc_file in "$lc_data/sites/common_site_config.workers.json" "$lc_data/sites/$lc_site/site_config.workers.json"; do
        [ -f "$lc_file" ] || fail 4 "$lc_file is missing on the worker: run remote-worker enable on the main server"
    done
    mkdir -p "$lc_data/sites/$lc_site/private/files" "$lc_data/sites/$lc_site/public/files" "$lc_data/config/pids" "$lc_dir/sites/$lc_site"
    keep_config "$lc_data/sites/common_site_config.workers.json" "$lc_dir/sites/common_site_config.workers.json"
    keep_config "$lc_data/sites/$lc_site/site_config.workers.json" "$lc_dir/sites/$lc_site/site_config.workers.json"
    relink "common_site_config.workers.json" "$lc_dir/sites/common_site_config.json" || exit 4
    relink "site_config.workers.json" "$lc_dir/sites/$lc_site/site_config.json" || exit 4
}

# Copies worker config SOURCE to COPY in one rename (mode and time kept), so no reader sees half.
keep_config() {
    kc_tmp="$2.fd-new.$$"
    if ! { cp -p "$1" "$kc_tmp" && mv -f "$kc_tmp" "$2"; } 2>/dev/null; then
        rm -f "$kc_tmp"
        fail 4 "$(write_problem "${2%/*}"): the worker config $2 could not be written"
    fi
}

# The fingerprint of release directory DIR's own worker configs (size:mtime of each, the two
# files in the order link_configs makes them); empty when it has none (a release linked before
# releases kept their own).
config_fingerprint() {
    cf_common="$1/sites/common_site_config.workers.json"
    cf_site="$1/sites/$2/site_config.workers.json"
    [ -f "$cf_common" ] && [ -f "$cf_site" ] || return 0
    stat -c '%s:%Y' "$cf_common" "$cf_site" | tr '\n' ' ' | sed 's/ *$//'
}

# The live release's directory is gone (a crash between the swap's two renames, or removed by
# hand): the copy set aside comes back under its name before any leftover is removed, since the
# running generation's code is that copy. With no such copy, live_missing= says so, and the
# staged copy takes the name without a swap.
repair_live() {
    rp_live=$(live_release)
    [ -n "$rp_live" ] && [ ! -d "$workspace/$rp_live" ] || return 0
    for rp_aside in "$workspace/.fd-old-$rp_live"-* "$workspace/.fd-old-$rp_live".*; do
        if [ -d "$rp_aside" ] && mv "$rp_aside" "$workspace/$rp_live"; then
            printf 'repaired=%s\n' "$rp_live"
            return 0
        fi
    done
    printf 'live_missing=%s\n' "$rp_live"
}

stage_activate() {
    sa_site=$(required site)
    sa_release=$(required release)
    sa_stage=$(required stage)
    [ -d "$sa_stage" ] || fail 4 "staged release $sa_stage is not on the worker: the transfer did not complete"
    link_configs "$sa_site" "$sa_stage"
    printf 'digest=%s\n' "$(release_digest "$sa_stage" "$@")"
    sa_live=$(live_release)
    if [ "$sa_release" = "$sa_live" ] && [ -d "$workspace/$sa_live" ]; then
        # The live release cannot be replaced by a rename while it runs: the switch swaps it in.
        printf 'swap=yes\n'
        return
    fi
    if [ -e "$workspace/$sa_release" ]; then
        # An older copy of this release that is not live: replaced by the fresh one.
        mv "$workspace/$sa_release" "$workspace/.fd-old-$sa_release.$$"
        rm -rf "$workspace/.fd-old-$sa_release.$$"
    fi
    mv "$sa_stage" "$workspace/$sa_release"
    printf 'swap=no\n'
}

unstage() {
    us_stage=$(required stage)
    case ${us_stage##*/} in
        .fd-staging-*) rm -rf "$us_stage" ;;
        *) fail 2 "not a staging directory: $us_stage" ;;
    esac
    printf 'unstaged=yes\n'
}

# --- services: generations -----------------------------------------------------------------
#
# A generation is a Compose project that runs the site's worker services for one release, pinned
# to it: its containers see WORKSPACE/RELEASE at /workspace/frappe-bench (and deployment-data
# beside it) through an override file written here, so flipping frappe-bench never reaches them.
# The override replaces each service's /workspace mount (Compose merges volumes by target) with a
# view holding only those two, names the containers for the generation (FM names them), and
# labels them. The site's own project (FM's, reading through frappe-bench) is the generation that
# no switch of this tool started. A handover starts the new generation, checks it, hands the
# scheduler over, and only then tells the old one to stop: it drains on its own release, detached.

gen_dir="$state/generations"

# The site's own Compose project name (as compose derives it from the site dir): read once per
# run by know_base, which the phases that need it call first (a `compose config` each time would
# parse both files again for every project looked at).
base_project() {
    if [ -n "$base_name" ]; then
        printf '%s\n' "$base_name"
        return
    fi
    # shellcheck disable=SC2086
    bp_name=$(compose $all_files config 2>/dev/null | sed -n 's/^name: *//p' | head -n 1)
    [ -n "$bp_name" ] || bp_name=$(basename -- "$site_dir" | tr '[:upper:]' '[:lower:]' | tr -cd 'a-z0-9_-')
    printf '%s\n' "$bp_name"
}

know_base() {
    base_name=$(base_project)
}

# Runs Compose for generation PROJECT: with its override, or the site's own project.
project_compose() {
    pc_project=$1
    shift
    if [ -f "$gen_dir/$pc_project.yml" ]; then
        # shellcheck disable=SC2086
        compose -p "$pc_project" $all_files -f "$gen_dir/$pc_project.yml" "$@"
    else
        # shellcheck disable=SC2086
        compose $all_files "$@"
    fi
}

# The services of PROJECT with a running container, one line, space-separated, sorted. Read from
# the containers' Compose labels in one docker call (a `compose ps` parses both compose files
# again, about 90 ms, and a check asks this several times).
running_in() {
    ri_out=$(docker ps --filter "label=com.docker.compose.project=$1" --filter status=running \
        --format '{{.Label "com.docker.compose.service"}}' 2>/dev/null) || return 1
    printf '%s\n' "$ri_out" | sed '/^$/d' | sort -u | tr '\n' ' ' | sed 's/ *$//'
}

# The generation serving now: the recorded one while it runs, else the site's own project while
# it runs; empty when no service of the site runs.
live_project() {
    lp_project=$(value project "$state/live")
    if [ -n "$lp_project" ] && [ -n "$(running_in "$lp_project")" ]; then
        echo "$lp_project"
    elif [ -n "$(running_in "$(base_project)")" ]; then
        base_project
    fi
}

# Generations of this site that have containers (running or not), by label.
labelled_projects() {
    docker ps -a --filter "label=frappe-deployer.site-dir=$site_dir" --format '{{.Label "com.docker.compose.project"}}' 2>/dev/null | sort -u
}

# The generations still draining: told to stop and still running containers, one per line. (A
# record left "draining" by a drainer that died, with nothing running, is not.)
draining_projects() {
    for dp_file in "$gen_dir"/*.drain; do
        [ -f "$dp_file" ] || continue
        dp_project=$(basename -- "$dp_file" .drain)
        if [ "$(value state "$dp_file")" = draining ] && [ -n "$(running_in "$dp_project")" ]; then echo "$dp_project"; fi
    done
    return 0
}

# The projects of this site that run services and do not drain: the live generation, and any
# other (services an operator started in the site's own project, a generation left running).
serving_projects() {
    sp_draining=" $(draining_projects | tr '\n' ' ') "
    for sp_project in $(labelled_projects) "$(base_project)"; do
        case $sp_draining in *" $sp_project "*) continue ;; esac
        [ -n "$(running_in "$sp_project")" ] && echo "$sp_project"
    done | sort -u
}

# The services running in the serving projects, one line, space-separated, sorted, each once.
serving_services() {
    for ss_project in $(serving_projects); do running_in "$ss_project" | tr ' ' '\n'; done | sort -u | tr '\n' ' ' | sed 's/ *$//'
}

# The release serving now: the one recorded live by the last handover, else frappe-bench's.
live_release() {
    lr_release=$(value release "$state/live")
    [ -n "$lr_release" ] || lr_release=$(readlink "$workspace/frappe-bench" 2>/dev/null || true)
    printf '%s\n' "$lr_release"
}

# drain_N= facts: PROJECT RELEASE SINCE STATE RUNNING KILLED DONE (lists comma-separated, - for none).
drain_facts() {
    df_n=0
    for df_file in "$gen_dir"/*.drain; do
        [ -f "$df_file" ] || continue
        df_n=$((df_n + 1))
        df_project=$(basename -- "$df_file" .drain)
        df_running=$(running_in "$df_project" | tr ' ' ',')
        printf 'drain_%s=%s %s %s %s %s %s %s\n' "$df_n" "$df_project" "$(value release "$df_file")" "$(value since "$df_file")" \
            "$(value state "$df_file")" "${df_running:--}" "$(value killed "$df_file" | sed 's/^$/-/')" "$(value "done" "$df_file" | sed 's/^$/-/')"
    done
}

# Writes a key=value record FILE from its lines, atomically.
record() {
    prepare_record "$@" && mv -f "$1.new" "$1"
}

# Writes FILE.new with LINE... and checks it holds them (a full disk can leave it empty or
# short without a failing exit); on failure removes it, says so on stderr and returns 1.
# FILE.new goes live with `mv -f FILE.new FILE` (a rename needs no space).
prepare_record() {
    pc_file=$1
    shift
    if { printf '%s\n' "$@" > "$pc_file.new"; } 2>/dev/null && [ "$(cat "$pc_file.new" 2>/dev/null)" = "$(printf '%s\n' "$@")" ]; then
        return 0
    fi
    rm -f "$pc_file.new"
    printf 'error: %s: %s could not be recorded\n' "$(write_problem "${pc_file%/*}")" "${pc_file##*/}" >&2
    return 1
}

# Why a write in DIR failed, in words: the disk is full (under 64 KiB free), or DIR is not writable.
write_problem() {
    wp_free=$(df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $4 }')
    if [ "${wp_free:-64}" -lt 64 ] 2>/dev/null; then
        printf "the worker's disk is full at %s" "$1"
    else
        printf '%s is not writable by %s' "$1" "$(id -un)"
    fi
}

# Fills FILE with SIZE newlines and checks they are all there: space the switch's result and log
# overwrite in place (1<>), so they are written even if the disk fills up during the switch.
reserve() {
    rs_size=$2
    { head -c "$rs_size" /dev/zero | tr '\0' '\n' > "$1"; } 2>/dev/null && [ "$(wc -c < "$1")" -eq "$rs_size" ]
}

# "..." for YAML, with backslashes and double quotes escaped.
yaml_quote() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"
}

# Writes generation PROJECT of RELEASE: the view (mount points only) and the override that pins
# SERVICE... to the release.
write_generation() {
    wg_project=$1
    wg_release=$2
    shift 2
    mkdir -p "$gen_dir/$wg_project.view/frappe-bench" "$gen_dir/$wg_project.view/deployment-data" 2>/dev/null || return 1
    wg_text=$(
        printf 'services:\n'
        for wg_service in "$@"; do
            printf '  %s:\n' "$wg_service"
            printf '    container_name: %s\n' "$wg_project-$wg_service"
            printf '    labels:\n'
            printf '      frappe-deployer.site-dir: %s\n' "$(yaml_quote "$site_dir")"
            printf '      frappe-deployer.release: %s\n' "$(yaml_quote "$wg_release")"
            printf '    volumes:\n'
            printf '      - {type: bind, source: %s, target: /workspace}\n' "$(yaml_quote "$gen_dir/$wg_project.view")"
            printf '      - {type: bind, source: %s, target: /workspace/frappe-bench}\n' "$(yaml_quote "$workspace/$wg_release")"
            printf '      - {type: bind, source: %s, target: /workspace/deployment-data}\n' "$(yaml_quote "$workspace/deployment-data")"
        done
    )
    record "$gen_dir/$wg_project.yml" "$wg_text"
}

# Removes generation PROJECT's containers and files (its drain record stays, for status).
remove_generation() {
    project_compose "$1" down --remove-orphans -t 10 >&2 2>/dev/null || true
    rm -rf "$gen_dir/$1.yml" "$gen_dir/$1.view"
}

# Seconds SERVICE gets to stop under RULES (PATTERN=SECONDS,...; first match wins; else 10).
stop_wait() {
    sw_service=$1
    sw_rules=$2
    sw_ifs=$IFS
    IFS=,
    # shellcheck disable=SC2086 # split on commas
    set -- $sw_rules
    IFS=$sw_ifs
    for sw_rule in "$@"; do
        # shellcheck disable=SC2254 # the pattern is a shell pattern on purpose
        case $sw_service in
            ${sw_rule%=*}) echo "${sw_rule##*=}"; return ;;
        esac
    done
    echo 10
}

# Stops PROJECT's running services (or SERVICE... of them) gracefully, each with its own wait
# under RULES, in parallel. Prints killed=SERVICE... for those whose wait ran out (exit 137).
stop_in() {
    si_project=$1
    si_rules=$2
    shift 2
    si_services=${*:-$(running_in "$si_project")}
    si_pids=""
    for si_service in $si_services; do
        project_compose "$si_project" stop -t "$(stop_wait "$si_service" "$si_rules")" "$si_service" >&2 &
        si_pids="$si_pids $!"
    done
    si_status=0
    for si_pid in $si_pids; do wait "$si_pid" || si_status=5; done
    si_killed=""
    for si_service in $si_services; do
        for si_id in $(project_compose "$si_project" ps -a -q "$si_service" 2>/dev/null); do
            if [ "$(docker inspect -f '{{.State.ExitCode}}' "$si_id" 2>/dev/null)" = 137 ]; then si_killed="$si_killed $si_service"; fi
        done
    done
    printf 'killed=%s\n' "${si_killed# }"
    return $si_status
}

# In place: stops every generation of the site and the site's own project, then removes their
# containers; the site's own project serves again from the next start.
stop_everything() {
    se_rules=$1
    se_status=0
    for se_project in $(labelled_projects) "$(base_project)"; do
        stop_in "$se_project" "$se_rules" > /dev/null || se_status=5
        project_compose "$se_project" down --remove-orphans -t 10 >&2 || se_status=5
        [ -f "$gen_dir/$se_project.yml" ] && rm -rf "$gen_dir/$se_project.yml" "$gen_dir/$se_project.view"
    done
    rm -f "$state/live"
    return $se_status
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
    [ -n "${1:-}" ] || return 0
    cd_status=0
    cd_ifs=$IFS
    IFS=,
    # shellcheck disable=SC2086 # split on commas
    set -- $1
    IFS=$cd_ifs
    for cd_dep in "$@"; do
        cd_name=${cd_dep%%@*}
        cd_address=${cd_dep#*@}
        cd_port=${cd_address##*:}
        cd_host=${cd_address%:*}
        cd_host=${cd_host#[}
        cd_host=${cd_host%]}
        # (a failing command in an if keeps `set -e` from ending the script)
        if tcp_open "$cd_host" "$cd_port"; then cd_result=0; else cd_result=$?; fi
        case $cd_result in
            0) printf 'dep_%s=ok\n' "$cd_name" ;;
            2)
                printf 'dep_%s=unchecked\n' "$cd_name"
                printf 'warning: cannot check %s (%s:%s) from the worker: it has none of bash, nc, python3\n' "$cd_name" "$cd_host" "$cd_port" >&2
                ;;
            *)
                printf 'dep_%s=unreachable\n' "$cd_name"
                printf 'error: %s %s:%s is not reachable from the worker (TCP): check the address in the worker config and the main server firewall\n' "$cd_name" "$cd_host" "$cd_port" >&2
                cd_status=5
                ;;
        esac
    done
    return $cd_status
}

# After SETTLE seconds: every SERVICE of PROJECT runs and has not restarted (a crash loop under a
# restart policy also "runs" between crashes). Prints running=.
check_running() {
    cr_project=$1
    cr_settle=$2
    shift 2
    [ "$cr_settle" -gt 0 ] 2>/dev/null && sleep "$cr_settle"
    cr_running=$(running_in "$cr_project") || cr_running=""
    printf 'running=%s\n' "$cr_running"
    for cr_service in "$@"; do
        case " $cr_running " in
            *" $cr_service "*) ;;
            *)
                printf "error: service %s is not running after start: see 'docker compose logs %s' in %s\n" "$cr_service" "$cr_service" "$site_dir" >&2
                return 5
                ;;
        esac
        for cr_id in $(project_compose "$cr_project" ps -q "$cr_service"); do
            cr_restarts=$(docker inspect -f '{{.RestartCount}}' "$cr_id" 2>/dev/null || echo 0)
            if [ "${cr_restarts:-0}" -gt 0 ]; then
                printf "error: service %s restarted %s times within %s s of starting (crash loop): see 'docker compose logs %s' in %s\n" \
                    "$cr_service" "$cr_restarts" "$cr_settle" "$cr_service" "$site_dir" >&2
                return 5
            fi
        done
    done
}

# In place: starts SERVICE... of the site's own project, checks DEPS and them. Prints up_ms=.
start_services() {
    sv_settle=$1
    sv_deps=$2
    shift 2
    # --no-deps: schedule's dependencies (Redis) run on the main server, never here.
    # shellcheck disable=SC2086
    compose $all_files up -d --no-deps "$@" >&2 || {
        printf 'error: docker compose up failed in %s\n' "$site_dir" >&2
        return 5
    }
    printf 'up_ms=%s\n' "$(now_ms)"
    sv_deps_ok=0
    check_dependencies "$sv_deps" || sv_deps_ok=5
    check_running "$(base_project)" "$sv_settle" "$@" || return 5
    return $sv_deps_ok
}

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

# Tells generation PROJECT to stop, at once: SIGTERM to each of its running containers (what
# `docker stop` sends first; RQ's warm shutdown: no new job, the running one finishes). Prints
# SERVICE:CONTAINER per line, for drain.
tell_to_stop() {
    for ts_service in $(running_in "$1"); do
        for ts_id in $(project_compose "$1" ps -q "$ts_service" 2>/dev/null); do
            docker kill --signal TERM "$ts_id" >/dev/null 2>&1 && printf '%s:%s\n' "$ts_service" "$ts_id"
        done
    done
}

# Waits, detached, while generation PROJECT of RELEASE drains: each told container (SERVICE:ID
# in TOLD) gets its wait under RULES to exit, and is killed when it runs out (never a second
# SIGTERM: RQ reads that as a cold shutdown that kills the job). Then removes the generation,
# records what was killed, and finishes what waited for it: the frappe-bench flip (FLIP, when it
# read through the link), and the old copy of a swapped release (ASIDE). Jobs its idle workers
# lost to RQ's warm shutdown go back on their queues through the live generation's RECOVER service.
drain() {
    dr_project=$1
    dr_release=$2
    dr_rules=$3
    dr_flip=$4
    dr_aside=$5
    dr_recover=$6
    dr_told=$7
    dr_file="$gen_dir/$dr_project.drain"
    dr_since=$(value since "$dr_file")
    [ -n "$dr_recover" ] && recover_detached "$(value project "$state/live")" "$dr_recover" 3
    dr_pids=""
    for dr_entry in $dr_told; do
        (
            dr_service=${dr_entry%%:*}
            dr_id=${dr_entry#*:}
            if ! timeout "$(stop_wait "$dr_service" "$dr_rules")" docker wait "$dr_id" >/dev/null 2>&1; then
                docker kill "$dr_id" >/dev/null 2>&1 && echo "$dr_service" >> "$dr_file.killed"
            fi
        ) &
        dr_pids="$dr_pids $!"
    done
    for dr_pid in $dr_pids; do wait "$dr_pid"; done
    dr_killed=$(sort -u "$dr_file.killed" 2>/dev/null | tr '\n' ',' | sed 's/,$//')
    rm -f "$dr_file.killed"
    remove_generation "$dr_project"
    if [ -n "$dr_flip" ] && [ "$(value release "$state/live")" = "$dr_flip" ]; then
        relink "$dr_flip" "$workspace/frappe-bench"
    fi
    [ -n "$dr_aside" ] && rm -rf "$dr_aside"
    record "$dr_file" "release=$dr_release" "since=$dr_since" "state=done" "done=$(date +%s)" "killed=$dr_killed"
}

# Undoes a handover that failed with REASON: the new generation stops (gracefully: a job it took
# finishes) and goes; the old one never stopped, and its scheduler starts again. Uses
# do_handover's variables (it is part of it). Returns 7 (the old release serves) or 8 (none did).
undo_handover() {
    printf 'reason=%s\n' "$1"
    printf 'error: %s did not start; %s\n' "$dh_release" "${dh_old:+the old generation keeps serving}" >&2
    stop_in "$dh_project" "$dh_stop" > /dev/null
    remove_generation "$dh_project"
    if [ -n "$dh_aside" ]; then
        rm -rf "$workspace/.fd-failed-$dh_release"
        mv "$workspace/$dh_release" "$workspace/.fd-failed-$dh_release"
        mv "$dh_aside" "$workspace/$dh_release"
    fi
    for dh_each in $dh_old_schedules; do project_compose "$dh_each" start schedule >&2; done
    # The new workers' own warm shutdown may have lost a job: the old generation puts it back.
    if [ -n "$dh_old" ]; then
        dh_recover=$(running_in "$dh_old" | tr ' ' '\n' | grep -v '^schedule$' | head -n 1)
        [ -n "$dh_recover" ] && recover_detached "$dh_old" "$dh_recover" 1
    fi
    if [ -z "$dh_old" ]; then
        printf 'running=\nrolled_back=none\n'
        return 8
    fi
    printf 'running=%s\n' "$(running_in "$dh_old")"
    printf 'rolled_back=%s\n' "$dh_old_release"
    printf 'downtime_ms=0\n'
    return 7
}

# The handover, run detached by `switch`. Writes key=value facts to stdout (the result file) and
# its errors to stderr (the log). Never exits early: every path ends with a return code.
do_handover() {
    set +e
    dh_release=${opt_release:?}
    dh_project=${opt_project:?}
    dh_stop=${opt_stop:?}
    dh_settle=${opt_settle:?}
    dh_old=$(live_project)
    dh_olds=$(serving_projects | grep -vx "$dh_project" | tr '\n' ' ')
    dh_old_release=$(value release "$state/live")
    [ -n "$dh_old_release" ] && [ "$dh_old" = "$(value project "$state/live")" ] || dh_old_release=$(readlink "$workspace/frappe-bench" 2>/dev/null)
    printf 'previous=%s\n' "$dh_old_release"
    dh_workers=""
    dh_schedule=no
    for dh_service in "$@"; do
        if [ "$dh_service" = schedule ]; then dh_schedule=yes; else dh_workers="$dh_workers $dh_service"; fi
    done
    dh_workers=${dh_workers# }
    dh_aside=""
    if [ -n "${opt_stage:-}" ]; then
        # Same release name as the live one: the fresh copy takes the name; the old generation
        # keeps its mount of the old copy, which goes when it has drained.
        dh_aside="$workspace/.fd-old-$dh_release-$dh_project"
        if ! { mv "$workspace/$dh_release" "$dh_aside" && mv "$opt_stage" "$workspace/$dh_release"; }; then
            printf 'reason=the staged copy of %s could not be put in place\n' "$dh_release"
            [ -d "$dh_aside" ] && [ ! -e "$workspace/$dh_release" ] && mv "$dh_aside" "$workspace/$dh_release"
            return 5
        fi
    fi
    mkdir -p "$workspace/deployment-data/config/pids"
    dh_failed=""
    if ! write_generation "$dh_project" "$dh_release" "$@"; then
        dh_failed="$(write_problem "$gen_dir"): the generation's override could not be written"
    fi
    # 1. The new generation's workers start beside the old ones, which keep taking jobs.
    # shellcheck disable=SC2086 # service names are single words
    if [ -z "$dh_failed" ] && [ -n "$dh_workers" ] && ! project_compose "$dh_project" up -d --no-deps $dh_workers >&2; then
        dh_failed="docker compose up failed in $site_dir"
    fi
    dh_up=$(now_ms)
    if [ -z "$dh_failed" ] && ! check_dependencies "${opt_deps:-}" 2>> "$state/switch.checks"; then
        dh_failed=$(sed -n 's/^error: //p' "$state/switch.checks" | tail -n 1)
        [ -n "$dh_failed" ] || dh_failed="$(write_problem "$state"): the dependency check's output was lost"
    fi
    # 2. One scheduler at any moment: the old one stops before the new one starts.
    dh_old_schedules=""
    dh_schedule_gap=0
    if [ -z "$dh_failed" ] && [ $dh_schedule = yes ]; then
        for dh_each in $dh_olds; do
            case " $(running_in "$dh_each") " in
                *" schedule "*)
                    dh_old_schedules="$dh_old_schedules $dh_each"
                    stop_in "$dh_each" "$dh_stop" schedule > /dev/null
                    ;;
            esac
        done
        dh_schedule_stopped=$(now_ms)
        if ! project_compose "$dh_project" up -d --no-deps schedule >&2; then
            dh_failed="docker compose up of schedule failed in $site_dir"
        fi
        dh_schedule_gap=$(( $(now_ms) - dh_schedule_stopped ))
    fi
    # 3. The new generation must stay up for SETTLE seconds, without restarting.
    if [ -z "$dh_failed" ]; then
        if ! check_running "$dh_project" "$dh_settle" "$@" > "$state/switch.start" 2>> "$state/switch.checks"; then
            dh_failed=$(sed -n 's/^error: //p' "$state/switch.checks" | tail -n 1)
            [ -n "$dh_failed" ] || dh_failed="$(write_problem "$state"): the check of the started services was lost"
        elif [ -z "$(value running "$state/switch.start")" ]; then
            dh_failed="$(write_problem "$state"): the check of the started services could not be recorded"
        fi
    fi
    cat "$state/switch.checks" >&2 2>/dev/null
    rm -f "$state/switch.checks"
    # 4. The new generation is recorded live (every record written and checked first: a full
    # disk undoes the handover like a failed check, so the records never disagree with what
    # runs), and then the old one is told to stop.
    if [ -z "$dh_failed" ]; then
        dh_records="$state/live"
        if ! prepare_record "$state/live" "project=$dh_project" "release=$dh_release" "since=$(date +%s)"; then
            dh_failed="$(write_problem "$state"): the switch could not be recorded"
        fi
        if [ -z "$dh_failed" ] && [ -n "${opt_verified:-}" ]; then
            dh_records="$dh_records $state/verified"
            prepare_record "$state/verified" "release=$dh_release" "main=${opt_verified%%:*}" "copy=${opt_verified#*:}" \
                || dh_failed="$(write_problem "$state"): the switch could not be recorded"
        fi
        if [ -z "$dh_failed" ] && [ -n "$dh_old_release" ] && [ "$dh_old_release" != "$dh_release" ]; then
            dh_records="$dh_records $state/releases"
            prepare_record "$state/releases" "previous=$dh_old_release" \
                || dh_failed="$(write_problem "$state"): the switch could not be recorded"
        fi
        # The drains, recorded before the lock is released, so no later sync starts a third generation.
        for dh_each in $dh_olds; do
            [ -z "$dh_failed" ] || break
            dh_each_release=$dh_old_release
            [ -f "$gen_dir/$dh_each.yml" ] && dh_each_release=$(sed -n 's/^ *frappe-deployer.release: "\(.*\)"$/\1/p' "$gen_dir/$dh_each.yml" | head -n 1)
            dh_records="$dh_records $gen_dir/$dh_each.drain"
            prepare_record "$gen_dir/$dh_each.drain" "release=${dh_each_release:--}" "since=$(date +%s)" "state=draining" \
                || dh_failed="$(write_problem "$gen_dir"): the switch could not be recorded"
        done
        if [ -n "$dh_failed" ]; then
            for dh_each in $dh_records; do rm -f "$dh_each.new"; done
        fi
    fi
    if [ -n "$dh_failed" ]; then
        undo_handover "$dh_failed"
        return $?
    fi
    for dh_each in $dh_records; do mv -f "$dh_each.new" "$dh_each"; done
    printf 'running=%s\n' "$(value running "$state/switch.start")"
    dh_flip=""
    dh_base=$(base_project)
    dh_base_serves=no
    case " $dh_olds " in
        *" $dh_base "*)
            for dh_service in $(running_in "$dh_base"); do
                case " $* " in *" $dh_service "*) dh_base_serves=yes ;; esac
            done
            ;;
    esac
    if [ $dh_base_serves = yes ]; then
        # Old workers of the site's own project read through frappe-bench: the flip waits until
        # they have drained, so their running jobs never read the new release.
        dh_flip=$dh_release
        printf 'flip=deferred\n'
    else
        relink "$dh_release" "$workspace/frappe-bench" || printf 'warning: frappe-bench could not be pointed at %s\n' "$dh_release" >&2
        printf 'flip=done\n'
    fi
    dh_telling=$(now_ms)
    # Jobs never waited for a worker: the new generation was up before the old was told to stop.
    printf 'downtime_ms=%s\n' "$(( dh_up > dh_telling ? dh_up - dh_telling : 0 ))"
    printf 'scheduler_gap_ms=%s\n' "$dh_schedule_gap"
    printf 'live=%s\n' "$dh_release"
    dh_n=0
    for dh_each in $dh_olds; do
        dh_n=$((dh_n + 1))
        dh_each_release=$dh_old_release
        [ -f "$gen_dir/$dh_each.yml" ] && dh_each_release=$(sed -n 's/^ *frappe-deployer.release: "\(.*\)"$/\1/p' "$gen_dir/$dh_each.yml" | head -n 1)
        printf 'draining_%s=%s %s %s\n' "$dh_n" "$dh_each" "${dh_each_release:--}" "$(running_in "$dh_each" | tr ' ' ',' | sed 's/^$/-/')"
        # Told now, before this returns: from here on, the old workers take no new job (its drain
        # record went live with the others above).
        dh_told=$(tell_to_stop "$dh_each" | tr '\n' ' ')
        dh_each_aside=""
        [ "$dh_each" = "$dh_old" ] && dh_each_aside=$dh_aside
        dh_each_flip=""
        [ "$dh_each" = "$dh_base" ] && dh_each_flip=$dh_flip
        (
            trap '' HUP INT TERM PIPE
            drain "$dh_each" "${dh_each_release:--}" "$dh_stop" "$dh_each_flip" "$dh_each_aside" "${dh_workers%% *}" "$dh_told" 2>> "$state/drain.log"
        ) < /dev/null > /dev/null 2>&1 &
    done
    if [ -n "$dh_aside" ] && [ -z "$dh_old" ]; then rm -rf "$dh_aside"; fi
    # Leftovers of generations that no longer run and do not drain.
    for dh_leftover in $(labelled_projects); do
        case " $dh_project $dh_olds " in *" $dh_leftover "*) continue ;; esac
        [ -n "$(running_in "$dh_leftover")" ] && continue
        draining_projects | grep -qx "$dh_leftover" || remove_generation "$dh_leftover"
    done
    return 0
}

switch() {
    required site >/dev/null
    sw_release=$(required release)
    sw_project=$(required project)
    required stop >/dev/null
    required settle >/dev/null
    case $sw_project in
        '' | *[!a-z0-9_-]*) fail 2 "not a generation name: $sw_project" ;;
    esac
    [ $# -gt 0 ] || fail 2 "switch needs the services to start after --"
    find_compose
    know_base
    mkdir -p "$state" "$gen_dir"
    [ -d "$workspace/$sw_release" ] || fail 4 "release $workspace/$sw_release is not on the worker"
    if sw_draining=$(draining_projects) && [ -n "$sw_draining" ]; then
        fail 4 "a generation is still draining ($(echo "$sw_draining" | tr '\n' ' ')): a third is not started"
    fi
    # The result and the log are written over space reserved now (1<>, no truncation), so they
    # reach the tool even if the disk fills up during the switch; without that space, nothing starts.
    if ! reserve "$state/switch.result" 65536 || ! reserve "$state/switch.log" 65536; then
        rm -f "$state/switch.result" "$state/switch.log"
        fail 4 "$(write_problem "$state"): the switch's result could not be reserved; nothing was switched, the running release serves on"
    fi
    # The copy about to change (or be replaced) is no longer the one verified.
    rm -f "$state/verified"
    # Detached from this connection: a dropped link or an interrupted client cannot stop it half-way.
    (
        trap '' HUP INT TERM PIPE
        {
            do_handover "$@"
            echo "exit=$?"
        } 1<> "$state/switch.result" 2<> "$state/switch.log"
    ) < /dev/null > /dev/null 2>&1 &
    sw_job=$!
    printf '%s:%s\n' "$sw_job" "$(proc_start "$sw_job")" > "$state/switch.pid" 2>/dev/null || true
    wait "$sw_job" || true
    rm -f "$state/switch.pid"
    grep -v -e '^exit=' -e '^$' "$state/switch.result" || true
    sw_code=$(value exit "$state/switch.result")
    if [ "${sw_code:-8}" != 0 ]; then
        grep '^error: ' "$state/switch.log" >&2 || true
        exit "${sw_code:-8}"
    fi
}

prune() {
    pr_keep=$(required keep)
    [ "$pr_keep" -ge 1 ] 2>/dev/null || fail 2 "keep must be a number of at least 1: $pr_keep"
    pr_live=$(live_release)
    pr_previous=$(value previous "$state/releases")
    # Releases a generation still runs (live, or draining) are never removed.
    pr_used=" $(value release "$state/live") "
    for pr_project in $(draining_projects); do pr_used="$pr_used$(value release "$gen_dir/$pr_project.drain") "; done
    pr_kept=0
    pr_pruned=""
    pr_failed=""
    for pr_release in $(release_dirs | sort -r); do
        pr_kept=$((pr_kept + 1))
        if [ $pr_kept -le "$pr_keep" ] || [ "$pr_release" = "$pr_live" ] || [ "$pr_release" = "$pr_previous" ]; then
            continue
        fi
        case $pr_used in *" $pr_release "*) continue ;; esac
        # Out of the release list in one rename, then removed: a removal that fails part-way
        # leaves a .fd-prune-* directory, which the next staging finishes off, never half a
        # release among the releases. The new release runs either way: a failure is a warning.
        pr_aside="$workspace/.fd-prune-$pr_release.$$"
        if ! mv "$workspace/$pr_release" "$pr_aside" 2>/dev/null; then
            pr_failed="$pr_failed $pr_release"
        elif pr_error=$(rm -rf "$pr_aside" 2>&1); then
            pr_pruned="$pr_pruned $pr_release"
        else
            pr_failed="$pr_failed $pr_release"
            printf 'prune_error=%s\n' "$(printf '%s\n' "$pr_error" | head -n 1)"
        fi
    done
    printf 'pruned=%s\n' "${pr_pruned# }"
    printf 'prune_failed=%s\n' "${pr_failed# }"
}

stop() {
    st_rules=$(required stop)
    find_compose
    know_base
    mkdir -p "$workspace/deployment-data" "$state"
    # The live release is about to be rewritten in place: it is no longer a verified copy.
    rm -f "$state/verified"
    printf 'stopping_ms=%s\n' "$(now_ms)"
    stop_everything "$st_rules" || fail 5 "stopping the worker services failed in $site_dir"
    printf 'stopped=yes\n'
}

activate() {
    ac_site=$(required site)
    ac_release=$(required release)
    ac_dir="$workspace/$ac_release"
    [ -d "$ac_dir" ] || fail 4 "release $ac_dir is not on the worker: the transfer did not complete"
    link_configs "$ac_site" "$ac_dir"
    relink "$ac_release" "$workspace/frappe-bench" || exit 4
    mkdir -p "$workspace/frappe-bench/config/pids"
    printf 'live_release=%s\n' "$ac_release"
}

drains() {
    find_compose
    drain_facts
}

start() {
    sr_settle=$(required settle)
    [ $# -gt 0 ] || fail 2 "start needs the services to start after --"
    find_compose
    know_base
    start_services "$sr_settle" "${opt_deps:-}" "$@" || exit 5
    # Jobs the stopped workers lost to RQ's warm shutdown go back on their queues.
    sr_worker=$(printf '%s\n' "$@" | grep -v '^schedule$' | head -n 1)
    [ -n "$sr_worker" ] && recover_detached "$(base_project)" "$sr_worker" 0
    return 0
}

case $phase in
    preflight) preflight "$@" ;;
    lock) lock ;;
    unlock) unlock "$@" ;;
    history) show_history ;;
    authorize) authorize ;;
    jobs) jobs ;;
    status) status "$@" ;;
    digest) digest "$@" ;;
    stage-prepare) stage_prepare ;;
    stage-activate) stage_activate "$@" ;;
    unstage) unstage ;;
    switch) switch "$@" ;;
    prune) prune ;;
    stop) stop ;;
    activate) activate ;;
    start) start "$@" ;;
    drains) drains ;;
    *) fail 2 "unknown phase: $phase" ;;
esac
