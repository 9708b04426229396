# --- preflight, lock, unlock, status ---------------------------------------------------------

preflight() {
    pf_site=$(required site)
    [ -d "$site_dir" ] || fail 3 "$site_dir does not exist on the worker: create the worker's FM bench for $pf_site there, or set workspace_path"
    for pf_file in docker-compose.yml docker-compose.workers.yml; do
        [ -f "$site_dir/$pf_file" ] || fail 3 "$site_dir/$pf_file is missing on the worker: copy the site's compose files from the main server (remote-worker enable)"
    done
    command -v rsync >/dev/null 2>&1 || fail 3 "rsync is not installed on the worker: install it (apt-get install rsync)"
    # The Docker and Compose questions are independent: asked at once (Compose v2 assumed for the
    # files while `docker compose version` confirms it), then read in the order the checks go, so
    # the checks and their messages are the same, about 0.3 s sooner. In turn without a scratch dir.
    # Bounded: a hung (or SIGSTOPped) engine makes every docker call wait forever.
    pf_info_cmd="docker info"
    command -v timeout >/dev/null 2>&1 && pf_info_cmd="timeout -k 5 20 docker info"
    pf_ahead=no
    if make_scratch; then
        pf_ahead=yes
        early_digest "$@"
        # shellcheck disable=SC2086 # fixed word lists
        {
            ask info $pf_info_cmd
            ask version docker compose version
            ask workers compose_v2 $worker_files config --services
            ask base compose_v2 $base_files config --services
            ask all compose_v2 $all_files config
        }
    fi
    pf_info=0
    if [ $pf_ahead = yes ]; then
        await info
        answer info >/dev/null || pf_info=$?
    else
        # shellcheck disable=SC2086
        $pf_info_cmd >/dev/null 2>&1 || pf_info=$?
    fi
    case $pf_info in
        0) ;;
        124 | 137) fail 3 "the Docker engine on the worker does not answer (docker info took over 20 s): is dockerd hung or stopped?" ;;
        *) fail 3 "cannot reach the Docker engine on the worker as $(id -un): is dockerd running and is the user in the docker group?" ;;
    esac
    [ $pf_ahead = no ] || await version workers base all
    if [ $pf_ahead = yes ] && answer version >/dev/null; then
        compose_cmd="docker compose"
        base_name=$(answer all 2>/dev/null | project_name)
    else
        # No Compose v2 (or no scratch dir): the files are asked in turn, by the Compose there is.
        pf_ahead=no
        find_compose
        know_base
    fi
    # (on failure, the one line captured is compose's own error)
    # shellcheck disable=SC2086
    pf_workers=$(asked_services workers $worker_files 2>&1) || fail 3 "$site_dir/docker-compose.workers.yml is not a valid compose file: $pf_workers"
    [ -n "$pf_workers" ] || fail 3 "$site_dir/docker-compose.workers.yml defines no services"
    # shellcheck disable=SC2086
    pf_base=$(asked_services base $base_files 2>&1) || fail 3 "$site_dir/docker-compose.yml is not a valid compose file: $pf_base"
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

# The services of FILES... as services_of says them: from the answer NAME when preflight asked
# ahead (see ask), else asked now.
asked_services() {
    as_name=$1
    shift
    if [ "$pf_ahead" = yes ]; then
        as_out=$(answer "$as_name") || { printf '%s\n' "$as_out" >&2; return 1; }
        printf '%s\n' "$as_out" | one_line
    else
        services_of "$@"
    fi
}

# Facts about the releases on the worker (preflight and status): which are there, the previous
# one, the verified copy, and, with --digest=R, the live copy's digest when it is release R and the
# verified one.
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
    if [ -n "$rf_current" ] && [ "${opt_digest:-}" = "$rf_current" ] && [ "$rf_current" = "$rf_verified" ] && [ -d "$workspace/$rf_current" ]; then
        rf_digest=""
        if [ "$early_release" = "$rf_current" ] && wait "$early_pid" 2>/dev/null; then rf_digest=$(cat "$early_file" 2>/dev/null); fi
        [ -n "$rf_digest" ] || rf_digest=$(release_digest "$workspace/$rf_current" "$@")
        printf 'live_digest=%s\n' "$rf_digest"
    fi
}

# The live copy's digest, the longest part of a check, is started in the background (with
# EXCLUDE... as release_digest takes them) before Docker and the compose files are asked. release_facts
# uses it only for the release that is live and verified once the lock is held, and otherwise
# takes it again: a digest of a copy that changed meanwhile can only make the sync stage afresh.
early_release=""
early_pid=""
early_file=""
early_digest() {
    [ -n "${opt_digest:-}" ] || return 0
    ed_live=$(live_release)
    [ "$ed_live" = "$opt_digest" ] && [ "$ed_live" = "$(value release "$state/verified")" ] && [ -d "$workspace/$ed_live" ] || return 0
    make_scratch || return 0
    early_file="$scratch/digest"
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
    lk_lost=no
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
                lk_lost=yes
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
            lk_lost=yes
        fi
    fi
    [ $lk_lost = no ] || append_unfinished || true
    record "$state/lock" "token=$lk_token" "holder=$lk_holder" "origin=${opt_origin:-}" "since=$(date +%s)" "session=$(session_id)" \
        "kind=${opt_kind:-}" "live=$(live_release)" 2>/dev/null \
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

